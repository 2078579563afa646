/* test_distill.c: the pieces of the distillation methods (docs/DESIGN.md section 4), each on its
 * own, on the CPU backend: AMD's group-relative advantages and its alpha/beta/fake-weight maps against hand
 * values; the DMD/AMD generator gradient op against a double-precision reference written here from
 * the equations; the toy reward's value and input gradient; the GAN term's gradient through the
 * head and the fake teacher; the generator's backward simulation; the denoiser op; the method names;
 * the prompt draw (a class or a caption index).
 * Gradients are checked against central differences of a loss summed in double, as in test_grad.c.
 * Not here: distill_create / distill_step (they need MPI and run in tests/scenario_distill.sh). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "distill.h"
#include "generator.h"
#include "model.h"
#include "ops.h"
#include "philox.h"
#include "reward.h"
#include "test.h"
#include "toy2d.h"

#define TEST_SEED 20240612u
#include "gradcheck.h"

static long tensor_size(const TensorInfo *t) { return (long)t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3]; }


/* Every parameter tensor of m against its gradient in m->grads (saved before the differences). */
static void check_model_grads(const char *prefix, Model *m, const float *grads, loss_fn loss, void *ctx) {
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    char what[128];
    snprintf(what, sizeof what, "%s %s", prefix, ti->name);
    check_grad(what, m->params + ti->offset, grads + ti->offset, tensor_size(ti), loss, ctx);
  }
}

/* Biases start at zero; give them values so the checks run at a generic point. */
static void randomize_biases(Model *m) {
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    size_t len = strlen(ti->name);
    if (len >= 2 && strcmp(ti->name + len - 2, ".b") == 0) fill_uniform(m->params + ti->offset, tensor_size(ti), -0.3, 0.3);
  }
}

static Model *small_mlp(int max_batch, uint64_t seed) {
  ModelConfig cfg = {.kind = "mlp", .dim = 2, .num_classes = 3, .width = 8, .depth = 1, .temb_dim = 8};
  Model *m = model_create(&cfg, max_batch);
  model_init_params(m, seed);
  randomize_biases(m);
  return m;
}

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* ---- AMD advantages and weights -------------------------------------------------------------- */

static void expect_all(const char *what, const double *got, const double *want, int n, double rtol) {
  for (int i = 0; i < n; i++) {
    char w[96];
    snprintf(w, sizeof w, "%s [%d]", what, i);
    EXPECT_CLOSE(got[i], want[i], 1e-12, rtol, w);
  }
}

static void test_amd_advantages(void) {
  enum { K = 4 };
  double A[3 * K];
  /* two groups: {0, 0, 2, 2} (mean 1, std 1: just under +-1, not clipped) and {1, 2, 3, 4} (mean 2.5,
   * std sqrt(1.25): the ends clipped to +-1), then a group with one outlier (std 4.3301: z of the
   * outlier 1.732, clipped) */
  const double r[3 * K] = {0, 0, 2, 2, 1, 2, 3, 4, 0, 0, 0, 10};
  const double want[3 * K] = {-1 / (1 + 1e-6), -1 / (1 + 1e-6), 1 / (1 + 1e-6), 1 / (1 + 1e-6),
                              -1, -0.447213195500316, 0.447213195500316, 1,
                              -0.577350135856323, -0.577350135856323, -0.577350135856323, 1};
  amd_advantages(A, r, 3 * K, K, 1e-6, 0);
  expect_all("A of three groups", A, want, 3 * K, 1e-12);
  for (int i = 0; i < 3 * K; i++) EXPECT(A[i] >= -1 && A[i] <= 1, "A[%d] = %g outside [-1, 1]", i, A[i]);

  /* tiny spread (std 4.33e-5): eps 1e-6 barely matters, eps 1 shrinks everything to ~1e-5 */
  const double tiny[K] = {1, 1, 1, 1 + 1e-4};
  const double want_small_eps[K] = {-0.564317905404588, -0.564317905404588, -0.564317905404588, 1};
  const double want_eps1[K] = {-2.499891751506e-05, -2.499891751506e-05, -2.499891751506e-05, 7.4996752545402e-05};
  amd_advantages(A, tiny, K, K, 1e-6, 0);
  expect_all("A, tiny spread, eps 1e-6", A, want_small_eps, K, 1e-9);
  amd_advantages(A, tiny, K, K, 1.0, 0);
  expect_all("A, tiny spread, eps 1", A, want_eps1, K, 1e-9);

  /* equal rewards: exactly 0, not NaN */
  const double equal[K] = {-3.5, -3.5, -3.5, -3.5};
  amd_advantages(A, equal, K, K, 1e-6, 0);
  for (int i = 0; i < K; i++) EXPECT(A[i] == 0.0, "equal rewards: A[%d] = %g, want exactly 0", i, A[i]);

  /* K = 1: every sample is its own group */
  amd_advantages(A, r, 3 * K, 1, 1e-6, 0);
  for (int i = 0; i < 3 * K; i++) EXPECT(A[i] == 0.0, "K = 1: A[%d] = %g, want exactly 0", i, A[i]);

  /* groups are consecutive runs of K: permuting within each group permutes its A */
  const double swapped[2 * K] = {2, 0, 2, 0, 4, 3, 2, 1};
  amd_advantages(A, swapped, 2 * K, K, 1e-6, 0);
  const double want_swapped[2 * K] = {want[2], want[0], want[3], want[1], want[7], want[6], want[5], want[4]};
  expect_all("A of permuted groups", A, want_swapped, 2 * K, 1e-12);
}

