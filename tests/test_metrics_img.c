/* test_metrics_img.c: tests src/metrics_img.c against closed forms and brute force computed here.
 * Frechet distance: a set against itself, diagonal and rotated-and-scaled Gaussians, a 2x2
 * non-commuting pair (tr sqrt M = sqrt(tr M + 2 sqrt det M)), symmetry, and sampled features against
 * the analytic value. Statistics: a hand-computed case and a multi-block set against a two-pass
 * reference. k-NN: radii and precision/recall against O(n^2) double-precision loops, and sets whose
 * answer is known (identical, disjoint, half the modes).
 * Not here: the evaluator network and `amd eval` (their own tests). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics_img.h"
#include "philox.h"
#include "test.h"

static const uint64_t SEED = 0x5eed0fd1d5ull;

/* n standard normals, one Philox index per call site */
static float *normals(long n, uint32_t index) {
  float *x = mallocCheck(sizeof(float) * (size_t)n);
  rng_normal(x, n, SEED, RNG_METRIC, 0, index);
  return x;
}

/* random orthogonal (d, d), row-major: Gram-Schmidt (twice, for orthogonality to rounding) on normals */
static void random_rotation(double *r, int d, uint32_t index) {
  float *g = normals((long)d * d, index);
  for (int i = 0; i < d * d; i++) r[i] = g[i];
  free(g);
  for (int i = 0; i < d; i++) {
    for (int pass = 0; pass < 2; pass++)
      for (int j = 0; j < i; j++) {
        double dot = 0;
        for (int c = 0; c < d; c++) dot += r[i * d + c] * r[j * d + c];
        for (int c = 0; c < d; c++) r[i * d + c] -= dot * r[j * d + c];
      }
    double norm = 0;
    for (int c = 0; c < d; c++) norm += r[i * d + c] * r[i * d + c];
    for (int c = 0; c < d; c++) r[i * d + c] /= sqrt(norm);
  }
}

/* cov (d, d) = R diag(l) R^T */
static void rotated_cov(double *cov, const double *r, const double *l, int d) {
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      double s = 0;
      for (int c = 0; c < d; c++) s += r[i * d + c] * l[c] * r[j * d + c];
      cov[i * d + j] = s;
    }
}

static double trace(const double *a, int d) {
  double t = 0;
  for (int i = 0; i < d; i++) t += a[i * d + i];
  return t;
}

/* ---------------------------------------------------------------------------------------------- */
/* feature statistics */

/* (0,0), (1,1), (2,4), (3,3) plus an offset: mean (1.5, 2) + offset, var x 5/3, var y 10/3, cov 2
 * (denominator n - 1 = 3). */
static void test_feature_stats_small(void) {
  const float base[8] = {0, 0, 1, 1, 2, 4, 3, 3};
  const float off[2] = {1000, -2000};
  float f[8];
  for (int i = 0; i < 4; i++) f[2 * i] = base[2 * i] + off[0], f[2 * i + 1] = base[2 * i + 1] + off[1];
  double mu[2], cov[4];
  feature_stats(f, 4, 2, mu, cov);
  EXPECT_CLOSE(mu[0], 1001.5, 1e-12, 0, "mean x");
  EXPECT_CLOSE(mu[1], -1998.0, 1e-12, 0, "mean y");
  EXPECT_CLOSE(cov[0], 5.0 / 3, 1e-12, 0, "var x");
  EXPECT_CLOSE(cov[3], 10.0 / 3, 1e-12, 0, "var y");
  EXPECT_CLOSE(cov[1], 2.0, 1e-12, 0, "cov xy");
  EXPECT_CLOSE(cov[2], 2.0, 1e-12, 0, "cov yx");
}

