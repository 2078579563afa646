// vmath.h: exp, tanh and the logistic sigmoid in float, written so that the compiler vectorizes
// them, for the GELU and SiLU of the CPU backend.
//
// glibc's scalar tanhf and expf are a call per element and stop `omp simd` loops from vectorizing:
// tanhf was 37% of a DiT training step, and expf (through SiLU's forward and backward) 40% of a toy
// distillation step (benchmarks/RESULTS.md). These are branch-free straight-line float code, so a
// `#pragma omp simd` loop over them runs 4 lanes at a time (8 with AVX2), and their results do not
// depend on the machine's libm:
//   vm_expf:    n = round(x / ln 2), a two-part ln 2 reduction to |r| <= ln2 / 2, the degree-7
//               Taylor polynomial of exp(r) and 2^n put into the exponent bits; x is clamped to
//               [-87.3, 88.3] so that 2^n stays a normal float (exp of less gives about 1.2e-38
//               instead of a denormal or 0, of more 2.1e38 instead of inf); NaN in, NaN out.
//               Max relative error against the double exp: 2.4e-7 (test_dit's test_vm_exp).
//   vm_sigmoidf: 1 / (1 + vm_expf(-x)); max absolute error 9e-8 (1.5 ulp of 1).
//   vm_tanhf:   |u| <  0.625: the odd polynomial u + u^3 P(u^2), P of degree 4 fitted by least
//                             squares in relative error on Chebyshev nodes (max relative error 7.9e-8
//                             in float arithmetic);
//               |u| >= 0.625: (1 - e) / (1 + e) with e = vm_expf(-2|u|) (|u| is clamped at 9,
//                             where tanh is 1 in float).
//               Max absolute error against the double tanh: 9e-8 (1.5 ulp of 1); NaN in, NaN out.
// test_dit checks each over a dense grid. The CUDA backend uses the device functions; the
// conformance tolerance covers the difference.
// Return convention: nothing here can fail; functions return their result.
#pragma once
#include <stdint.h>
#include <string.h>
#include <math.h>

/* cond ? x : y through bit masks, so that the compiler never turns it into a branch (with the
 * default -ftrapping-math GCC will not if-convert a select between float divisions) */
static inline float vm_select(int cond, float x, float y) {
  uint32_t xb, yb, m = (uint32_t)0 - (uint32_t)(cond != 0);
  memcpy(&xb, &x, sizeof xb);
  memcpy(&yb, &y, sizeof yb);
  uint32_t rb = (xb & m) | (yb & ~m);
  float r;
  memcpy(&r, &rb, sizeof r);
  return r;
}

/* exp(x); see the top of the file */
static inline float vm_expf(float x) {
  float xc = vm_select(x > -87.3f, x, -87.3f); /* NaN goes to -87.3 here (no undefined int conversion) */
  xc = vm_select(xc < 88.3f, xc, 88.3f);
  float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
  float r = xc - n * 0.693145752f;
  r = r - n * 1.42860677e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = ((int32_t)n + 127) * (1 << 23);
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return vm_select(x == x, p * scale, x);
}

/* 1 / (1 + exp(-x)) */
static inline float vm_sigmoidf(float x) { return 1.0f / (1.0f + vm_expf(-x)); }

static inline float vm_tanhf(float u) {
  float a = fabsf(u);
  float ac = vm_select(a < 9.0f, a, 9.0f); /* NaN goes to 9 here (no undefined int conversion below) */
  float e = vm_expf(-2.0f * ac);
  float big = (1.0f - e) / (1.0f + e);
  /* the polynomial near 0, where (1 - e) / (1 + e) would lose digits */
  float z = a * a;
  float q = -0.00571896276f;
  q = q * z + 0.0206531249f;
  q = q * z - 0.0537446588f;
  q = q * z + 0.133315131f;
  q = q * z - 0.333332866f;
  float small = a + a * z * q;
  float t = vm_select(a >= 0.625f, big, small); /* NaN takes the polynomial, which keeps it NaN */
  return copysignf(t, u);
}
