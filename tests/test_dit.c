/* test_dit.c: the transformer ops and the `dit` model on the CPU backend. Values of each new op
 * against double-precision references written here (layernorm, GELU, softmax, strided-batched GEMM,
 * attention, patchify), finite-difference gradients of every op with a backward, of attention, and
 * of the whole tiny DiT (every entry of every tensor, x, and the features path), the adaLN-Zero
 * start (output exactly zero), that backward adds, and checkpoints of a dit (the image fields are
 * stored and checked; a checkpoint written before they existed still loads). The registry of model
 * kinds (every kind found, an unknown one refused) and the init kind of every tensor of every kind.
 * Losses are L = sum(out * R) for a fixed random R, as in test_grad.c.
 * Not here: training runs, CUDA conformance. */
#include <ftw.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attention.h"
#include "model_ckpt.h"
#include "common.h"
#include "h5.h"
#include "model.h"
#include "ops.h"
#include "philox.h"
#include "test.h"
#include "vmath.h"

#define TEST_SEED 20251125u
#include "ckpt_child.h"
#include "gradcheck.h"
#include "model_checks.h"

/* for the backward ops that overwrite (ops.h): a second backward into a poisoned buffer gives the
 * first's values bit for bit */
static void expect_overwritten(const char *what, const float *now, const float *first, long n) {
  int bad = 0;
  for (long i = 0; i < n; i++) bad += now[i] != first[i];
  EXPECT(bad == 0, "%s: %d of %ld entries differ from the first backward's (backward must overwrite)", what, bad, n);
}

static void free_all(float **bufs, size_t n) {
  for (size_t i = 0; i < n; i++) ops->free(bufs[i]);
}
#define FREE_ALL(...)                                   \
  do {                                                  \
    float *bufs_[] = {__VA_ARGS__};                     \
    free_all(bufs_, sizeof bufs_ / sizeof bufs_[0]);    \
  } while (0)

/* ---- layernorm ------------------------------------------------------------------------------- */

typedef struct {
  float *out, *mean, *rstd, *x, *R;
  int N, C;
} LnCase;

static double ln_loss(void *ctx) {
  LnCase *c = ctx;
  ops->layernorm_forward(c->out, c->mean, c->rstd, c->x, c->N, c->C);
  return dot(c->out, c->R, (long)c->N * c->C);
}

static void test_layernorm(void) {
  enum { N = 3, C = 7 };
  LnCase c = {alloc_f(N * C), alloc_f(N), alloc_f(N), alloc_f(N * C), alloc_f(N * C), N, C};
  fill_uniform(c.x, N * C, -2, 3);
  fill_uniform(c.R, N * C, -1, 1);
  ln_loss(&c);
  for (int r = 0; r < N; r++) {
    double mu = 0, var = 0;
    for (int j = 0; j < C; j++) mu += c.x[r * C + j] / (double)C;
    for (int j = 0; j < C; j++) var += (c.x[r * C + j] - mu) * (c.x[r * C + j] - mu) / C;
    EXPECT_CLOSE(c.mean[r], mu, 1e-6, 1e-5, "cached mean");
    EXPECT_CLOSE(c.rstd[r], 1.0 / sqrt(var + 1e-6), 1e-6, 1e-5, "cached rstd");
    for (int j = 0; j < C; j++)
      EXPECT_CLOSE(c.out[r * C + j], (c.x[r * C + j] - mu) / sqrt(var + 1e-6), 1e-5, 1e-5, "layernorm(x)");
  }
  float *dx = alloc_f(N * C);
  ops->layernorm_backward(dx, c.R, c.x, c.mean, c.rstd, N, C);
  check_grad("d/dx layernorm", c.x, dx, N * C, ln_loss, &c);
  float *dx1 = host_copy(dx, N * C);
  ln_loss(&c);
  ops->layernorm_backward(dx, c.R, c.x, c.mean, c.rstd, N, C);
  expect_doubled("d/dx layernorm", dx, dx1, N * C);
  free(dx1);
  FREE_ALL(c.out, c.mean, c.rstd, c.x, c.R, dx);
}

/* ---- GELU ------------------------------------------------------------------------------------ */

typedef struct {
  float *y, *x, *R;
  long n;
} GeluCase;

static double gelu_loss(void *ctx) {
  GeluCase *c = ctx;
  ops->gelu_forward(c->y, NULL, c->x, c->n);
  return dot(c->y, c->R, c->n);
}

