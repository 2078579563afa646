/* cuda_common.cuh: what every .cu file of the CUDA backend shares: the error-checking macros (they
 * end the job through amd_fatal with file, line and the CUDA or cuBLAS error string), the one
 * stream and cuBLAS handle, launch sizes, and the declarations of the op functions (generated from
 * core/ops_list.h) that ops_cuda.cu puts in the table.
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

/* GELU, tanh approximation (core/ops_list.h): its value's u and its derivative from tanh u, shared by
 * gelu_forward / gelu_backward (elementwise.cu) and linear_gelu_forward (gemm.cu) */
#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
static __device__ inline float gelu_u(float x) { return GELU_K * (x + 0.044715f * x * x * x); }
static __device__ inline float gelu_grad(float x, float th) {
  float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

/* The op functions, cuda_<op> for every op of core/ops_list.h, with the parameters listed there:
 * gemm.cu (cuBLAS), elementwise.cu (pointwise maps, data movement, conditioning, the fused flow,
 * Euler and softplus ops), transformer.cu (row-wise and per-sample-conditioned layers), reduce.cu
 * (reductions, AdamW, Philox, the MSE loss and the DMD gradient) and ops_cuda.cu (memory), which
 * puts them all in the table. */
#define CUDA_OP_DECLARATION(ret, op, params, args, rv) ret cuda_##op params;
AMD_OPS(CUDA_OP_DECLARATION)

/* graph.cu: stops the program, naming `what`, when it is called while a graph_run body is being
 * captured (host copies, waits and allocations cannot be part of a graph) */
void cuda_capture_check(const char *what);

/* attention.cu: the fused forward and backward, for the shapes cuda_fused_attention_applies and
 * cuda_fused_attention_backward_applies accept */
void cuda_attention_forward_fused(float *out, float *prob, const float *qkv, int B, int T, int NH, int hs);
void cuda_attention_backward_fused(float *dqkv, const float *dout, const float *qkv, const float *prob, int B, int T,
                                   int NH, int hs);

/* gemm.cu: the bf16 operands' scratch, given back at exit (errors ignored) */
void cuda_gemm_release(void);

/* reduce.cu: its scratch, made and given back with the backend */
void cuda_reduce_init(void);
void cuda_reduce_release(void); /* at exit; errors ignored */
/* scratch of CUDA_COLUMN_PARTIALS doubles for the partial column sums of a split reduction; any op
 * may use it, since ops run in stream order */
#define CUDA_COLUMN_PARTIALS 65536
double *cuda_column_partials(void);

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
/* The rest of one softmax row done by a warp once its max mx is known: y[j] = exp(x[j] - mx) / sum,
 * each lane its columns j = lane, lane + 32, ..., the sum in double over the lanes (x may be y). */
static __device__ inline void warp_softmax_row(float *y, const float *x, int n, float mx, int lane) {
  double sum = 0;
  for (int j = lane; j < n; j += 32) {
    float e = expf(x[j] - mx);
    y[j] = e;
    sum += e;
  }
  float inv = (float)(1.0 / warp_sum(sum));
  for (int j = lane; j < n; j += 32) y[j] *= inv;
}