/* amd.spread_floor: the group's std counts as at least std_floor (f x the batch's reward std, given
 * here as the absolute floor), so near-equal rewards give near-zero advantages; 0 is today's A, bit
 * for bit. */
static void test_amd_spread_floor(void) {
  enum { K = 4 };
  double A[2 * K], B0[2 * K];
  const double r[2 * K] = {0, 0, 2, 2, 1, 2, 3, 4};
  /* floor 0: today's formula, written out here, bit for bit */
  amd_advantages(A, r, 2 * K, K, 1e-6, 0);
  for (int g = 0; g < 2 * K; g += K) {
    double mean = (r[g] + r[g + 1] + r[g + 2] + r[g + 3]) / K, var = 0;
    for (int i = 0; i < K; i++) var += (r[g + i] - mean) * (r[g + i] - mean);
    for (int i = 0; i < K; i++) {
      double a = (r[g + i] - mean) / (sqrt(var / K) + 1e-6);
      B0[g + i] = a < -1 ? -1 : a > 1 ? 1 : a;
    }
  }
  EXPECT(memcmp(A, B0, sizeof A) == 0, "spread_floor 0 changed the advantages' bits");
  /* a floor below both stds (1 and 1.118) changes nothing, bit for bit */
  amd_advantages(B0, r, 2 * K, K, 1e-6, 0.5);
  EXPECT(memcmp(A, B0, sizeof A) == 0, "a floor below the groups' std changed the advantages");
  /* floor 4 on {0, 0, 2, 2} (deviations -1, 1): +-1 / (4 + eps); floor 10 on {1, 2, 3, 4} */
  const double want4[K] = {-0.249999937500016, -0.249999937500016, 0.249999937500016, 0.249999937500016};
  const double want10[K] = {-0.149999985000002, -0.049999995000001, 0.049999995000001, 0.149999985000002};
  amd_advantages(A, r, K, K, 1e-6, 4.0);
  expect_all("A, floor 4", A, want4, K, 1e-12);
  amd_advantages(A, r + K, K, K, 1e-6, 10.0);
  expect_all("A, floor 10", A, want10, K, 1e-12);
  /* near-equal rewards (std 4.33e-5), floor 0.1: near zero, where without it they were -0.56 and +1 */
  const double tiny[K] = {1, 1, 1, 1 + 1e-4};
  const double want_tiny[K] = {-0.000249997500024, -0.000249997500024, -0.000249997500024, 0.000749992500075};
  amd_advantages(A, tiny, K, K, 1e-6, 0.1);
  expect_all("A, tiny spread, floor 0.1", A, want_tiny, K, 1e-9);
  /* equal rewards stay exactly 0 */
  const double equal[K] = {-3.5, -3.5, -3.5, -3.5};
  amd_advantages(A, equal, K, K, 1e-6, 0.1);
  for (int i = 0; i < K; i++) EXPECT(A[i] == 0.0, "equal rewards, floor 0.1: A[%d] = %g, want exactly 0", i, A[i]);
}

/* amd.rls_norm=mean1: W_i = exp(-lambda A_i) / mean over the group of K */
static void test_amd_weights_mean1(void) {
  enum { K = 4, N = 3 * K };
  const double A[N] = {-1, -0.5, 0.5, 1, 0, 0, 0, 0, -0.3, 0.2, 0.9, -0.8};
  const double want[N] = {2.035627446636808, 1.234670458137767, 0.45420987817061, 0.275492217054815, 1, 1, 1, 1,
                          1.124718283343684, 0.682176122387305, 0.338758636974946, 1.854346957294065};
  const double want_l2[K] = {2.785549948778104, 1.024746558511629, 0.138684365741915, 0.051019126968352};
  float w[N];
  amd_weights_mean1(w, A, N, K, 1.0);
  for (int i = 0; i < N; i++) EXPECT_CLOSE(w[i], want[i], 0, 1e-7, "W = exp(-A) / group mean");
  for (int g = 0; g < N; g += K)
    EXPECT_CLOSE((double)w[g] + w[g + 1] + w[g + 2] + w[g + 3], K, 0, 1e-6, "mean1: a group's weights sum to K");
  amd_weights_mean1(w, A, K, K, 2.0);
  for (int i = 0; i < K; i++) EXPECT_CLOSE(w[i], want_l2[i], 0, 1e-7, "W = exp(-2 A) / group mean");
  /* lambda_rls = 0, or K = 1 (A = 0): exactly 1 */
  amd_weights_mean1(w, A, N, K, 0.0);
  for (int i = 0; i < N; i++) EXPECT(w[i] == 1.0f, "mean1, lambda_rls 0: W[%d] = %g, want exactly 1", i, w[i]);
  const double zero[3] = {0, 0, 0};
  amd_weights_mean1(w, zero, 3, 1, 1.0);
  for (int i = 0; i < 3; i++) EXPECT(w[i] == 1.0f, "mean1, K = 1: W[%d] = %g, want exactly 1", i, w[i]);
}

