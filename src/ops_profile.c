/* ops_profile.c: the profiling op table. Each wrapper times one call of the real op with
 * omp_get_wtime, between two synchronize calls: on a GPU each op is timed from the end of the one
 * before to its own completion (the launch overlap is lost; that is the price of per-kernel times),
 * on the CPU synchronize does nothing. Ops are called from the host thread only (their OpenMP is
 * inside them), so the counters need no locking. */
#include "ops_profile.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct {
  const char *name;
  int listed; /* in stats[] */
  long calls;
  double seconds, flops;
} OpStat;

#define MAX_OPS 64
static OpStat *stats[MAX_OPS]; /* each op's counters, in order of first call */
static int num_stats;
static const amd_ops *real; /* the table being wrapped; NULL while disabled */

static void record(OpStat *s, double seconds, double flops) {
  if (!s->listed && num_stats < MAX_OPS) stats[num_stats++] = s, s->listed = 1;
  s->calls++;
  s->seconds += seconds;
  s->flops += flops;
}

/* Runs `call` (a statement using `real`) and adds its time to op `op`'s counters. */
#define TIMED(op, flops, call)                      \
  do {                                              \
    static OpStat st_ = {#op, 0, 0, 0, 0};          \
    real->synchronize();                            \
    double t0_ = omp_get_wtime();                   \
    call;                                           \
    real->synchronize();                            \
    record(&st_, omp_get_wtime() - t0_, (flops));   \
  } while (0)

static void *p_alloc(size_t bytes) {
  void *p;
  TIMED(alloc, 0, p = real->alloc(bytes));
  return p;
}
static void p_free(void *p) { TIMED(free, 0, real->free(p)); }
static void p_to_device(void *dst, const void *src, size_t bytes) { TIMED(to_device, 0, real->to_device(dst, src, bytes)); }
static void p_to_host(void *dst, const void *src, size_t bytes) { TIMED(to_host, 0, real->to_host(dst, src, bytes)); }
static void p_copy(void *dst, const void *src, size_t bytes) { TIMED(copy, 0, real->copy(dst, src, bytes)); }
static void p_fill(float *x, float value, long n) { TIMED(fill, 0, real->fill(x, value, n)); }
static void p_synchronize(void) { TIMED(synchronize, 0, real->synchronize()); }

static void p_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                   float beta, float *C) {
  TIMED(gemm, 2.0 * M * N * K, real->gemm(transA, transB, M, N, K, alpha, A, B, beta, C));
}
static void p_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, long strideA,
                           const float *B, long strideB, float beta, float *C, long strideC, int batch) {
  TIMED(gemm_batched, 2.0 * M * N * K * batch,
        real->gemm_batched(transA, transB, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC, batch));
}
static void p_bias_add(float *y, const float *b, int B, int N) { TIMED(bias_add, 0, real->bias_add(y, b, B, N)); }
static void p_bias_backward(float *db, const float *dy, int B, int N) {
  TIMED(bias_backward, 0, real->bias_backward(db, dy, B, N));
}
static void p_silu_forward(float *y, const float *x, long n) { TIMED(silu_forward, 0, real->silu_forward(y, x, n)); }
static void p_silu_backward(float *dx, const float *dy, const float *x, long n) {
  TIMED(silu_backward, 0, real->silu_backward(dx, dy, x, n));
}
static void p_layernorm_forward(float *out, float *mean, float *rstd, const float *x, int N, int C) {
  TIMED(layernorm_forward, 0, real->layernorm_forward(out, mean, rstd, x, N, C));
}
static void p_layernorm_backward(float *dx, const float *dout, const float *x, const float *mean,
                                 const float *rstd, int N, int C) {
  TIMED(layernorm_backward, 0, real->layernorm_backward(dx, dout, x, mean, rstd, N, C));
}
static void p_gelu_forward(float *y, float *th, const float *x, long n) {
  TIMED(gelu_forward, 0, real->gelu_forward(y, th, x, n));
}
static void p_gelu_backward(float *dx, const float *dy, const float *x, const float *th, long n) {
  TIMED(gelu_backward, 0, real->gelu_backward(dx, dy, x, th, n));
}
static void p_modulate_forward(float *y, const float *x, const float *shift, const float *scale, int ld, int B,
                               int T, int C) {
  TIMED(modulate_forward, 0, real->modulate_forward(y, x, shift, scale, ld, B, T, C));
}
static void p_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                                const float *scale, int ld, int B, int T, int C) {
  TIMED(modulate_backward, 0, real->modulate_backward(dx, dshift, dscale, dy, x, scale, ld, B, T, C));
}
static void p_gated_residual_forward(float *x, const float *gate, const float *y, int ld, int B, int T, int C) {
  TIMED(gated_residual_forward, 0, real->gated_residual_forward(x, gate, y, ld, B, T, C));
}
static void p_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y, const float *gate,
                                      int ld, int B, int T, int C) {
  TIMED(gated_residual_backward, 0, real->gated_residual_backward(dy, dgate, dx, y, gate, ld, B, T, C));
}
static void p_softmax_forward(float *y, const float *x, int N, int C) {
  TIMED(softmax_forward, 0, real->softmax_forward(y, x, N, C));
}
static void p_softmax_backward(float *dx, const float *dy, const float *y, int N, int C) {
  TIMED(softmax_backward, 0, real->softmax_backward(dx, dy, y, N, C));
}
static void p_patchify(float *tokens, const float *img, int B, int C, int H, int W, int p) {
  TIMED(patchify, 0, real->patchify(tokens, img, B, C, H, W, p));
}
static void p_unpatchify(float *img, const float *tokens, int B, int C, int H, int W, int p) {
  TIMED(unpatchify, 0, real->unpatchify(img, tokens, B, C, H, W, p));
}
static void p_heads_split(float *q, float *k, float *v, const float *qkv, int B, int T, int NH, int hs) {
  TIMED(heads_split, 0, real->heads_split(q, k, v, qkv, B, T, NH, hs));
}
static void p_heads_split_backward(float *dqkv, const float *dq, const float *dk, const float *dv, int B, int T,
                                   int NH, int hs) {
  TIMED(heads_split_backward, 0, real->heads_split_backward(dqkv, dq, dk, dv, B, T, NH, hs));
}
static void p_heads_merge(float *out, const float *y, int B, int T, int NH, int hs) {
  TIMED(heads_merge, 0, real->heads_merge(out, y, B, T, NH, hs));
}
static void p_heads_merge_backward(float *dy, const float *dout, int B, int T, int NH, int hs) {
  TIMED(heads_merge_backward, 0, real->heads_merge_backward(dy, dout, B, T, NH, hs));
}
static void p_add(float *y, const float *a, const float *b, long n) { TIMED(add, 0, real->add(y, a, b, n)); }
static void p_axpy(float *y, float a, const float *x, long n) { TIMED(axpy, 0, real->axpy(y, a, x, n)); }
static void p_scale(float *x, float a, long n) { TIMED(scale, 0, real->scale(x, a, n)); }
static void p_timestep_embedding(float *out, const float *t, int B, int dim, float scale, float max_period) {
  TIMED(timestep_embedding, 0, real->timestep_embedding(out, t, B, dim, scale, max_period));
}
static void p_embedding_forward(float *out, const float *table, const int *ids, int B, int dim) {
  TIMED(embedding_forward, 0, real->embedding_forward(out, table, ids, B, dim));
}
static void p_embedding_backward(float *dtable, const float *dout, const int *ids, int B, int dim) {
  TIMED(embedding_backward, 0, real->embedding_backward(dtable, dout, ids, B, dim));
}
static double p_sum_squares(const float *x, long n) {
  double s;
  TIMED(sum_squares, 0, s = real->sum_squares(x, n));
  return s;
}
static void p_sum_squares_async(double *out, const float *x, long n) {
  TIMED(sum_squares_async, 0, real->sum_squares_async(out, x, n));
}
static int p_all_finite(const float *x, long n) {
  int ok;
  TIMED(all_finite, 0, ok = real->all_finite(x, n));
  return ok;
}
static void p_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1, float beta2,
                    float eps, float wd, float grad_scale, long t) {
  TIMED(adamw, 0, real->adamw(p, g, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, t));
}
static void p_randn(float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0) {
  TIMED(randn, 0, real->randn(out, B, D, seed, stream, step, index0));
}
static void p_flow_interpolate(float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D) {
  TIMED(flow_interpolate, 0, real->flow_interpolate(xt, v, x0, e, t, B, D));
}
static void p_mse_forward_backward(float *loss, float *dpred, const float *pred, const float *target,
                                   const float *weight, int B, int D, float scale) {
  TIMED(mse_forward_backward, 0, real->mse_forward_backward(loss, dpred, pred, target, weight, B, D, scale));
}
static void p_flow_denoise(float *d, const float *xt, const float *v, const float *t, int B, int D) {
  TIMED(flow_denoise, 0, real->flow_denoise(d, xt, v, t, B, D));
}
static void p_softplus_forward_backward(float *loss, float *dz, const float *z, float sign, float scale, int B) {
  TIMED(softplus_forward_backward, 0, real->softplus_forward_backward(loss, dz, z, sign, scale, B));
}
static void p_dmd_grad(float *dx, float *stats_, const float *x, const float *d_c, const float *d_u,
                       const float *d_f, const float *alpha, const float *beta, float w, float scale, int B, int D) {
  TIMED(dmd_grad, 0, real->dmd_grad(dx, stats_, x, d_c, d_u, d_f, alpha, beta, w, scale, B, D));
}
static void p_euler_update(float *x, const float *v, const float *h, int B, int D) {
  TIMED(euler_update, 0, real->euler_update(x, v, h, B, D));
}

