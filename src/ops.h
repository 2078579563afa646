/* ops.h: the backend op interface. Models, losses and optimizers call only these, so the same model
 * file runs on the CPU backend (src/ops_cpu.c: OpenBLAS + OpenMP) and, later, the CUDA backend
 * (cuda/). Pointers passed to ops are backend memory from ops->alloc; ids and per-sample vectors
 * too. Conventions: row-major; "backward" ops ADD into their outputs (gradients accumulate), so
 * callers zero gradient buffers once per step. Shapes are given in comments as (rows, cols).
 * Not here: anything about which model or method is running. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct amd_ops {
  const char *name;
  /* memory */
  void *(*alloc)(size_t bytes); /* zero-filled; fatal when it cannot */
  void (*free)(void *p);
  void (*to_device)(void *dst, const void *src, size_t bytes);
  void (*to_host)(void *dst, const void *src, size_t bytes);
  void (*copy)(void *dst, const void *src, size_t bytes);
  void (*fill)(float *x, float value, long n);

  /* C (M, N) = alpha op(A) op(B) + beta C; op(A) is (M, K), op(B) is (K, N); trans* = 1 transposes */
  void (*gemm)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
               const float *B, float beta, float *C);
  void (*bias_add)(float *y /* (B, N) */, const float *b /* (N) */, int B, int N);
  void (*bias_backward)(float *db /* (N) */, const float *dy /* (B, N) */, int B, int N);
  void (*silu_forward)(float *y, const float *x, long n);
  void (*silu_backward)(float *dx, const float *dy, const float *x, long n); /* dx += dy silu'(x) */

  /* elementwise */
  void (*add)(float *y, const float *a, const float *b, long n); /* y = a + b */
  void (*axpy)(float *y, float a, const float *x, long n);       /* y += a x */
  void (*scale)(float *x, float a, long n);                      /* x *= a */

  /* conditioning: sinusoidal timestep features, out (B, dim) = [cos(t f_k), sin(t f_k)],
   * f_k = scale * max_period^(-k / (dim/2)); and class-embedding lookup, out (B, dim) = table[ids] */
  void (*timestep_embedding)(float *out, const float *t /* (B) */, int B, int dim, float scale,
                             float max_period);
  void (*embedding_forward)(float *out, const float *table, const int *ids, int B, int dim);
  void (*embedding_backward)(float *dtable, const float *dout, const int *ids, int B, int dim);

  /* reductions: computed in double, returned to the host */
  double (*sum_squares)(const float *x, long n);
  int (*all_finite)(const float *x, long n);

  /* AdamW (Loshchilov and Hutter) on one flat range; step t >= 1 for bias correction; the gradient
   * is multiplied by grad_scale first (global-norm clipping); decoupled weight decay wd. */
  void (*adamw)(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                float beta2, float eps, float wd, float grad_scale, long t);

  /* Philox draws: row b of out (B, D) is keyed by index = index0 + b (see philox.h) */
  void (*randn)(float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0);

  /* rectified flow: xt = (1 - t) x0 + t e, target v = e - x0; per-sample t (B) */
  void (*flow_interpolate)(float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D);
  /* per-sample mean squared error loss[b] = mean_d (pred - target)^2 and its gradient
   * dpred = scale * weight[b] * 2 (pred - target) / D (weight NULL means 1); loss may be NULL */
  void (*mse_forward_backward)(float *loss /* (B) */, float *dpred, const float *pred,
                               const float *target, const float *weight, int B, int D, float scale);
  /* denoised (x0) prediction of a velocity network: d = xt - t v, per-sample t (B) */
  void (*flow_denoise)(float *d, const float *xt, const float *v, const float *t, int B, int D);
  /* The DMD / AMD generator gradient (DESIGN section 4), per sample i:
   *   d_cfg = d_u + w (d_c - d_u),  H = beta_i (d_c - d_f) + alpha_i (w - 1)(d_c - d_u)
   *   n = mean_d |x - d_cfg|,  loss_i = 0.5 || H / n ||^2,  dx = -scale H / n
   * stats (B, 6) receives per sample: loss_i, n, ||d_c - x||, ||d_f - x||, ||d_c - d_u||, and the
   * cosine between (d_c - x) and (d_f - x). alpha, beta (B). */
  void (*dmd_grad)(float *dx, float *stats, const float *x, const float *d_c, const float *d_u,
                   const float *d_f, const float *alpha, const float *beta, float w, float scale, int B, int D);
  /* x += h (B) * v, per-sample step size: one Euler update of a sampler */
  void (*euler_update)(float *x, const float *v, const float *h /* (B) */, int B, int D);
} amd_ops;

/* The backend in use; set once by ops_select before any model is built. */
extern const amd_ops *ops;
extern const amd_ops ops_cpu;

/* device: "cpu", "cuda" or "auto" (CUDA when built and a GPU is present, else the CPU). */
void ops_select(const char *device);
/* ops_select plus the OpenMP/OpenBLAS thread count (threads <= 0: this node's cores divided among
 * its ranks); returns the thread count used. */
int backend_init(const char *device, int threads);
