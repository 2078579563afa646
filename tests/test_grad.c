/* test_grad.c: finite-difference gradient checks of every layer and op that has a backward, and of
 * the whole `mlp` model, on the CPU backend; plus value checks of the ops that only run forward
 * (timestep features, flow interpolation) and of AdamW, its schedule and clipping, against
 * double-precision references written here from the formulas in the headers. Also the start-up
 * check of the op tables (ops_missing, ops_check): every op of core/ops_list.h, set NULL in a copy
 * of the CPU table, is the one it names; the real CPU and profiling tables pass.
 * Each gradient is checked against a central difference of a scalar loss L = sum(out * R) for a
 * fixed random R (so dout = R), with L summed in double. On the CPU backend, backend memory is host
 * memory, so the checks perturb parameters and inputs in place.
 * Not here: CUDA-vs-CPU conformance (which runs per op where a GPU is present) or training runs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "layers.h"
#include "model.h"
#include "ops.h"
#include "ops_profile.h"
#include "optim.h"
#include "philox.h"
#include "test.h"

#define TEST_SEED 20240611u
#include "gradcheck.h"


/* Backward adds into its gradients: a second identical call must leave twice the first's. */
/* ---- linear ---------------------------------------------------------------------------------- */

typedef struct {
  float *out, *inp, *W, *b, *R; /* (B, O), (B, I), (O, I), (O), (B, O) */
  int B, I, O;
} LinearCase;

static double linear_loss(void *ctx) {
  LinearCase *c = ctx;
  linear_forward(c->out, c->inp, c->W, c->b, c->B, c->I, c->O);
  return dot(c->out, c->R, (long)c->B * c->O);
}

static void test_linear(void) {
  enum { B = 3, I = 5, O = 4 };
  LinearCase c = {alloc_f(B * O), alloc_f(B * I), alloc_f(O * I), alloc_f(O), alloc_f(B * O), B, I, O};
  fill_uniform(c.inp, B * I, -1, 1);
  fill_uniform(c.W, O * I, -1, 1);
  fill_uniform(c.b, O, -1, 1);
  fill_uniform(c.R, B * O, -1, 1);

  linear_loss(&c);
  for (int r = 0; r < B; r++)
    for (int o = 0; o < O; o++) {
      double ref = c.b[o];
      for (int i = 0; i < I; i++) ref += (double)c.inp[r * I + i] * c.W[o * I + i];
      EXPECT_CLOSE(c.out[r * O + o], ref, 1e-6, 1e-6, "out = inp W^T + b");
    }

  float *dinp = alloc_f(B * I), *dW = alloc_f(O * I), *db = alloc_f(O);
  linear_backward(dinp, dW, db, c.R, c.inp, c.W, B, I, O);
  check_grad("d/d inp", c.inp, dinp, B * I, linear_loss, &c);
  check_grad("d/dW", c.W, dW, O * I, linear_loss, &c);
  check_grad("d/db", c.b, db, O, linear_loss, &c);

  float *dinp1 = host_copy(dinp, B * I), *dW1 = host_copy(dW, O * I), *db1 = host_copy(db, O);
  linear_backward(dinp, dW, db, c.R, c.inp, c.W, B, I, O);
  expect_doubled("d/d inp", dinp, dinp1, B * I);
  expect_doubled("d/dW", dW, dW1, O * I);
  expect_doubled("d/db", db, db1, O);

  /* NULL bias: no bias added; NULL gradients: skipped, the others unchanged */
  linear_loss(&c); /* the finite differences left out at a perturbed point */
  float *with_bias = host_copy(c.out, B * O);
  linear_forward(c.out, c.inp, c.W, NULL, B, I, O);
  for (int r = 0; r < B; r++)
    for (int o = 0; o < O; o++)
      EXPECT_CLOSE(c.out[r * O + o], with_bias[r * O + o] - c.b[o], 1e-6, 1e-6, "forward without bias");
  float *dW_only = alloc_f(O * I);
  linear_backward(NULL, dW_only, NULL, c.R, c.inp, c.W, B, I, O);
  for (int i = 0; i < O * I; i++) EXPECT(dW_only[i] == dW1[i], "dW alone [%d]: %g vs %g", i, dW_only[i], dW1[i]);

  free(dinp1), free(dW1), free(db1), free(with_bias);
  float *bufs[] = {c.out, c.inp, c.W, c.b, c.R, dinp, dW, db, dW_only};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
}