static void test_amd_weights(void) {
  enum { N = 5 };
  const double A[N] = {-1, -0.5, 0, 0.3, 1};
  const double want_alpha[N] = {0.5, 0.75, 1, 1.15, 1.5}, want_beta[N] = {1.5, 1.25, 1, 0.85, 0.5};
  const double want_w[N] = {2.71828182846, 1.6487212707, 1, 0.740818220682, 0.367879441171};
  float alpha[N], beta[N], w[N];
  amd_weights(alpha, beta, w, A, N, 0.5, 1.0);
  for (int i = 0; i < N; i++) {
    EXPECT_CLOSE(alpha[i], want_alpha[i], 0, 1e-7, "alpha = 1 + s A");
    EXPECT_CLOSE(beta[i], want_beta[i], 0, 1e-7, "beta = 1 - s A");
    EXPECT_CLOSE(w[i], want_w[i], 0, 1e-7, "W = exp(-lambda_rls A)");
  }
  /* s = 0, lambda_rls = 0: AMD must reduce exactly to the unweighted method */
  amd_weights(alpha, beta, w, A, N, 0.0, 0.0);
  for (int i = 0; i < N; i++)
    EXPECT(alpha[i] == 1.0f && beta[i] == 1.0f && w[i] == 1.0f, "s = lambda_rls = 0, A = %g: %g %g %g, want 1 1 1",
           A[i], alpha[i], beta[i], w[i]);
  /* any output may be NULL; the others still come out right */
  float only_w[N], only_ab[2][N];
  amd_weights(NULL, NULL, only_w, A, N, 0.5, 1.0);
  amd_weights(only_ab[0], only_ab[1], NULL, A, N, 0.5, 1.0);
  for (int i = 0; i < N; i++) {
    EXPECT_CLOSE(only_w[i], want_w[i], 0, 1e-7, "W with alpha, beta NULL");
    EXPECT_CLOSE(only_ab[0][i], want_alpha[i], 0, 1e-7, "alpha with W NULL");
    EXPECT_CLOSE(only_ab[1][i], want_beta[i], 0, 1e-7, "beta with W NULL");
  }
  amd_weights(NULL, NULL, NULL, A, N, 0.5, 1.0);
}

/* ---- the DMD / AMD generator gradient op ----------------------------------------------------- */

/* docs/DESIGN.md section 4 in double for one sample: d_cfg = d_u + w (d_c - d_u);
 * H = beta (d_c - d_f) + alpha (w - 1)(d_c - d_u) (Eq. 10), or with beta_fake (amd.beta_on=fake)
 * H = alpha (d_cfg - x) - beta (d_f - x); n = mean |x - d_cfg|; loss = 0.5 ||H / n||^2;
 * dx = -scale H / n; stats as in ops.h. */
static void ref_dmd_grad(double *dx, double st[6], const float *x, const float *dc, const float *du, const float *df,
                         double alpha, double beta, double w, double scale, int beta_fake, int D) {
  double n = 0, rr = 0, ff = 0, cu = 0, rf = 0, loss = 0;
  for (int j = 0; j < D; j++) n += fabs(x[j] - (du[j] + w * ((double)dc[j] - du[j])));
  n /= D;
  for (int j = 0; j < D; j++) {
    double cfg = du[j] + w * ((double)dc[j] - du[j]);
    double h = beta_fake ? alpha * (cfg - x[j]) - beta * ((double)df[j] - x[j])
                         : beta * ((double)dc[j] - df[j]) + alpha * (w - 1) * ((double)dc[j] - du[j]);
    loss += 0.5 * (h / n) * (h / n);
    dx[j] = -scale * h / n;
    double r = (double)dc[j] - x[j], f = (double)df[j] - x[j], g = (double)dc[j] - du[j];
    rr += r * r, ff += f * f, cu += g * g, rf += r * f;
  }
  st[0] = loss, st[1] = n, st[2] = sqrt(rr), st[3] = sqrt(ff), st[4] = sqrt(cu), st[5] = rf / sqrt(rr * ff);
}

