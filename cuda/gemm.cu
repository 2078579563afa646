/* gemm.cu: the backend's matrix products on cuBLAS. amd's matrices are row-major, cuBLAS's
 * column-major: a row-major (r, c) matrix is its column-major transpose with the same leading
 * dimension, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, B and A swapped, transpose
 * flags and leading dimensions as cblas_sgemm's row-major ones (src/ops_cpu.c).
 * The precision of the products (cuda_set_precision, the `precision` setting):
 *   fp32  cublasSgemm, float32 throughout (the default: the CPU's results to float32 rounding);
 *   tf32  the same calls in CUBLAS_TF32_TENSOR_OP_MATH: tensor cores round the inputs to TF32;
 *   bf16  A and B are rounded to bfloat16 (nearest, ties to even) into a scratch buffer right
 *         before the product, which is cublasGemmEx / cublasGemmStridedBatchedEx on bf16 operands
 *         with float32 accumulation (CUBLAS_COMPUTE_32F) and a float32 C. Everything else (weights,
 *         AdamW, reductions, softmax, layernorm, losses) stays float32: this is the bf16 autocast
 *         of a GPU framework, confined to the GEMMs.
 * The fused linear layers (core/ops_list.h) are the cuBLAS product and one kernel for the bias and
 * the step after it (the GELU or the gated residual), in the expressions of bias_add, gelu_forward
 * and gated_residual_forward (cuda/elementwise.cu, cuda/transformer.cu).
 * Not here: cuBLASLt epilogues, whose sums and rounding the CPU backend would have to mirror; bf16
 * copies of the weights kept between steps (each product rounds its operands afresh, so the master
 * weights are the only copy). */
#include "cuda_common.cuh"
#include "ops_cuda.h"

static int precision = CUDA_FP32;