/* ---- SiLU, bias, embedding ------------------------------------------------------------------- */

typedef struct {
  float *y, *x, *R; /* (n) each */
  long n;
} SiluCase;

static double silu_loss(void *ctx) {
  SiluCase *c = ctx;
  ops->silu_forward(c->y, c->x, c->n);
  return dot(c->y, c->R, c->n);
}

static void test_silu(void) {
  enum { N = 9 };
  SiluCase c = {alloc_f(N), alloc_f(N), alloc_f(N), N};
  fill_uniform(c.x, N, -5, 5);
  c.x[0] = 0.0f;
  fill_uniform(c.R, N, -1, 1);
  silu_loss(&c);
  for (int i = 0; i < N; i++) EXPECT_CLOSE(c.y[i], c.x[i] / (1.0 + exp(-(double)c.x[i])), 1e-6, 1e-5, "silu(x)");

  float *dx = alloc_f(N);
  ops->silu_backward(dx, c.R, c.x, N);
  check_grad("d/dx silu", c.x, dx, N, silu_loss, &c);
  float *dx1 = host_copy(dx, N);
  ops->silu_backward(dx, c.R, c.x, N);
  expect_doubled("d/dx silu", dx, dx1, N);

  free(dx1);
  ops->free(c.y), ops->free(c.x), ops->free(c.R), ops->free(dx);
}

typedef struct {
  float *y, *y0, *b, *R; /* (B, N), (B, N), (N), (B, N) */
  int B, N;
} BiasCase;

static double bias_loss(void *ctx) {
  BiasCase *c = ctx;
  ops->copy(c->y, c->y0, sizeof(float) * (size_t)c->B * c->N);
  ops->bias_add(c->y, c->b, c->B, c->N);
  return dot(c->y, c->R, (long)c->B * c->N);
}

static void test_bias(void) {
  enum { B = 3, N = 4 };
  BiasCase c = {alloc_f(B * N), alloc_f(B * N), alloc_f(N), alloc_f(B * N), B, N};
  fill_uniform(c.y0, B * N, -1, 1);
  fill_uniform(c.b, N, -1, 1);
  fill_uniform(c.R, B * N, -1, 1);
  bias_loss(&c);
  for (int r = 0; r < B; r++)
    for (int j = 0; j < N; j++)
      EXPECT(c.y[r * N + j] == c.y0[r * N + j] + c.b[j], "y[%d, %d] = %g, want %g", r, j, c.y[r * N + j],
             c.y0[r * N + j] + c.b[j]);

  float *db = alloc_f(N);
  ops->bias_backward(db, c.R, B, N);
  check_grad("d/db", c.b, db, N, bias_loss, &c);
  float *db1 = host_copy(db, N);
  ops->bias_backward(db, c.R, B, N);
  expect_doubled("d/db", db, db1, N);

  free(db1);
  ops->free(c.y), ops->free(c.y0), ops->free(c.b), ops->free(c.R), ops->free(db);
}

typedef struct {
  float *out, *table, *R; /* (B, dim), (rows, dim), (B, dim) */
  int *ids;               /* (B) */
  int B, dim;
} EmbeddingCase;

static double embedding_loss(void *ctx) {
  EmbeddingCase *c = ctx;
  ops->embedding_forward(c->out, c->table, c->ids, c->B, c->dim);
  return dot(c->out, c->R, (long)c->B * c->dim);
}