static void test_dmd_grad(void) {
  enum { B = 3, D = 5 };
  const float w = 2.5f, scale = 0.37f;
  static const char *stat_names[6] = {"loss", "n", "||d_c - x||", "||d_f - x||", "||d_c - d_u||", "cos(d_c - x, d_f - x)"};
  float *x = alloc_f(B * D), *dc = alloc_f(B * D), *du = alloc_f(B * D), *df = alloc_f(B * D);
  float *alpha = alloc_f(B), *beta = alloc_f(B), *dx = alloc_f(B * D), *stats = alloc_f(B * 6);
  fill_uniform(x, B * D, -2, 2);
  fill_uniform(dc, B * D, -2, 2);
  fill_uniform(du, B * D, -2, 2);
  fill_uniform(df, B * D, -2, 2);
  fill_uniform(alpha, B, 0.5, 1.5);
  fill_uniform(beta, B, 0.5, 1.5);
  /* dx and stats are set, not added to: distill.c adds the GAN term into dx right after */
  ops->fill(dx, 7.0f, B * D);
  ops->fill(stats, 7.0f, B * 6);
  ops->dmd_grad(dx, stats, x, dc, du, df, alpha, beta, w, scale, 0, B, D);
  for (int b = 0; b < B; b++) {
    double rdx[D], rst[6];
    ref_dmd_grad(rdx, rst, x + b * D, dc + b * D, du + b * D, df + b * D, alpha[b], beta[b], w, scale, 0, D);
    for (int j = 0; j < D; j++) EXPECT_CLOSE(dx[b * D + j], rdx[j], 1e-6, 1e-5, "dx = -scale H / n");
    for (int k = 0; k < 6; k++) EXPECT_CLOSE(stats[b * 6 + k], rst[k], 1e-6, 1e-5, stat_names[k]);
  }
  /* amd.beta_on=fake: H = alpha (d_cfg - x) - beta (d_f - x), against the same reference; it must
   * differ from Eq. 10 at these alpha, beta (the test above could not pass by ignoring the flag) */
  float *dx_eq10 = host_copy(dx, B * D);
  ops->dmd_grad(dx, stats, x, dc, du, df, alpha, beta, w, scale, 1, B, D);
  double moved = 0;
  for (int b = 0; b < B; b++) {
    double rdx[D], rst[6];
    ref_dmd_grad(rdx, rst, x + b * D, dc + b * D, du + b * D, df + b * D, alpha[b], beta[b], w, scale, 1, D);
    for (int j = 0; j < D; j++) EXPECT_CLOSE(dx[b * D + j], rdx[j], 1e-6, 1e-5, "beta_on=fake: dx = -scale H / n");
    for (int k = 0; k < 6; k++) EXPECT_CLOSE(stats[b * 6 + k], rst[k], 1e-6, 1e-5, stat_names[k]);
    for (int j = 0; j < D; j++) moved = fmax(moved, fabs(dx[b * D + j] - dx_eq10[b * D + j]));
  }
  EXPECT(moved > 1e-3, "beta_on=fake gives Eq. 10's dx (largest difference %g)", moved);
  free(dx_eq10);

  /* alpha = beta = 1 is plain DMD: H = d_cfg - d_f, with beta on the DM term and on the fake teacher */
  ops->fill(alpha, 1.0f, B);
  ops->fill(beta, 1.0f, B);
  for (int beta_fake = 0; beta_fake < 2; beta_fake++) {
    ops->dmd_grad(dx, stats, x, dc, du, df, alpha, beta, w, scale, beta_fake, B, D);
    for (int b = 0; b < B; b++) {
      double n = 0, loss = 0, H[D];
      for (int j = 0; j < D; j++) {
        double cfg = du[b * D + j] + (double)w * ((double)dc[b * D + j] - du[b * D + j]);
        n += fabs(x[b * D + j] - cfg) / D;
        H[j] = cfg - df[b * D + j];
      }
      for (int j = 0; j < D; j++) {
        EXPECT_CLOSE(dx[b * D + j], -scale * H[j] / n, 1e-6, 1e-5,
                     beta_fake ? "DMD, beta_on=fake: dx = -scale (d_cfg - d_f) / n" : "DMD: dx = -scale (d_cfg - d_f) / n");
        loss += 0.5 * (H[j] / n) * (H[j] / n);
      }
      EXPECT_CLOSE(stats[b * 6], loss, 1e-6, 1e-5,
                   beta_fake ? "DMD, beta_on=fake: loss = 0.5 ||(d_cfg - d_f) / n||^2" : "DMD: loss = 0.5 ||(d_cfg - d_f) / n||^2");
    }
  }
  float *bufs[] = {x, dc, du, df, alpha, beta, dx, stats};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
}

static void test_flow_denoise(void) {
  enum { B = 3, D = 4 };
  static const float t_values[B] = {1.0f, 0.5f, 0.13f};
  float *t = alloc_f(B), *xt = alloc_f(B * D), *v = alloc_f(B * D), *d = alloc_f(B * D);
  ops->to_device(t, t_values, sizeof t_values);
  fill_uniform(xt, B * D, -2, 2);
  fill_uniform(v, B * D, -2, 2);
  ops->flow_denoise(d, xt, v, t, B, D);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) {
      int i = b * D + j;
      EXPECT_CLOSE(d[i], (double)xt[i] - (double)t_values[b] * v[i], 1e-6, 1e-6, "d = xt - t v");
    }
  ops->free(t), ops->free(xt), ops->free(v), ops->free(d);
}

/* ---- toy reward ------------------------------------------------------------------------------ */

/* R(x, c) = log sum_{k of class c} p_k w_k N(x; mu_k, (b sigma)^2 I), summed directly in double. */
static double ref_reward(const Mixture *m, const double *pref, double bw, const float *x, int c) {
  double s2 = bw * m->sigma * bw * m->sigma, sum = 0;
  for (int k = 0; k < m->num_modes; k++) {
    if (m->mode_class[k] != c) continue;
    double dx = x[0] - m->means[2 * k], dy = x[1] - m->means[2 * k + 1];
    sum += pref[k] * m->weights[k] * exp(-(dx * dx + dy * dy) / (2 * s2)) / (2 * 3.141592653589793 * s2);
  }
  return log(sum);
}