/* 2500 rows cross the 1024-row blocks with a ragged end; two-pass double loops as reference. */
static void test_feature_stats_blocks(void) {
  const long n = 2500;
  const int d = 7;
  float *f = normals(n * d, 1);
  for (long i = 0; i < n; i++)
    for (int j = 0; j < d; j++) f[i * d + j] = 50.0f * j + (1.0f + j) * f[i * d + j] + 0.5f * f[i * d + (j + 1) % d];
  double mu[7], cov[49], rmu[7] = {0}, rcov[49] = {0};
  feature_stats(f, n, d, mu, cov);
  for (long i = 0; i < n; i++)
    for (int j = 0; j < d; j++) rmu[j] += f[i * d + j];
  for (int j = 0; j < d; j++) rmu[j] /= n;
  for (long i = 0; i < n; i++)
    for (int a = 0; a < d; a++)
      for (int b = 0; b < d; b++) rcov[a * d + b] += (f[i * d + a] - rmu[a]) * (f[i * d + b] - rmu[b]);
  for (int j = 0; j < d * d; j++) rcov[j] /= n - 1;
  for (int j = 0; j < d; j++) EXPECT_CLOSE(mu[j], rmu[j], 1e-10, 1e-12, "mean");
  for (int j = 0; j < d * d; j++) EXPECT_CLOSE(cov[j], rcov[j], 1e-10, 1e-10, "covariance");
  free(f);
}

/* ---------------------------------------------------------------------------------------------- */
/* Frechet distance */

/* Correlated features with a decaying spectrum, d = 256 as the evaluator gives: FD(x, x) ~ 0. */
static void test_fd_self(void) {
  const long n = 2000;
  const int d = 256;
  float *z = normals(n * d, 2);
  float *f = mallocCheck(sizeof(float) * (size_t)(n * d));
  for (long i = 0; i < n; i++)
    for (int j = 0; j < d; j++)
      f[i * d + j] = (float)(3.0 + z[i * d + j] / (1.0 + 0.05 * j) + 0.7 * z[i * d + (j * 7 + 3) % d]);
  double *mu = mallocCheck(sizeof(double) * d), *cov = mallocCheck(sizeof(double) * d * d);
  feature_stats(f, n, d, mu, cov);
  double fd = frechet_distance(mu, cov, mu, cov, d), tr = trace(cov, d);
  printf("  FD(x, x) = %.3g, tr S = %.4g, relative %.3g\n", fd, tr, fabs(fd) / tr);
  EXPECT(fabs(fd) < 1e-6 * tr, "FD of a set with itself: %g (tr S = %g)", fd, tr);
  free(z), free(f), free(mu), free(cov);
}

/* diagonal S1 = diag(a), S2 = diag(b): FD = |mu1 - mu2|^2 + sum_i (sqrt a_i - sqrt b_i)^2 */
static void test_fd_diagonal(void) {
  enum { D = 8 };
  double mu1[D], mu2[D], c1[D * D] = {0}, c2[D * D] = {0}, want = 0;
  for (int i = 0; i < D; i++) {
    mu1[i] = 0.3 * i, mu2[i] = 1.0 - 0.2 * i;
    double a = 0.5 + i, b = 4.0 / (1 + i);
    c1[i * D + i] = a, c2[i * D + i] = b;
    want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a) - sqrt(b)) * (sqrt(a) - sqrt(b));
  }
  double fd = frechet_distance(mu1, c1, mu2, c2, D);
  printf("  diagonal: FD %.12g, closed form %.12g\n", fd, want);
  EXPECT_CLOSE(fd, want, 1e-12, 1e-10, "diagonal FD");
}

/* S2 = R diag(l) R^T, S1 = c S2: S1^{1/2} S2 S1^{1/2} = c S2^2, so
 * FD = |mu1 - mu2|^2 + (c + 1 - 2 sqrt c) tr S2 = |mu1 - mu2|^2 + (sqrt c - 1)^2 tr S2. */