static void test_embedding(void) {
  enum { ROWS = 4, DIM = 3, B = 5 };
  /* id 2 three times, so its gradient rows must add; row 1 is never looked up */
  static const int id_values[B] = {2, 0, 2, 3, 2};
  EmbeddingCase c = {alloc_f(B * DIM), alloc_f(ROWS * DIM), alloc_f(B * DIM), ops->alloc(sizeof(int) * B), B, DIM};
  ops->to_device(c.ids, id_values, sizeof id_values);
  fill_uniform(c.table, ROWS * DIM, -1, 1);
  fill_uniform(c.R, B * DIM, -1, 1);
  embedding_loss(&c);
  for (int r = 0; r < B; r++)
    for (int j = 0; j < DIM; j++)
      EXPECT(c.out[r * DIM + j] == c.table[id_values[r] * DIM + j], "out[%d, %d] is not table[%d, %d]", r, j,
             id_values[r], j);

  float *dtable = alloc_f(ROWS * DIM);
  ops->embedding_backward(dtable, c.R, c.ids, B, DIM);
  check_grad("d/d table", c.table, dtable, ROWS * DIM, embedding_loss, &c);
  for (int j = 0; j < DIM; j++) EXPECT(dtable[1 * DIM + j] == 0.0f, "unused row 1 has gradient %g", dtable[DIM + j]);
  float *dtable1 = host_copy(dtable, ROWS * DIM);
  ops->embedding_backward(dtable, c.R, c.ids, B, DIM);
  expect_doubled("d/d table", dtable, dtable1, ROWS * DIM);

  free(dtable1);
  ops->free(c.out), ops->free(c.table), ops->free(c.R), ops->free(c.ids), ops->free(dtable);
}

/* ---- losses and conditioning ----------------------------------------------------------------- */

typedef struct {
  float *loss, *dpred, *pred, *target, *weight; /* (B), (B, D), (B, D), (B, D), (B) or NULL */
  int B, D;
  float scale;
} MseCase;

/* The objective whose gradient dpred is: scale * sum_b weight[b] loss[b]. */
static double mse_objective(void *ctx) {
  MseCase *c = ctx;
  ops->mse_forward_backward(c->loss, c->dpred, c->pred, c->target, c->weight, c->B, c->D, c->scale);
  double s = 0;
  for (int b = 0; b < c->B; b++) s += (c->weight ? c->weight[b] : 1.0) * c->loss[b];
  return c->scale * s;
}

static void test_mse(void) {
  enum { B = 3, D = 5 };
  float *weight = alloc_f(B), *dpred = alloc_f(B * D);
  MseCase c = {alloc_f(B), alloc_f(B * D), alloc_f(B * D), alloc_f(B * D), NULL, B, D, 0.37f};
  fill_uniform(c.pred, B * D, -1, 1);
  fill_uniform(c.target, B * D, -1, 1);
  fill_uniform(weight, B, 0.2, 2.0);
  for (int weighted = 0; weighted < 2; weighted++) {
    c.weight = weighted ? weight : NULL;
    c.scale = weighted ? 0.37f : 1.0f;
    /* dpred is set, not added to (ops.h: "its gradient dpred = ..."), so stale values must vanish */
    ops->fill(dpred, 7.0f, B * D);
    ops->mse_forward_backward(c.loss, dpred, c.pred, c.target, c.weight, B, D, c.scale);
    for (int b = 0; b < B; b++) {
      double ref = 0;
      for (int d = 0; d < D; d++) ref += pow((double)c.pred[b * D + d] - c.target[b * D + d], 2);
      EXPECT_CLOSE(c.loss[b], ref / D, 1e-7, 1e-6, weighted ? "weighted loss[b]" : "loss[b]");
    }
    check_grad(weighted ? "d/d pred, weighted and scaled" : "d/d pred", c.pred, dpred, B * D, mse_objective, &c);

    float *dpred_nullloss = alloc_f(B * D);
    ops->mse_forward_backward(NULL, dpred_nullloss, c.pred, c.target, c.weight, B, D, c.scale);
    for (int i = 0; i < B * D; i++) EXPECT(dpred_nullloss[i] == dpred[i], "dpred with loss NULL [%d]", i);
    ops->free(dpred_nullloss);
  }
  ops->free(c.loss), ops->free(c.dpred), ops->free(c.pred), ops->free(c.target), ops->free(weight), ops->free(dpred);
}

typedef struct {
  float *loss, *dz, *z; /* (B) each */
  int B;
  float sign, scale;
} SoftplusCase;

/* The objective whose gradient dz is: scale * sum_b loss[b]. */
static double softplus_objective(void *ctx) {
  SoftplusCase *c = ctx;
  ops->softplus_forward_backward(c->loss, c->dz, c->z, c->sign, c->scale, c->B);
  double s = 0;
  for (int b = 0; b < c->B; b++) s += c->loss[b];
  return c->scale * s;
}