static void test_reward_toy(void) {
  enum { B = 8 };
  Mixture mix;
  mixture_make(&mix, "ring", 4, 2, 2.0, 0.4); /* class 0: modes at (2, 0), (-2, 0); class 1: (0, 2), (0, -2) */
  /* near a mode, on the axis between a class's two modes, between modes of different classes (a
   * Forbidden Zone), far away */
  static const float x0[B * 2] = {2.1f, -0.05f, 0.1f, 0.15f, 1.0f, 1.1f, 7.0f, -6.0f,
                                  -0.2f, 1.7f, 0.3f, 0.05f, -1.2f, -0.9f, -5.0f, 8.0f};
  static const int labels[B] = {0, 0, 0, 0, 1, 1, 1, 1};
  float x[B * 2], grad[B * 2];
  double r[B], r_up[B], r_down[B];
  memcpy(x, x0, sizeof x);

  /* empty preference, bandwidth 1: exactly the class's log-density */
  ToyReward plain;
  reward_toy_init(&plain, &mix, "", 1.0);
  reward_toy(&plain, r, grad, x, labels, B);
  for (int i = 0; i < B; i++) EXPECT_CLOSE(r[i], mixture_log_density(&mix, x + 2 * i, labels[i]), 1e-10, 1e-12, "R = log p(x | c)");

  static const struct { const char *pref; double p[4]; double bw; } cases[] = {
      {"", {1, 1, 1, 1}, 1.0}, {"1,0.5,0.1,2", {1, 0.5, 0.1, 2}, 1.0}, {"1,0.5,0.1,2", {1, 0.5, 0.1, 2}, 2.0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    ToyReward rw;
    reward_toy_init(&rw, &mix, cases[k].pref, cases[k].bw);
    reward_toy(&rw, r, grad, x, labels, B);
    for (int i = 0; i < B; i++) {
      char what[96];
      snprintf(what, sizeof what, "R, preference '%s', bandwidth %g, point %d", cases[k].pref, cases[k].bw, i);
      EXPECT_CLOSE(r[i], ref_reward(&mix, cases[k].p, cases[k].bw, x + 2 * i, labels[i]), 1e-9, 1e-9, what);
    }
    /* dR/dx by central differences. R is summed in double but from float differences x - mu, whose
     * rounding (~1e-7 |x - mu|) is amplified by 1 / 2h, so the step of the other checks */
    const float h = FD_H;
    for (int j = 0; j < 2; j++) {
      float up[B * 2], down[B * 2];
      memcpy(up, x, sizeof x), memcpy(down, x, sizeof x);
      for (int i = 0; i < B; i++) up[2 * i + j] += h, down[2 * i + j] -= h;
      reward_toy(&rw, r_up, NULL, up, labels, B);
      reward_toy(&rw, r_down, NULL, down, labels, B);
      for (int i = 0; i < B; i++) {
        double num = (r_up[i] - r_down[i]) / ((double)up[2 * i + j] - down[2 * i + j]);
        char what[96];
        snprintf(what, sizeof what, "dR/dx%d, preference '%s', bandwidth %g, point %d", j, cases[k].pref, cases[k].bw, i);
        EXPECT_CLOSE(grad[2 * i + j], num, FD_ATOL, FD_RTOL, what);
      }
    }
  }
  /* the preference moves the gradient: between class 0's modes, p = (1, 0.1) pulls toward (2, 0) */
  ToyReward pref;
  reward_toy_init(&pref, &mix, "1,0.5,0.1,2", 1.0);
  const float mid[2] = {0.0f, 0.0f};
  const int c0 = 0;
  reward_toy(&pref, r, grad, mid, &c0, 1);
  EXPECT(grad[0] > 0.1f, "preference 1 for (2, 0) and 0.1 for (-2, 0): dR/dx at the origin %g, want > 0", grad[0]);
  mixture_free(&mix);
}

typedef struct {
  const char *pref;
  double bandwidth;
} RewardInitArgs;

static void reward_init_child(void *arg) {
  const RewardInitArgs *a = arg;
  Mixture mix;
  mixture_make(&mix, "ring", 4, 2, 2.0, 0.4);
  ToyReward r;
  reward_toy_init(&r, &mix, a->pref, a->bandwidth);
  mixture_free(&mix);
}

static void test_reward_toy_errors(void) {
  static const struct { RewardInitArgs a; const char *needle; } cases[] = {
      {{"1,2,3", 1.0}, "needs 4 comma-separated values"},
      {{"1,2,3,4,5", 1.0}, "more than 4 values"},
      {{"1,0,1,1", 1.0}, "entry 1 is not a positive number"},
      {{"1,1,-2,1", 1.0}, "entry 2 is not a positive number"},
      {{"1,x,1,1", 1.0}, "entry 1 is not a positive number"},
      {{"", 0.0}, "reward.bandwidth"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
    EXPECT(expect_fatal(reward_init_child, (void *)&cases[k].a, cases[k].needle), "preference '%s', bandwidth %g",
           cases[k].a.pref, cases[k].a.bandwidth);
}

/* ---- method names ------------------------------------------------------------------------------ */

static void method_name_child(void *arg) { method_name(*(const Method *)arg); }

/* Every name round-trips through method_from_name, METHOD_CHOICES lists them in order, and an
 * unknown name (or Method) is an error, never a fallback. */
static void test_method_names(void) {
  char choices[64] = "";
  for (int m = 0; m < METHOD_COUNT; m++) {
    Method got = METHOD_COUNT;
    EXPECT(method_from_name(method_name((Method)m), &got) == 0 && got == (Method)m, "'%s' looks up as %d, not %d",
           method_name((Method)m), (int)got, m);
    if (m) strcat(choices, "|");
    strcat(choices, method_name((Method)m));
  }
  EXPECT(strcmp(choices, METHOD_CHOICES) == 0, "METHOD_CHOICES is '%s', the names are '%s'", METHOD_CHOICES, choices);
  static const char *const unknown[] = {"", "DMD", "dmd3", "am", "amd ", " amd", "dmd|dmd2", "sid"};
  for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
    Method got = METHOD_COUNT;
    EXPECT(method_from_name(unknown[k], &got) != 0, "'%s' was taken for a method", unknown[k]);
    EXPECT(got == METHOD_COUNT, "'%s': the failed lookup wrote %d", unknown[k], (int)got);
  }
  static const Method bad = METHOD_COUNT;
  EXPECT(expect_fatal(method_name_child, (void *)&bad, "is not a method"), "method_name(METHOD_COUNT)");
}

/* ---- GAN head on the fake teacher's features ------------------------------------------------- */

typedef struct {
  Model *fake, *head;
  float *x, *t, *v, *logit; /* (B, 2), (B), (B, 2), (B) */
  int *labels;              /* (B) */
  int B;
  double sign;
} GanCase;

/* sum_i softplus(sign * head(features(fake(x_i, t_i, c_i)))) */
static double gan_loss(void *ctx) {
  GanCase *c = ctx;
  c->fake->forward(c->fake, c->v, c->x, c->t, c->labels, c->B);
  c->head->forward(c->head, c->logit, c->fake->features(c->fake), NULL, NULL, c->B);
  double s = 0;
  for (int i = 0; i < c->B; i++) s += softplus(c->sign * c->logit[i]);
  return s;
}

typedef struct {
  Model *head;
  float *feat, *logit; /* (B, H), (B) */
  int B;
  double sign;
} HeadCase;

static double head_loss(void *ctx) {
  HeadCase *c = ctx;
  c->head->forward(c->head, c->logit, c->feat, NULL, NULL, c->B);
  double s = 0;
  for (int i = 0; i < c->B; i++) s += softplus(c->sign * c->logit[i]);
  return s;
}

/* dlogit = d/dlogit softplus(sign logit) = sign sigmoid(sign logit), as in distill.c's gan_term */
static void softplus_grad(float *dlogit, const float *logit, int B, double sign) {
  for (int i = 0; i < B; i++) dlogit[i] = (float)(sign / (1.0 + exp(-sign * logit[i])));
}

static void test_gan_head_grad(void) {
  enum { B = 4 };
  static const int label_values[B] = {0, 2, 3, 1}; /* 3 = the null label */
  static const float t_values[B] = {0.1f, 0.45f, 0.7f, 0.93f};
  Model *fake = small_mlp(B, 11);
  int H = fake->feat_dim;
  ModelConfig hc = {.kind = "head", .dim = H};
  Model *head = model_create(&hc, B);
  model_init_params(head, 12);
  randomize_biases(head);
  GanCase c = {fake, head, alloc_f(B * 2), alloc_f(B), alloc_f(B * 2), alloc_f(B), ops->alloc(sizeof(int) * B), B, 0};
  ops->to_device(c.labels, label_values, sizeof label_values);
  ops->to_device(c.t, t_values, sizeof t_values);
  fill_uniform(c.x, B * 2, -2, 2);
  float *dlogit = alloc_f(B), *dfeat = alloc_f((long)B * H), *dx = alloc_f(B * 2);

  for (int s = 0; s < 2; s++) {
    c.sign = s ? 1.0 : -1.0;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "sign %+g:", c.sign);

    /* the head alone: its input gradient is what reaches the fake teacher's features */
    HeadCase h = {head, alloc_f((long)B * H), alloc_f(B), B, c.sign};
    fill_uniform(h.feat, (long)B * H, -1, 2);
    model_zero_grad(head);
    head_loss(&h);
    softplus_grad(dlogit, h.logit, B, c.sign);
    ops->fill(dfeat, 0.0f, (long)B * H);
    head->backward(head, dfeat, dlogit, NULL, B);
    char what[64];
    snprintf(what, sizeof what, "%s head d/d features", prefix);
    float *hg = host_copy(head->grads, head->num_params);
    check_grad(what, h.feat, dfeat, (long)B * H, head_loss, &h);
    check_model_grads(prefix, head, hg, head_loss, &h);
    free(hg);
    ops->free(h.feat), ops->free(h.logit);

    /* the whole term: head on the fake teacher's features, back into the fake teacher and x */
    model_zero_grad(fake);
    model_zero_grad(head);
    gan_loss(&c);
    softplus_grad(dlogit, c.logit, B, c.sign);
    ops->fill(dfeat, 0.0f, (long)B * H);
    head->backward(head, dfeat, dlogit, NULL, B);
    ops->fill(dx, 0.0f, B * 2);
    fake->backward(fake, dx, NULL, dfeat, B);
    float *fg = host_copy(fake->grads, fake->num_params), *hg2 = host_copy(head->grads, head->num_params);
    snprintf(what, sizeof what, "%s d/dx through the fake teacher", prefix);
    check_grad(what, c.x, dx, B * 2, gan_loss, &c);
    check_model_grads(prefix, head, hg2, gan_loss, &c);
    check_model_grads(prefix, fake, fg, gan_loss, &c);
    /* the output layer does not feed the features: no gradient may reach it */
    for (int k = 0; k < fake->num_tensors; k++) {
      const TensorInfo *ti = &fake->tensors[k];
      if (strncmp(ti->name, "out.", 4) != 0) continue;
      for (long i = 0; i < tensor_size(ti); i++)
        EXPECT(fg[ti->offset + i] == 0.0f, "%s %s[%ld] has gradient %g without dout", prefix, ti->name, i, fg[ti->offset + i]);
    }
    free(fg), free(hg2);
  }
  ops->free(c.x), ops->free(c.t), ops->free(c.v), ops->free(c.logit), ops->free(c.labels);
  ops->free(dlogit), ops->free(dfeat), ops->free(dx);
  model_free(fake);
  model_free(head);
}

/* ---- generator: backward simulation ---------------------------------------------------------- */

typedef struct {
  Generator *g;
  Model *m;
  float *x, *R, *xt2, *t2, *v; /* (B, 2), (B, 2), (B, 2) fixed second-step input, (B) = t_2, (B, 2) */
  int *labels;
  int B, k;
  uint64_t seed;
  uint32_t key, index0;
} GenCase;

/* k = 1: sum(G(e) R). k = 2: sum(x R) with x = x_t2 - t_2 v(x_t2, t_2, c), x_t2 held fixed (the
 * first step runs without gradient in backward simulation). */
static double gen_loss(void *ctx) {
  GenCase *c = ctx;
  if (c->k == 1) {
    generator_run(c->g, c->x, c->labels, c->B, 1, c->seed, c->key, c->index0);
    return dot(c->x, c->R, (long)c->B * 2);
  }
  c->m->forward(c->m, c->v, c->xt2, c->t2, c->labels, c->B);
  double s = 0;
  for (int i = 0; i < c->B; i++)
    for (int j = 0; j < 2; j++) s += ((double)c->xt2[2 * i + j] - (double)c->t2[i] * c->v[2 * i + j]) * c->R[2 * i + j];
  return s;
}

static void test_generator_backward(void) {
  enum { B = 4, S = 2 };
  static const int label_values[B] = {0, 3, 1, 2};
  Model *m = small_mlp(B, 21);
  Generator *g = generator_create(m, S, B);
  GenCase c = {g, m, alloc_f(B * 2), alloc_f(B * 2), alloc_f(B * 2), alloc_f(B), alloc_f(B * 2),
               ops->alloc(sizeof(int) * B), B, 1, 99, 7, 5};
  ops->to_device(c.labels, label_values, sizeof label_values);
  fill_uniform(c.R, B * 2, -1, 1);
  float *e = alloc_f(B * 2), *t1 = alloc_f(B), *v = alloc_f(B * 2), *x2 = alloc_f(B * 2);
  ops->fill(t1, 1.0f, B);
  ops->fill(c.t2, 0.5f, B); /* t_2 = 1 - 1/S */

  /* step 1 is x0 = e - 1 v(e, 1, c), e keyed (seed, RNG_GEN, key, index) */
  generator_run(g, c.x, c.labels, B, 1, c.seed, c.key, c.index0);
  ops->randn(e, B, 2, c.seed, RNG_GEN, c.key, c.index0);
  m->forward(m, v, e, t1, c.labels, B);
  for (int i = 0; i < B * 2; i++) EXPECT_CLOSE(c.x[i], (double)e[i] - v[i], 1e-6, 1e-6, "step 1: x0 = e - v(e, 1, c)");
  /* step 2's input x_t2 = (1 - t_2) x0_1 + t_2 e_1, e_1 keyed (seed, RNG_RENOISE, key * 8 + 0, index) */
  ops->randn(e, B, 2, c.seed, RNG_RENOISE, c.key * 8u, c.index0);
  for (int i = 0; i < B * 2; i++) c.xt2[i] = 0.5f * c.x[i] + 0.5f * e[i];
  generator_run(g, x2, c.labels, B, 2, c.seed, c.key, c.index0);
  c.k = 2;
  gen_loss(&c);
  for (int i = 0; i < B * 2; i++)
    EXPECT_CLOSE(x2[i], (double)c.xt2[i] - 0.5 * c.v[i], 1e-5, 1e-5, "step 2: x0 = x_t2 - t_2 v(x_t2, t_2, c)");

  for (c.k = 1; c.k <= S; c.k++) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "k = %d:", c.k);
    model_zero_grad(m);
    generator_run(g, c.x, c.labels, B, c.k, c.seed, c.key, c.index0);
    generator_backward(g, c.R, B);
    float *grads = host_copy(m->grads, m->num_params);
    generator_backward(g, c.R, B); /* adds: twice the first */
    int bad = 0;
    for (long i = 0; i < m->num_params; i++) bad += fabs(m->grads[i] - 2.0 * grads[i]) > 1e-6 + 1e-6 * fabs(2.0 * grads[i]);
    EXPECT(bad == 0, "%s %d gradients not doubled by a second generator_backward (it must add)", prefix, bad);
    check_model_grads(prefix, m, grads, gen_loss, &c);
    free(grads);
  }
  float *bufs[] = {c.x, c.R, c.xt2, c.t2, c.v, e, t1, v, x2};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  ops->free(c.labels);
  generator_free(g);
  model_free(m);
}

