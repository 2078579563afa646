/* gradcheck.h: shared pieces of the finite-difference tests (test_grad.c, test_distill.c): the
 * step and tolerances, Philox-filled inputs from a stream no program uses, and small buffer helpers.
 * The including file defines TEST_SEED first, so each program draws its own numbers. */
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common.h"
#include "ops.h"
#include "philox.h"
#include "test.h"

/* Float32 forward passes: a step of 1e-2 keeps the rounding noise in (L(p+h) - L(p-h)) / 2h and the
 * O(h^2) truncation of the smooth layers near 1e-5 (worst seen: 1.4e-5). Many mlp gradients are
 * only about 1e-3, so atol sits well below that (a zeroed gradient must fail) and still about twenty
 * times above the noise; a wrong transpose or a missing term is off by O(|gradient|). */
#define FD_H 1e-2f
#define FD_ATOL 2e-4
#define FD_RTOL 1e-2

static uint32_t t_draws; /* Philox index of the next fill; the fixed call order makes runs identical */

/* x (n) ~ U(lo, hi), from a Philox stream no program uses */
static inline void fill_uniform(float *x, long n, double lo, double hi) {
  uint32_t index = t_draws++;
  for (long i = 0; i < n; i++)
    x[i] = (float)(lo + (hi - lo) * rng_uniform(TEST_SEED, RNG_STREAMS_END, 0, index, (uint32_t)i));
}

static inline float *alloc_f(long n) { return ops->alloc(sizeof(float) * (size_t)n); }

static inline float *host_copy(const float *x, long n) {
  float *c = mallocCheck(sizeof(float) * (size_t)n);
  ops->to_host(c, x, sizeof(float) * (size_t)n);
  return c;
}

static inline double dot(const float *a, const float *b, long n) {
  double s = 0;
  for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

typedef double (*loss_fn)(void *ctx);

/* a second backward into the same buffers must double them (backward ops and models add) */
static inline void expect_doubled(const char *what, const float *now, const float *first, long n) {
  int bad = 0;
  for (long i = 0; i < n; i++) bad += fabs(now[i] - 2.0 * first[i]) > 1e-6 + 1e-6 * fabs(2.0 * first[i]);
  EXPECT(bad == 0, "%s: %d of %ld entries are not twice the first backward's (backward must add)", what, bad, n);
}

/* The worst of a tensor's checked entries, and how many were off. */
typedef struct {
  int bad;
  long worst;
  double ratio, analytic, numeric;
} GradWorst;

/* entry i of grad against the central difference of loss over p[i] */
static inline void grad_entry(GradWorst *w, float *p, const float *grad, long i, loss_fn loss, void *ctx) {
  float saved = p[i], up = saved + FD_H, down = saved - FD_H;
  p[i] = up;
  double lup = loss(ctx);
  p[i] = down;
  double ldown = loss(ctx);
  p[i] = saved;
  double num = (lup - ldown) / ((double)up - (double)down); /* the step actually taken in float */
  double ratio = fabs(grad[i] - num) / (FD_ATOL + FD_RTOL * fabs(num));
  if (ratio > 1) w->bad++;
  if (ratio > w->ratio) w->ratio = ratio, w->worst = i, w->analytic = grad[i], w->numeric = num;
}

/* Compares grad (n) with central differences of loss over p (n). One EXPECT per tensor, naming the
 * worst entry, so a broken gradient prints one line rather than one per element. */
static inline void check_grad(const char *what, float *p, const float *grad, long n, loss_fn loss, void *ctx) {
  GradWorst w = {.ratio = -1};
  for (long i = 0; i < n; i++) grad_entry(&w, p, grad, i, loss, ctx);
  EXPECT(w.bad == 0, "%s: %d of %ld entries off; worst [%ld]: analytic %.6g, numeric %.6g", what, w.bad, n, w.worst,
         w.analytic, w.numeric);
}

/* check_grad on m entries of a larger tensor, spread over it: entry k of the m is floor(k n / m)
 * moved by k mod 7, so that they fall at varied rows and columns of a matrix, the first included; all
 * n when n <= m. For models whose every entry would cost minutes of forwards. */
static inline void check_grad_spread(const char *what, float *p, const float *grad, long n, long m, loss_fn loss,
                                     void *ctx) {
  if (n <= m) {
    check_grad(what, p, grad, n, loss, ctx);
    return;
  }
  GradWorst w = {.ratio = -1};
  for (long k = 0; k < m; k++) {
    long i = k * n / m + k % 7;
    grad_entry(&w, p, grad, i < n ? i : n - 1, loss, ctx);
  }
  EXPECT(w.bad == 0, "%s: %d of %ld checked entries (of %ld) off; worst [%ld]: analytic %.6g, numeric %.6g", what,
         w.bad, m, n, w.worst, w.analytic, w.numeric);
}