static void test_gelu(void) {
  enum { N = 11 };
  GeluCase c = {alloc_f(N), alloc_f(N), alloc_f(N), N};
  fill_uniform(c.x, N, -4, 4);
  c.x[0] = 0.0f;
  fill_uniform(c.R, N, -1, 1);
  gelu_loss(&c);
  for (int i = 0; i < N; i++) {
    double x = c.x[i], ref = 0.5 * x * (1 + tanh(sqrt(2 / 3.141592653589793) * (x + 0.044715 * x * x * x)));
    EXPECT_CLOSE(c.y[i], ref, 1e-6, 1e-5, "gelu(x)");
  }
  float *dx = alloc_f(N);
  ops->gelu_backward(dx, c.R, c.x, NULL, N);
  check_grad("d/dx gelu", c.x, dx, N, gelu_loss, &c);
  float *dx1 = host_copy(dx, N);
  ops->fill(dx, 7.0f, N);
  ops->gelu_backward(dx, c.R, c.x, NULL, N);
  expect_overwritten("d/dx gelu", dx, dx1, N);
  /* the derivative kept by the forward: the same outputs and the same gradient, bit for bit, and the
   * backward then reads no x (NULL) */
  float *dg = alloc_f(N), *y2 = alloc_f(N), *dx2 = alloc_f(N);
  ops->gelu_forward(y2, dg, c.x, N);
  ops->gelu_backward(dx2, c.R, NULL, dg, N);
  gelu_loss(&c);
  EXPECT(memcmp(y2, c.y, sizeof(float) * N) == 0, "gelu forward keeping its derivative differs");
  EXPECT(memcmp(dx2, dx1, sizeof(float) * N) == 0, "gelu backward from the kept derivative differs");
  free(dx1);
  FREE_ALL(c.y, c.x, c.R, dx, dg, y2, dx2);
}

/* vm_expf and vm_sigmoidf (SiLU's vectorizable exp) against the double functions on a dense grid,
 * at the clamps and special values; then the backend's SiLU forward and backward over a vector
 * long enough for the threaded loop, against the double formulas */
static void test_vm_exp(void) {
  double worst_rel = 0, worst_sig = 0;
  long n = 2000001;
  for (long i = 0; i < n; i++) {
    float x = (float)(-87.0 + 175.0 * (double)i / (double)(n - 1));
    double ref = exp((double)x), rel = fabs(vm_expf(x) - ref) / ref;
    if (rel > worst_rel) worst_rel = rel;
    double sref = 1.0 / (1.0 + exp(-(double)x)), serr = fabs(vm_sigmoidf(x) - sref);
    if (serr > worst_sig) worst_sig = serr;
  }
  EXPECT(worst_rel <= 2.4e-7, "vm_expf: worst relative error %.3g (bound 2.4e-7)", worst_rel);
  EXPECT(worst_sig <= 1.2e-7, "vm_sigmoidf: worst absolute error %.3g (bound 1.2e-7)", worst_sig);
  EXPECT(vm_expf(0.0f) == 1.0f && vm_expf(-0.0f) == 1.0f, "vm_expf(0) = 1");
  EXPECT(isnan(vm_expf(NAN)) && isnan(vm_sigmoidf(NAN)), "vm_expf(NaN) is NaN");
  EXPECT(isfinite(vm_expf(INFINITY)) && vm_expf(INFINITY) > 1e38f, "vm_expf(inf) clamps to 2.1e38");
  EXPECT(vm_expf(-INFINITY) > 0 && vm_expf(-INFINITY) < 1.3e-38f, "vm_expf(-inf) clamps to 1.2e-38");
  EXPECT(vm_sigmoidf(-INFINITY) < 1e-37f && vm_sigmoidf(INFINITY) == 1.0f, "vm_sigmoidf(+-inf)");
  long m = 100003;
  float *x = alloc_f(m), *y = alloc_f(m), *dy = alloc_f(m), *dx = alloc_f(m);
  fill_uniform(x, m, -20, 20);
  fill_uniform(dy, m, -1, 1);
  for (long i = 0; i < m; i++) dx[i] = 0.25f;
  ops->silu_forward(y, x, m);
  ops->silu_backward(dx, dy, x, m);
  int bad_y = 0, bad_dx = 0;
  for (long i = 0; i < m; i++) {
    double xi = x[i], s = 1.0 / (1.0 + exp(-xi));
    bad_y += !(fabs(y[i] - xi * s) <= 1e-6 * (1 + fabs(xi * s)));
    double g = 0.25 + dy[i] * s * (1 + xi * (1 - s));
    bad_dx += !(fabs(dx[i] - g) <= 1e-6 * (1 + fabs(g)));
  }
  EXPECT(bad_y == 0, "silu forward over %ld entries: %d differ from the double reference", m, bad_y);
  EXPECT(bad_dx == 0, "silu backward (accumulating) over %ld entries: %d differ", m, bad_dx);
  free(x), free(y), free(dy), free(dx);
}

/* vm_tanhf (the GELU's vectorizable tanh) against the double tanh on a dense grid over [-12, 12]
 * and at the special values; then the GELU on a vector long enough for the threaded loop */