/* The grid t_k = 1 - (k - 1) / S and the re-noising x_{t_{k+1}} = (1 - t_{k+1}) x0_k + t_{k+1} e_k,
 * e_k keyed (seed, RNG_RENOISE, key * 8 + k - 1, index), rebuilt here step by step for S = 3 (with
 * S = 2, t_2 = 1 - t_2 hides a swap of the two weights). */
static void test_generator_steps(void) {
  enum { B = 3, S = 3, D = 2 };
  static const int label_values[B] = {2, 0, 3};
  const uint64_t seed = 17;
  const uint32_t key = 9, index0 = 4;
  Model *m = small_mlp(B, 41);
  Generator *g = generator_create(m, S, B);
  int *labels = ops->alloc(sizeof(int) * B);
  ops->to_device(labels, label_values, sizeof label_values);
  float *xt = alloc_f(B * D), *v = alloc_f(B * D), *e = alloc_f(B * D), *t = alloc_f(B), *x = alloc_f(B * D);
  float x0[B * D];
  ops->randn(xt, B, D, seed, RNG_GEN, key, index0);
  for (int k = 1; k <= S; k++) {
    double tk = 1.0 - (double)(k - 1) / S;
    ops->fill(t, (float)tk, B);
    m->forward(m, v, xt, t, labels, B);
    for (int i = 0; i < B * D; i++) x0[i] = (float)((double)xt[i] - tk * v[i]);
    generator_run(g, x, labels, B, k, seed, key, index0);
    for (int i = 0; i < B * D; i++)
      EXPECT_CLOSE(x[i], x0[i], 1e-5, 1e-5, k == 1 ? "S = 3, step 1" : k == 2 ? "S = 3, step 2" : "S = 3, step 3");
    if (k == S) break;
    double tn = 1.0 - (double)k / S;
    ops->randn(e, B, D, seed, RNG_RENOISE, key * 8u + (uint32_t)(k - 1), index0);
    for (int i = 0; i < B * D; i++) xt[i] = (float)((1.0 - tn) * x0[i] + tn * e[i]);
  }
  ops->free(xt), ops->free(v), ops->free(e), ops->free(t), ops->free(x), ops->free(labels);
  generator_free(g);
  model_free(m);
}

