/* gemm.cu: the backend's matrix products on cuBLAS. amd's matrices are row-major, cuBLAS's
 * column-major: a row-major (r, c) matrix is its column-major transpose with the same leading
 * dimension, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, B and A swapped, transpose
 * flags and leading dimensions as cblas_sgemm's row-major ones (src/ops_cpu.c).
 * FP32 by default; cuda_set_tf32(1) (AMD_TF32=1) lets cuBLAS use TF32 tensor cores.
 * The fused linear layers (core/ops_list.h) are the cuBLAS product and one kernel for the bias and
 * the step after it (the GELU or the gated residual), in the expressions of bias_add, gelu_forward
 * and gated_residual_forward (cuda/elementwise.cu, cuda/transformer.cu).
 * Not here: cuBLASLt epilogues, whose sums and rounding the CPU backend would have to mirror. */
#include "cuda_common.cuh"
#include "ops_cuda.h"

static int tf32_on;

extern "C" void cuda_set_tf32(int on) {
  tf32_on = on != 0;
  cublasCheck(cublasSetMathMode(cuda_cublas, tf32_on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

extern "C" int cuda_tf32(void) { return tf32_on; }

static inline int at_least_1(int x) { return x > 1 ? x : 1; }

void cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B, float beta,
               float *C) {
  if (M <= 0 || N <= 0) return;
  int lda = at_least_1(transA ? M : K), ldb = at_least_1(transB ? K : N);
  cublasCheck(cublasSgemm(cuda_cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                          &alpha, B, ldb, A, lda, &beta, C, N));
}

void cuda_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, long strideA,
                       const float *B, long strideB, float beta, float *C, long strideC, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  int lda = at_least_1(transA ? M : K), ldb = at_least_1(transB ? K : N);
  cublasCheck(cublasSgemmStridedBatched(cuda_cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, strideB, A, lda,
                                        strideA, &beta, C, N, strideC, batch));
}

/* pre (N, O) += b; y = GELU(pre), th its tanh (th may be NULL); b may be NULL */
#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
__global__ void bias_gelu_kernel(float *y, float *th_out, float *pre, const float *b, long n, int O) {
  GRID_STRIDE(i, n) {
    float z = b ? pre[i] + b[i % O] : pre[i];
    float u = GELU_K * (z + 0.044715f * z * z * z), th = tanhf(u);
    pre[i] = z;
    y[i] = 0.5f * z * (1.0f + th);
    if (th_out) th_out[i] = th;
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

void cuda_linear_gelu_forward(float *y, float *th, float *pre, const float *x, const float *W, const float *b, int N,
                              int K, int O) {
  long n = (long)N * O;
  if (n <= 0) return;
  cuda_gemm(0, 1, N, O, K, 1.0f, x, W, 0.0f, pre);
  bias_gelu_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, th, pre, b, n, O);
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
