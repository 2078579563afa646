/* cuda_common.cuh: what every .cu file of the CUDA backend shares: the error-checking macros (they
 * end the job through amd_fatal with file, line and the CUDA or cuBLAS error string), the one
 * stream and cuBLAS handle, launch sizes, and the declarations of each op family's launchers
 * (gemm.cu, elementwise.cu, transformer.cu, reduce.cu) that ops_cuda.cu puts in the table.
 * Every launcher queues its kernel on cuda_stream and checks the launch; kernels are named
 * foo_kernel after the op foo. */
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "common.h"
#include "ops.h"
}

extern cudaStream_t cuda_stream;
extern cublasHandle_t cuda_cublas;
extern int cuda_debug_sync; /* AMD_CUDA_SYNC=1: wait after every launch, so a fault names its op */

/* Waits until the stream has done everything queued so far (ops_cuda.cu). Every host wait goes
 * through it: it is also when the staging buffer of host-to-device copies may be reused. */
void cuda_stream_wait(void);

static inline void cuda_check_at(cudaError_t err, const char *expr, const char *file, int line) {
  if (err != cudaSuccess)
    amd_fatal_at(file, line, AMD_EXIT_ERROR, "CUDA call %s failed: %s (error %d)", expr, cudaGetErrorString(err),
                 (int)err);
}
static inline void cublas_check_at(cublasStatus_t st, const char *expr, const char *file, int line) {
  if (st != CUBLAS_STATUS_SUCCESS)
    amd_fatal_at(file, line, AMD_EXIT_ERROR, "cuBLAS call %s failed: %s (status %d)", expr, cublasGetStatusString(st),
                 (int)st);
}
#define cudaCheck(expr) cuda_check_at((expr), #expr, __FILE__, __LINE__)
#define cublasCheck(expr) cublas_check_at((expr), #expr, __FILE__, __LINE__)

/* After a <<<...>>> launch: a bad configuration is reported here; a fault inside the kernel at the
 * next synchronizing call, or here when AMD_CUDA_SYNC=1. */
static inline void cuda_launch_check_at(const char *kernel, const char *file, int line) {
  cuda_check_at(cudaGetLastError(), kernel, file, line);
  if (cuda_debug_sync) cuda_check_at(cudaStreamSynchronize(cuda_stream), kernel, file, line);
}
#define launchCheck(kernel) cuda_launch_check_at(#kernel, __FILE__, __LINE__)

#define CUDA_THREADS 256
/* Grid for n independent items with grid-stride loops: at most 65536 blocks of CUDA_THREADS. */
static inline unsigned grid_for(long n) {
  long b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
  return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}
#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

/* gemm.cu */
void cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B, float beta,
               float *C);
void cuda_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, long strideA,
                       const float *B, long strideB, float beta, float *C, long strideC, int batch);

/* elementwise.cu: pointwise maps, data movement, conditioning */
void cuda_fill(float *x, float value, long n);
void cuda_bias_add(float *y, const float *b, int B, int N);
void cuda_bias_backward(float *db, const float *dy, int B, int N);
void cuda_silu_forward(float *y, const float *x, long n);
void cuda_silu_backward(float *dx, const float *dy, const float *x, long n);
void cuda_gelu_forward(float *y, float *th, const float *x, long n);
void cuda_gelu_backward(float *dx, const float *dy, const float *x, const float *th, long n);
void cuda_patchify(float *tokens, const float *img, int B, int C, int H, int W, int p);
void cuda_unpatchify(float *img, const float *tokens, int B, int C, int H, int W, int p);
void cuda_heads_split(float *q, float *k, float *v, const float *qkv, int B, int T, int NH, int hs);
void cuda_heads_split_backward(float *dqkv, const float *dq, const float *dk, const float *dv, int B, int T, int NH,
                               int hs);
void cuda_heads_merge(float *out, const float *y, int B, int T, int NH, int hs);
void cuda_heads_merge_backward(float *dy, const float *dout, int B, int T, int NH, int hs);
void cuda_add(float *y, const float *a, const float *b, long n);
void cuda_axpy(float *y, float a, const float *x, long n);
void cuda_scale(float *x, float a, long n);
void cuda_timestep_embedding(float *out, const float *t, int B, int dim, float scale, float max_period);
void cuda_embedding_forward(float *out, const float *table, const int *ids, int B, int dim);
void cuda_embedding_backward(float *dtable, const float *dout, const int *ids, int B, int dim);
void cuda_flow_interpolate(float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D);
void cuda_flow_denoise(float *d, const float *xt, const float *v, const float *t, int B, int D);
void cuda_euler_update(float *x, const float *v, const float *h, int B, int D);
void cuda_softplus_forward_backward(float *loss, float *dz, const float *z, float sign, float scale, int B);

/* transformer.cu: row-wise and per-sample-conditioned layers */
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *x, int N, int C);
void cuda_layernorm_backward(float *dx, const float *dout, const float *x, const float *mean, const float *rstd,
                             int N, int C);
void cuda_modulate_forward(float *y, const float *x, const float *shift, const float *scale, int ld, int B, int T,
                           int C);
void cuda_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                            const float *scale, int ld, int B, int T, int C);
void cuda_gated_residual_forward(float *x, const float *gate, const float *y, int ld, int B, int T, int C);
void cuda_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y, const float *gate, int ld,
                                  int B, int T, int C);
void cuda_softmax_forward(float *y, const float *x, int N, int C);
void cuda_softmax_backward(float *dx, const float *dy, const float *y, int N, int C);

/* reduce.cu: reductions (to the host, or left on the device), AdamW, Philox, the per-sample losses */
void cuda_reduce_init(void);
void cuda_reduce_release(void); /* at exit; errors ignored */
/* scratch of CUDA_COLUMN_PARTIALS doubles for the partial column sums of a split reduction; any op
 * may use it, since ops run in stream order */
#define CUDA_COLUMN_PARTIALS 65536
double *cuda_column_partials(void);
double cuda_sum_squares(const float *x, long n);
void cuda_sum_squares_async(double *out, const float *x, long n);
int cuda_all_finite(const float *x, long n);
void cuda_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1, float beta2, float eps,
                float wd, float grad_scale, long t);
void cuda_randn(float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0);
void cuda_mse_forward_backward(float *loss, float *dpred, const float *pred, const float *target, const float *weight,
                               int B, int D, float scale);
void cuda_dmd_grad(float *dx, float *stats, const float *x, const float *d_c, const float *d_u, const float *d_f,
                   const float *alpha, const float *beta, float w, float scale, int B, int D);

/* Sum of v over the block (blockDim.x a power of two <= 1024, every thread calling), in a fixed
 * tree order so results repeat bit for bit; every thread gets the total. sh holds blockDim.x. */
static __device__ inline double block_sum(double v, double *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  double total = sh[0];
  __syncthreads(); /* sh may be reused right after */
  return total;
}

/* Sum over the 32 lanes of a warp in a fixed butterfly order; every lane gets the total. */
static __device__ inline double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
static __device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