static void test_vm_tanh(void) {
  double worst_abs = 0, worst_rel = 0;
  long n = 2400001;
  for (long i = 0; i < n; i++) {
    float u = (float)(-12.0 + 24.0 * (double)i / (double)(n - 1));
    double ref = tanh((double)u), got = vm_tanhf(u), err = fabs(got - ref);
    if (err > worst_abs) worst_abs = err;
    if (fabs(u) < 1 && u != 0 && err / fabs(ref) > worst_rel) worst_rel = err / fabs(ref);
  }
  EXPECT(worst_abs <= 1.2e-7, "vm_tanhf: worst absolute error %.3g (bound 1.2e-7)", worst_abs);
  EXPECT(worst_rel <= 2.4e-7, "vm_tanhf: worst relative error on |u| < 1 %.3g (bound 2.4e-7)", worst_rel);
  const float tiny[] = {1e-30f, 1e-40f /* subnormal */, 3e-4f, 0.6249f, 0.6251f};
  for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
    EXPECT_CLOSE(vm_tanhf(tiny[i]), tanh((double)tiny[i]), 0, 2.4e-7, "vm_tanhf(small u)");
    EXPECT_CLOSE(vm_tanhf(-tiny[i]), -tanh((double)tiny[i]), 0, 2.4e-7, "vm_tanhf(-small u)");
  }
  EXPECT(vm_tanhf(0.0f) == 0.0f && !signbit(vm_tanhf(0.0f)) && signbit(vm_tanhf(-0.0f)), "vm_tanhf(+-0) = +-0");
  EXPECT(vm_tanhf(INFINITY) == 1.0f && vm_tanhf(-INFINITY) == -1.0f, "vm_tanhf(+-inf) = +-1");
  EXPECT(vm_tanhf(1e30f) == 1.0f && vm_tanhf(-9.5f) == -1.0f, "vm_tanhf saturates");
  EXPECT(isnan(vm_tanhf(NAN)), "vm_tanhf(NaN) is NaN");
  /* the backend's GELU over 100003 entries (threaded, vectorized, with a remainder) */
  long m = 100003;
  float *x = alloc_f(m), *y = alloc_f(m);
  fill_uniform(x, m, -6, 6);
  x[5] = NAN;
  ops->gelu_forward(y, NULL, x, m);
  int bad = 0;
  for (long i = 0; i < m; i++) {
    if (i == 5) continue;
    double xi = x[i], ref = 0.5 * xi * (1 + tanh(sqrt(2 / 3.141592653589793) * (xi + 0.044715 * xi * xi * xi)));
    bad += !(fabs(y[i] - ref) <= 1e-6 * (1 + fabs(ref)));
  }
  EXPECT(bad == 0, "gelu over %ld entries: %d differ from the double reference", m, bad);
  EXPECT(isnan(y[5]), "gelu(NaN) is NaN (a NaN must reach the training guard)");
  FREE_ALL(x, y);
}

/* ---- adaLN modulate and the gated residual: (B, ld) conditioning rows, used at offsets -------- */

enum { MB = 2, MT = 3, MC = 4, MLD = 3 * MC };

typedef struct {
  float *y, *x, *cond, *R; /* (B, T, C), (B, T, C), (B, ld), (B, T, C) */
  float *x0;               /* gated residual: the stream before the add */
} ModCase;

static double modulate_loss(void *ctx) {
  ModCase *c = ctx;
  ops->modulate_forward(c->y, c->x, c->cond + MC, c->cond + 2 * MC, MLD, MB, MT, MC);
  return dot(c->y, c->R, MB * MT * MC);
}

static void test_modulate(void) {
  long n = MB * MT * MC;
  ModCase c = {alloc_f(n), alloc_f(n), alloc_f(MB * MLD), alloc_f(n), NULL};
  fill_uniform(c.x, n, -2, 2);
  fill_uniform(c.cond, MB * MLD, -1, 1);
  fill_uniform(c.R, n, -1, 1);
  modulate_loss(&c);
  for (int b = 0; b < MB; b++)
    for (int t = 0; t < MT; t++)
      for (int j = 0; j < MC; j++) {
        long i = (b * MT + t) * MC + j;
        double ref = c.x[i] * (1.0 + c.cond[b * MLD + 2 * MC + j]) + c.cond[b * MLD + MC + j];
        EXPECT_CLOSE(c.y[i], ref, 1e-6, 1e-6, "x (1 + scale) + shift");
      }
  float *dx = alloc_f(n), *dcond = alloc_f(MB * MLD);
  ops->modulate_backward(dx, dcond + MC, dcond + 2 * MC, c.R, c.x, c.cond + 2 * MC, MLD, MB, MT, MC);
  check_grad("d/dx modulate", c.x, dx, n, modulate_loss, &c);
  check_grad("d/d(shift, scale) modulate (and 0 for the chunks it does not read)", c.cond, dcond, MB * MLD,
             modulate_loss, &c);
  float *dx1 = host_copy(dx, n), *dc1 = host_copy(dcond, MB * MLD);
  ops->fill(dx, 7.0f, n);
  for (int b = 0; b < MB; b++) ops->fill(dcond + b * MLD + MC, 7.0f, 2 * MC); /* the chunks it writes */
  ops->modulate_backward(dx, dcond + MC, dcond + 2 * MC, c.R, c.x, c.cond + 2 * MC, MLD, MB, MT, MC);
  expect_overwritten("d/dx modulate", dx, dx1, n);
  expect_overwritten("d/dcond modulate", dcond, dc1, MB * MLD);
  free(dx1), free(dc1);
  FREE_ALL(c.y, c.x, c.cond, c.R, dx, dcond);
}

static double gated_loss(void *ctx) {
  ModCase *c = ctx;
  long n = MB * MT * MC;
  memcpy(c->x, c->x0, sizeof(float) * (size_t)n);
  ops->gated_residual_forward(c->x, c->cond + 2 * MC, c->y, MLD, MB, MT, MC);
  return dot(c->x, c->R, n);
}