static amd_ops profiled = { /* host_memory is the wrapped table's, set when enabled */
    .name = "profiled",
    .alloc = p_alloc,
    .free = p_free,
    .to_device = p_to_device,
    .to_host = p_to_host,
    .copy = p_copy,
    .fill = p_fill,
    .synchronize = p_synchronize,
    .gemm = p_gemm,
    .gemm_batched = p_gemm_batched,
    .bias_add = p_bias_add,
    .bias_backward = p_bias_backward,
    .silu_forward = p_silu_forward,
    .silu_backward = p_silu_backward,
    .layernorm_forward = p_layernorm_forward,
    .layernorm_backward = p_layernorm_backward,
    .gelu_forward = p_gelu_forward,
    .gelu_backward = p_gelu_backward,
    .modulate_forward = p_modulate_forward,
    .modulate_backward = p_modulate_backward,
    .gated_residual_forward = p_gated_residual_forward,
    .gated_residual_backward = p_gated_residual_backward,
    .softmax_forward = p_softmax_forward,
    .softmax_backward = p_softmax_backward,
    .patchify = p_patchify,
    .unpatchify = p_unpatchify,
    .heads_split = p_heads_split,
    .heads_split_backward = p_heads_split_backward,
    .heads_merge = p_heads_merge,
    .heads_merge_backward = p_heads_merge_backward,
    .add = p_add,
    .axpy = p_axpy,
    .scale = p_scale,
    .timestep_embedding = p_timestep_embedding,
    .embedding_forward = p_embedding_forward,
    .embedding_backward = p_embedding_backward,
    .sum_squares = p_sum_squares,
    .sum_squares_async = p_sum_squares_async,
    .all_finite = p_all_finite,
    .adamw = p_adamw,
    .randn = p_randn,
    .flow_interpolate = p_flow_interpolate,
    .mse_forward_backward = p_mse_forward_backward,
    .flow_denoise = p_flow_denoise,
    .softplus_forward_backward = p_softplus_forward_backward,
    .dmd_grad = p_dmd_grad,
    .euler_update = p_euler_update,
};