/* The same keys give the same batch; row b of a call at index0 = 3 is row b + 3 of a call at
 * index0 = 0 (so a rank's share of a global batch does not depend on the rank count). */
static void test_generator_keys(void) {
  enum { B = 5, S = 2, SHIFT = 3 };
  static const int label_values[B] = {1, 0, 2, 3, 1};
  Model *m = small_mlp(B, 31);
  Generator *g = generator_create(m, S, B);
  int *labels = ops->alloc(sizeof(int) * B), *labels_shift = ops->alloc(sizeof(int) * B);
  ops->to_device(labels, label_values, sizeof label_values);
  ops->to_device(labels_shift, label_values + SHIFT, sizeof(int) * (B - SHIFT));
  float *a = alloc_f(B * 2), *b = alloc_f(B * 2), *shifted = alloc_f(B * 2);
  for (int k = 1; k <= S; k++) {
    generator_run(g, a, labels, B, k, 5, 42, 0);
    generator_run(g, b, labels, B, k, 5, 42, 0);
    EXPECT(memcmp(a, b, sizeof(float) * B * 2) == 0, "k = %d: two runs with the same keys differ", k);
    generator_run(g, shifted, labels_shift, B - SHIFT, k, 5, 42, SHIFT);
    for (int i = 0; i < (B - SHIFT) * 2; i++)
      EXPECT_CLOSE(shifted[i], a[SHIFT * 2 + i], 1e-6, 1e-6, k == 1 ? "k = 1: index0 shifts the rows" : "k = 2: index0 shifts the rows");
    generator_run(g, b, labels, B, k, 5, 43, 0);
    int same = 0;
    for (int i = 0; i < B * 2; i++) same += a[i] == b[i];
    EXPECT(same == 0, "k = %d: another key left %d of %d entries unchanged", k, same, B * 2);
  }
  ops->free(a), ops->free(b), ops->free(shifted), ops->free(labels), ops->free(labels_shift);
  generator_free(g);
  model_free(m);
}