static void test_fd_rotated_scaled(void) {
  enum { D = 16 };
  const double c = 2.5;
  double r[D * D], l[D], c1[D * D], c2[D * D], mu1[D], mu2[D], dmu = 0;
  random_rotation(r, D, 3);
  for (int i = 0; i < D; i++) l[i] = 0.1 + 0.3 * i, mu1[i] = sin(i), mu2[i] = cos(i);
  for (int i = 0; i < D; i++) dmu += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
  rotated_cov(c2, r, l, D);
  for (int i = 0; i < D * D; i++) c1[i] = c * c2[i];
  EXPECT(fabs(c2[1]) > 0.01, "the rotation leaves S2 non-diagonal: S2[0][1] = %g", c2[1]);
  double want = dmu + (sqrt(c) - 1) * (sqrt(c) - 1) * trace(c2, D);
  double fd = frechet_distance(mu1, c1, mu2, c2, D);
  printf("  rotated, S1 = %.1f S2: FD %.12g, closed form %.12g\n", c, fd, want);
  EXPECT_CLOSE(fd, want, 1e-12, 1e-10, "rotated scaled FD");
}

/* 2x2, S1 S2 != S2 S1: the eigenvalues m1, m2 of M = S1^{1/2} S2 S1^{1/2} give
 * (sqrt m1 + sqrt m2)^2 = tr M + 2 sqrt det M, with tr M = tr(S1 S2), det M = det S1 det S2. */
static void test_fd_2x2_noncommuting(void) {
  const double c1[4] = {2.0, 0.9, 0.9, 1.0}, c2[4] = {0.5, -0.2, -0.2, 3.0};
  const double mu1[2] = {1, 2}, mu2[2] = {-1, 0.5};
  double tr_m = c1[0] * c2[0] + c1[1] * c2[2] + c1[2] * c2[1] + c1[3] * c2[3];
  double det_m = (c1[0] * c1[3] - c1[1] * c1[2]) * (c2[0] * c2[3] - c2[1] * c2[2]);
  double want = 4 + 2.25 + trace(c1, 2) + trace(c2, 2) - 2 * sqrt(tr_m + 2 * sqrt(det_m));
  double fd = frechet_distance(mu1, c1, mu2, c2, 2);
  printf("  2x2 non-commuting: FD %.12g, closed form %.12g\n", fd, want);
  EXPECT_CLOSE(fd, want, 1e-12, 1e-10, "2x2 FD");
}

/* tr sqrt(S1^{1/2} S2 S1^{1/2}) = tr sqrt(S2^{1/2} S1 S2^{1/2}): FD is symmetric, and positive for
 * different Gaussians, with covariances that do not commute. */
static void test_fd_symmetric(void) {
  enum { D = 48 };
  double r1[D * D], r2[D * D], l1[D], l2[D], c1[D * D], c2[D * D], mu[D] = {0};
  random_rotation(r1, D, 4);
  random_rotation(r2, D, 5);
  for (int i = 0; i < D; i++) l1[i] = 1.0 / (1 + i), l2[i] = 0.02 * (i + 1);
  rotated_cov(c1, r1, l1, D);
  rotated_cov(c2, r2, l2, D);
  double a = frechet_distance(mu, c1, mu, c2, D), b = frechet_distance(mu, c2, mu, c1, D);
  printf("  FD(1, 2) %.12g, FD(2, 1) %.12g\n", a, b);
  EXPECT_CLOSE(a, b, 1e-12, 1e-9, "FD(1, 2) vs FD(2, 1)");
  EXPECT(a > 1.0, "FD of two different Gaussians: %g", a);
}

/* Features sampled from N(mu1, c S) and N(mu2, S), S = R diag(l) R^T: the statistics' FD must
 * approach the closed form of test_fd_rotated_scaled (2.48 here). Over 30 seeds the estimate's
 * standard deviation was 0.017 at this n, so the tolerance of 0.1 is about 6 of them. */
