/* test_ema.c: the exponential moving average of the weights (core/ema.h, the ema_update op of the
 * CPU backend) against hand values and a double-precision reference:
 *  - the decay schedule: k-diffusion's warm-up min(cap, 1 - (1 + step)^-power) at hand-computed
 *    steps, the cap from the first update with power 0;
 *  - 3000 updates of a drifting parameter vector under the default schedule (cap 0.999, power 3/4),
 *    and 2000 at a constant 0.99 from zero, stay within 2e-6 of the largest parameter from the same
 *    average taken in double (measured: 9e-7 and 4e-7; float rounding is 6e-8 a step);
 *  - power 1 is the plain mean of every update so far (within float rounding);
 *  - a parameter that stays put keeps its average exactly there (the lerp form's fixed point;
 *    decay ema + (1 - decay) p in float drifts away from it);
 *  - decay 0 copies, and a range (a ZeRO shard) reads only its part of the full-length vector.
 * The sharded EMA over ranks and in checkpoints is tests/test_zero.c's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ema.h"
#include "ops.h"
#include "philox.h"
#include "test.h"

static void test_decay_schedule(void) {
  EmaConfig c = {0.999, 0.75};
  EXPECT(ema_decay(&c, 0) == 0, "the first update copies: decay %g", ema_decay(&c, 0));
  EXPECT_CLOSE(ema_decay(&c, 1), 1 - pow(2, -0.75), 0, 1e-15, "step 1");
  EXPECT_CLOSE(ema_decay(&c, 15), 0.875, 0, 1e-15, "step 15: 1 - 16^-3/4 = 1 - 1/8");
  EXPECT_CLOSE(ema_decay(&c, 4095), 1 - 1.0 / 512, 0, 1e-15, "step 4095: 1 - 4096^-3/4");
  EXPECT(ema_decay(&c, 9998) < 0.999, "below the cap before 10K steps: %.9f", ema_decay(&c, 9998));
  EXPECT(ema_decay(&c, 10000) == 0.999 && ema_decay(&c, 1000000) == 0.999, "the cap from 10K steps on");
  EmaConfig flat = {0.99, 0};
  EXPECT(ema_decay(&flat, 0) == 0.99 && ema_decay(&flat, 500) == 0.99, "power 0: the cap from the first update");
  EmaConfig mean = {0.999999999, 1};
  EXPECT_CLOSE(ema_decay(&mean, 9), 0.9, 0, 1e-15, "power 1 at step 9: 9/10");
}

/* Parameters of update s: a slow drift plus noise, of different scales along the vector. */
static void params_at(float *p, long n, int s) {
  rng_normal(p, n, 5, RNG_METRIC, (uint32_t)s, 0);
  for (long i = 0; i < n; i++) p[i] = (float)(0.1 * p[i] + (1 + i % 7) * sin(1e-3 * s + (double)i));
}

/* nsteps updates under c from the first, in float (the op) and in double; the largest difference
 * relative to the largest parameter. */
static double run_vs_double(const EmaConfig *c, long n, int nsteps) {
  float *p = mallocCheck(sizeof(float) * (size_t)n);
  double *ref = callocCheck((size_t)n, sizeof(double)), scale = 0; /* the EMA starts at zero too */
  Ema *e = ema_create_range(0, n);
  for (int s = 0; s < nsteps; s++) {
    params_at(p, n, s);
    double d = ema_decay(c, s);
    ema_update(e, p, d);
    for (long i = 0; i < n; i++) {
      ref[i] = d * ref[i] + (1 - d) * (double)p[i];
      scale = fmax(scale, fabs(p[i]));
    }
  }
  double worst = 0;
  for (long i = 0; i < n; i++) worst = fmax(worst, fabs(e->w[i] - ref[i]));
  ema_free(e), free(p), free(ref);
  return worst / scale;
}

static void test_update_vs_double(void) {
  EmaConfig c = {0.999, 0.75};
  double rel = run_vs_double(&c, 4099, 3000);
  printf("  default schedule, 3000 updates: largest difference to double %.3g of the largest parameter\n", rel);
  EXPECT(rel < 2e-6, "float EMA %.3g from the double reference", rel);
  EmaConfig flat = {0.99, 0};
  rel = run_vs_double(&flat, 1000, 2000);
  printf("  constant decay 0.99 from zero, 2000 updates: %.3g\n", rel);
  EXPECT(rel < 2e-6, "constant decay 0.99: %.3g from the double reference", rel);
}

static void test_power_one_is_mean(void) {
  EmaConfig c = {0.999999999, 1};
  long n = 257;
  int nsteps = 200;
  float *p = mallocCheck(sizeof(float) * (size_t)n);
  double *sum = callocCheck((size_t)n, sizeof(double));
  Ema *e = ema_create_range(0, n);
  for (int s = 0; s < nsteps; s++) {
    params_at(p, n, s);
    ema_update(e, p, ema_decay(&c, s));
    for (long i = 0; i < n; i++) sum[i] += p[i];
  }
  for (long i = 0; i < n; i++) EXPECT_CLOSE(e->w[i], sum[i] / nsteps, 1e-5, 1e-5, "the mean of every update");
  ema_free(e), free(p), free(sum);
}

static void test_fixed_point(void) {
  long n = 1000;
  float *p = mallocCheck(sizeof(float) * (size_t)n);
  params_at(p, n, 0);
  Ema *e = ema_create_range(0, n);
  ema_copy_from(e, p);
  for (int s = 0; s < 500; s++) ema_update(e, p, 0.9999);
  EXPECT(memcmp(e->w, p, sizeof(float) * (size_t)n) == 0, "the average of a parameter that stays put moved");
  ema_free(e), free(p);
}

static void test_copy_and_range(void) {
  long n = 100, begin = 32, len = 48;
  float *p = mallocCheck(sizeof(float) * (size_t)n);
  params_at(p, n, 3);
  Ema *e = ema_create_range(begin, len);
  ops->fill(e->w, 7.0f, len);
  ema_update(e, p, 0.0);
  EXPECT(memcmp(e->w, p + begin, sizeof(float) * (size_t)len) == 0, "decay 0 copies the range");
  float before = e->w[5];
  ema_update(e, p, 0.5);
  EXPECT(e->w[5] == before, "the same parameters keep the average");
  p[begin + 5] += 2.0f;
  ema_update(e, p, 0.75);
  EXPECT_CLOSE(e->w[5], before + 0.25 * 2.0, 1e-6, 0, "a quarter of the step towards the parameter");
  ema_free(e), free(p);
}

int main(void) {
  TEST_RUN(test_decay_schedule);
  TEST_RUN(test_update_vs_double);
  TEST_RUN(test_power_one_is_mean);
  TEST_RUN(test_fixed_point);
  TEST_RUN(test_copy_and_range);
  return t_finish();
}