extern "C" void cuda_set_precision(int p) {
  CHECK(p == CUDA_FP32 || p == CUDA_TF32 || p == CUDA_BF16, "cuda_set_precision(%d): not a precision", p);
  precision = p;
  cublasCheck(cublasSetMathMode(cuda_cublas, p == CUDA_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

extern "C" int cuda_precision(void) { return precision; }

/* The bf16 operands: a device buffer that grows (doubling) to the largest pair of operands seen,
 * so that after the first steps no product allocates. A grown-out buffer is kept until exit, not
 * freed: a CUDA graph captured earlier still reads its products' operands there (and a cudaFree
 * would wait for the device). The kept buffers hold at most as much as the current one. */
#define BF16_RETIRED_MAX 48
static uint16_t *bf16_scratch, *bf16_retired[BF16_RETIRED_MAX];
static size_t bf16_scratch_elems;
static int bf16_nretired;

static uint16_t *bf16_operands(size_t elems) {
  if (elems > bf16_scratch_elems) {
    cuda_capture_check("growing the bf16 operand scratch (a product larger than the warm-up's)");
    size_t grown = elems > 2 * bf16_scratch_elems ? elems : 2 * bf16_scratch_elems;
    CHECK(bf16_nretired < BF16_RETIRED_MAX, "bf16 operand scratch grown %d times", bf16_nretired);
    if (bf16_scratch) bf16_retired[bf16_nretired++] = bf16_scratch;
    bf16_scratch = NULL;
    cudaError_t err = cudaMalloc(&bf16_scratch, sizeof(uint16_t) * grown);
    if (err != cudaSuccess)
      amd_fatal("out of GPU memory allocating %zu bytes for the bf16 GEMM operands: %s (error %d)",
                sizeof(uint16_t) * grown, cudaGetErrorString(err), (int)err);
    bf16_scratch_elems = grown;
  }
  return bf16_scratch;
}

void cuda_gemm_release(void) {
  cudaFree(bf16_scratch);
  for (int i = 0; i < bf16_nretired; i++) cudaFree(bf16_retired[i]);
  bf16_scratch = NULL, bf16_scratch_elems = 0, bf16_nretired = 0;
}

/* x rounded to bfloat16, nearest with ties to even (the upper 16 bits of the float32 it rounds
 * to); NaN stays a quiet NaN of the same sign, infinities stay infinite */
static __device__ inline uint16_t bf16_round(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__global__ void bf16_round_kernel(uint16_t *out, const float *x, long n) {
  GRID_STRIDE(i, n) out[i] = bf16_round(x[i]);
}

static void to_bf16(uint16_t *out, const float *x, long n) {
  bf16_round_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(out, x, n);
  launchCheck(bf16_round_kernel);
}

static inline int at_least_1(int x) { return x > 1 ? x : 1; }

/* floats a batch of row-major (rows, cols) matrices with leading dimension ld, stride floats
 * apart, spans: the range that is rounded to bf16 as one, strides and leading dimension kept */
static long batch_span(int rows, int cols, int ld, long stride, int batch) {
  return (long)(batch - 1) * stride + (long)(rows - 1) * ld + cols;
}

/* the product in bf16: both operands rounded into the scratch, then one GemmStridedBatchedEx (a
 * single product is a batch of one) */
static void gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, long strideA,
                      const float *B, long strideB, float beta, float *C, long strideC, int batch) {
  int lda = at_least_1(transA ? M : K), ldb = at_least_1(transB ? K : N);
  long nA = K > 0 ? batch_span(transA ? K : M, transA ? M : K, lda, strideA, batch) : 0;
  long nB = K > 0 ? batch_span(transB ? N : K, transB ? K : N, ldb, strideB, batch) : 0;
  long nA16 = (nA + 7) / 8 * 8; /* B's operand 16-byte aligned, as tensor-core kernels want it */
  uint16_t *a16 = bf16_operands((size_t)(nA16 + nB + 1)), *b16 = a16 + nA16;
  if (nA > 0) to_bf16(a16, A, nA);
  if (nB > 0) to_bf16(b16, B, nB);
  cublasCheck(cublasGemmStridedBatchedEx(cuda_cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, b16, CUDA_R_16BF, ldb,
                                         strideB, a16, CUDA_R_16BF, lda, strideA, &beta, C, CUDA_R_32F, N, strideC,
                                         batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B, float beta,
               float *C) {
  if (M <= 0 || N <= 0) return;
  if (precision == CUDA_BF16) {
    gemm_bf16(transA, transB, M, N, K, alpha, A, 0, B, 0, beta, C, 0, 1);
    return;
  }
  int lda = at_least_1(transA ? M : K), ldb = at_least_1(transB ? K : N);
  cublasCheck(cublasSgemm(cuda_cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                          &alpha, B, ldb, A, lda, &beta, C, N));
}

void cuda_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, long strideA,
                       const float *B, long strideB, float beta, float *C, long strideC, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (precision == CUDA_BF16) {
    gemm_bf16(transA, transB, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC, batch);
    return;
  }
  int lda = at_least_1(transA ? M : K), ldb = at_least_1(transB ? K : N);
  cublasCheck(cublasSgemmStridedBatched(cuda_cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, strideB, A, lda,
                                        strideA, &beta, C, N, strideC, batch));
}

/* pre (N, O) += b; y = GELU(pre), dg its derivative (dg may be NULL); b may be NULL */
__global__ void bias_gelu_kernel(float *y, float *dg, float *pre, const float *b, long n, int O) {
  GRID_STRIDE(i, n) {
    float z = b ? pre[i] + b[i % O] : pre[i];
    float th = tanhf(gelu_u(z));
    pre[i] = z;
    y[i] = 0.5f * z * (1.0f + th);
    if (dg) dg[i] = gelu_grad(z, th);
  }
}

/* y (B, T, O) += b; h_out = h_in + gate[b] y, gate rows of stride ld */
__global__ void bias_residual_kernel(float *h_out, float *y, const float *h_in, const float *gate, const float *b,
                                     int ld, long n, int T, int O) {
  GRID_STRIDE(i, n) {
    float z = b ? y[i] + b[i % O] : y[i];
    y[i] = z;
    h_out[i] = h_in[i] + gate[i / ((long)T * O) * ld + i % O] * z;
  }
}

void cuda_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
  cuda_gemm(0, 1, N, O, K, 1.0f, x, W, 0.0f, y);
  if (b) cuda_bias_add(y, b, N, O);
}

void cuda_linear_gelu_forward(float *y, float *dg, float *pre, const float *x, const float *W, const float *b, int N,
                              int K, int O) {
  long n = (long)N * O;
  if (n <= 0) return;
  float *z = pre ? pre : y; /* pre NULL: z made in y, then replaced by GELU(z) (each element by its own thread) */
  cuda_gemm(0, 1, N, O, K, 1.0f, x, W, 0.0f, z);
  bias_gelu_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, dg, z, b, n, O);
  launchCheck(bias_gelu_kernel);
}

void cuda_linear_residual_forward(float *h_out, float *y, const float *h_in, const float *gate, int ld, const float *x,
                                  const float *W, const float *b, int B, int T, int K, int O) {
  long n = (long)B * T * O;
  if (n <= 0) return;
  cuda_gemm(0, 1, B * T, O, K, 1.0f, x, W, 0.0f, y);
  bias_residual_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(h_out, y, h_in, gate, b, ld, n, T, O);
  launchCheck(bias_residual_kernel);
}
