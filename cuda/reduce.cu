/* reduce.cu: the reductions (sum of squares, all-finite), AdamW, the Philox normal draws, and the
 * per-sample losses (mean squared error, the DMD/AMD generator gradient).
 * Reductions add in double in a fixed order that depends only on n (per-block trees, then one block
 * adds the block partials in a fixed tree), so a run repeats bit for bit.
 * randn draws exactly the CPU's numbers: Philox4x32-10 is integer arithmetic, and the Box-Muller
 * transform runs in double as in src/philox.c before the result is rounded to float.
 * Not here: atomics, whose order would change from run to run. */
#include <math.h>
#include <stdlib.h>

#include "cuda_common.cuh"

#define REDUCE_BLOCKS 1024
static double *partial_dev;   /* (REDUCE_BLOCKS) per-block sums */
static double *sum_dev;       /* sum_squares: the total */
static int *flag_dev;         /* all_finite: set when an element is not finite */
static double *column_dev;    /* (CUDA_COLUMN_PARTIALS) column sums of row chunks (bias_backward) */

double *cuda_column_partials(void) { return column_dev; }

void cuda_reduce_init(void) {
  cudaCheck(cudaMalloc(&partial_dev, sizeof(double) * REDUCE_BLOCKS));
  cudaCheck(cudaMalloc(&sum_dev, sizeof(double)));
  cudaCheck(cudaMalloc(&flag_dev, sizeof(int)));
  cudaCheck(cudaMalloc(&column_dev, sizeof(double) * CUDA_COLUMN_PARTIALS));
}

void cuda_reduce_release(void) {
  cudaFree(partial_dev), cudaFree(sum_dev), cudaFree(flag_dev), cudaFree(column_dev);
  partial_dev = sum_dev = column_dev = NULL, flag_dev = NULL;
}

static unsigned reduce_blocks(long n) {
  long b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
  return (unsigned)(b < 1 ? 1 : b > REDUCE_BLOCKS ? REDUCE_BLOCKS : b);
}

__global__ void sum_squares_kernel(double *partial, const float *x, long n) {
  __shared__ double sh[CUDA_THREADS];
  double s = 0;
  GRID_STRIDE(i, n) s += (double)x[i] * x[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* one block: the total of the block partials, in block_sum's fixed tree */
__global__ void sum_partials_kernel(double *out, const double *partial, unsigned blocks) {
  __shared__ double sh[CUDA_THREADS];
  double s = 0;
  for (unsigned b = threadIdx.x; b < blocks; b += blockDim.x) s += partial[b];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) *out = s;
}

/* Both launches use partial_dev: the next sum's first kernel runs after this one's second, in
 * stream order. */
void cuda_sum_squares_async(double *out, const float *x, long n) {
  if (n <= 0) {
    cudaCheck(cudaMemsetAsync(out, 0, sizeof(double), cuda_stream));
    return;
  }
  unsigned blocks = reduce_blocks(n);
  sum_squares_kernel<<<blocks, CUDA_THREADS, 0, cuda_stream>>>(partial_dev, x, n);
  launchCheck(sum_squares_kernel);
  sum_partials_kernel<<<1, CUDA_THREADS, 0, cuda_stream>>>(out, partial_dev, blocks);
  launchCheck(sum_partials_kernel);
}

double cuda_sum_squares(const float *x, long n) {
  double s = 0;
  cuda_sum_squares_async(sum_dev, x, n);
  cudaCheck(cudaMemcpyAsync(&s, sum_dev, sizeof(double), cudaMemcpyDeviceToHost, cuda_stream));
  cuda_stream_wait();
  return s;
}

__global__ void all_finite_kernel(int *flag, const float *x, long n) {
  GRID_STRIDE(i, n) if (!isfinite(x[i])) *flag = 1; /* every writer writes the same value */
}

int cuda_all_finite(const float *x, long n) {
  if (n <= 0) return 1;
  int bad = 0;
  cudaCheck(cudaMemsetAsync(flag_dev, 0, sizeof(int), cuda_stream));
  all_finite_kernel<<<reduce_blocks(n), CUDA_THREADS, 0, cuda_stream>>>(flag_dev, x, n);
  launchCheck(all_finite_kernel);
  cudaCheck(cudaMemcpyAsync(&bad, flag_dev, sizeof(int), cudaMemcpyDeviceToHost, cuda_stream));
  cuda_stream_wait();
  return !bad;
}

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, long n, float lr, float beta1, float beta2,
                             float eps, float wd, float grad_scale, float bc1, float bc2) {
  GRID_STRIDE(i, n) {
    float gi = g[i] * grad_scale;
    m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
    v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    float mhat = m[i] / bc1, vhat = v[i] / bc2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  }
}

void cuda_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1, float beta2, float eps,
                float wd, float grad_scale, long t) {
  if (n <= 0) return;
  /* the bias corrections on the host with the CPU's expression, so both backends use the same floats */
  float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
  adamw_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(p, g, m, v, n, lr, beta1, beta2, eps, wd, grad_scale,
                                                              bc1, bc2);
  launchCheck(adamw_kernel);
}

__global__ void ema_update_kernel(float *ema, const float *p, long n, float w) {
  GRID_STRIDE(i, n) { ema[i] += w * (p[i] - ema[i]); }
}

void cuda_ema_update(float *ema, const float *p, long n, float w) {
  if (n <= 0) return;
  ema_update_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(ema, p, n, w);
  launchCheck(ema_update_kernel);
}