/* distill_prompt_index: prompt p of an update is the Philox word of (RNG_PROMPT, key, p) modulo the
 * choices (the class draw as it always was), a pure function of the global prompt index (so any rank
 * count draws the same batch), uniform over a caption teacher's N captions, other keys other draws. */
static void test_prompt_index(void) {
  const uint64_t seed = 7;
  for (long p = 0; p < 64; p++) {
    uint32_t w[4];
    rng_u32x4(seed, RNG_PROMPT, 12u, (uint32_t)p, 0, w);
    EXPECT(distill_prompt_index(seed, 12u, p, 10) == (long)(w[0] % 10u), "prompt %ld: not the class draw", p);
  }
  enum { N = 64, DRAWS = 64 * N };
  int count[N] = {0}, moved = 0;
  for (long p = 0; p < DRAWS; p++) {
    long i = distill_prompt_index(seed, 3u, p, N);
    EXPECT(i >= 0 && i < N, "prompt %ld: caption %ld outside [0, %d)", p, i, N);
    if (i < 0 || i >= N) return;
    count[i]++;
    moved += i != distill_prompt_index(seed, 4u, p, N);
  }
  for (int i = 0; i < N; i++) /* 64 expected, standard deviation about 8 */
    EXPECT(count[i] >= 24 && count[i] <= 104, "caption %d drawn %d times of %d (64 expected)", i, count[i], DRAWS);
  EXPECT(moved > DRAWS * 9 / 10, "another key drew the same caption for %d of %d prompts", DRAWS - moved, DRAWS);
}

int main(void) {
  TEST_RUN(test_prompt_index);
  TEST_RUN(test_amd_advantages);
  TEST_RUN(test_amd_spread_floor);
  TEST_RUN(test_amd_weights);
  TEST_RUN(test_amd_weights_mean1);
  TEST_RUN(test_dmd_grad);
  TEST_RUN(test_flow_denoise);
  TEST_RUN(test_reward_toy);
  TEST_RUN(test_reward_toy_errors);
  TEST_RUN(test_method_names);
  TEST_RUN(test_gan_head_grad);
  TEST_RUN(test_generator_backward);
  TEST_RUN(test_generator_steps);
  TEST_RUN(test_generator_keys);
  return t_finish();
}