static void test_fd_sampled(void) {
  enum { D = 8 };
  const long n = 50000;
  const double c = 0.36;
  double r[D * D], l[D], s[D * D], mu1[D], mu2[D], dmu = 0;
  random_rotation(r, D, 6);
  for (int i = 0; i < D; i++) l[i] = 0.5 + 0.25 * i, mu1[i] = 0.5 * i, mu2[i] = 0.5 * i + (i % 2 ? 0.3 : -0.3);
  for (int i = 0; i < D; i++) dmu += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
  rotated_cov(s, r, l, D);
  double want = dmu + (sqrt(c) - 1) * (sqrt(c) - 1) * trace(s, D);
  float *z1 = normals(n * D, 7), *z2 = normals(n * D, 8);
  float *f1 = mallocCheck(sizeof(float) * (size_t)(n * D)), *f2 = mallocCheck(sizeof(float) * (size_t)(n * D));
  /* x = mu + R diag(sqrt l) z has covariance R diag(l) R^T */
  for (long k = 0; k < n; k++)
    for (int i = 0; i < D; i++) {
      double a = 0, b = 0;
      for (int j = 0; j < D; j++) {
        a += r[i * D + j] * sqrt(l[j]) * z1[k * D + j];
        b += r[i * D + j] * sqrt(l[j]) * z2[k * D + j];
      }
      f1[k * D + i] = (float)(mu1[i] + sqrt(c) * a);
      f2[k * D + i] = (float)(mu2[i] + b);
    }
  double m1[D], m2[D], c1[D * D], c2[D * D];
  feature_stats(f1, n, D, m1, c1);
  feature_stats(f2, n, D, m2, c2);
  double fd = frechet_distance(m1, c1, m2, c2, D);
  printf("  sampled (n = %ld per set): FD %.6g, analytic %.6g, difference %.3g\n", n, fd, want, fd - want);
  EXPECT_CLOSE(fd, want, 0.1, 0, "sampled FD");
  free(z1), free(z2), free(f1), free(f2);
}

static void fd_nan(void *arg) {
  (void)arg;
  double mu[2] = {0, 0}, c1[4] = {1, 0, 0, 1}, c2[4] = {1, 0, 0, NAN};
  frechet_distance(mu, c1, mu, c2, 2);
}

static void knn_k_too_large(void *arg) {
  (void)arg;
  float x[12] = {0};
  double p, r;
  knn_precision_recall(x, 4, x, 3, 3, 3, &p, &r);
}

static void knn_nan(void *arg) {
  (void)arg;
  float x[12] = {0};
  x[7] = NAN;
  double p, r;
  knn_precision_recall(x, 4, x, 4, 3, 2, &p, &r);
}

static void test_bad_input(void) {
  EXPECT(expect_fatal(fd_nan, NULL, "must be finite"), "NaN covariance");
  EXPECT(expect_fatal(knn_k_too_large, NULL, "k = 3 needs 1 <= k <= 2"), "k above the fake set's n - 1");
  EXPECT(expect_fatal(knn_nan, NULL, "NaN or an infinity"), "NaN feature");
}

/* ---------------------------------------------------------------------------------------------- */
/* k-NN radii, precision and recall */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double dist2(const float *a, const float *b, int d) {
  double s = 0;
  for (int c = 0; c < d; c++) s += ((double)a[c] - b[c]) * ((double)a[c] - b[c]);
  return s;
}

/* k-th smallest distance from x_i to the other rows, by sorting all of them */
static void brute_radii(const float *x, long n, int d, int k, double *radius) {
  double *all = mallocCheck(sizeof(double) * (size_t)n);
  for (long i = 0; i < n; i++) {
    long m = 0;
    for (long j = 0; j < n; j++)
      if (j != i) all[m++] = dist2(x + i * d, x + j * d, d);
    qsort(all, (size_t)m, sizeof(double), cmp_double);
    radius[i] = sqrt(all[k - 1]);
  }
  free(all);
}

static long brute_covered(const float *q, long nq, const float *ref, long nref, const double *radius, int d) {
  long covered = 0;
  for (long i = 0; i < nq; i++)
    for (long j = 0; j < nref; j++)
      if (dist2(q + i * d, ref + j * d, d) <= radius[j] * radius[j]) {
        covered++;
        break;
      }
  return covered;
}