static void test_softplus(void) {
  enum { B = 7 };
  /* both signs of both branches of the stable form, and logits far in each tail */
  static const float z0[B] = {-3.0f, -0.4f, 0.0f, 0.3f, 2.5f, -40.0f, 40.0f};
  float *dz = alloc_f(B), *dz_nullloss = alloc_f(B);
  SoftplusCase c = {alloc_f(B), alloc_f(B), alloc_f(B), B, 1.0f, 1.0f};
  for (int k = 0; k < 4; k++) {
    c.sign = k % 2 ? -1.0f : 1.0f;
    c.scale = k < 2 ? 1.0f : 0.0625f;
    ops->to_device(c.z, z0, sizeof z0);
    ops->fill(dz, 7.0f, B); /* dz is set, not added to */
    ops->softplus_forward_backward(c.loss, dz, c.z, c.sign, c.scale, B);
    for (int b = 0; b < B; b++) {
      double u = (double)c.sign * z0[b];
      EXPECT_CLOSE(c.loss[b], log1p(exp(u)), 1e-30, 1e-6, "softplus loss[b]");
      EXPECT_CLOSE(dz[b], c.scale * c.sign * exp(u) / (1.0 + exp(u)), 1e-30, 1e-6, "softplus dz[b]");
    }
    /* the finite differences on the five moderate logits (the tails are flat to float precision) */
    check_grad(c.sign > 0 ? "softplus d/dz" : "softplus d/dz, sign -1", c.z, dz, 5, softplus_objective, &c);
    ops->softplus_forward_backward(NULL, dz_nullloss, c.z, c.sign, c.scale, B);
    for (int b = 0; b < B; b++) EXPECT(dz_nullloss[b] == dz[b], "softplus dz with loss NULL [%d]", b);
  }
  ops->free(c.loss), ops->free(c.dz), ops->free(c.z), ops->free(dz), ops->free(dz_nullloss);
}

static void test_timestep_embedding(void) {
  enum { B = 3 };
  static const float t_values[B] = {0.0f, 0.25f, 0.731f};
  /* 1030: half 515, more than two of the CPU op's chunks of 256 frequencies */
  static const struct { int dim; float scale, max_period; } cases[] = {
      {8, 1000.0f, 10000.0f}, {6, 1.0f, 100.0f}, {1030, 1000.0f, 10000.0f}};
  float *t = alloc_f(B);
  ops->to_device(t, t_values, sizeof t_values);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int dim = cases[k].dim, half = dim / 2;
    float *out = alloc_f((long)B * dim);
    ops->timestep_embedding(out, t, B, dim, cases[k].scale, cases[k].max_period);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < half; j++) {
        double f = cases[k].scale * pow(cases[k].max_period, -(double)j / half);
        EXPECT_CLOSE(out[b * dim + j], cos(t_values[b] * f), 1e-5, 0, "cos(t f_k) in the first half");
        EXPECT_CLOSE(out[b * dim + half + j], sin(t_values[b] * f), 1e-5, 0, "sin(t f_k) in the second half");
      }
    ops->free(out);
  }
  ops->free(t);
}

static void test_flow_interpolate(void) {
  enum { B = 2, D = 3 };
  static const float t_values[B] = {0.2f, 0.9f};
  float *t = alloc_f(B), *x0 = alloc_f(B * D), *e = alloc_f(B * D), *xt = alloc_f(B * D), *v = alloc_f(B * D);
  ops->to_device(t, t_values, sizeof t_values);
  fill_uniform(x0, B * D, -2, 2);
  fill_uniform(e, B * D, -2, 2);
  ops->flow_interpolate(xt, v, x0, e, t, B, D);
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      int i = b * D + d;
      EXPECT_CLOSE(xt[i], (1.0 - t_values[b]) * x0[i] + t_values[b] * e[i], 1e-6, 1e-6, "xt = (1 - t) x0 + t e");
      EXPECT_CLOSE(v[i], (double)e[i] - x0[i], 1e-6, 1e-6, "v = e - x0");
    }
  ops->free(t), ops->free(x0), ops->free(e), ops->free(xt), ops->free(v);
}

/* ---- AdamW ----------------------------------------------------------------------------------- */