/* Philox4x32-10 as philox4x32_10 in src/philox.c: counter (index, step, block, stream), key = seed */
static __device__ inline void philox_device(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
    uint32_t hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
    uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0, c[1] = lo1, c[2] = n2, c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

/* rng_u01 of philox.h */
static __device__ inline double u01_device(uint32_t w) { return ((double)(w >> 8) + 0.5) * (1.0 / 16777216.0); }

/* one thread per (row b, block of 4 elements); row b is rng_normal(seed, stream, step, index0 + b) */
__global__ void randn_kernel(float *out, int D, long n, uint32_t k0, uint32_t k1, uint32_t stream, uint32_t step,
                             uint32_t index0) {
  long nblk = (D + 3) / 4;
  GRID_STRIDE(i, n) {
    long b = i / nblk;
    uint32_t blk = (uint32_t)(i % nblk);
    uint32_t w[4] = {index0 + (uint32_t)b, step, blk, stream};
    philox_device(w, k0, k1);
    float *row = out + b * D;
    for (int p = 0; p < 2; p++) {
      double r = sqrt(-2.0 * log(u01_device(w[2 * p])));
      double a = 6.283185307179586 * u01_device(w[2 * p + 1]);
      long j = 4L * blk + 2 * p;
      if (j < D) row[j] = (float)(r * cos(a));
      if (j + 1 < D) row[j + 1] = (float)(r * sin(a));
    }
  }
}

void cuda_randn(float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0) {
  long n = (long)B * ((D + 3) / 4);
  if (n <= 0) return;
  randn_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(out, D, n, (uint32_t)seed, (uint32_t)(seed >> 32), stream,
                                                              step, index0);
  launchCheck(randn_kernel);
}

/* one block per sample b: loss[b] = mean_d (pred - target)^2, dpred = scale weight[b] 2 (pred - target) / D */
__global__ void mse_forward_backward_kernel(float *loss, float *dpred, const float *pred, const float *target,
                                            const float *weight, int D, float scale) {
  __shared__ double sh[CUDA_THREADS];
  long o = (long)blockIdx.x * D;
  float k = scale * (weight ? weight[blockIdx.x] : 1.0f) * 2.0f / (float)D;
  double s = 0;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float diff = pred[o + d] - target[o + d];
    s += (double)diff * diff;
    if (dpred) dpred[o + d] = k * diff;
  }
  s = block_sum(s, sh);
  if (loss && threadIdx.x == 0) loss[blockIdx.x] = (float)(s / D);
}

void cuda_mse_forward_backward(float *loss, float *dpred, const float *pred, const float *target, const float *weight,
                               int B, int D, float scale) {
  if (B <= 0 || D <= 0) return;
  mse_forward_backward_kernel<<<B, CUDA_THREADS, 0, cuda_stream>>>(loss, dpred, pred, target, weight, D, scale);
  launchCheck(mse_forward_backward_kernel);
}

/* one block per sample: the DMD / AMD generator gradient of core/ops.h, sums in double */
__global__ void dmd_grad_kernel(float *dx, float *stats, const float *x, const float *d_c, const float *d_u,
                                const float *d_f, const float *alpha, const float *beta, float w, float scale,
                                int beta_fake, int D) {
  __shared__ double sh[CUDA_THREADS];
  const int b = blockIdx.x;
  const long o = (long)b * D;
  double n = 0, rr = 0, ff = 0, cu = 0, rf = 0;
  for (int j = threadIdx.x; j < D; j += blockDim.x) {
    float cfg = d_u[o + j] + w * (d_c[o + j] - d_u[o + j]);
    n += fabsf(x[o + j] - cfg);
    double r = d_c[o + j] - x[o + j], f = d_f[o + j] - x[o + j], g = d_c[o + j] - d_u[o + j];
    rr += r * r, ff += f * f, cu += g * g, rf += r * f;
  }
  n = block_sum(n, sh), rr = block_sum(rr, sh), ff = block_sum(ff, sh);
  cu = block_sum(cu, sh), rf = block_sum(rf, sh);
  n = n / D + 1e-12;
  double loss = 0;
  for (int j = threadIdx.x; j < D; j += blockDim.x) {
    float h;
    if (beta_fake) {
      float cfg = d_u[o + j] + w * (d_c[o + j] - d_u[o + j]);
      h = alpha[b] * (cfg - x[o + j]) - beta[b] * (d_f[o + j] - x[o + j]);
    } else {
      h = beta[b] * (d_c[o + j] - d_f[o + j]) + alpha[b] * (w - 1.0f) * (d_c[o + j] - d_u[o + j]);
    }
    float g = h / (float)n;
    loss += 0.5 * (double)g * g;
    dx[o + j] = -scale * g;
  }
  loss = block_sum(loss, sh);
  if (threadIdx.x == 0) {
    float *s = stats + (long)b * 6;
    s[0] = (float)loss, s[1] = (float)n, s[2] = (float)sqrt(rr), s[3] = (float)sqrt(ff), s[4] = (float)sqrt(cu);
    s[5] = (float)(rf / (sqrt(rr * ff) + 1e-30));
  }
}

void cuda_dmd_grad(float *dx, float *stats, const float *x, const float *d_c, const float *d_u, const float *d_f,
                   const float *alpha, const float *beta, float w, float scale, int beta_fake, int B, int D) {
  if (B <= 0 || D <= 0) return;
  dmd_grad_kernel<<<B, CUDA_THREADS, 0, cuda_stream>>>(dx, stats, x, d_c, d_u, d_f, alpha, beta, w, scale, beta_fake, D);
  launchCheck(dmd_grad_kernel);
}