/* 600 points (three 256-row blocks, the last ragged), with planted duplicates and a common offset. */
static void test_knn_radii_brute(void) {
  const long n = 600;
  const int d = 10;
  float *x = normals(n * d, 9);
  for (long i = 0; i < n * d; i++) x[i] += 20.0f;
  memcpy(x + 17 * d, x + 5 * d, sizeof(float) * d);
  memcpy(x + 301 * d, x + 300 * d, sizeof(float) * d);
  memcpy(x + 599 * d, x + 300 * d, sizeof(float) * d);
  float *got = mallocCheck(sizeof(float) * n);
  double *want = mallocCheck(sizeof(double) * n);
  const int ks[4] = {1, 2, 5, 17};
  for (int t = 0; t < 4; t++) {
    int k = ks[t];
    knn_radii(x, n, d, k, got);
    brute_radii(x, n, d, k, want);
    double worst = 0;
    for (long i = 0; i < n; i++) {
      double e = fabs(got[i] - want[i]);
      if (e > worst) worst = e;
      EXPECT_CLOSE(got[i], want[i], 1e-5, 1e-5, "k-th neighbour distance");
    }
    printf("  k = %2d: largest |radius - brute force| %.3g\n", k, worst);
  }
  knn_radii(x, n, d, 1, got);
  EXPECT(got[5] == 0 && got[17] == 0, "duplicates 5, 17: 1-NN radius %g %g", got[5], got[17]);
  knn_radii(x, n, d, 2, got);
  EXPECT(got[300] == 0 && got[301] == 0 && got[599] == 0, "triplicate: 2-NN radius %g %g %g", got[300], got[301],
         got[599]);
  free(x), free(got), free(want);
}

/* Overlapping but different sets: precision and recall strictly between 0 and 1 and equal to the
 * brute-force counts (one point of slack for a float-rounded boundary). */
static void test_pr_brute(void) {
  const long nr = 600, nf = 500;
  const int d = 6;
  float *real = normals(nr * d, 10), *fake = normals(nf * d, 11);
  for (long i = 0; i < nf * d; i++) fake[i] = 1.4f * fake[i] + 0.6f;
  double *rr = mallocCheck(sizeof(double) * nr), *rf = mallocCheck(sizeof(double) * nf);
  const int ks[2] = {3, 5};
  for (int t = 0; t < 2; t++) {
    int k = ks[t];
    double p, r;
    knn_precision_recall(real, nr, fake, nf, d, k, &p, &r);
    brute_radii(real, nr, d, k, rr);
    brute_radii(fake, nf, d, k, rf);
    double bp = (double)brute_covered(fake, nf, real, nr, rr, d) / nf;
    double br = (double)brute_covered(real, nr, fake, nf, rf, d) / nr;
    printf("  k = %d: precision %.4f (brute force %.4f), recall %.4f (brute force %.4f)\n", k, p, bp, r, br);
    EXPECT_CLOSE(p, bp, 1.5 / nf, 0, "precision vs brute force");
    EXPECT_CLOSE(r, br, 1.5 / nr, 0, "recall vs brute force");
    EXPECT(p > 0.2 && p < 0.95 && r > 0.2 && r < 0.999, "intermediate values expected: %g %g", p, r);
  }
  free(real), free(fake), free(rr), free(rf);
}

static void test_pr_identical(void) {
  const long n = 500;
  const int d = 16;
  float *real = normals(n * d, 12), *fake = mallocCheck(sizeof(float) * (size_t)(n * d));
  memcpy(fake, real, sizeof(float) * (size_t)(n * d));
  double p = -1, r = -1;
  knn_precision_recall(real, n, fake, n, d, 5, &p, &r);
  printf("  identical sets: precision %.4f, recall %.4f\n", p, r);
  EXPECT(p == 1.0 && r == 1.0, "precision %g, recall %g", p, r);
  free(real), free(fake);
}

static void test_pr_disjoint(void) {
  const long nr = 400, nf = 300;
  const int d = 16;
  float *real = normals(nr * d, 13), *fake = normals(nf * d, 14);
  for (long i = 0; i < nf * d; i++) fake[i] += 100.0f;
  double p = -1, r = -1;
  knn_precision_recall(real, nr, fake, nf, d, 5, &p, &r);
  printf("  far-apart clusters: precision %.4f, recall %.4f\n", p, r);
  EXPECT(p == 0.0 && r == 0.0, "precision %g, recall %g", p, r);
  free(real), free(fake);
}