/* One AdamW step (Loshchilov and Hutter) in double: g <- gs g; m, v moments; bias-corrected
 * p <- p - lr (mhat / (sqrt(vhat) + eps) + wd p). */
static void ref_adamw(double *p, double *m, double *v, const float *g, int n, double lr, double beta1,
                      double beta2, double eps, double wd, double gs, long t) {
  for (int i = 0; i < n; i++) {
    double gi = gs * g[i];
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    double mhat = m[i] / (1 - pow(beta1, t)), vhat = v[i] / (1 - pow(beta2, t));
    p[i] -= lr * (mhat / (sqrt(vhat) + eps) + wd * p[i]);
  }
}

static void expect_params(const char *what, const float *p, const double *ref, int n) {
  for (int i = 0; i < n; i++) EXPECT_CLOSE(p[i], ref[i], 1e-6, 1e-5, what);
}

/* Two steps with different gradients and grad scales, and an eps near sqrt(vhat): at step 1 alone,
 * or with one scale throughout, Adam's update hardly depends on the scale or the bias correction. */
static void test_adamw_op(void) {
  enum { N = 5 };
  static const float p0[N] = {0.5f, -1.2f, 0.03f, 2.0f, 0.0f};
  static const float g[2][N] = {{0.1f, -0.05f, 0.02f, 0.0f, 0.3f}, {-0.08f, -0.06f, 0.2f, 0.0f, -0.01f}};
  static const float gs[2] = {0.5f, 2.0f};
  const float lr = 0.05f, beta1 = 0.9f, beta2 = 0.99f, eps = 1e-2f, wd = 0.1f;
  float *p = alloc_f(N), *grad = alloc_f(N), *m = alloc_f(N), *v = alloc_f(N);
  double rp[N], rm[N] = {0}, rv[N] = {0};
  ops->to_device(p, p0, sizeof p0);
  for (int i = 0; i < N; i++) rp[i] = p0[i];
  for (int step = 1; step <= 2; step++) {
    ops->to_device(grad, g[step - 1], sizeof g[0]);
    ops->adamw(p, grad, m, v, N, lr, beta1, beta2, eps, wd, gs[step - 1], step);
    ref_adamw(rp, rm, rv, g[step - 1], N, lr, beta1, beta2, eps, wd, gs[step - 1], step);
    expect_params(step == 1 ? "params after step 1" : "params after step 2", p, rp, N);
    expect_params("first moment", m, rm, N);
    expect_params("second moment", v, rv, N);
  }
  ops->free(p), ops->free(grad), ops->free(m), ops->free(v);
}

static void test_adamw_update(void) {
  enum { N = 3 };
  static const float p0[N] = {0.4f, -0.7f, 1.1f};
  static const float g[2][N] = {{0.3f, -2.0f, 1.5f}, {0.1f, 0.2f, -0.2f}};
  AdamWConfig c = {.lr = 0.1, .lr_min = 0.01, .warmup = 2, .cosine = 1, .total_steps = 10, .beta1 = 0.9,
                   .beta2 = 0.999, .eps = 1e-3, .weight_decay = 0.01, .grad_clip = 1.0};
  AdamW *o = adamw_create(N);
  float *p = alloc_f(N), *grad = alloc_f(N);
  double rp[N], rm[N] = {0}, rv[N] = {0};
  ops->to_device(p, p0, sizeof p0);
  for (int i = 0; i < N; i++) rp[i] = p0[i];

  /* step 0: norm sqrt(6.34) > clip 1, warmup lr 0.1 * 1/2 */
  double norm = sqrt(0.3 * 0.3 + 2.0 * 2.0 + 1.5 * 1.5);
  ops->to_device(grad, g[0], sizeof g[0]);
  double s = adamw_update(o, p, grad, &c, 0, norm);
  EXPECT_CLOSE(s, 1.0 / norm, 1e-9, 1e-9, "clip scale = grad_clip / norm");
  ref_adamw(rp, rm, rv, g[0], N, 0.05, c.beta1, c.beta2, c.eps, c.weight_decay, 1.0 / norm, 1);
  expect_params("params after a clipped step", p, rp, N);

  /* step 1: norm 0.3 < clip, end of warmup: lr 0.1 */
  ops->to_device(grad, g[1], sizeof g[1]);
  s = adamw_update(o, p, grad, &c, 1, 0.3);
  EXPECT(s == 1.0, "unclipped step returned scale %g", s);
  ref_adamw(rp, rm, rv, g[1], N, 0.1, c.beta1, c.beta2, c.eps, c.weight_decay, 1.0, 2);
  expect_params("params after an unclipped step", p, rp, N);

  EXPECT(adamw_update(o, p, grad, &c, 2, 1.0) == 1.0, "norm equal to the clip is not clipped");
  c.grad_clip = 0;
  EXPECT(adamw_update(o, p, grad, &c, 3, 1e6) == 1.0, "grad_clip 0 disables clipping");

  adamw_free(o);
  ops->free(p), ops->free(grad);
}

