/* philox.c: Philox4x32-10 and the keyed draws built on it. */
#include "philox.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
    uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void rng_u32x4(uint64_t seed, uint32_t stream, uint32_t step, uint32_t index, uint32_t block, uint32_t out[4]) {
  const uint32_t ctr[4] = {index, step, block, stream};
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  philox4x32_10(ctr, key, out);
}

double rng_uniform(uint64_t seed, uint32_t stream, uint32_t step, uint32_t index, uint32_t j) {
  uint32_t w[4];
  rng_u32x4(seed, stream, step, index, j / 4, w);
  return rng_u01(w[j % 4]);
}

void rng_normal(float *out, long n, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index) {
  for (long b = 0; 4 * b < n; b++) {
    uint32_t w[4];
    rng_u32x4(seed, stream, step, index, (uint32_t)b, w);
    for (int p = 0; p < 2; p++) {
      double r = sqrt(-2.0 * log(rng_u01(w[2 * p])));
      double a = 6.283185307179586 * rng_u01(w[2 * p + 1]);
      long j = 4 * b + 2 * p;
      if (j < n) out[j] = (float)(r * cos(a));
      if (j + 1 < n) out[j + 1] = (float)(r * sin(a));
    }
  }
}