static void test_gated_residual(void) {
  long n = MB * MT * MC;
  ModCase c = {alloc_f(n), alloc_f(n), alloc_f(MB * MLD), alloc_f(n), alloc_f(n)};
  fill_uniform(c.x0, n, -2, 2);
  fill_uniform(c.y, n, -2, 2);
  fill_uniform(c.cond, MB * MLD, -1, 1);
  fill_uniform(c.R, n, -1, 1);
  gated_loss(&c);
  for (int b = 0; b < MB; b++)
    for (int t = 0; t < MT; t++)
      for (int j = 0; j < MC; j++) {
        long i = (b * MT + t) * MC + j;
        EXPECT_CLOSE(c.x[i], c.x0[i] + c.cond[b * MLD + 2 * MC + j] * c.y[i], 1e-6, 1e-6, "x + gate y");
      }
  float *dy = alloc_f(n), *dcond = alloc_f(MB * MLD);
  ops->gated_residual_backward(dy, dcond + 2 * MC, c.R, c.y, c.cond + 2 * MC, MLD, MB, MT, MC);
  check_grad("d/dy gated residual", c.y, dy, n, gated_loss, &c);
  check_grad("d/dgate gated residual", c.cond, dcond, MB * MLD, gated_loss, &c);
  check_grad("d/dx gated residual (passes through)", c.x0, c.R, n, gated_loss, &c);
  float *dy1 = host_copy(dy, n), *dc1 = host_copy(dcond, MB * MLD);
  ops->fill(dy, 7.0f, n);
  for (int b = 0; b < MB; b++) ops->fill(dcond + b * MLD + 2 * MC, 7.0f, MC);
  ops->gated_residual_backward(dy, dcond + 2 * MC, c.R, c.y, c.cond + 2 * MC, MLD, MB, MT, MC);
  expect_overwritten("d/dy gated residual", dy, dy1, n);
  expect_overwritten("d/dgate gated residual", dcond, dc1, MB * MLD);
  free(dy1), free(dc1);
  FREE_ALL(c.y, c.x, c.cond, c.R, c.x0, dy, dcond);
}

/* ---- softmax --------------------------------------------------------------------------------- */

typedef struct {
  float *y, *x, *R;
  int N, C;
} SoftmaxCase;

static double softmax_loss(void *ctx) {
  SoftmaxCase *c = ctx;
  ops->softmax_forward(c->y, c->x, c->N, c->C);
  return dot(c->y, c->R, (long)c->N * c->C);
}

static void test_softmax(void) {
  enum { N = 3, C = 5 };
  SoftmaxCase c = {alloc_f(N * C), alloc_f(N * C), alloc_f(N * C), N, C};
  fill_uniform(c.x, N * C, -3, 3);
  c.x[C] = 80.0f; /* a large logit: the max shift keeps exp finite */
  fill_uniform(c.R, N * C, -1, 1);
  softmax_loss(&c);
  for (int r = 0; r < N; r++) {
    double s = 0, mx = -1e30;
    for (int j = 0; j < C; j++) mx = fmax(mx, c.x[r * C + j]);
    for (int j = 0; j < C; j++) s += exp(c.x[r * C + j] - mx);
    for (int j = 0; j < C; j++) EXPECT_CLOSE(c.y[r * C + j], exp(c.x[r * C + j] - mx) / s, 1e-7, 1e-5, "softmax");
  }
  float *dx = alloc_f(N * C);
  ops->softmax_backward(dx, c.R, c.y, N, C);
  check_grad("d/dx softmax", c.x, dx, N * C, softmax_loss, &c);
  float *dx1 = host_copy(dx, N * C);
  softmax_loss(&c);
  ops->fill(dx, 7.0f, N * C);
  ops->softmax_backward(dx, c.R, c.y, N, C);
  expect_overwritten("d/dx softmax", dx, dx1, N * C);
  /* in place, as attention uses it */
  memcpy(dx1, c.y, sizeof(float) * N * C);
  ops->softmax_forward(c.x, c.x, N, C);
  for (int i = 0; i < N * C; i++) EXPECT(c.x[i] == dx1[i], "in-place softmax [%d]: %g vs %g", i, c.x[i], dx1[i]);
  free(dx1);
  FREE_ALL(c.y, c.x, c.R, dx);
}

/* ---- strided-batched GEMM -------------------------------------------------------------------- */

static void test_gemm_batched(void) {
  enum { M = 3, N = 4, K = 5, NB = 3 };
  float *A = alloc_f(NB * M * K), *B = alloc_f(NB * K * N), *C = alloc_f(NB * M * N), *C0 = alloc_f(NB * M * N);
  fill_uniform(A, NB * M * K, -1, 1);
  fill_uniform(B, NB * K * N, -1, 1);
  fill_uniform(C0, NB * M * N, -1, 1);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int shareB = 0; shareB < 2; shareB++) {
        memcpy(C, C0, sizeof(float) * NB * M * N);
        long sB = shareB ? 0 : K * N;
        ops->gemm_batched(ta, tb, M, N, K, 0.7f, A, M * K, B, sB, 0.5f, C, M * N, NB);
        for (int i = 0; i < NB; i++)
          for (int r = 0; r < M; r++)
            for (int col = 0; col < N; col++) {
              double s = 0;
              for (int k = 0; k < K; k++) {
                double a = ta ? A[i * M * K + k * M + r] : A[i * M * K + r * K + k];
                double b = tb ? B[i * sB + col * K + k] : B[i * sB + k * N + col];
                s += a * b;
              }
              double ref = 0.7 * s + 0.5 * C0[i * M * N + r * N + col];
              EXPECT_CLOSE(C[i * M * N + r * N + col], ref, 1e-6, 1e-5, ta ? (tb ? "A^T B^T" : "A^T B") : (tb ? "A B^T" : "A B"));
            }
      }
  FREE_ALL(A, B, C, C0);
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct {
  float *out, *prob, *scratch, *qkv, *R;
  int B, T, C, NH;
} AttnCase;