static void test_adamw_lr(void) {
  const double lr = 1e-3, lr_min = 1e-5, pi = 3.141592653589793;
  AdamWConfig c = {.lr = lr, .lr_min = lr_min, .warmup = 5, .cosine = 1, .total_steps = 105};
  EXPECT_CLOSE(adamw_lr(&c, 0), lr / 5, 1e-15, 1e-9, "first warmup step: lr / warmup");
  EXPECT_CLOSE(adamw_lr(&c, 2), 3 * lr / 5, 1e-15, 1e-9, "warmup is linear");
  EXPECT_CLOSE(adamw_lr(&c, 4), lr, 1e-15, 1e-9, "last warmup step reaches lr");
  EXPECT_CLOSE(adamw_lr(&c, 5), lr, 1e-15, 1e-9, "cosine starts at lr");
  EXPECT_CLOSE(adamw_lr(&c, 30), lr_min + 0.5 * (lr - lr_min) * (1 + cos(pi / 4)), 1e-15, 1e-9, "cosine a quarter in");
  EXPECT_CLOSE(adamw_lr(&c, 55), (lr + lr_min) / 2, 1e-15, 1e-9, "cosine halfway");
  EXPECT_CLOSE(adamw_lr(&c, 105), lr_min, 1e-15, 1e-9, "cosine ends at lr_min");
  EXPECT_CLOSE(adamw_lr(&c, 1000), lr_min, 1e-15, 1e-9, "past total_steps stays at lr_min");
  c.cosine = 0;
  EXPECT_CLOSE(adamw_lr(&c, 50), lr, 1e-15, 1e-9, "constant after warmup");
  c.warmup = 0;
  EXPECT_CLOSE(adamw_lr(&c, 0), lr, 1e-15, 1e-9, "no warmup: lr from step 0");
}

/* ---- the mlp model --------------------------------------------------------------------------- */

typedef struct {
  Model *m;
  float *out, *x, *t, *R; /* (B, dim), (B, dim), (B), (B, dim) */
  int *labels;            /* (B) */
  int B;
} ModelCase;

static double model_loss(void *ctx) {
  ModelCase *c = ctx;
  c->m->forward(c->m, c->out, c->x, c->t, c->labels, c->B);
  return dot(c->out, c->R, (long)c->B * c->m->cfg.dim);
}

/* Every entry of every tensor and of x is checked: the model is small enough (about 1,700
 * parameters) that this takes milliseconds. B below max_batch catches code that sizes by max_batch. */