/* n points around the centres 20 e_{m} for modes m = first, ..., first + count - 1, in d = 4 */
static float *modes(long per_mode, int first, int count, uint32_t index) {
  const int d = 4;
  long n = per_mode * count;
  float *x = normals(n * d, index);
  for (long i = 0; i < n; i++) {
    int m = first + (int)(i / per_mode);
    if (m < d) x[i * d + m] += 20.0f;
    else x[i * d + (m - d)] -= 20.0f; /* modes d..2d-1: at -20 e_{m-d} */
  }
  return x;
}

/* Real data in 4 modes. Fake data in modes 0 and 1 only: every fake point is where real data is
 * (precision ~1) but half the real data is missed (recall ~0.5, never above). Then fake data in all 4
 * modes plus 4 modes real data does not have: precision ~0.5 (never above), recall ~1. */
static void test_pr_half_modes(void) {
  const long per = 150;
  float *real = modes(per, 0, 4, 15);
  float *half = modes(per, 0, 2, 16);
  double p, r;
  knn_precision_recall(real, 4 * per, half, 2 * per, 4, 5, &p, &r);
  printf("  fake in 2 of 4 modes: precision %.4f, recall %.4f\n", p, r);
  EXPECT(p >= 0.9, "precision %g", p);
  EXPECT(r >= 0.42 && r <= 0.5, "recall %g", r);
  float *wide = modes(per, 0, 8, 17);
  knn_precision_recall(real, 4 * per, wide, 8 * per, 4, 5, &p, &r);
  printf("  fake in 4 real + 4 other modes: precision %.4f, recall %.4f\n", p, r);
  EXPECT(p >= 0.42 && p <= 0.5, "precision %g", p);
  EXPECT(r >= 0.9, "recall %g", r);
  free(real), free(half), free(wide);
}

/* A point exactly on a ball's boundary is inside (eq. (1): distance <= radius). Small integers and
 * halves in d = 1 keep every distance exact in float. Real 0..9 with k = 1: every radius is 1. Fake
 * -1 and 10 lie on the boundaries of 0 and 9, 4.5 inside, 12 and -3 outside: precision 3/5. Fake
 * radii (k = 1) are 2, 2, 5.5, 2, 2; real 1 is at distance 2 from -1, on its boundary, and every
 * other real point is within 5.5 of 4.5: recall 1. */
static void test_pr_boundary(void) {
  float real[10], fake[5] = {-1, 10, 4.5f, 12, -3};
  for (int i = 0; i < 10; i++) real[i] = (float)i;
  double p = -1, r = -1;
  knn_precision_recall(real, 10, fake, 5, 1, 1, &p, &r);
  printf("  on the boundary: precision %.4f, recall %.4f\n", p, r);
  EXPECT(p == 0.6, "precision %g, want 0.6", p);
  EXPECT(r == 1.0, "recall %g, want 1", r);
}

static void test_classifier_accuracy(void) {
  const int pred[5] = {0, 1, 2, 3, 4}, labels[5] = {0, 1, 9, 3, 7};
  EXPECT_CLOSE(classifier_accuracy(pred, labels, 5), 0.6, 1e-15, 0, "3 of 5");
  EXPECT(classifier_accuracy(pred, labels, 0) == 0.0, "empty");
}

int main(void) {
  TEST_RUN(test_feature_stats_small);
  TEST_RUN(test_feature_stats_blocks);
  TEST_RUN(test_fd_self);
  TEST_RUN(test_fd_diagonal);
  TEST_RUN(test_fd_rotated_scaled);
  TEST_RUN(test_fd_2x2_noncommuting);
  TEST_RUN(test_fd_symmetric);
  TEST_RUN(test_fd_sampled);
  TEST_RUN(test_bad_input);
  TEST_RUN(test_knn_radii_brute);
  TEST_RUN(test_pr_brute);
  TEST_RUN(test_pr_identical);
  TEST_RUN(test_pr_disjoint);
  TEST_RUN(test_pr_half_modes);
  TEST_RUN(test_pr_boundary);
  TEST_RUN(test_classifier_accuracy);
  return t_finish();
}