static double attn_loss(void *ctx) {
  AttnCase *c = ctx;
  attention_forward(c->out, c->prob, c->scratch, c->qkv, c->B, c->T, c->C, c->NH);
  return dot(c->out, c->R, (long)c->B * c->T * c->C);
}

static void test_attention(void) {
  enum { B = 2, T = 3, C = 6, NH = 2, hs = C / NH };
  long n = B * T * C;
  AttnCase c = {alloc_f(n), alloc_f(B * NH * T * T), alloc_f(attention_forward_scratch_floats(ops, B, T, C)),
                alloc_f(3 * n), alloc_f(n), B, T, C, NH};
  fill_uniform(c.qkv, 3 * n, -1.5, 1.5);
  fill_uniform(c.R, n, -1, 1);
  attn_loss(&c);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        const float *qi = c.qkv + (b * T + i) * 3 * C + h * hs;
        double s[T], mx = -1e30, z = 0;
        for (int j = 0; j < T; j++) {
          const float *kj = c.qkv + (b * T + j) * 3 * C + C + h * hs;
          s[j] = 0;
          for (int d = 0; d < hs; d++) s[j] += (double)qi[d] * kj[d] / sqrt((double)hs);
          mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < T; j++) z += exp(s[j] - mx);
        for (int d = 0; d < hs; d++) {
          double o = 0;
          for (int j = 0; j < T; j++) o += exp(s[j] - mx) / z * c.qkv[(b * T + j) * 3 * C + 2 * C + h * hs + d];
          EXPECT_CLOSE(c.out[(b * T + i) * C + h * hs + d], o, 1e-6, 1e-5, "attention output");
        }
      }
  float *dqkv = alloc_f(3 * n), *scratch = alloc_f(attention_scratch_floats(ops, B, T, C, NH));
  attention_backward(dqkv, scratch, c.R, c.qkv, c.prob, B, T, C, NH);
  check_grad("d/dqkv attention", c.qkv, dqkv, 3 * n, attn_loss, &c);
  float *d1 = host_copy(dqkv, 3 * n);
  attn_loss(&c);
  ops->fill(dqkv, 7.0f, 3 * n);
  ops->fill(scratch, 7.0f, attention_scratch_floats(ops, B, T, C, NH)); /* no scratch is read before it is written */
  attention_backward(dqkv, scratch, c.R, c.qkv, c.prob, B, T, C, NH);
  expect_overwritten("d/dqkv attention", dqkv, d1, 3 * n);
  free(d1);
  FREE_ALL(c.out, c.prob, c.scratch, c.qkv, c.R, dqkv, scratch);
}

/* ---- patchify -------------------------------------------------------------------------------- */

static void test_patchify(void) {
  enum { B = 2, C = 3, H = 4, W = 6, p = 2, T = (H / p) * (W / p), P = p * p * C };
  long n = B * C * H * W;
  float *img = alloc_f(n), *tok = alloc_f(n), *back = alloc_f(n), *r = alloc_f(n), *ur = alloc_f(n);
  fill_uniform(img, n, -1, 1);
  ops->patchify(tok, img, B, C, H, W, p);
  /* token t = (row, col) of the patch grid; feature (py, px, c) */
  int bad = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int py = 0; py < p; py++)
        for (int px = 0; px < p; px++)
          for (int ch = 0; ch < C; ch++) {
            int yy = (t / (W / p)) * p + py, xx = (t % (W / p)) * p + px;
            bad += tok[(b * T + t) * P + (py * p + px) * C + ch] != img[((b * C + ch) * H + yy) * W + xx];
          }
  EXPECT(bad == 0, "patchify: %d entries in the wrong place", bad);
  ops->unpatchify(back, tok, B, C, H, W, p);
  for (long i = 0; i < n; i++) EXPECT(back[i] == img[i], "unpatchify(patchify(x)) [%ld]: %g vs %g", i, back[i], img[i]);
  /* adjoint: <patchify(x), r> = <x, unpatchify(r)>, which the model's backward relies on */
  fill_uniform(r, n, -1, 1);
  ops->unpatchify(ur, r, B, C, H, W, p);
  EXPECT_CLOSE(dot(tok, r, n), dot(img, ur, n), 1e-9, 1e-9, "unpatchify is patchify's adjoint");
  FREE_ALL(img, tok, back, r, ur);
}

/* ---- the dit model --------------------------------------------------------------------------- */

typedef struct {
  Model *m;
  float *out, *x, *t, *R, *Rf; /* (B, dim), (B, dim), (B), (B, dim), (B, width) */
  int *labels;
  int B;
} DitCase;

/* L = sum(out R) + sum(features Rf): the features path (what a GAN head reads) is checked too */
static double dit_loss(void *ctx) {
  DitCase *c = ctx;
  c->m->forward(c->m, c->out, c->x, c->t, c->labels, c->B);
  int cls = c->m->kind->classifier;
  return dot(c->out, c->R, (long)c->B * (cls ? c->m->cfg.num_classes : c->m->cfg.dim)) + dot(c->m->features(c->m), c->Rf, (long)c->B * c->m->feat_dim);
}