static void check_mlp(int depth, int B) {
  static const int label_values[4] = {0, 3, 2, 0}; /* 3 = num_classes: the null label; 0 twice */
  static const float t_values[4] = {0.05f, 0.3f, 0.62f, 0.97f};
  ModelConfig cfg = {.kind = "mlp", .dim = 2, .num_classes = 3, .width = 16, .depth = depth, .temb_dim = 8};
  Model *m = model_create(&cfg, 4);
  model_init_params(m, 7);
  /* biases start at zero; give them values so the check runs at a generic point */
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    if (ti->init == INIT_ZERO) fill_uniform(m->params + ti->offset, ti->shape[0], -0.3, 0.3);
  }
  long n = (long)B * cfg.dim;
  ModelCase c = {m, alloc_f(n), alloc_f(n), alloc_f(B), alloc_f(n), ops->alloc(sizeof(int) * (size_t)B), B};
  ops->to_device(c.labels, label_values, sizeof(int) * (size_t)B);
  ops->to_device(c.t, t_values, sizeof(float) * (size_t)B);
  fill_uniform(c.x, n, -2, 2);
  fill_uniform(c.R, n, -1, 1);

  float *dx = alloc_f(n);
  model_zero_grad(m);
  model_loss(&c);
  m->backward(m, dx, c.R, NULL, B);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    long size = (long)ti->shape[0] * ti->shape[1] * ti->shape[2] * ti->shape[3];
    check_grad(ti->name, m->params + ti->offset, m->grads + ti->offset, size, model_loss, &c);
  }
  check_grad("d/dx", c.x, dx, n, model_loss, &c);

  /* the finite differences left the cache at a perturbed point: forward again before backward */
  float *grads1 = host_copy(m->grads, m->num_params), *dx1 = host_copy(dx, n);
  model_loss(&c);
  m->backward(m, dx, c.R, NULL, B);
  expect_doubled("model grads", m->grads, grads1, m->num_params);
  expect_doubled("model dx", dx, dx1, n);

  /* frozen: the same input gradient, and not one parameter gradient touched */
  float *grads2 = host_copy(m->grads, m->num_params);
  ops->fill(dx, 0.0f, n);
  m->frozen = 1;
  model_loss(&c);
  m->backward(m, dx, c.R, NULL, B);
  m->frozen = 0;
  float *dx3 = host_copy(dx, n), *grads3 = host_copy(m->grads, m->num_params);
  EXPECT(memcmp(dx3, dx1, sizeof(float) * (size_t)n) == 0, "frozen backward: dx differs");
  EXPECT(memcmp(grads3, grads2, sizeof(float) * (size_t)m->num_params) == 0, "frozen backward changed parameter gradients");
  free(grads2), free(dx3), free(grads3);

  free(grads1), free(dx1);
  ops->free(c.out), ops->free(c.x), ops->free(c.t), ops->free(c.R), ops->free(c.labels), ops->free(dx);
  model_free(m);
}

static void test_mlp(void) { check_mlp(2, 4); }
static void test_mlp_depth0(void) { check_mlp(0, 3); }

/* ---- the op tables' start-up check ------------------------------------------------------------ */

static void check_table(void *t) { ops_check(t); }

static void test_op_tables(void) {
  const char *missing = ops_missing(&ops_cpu);
  EXPECT(missing == NULL, "the CPU table lacks %s", missing);
  int enabled = ops_profile_enable();
  missing = ops_missing(ops);
  EXPECT(enabled && missing == NULL, "the profiling table lacks %s",
         missing ? missing : "nothing, but was not enabled");
  ops_profile_disable();
  int count = 0;
#define EXPECT_NAMED_WHEN_NULL(ret, op, params, args, rv)                                           \
  {                                                                                                 \
    amd_ops t = ops_cpu;                                                                            \
    t.op = NULL;                                                                                    \
    missing = ops_missing(&t);                                                                      \
    EXPECT(missing && strcmp(missing, #op) == 0, "%s set NULL: ops_missing names %s", #op,          \
           missing ? missing : "none");                                                             \
    count++;                                                                                        \
  }
  AMD_OPS(EXPECT_NAMED_WHEN_NULL)
#undef EXPECT_NAMED_WHEN_NULL
  printf("  %d ops: each one set NULL is named by ops_missing\n", count);
  amd_ops t = ops_cpu;
  t.dmd_grad = NULL;
  EXPECT(expect_fatal(check_table, &t, "backend cpu: its op table has no dmd_grad"),
         "ops_check of a table without dmd_grad must stop the program naming it");
}

int main(void) {
  TEST_RUN(test_op_tables);
  TEST_RUN(test_linear);
  TEST_RUN(test_silu);
  TEST_RUN(test_bias);
  TEST_RUN(test_embedding);
  TEST_RUN(test_mse);
  TEST_RUN(test_softplus);
  TEST_RUN(test_timestep_embedding);
  TEST_RUN(test_flow_interpolate);
  TEST_RUN(test_adamw_op);
  TEST_RUN(test_adamw_update);
  TEST_RUN(test_adamw_lr);
  TEST_RUN(test_mlp);
  TEST_RUN(test_mlp_depth0);
  return t_finish();
}
