/* test_philox.c: tests src/philox.c, the CPU randn op and the toy mixture of src/toy2d.c.
 * Philox is checked against Random123's published known-answer vectors (kat_vectors), then the
 * project's keying and the draws built on it against the raw generator; the mixture's layout,
 * sampler, density and nearest mode against closed forms computed here.
 * Not here: the CUDA backend's draws (they are compared with these in the conformance test). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "ops.h"
#include "philox.h"
#include "test.h"
#include "toy2d.h"

static const double T_PI = 3.141592653589793;

/* ---------------------------------------------------------------------------------------------- */
/* Philox4x32-10 */

static void check_kat(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4]) {
  uint32_t out[4];
  philox4x32_10(ctr, key, out);
  for (int i = 0; i < 4; i++)
    EXPECT(out[i] == want[i], "ctr %08x %08x %08x %08x key %08x %08x word %d: got %08x, want %08x", ctr[0], ctr[1],
           ctr[2], ctr[3], key[0], key[1], i, out[i], want[i]);
}

/* Random123 kat_vectors, "philox4x32 10" lines. */
static void test_philox_known_answers(void) {
  {
    const uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0};
    const uint32_t want[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    check_kat(ctr, key, want);
  }
  {
    const uint32_t ctr[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    const uint32_t key[2] = {0xffffffffu, 0xffffffffu};
    const uint32_t want[4] = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
    check_kat(ctr, key, want);
  }
  {
    const uint32_t ctr[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    const uint32_t key[2] = {0xa4093822u, 0x299f31d0u};
    const uint32_t want[4] = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
    check_kat(ctr, key, want);
  }
}

/* (seed, stream, step, index, block) -> ctr {index, step, block, stream}, key {seed lo, seed hi}. */
static void test_rng_keying(void) {
  const uint64_t seed = 0x0123456789abcdefull;
  const uint32_t stream = RNG_NOISE, step = 77, index = 123456, block = 9;
  uint32_t got[4], want[4];
  rng_u32x4(seed, stream, step, index, block, got);
  const uint32_t ctr[4] = {index, step, block, stream}, key[2] = {0x89abcdefu, 0x01234567u};
  philox4x32_10(ctr, key, want);
  EXPECT(memcmp(got, want, sizeof got) == 0, "rng_u32x4 %08x %08x %08x %08x vs philox %08x %08x %08x %08x", got[0],
         got[1], got[2], got[3], want[0], want[1], want[2], want[3]);
  /* every input moves the output: no two of them share a counter word */
  uint32_t other[4];
  const uint32_t args[5][5] = {
      {1, stream, step, index, block}, {0, stream + 1, step, index, block}, {0, stream, step + 1, index, block},
      {0, stream, step, index + 1, block}, {0, stream, step, index, block + 1}};
  for (int a = 0; a < 5; a++) {
    rng_u32x4(seed + (uint64_t)args[a][0] * (1ull << 32), args[a][1], args[a][2], args[a][3], args[a][4], other);
    EXPECT(memcmp(got, other, sizeof got) != 0, "changing argument %d did not change the draw", a);
  }
}

static void test_rng_uniform(void) {
  EXPECT(rng_u01(0) > 0.0 && rng_u01(0xffffffffu) < 1.0, "rng_u01 bounds: %.17g %.17g", rng_u01(0),
         rng_u01(0xffffffffu));
  const uint64_t seed = 42;
  int bad_map = 0, out_of_range = 0;
  double sum = 0;
  const int n = 4000;
  for (uint32_t j = 0; j < (uint32_t)n; j++) {
    double u = rng_uniform(seed, RNG_TIME, 3, 17, j);
    uint32_t w[4];
    rng_u32x4(seed, RNG_TIME, 3, 17, j / 4, w);
    bad_map += u != rng_u01(w[j % 4]);
    out_of_range += !(u > 0.0 && u < 1.0);
    sum += u;
  }
  EXPECT(bad_map == 0, "%d of %d elements do not use word j%%4 of block j/4", bad_map, n);
  EXPECT(out_of_range == 0, "%d of %d uniforms outside (0, 1)", out_of_range, n);
  EXPECT_CLOSE(sum / n, 0.5, 0.02, 0, "mean of uniforms");
}

static void test_rng_normal_moments(void) {
  const long n = 100000;
  float *z = mallocCheck(sizeof(float) * (size_t)n);
  rng_normal(z, n, 7, RNG_NOISE, 0, 0);
  double s = 0, s2 = 0, s4 = 0;
  long nonfinite = 0, beyond6 = 0;
  for (long i = 0; i < n; i++) {
    nonfinite += !isfinite(z[i]);
    beyond6 += fabs(z[i]) > 6;
    s += z[i];
    s2 += (double)z[i] * z[i];
    s4 += (double)z[i] * z[i] * z[i] * z[i];
  }
  double mean = s / n, var = s2 / n - mean * mean;
  EXPECT(nonfinite == 0, "%ld non-finite normals", nonfinite);
  EXPECT(beyond6 == 0, "%ld normals beyond 6 sigma in 100k", beyond6);
  EXPECT_CLOSE(mean, 0.0, 0.02, 0, "mean of 100k normals");
  EXPECT_CLOSE(var, 1.0, 0.03, 0, "variance of 100k normals");
  EXPECT_CLOSE(s4 / n, 3.0, 0.15, 0, "fourth moment of 100k normals");
  free(z);
}

/* Box-Muller on each pair of words, written out again here from the block's raw words. */
static void test_rng_normal_values(void) {
  float z[8];
  rng_normal(z, 8, 99, RNG_SAMPLE, 5, 12);
  for (uint32_t b = 0; b < 2; b++) {
    uint32_t w[4];
    rng_u32x4(99, RNG_SAMPLE, 5, 12, b, w);
    for (int p = 0; p < 2; p++) {
      double r = sqrt(-2.0 * log(rng_u01(w[2 * p]))), a = 2 * T_PI * rng_u01(w[2 * p + 1]);
      EXPECT_CLOSE(z[4 * b + 2 * p], r * cos(a), 1e-6, 1e-6, "cos half of a Box-Muller pair");
      EXPECT_CLOSE(z[4 * b + 2 * p + 1], r * sin(a), 1e-6, 1e-6, "sin half of a Box-Muller pair");
    }
  }
}

/* Odd lengths write exactly n values, and the first k of n equal a call for k. */
static void test_rng_normal_prefix(void) {
  const long n = 37;
  float full[40], part[40];
  rng_normal(full, n, 3, RNG_DROP, 1, 2);
  for (long k = 1; k <= n; k++) {
    for (int i = 0; i < 40; i++) part[i] = -12345.0f;
    rng_normal(part, k, 3, RNG_DROP, 1, 2);
    EXPECT(memcmp(part, full, sizeof(float) * (size_t)k) == 0, "first %ld of %ld differ from a call for %ld", k, n, k);
    int clobbered = 0;
    for (int i = (int)k; i < 40; i++) clobbered += part[i] != -12345.0f;
    EXPECT(clobbered == 0, "a call for %ld wrote %d values past the end", k, clobbered);
  }
}

/* Row b of randn is rng_normal keyed by index0 + b; large enough to take the OpenMP path. */
static void test_ops_cpu_randn(void) {
  const int B = 64, D = 301;
  const uint32_t index0 = 1000;
  float *out = mallocCheck(sizeof(float) * (size_t)B * D), *row = mallocCheck(sizeof(float) * D);
  ops_cpu.randn(out, B, D, 11, RNG_NOISE, 4, index0);
  int bad_rows = 0;
  for (int b = 0; b < B; b++) {
    rng_normal(row, D, 11, RNG_NOISE, 4, index0 + (uint32_t)b);
    bad_rows += memcmp(row, out + (long)b * D, sizeof(float) * D) != 0;
  }
  EXPECT(bad_rows == 0, "%d of %d rows differ from rng_normal(index0 + b)", bad_rows, B);
  free(out);
  free(row);
}

/* ---------------------------------------------------------------------------------------------- */
/* the toy mixture */

static void check_classes_and_weights(const Mixture *m) {
  for (int k = 0; k < m->num_modes; k++)
    EXPECT(m->mode_class[k] == k % m->num_classes, "mode %d has class %d", k, m->mode_class[k]);
  for (int c = 0; c < m->num_classes; c++) {
    double s = 0;
    for (int k = 0; k < m->num_modes; k++)
      if (m->mode_class[k] == c) s += m->weights[k];
    EXPECT_CLOSE(s, 1.0, 1e-6, 0, "weights of one class");
  }
}

static void test_mixture_ring(void) {
  Mixture m;
  mixture_make(&m, "ring", 8, 3, 2.0, 0.1);
  EXPECT(m.dim == 2 && m.num_modes == 8 && m.num_classes == 3 && m.sigma == 0.1, "header %d %d %d %g", m.dim,
         m.num_modes, m.num_classes, m.sigma);
  for (int k = 0; k < 8; k++) {
    EXPECT_CLOSE(m.means[2 * k], 2.0 * cos(2 * T_PI * k / 8), 1e-6, 0, "ring x");
    EXPECT_CLOSE(m.means[2 * k + 1], 2.0 * sin(2 * T_PI * k / 8), 1e-6, 0, "ring y");
  }
  check_classes_and_weights(&m);
  EXPECT_CLOSE(m.weights[0], 1.0 / 3, 1e-6, 0, "class 0 owns modes 0, 3, 6");
  EXPECT_CLOSE(m.weights[2], 1.0 / 2, 1e-6, 0, "class 2 owns modes 2, 5");
  mixture_free(&m);
}

static void test_mixture_grid(void) {
  Mixture m;
  mixture_make(&m, "grid", 9, 2, 1.0, 0.05);
  for (int k = 0; k < 9; k++) {
    EXPECT_CLOSE(m.means[2 * k], -1.0 + (k % 3), 1e-6, 0, "grid x");
    EXPECT_CLOSE(m.means[2 * k + 1], -1.0 + (k / 3), 1e-6, 0, "grid y");
  }
  check_classes_and_weights(&m);
  mixture_free(&m);
  /* not a square number: the first 5 points of a 3 x 3 grid, all distinct */
  mixture_make(&m, "grid", 5, 5, 3.0, 0.2);
  for (int k = 0; k < 5; k++) {
    EXPECT_CLOSE(m.means[2 * k], -3.0 + 3.0 * (k % 3), 1e-6, 0, "grid x (5 modes)");
    EXPECT_CLOSE(m.means[2 * k + 1], -3.0 + 3.0 * (k / 3), 1e-6, 0, "grid y (5 modes)");
  }
  check_classes_and_weights(&m);
  mixture_free(&m);
}

static void make_bad_layout(void *arg) {
  (void)arg;
  Mixture m;
  mixture_make(&m, "hexagon", 8, 2, 1.0, 0.1);
}
static void make_too_many_classes(void *arg) {
  (void)arg;
  Mixture m;
  mixture_make(&m, "ring", 4, 5, 1.0, 0.1);
}
static void make_zero_sigma(void *arg) {
  (void)arg;
  Mixture m;
  mixture_make(&m, "ring", 4, 2, 1.0, 0.0);
}

static void test_mixture_bad_arguments(void) {
  EXPECT(expect_fatal(make_bad_layout, NULL, "expected ring or grid"), "unknown layout");
  EXPECT(expect_fatal(make_too_many_classes, NULL, "classes (5) <= modes (4)"), "more classes than modes");
  EXPECT(expect_fatal(make_zero_sigma, NULL, "must be positive"), "sigma 0");
}

static void test_mixture_sample(void) {
  Mixture m;
  mixture_make(&m, "ring", 8, 3, 2.0, 0.1);
  const long n = 6000;
  float *x = mallocCheck(sizeof(float) * 2 * (size_t)n), *x2 = mallocCheck(sizeof(float) * 2 * (size_t)n);
  int *labels = mallocCheck(sizeof(int) * (size_t)n), *labels2 = mallocCheck(sizeof(int) * (size_t)n);
  mixture_sample(&m, 5, n, x, labels);
  long bad_label = 0, far = 0;
  long per_mode[8] = {0};
  for (long i = 0; i < n; i++) {
    bad_label += labels[i] != (int)(i % 3);
    double best = INFINITY;
    int best_k = -1;
    for (int k = 0; k < 8; k++) {
      if (m.mode_class[k] != labels[i]) continue;
      double dx = x[2 * i] - m.means[2 * k], dy = x[2 * i + 1] - m.means[2 * k + 1];
      double d = sqrt(dx * dx + dy * dy) / m.sigma;
      if (d < best) best = d, best_k = k;
    }
    far += best > 5.0;
    if (best_k >= 0) per_mode[best_k]++;
  }
  EXPECT(bad_label == 0, "%ld labels are not i mod classes", bad_label);
  EXPECT(far == 0, "%ld of %ld samples are more than 5 sigma from every mode of their class", far, n);
  /* within a class the modes are equally weighted: class 0 has 3 modes (2000 samples), class 2 has 2 */
  for (int k = 0; k < 8; k++) {
    double want = (k % 3 == 2) ? 1000.0 : 2000.0 / 3;
    EXPECT_CLOSE((double)per_mode[k], want, 0, 0.15, "samples at one mode");
  }
  mixture_sample(&m, 5, n, x2, labels2);
  EXPECT(memcmp(x, x2, sizeof(float) * 2 * (size_t)n) == 0, "same seed gave different samples");
  mixture_sample(&m, 6, n, x2, labels2);
  EXPECT(memcmp(x, x2, sizeof(float) * 2 * (size_t)n) != 0, "another seed gave the same samples");
  free(x);
  free(x2);
  free(labels);
  free(labels2);
  mixture_free(&m);
}

/* Midpoint rule over a square reaching 8 sigma past every mode. */
static double integrate_density(const Mixture *m, int c, double half, double h) {
  double s = 0;
  int steps = (int)lround(2 * half / h);
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (int i = 0; i < steps; i++)
    for (int j = 0; j < steps; j++) {
      float p[2] = {(float)(-half + (i + 0.5) * h), (float)(-half + (j + 0.5) * h)};
      s += exp(mixture_log_density(m, p, c));
    }
  return s * h * h;
}

static void test_mixture_density(void) {
  Mixture m;
  mixture_make(&m, "ring", 6, 2, 2.0, 0.25);
  EXPECT_CLOSE(integrate_density(&m, -1, 4.0, 0.02), 1.0, 2e-3, 0, "integral of p(x)");
  for (int c = 0; c < 2; c++) EXPECT_CLOSE(integrate_density(&m, c, 4.0, 0.02), 1.0, 2e-3, 0, "integral of p(x | c)");
  mixture_free(&m);

  /* far-apart modes: at a mode of class c, p(x | c) is that mode's weight times the Gaussian peak */
  mixture_make(&m, "grid", 4, 2, 10.0, 0.1);
  const float *mu = m.means + 2 * 3; /* mode 3, class 1, weight 1/2 */
  double peak = log(0.5) - log(2 * T_PI * 0.01);
  EXPECT_CLOSE(mixture_log_density(&m, mu, 1), peak, 1e-9, 1e-9, "log p(mode | its class)");
  EXPECT_CLOSE(mixture_log_density(&m, mu, -1), peak + log(0.5), 1e-9, 1e-9, "log p(mode) with 2 classes");
  float off[2] = {mu[0] + 0.2f, mu[1]};
  EXPECT_CLOSE(mixture_log_density(&m, off, 1), peak - 0.5 * (0.2 / 0.1) * (0.2 / 0.1), 1e-5, 1e-6,
               "log p 2 sigma off a mode");
  /* the other class's density there is tiny but finite (log-sum-exp, no underflow to -inf) */
  double other = mixture_log_density(&m, mu, 0);
  EXPECT(isfinite(other) && other < -1000, "log p(mode of class 1 | class 0) = %g", other);
  mixture_free(&m);
}

static void test_mixture_nearest_mode(void) {
  Mixture m;
  mixture_make(&m, "ring", 8, 2, 2.0, 0.1);
  for (int k = 0; k < 8; k++) {
    float p[2] = {m.means[2 * k] + 0.03f, m.means[2 * k + 1] - 0.04f};
    double d = -1;
    int got = mixture_nearest_mode(&m, p, &d);
    EXPECT(got == k, "nearest to a point by mode %d: %d", k, got);
    EXPECT_CLOSE(d, 0.5, 1e-5, 0, "distance in sigma");
    EXPECT(mixture_nearest_mode(&m, p, NULL) == k, "dist_sigma NULL");
  }
  /* halfway between modes 0 and 1 but nudged toward 1 */
  float p[2] = {0.51f * m.means[2] + 0.49f * m.means[0], 0.51f * m.means[3] + 0.49f * m.means[1]};
  EXPECT(mixture_nearest_mode(&m, p, NULL) == 1, "between modes 0 and 1");
  mixture_free(&m);
}

int main(void) {
  TEST_RUN(test_philox_known_answers);
  TEST_RUN(test_rng_keying);
  TEST_RUN(test_rng_uniform);
  TEST_RUN(test_rng_normal_moments);
  TEST_RUN(test_rng_normal_values);
  TEST_RUN(test_rng_normal_prefix);
  TEST_RUN(test_ops_cpu_randn);
  TEST_RUN(test_mixture_ring);
  TEST_RUN(test_mixture_grid);
  TEST_RUN(test_mixture_bad_arguments);
  TEST_RUN(test_mixture_sample);
  TEST_RUN(test_mixture_density);
  TEST_RUN(test_mixture_nearest_mode);
  return t_finish();
}