static int name_ends(const char *name, const char *suffix) {
  size_t a = strlen(name), b = strlen(suffix);
  return a >= b && strcmp(name + a - b, suffix) == 0;
}

static const ModelConfig tiny = {.kind = "dit", .dim = 64, .num_classes = 3, .width = 16, .depth = 2,
                                 .temb_dim = 16, .img_channels = 1, .img_size = 8, .patch = 4, .heads = 2};

static void test_dit_init(void) {
  Model *m = model_create(&tiny, 2);
  model_init_params(m, 3);
  int zeros = 0;
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    if (!name_ends(ti->name, ".zero.w")) continue;
    zeros++;
    long size = (long)ti->shape[0] * ti->shape[1];
    EXPECT(sqrt(ops->sum_squares(m->params + ti->offset, size)) == 0, "%s starts nonzero", ti->name);
  }
  EXPECT(zeros == tiny.depth + 2, "%d zero-initialized tensors, expected depth + 2", zeros);
  EXPECT(m->feat_dim == tiny.width, "feat_dim %d", m->feat_dim);
  /* adaLN-Zero: the untrained network outputs exactly zero */
  int labels[2] = {0, 3};
  float t[2] = {0.2f, 0.9f}, *x = alloc_f(2 * 64), *out = alloc_f(2 * 64);
  fill_uniform(x, 2 * 64, -1, 1);
  m->forward(m, out, x, t, labels, 2);
  EXPECT(ops->sum_squares(out, 2 * 64) == 0, "output at init is not zero");
  EXPECT(ops->sum_squares(m->features(m), 2 * 16) > 0, "features at init are zero");
  FREE_ALL(x, out);
  model_free(m);
}

static void config_check(void *cfg) { model_config_check(cfg); }

static void test_dit_config(void) {
  ModelConfig bad = tiny;
  bad.patch = 3;
  EXPECT(expect_fatal(config_check, &bad, "patch"), "img_size not a multiple of patch");
  bad = tiny, bad.heads = 3;
  EXPECT(expect_fatal(config_check, &bad, "heads"), "width not a multiple of heads");
  bad = tiny, bad.dim = 63;
  EXPECT(expect_fatal(config_check, &bad, "dim"), "dim != C H W");
}

/* ---- the registry of model kinds and the init kind of each tensor ------------------------------ */

static void kind_get(void *name) { model_kind_get(name); }

static void test_model_kinds(void) {
  /* the kinds checkpoints name, with what training and the config check ask of each */
  static const struct {
    const char *name;
    int hidden, temb, images, classifier, depth, temb_dim;
  } want[] = {{"mlp", 1, 1, 0, 0, 3, 64}, {"dit", 1, 1, 1, 0, 6, 256}, {"classifier", 1, 0, 1, 1, 6, 0},
              {"head", 0, 0, 0, 0, 0, 0}};
  int n = 0;
  while (model_kind_at(n)) n++;
  EXPECT(n == (int)(sizeof want / sizeof want[0]), "%d registered kinds", n);
  EXPECT(model_kind_at(-1) == NULL, "model_kind_at(-1) is not NULL");
  for (int i = 0; i < n; i++) {
    const ModelKind *k = model_kind_at(i);
    EXPECT(model_kind_find(k->name) == k && model_kind_get(k->name) == k, "kind '%s' is not found by name", k->name);
    EXPECT(k->create != NULL, "kind '%s' has no create", k->name);
    EXPECT(strlen(k->name) < sizeof((ModelConfig *)0)->kind, "kind '%s' does not fit ModelConfig.kind", k->name);
  }
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const ModelKind *k = model_kind_find(want[i].name);
    EXPECT(k != NULL, "kind '%s' is not registered", want[i].name);
    if (!k) continue;
    EXPECT(k->hidden == want[i].hidden && k->temb == want[i].temb && k->images == want[i].images &&
               k->classifier == want[i].classifier,
           "kind '%s': hidden %d temb %d images %d classifier %d", k->name, k->hidden, k->temb, k->images,
           k->classifier);
    EXPECT(k->default_depth == want[i].depth && k->default_temb_dim == want[i].temb_dim,
           "kind '%s': default depth %d, temb_dim %d", k->name, k->default_depth, k->default_temb_dim);
  }
  const char *unknown[] = {"", "MLP", "dit ", "transformer", "auto"};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    EXPECT(model_kind_find(unknown[i]) == NULL, "'%s' is found", unknown[i]);
  EXPECT(expect_fatal(kind_get, "transformer", "model kind 'transformer' is unknown (this amd has: mlp, dit, classifier, head)"),
         "an unknown kind is not fatal with the known kinds named");
  ModelConfig bad = tiny;
  snprintf(bad.kind, sizeof bad.kind, "unet");
  EXPECT(expect_fatal(config_check, &bad, "model kind 'unet' is unknown"), "model_config_check took kind 'unet'");
}

