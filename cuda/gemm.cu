/* gemm.cu: the backend's matrix products on cuBLAS. amd's matrices are row-major, cuBLAS's
 * column-major: a row-major (r, c) matrix is its column-major transpose with the same leading
 * dimension, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, B and A swapped, transpose
 * flags and leading dimensions as cblas_sgemm's row-major ones (src/ops_cpu.c).
 * FP32 by default; cuda_set_tf32(1) (AMD_TF32=1) lets cuBLAS use TF32 tensor cores.
 * Not here: cuBLASLt epilogues or fused bias, which the CPU backend would have to mirror. */
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