int ops_profile_enable(void) {
  if (real) return 0;
  real = ops;
  profiled.host_memory = real->host_memory;
  ops = &profiled;
  return 1;
}

void ops_profile_disable(void) {
  if (!real) return;
  ops = real;
  real = NULL;
}

void ops_profile_reset(void) {
  for (int i = 0; i < num_stats; i++) stats[i]->calls = 0, stats[i]->seconds = 0, stats[i]->flops = 0;
}

double ops_profile_gemm_flops(void) {
  double f = 0;
  for (int i = 0; i < num_stats; i++) f += stats[i]->flops;
  return f;
}

static int by_time_desc(const void *a, const void *b) {
  double x = (*(OpStat *const *)a)->seconds, y = (*(OpStat *const *)b)->seconds;
  return (x < y) - (x > y);
}

void ops_profile_report(FILE *f) {
  OpStat *sorted[MAX_OPS];
  double total = 0, flops = 0, gemm_s = 0;
  int n = 0;
  for (int i = 0; i < num_stats; i++) {
    if (stats[i]->calls == 0) continue;
    sorted[n++] = stats[i];
    total += stats[i]->seconds;
    if (stats[i]->flops > 0) flops += stats[i]->flops, gemm_s += stats[i]->seconds;
  }
  qsort(sorted, (size_t)n, sizeof sorted[0], by_time_desc);
  fprintf(f, "op profile (%s backend): %.3f s in ops\n", real ? real->name : ops->name, total);
  fprintf(f, "  %-24s %9s %10s %7s %9s\n", "op", "calls", "seconds", "%", "GFLOP/s");
  for (int i = 0; i < n; i++) {
    const OpStat *s = sorted[i];
    fprintf(f, "  %-24s %9ld %10.4f %6.1f%%", s->name, s->calls, s->seconds, total > 0 ? 100 * s->seconds / total : 0);
    if (s->flops > 0 && s->seconds > 0) fprintf(f, " %9.1f", s->flops / s->seconds * 1e-9);
    fprintf(f, "\n");
  }
  if (gemm_s > 0)
    fprintf(f, "  GEMMs: %.3f GFLOP in %.3f s (%.1f GFLOP/s), %.1f%% of op time\n", flops * 1e-9, gemm_s,
            flops / gemm_s * 1e-9, total > 0 ? 100 * gemm_s / total : 0);
}