/* a small valid config of kind k, built from what the registry says the kind reads */
static ModelConfig config_of_kind(const ModelKind *k) {
  ModelConfig c = tiny;
  snprintf(c.kind, sizeof c.kind, "%s", k->name);
  if (!k->temb) c.temb_dim = 0;
  if (!k->images) c.dim = 2, c.img_channels = c.img_size = c.patch = c.heads = 0;
  if (!k->hidden) c = (ModelConfig){.dim = 16}, snprintf(c.kind, sizeof c.kind, "%s", k->name);
  return c;
}

static void add_unset(void *m) { model_add_vector(m, "x.b", 3, INIT_UNSET); }

/* Every tensor of every kind declares its init kind, and model_init_params follows it. The kinds
 * also agree with the naming rule that chose them before they were explicit (".b" and ".zero.w"
 * zero, "emb" normal, the rest fan-in uniform), which is what keeps old seeds' parameters. */
static void test_init_kinds(void) {
  for (int i = 0; model_kind_at(i); i++) {
    const ModelKind *k = model_kind_at(i);
    ModelConfig c = config_of_kind(k);
    Model *m = model_create(&c, 2);
    model_init_params(m, 9);
    EXPECT(m->kind == k, "kind '%s': model->kind is '%s'", k->name, m->kind->name);
    EXPECT(m->num_tensors > 0, "kind '%s' has no tensors", k->name);
    float *host = host_copy(m->params, m->num_params);
    for (int t = 0; t < m->num_tensors; t++) {
      const TensorInfo *ti = &m->tensors[t];
      long size = (long)ti->shape[0] * ti->shape[1] * ti->shape[2] * ti->shape[3];
      const float *p = host + ti->offset;
      InitKind by_name = name_ends(ti->name, ".b") || name_ends(ti->name, ".zero.w") ? INIT_ZERO
                         : name_ends(ti->name, "emb")                                ? INIT_NORMAL
                                                                                     : INIT_FAN_IN;
      EXPECT(ti->init == INIT_ZERO || ti->init == INIT_NORMAL || ti->init == INIT_FAN_IN, "%s %s: init kind %d",
             k->name, ti->name, (int)ti->init);
      EXPECT(ti->init == by_name, "%s %s: init kind %d, its name says %d", k->name, ti->name, (int)ti->init,
             (int)by_name);
      double bound = 1.0 / sqrt((double)(size / ti->shape[0]));
      int zeros = 0, out = 0;
      for (long j = 0; j < size; j++) zeros += p[j] == 0.0f, out += fabs(p[j]) > bound;
      if (ti->init == INIT_ZERO) EXPECT(zeros == size, "%s %s: %ld nonzero", k->name, ti->name, size - zeros);
      if (ti->init != INIT_ZERO) EXPECT(zeros < size, "%s %s: all zero", k->name, ti->name);
      if (ti->init == INIT_FAN_IN) EXPECT(out == 0, "%s %s: %d values past the fan-in bound", k->name, ti->name, out);
    }
    free(host);
    EXPECT(expect_fatal(add_unset, m, "has no init kind"), "kind '%s': a tensor without an init kind was taken", k->name);
    model_free(m);
  }
}

/* Every entry of every tensor and of x; the zero-initialized tensors and the biases get small
 * random values first, since at zero the gates block every gradient behind them. */
static void check_dit(const ModelConfig *cfg) {
  enum { B = 2 };
  static const int label_values[B] = {1, 3}; /* 3 = num_classes: the null label */
  static const float t_values[B] = {0.15f, 0.7f};
  Model *m = model_create(cfg, 3); /* B below max_batch catches code that sizes by max_batch */
  model_init_params(m, 11);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    if (ti->init == INIT_ZERO)
      fill_uniform(m->params + ti->offset, (long)ti->shape[0] * ti->shape[1], -0.3, 0.3);
  }
  int cls = model_kind_get(cfg->kind)->classifier;
  long n = (long)B * cfg->dim, nf = (long)B * cfg->width, no = (long)B * (cls ? cfg->num_classes : cfg->dim);
  DitCase c = {m, alloc_f(no), alloc_f(n), alloc_f(B), alloc_f(no), alloc_f(nf), ops->alloc(sizeof(int) * B), B};
  ops->to_device(c.labels, label_values, sizeof label_values);
  ops->to_device(c.t, t_values, sizeof t_values);
  fill_uniform(c.x, n, -1.5, 1.5);
  fill_uniform(c.R, no, -1, 1);
  fill_uniform(c.Rf, nf, -1, 1);

  float *dx = alloc_f(n);
  model_zero_grad(m);
  dit_loss(&c);
  m->backward(m, dx, c.R, c.Rf, B);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    long size = (long)ti->shape[0] * ti->shape[1] * ti->shape[2] * ti->shape[3];
    check_grad(ti->name, m->params + ti->offset, m->grads + ti->offset, size, dit_loss, &c);
  }
  check_grad("d/dx", c.x, dx, n, dit_loss, &c);

  check_backward_adds_and_frozen("dit", m, dx, n, c.R, c.Rf, B, dit_loss, &c);
  FREE_ALL(c.out, c.x, c.t, c.R, c.Rf, dx);
  ops->free(c.labels);
  model_free(m);
}

/* the tiny DiT of the brief: 1x8x8 images, 4x4 patches (4 tokens), width 16, 2 blocks, 2 heads */
static void test_dit_grad(void) { check_dit(&tiny); }

