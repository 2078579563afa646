/* ops_cpu.c: the CPU backend: OpenBLAS sgemm for every matmul, OpenMP loops for the rest.
 * Reductions accumulate in double in a fixed order per thread count, so a run is repeatable. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "philox.h"

const amd_ops *ops = &ops_cpu;

static void *cpu_alloc(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) amd_fatal("out of memory allocating %zu bytes", bytes);
  memset(p, 0, rounded ? rounded : 64);
  return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
  if (bytes) memcpy(dst, src, bytes);
}

static void cpu_fill(float *x, float value, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) x[i] = value;
}

static void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                     const float *B, float beta, float *C) {
  int lda = transA ? M : K, ldb = transB ? K : N;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, N);
}

static void cpu_bias_add(float *y, const float *b, int B, int N) {
#pragma omp parallel for schedule(static) if ((long)B * N > 65536)
  for (int i = 0; i < B; i++)
    for (int j = 0; j < N; j++) y[(long)i * N + j] += b[j];
}

static void cpu_bias_backward(float *db, const float *dy, int B, int N) {
#pragma omp parallel for schedule(static) if ((long)B * N > 65536)
  for (int j = 0; j < N; j++) {
    double s = 0;
    for (int i = 0; i < B; i++) s += dy[(long)i * N + j];
    db[j] += (float)s;
  }
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void cpu_silu_forward(float *y, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]);
}

static void cpu_silu_backward(float *dx, const float *dy, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) {
    float s = sigmoidf(x[i]);
    dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

static void cpu_add(float *y, const float *a, const float *b, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void cpu_axpy(float *y, float a, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) y[i] += a * x[i];
}

static void cpu_scale(float *x, float a, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) x[i] *= a;
}

static void cpu_timestep_embedding(float *out, const float *t, int B, int dim, float scale, float max_period) {
  int half = dim / 2;
#pragma omp parallel for schedule(static) if ((long)B * dim > 65536)
  for (int b = 0; b < B; b++) {
    for (int k = 0; k < half; k++) {
      double f = scale * exp(-log((double)max_period) * k / half);
      out[(long)b * dim + k] = (float)cos(t[b] * f);
      out[(long)b * dim + half + k] = (float)sin(t[b] * f);
    }
  }
}

static void cpu_embedding_forward(float *out, const float *table, const int *ids, int B, int dim) {
  for (int b = 0; b < B; b++) memcpy(out + (long)b * dim, table + (long)ids[b] * dim, sizeof(float) * dim);
}

static void cpu_embedding_backward(float *dtable, const float *dout, const int *ids, int B, int dim) {
  /* serial over rows: two rows may share an id */
  for (int b = 0; b < B; b++)
    for (int j = 0; j < dim; j++) dtable[(long)ids[b] * dim + j] += dout[(long)b * dim + j];
}

static double cpu_sum_squares(const float *x, long n) {
  double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
  for (long i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

static int cpu_all_finite(const float *x, long n) {
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > 65536)
  for (long i = 0; i < n; i++) bad |= !isfinite(x[i]);
  return !bad;
}

static void cpu_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                      float beta2, float eps, float wd, float grad_scale, long t) {
  float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) {
    float gi = g[i] * grad_scale;
    m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
    v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    float mhat = m[i] / bc1, vhat = v[i] / bc2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  }
}

static void cpu_randn(float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0) {
#pragma omp parallel for schedule(static) if ((long)B * D > 16384)
  for (int b = 0; b < B; b++) rng_normal(out + (long)b * D, D, seed, stream, step, index0 + (uint32_t)b);
}

static void cpu_flow_interpolate(float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      long i = (long)b * D + d;
      xt[i] = (1.0f - t[b]) * x0[i] + t[b] * e[i];
      v[i] = e[i] - x0[i];
    }
}

static void cpu_mse_forward_backward(float *loss, float *dpred, const float *pred, const float *target,
                                     const float *weight, int B, int D, float scale) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++) {
    double s = 0;
    float k = scale * (weight ? weight[b] : 1.0f) * 2.0f / (float)D;
    for (int d = 0; d < D; d++) {
      long i = (long)b * D + d;
      float diff = pred[i] - target[i];
      s += (double)diff * diff;
      if (dpred) dpred[i] = k * diff;
    }
    if (loss) loss[b] = (float)(s / D);
  }
}

static void cpu_flow_denoise(float *d, const float *xt, const float *v, const float *t, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) d[(long)b * D + j] = xt[(long)b * D + j] - t[b] * v[(long)b * D + j];
}

static void cpu_dmd_grad(float *dx, float *stats, const float *x, const float *d_c, const float *d_u,
                         const float *d_f, const float *alpha, const float *beta, float w, float scale, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 16384)
  for (int b = 0; b < B; b++) {
    const long o = (long)b * D;
    double n = 0, rr = 0, ff = 0, cu = 0, rf = 0;
    for (int j = 0; j < D; j++) {
      float cfg = d_u[o + j] + w * (d_c[o + j] - d_u[o + j]);
      n += fabsf(x[o + j] - cfg);
      double r = d_c[o + j] - x[o + j], f = d_f[o + j] - x[o + j], g = d_c[o + j] - d_u[o + j];
      rr += r * r, ff += f * f, cu += g * g, rf += r * f;
    }
    n = n / D + 1e-12;
    double loss = 0;
    for (int j = 0; j < D; j++) {
      float h = beta[b] * (d_c[o + j] - d_f[o + j]) + alpha[b] * (w - 1.0f) * (d_c[o + j] - d_u[o + j]);
      float g = h / (float)n;
      loss += 0.5 * (double)g * g;
      dx[o + j] = -scale * g;
    }
    float *s = stats + (long)b * 6;
    s[0] = (float)loss, s[1] = (float)n, s[2] = (float)sqrt(rr), s[3] = (float)sqrt(ff), s[4] = (float)sqrt(cu);
    s[5] = (float)(rf / (sqrt(rr * ff) + 1e-30));
  }
}

static void cpu_euler_update(float *x, const float *v, const float *h, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) x[(long)b * D + d] += h[b] * v[(long)b * D + d];
}

const amd_ops ops_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .fill = cpu_fill,
    .gemm = cpu_gemm,
    .bias_add = cpu_bias_add,
    .bias_backward = cpu_bias_backward,
    .silu_forward = cpu_silu_forward,
    .silu_backward = cpu_silu_backward,
    .add = cpu_add,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .timestep_embedding = cpu_timestep_embedding,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .sum_squares = cpu_sum_squares,
    .all_finite = cpu_all_finite,
    .adamw = cpu_adamw,
    .randn = cpu_randn,
    .flow_interpolate = cpu_flow_interpolate,
    .mse_forward_backward = cpu_mse_forward_backward,
    .flow_denoise = cpu_flow_denoise,
    .dmd_grad = cpu_dmd_grad,
    .euler_update = cpu_euler_update,
};
