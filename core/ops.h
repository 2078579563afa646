/* ops.h: the backend op interface. Models, losses and optimizers call only these, so the same model
 * file runs on the CPU backend (src/ops_cpu.c: OpenBLAS + OpenMP) and the CUDA backend (cuda/:
 * cuBLAS + kernels, `make CUDA=1`). Pointers passed to ops are backend memory from ops->alloc; ids
 * and per-sample vectors too: host code reads or writes them only through to_host / to_device.
 * Ops may run asynchronously (CUDA: in order on one stream); to_host, to_device and the reductions
 * return only when their data is there. Conventions: row-major; "backward" ops ADD into their
 * outputs (gradients accumulate), so callers zero gradient buffers once per step, except the
 * backward ops marked "overwrite": the transformer's per-token ones (gelu, modulate, gated residual,
 * softmax, head split and merge), whose outputs each backward writes exactly once, so that a
 * zeroing pass (and on a GPU a launch) before each is saved. Shapes are given in comments as
 * (rows, cols).
 * Not here: anything about which model or method is running. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct amd_ops {
  const char *name;
  int host_memory; /* 1: backend memory is host memory (the CPU backend), so MPI may use it directly */
  /* memory */
  void *(*alloc)(size_t bytes); /* zero-filled; fatal when it cannot */
  void (*free)(void *p);
  void (*to_device)(void *dst, const void *src, size_t bytes);
  void (*to_host)(void *dst, const void *src, size_t bytes);
  void (*copy)(void *dst, const void *src, size_t bytes);
  void (*fill)(float *x, float value, long n);
  /* waits until every op issued so far has finished (CPU: nothing to wait for); needed before a
   * library outside the backend (a CUDA-aware MPI) reads backend memory directly */
  void (*synchronize)(void);

  /* C (M, N) = alpha op(A) op(B) + beta C; op(A) is (M, K), op(B) is (K, N); trans* = 1 transposes */
  void (*gemm)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
               const float *B, float beta, float *C);
  /* strided-batched GEMM: for i < batch, C_i = alpha op(A_i) op(B_i) + beta C_i with
   * X_i = X + i * strideX (strides in floats; 0 reuses one matrix), shapes as in gemm */
  void (*gemm_batched)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                       long strideA, const float *B, long strideB, float beta, float *C, long strideC,
                       int batch);
  void (*bias_add)(float *y /* (B, N) */, const float *b /* (N) */, int B, int N);
  void (*bias_backward)(float *db /* (N) */, const float *dy /* (B, N) */, int B, int N);
  void (*silu_forward)(float *y, const float *x, long n);
  void (*silu_backward)(float *dx, const float *dy, const float *x, long n); /* dx += dy silu'(x) */

  /* transformer layers (the `dit` model). Per-sample conditioning rows (shift, scale, gate) are
   * (B, C) views with row stride ld, so the chunks of one adaLN output (B, 6C) serve directly. */
  /* out (N, C) = (x - mean) * rstd per row, no affine; caches mean, rstd (N); eps 1e-6 as in DiT */
  void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *x, int N, int C);
  void (*layernorm_backward)(float *dx, const float *dout, const float *x, const float *mean,
                             const float *rstd, int N, int C);
  /* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
   * The forward also stores th = tanh(sqrt(2/pi) (x + 0.044715 x^3)) when th is not NULL, so the
   * backward need not evaluate tanh again (th NULL there: computed; the same values either way). */
  void (*gelu_forward)(float *y, float *th, const float *x, long n);
  /* overwrite: dx = dy gelu'(x) */
  void (*gelu_backward)(float *dx, const float *dy, const float *x, const float *th, long n);
  /* adaLN modulate: y (B, T, C) = x (1 + scale[b]) + shift[b]; backward (overwrite):
   * dx = dy (1 + scale[b]), dshift[b] = sum_t dy, dscale[b] = sum_t dy x */
  void (*modulate_forward)(float *y, const float *x, const float *shift, const float *scale, int ld,
                           int B, int T, int C);
  void (*modulate_backward)(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                            const float *scale, int ld, int B, int T, int C);
  /* gated residual: x (B, T, C) += gate[b] y; backward (overwrite): dy = gate dx, dgate[b] =
   * sum_t dx y (dx itself passes through to the residual stream unchanged) */
  void (*gated_residual_forward)(float *x, const float *gate, const float *y, int ld, int B, int T, int C);
  void (*gated_residual_backward)(float *dy, float *dgate, const float *dx, const float *y,
                                  const float *gate, int ld, int B, int T, int C);
  /* softmax over each row of (N, C); y may alias x. Backward (overwrite): dx = y (dy - sum_c dy y) */
  void (*softmax_forward)(float *y, const float *x, int N, int C);
  void (*softmax_backward)(float *dx, const float *dy, const float *y, int N, int C);
  /* image (B, C, H, W) <-> tokens (B, T, p*p*C), T = (H/p)(W/p) in row-major patch order, a token's
   * features ordered (py, px, c) as in DiT's unpatchify. Both overwrite; each is the other's adjoint. */
  void (*patchify)(float *tokens, const float *img, int B, int C, int H, int W, int p);
  void (*unpatchify)(float *img, const float *tokens, int B, int C, int H, int W, int p);
  /* attention heads: qkv (B, T, 3, NH, hs) -> q, k, v (B, NH, T, hs) each; its backward writes
   * dq, dk, dv into dqkv. merge: y (B, NH, T, hs) -> out (B, T, NH, hs); its backward writes dout
   * into dy (B, NH, T, hs). All four overwrite. */
  void (*heads_split)(float *q, float *k, float *v, const float *qkv, int B, int T, int NH, int hs);
  void (*heads_split_backward)(float *dqkv, const float *dq, const float *dk, const float *dv, int B,
                               int T, int NH, int hs);
  void (*heads_merge)(float *out, const float *y, int B, int T, int NH, int hs);
  void (*heads_merge_backward)(float *dy, const float *dout, int B, int T, int NH, int hs);

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
  /* the same sum, bit for bit, left in *out (backend memory, one double) without waiting, for a
   * caller that reads it back together with its other results */
  void (*sum_squares_async)(double *out, const float *x, long n);
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
  /* the logistic (non-saturating GAN) loss of logits z (B): loss[b] = softplus(sign z_b) and its
   * gradient dz[b] = scale sign sigmoid(sign z_b) (overwrite); sign is +1 or -1; loss may be NULL */
  void (*softplus_forward_backward)(float *loss, float *dz, const float *z, float sign, float scale, int B);
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

/* The backend in use; set once at start-up (src/backend.h) before any model is built. */
extern const amd_ops *ops;