/* several channels, more tokens, 4 heads of width 4, and no blocks at all */
static void test_dit_grad_shapes(void) {
  ModelConfig c = {.kind = "dit", .dim = 2 * 4 * 4, .num_classes = 3, .width = 16, .depth = 1, .temb_dim = 8,
                   .img_channels = 2, .img_size = 4, .patch = 2, .heads = 4};
  check_dit(&c);
  c.depth = 0;
  check_dit(&c);
}

/* the classifier kind (reward, evaluator): the same blocks, one learned conditioning vector, logits
 * out; t and labels are ignored (the null label above must not matter) */
static void test_classifier_grad(void) {
  ModelConfig c = tiny;
  snprintf(c.kind, sizeof c.kind, "classifier");
  c.num_classes = 4;
  check_dit(&c);
  Model *m = model_create(&c, 2);
  EXPECT(m->feat_dim == c.width, "classifier feat_dim %d", m->feat_dim);
  int has_time = 0, has_head = 0;
  for (int k = 0; k < m->num_tensors; k++)
    has_time += strncmp(m->tensors[k].name, "time.", 5) == 0, has_head += strcmp(m->tensors[k].name, "head.w") == 0;
  EXPECT(!has_time && has_head, "classifier tensors: %d time tensors, head.w %s", has_time, has_head ? "present" : "missing");
  model_free(m);
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static char t_scratch[64], t_ckpt[4200];

static const ModelConfig legacy = {.kind = "mlp", .dim = 2, .num_classes = 3, .width = 8, .depth = 1, .temb_dim = 8};

static void load_other_heads(void *arg) {
  (void)arg;
  ModelConfig c = tiny;
  c.heads = 4; /* same parameter count: only the heads attribute tells them apart */
  Model *m = model_create(&c, 2);
  CkptState st;
  CkptNet net = {"student", m, NULL, NULL};
  model_ckpt_load(t_ckpt, &st, &net, 1);
}

static void test_dit_checkpoint(void) {
  scratch_make(t_scratch, sizeof t_scratch, "dit");
  Model *d = model_create(&tiny, 2), *old = model_create(&legacy, 2);
  model_init_params(d, 5), model_init_params(old, 6);
  fill_uniform(d->params, d->num_params, -1, 1); /* no zero tensors: every value must come back */
  CkptNet nets[2] = {{"student", d, NULL, NULL}, {"legacy", old, NULL, NULL}};
  EXPECT(ckpt_save_in_child(t_scratch, nets, 2), "saving in a child process failed");
  EXPECT(ckpt_latest(t_scratch, t_ckpt, sizeof t_ckpt) == 1, "no checkpoint of step 1 in %s", t_scratch);

  /* make /legacy look like a checkpoint from before the image fields */
  hid_t f = h5_open(t_ckpt, "amd-checkpoint", 1, NULL);
  hid_t g = h5_group_open(f, "legacy");
  const char *fields[] = {"img_channels", "img_size", "patch", "heads"};
  for (int i = 0; i < 4; i++) EXPECT(H5Adelete(g, fields[i]) >= 0, "cannot delete /legacy %s", fields[i]);
  H5Gclose(g);
  h5_close(f);

  ModelConfig c;
  model_ckpt_config(t_ckpt, "student", &c);
  EXPECT(memcmp(&c, &tiny, sizeof c) == 0, "dit config read back differs (kind %s, img %d %d, patch %d, heads %d)",
         c.kind, c.img_channels, c.img_size, c.patch, c.heads);
  model_ckpt_config(t_ckpt, "legacy", &c);
  EXPECT(memcmp(&c, &legacy, sizeof c) == 0, "an old mlp checkpoint reads back with image fields %d %d %d %d",
         c.img_channels, c.img_size, c.patch, c.heads);

  Model *d2 = model_create(&tiny, 2), *old2 = model_create(&legacy, 2);
  CkptState st;
  CkptNet back[2] = {{"student", d2, NULL, NULL}, {"legacy", old2, NULL, NULL}};
  model_ckpt_load(t_ckpt, &st, back, 2);
  EXPECT(memcmp(d->params, d2->params, sizeof(float) * (size_t)d->num_params) == 0, "dit params differ after load");
  EXPECT(memcmp(old->params, old2->params, sizeof(float) * (size_t)old->num_params) == 0, "old mlp params differ");
  EXPECT(expect_fatal(load_other_heads, NULL, "heads"), "a dit with other heads loaded");

  model_free(d), model_free(old), model_free(d2), model_free(old2);
  if (t_case_failures == 0) scratch_remove(t_scratch);
}

int main(void) {
  TEST_RUN(test_layernorm);
  TEST_RUN(test_gelu);
  TEST_RUN(test_vm_exp);
  TEST_RUN(test_vm_tanh);
  TEST_RUN(test_modulate);
  TEST_RUN(test_gated_residual);
  TEST_RUN(test_softmax);
  TEST_RUN(test_gemm_batched);
  TEST_RUN(test_attention);
  TEST_RUN(test_patchify);
  TEST_RUN(test_dit_config);
  TEST_RUN(test_model_kinds);
  TEST_RUN(test_init_kinds);
  TEST_RUN(test_dit_init);
  TEST_RUN(test_dit_grad);
  TEST_RUN(test_dit_grad_shapes);
  TEST_RUN(test_classifier_grad);
  TEST_RUN(test_dit_checkpoint);
  return t_finish();
}
