/* test_cuda.c: the CUDA backend against the CPU backend (docs/DESIGN.md section 10), in the manner
 * of ggml's test-backend-ops: every op of core/ops.h runs on the same inputs on both backends (outputs too are
 * filled with random values first, so an op that must add and one that must overwrite are both
 * checked), and each output is compared by its normalized mean squared error
 *   NMSE = sum (cuda - cpu)^2 / sum cpu^2
 * against a bound per op: 0 for the ops that only move or add numbers in the CPU's order, about
 * float rounding (1e-10) for pointwise maps where nvcc may fuse a multiply-add, more for GEMMs whose
 * sums run in another order. Philox normals must be bit-identical. Then whole steps on both
 * backends, compared the same way: dit and mlp teacher training steps, a classifier step and its
 * reward gradient, the cross-attention layer's forward and backward (key padding mask, the empty
 * caption), and two distillation steps of each method, dmd, dmd2, dmdr and amd (dit, the GAN
 * head but for dmd, the classifier reward for dmdr and amd).
 * Each case prints its measured NMSE, so a GPU run shows the margins.
 * In a build without the CUDA backend, or on a machine without a usable device, it prints one
 * "SKIP cuda: reason" line and exits 0; in the latter case it still checks the device selection
 * (device=cuda is a clear error, device=auto runs on the CPU).
 * Not here: timings (benchmarks). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "ops.h"
#include "test.h"

#ifndef AMD_CUDA
int main(void) {
  printf("SKIP cuda: this build has no CUDA backend (`make CUDA=1` builds build-cuda/tests/test_cuda)\n");
  return 0;
}
#else

#include "attention.h"
#include "caption.h"
#include "classifier.h"
#include "cross_attention.h"
#include "dist.h"
#include "distill.h"
#include "flow.h"
#include "model.h"
#include "ops_cuda.h"
#include "ops_profile.h"
#include "optim.h"
#include "philox.h"
#include "reward.h"

#define TEST_SEED 20260301u

static uint32_t draws; /* Philox index of the next fill; a fixed call order makes runs identical */

/* n values U(lo, hi) from Philox stream `step` at `index` of a stream no program uses */
static float *uniform_at(long n, double lo, double hi, uint32_t step, uint32_t index) {
  float *x = mallocCheck(sizeof(float) * (size_t)(n ? n : 1));
  for (long i = 0; i < n; i++)
    x[i] = (float)(lo + (hi - lo) * rng_uniform(TEST_SEED, RNG_STREAMS_END, step, index, (uint32_t)i));
  return x;
}

/* fresh values at each call */
static float *host_uniform(long n, double lo, double hi) { return uniform_at(n, lo, hi, 0, draws++); }

/* NMSE of got against the reference want; the largest absolute difference goes to *maxdiff */
static double nmse(const float *got, const float *want, long n, double *maxdiff) {
  double num = 0, den = 0, mx = 0;
  for (long i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    if (!isfinite(got[i]) || !isfinite(want[i])) d = (isnan(got[i]) && isnan(want[i])) || got[i] == want[i] ? 0 : INFINITY;
    num += d * d, den += (double)want[i] * want[i];
    if (fabs(d) > mx) mx = fabs(d);
  }
  if (maxdiff) *maxdiff = mx;
  return num == 0 ? 0 : num / (den > 0 ? den : 1e-300);
}

static void expect_nmse(const char *what, const float *got, const float *want, long n, double bound) {
  double mx;
  double e = nmse(got, want, n, &mx);
  printf("  %-44s NMSE %9.3g (bound %7.1g), max |diff| %.3g\n", what, e, bound, mx);
  EXPECT(e <= bound, "%s: NMSE %.3g above %.3g (max |diff| %.3g)", what, e, bound, mx);
}

/* ---- the op harness ------------------------------------------------------------------------- */

#define MAXBUF 12
typedef struct Case Case;
typedef void (*op_fn)(const amd_ops *o, void *const *p, const Case *c);
struct Case {
  int n;
  long len[MAXBUF]; /* elements */
  int is_int[MAXBUF], compare[MAXBUF];
  void *host[MAXBUF]; /* initial contents, the same for both backends */
  int s[10];          /* sizes and flags the op function reads */
  float f[4];         /* scalars */
};

/* The op-level cases run the CUDA table through the op profiler (src/ops_profile.h), whose wrappers
 * are generated from core/ops_list.h and count each op's calls, so test_every_op_has_a_case can
 * check that no op of the list goes without a conformance case. */
static const amd_ops *cuda_counted = &ops_cuda;

static void counted_init(void) {
  const amd_ops *was = ops;
  ops = &ops_cuda;
  CHECK(ops_profile_enable(), "the op profiler is on already (AMD_PROFILE?)");
  cuda_counted = ops;
  ops = was;
}

static const amd_ops *backend[2] = {&ops_cpu, &ops_cuda};

/* a float buffer of n values in [lo, hi); compare = 1 marks an output */
static int buf_f(Case *c, long n, double lo, double hi, int compare) {
  int i = c->n++;
  CHECK(i < MAXBUF, "test case has more than %d buffers", MAXBUF);
  c->len[i] = n, c->is_int[i] = 0, c->compare[i] = compare;
  c->host[i] = host_uniform(n, lo, hi);
  return i;
}

/* an int buffer of n ids in [0, hi), with repeats */
static int buf_ids(Case *c, long n, int hi) {
  int i = c->n++;
  CHECK(i < MAXBUF, "test case has more than %d buffers", MAXBUF);
  c->len[i] = n, c->is_int[i] = 1, c->compare[i] = 0;
  int *ids = mallocCheck(sizeof(int) * (size_t)n);
  for (long k = 0; k < n; k++) ids[k] = (int)((k * 7 + 3) % hi);
  c->host[i] = ids;
  return i;
}

/* Runs op on both backends from the same inputs and compares every output buffer. */
static void run_case(const char *name, Case *c, op_fn op, double bound) {
  void *out[2][MAXBUF];
  for (int k = 0; k < 2; k++) {
    const amd_ops *o = backend[k];
    void *dev[MAXBUF];
    for (int i = 0; i < c->n; i++) {
      size_t bytes = 4 * (size_t)c->len[i];
      dev[i] = o->alloc(bytes);
      o->to_device(dev[i], c->host[i], bytes);
    }
    op(o, dev, c);
    for (int i = 0; i < c->n; i++) {
      size_t bytes = 4 * (size_t)c->len[i];
      out[k][i] = mallocCheck(bytes ? bytes : 1);
      o->to_host(out[k][i], dev[i], bytes);
      o->free(dev[i]);
    }
  }
  for (int i = 0; i < c->n; i++) {
    if (c->compare[i]) {
      char what[96];
      snprintf(what, sizeof what, "%s [out %d]", name, i);
      expect_nmse(what, out[1][i], out[0][i], c->len[i], bound);
    }
    free(out[0][i]), free(out[1][i]), free(c->host[i]);
  }
  memset(c, 0, sizeof *c);
}

#define F(i) ((float *)p[i])
#define I(i) ((const int *)p[i])
#define EXACT 0.0
#define POINTWISE 1e-10 /* float rounding, fused multiply-adds */
#define GEMM 1e-9       /* float32 sums in another order */
/* precision=bf16 against float32: inputs in (-1, 1) rounded to bf16 each carry a relative error
 * of at most 2^-9 (uniform, variance 2^-18 / 3), so a product's has variance 2^-17 / 3 and the NMSE
 * of a sum of independent products is about 2.5e-6 (1.3e-5 measured at worst, on a 30-value case);
 * the bound is 20 times the expected value */
#define BF16 5e-5

/* ---- the table -------------------------------------------------------------------------------- */

/* every op of core/ops_list.h is in the CUDA table (the start-up check; tests/test_grad.c shows it
 * names an op that is missing) */
static void test_table_complete(void) {
  const char *missing = ops_missing(&ops_cuda);
  EXPECT(missing == NULL, "the CUDA table lacks %s", missing);
}

/* ---- memory ----------------------------------------------------------------------------------- */

static void test_memory(void) {
  const amd_ops *o = cuda_counted;
  enum { N = 1000 };
  float *h = host_uniform(N, -1, 1), back[N];
  float *a = o->alloc(sizeof back), *b = o->alloc(sizeof back);
  o->to_host(back, a, sizeof back);
  int zero = 1;
  for (int i = 0; i < N; i++) zero &= back[i] == 0.0f;
  EXPECT(zero, "alloc is not zero-filled");
  o->to_device(a, h, sizeof back);
  o->copy(b, a, sizeof back);
  o->to_host(back, b, sizeof back);
  EXPECT(memcmp(back, h, sizeof back) == 0, "to_device, copy, to_host do not round-trip");
  o->fill(b + 10, 2.5f, 20);
  o->synchronize();
  o->to_host(back, b, sizeof back);
  int ok = 1;
  for (int i = 0; i < N; i++) ok &= back[i] == (i >= 10 && i < 30 ? 2.5f : h[i]);
  EXPECT(ok, "fill wrote outside [10, 30) or not the value");
  o->free(a), o->free(b), o->free(NULL);
  free(h);
}

/* Host-to-device copies return without waiting (through the pinned staging buffer, 8 MiB by
 * default): 40 copies of 256 KiB from one host buffer rewritten after each, 10 MiB in all, with no
 * copy to the host in between, so only the staging buffer's own wait, when it is full, orders its
 * reuse; every device buffer must hold what the host buffer held when its copy was made. */
static void test_staged_copies(void) {
  const amd_ops *o = cuda_counted;
  enum { COPIES = 40, N = 65536 };
  float *host = mallocCheck(sizeof(float) * N), *back = mallocCheck(sizeof(float) * N), *dev[COPIES];
  for (int c = 0; c < COPIES; c++) {
    dev[c] = o->alloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) host[i] = (float)(c * N + i);
    o->to_device(dev[c], host, sizeof(float) * N);
  }
  int bad = 0;
  for (int c = 0; c < COPIES; c++) {
    o->to_host(back, dev[c], sizeof(float) * N);
    for (int i = 0; i < N; i++) bad += back[i] != (float)(c * N + i);
    o->free(dev[c]);
  }
  EXPECT(bad == 0, "%d of %d staged values differ from what was copied", bad, COPIES * N);
  free(host), free(back);
}

/* ---- GEMM ------------------------------------------------------------------------------------- */

static void op_gemm(const amd_ops *o, void *const *p, const Case *c) {
  o->gemm(c->s[0], c->s[1], c->s[2], c->s[3], c->s[4], c->f[0], F(0), F(1), c->f[1], F(2));
}

static void gemm_cases(double bound, const char *tag) {
  const int sizes[][3] = {{37, 23, 19}, {1, 64, 33}, {64, 1, 7}, {5, 6, 1}};
  for (int z = 0; z < 4; z++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int M = sizes[z][0], N = sizes[z][1], K = sizes[z][2];
        Case c = {.s = {ta, tb, M, N, K}, .f = {0.7f, z % 2 ? 0.0f : 0.3f}};
        buf_f(&c, (long)M * K, -1, 1, 0), buf_f(&c, (long)K * N, -1, 1, 0), buf_f(&c, (long)M * N, -1, 1, 1);
        char name[64];
        snprintf(name, sizeof name, "gemm%s %c%c %dx%dx%d", tag, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
        run_case(name, &c, op_gemm, bound);
      }
}

static void test_gemm(void) { gemm_cases(GEMM, ""); }

static void test_gemm_tf32(void) {
  cuda_set_precision(CUDA_TF32);
  gemm_cases(1e-5, " tf32"); /* 10 mantissa bits in the products */
  cuda_set_precision(CUDA_FP32);
}

static void op_gemm_batched(const amd_ops *o, void *const *p, const Case *c) {
  o->gemm_batched(c->s[0], c->s[1], c->s[2], c->s[3], c->s[4], c->f[0], F(0), c->s[5], F(1), c->s[6], c->f[1], F(2),
                  c->s[7], c->s[8]);
}

static void gemm_batched_cases(double bound, const char *tag) {
  for (int reuse = 0; reuse < 3; reuse++) /* 0: every matrix its own; 1: one A for all; 2: one B for all */
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int M = 9, N = 11, K = 13, batch = 5;
        int sa = reuse == 1 ? 0 : M * K, sb = reuse == 2 ? 0 : K * N;
        Case c = {.s = {ta, tb, M, N, K, sa, sb, M * N, batch}, .f = {0.5f, 1.0f}};
        buf_f(&c, (long)(sa ? batch : 1) * M * K, -1, 1, 0);
        buf_f(&c, (long)(sb ? batch : 1) * K * N, -1, 1, 0);
        buf_f(&c, (long)batch * M * N, -1, 1, 1);
        char name[64];
        snprintf(name, sizeof name, "gemm_batched%s %c%c reuse %d", tag, ta ? 'T' : 'N', tb ? 'T' : 'N', reuse);
        run_case(name, &c, op_gemm_batched, bound);
      }
  /* the dit's token mean: ones (1, T) times each sample's (T, C), and its transpose in backward */
  int T = 16, C = 24, B = 3;
  Case c = {.s = {0, 0, 1, C, T, 0, T * C, C, B}, .f = {1.0f / 16, 0.0f}};
  buf_f(&c, T, 1, 1, 0), buf_f(&c, (long)B * T * C, -1, 1, 0), buf_f(&c, (long)B * C, -1, 1, 1);
  char name[64];
  snprintf(name, sizeof name, "gemm_batched%s token mean", tag);
  run_case(name, &c, op_gemm_batched, bound);
  Case d = {.s = {1, 0, T, C, 1, 0, C, T * C, B}, .f = {1.0f / 16, 1.0f}};
  buf_f(&d, T, 1, 1, 0), buf_f(&d, (long)B * C, -1, 1, 0), buf_f(&d, (long)B * T * C, -1, 1, 1);
  snprintf(name, sizeof name, "gemm_batched%s token mean backward", tag);
  run_case(name, &d, op_gemm_batched, bound);
}

static void test_gemm_batched(void) { gemm_batched_cases(GEMM, ""); }

/* x rounded to bfloat16 (8 significant bits, nearest, ties to even) by frexp and nearbyint, not by
 * the device's bit arithmetic (cuda/gemm.cu); the inputs here are normal floats */
static double bf16_reference(float x) {
  int e;
  double m = frexp((double)x, &e); /* x = m 2^e, 0.5 <= |m| < 1 */
  return ldexp(nearbyint(m * 256.0) / 256.0, e);
}

/* precision=bf16: the CUDA product against two double-precision references, C = alpha op(A) op(B)
 * + beta C of the bf16-rounded A and B (the only difference is then the float32 accumulation: the
 * GEMM bound), and of the float32 A and B (the bf16 bound, and above 1e-9: the operands were
 * rounded, the product did not quietly stay float32); then every product and batched product of
 * the fp32 cases against the CPU under the bf16 bound */
static void test_gemm_bf16(void) {
  cuda_set_precision(CUDA_BF16);
  const amd_ops *o = cuda_counted;
  const int sizes[][3] = {{37, 23, 19}, {1, 64, 33}, {64, 1, 7}, {5, 6, 1}, {40, 48, 256}};
  for (int z = 0; z < 5; z++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int M = sizes[z][0], N = sizes[z][1], K = sizes[z][2];
        float alpha = 0.7f, beta = z % 2 ? 0.0f : 0.3f;
        float *A = host_uniform((long)M * K, -1, 1), *B = host_uniform((long)K * N, -1, 1);
        float *C = host_uniform((long)M * N, -1, 1), *got = mallocCheck(sizeof(float) * M * N);
        float *rounded = mallocCheck(sizeof(float) * M * N), *exact = mallocCheck(sizeof(float) * M * N);
        float *dA = o->alloc(sizeof(float) * M * K), *dB = o->alloc(sizeof(float) * K * N);
        float *dC = o->alloc(sizeof(float) * M * N);
        o->to_device(dA, A, sizeof(float) * M * K), o->to_device(dB, B, sizeof(float) * K * N);
        o->to_device(dC, C, sizeof(float) * M * N);
        o->gemm(ta, tb, M, N, K, alpha, dA, dB, beta, dC);
        o->to_host(got, dC, sizeof(float) * M * N);
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            double r = 0, e = 0;
            for (int l = 0; l < K; l++) {
              float a = ta ? A[l * M + i] : A[i * K + l], b = tb ? B[j * K + l] : B[l * N + j];
              r += bf16_reference(a) * bf16_reference(b), e += (double)a * b;
            }
            rounded[i * N + j] = (float)(alpha * r + beta * (double)C[i * N + j]);
            exact[i * N + j] = (float)(alpha * e + beta * (double)C[i * N + j]);
          }
        char name[64];
        snprintf(name, sizeof name, "gemm bf16 %c%c %dx%dx%d", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
        char what[96];
        snprintf(what, sizeof what, "%s vs rounded inputs", name);
        expect_nmse(what, got, rounded, (long)M * N, GEMM);
        snprintf(what, sizeof what, "%s vs float32", name);
        expect_nmse(what, got, exact, (long)M * N, BF16);
        double e = nmse(got, exact, (long)M * N, NULL);
        EXPECT(e > 1e-9, "%s: NMSE %.3g against float32: the operands were not rounded to bf16", name, e);
        o->free(dA), o->free(dB), o->free(dC);
        free(A), free(B), free(C), free(got), free(rounded), free(exact);
      }
  gemm_cases(BF16, " bf16");
  gemm_batched_cases(BF16, " bf16");
  cuda_set_precision(CUDA_FP32);
}

/* ---- pointwise and per-sample ops --------------------------------------------------------------- */

static void op_bias_add(const amd_ops *o, void *const *p, const Case *c) { o->bias_add(F(0), F(1), c->s[0], c->s[1]); }
static void op_bias_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->bias_backward(F(0), F(1), c->s[0], c->s[1]);
}
static void op_silu_forward(const amd_ops *o, void *const *p, const Case *c) { o->silu_forward(F(0), F(1), c->s[0]); }
static void op_silu_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->silu_backward(F(0), F(1), F(2), c->s[0]);
}
static void op_gelu_forward(const amd_ops *o, void *const *p, const Case *c) { o->gelu_forward(F(0), NULL, F(1), c->s[0]); }
static void op_gelu_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->gelu_backward(F(0), F(1), F(2), NULL, c->s[0]);
}
/* with the derivative kept: the forward writes it, the backward reads it */
static void op_gelu_forward_dg(const amd_ops *o, void *const *p, const Case *c) {
  o->gelu_forward(F(0), F(1), F(2), c->s[0]);
}
static void op_gelu_backward_dg(const amd_ops *o, void *const *p, const Case *c) {
  o->gelu_backward(F(0), F(1), F(2), F(3), c->s[0]);
}
static void op_add(const amd_ops *o, void *const *p, const Case *c) { o->add(F(0), F(1), F(2), c->s[0]); }
static void op_axpy(const amd_ops *o, void *const *p, const Case *c) { o->axpy(F(0), c->f[0], F(1), c->s[0]); }
static void op_scale(const amd_ops *o, void *const *p, const Case *c) { o->scale(F(0), c->f[0], c->s[0]); }
static void op_flow_interpolate(const amd_ops *o, void *const *p, const Case *c) {
  o->flow_interpolate(F(0), F(1), F(2), F(3), F(4), c->s[0], c->s[1]);
}
static void op_flow_denoise(const amd_ops *o, void *const *p, const Case *c) {
  o->flow_denoise(F(0), F(1), F(2), F(3), c->s[0], c->s[1]);
}
static void op_euler_update(const amd_ops *o, void *const *p, const Case *c) {
  o->euler_update(F(0), F(1), F(2), c->s[0], c->s[1]);
}

static void test_pointwise(void) {
  const long n = 100003;
  Case c = {0};
  int B = 300, N = 45, D = 77;
  c = (Case){.s = {B, N}}, buf_f(&c, (long)B * N, -1, 1, 1), buf_f(&c, N, -1, 1, 0);
  run_case("bias_add", &c, op_bias_add, POINTWISE);
  c = (Case){.s = {70000, 3}}, buf_f(&c, 70000L * 3, -1, 1, 1), buf_f(&c, 3, -1, 1, 0); /* rows past one grid */
  run_case("bias_add 70000x3", &c, op_bias_add, POINTWISE);
  c = (Case){.s = {20, 1000}}, buf_f(&c, 20L * 1000, -1, 1, 1), buf_f(&c, 1000, -1, 1, 0); /* several column blocks */
  run_case("bias_add 20x1000", &c, op_bias_add, POINTWISE);
  c = (Case){.s = {B, N}}, buf_f(&c, N, -1, 1, 1), buf_f(&c, (long)B * N, -1, 1, 0);
  run_case("bias_backward", &c, op_bias_backward, 1e-12);
  /* rows split into chunks (a transformer's batch x tokens rows; a narrow output layer) */
  static const int split[][2] = {{12544, 256}, {5000, 16}, {130, 1000}};
  for (int k = 0; k < 3; k++) {
    int Bs = split[k][0], Ns = split[k][1];
    char name[64];
    snprintf(name, sizeof name, "bias_backward %dx%d", Bs, Ns);
    c = (Case){.s = {Bs, Ns}}, buf_f(&c, Ns, -1, 1, 1), buf_f(&c, (long)Bs * Ns, -1, 1, 0);
    run_case(name, &c, op_bias_backward, 1e-12);
  }
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -6, 6, 0);
  run_case("silu_forward", &c, op_silu_forward, POINTWISE);
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -6, 6, 0);
  run_case("silu_backward", &c, op_silu_backward, POINTWISE);
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -6, 6, 0);
  run_case("gelu_forward", &c, op_gelu_forward, POINTWISE);
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -6, 6, 0);
  run_case("gelu_backward", &c, op_gelu_backward, POINTWISE);
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -6, 6, 0);
  run_case("gelu_forward (derivative kept)", &c, op_gelu_forward_dg, POINTWISE);
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -6, 6, 0),
  buf_f(&c, n, -1, 1, 0);
  run_case("gelu_backward (derivative kept)", &c, op_gelu_backward_dg, POINTWISE);
  c = (Case){.s = {(int)n}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -1, 1, 0);
  run_case("add", &c, op_add, EXACT);
  c = (Case){.s = {(int)n}, .f = {-0.37f}}, buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
  run_case("axpy", &c, op_axpy, POINTWISE);
  c = (Case){.s = {(int)n}, .f = {1.7f}}, buf_f(&c, n, -1, 1, 1);
  run_case("scale", &c, op_scale, EXACT);
  c = (Case){.s = {B, D}};
  buf_f(&c, (long)B * D, -1, 1, 1), buf_f(&c, (long)B * D, -1, 1, 1), buf_f(&c, (long)B * D, -1, 1, 0);
  buf_f(&c, (long)B * D, -1, 1, 0), buf_f(&c, B, 0, 1, 0);
  run_case("flow_interpolate", &c, op_flow_interpolate, POINTWISE);
  c = (Case){.s = {B, D}};
  buf_f(&c, (long)B * D, -1, 1, 1), buf_f(&c, (long)B * D, -1, 1, 0), buf_f(&c, (long)B * D, -1, 1, 0);
  buf_f(&c, B, 0, 1, 0);
  run_case("flow_denoise", &c, op_flow_denoise, POINTWISE);
  c = (Case){.s = {B, D}}, buf_f(&c, (long)B * D, -1, 1, 1), buf_f(&c, (long)B * D, -1, 1, 0), buf_f(&c, B, -0.5, 0, 0);
  run_case("euler_update", &c, op_euler_update, POINTWISE);
}

/* ---- transformer ops ---------------------------------------------------------------------------- */

static void op_layernorm_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->layernorm_forward(F(0), F(1), F(2), F(3), c->s[0], c->s[1]);
}
static void op_layernorm_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->layernorm_backward(F(0), F(1), F(2), F(3), F(4), c->s[0], c->s[1]);
}

static void test_layernorm(void) {
  const int Cs[] = {7, 48, 100};
  for (int z = 0; z < 3; z++) {
    int N = 50, C = Cs[z];
    char name[64];
    Case c = {.s = {N, C}};
    buf_f(&c, (long)N * C, -1, 1, 1), buf_f(&c, N, -1, 1, 1), buf_f(&c, N, -1, 1, 1), buf_f(&c, (long)N * C, -2, 3, 0);
    snprintf(name, sizeof name, "layernorm_forward C=%d", C);
    run_case(name, &c, op_layernorm_forward, POINTWISE);
    /* backward at a consistent (mean, rstd) of x: the CPU's own forward */
    float *x = host_uniform((long)N * C, -2, 3), *y = mallocCheck(sizeof(float) * (size_t)N * C);
    float *mean = mallocCheck(sizeof(float) * (size_t)N), *rstd = mallocCheck(sizeof(float) * (size_t)N);
    ops_cpu.layernorm_forward(y, mean, rstd, x, N, C);
    c = (Case){.s = {N, C}};
    buf_f(&c, (long)N * C, -1, 1, 1), buf_f(&c, (long)N * C, -1, 1, 0);
    int ix = buf_f(&c, (long)N * C, 0, 0, 0), im = buf_f(&c, N, 0, 0, 0), ir = buf_f(&c, N, 0, 0, 0);
    memcpy(c.host[ix], x, sizeof(float) * (size_t)N * C);
    memcpy(c.host[im], mean, sizeof(float) * (size_t)N);
    memcpy(c.host[ir], rstd, sizeof(float) * (size_t)N);
    snprintf(name, sizeof name, "layernorm_backward C=%d", C);
    run_case(name, &c, op_layernorm_backward, POINTWISE);
    free(x), free(y), free(mean), free(rstd);
  }
}

static void op_softmax_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->softmax_forward(F(0), c->s[2] ? F(0) : F(1), c->s[0], c->s[1]);
}
static void op_softmax_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->softmax_backward(F(0), F(1), F(2), c->s[0], c->s[1]);
}

static void test_softmax(void) {
  const int Cs[] = {5, 37, 196};
  for (int z = 0; z < 3; z++) {
    int N = 40, C = Cs[z];
    char name[64];
    for (int inplace = 0; inplace < 2; inplace++) {
      Case c = {.s = {N, C, inplace}};
      buf_f(&c, (long)N * C, -8, 8, 1), buf_f(&c, (long)N * C, -8, 8, 0);
      snprintf(name, sizeof name, "softmax_forward C=%d%s", C, inplace ? " in place" : "");
      run_case(name, &c, op_softmax_forward, POINTWISE);
    }
    Case c = {.s = {N, C}};
    buf_f(&c, (long)N * C, -1, 1, 1), buf_f(&c, (long)N * C, -1, 1, 0), buf_f(&c, (long)N * C, 0, 0.2, 0);
    snprintf(name, sizeof name, "softmax_backward C=%d", C);
    run_case(name, &c, op_softmax_backward, POINTWISE);
  }
}

/* conditioning rows: chunks of a (B, 6C) adaLN output, as the dit passes them */
static void op_modulate_forward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->modulate_forward(F(0), F(1), F(2) + 3 * C, F(2) + 4 * C, 6 * C, c->s[0], c->s[1], C);
}
static void op_modulate_backward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->modulate_backward(F(0), F(1) + 3 * C, F(1) + 4 * C, F(2), F(3), F(4) + 4 * C, 6 * C, c->s[0], c->s[1], C);
}
static void op_gated_residual_forward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->gated_residual_forward(F(0), F(1) + 5 * C, F(2), 6 * C, c->s[0], c->s[1], C);
}
static void op_gated_residual_backward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->gated_residual_backward(F(0), F(1) + 2 * C, F(2), F(3), F(4) + 2 * C, 6 * C, c->s[0], c->s[1], C);
}

/* x (B, T, C), cond (B, 6C): shift and scale are its chunks 0 and 1; outputs y, ln, mean, rstd */
static void op_layernorm_modulate_forward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->layernorm_modulate_forward(F(0), F(1), F(2), F(3), F(4), F(5), F(5) + C, 6 * C, c->s[0], c->s[1], C);
}
static void op_layernorm_modulate_forward_y(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->layernorm_modulate_forward(F(0), NULL, NULL, NULL, F(1), F(2), F(2) + C, 6 * C, c->s[0], c->s[1], C);
}

/* dx (adds), dcond (B, 6C) whose chunks 3, 4 get dshift, dscale, dm scratch, dy, ln, cond (scale: chunk 4), x,
 * mean, rstd */
static void op_modulate_layernorm_backward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->modulate_layernorm_backward(F(0), F(1) + 3 * C, F(1) + 4 * C, F(2), F(3), F(4), F(5) + 4 * C, F(6), F(7), F(8),
                                 6 * C, c->s[0], c->s[1], C);
}

/* gated_residual_bias_backward: dy, dcond (chunk 2 gets dgate), db out; dx, y, cond (gate: chunk 2) in */
static void op_gated_residual_bias_backward(const amd_ops *o, void *const *p, const Case *c) {
  int C = c->s[2];
  o->gated_residual_bias_backward(F(0), F(1) + 2 * C, F(2), F(3), F(4), F(5) + 2 * C, 6 * C, c->s[0], c->s[1], C);
}
/* gelu_bias_backward over (N, O): dx, db out; dy, x, dg (gelu'(x), s[3] 1) in */
static void op_gelu_bias_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->gelu_bias_backward(F(0), F(1), F(2), F(3), c->s[3] ? F(4) : NULL, c->s[0] * c->s[1], c->s[2]);
}

static void test_adaln(void) {
  int B = 3, T = 17, C = 24;
  long n = (long)B * T * C, m = 6L * B * C;
  Case c = {.s = {B, T, C}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -2, 2, 0), buf_f(&c, m, -1, 1, 0);
  run_case("modulate_forward", &c, op_modulate_forward, POINTWISE);
  c = (Case){.s = {B, T, C}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, m, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -2, 2, 0), buf_f(&c, m, -1, 1, 0);
  run_case("modulate_backward", &c, op_modulate_backward, POINTWISE);
  c = (Case){.s = {B, T, C}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, m, -1, 1, 0), buf_f(&c, n, -1, 1, 0);
  run_case("gated_residual_forward", &c, op_gated_residual_forward, POINTWISE);
  c = (Case){.s = {B, T, C}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, m, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -1, 1, 0), buf_f(&c, m, -1, 1, 0);
  run_case("gated_residual_backward", &c, op_gated_residual_backward, POINTWISE);
  c = (Case){.s = {B, T, C}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, m, -1, 1, 1), buf_f(&c, C, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
  buf_f(&c, n, -1, 1, 0), buf_f(&c, m, -1, 1, 0);
  run_case("gated_residual_bias_backward", &c, op_gated_residual_bias_backward, 1e-12);
  for (int with_dg = 0; with_dg < 2; with_dg++) {
    long n4 = 4 * n;
    c = (Case){.s = {B, T, 4 * C, with_dg}};
    buf_f(&c, n4, -1, 1, 1), buf_f(&c, 4 * C, -1, 1, 1), buf_f(&c, n4, -1, 1, 0), buf_f(&c, n4, -3, 3, 0);
    buf_f(&c, n4, -1, 1, 0);
    run_case(with_dg ? "gelu_bias_backward, derivative given" : "gelu_bias_backward", &c, op_gelu_bias_backward, 1e-10);
  }
  for (int k = 0; k < 2; k++) { /* C 24 and 200: a warp's lanes with one and with several columns */
    int Cn = k ? 200 : C;
    long nn = (long)B * T * Cn, mm = 6L * B * Cn;
    c = (Case){.s = {B, T, Cn}};
    buf_f(&c, nn, -1, 1, 1), buf_f(&c, nn, -1, 1, 1), buf_f(&c, (long)B * T, -1, 1, 1), buf_f(&c, (long)B * T, -1, 1, 1);
    buf_f(&c, nn, -3, 3, 0), buf_f(&c, mm, -1, 1, 0);
    char name[64];
    snprintf(name, sizeof name, "layernorm_modulate_forward C=%d", Cn);
    run_case(name, &c, op_layernorm_modulate_forward, POINTWISE);
    c = (Case){.s = {B, T, Cn}};
    buf_f(&c, nn, -1, 1, 1), buf_f(&c, nn, -3, 3, 0), buf_f(&c, mm, -1, 1, 0);
    snprintf(name, sizeof name, "layernorm_modulate_forward C=%d, y only", Cn);
    run_case(name, &c, op_layernorm_modulate_forward_y, POINTWISE);
    c = (Case){.s = {B, T, Cn}};
    buf_f(&c, nn, -1, 1, 1), buf_f(&c, mm, -1, 1, 1), buf_f(&c, nn, -1, 1, 0), buf_f(&c, nn, -1, 1, 0);
    buf_f(&c, nn, -2, 2, 0), buf_f(&c, mm, -1, 1, 0), buf_f(&c, nn, -3, 3, 0), buf_f(&c, (long)B * T, -0.5, 0.5, 0);
    buf_f(&c, (long)B * T, 0.5, 2, 0);
    snprintf(name, sizeof name, "modulate_layernorm_backward C=%d", Cn);
    run_case(name, &c, op_modulate_layernorm_backward, POINTWISE);
  }
}

/* the fused linear layers: x (N, K), W (O, K), b (O); s = {B, T, K, O, with bias} */
static void op_linear_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->linear_forward(F(0), F(1), F(2), c->s[4] ? F(3) : NULL, c->s[0] * c->s[1], c->s[2], c->s[3]);
}
static void op_linear_gelu_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->linear_gelu_forward(F(4), F(5), F(0), F(1), F(2), c->s[4] ? F(3) : NULL, c->s[0] * c->s[1], c->s[2], c->s[3]);
}
/* the gate: chunk 5 of a (B, 6O) adaLN output */
static void op_linear_residual_forward(const amd_ops *o, void *const *p, const Case *c) {
  int O = c->s[3];
  o->linear_residual_forward(F(4), F(0), F(5), F(6) + 5 * O, 6 * O, F(1), F(2), c->s[4] ? F(3) : NULL, c->s[0],
                             c->s[1], c->s[2], O);
}

static void test_linear_fused(void) {
  const int shapes[][4] = {{3, 17, 24, 40}, {4, 150, 32, 48}}; /* B, T, K, O; the second in row blocks */
  for (int z = 0; z < 2; z++)
    for (int bias = 0; bias < 2; bias++) {
      int B = shapes[z][0], T = shapes[z][1], K = shapes[z][2], O = shapes[z][3];
      long n = (long)B * T * O;
      char name[64];
      Case c = {.s = {B, T, K, O, bias}};
      buf_f(&c, n, -1, 1, 1), buf_f(&c, (long)B * T * K, -1, 1, 0), buf_f(&c, (long)O * K, -1, 1, 0);
      buf_f(&c, O, -1, 1, 0);
      snprintf(name, sizeof name, "linear_forward %dx%dx%d%s", B * T, K, O, bias ? " bias" : "");
      run_case(name, &c, op_linear_forward, GEMM);
      c = (Case){.s = {B, T, K, O, bias}};
      buf_f(&c, n, -1, 1, 1), buf_f(&c, (long)B * T * K, -1, 1, 0), buf_f(&c, (long)O * K, -1, 1, 0);
      buf_f(&c, O, -1, 1, 0), buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 1);
      snprintf(name, sizeof name, "linear_gelu_forward %dx%dx%d%s", B * T, K, O, bias ? " bias" : "");
      run_case(name, &c, op_linear_gelu_forward, GEMM);
      c = (Case){.s = {B, T, K, O, bias}};
      buf_f(&c, n, -1, 1, 1), buf_f(&c, (long)B * T * K, -1, 1, 0), buf_f(&c, (long)O * K, -1, 1, 0);
      buf_f(&c, O, -1, 1, 0), buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -2, 2, 0), buf_f(&c, 6L * B * O, -1, 1, 0);
      snprintf(name, sizeof name, "linear_residual_forward %dx%dx%d%s", B * T, K, O, bias ? " bias" : "");
      run_case(name, &c, op_linear_residual_forward, GEMM);
    }
}

/* out, prob out, scratch, qkv (B, T, 3C) in; s = {B, T, NH, hs} */
static void op_attention_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->attention_forward(F(0), F(1), F(2), F(3), c->s[0], c->s[1], c->s[2], c->s[3]);
}

/* dqkv (B, T, 3C) out, scratch, dout, qkv (B, T, 3C), prob (B, NH, T, T) in */
static void op_attention_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->attention_backward(F(0), F(1), F(2), F(3), F(4), c->s[0], c->s[1], c->s[2], c->s[3]);
}

/* the buffers of an attention forward case (out, prob, scratch, qkv) and of a backward case (dqkv,
 * scratch, dout, qkv, and a softmax's prob, rows summing to 1, as the forward leaves it) */
static Case attention_forward_case(int B, int T, int NH, int hs) {
  long n = (long)B * T * NH * hs;
  Case c = {.s = {B, T, NH, hs}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, (long)B * NH * T * T, -1, 1, 1);
  buf_f(&c, attention_forward_scratch_floats(&ops_cuda, B, T, NH * hs), -1, 1, 0), buf_f(&c, 3 * n, -2, 2, 0);
  return c;
}

static Case attention_backward_case(int B, int T, int NH, int hs) {
  long n = (long)B * T * NH * hs, tt = (long)B * NH * T * T;
  Case c = {.s = {B, T, NH, hs}};
  buf_f(&c, 3 * n, -1, 1, 1), buf_f(&c, attention_scratch_floats(&ops_cuda, B, T, NH * hs, NH), -1, 1, 0);
  buf_f(&c, n, -1, 1, 0), buf_f(&c, 3 * n, -1, 1, 0), buf_f(&c, tt, 0, 0.2, 0);
  float *pr = c.host[4];
  for (long r = 0; r < tt / T; r++) {
    double sum = 0;
    for (int j = 0; j < T; j++) sum += pr[r * T + j];
    for (int j = 0; j < T; j++) pr[r * T + j] = (float)(pr[r * T + j] / sum);
  }
  return c;
}

/* fused-against-unfused cases, both sides on the CUDA table: run_case's first call (the
 * reference) with the fused kernels off, its second with them on */
static int unfused_calls;
static void op_attention_forward_unfused_first(const amd_ops *o, void *const *p, const Case *c) {
  cuda_set_fused_attention(unfused_calls++ % 2);
  op_attention_forward(o, p, c);
  cuda_set_fused_attention(1);
}
static void op_attention_backward_unfused_first(const amd_ops *o, void *const *p, const Case *c) {
  cuda_set_fused_attention(unfused_calls++ % 2);
  op_attention_backward(o, p, c);
  cuda_set_fused_attention(1);
}

/* The fused CUDA attention forward and backward (cuda/attention.cu) against the CPU ops and against
 * the unfused CUDA sequences (batched GEMMs, softmax, heads split and merge) on the same inputs, at
 * the DiT's shapes (T = 49 at hs 32 and 64: 28 x 28 images in 4 x 4 patches) and odd ones; shapes
 * too large for their shared memory (T = 80 at hs 64 for the backward only, T = 256 at hs 128 for
 * both) take the unfused paths and still conform. */
static void test_attention_fused(void) {
  const int shapes[][4] = {{3, 17, 2, 8}, {2, 49, 4, 32}, {2, 49, 4, 64}, {1, 33, 3, 40}, {1, 80, 2, 64},
                           {1, 256, 1, 128}};
  for (int z = 0; z < 6; z++) {
    int B = shapes[z][0], T = shapes[z][1], NH = shapes[z][2], hs = shapes[z][3], fits = z < 5, bfits = z < 4;
    EXPECT(cuda_fused_attention_applies(T, hs) == fits, "T %d hs %d: the fused forward %s", T, hs,
           fits ? "does not apply" : "applies beyond its shared memory");
    EXPECT(cuda_fused_attention_backward_applies(T, hs) == bfits, "T %d hs %d: the fused backward %s", T, hs,
           bfits ? "does not apply" : "applies beyond its shared memory");
    for (int against_unfused = 0; against_unfused < 2; against_unfused++) {
      Case c = attention_forward_case(B, T, NH, hs);
      char name[80];
      snprintf(name, sizeof name, "attention %s vs %s B %d T %d NH %d hs %d", fits ? "fused" : "unfused",
               against_unfused ? "unfused" : "cpu", B, T, NH, hs);
      if (against_unfused) backend[0] = cuda_counted;
      run_case(name, &c, against_unfused ? op_attention_forward_unfused_first : op_attention_forward, GEMM);
      c = attention_backward_case(B, T, NH, hs);
      snprintf(name, sizeof name, "attention backward %s vs %s B %d T %d NH %d hs %d", bfits ? "fused" : "unfused",
               against_unfused ? "unfused" : "cpu", B, T, NH, hs);
      run_case(name, &c, against_unfused ? op_attention_backward_unfused_first : op_attention_backward, GEMM);
      backend[0] = &ops_cpu;
    }
  }
}

static void test_attention_forward(void) {
  const int shapes[][4] = {{3, 17, 2, 8}, {2, 49, 4, 32}}; /* B, T, NH, hs */
  cuda_set_fused_attention(0); /* the unfused sequence here; test_attention_fused has the kernel */
  for (int z = 0; z < 2; z++) {
    int B = shapes[z][0], T = shapes[z][1], NH = shapes[z][2], hs = shapes[z][3];
    Case c = attention_forward_case(B, T, NH, hs);
    char name[64];
    snprintf(name, sizeof name, "attention_forward B %d T %d NH %d hs %d", B, T, NH, hs);
    run_case(name, &c, op_attention_forward, GEMM);
    c = attention_backward_case(B, T, NH, hs);
    snprintf(name, sizeof name, "attention_backward B %d T %d NH %d hs %d", B, T, NH, hs);
    run_case(name, &c, op_attention_backward, GEMM);
  }
  cuda_set_fused_attention(1);
}

/* query (B, N, C), kv (B, M, 2C), mask (B, M) in; out, q, k, v, prob out, y scratch;
 * s = {B, N, M, NH, hs} */
static void op_cross_attention_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->cross_attention_forward(F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), c->s[0], c->s[1], c->s[2], c->s[3],
                             c->s[4]);
}

/* dquery (B, N, C), dkv (B, M, 2C) out (added into), scratch, dout, q, k, v, prob in */
static void op_cross_attention_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->cross_attention_backward(F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), c->s[0], c->s[1], c->s[2], c->s[3],
                              c->s[4]);
}

/* The key padding mask of each shape: sample 0 sees every key, sample 1 lacks the last few and one
 * inside, sample 2 (when there is one) has none, the empty caption. The backward's prob has zeros
 * where the mask has, as the forward leaves them. */
static void test_cross_attention(void) {
  const int shapes[][5] = {{3, 17, 5, 2, 8}, {2, 49, 16, 4, 32}}; /* B, N, M, NH, hs */
  for (int z = 0; z < 2; z++) {
    int B = shapes[z][0], N = shapes[z][1], M = shapes[z][2], NH = shapes[z][3], hs = shapes[z][4];
    long C = (long)NH * hs, nc = B * N * C, mc = B * M * C, nm = (long)B * NH * N * M;
    float *mask = mallocCheck(sizeof(float) * (size_t)B * M);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < M; j++) mask[b * M + j] = b == 0 || (b == 1 && j != 1 && j < M - 2);
    Case c = {.s = {B, N, M, NH, hs}};
    buf_f(&c, nc, -1, 1, 1), buf_f(&c, nc, -1, 1, 1), buf_f(&c, mc, -1, 1, 1), buf_f(&c, mc, -1, 1, 1);
    buf_f(&c, nm, -1, 1, 1), buf_f(&c, nc, -1, 1, 0), buf_f(&c, nc, -2, 2, 0), buf_f(&c, 2 * mc, -2, 2, 0);
    int mi = buf_f(&c, (long)B * M, 0, 1, 0);
    memcpy(c.host[mi], mask, sizeof(float) * (size_t)B * M);
    char name[80];
    snprintf(name, sizeof name, "cross_attention_forward B %d N %d M %d NH %d hs %d", B, N, M, NH, hs);
    run_case(name, &c, op_cross_attention_forward, GEMM);
    c = (Case){.s = {B, N, M, NH, hs}};
    buf_f(&c, nc, -1, 1, 1), buf_f(&c, 2 * mc, -1, 1, 1), buf_f(&c, cross_attention_scratch_floats(&ops_cuda, B, N, M, (int)C, NH), -1, 1, 0);
    buf_f(&c, nc, -1, 1, 0), buf_f(&c, nc, -1, 1, 0), buf_f(&c, mc, -1, 1, 0), buf_f(&c, mc, -1, 1, 0);
    int pi = buf_f(&c, nm, 0, 0.2, 0);
    for (long i = 0; i < nm; i++) /* row (b, h, n) of M keys */
      if (mask[(i / ((long)NH * N * M)) * M + i % M] == 0) ((float *)c.host[pi])[i] = 0.0f;
    snprintf(name, sizeof name, "cross_attention_backward B %d N %d M %d NH %d hs %d", B, N, M, NH, hs);
    run_case(name, &c, op_cross_attention_backward, GEMM);
    free(mask);
  }
}

static void op_patchify(const amd_ops *o, void *const *p, const Case *c) {
  o->patchify(F(0), F(1), c->s[0], c->s[1], c->s[2], c->s[3], c->s[4]);
}
static void op_unpatchify(const amd_ops *o, void *const *p, const Case *c) {
  o->unpatchify(F(0), F(1), c->s[0], c->s[1], c->s[2], c->s[3], c->s[4]);
}

static void test_patches(void) {
  const int shapes[][5] = {{2, 3, 8, 8, 2}, {3, 1, 12, 8, 4}, {1, 2, 6, 6, 1}}; /* B, C, H, W, p */
  for (int z = 0; z < 3; z++) {
    const int *s = shapes[z];
    long n = (long)s[0] * s[1] * s[2] * s[3];
    char name[64];
    Case c = {.s = {s[0], s[1], s[2], s[3], s[4]}};
    buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
    snprintf(name, sizeof name, "patchify %dx%dx%dx%d p=%d", s[0], s[1], s[2], s[3], s[4]);
    run_case(name, &c, op_patchify, EXACT);
    c = (Case){.s = {s[0], s[1], s[2], s[3], s[4]}};
    buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
    snprintf(name, sizeof name, "unpatchify %dx%dx%dx%d p=%d", s[0], s[1], s[2], s[3], s[4]);
    run_case(name, &c, op_unpatchify, EXACT);
  }
}

static void op_heads_split(const amd_ops *o, void *const *p, const Case *c) {
  o->heads_split(F(0), F(1), F(2), F(3), c->s[0], c->s[1], c->s[2], c->s[3]);
}
static void op_heads_split_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->heads_split_backward(F(0), F(1), F(2), F(3), c->s[0], c->s[1], c->s[2], c->s[3]);
}
static void op_heads_merge(const amd_ops *o, void *const *p, const Case *c) {
  o->heads_merge(F(0), F(1), c->s[0], c->s[1], c->s[2], c->s[3]);
}
static void op_heads_merge_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->heads_merge_backward(F(0), F(1), c->s[0], c->s[1], c->s[2], c->s[3]);
}

static void test_heads(void) {
  int B = 2, T = 7, NH = 3, hs = 5;
  long n = (long)B * T * NH * hs;
  Case c = {.s = {B, T, NH, hs}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 1), buf_f(&c, 3 * n, -1, 1, 0);
  run_case("heads_split", &c, op_heads_split, EXACT);
  c = (Case){.s = {B, T, NH, hs}};
  buf_f(&c, 3 * n, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -1, 1, 0);
  run_case("heads_split_backward", &c, op_heads_split_backward, EXACT);
  c = (Case){.s = {B, T, NH, hs}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
  run_case("heads_merge", &c, op_heads_merge, EXACT);
  c = (Case){.s = {B, T, NH, hs}};
  buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
  run_case("heads_merge_backward", &c, op_heads_merge_backward, EXACT);
}

/* ---- conditioning ----------------------------------------------------------------------------- */

static void op_timestep_embedding(const amd_ops *o, void *const *p, const Case *c) {
  o->timestep_embedding(F(0), F(1), c->s[0], c->s[1], c->f[0], c->f[1]);
}
static void op_embedding_forward(const amd_ops *o, void *const *p, const Case *c) {
  o->embedding_forward(F(0), F(1), I(2), c->s[0], c->s[1]);
}
static void op_embedding_backward(const amd_ops *o, void *const *p, const Case *c) {
  o->embedding_backward(F(0), F(1), I(2), c->s[0], c->s[1]);
}

static void test_embeddings(void) {
  int B = 13, dim = 16, rows = 5;
  Case c = {.s = {B, dim}, .f = {1000.0f, 10000.0f}};
  buf_f(&c, (long)B * dim, -1, 1, 1), buf_f(&c, B, 0, 1, 0);
  run_case("timestep_embedding", &c, op_timestep_embedding, 1e-12);
  c = (Case){.s = {B, dim + 1}, .f = {1.0f, 100.0f}}; /* odd dim: the last column is left alone */
  buf_f(&c, (long)B * (dim + 1), -1, 1, 1), buf_f(&c, B, 0, 1, 0);
  run_case("timestep_embedding odd dim", &c, op_timestep_embedding, 1e-12);
  c = (Case){.s = {B, dim}};
  buf_f(&c, (long)B * dim, -1, 1, 1), buf_f(&c, (long)rows * dim, -1, 1, 0), buf_ids(&c, B, rows);
  run_case("embedding_forward", &c, op_embedding_forward, EXACT);
  c = (Case){.s = {B, dim}};
  buf_f(&c, (long)rows * dim, -1, 1, 1), buf_f(&c, (long)B * dim, -1, 1, 0), buf_ids(&c, B, rows);
  run_case("embedding_backward (repeated ids)", &c, op_embedding_backward, EXACT);
}

/* ---- reductions, AdamW, Philox ------------------------------------------------------------------ */

static void test_reductions(void) {
  const long sizes[] = {1, 1000, 300001};
  for (int z = 0; z < 3; z++) {
    long n = sizes[z];
    float *h = host_uniform(n, -3, 3), *d = cuda_counted->alloc(sizeof(float) * (size_t)n);
    cuda_counted->to_device(d, h, sizeof(float) * (size_t)n);
    double want = ops_cpu.sum_squares(h, n), got = cuda_counted->sum_squares(d, n);
    char what[64];
    snprintf(what, sizeof what, "sum_squares n=%ld", n);
    EXPECT_CLOSE(got, want, 0, 1e-12, what);
    EXPECT(cuda_counted->all_finite(d, n) == 1, "all_finite of finite values n=%ld", n);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
      long at = k == 0 ? n - 1 : k == 1 ? 0 : n / 2;
      cuda_counted->to_device(d + at, &bad[k], sizeof(float));
      EXPECT(cuda_counted->all_finite(d, n) == 0 && ops_cpu.all_finite(h, n) == 1, "all_finite misses %g at %ld of %ld",
             bad[k], at, n);
      cuda_counted->to_device(d + at, h + at, sizeof(float));
    }
    EXPECT(cuda_counted->sum_squares(d, n) == got, "sum_squares n=%ld does not repeat bit for bit", n);
    /* the asynchronous form: the same double, left in device memory; two in a row share the
     * partial sums' scratch, in stream order */
    double *out = cuda_counted->alloc(2 * sizeof(double)), async[2];
    cuda_counted->sum_squares_async(out, d, n);
    cuda_counted->sum_squares_async(out + 1, d, n / 2);
    cuda_counted->to_host(async, out, sizeof async);
    EXPECT(async[0] == got, "sum_squares_async n=%ld: %.17g, sum_squares %.17g", n, async[0], got);
    EXPECT(async[1] == cuda_counted->sum_squares(d, n / 2), "sum_squares_async n=%ld second in a row differs", n / 2);
    cuda_counted->free(out);
    cuda_counted->free(d);
    free(h);
  }
}

static void op_adamw(const amd_ops *o, void *const *p, const Case *c) {
  o->adamw(F(0), F(1), F(2), F(3), c->s[0], c->f[0], 0.9f, 0.999f, 1e-8f, c->f[1], c->f[2], c->s[1]);
}

static void test_adamw(void) {
  const long ts[] = {1, 7, 1000};
  for (int z = 0; z < 3; z++) {
    long n = 5000;
    char name[64];
    Case c = {.s = {(int)n, (int)ts[z]}, .f = {1e-3f, z == 1 ? 0.01f : 0.0f, z == 2 ? 0.5f : 1.0f}};
    buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1e-2, 1e-2, 0), buf_f(&c, n, -1e-2, 1e-2, 1), buf_f(&c, n, 0, 1e-4, 1);
    snprintf(name, sizeof name, "adamw t=%ld", ts[z]);
    run_case(name, &c, op_adamw, POINTWISE);
  }
}

static void op_ema_update(const amd_ops *o, void *const *p, const Case *c) { o->ema_update(F(0), F(1), c->s[0], c->f[0]); }

static void test_ema_update(void) {
  const float ws[] = {1e-3f, 0.25f};
  for (int z = 0; z < 2; z++) {
    long n = 5000;
    char name[64];
    Case c = {.s = {(int)n}, .f = {ws[z]}};
    buf_f(&c, n, -1, 1, 1), buf_f(&c, n, -1, 1, 0);
    snprintf(name, sizeof name, "ema_update w=%g", ws[z]);
    run_case(name, &c, op_ema_update, POINTWISE);
  }
}

/* float ulps between a and b (same sign assumed; 0 when equal) */
static long ulps(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
  return labs((long)ia - (long)ib);
}

/* Exact equality is the contract (docs/DESIGN.md section 2.4). Both sides compute Box-Muller in double and
 * round to float; libm and CUDA differ by an ulp of double at most in log, sin and cos, which changes
 * the float only when the double lands within that of a rounding midpoint (about 1e-8 per draw):
 * a mismatch of 1 float ulp in a handful of a million draws would be that, anything else a bug. */
static void test_randn_identical(void) {
  struct { int B, D; uint64_t seed; uint32_t stream, step, index0; } k[] = {
      {64, 1001, 0, RNG_NOISE, 0, 0},       {37, 1, 7, RNG_GEN, 3, 100},       {5, 3, 1, RNG_DMD_NOISE, 9, 7},
      {8, 4096, 0x123456789ABCDEFull, RNG_SAMPLE, 123456, 4000000000u},   {200, 37, 42, RNG_RENOISE, 17, 5}};
  for (size_t z = 0; z < sizeof k / sizeof k[0]; z++) {
    long n = (long)k[z].B * k[z].D;
    float *want = mallocCheck(sizeof(float) * (size_t)n), *got = mallocCheck(sizeof(float) * (size_t)n);
    float *d = cuda_counted->alloc(sizeof(float) * (size_t)n);
    ops_cpu.randn(want, k[z].B, k[z].D, k[z].seed, k[z].stream, k[z].step, k[z].index0);
    cuda_counted->randn(d, k[z].B, k[z].D, k[z].seed, k[z].stream, k[z].step, k[z].index0);
    cuda_counted->to_host(got, d, sizeof(float) * (size_t)n);
    long differ = 0, worst = 0;
    for (long i = 0; i < n; i++)
      if (memcmp(&got[i], &want[i], 4) != 0) differ++, worst = ulps(got[i], want[i]) > worst ? ulps(got[i], want[i]) : worst;
    printf("  randn %dx%d stream %u: %ld of %ld differ (worst %ld ulp)\n", k[z].B, k[z].D, k[z].stream, differ, n, worst);
    EXPECT(differ == 0, "randn %dx%d seed %llu stream %u: %ld of %ld draws differ from the CPU's, worst by %ld ulp",
           k[z].B, k[z].D, (unsigned long long)k[z].seed, k[z].stream, differ, n, worst);
    cuda_counted->free(d);
    free(want), free(got);
  }
}

/* ---- per-sample losses -------------------------------------------------------------------------- */

static void op_mse(const amd_ops *o, void *const *p, const Case *c) {
  o->mse_forward_backward(c->s[2] ? F(0) : NULL, c->s[3] ? F(1) : NULL, F(2), F(3), c->s[4] ? F(4) : NULL, c->s[0],
                          c->s[1], c->f[0]);
}

static void op_dmd_grad(const amd_ops *o, void *const *p, const Case *c) {
  int B = c->s[0], D = c->s[1];
  o->dmd_grad(F(0), F(1), F(2), F(3), F(3) + (long)B * D, F(4), F(5), F(6), c->f[0], c->f[1], c->s[2], B, D);
}

static void op_softplus(const amd_ops *o, void *const *p, const Case *c) {
  o->softplus_forward_backward(c->s[1] ? F(0) : NULL, F(1), F(2), c->f[0], c->f[1], c->s[0]);
}

static void test_losses(void) {
  int B = 9, D = 300;
  long n = (long)B * D;
  const int variants[][3] = {{1, 1, 0}, {1, 1, 1}, {0, 1, 1}, {1, 0, 0}}; /* loss, dpred, weight */
  for (int z = 0; z < 4; z++) {
    char name[64];
    Case c = {.s = {B, D, variants[z][0], variants[z][1], variants[z][2]}, .f = {0.125f}};
    buf_f(&c, B, -1, 1, variants[z][0]), buf_f(&c, n, -1, 1, variants[z][1]);
    buf_f(&c, n, -1, 1, 0), buf_f(&c, n, -1, 1, 0), buf_f(&c, B, 0.5, 2, 0);
    snprintf(name, sizeof name, "mse_forward_backward loss %d dpred %d weight %d", variants[z][0], variants[z][1],
             variants[z][2]);
    run_case(name, &c, op_mse, POINTWISE);
  }
  /* dx, stats; x; [d_c; d_u]; d_f; alpha; beta; s[2]: beta on the DM term (Eq. 10) or the fake teacher */
  Case c;
  for (int beta_fake = 0; beta_fake < 2; beta_fake++) {
    c = (Case){.s = {B, D, beta_fake}, .f = {1.5f, 1.0f / 64}};
    buf_f(&c, n, -1, 1, 1), buf_f(&c, 6L * B, -1, 1, 1), buf_f(&c, n, -1, 1, 0), buf_f(&c, 2 * n, -1, 1, 0);
    buf_f(&c, n, -1, 1, 0), buf_f(&c, B, 0.5, 1.5, 0), buf_f(&c, B, 0.5, 1.5, 0);
    run_case(beta_fake ? "dmd_grad beta_on=fake" : "dmd_grad", &c, op_dmd_grad, POINTWISE);
  }
  /* loss, dz; logits spanning both branches and both tails */
  for (int z = 0; z < 2; z++) {
    c = (Case){.s = {1000, !z}, .f = {z ? -1.0f : 1.0f, 0.03f}};
    buf_f(&c, 1000, -1, 1, !z), buf_f(&c, 1000, -1, 1, 1), buf_f(&c, 1000, -30, 30, 0);
    run_case(z ? "softplus_forward_backward sign -1, no loss" : "softplus_forward_backward", &c, op_softplus, POINTWISE);
  }
}

/* ---- whole steps -------------------------------------------------------------------------------- */

static const ModelConfig dit_cfg = {.kind = "dit", .dim = 2 * 8 * 8, .num_classes = 3, .width = 32, .depth = 2,
                                    .temb_dim = 16, .img_channels = 2, .img_size = 8, .patch = 2, .heads = 4};
static const ModelConfig cls_cfg = {.kind = "classifier", .dim = 2 * 8 * 8, .num_classes = 3, .width = 16, .depth = 1,
                                    .img_channels = 2, .img_size = 8, .patch = 4, .heads = 2};
static const ModelConfig mlp_cfg = {.kind = "mlp", .dim = 2, .num_classes = 4, .width = 32, .depth = 2, .temb_dim = 16};

/* Parameters U(-0.2, 0.2) everywhere, biases and adaLN-Zero weights included, so every path of the
 * network carries signal (model_init_params would start the dit's blocks as the identity). The
 * whole-step tests draw every input by a fixed index, so both backends get the same values. */
static void random_params(Model *m, uint32_t index) {
  float *h = uniform_at(m->num_params, -0.2, 0.2, 1, index);
  ops->to_device(m->params, h, sizeof(float) * (size_t)m->num_params);
  free(h);
}

static float *params_host(const Model *m, const float *dev) {
  float *h = mallocCheck(sizeof(float) * (size_t)m->num_params);
  ops->to_host(h, dev, sizeof(float) * (size_t)m->num_params);
  return h;
}

#define STEPS 3
typedef struct {
  double loss[STEPS], norm[STEPS];
  float *grads0, *params; /* the first step's gradient, the parameters after the last step (host) */
  long n;
} Run;

static const AdamWConfig step_opt = {.lr = 1e-4, .lr_min = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                     .weight_decay = 0.01, .grad_clip = 1.0};

/* STEPS teacher training steps of cfg on backend o, as cmd_train runs them on one rank */
static void teacher_steps(const amd_ops *o, const ModelConfig *cfg, Run *r) {
  ops = o;
  int B = 6, D = cfg->dim;
  Model *m = model_create(cfg, B);
  random_params(m, 3);
  AdamW *opt = adamw_create(m->num_params);
  FlowBatch *fb = flow_batch_create(B, D, model_label_ints(cfg));
  FlowConfig fc = {.logit_normal = 1, .t_mean = 0, .t_std = 1, .p_uncond = 0.3};
  float *x_dev = ops->alloc(sizeof(float) * (size_t)B * D);
  int labels[6] = {0, 1, 2, 0, 1, 2};
  for (int step = 0; step < STEPS; step++) {
    float *x = uniform_at((long)B * D, -1, 1, 2, (uint32_t)step);
    ops->to_device(x_dev, x, sizeof(float) * (size_t)B * D);
    free(x);
    model_zero_grad(m);
    r->loss[step] = flow_train_batch(m, fb, x_dev, labels, NULL, B, 0, (uint32_t)step, 11, &fc, B) / B;
    r->norm[step] = sqrt(ops->sum_squares(m->grads, m->num_params));
    if (step == 0) r->grads0 = params_host(m, m->grads);
    adamw_update(opt, m->params, m->grads, &step_opt, step, r->norm[step]);
  }
  r->params = params_host(m, m->params);
  r->n = m->num_params;
  ops->free(x_dev);
  flow_batch_free(fb), adamw_free(opt), model_free(m);
  ops = &ops_cpu;
}

static void compare_runs(const char *what, const Run *cpu, const Run *gpu) {
  char w[128];
  for (int s = 0; s < STEPS; s++) {
    snprintf(w, sizeof w, "%s loss at step %d", what, s);
    EXPECT_CLOSE(gpu->loss[s], cpu->loss[s], 1e-7, 1e-5, w);
    snprintf(w, sizeof w, "%s gradient norm at step %d", what, s);
    EXPECT_CLOSE(gpu->norm[s], cpu->norm[s], 1e-7, 1e-5, w);
  }
  printf("  %s: loss %.6f (cpu) vs %.6f (cuda) at the last step\n", what, cpu->loss[STEPS - 1], gpu->loss[STEPS - 1]);
  snprintf(w, sizeof w, "%s first gradient", what);
  expect_nmse(w, gpu->grads0, cpu->grads0, cpu->n, 1e-8);
  snprintf(w, sizeof w, "%s parameters after %d steps", what, STEPS);
  expect_nmse(w, gpu->params, cpu->params, cpu->n, 1e-10);
  free(cpu->grads0), free(cpu->params), free(gpu->grads0), free(gpu->params);
}

/* every op of core/ops_list.h went through at least one of the cases above */
static void test_every_op_has_a_case(void) {
#define OP_HAS_A_CASE(ret, op, params, args, rv) \
  EXPECT(ops_profile_calls(#op) > 0, "op %s has no conformance case", #op);
  AMD_OPS(OP_HAS_A_CASE)
#undef OP_HAS_A_CASE
}

static void test_dit_training_step(void) {
  Run cpu, gpu;
  teacher_steps(&ops_cpu, &dit_cfg, &cpu);
  teacher_steps(&ops_cuda, &dit_cfg, &gpu);
  compare_runs("dit", &cpu, &gpu);
}

/* ---- CUDA graphs (cuda/graph.cu) ----------------------------------------------------------------- */

typedef struct {
  float *x, *y;
  long n;
} AxpyBody;

/* y = 2 (y + x) - x, through the uncounted table: the counted one times each op to its end, a wait
 * that cannot be part of a graph */
static void axpy_body(const void *arg) {
  const AxpyBody *a = arg;
  ops_cuda.add(a->y, a->y, a->x, a->n);
  ops_cuda.scale(a->y, 2.0f, a->n);
  ops_cuda.axpy(a->y, -1.0f, a->x, a->n);
}

/* graph_run: the first call with given arguments runs eagerly, the second captures and launches,
 * later ones launch; each leaves what the eager sequence leaves, bit for bit (y after each of four
 * calls), and other argument bytes capture a new graph */
static void test_graph_run(void) {
  enum { N = 1000, CALLS = 4 };
  long c0, l0, c1, l1;
  float *x = host_uniform(N, -1, 1), *y = host_uniform(N, -1, 1), want[CALLS][N], got[N];
  for (int graphs = 0; graphs < 2; graphs++) {
    cuda_set_graphs(graphs);
    cuda_graph_counts(&c0, &l0);
    AxpyBody a = {cuda_counted->alloc(sizeof got), cuda_counted->alloc(sizeof got), N};
    cuda_counted->to_device(a.x, x, sizeof got), cuda_counted->to_device(a.y, y, sizeof got);
    void *graph = NULL;
    for (int k = 0; k < CALLS; k++) {
      cuda_counted->graph_run(&graph, axpy_body, &a, sizeof a);
      cuda_counted->to_host(graphs ? got : want[k], a.y, sizeof got);
      if (graphs) EXPECT(memcmp(got, want[k], sizeof got) == 0, "graph_run call %d differs from the eager one", k);
    }
    cuda_graph_counts(&c1, &l1);
    EXPECT(c1 - c0 == graphs && l1 - l0 == (graphs ? CALLS - 1 : 0),
           "graphs %d: %ld captures and %ld graph launches, expected %d and %d", graphs, c1 - c0, l1 - l0, graphs,
           graphs ? CALLS - 1 : 0);
    if (graphs) { /* half the length: new argument bytes, a new capture at the second call */
      a.n = N / 2;
      cuda_counted->graph_run(&graph, axpy_body, &a, sizeof a);
      cuda_counted->graph_run(&graph, axpy_body, &a, sizeof a);
      cuda_graph_counts(&c1, &l1);
      EXPECT(c1 - c0 == 2, "new argument bytes made %ld captures in all, expected 2", c1 - c0);
    }
    cuda_counted->graph_free(graph);
    cuda_counted->free(a.x), cuda_counted->free(a.y);
  }
  cuda_set_graphs(0);
  free(x), free(y);
}

typedef struct {
  const float *A, *B;
  float *C;
  int n;
} GemmBody;

static void gemm_body(const void *arg) {
  const GemmBody *g = arg;
  ops_cuda.gemm(0, 1, g->n, g->n, g->n, 1.0f, g->A, g->B, 0.0f, g->C);
}

/* precision=bf16 under graphs: a captured product reads its operands from the bf16 scratch, so a
 * larger product after the capture, which grows the scratch, must leave the captured one's buffer
 * alive: the replay after it still gives the eager result bit for bit */
static void test_graph_bf16_scratch(void) {
  enum { N = 16, BIG = 1024 };
  cuda_set_precision(CUDA_BF16);
  cuda_set_graphs(1);
  float *a = host_uniform(N * N, -1, 1), *b = host_uniform(N * N, -1, 1), want[N * N], got[N * N];
  GemmBody g = {cuda_counted->alloc(sizeof want), cuda_counted->alloc(sizeof want), cuda_counted->alloc(sizeof want), N};
  cuda_counted->to_device((float *)g.A, a, sizeof want), cuda_counted->to_device((float *)g.B, b, sizeof want);
  void *graph = NULL;
  for (int k = 0; k < 3; k++) { /* eager, captured, replayed */
    cuda_counted->graph_run(&graph, gemm_body, &g, sizeof g);
    cuda_counted->to_host(k ? got : want, g.C, sizeof want);
    if (k) EXPECT(memcmp(got, want, sizeof want) == 0, "bf16 product call %d differs from the eager one", k);
  }
  float *big = cuda_counted->alloc(sizeof(float) * BIG * BIG), *out = cuda_counted->alloc(sizeof(float) * BIG * 8);
  cuda_counted->gemm(0, 1, BIG, 8, BIG, 1.0f, big, big, 0.0f, out); /* (BIG, BIG) x (8, BIG)^T: a larger scratch */
  cuda_counted->fill(g.C, 0.0f, N * N);
  cuda_counted->graph_run(&graph, gemm_body, &g, sizeof g);
  cuda_counted->to_host(got, g.C, sizeof want);
  EXPECT(memcmp(got, want, sizeof want) == 0, "the replay after the scratch grew differs from the eager product");
  cuda_counted->graph_free(graph);
  cuda_counted->free(big), cuda_counted->free(out), cuda_counted->free((float *)g.A), cuda_counted->free((float *)g.B);
  cuda_counted->free(g.C);
  free(a), free(b);
  cuda_set_graphs(0);
  cuda_set_precision(CUDA_FP32);
}

/* The DiT teacher's training steps with the flow loss's device part replayed as a CUDA graph
 * (src/flow.c: step 0 eager, step 1 captured, step 2 replayed) give the eager steps' losses,
 * gradient norms, first gradient and final parameters bit for bit. */
static void test_graph_training_step(void) {
  Run eager, graphed;
  long c0, l0, c1, l1;
  teacher_steps(&ops_cuda, &dit_cfg, &eager);
  cuda_set_graphs(1);
  cuda_graph_counts(&c0, &l0);
  teacher_steps(&ops_cuda, &dit_cfg, &graphed);
  cuda_graph_counts(&c1, &l1);
  cuda_set_graphs(0);
  EXPECT(c1 - c0 == 1 && l1 - l0 == STEPS - 1, "%ld captures and %ld graph launches in %d steps", c1 - c0, l1 - l0,
         STEPS);
  for (int s = 0; s < STEPS; s++)
    EXPECT(graphed.loss[s] == eager.loss[s] && graphed.norm[s] == eager.norm[s],
           "step %d: loss %.17g and norm %.17g with graphs, %.17g and %.17g eager", s, graphed.loss[s], graphed.norm[s],
           eager.loss[s], eager.norm[s]);
  EXPECT(memcmp(graphed.grads0, eager.grads0, sizeof(float) * (size_t)eager.n) == 0, "first gradients differ");
  EXPECT(memcmp(graphed.params, eager.params, sizeof(float) * (size_t)eager.n) == 0, "parameters differ");
  printf("  dit with graphs: %ld capture, %ld graph launches, loss %.9g at the last step as eager\n", c1 - c0,
         l1 - l0, graphed.loss[STEPS - 1]);
  free(eager.grads0), free(eager.params), free(graphed.grads0), free(graphed.params);
}

/* precision=bf16 on the whole DiT teacher step against the CPU's float32 one: every GEMM's operands
 * rounded to bf16 (2^-9 relative), fp32 everywhere else. Bounds, with the emulator's measures:
 * losses within 2e-3 relative (5e-4), the first gradient within NMSE 1e-4 (3e-6, about one
 * product's 2.5e-6) and above 1e-9 (the GEMMs did round), the parameters after three AdamW steps
 * within NMSE 1e-7 (5e-9: AdamW's normalized update moves each weight by about lr whatever the
 * gradient's error) */
static void test_dit_training_step_bf16(void) {
  Run cpu, gpu;
  teacher_steps(&ops_cpu, &dit_cfg, &cpu);
  cuda_set_precision(CUDA_BF16);
  teacher_steps(&ops_cuda, &dit_cfg, &gpu);
  cuda_set_precision(CUDA_FP32);
  char w[96];
  for (int s = 0; s < STEPS; s++) {
    snprintf(w, sizeof w, "dit bf16 loss at step %d", s);
    EXPECT_CLOSE(gpu.loss[s], cpu.loss[s], 0, 2e-3, w);
    printf("  %s: %.6f (cpu fp32) vs %.6f (cuda bf16)\n", w, cpu.loss[s], gpu.loss[s]);
  }
  expect_nmse("dit bf16 first gradient", gpu.grads0, cpu.grads0, cpu.n, 1e-4);
  double e = nmse(gpu.grads0, cpu.grads0, cpu.n, NULL);
  EXPECT(e > 1e-9, "dit bf16 first gradient: NMSE %.3g against fp32, as if the GEMMs had not rounded", e);
  expect_nmse("dit bf16 parameters after 3 steps", gpu.params, cpu.params, cpu.n, 1e-7);
  free(cpu.grads0), free(cpu.params), free(gpu.grads0), free(gpu.params);
}

static void test_mlp_training_step(void) {
  Run cpu, gpu;
  teacher_steps(&ops_cpu, &mlp_cfg, &cpu);
  teacher_steps(&ops_cuda, &mlp_cfg, &gpu);
  compare_runs("mlp", &cpu, &gpu);
}

/* The text-mode dit (issue 20: the caption encoder, c's pooled term, every block's cross-attention)
 * forward and backward on backend o, every parameter U(-0.2, 0.2): out, features, dx and the
 * parameter gradient to the host, then the inference forward's out. Captions: one with padding
 * after it, the empty one, one of every position. */
static const ModelConfig text_cfg = {.kind = "dit", .dim = 2 * 8 * 8, .num_classes = 3, .width = 32, .depth = 2,
                                     .temb_dim = 16, .img_channels = 2, .img_size = 8, .patch = 2, .heads = 4,
                                     .text = 1, .vocab = 11, .text_width = 16, .text_depth = 2, .max_text = 6};
enum { TX_B = 3 };
static void text_dit_run_on(const amd_ops *o, float *res[5]) {
  ops = o;
  enum { B = TX_B };
  const ModelConfig *c = &text_cfg;
  Model *m = model_create(c, B);
  random_params(m, 7);
  static const int ids_h[B * 6] = {4, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 2, 7, 7, 3, 5};
  static const float t_h[B] = {0.1f, 0.5f, 0.93f};
  size_t f = sizeof(float), nx = (size_t)B * c->dim, nf = (size_t)B * c->width;
  float *hx = uniform_at((long)nx, -1.5, 1.5, 6, 0), *hd = uniform_at((long)nx, -1, 1, 6, 1);
  float *hf = uniform_at((long)nf, -1, 1, 6, 2);
  int *ids = ops->alloc(sizeof ids_h);
  float *x = ops->alloc(f * nx), *t = ops->alloc(sizeof t_h), *dout = ops->alloc(f * nx), *dfeat = ops->alloc(f * nf);
  float *out = ops->alloc(f * nx), *dx = ops->alloc(f * nx);
  ops->to_device(ids, ids_h, sizeof ids_h), ops->to_device(t, t_h, sizeof t_h), ops->to_device(x, hx, f * nx);
  ops->to_device(dout, hd, f * nx), ops->to_device(dfeat, hf, f * nf);
  model_zero_grad(m);
  m->forward(m, out, x, t, ids, B);
  res[1] = mallocCheck(f * nf);
  ops->to_host(res[1], m->features(m), f * nf);
  m->backward(m, dx, dout, dfeat, B);
  size_t len[3] = {nx, nx, (size_t)m->num_params};
  float *dev[3] = {out, dx, m->grads};
  for (int i = 0; i < 3; i++) {
    res[i ? i + 1 : 0] = mallocCheck(f * len[i]);
    ops->to_host(res[i ? i + 1 : 0], dev[i], f * len[i]);
  }
  m->inference = 1;
  m->forward(m, out, x, t, ids, B);
  res[4] = mallocCheck(f * nx);
  ops->to_host(res[4], out, f * nx);
  float *bufs[] = {x, t, dout, dfeat, out, dx};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  ops->free(ids);
  model_free(m);
  free(hx), free(hd), free(hf);
  ops = &ops_cpu;
}

static void test_text_dit_step(void) {
  float *cpu[5], *gpu[5];
  text_dit_run_on(&ops_cpu, cpu);
  text_dit_run_on(&ops_cuda, gpu);
  Model *probe = model_create(&text_cfg, 1);
  long nx = (long)TX_B * text_cfg.dim, nf = (long)TX_B * text_cfg.width, np = probe->num_params;
  model_free(probe);
  expect_nmse("text dit out", gpu[0], cpu[0], nx, 1e-8);
  expect_nmse("text dit features", gpu[1], cpu[1], nf, 1e-8);
  expect_nmse("text dit dx", gpu[2], cpu[2], nx, 1e-8);
  expect_nmse("text dit parameter gradient", gpu[3], cpu[3], np, 1e-8);
  expect_nmse("text dit inference out", gpu[4], cpu[4], nx, 1e-8);
  for (int i = 0; i < 5; i++) free(cpu[i]), free(gpu[i]);
}

/* The cross-attention layer (src/cross_attention.h) forward and backward on backend o, in a model of
 * its own: out, dx, dtext and the parameter gradient, to the host. The mask as test_cross_attention's. */
enum { XA_B = 3, XA_N = 49, XA_M = 12, XA_C = 32, XA_NH = 4, XA_E = 24 };
static void cross_attention_run_on(const amd_ops *o, float *res[4], long *np) {
  ops = o;
  enum { B = XA_B, N = XA_N, M = XA_M, C = XA_C, E = XA_E };
  Model *m = callocCheck(1, sizeof *m);
  m->max_batch = B, m->num_units = 1;
  CrossAttention xa;
  cross_attention_create(&xa, m, "xattn", C, E, XA_NH, N, M);
  m->unit_begin[1] = m->p_end = *np = m->num_params;
  size_t f = sizeof(float), nx = (size_t)B * N * C, nt = (size_t)B * M * E;
  m->params = ops->alloc(f * (size_t)*np), m->grads = ops->alloc(f * (size_t)*np);
  float *hp = uniform_at(*np, -0.5, 0.5, 5, 0), *hx = uniform_at((long)nx, -2, 2, 5, 1);
  float *ht = uniform_at((long)nt, -1, 1, 5, 2), *hd = uniform_at((long)nx, -1, 1, 5, 3), hm[B * M];
  for (int b = 0; b < B; b++)
    for (int j = 0; j < M; j++) hm[b * M + j] = b == 0 || (b == 1 && j != 1 && j < M - 2);
  float *x = ops->alloc(f * nx), *text = ops->alloc(f * nt), *mask = ops->alloc(sizeof hm), *dout = ops->alloc(f * nx);
  float *out = ops->alloc(f * nx), *dx = ops->alloc(f * nx), *dtext = ops->alloc(f * nt);
  ops->to_device(m->params, hp, f * (size_t)*np), ops->to_device(x, hx, f * nx), ops->to_device(text, ht, f * nt);
  ops->to_device(mask, hm, sizeof hm), ops->to_device(dout, hd, f * nx);
  cross_attention_forward(&xa, out, m, x, text, mask, B, M);
  cross_attention_backward(&xa, m, dx, dtext, dout, x, text, B);
  size_t len[4] = {nx, nx, nt, (size_t)*np};
  float *dev[4] = {out, dx, dtext, m->grads};
  for (int i = 0; i < 4; i++) {
    res[i] = mallocCheck(f * len[i]);
    ops->to_host(res[i], dev[i], f * len[i]);
  }
  float *bufs[] = {x, text, mask, dout, out, dx, dtext, m->params, m->grads};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  cross_attention_free(&xa);
  free(m), free(hp), free(hx), free(ht), free(hd);
  ops = &ops_cpu;
}

static void test_cross_attention_layer(void) {
  float *cpu[4], *gpu[4];
  long np;
  cross_attention_run_on(&ops_cpu, cpu, &np);
  cross_attention_run_on(&ops_cuda, gpu, &np);
  long nx = (long)XA_B * XA_N * XA_C, nt = (long)XA_B * XA_M * XA_E;
  expect_nmse("cross-attention layer out", gpu[0], cpu[0], nx, 1e-8);
  expect_nmse("cross-attention layer dx", gpu[1], cpu[1], nx, 1e-8);
  expect_nmse("cross-attention layer dtext", gpu[2], cpu[2], nt, 1e-8);
  expect_nmse("cross-attention layer parameter gradient", gpu[3], cpu[3], np, 1e-8);
  for (int i = 0; i < 4; i++) free(cpu[i]), free(gpu[i]);
}

/* a classifier training step and the reward's value and input gradient (classifier_log_prob) */
static void classifier_run_on(const amd_ops *o, double *loss, double *logp, float **grad, float **pgrad) {
  ops = o;
  int B = 5, D = cls_cfg.dim;
  Model *m = model_create(&cls_cfg, B);
  random_params(m, 4);
  Classifier *c = classifier_wrap(m);
  float *x = uniform_at((long)B * D, -1, 1, 3, 0), *x_dev = ops->alloc(sizeof(float) * (size_t)B * D);
  ops->to_device(x_dev, x, sizeof(float) * (size_t)B * D);
  int labels[5] = {2, 0, 1, 1, 0};
  model_zero_grad(m);
  *loss = classifier_train_batch(c, x_dev, labels, B, B, NULL);
  *pgrad = params_host(m, m->grads);
  *grad = mallocCheck(sizeof(float) * (size_t)B * D);
  classifier_log_prob(c, logp, *grad, x, labels, B);
  ops->free(x_dev), free(x);
  classifier_free(c);
  ops = &ops_cpu;
}

static void test_classifier_step(void) {
  double loss[2], logp[2][5];
  float *grad[2], *g[2];
  classifier_run_on(&ops_cpu, &loss[0], logp[0], &grad[0], &g[0]);
  classifier_run_on(&ops_cuda, &loss[1], logp[1], &grad[1], &g[1]);
  EXPECT_CLOSE(loss[1], loss[0], 1e-7, 1e-5, "classifier loss");
  for (int i = 0; i < 5; i++) EXPECT_CLOSE(logp[1][i], logp[0][i], 1e-6, 1e-5, "reward log p(c | x)");
  Model *probe = model_create(&cls_cfg, 1); /* for the parameter count */
  expect_nmse("classifier parameter gradient", g[1], g[0], probe->num_params, 1e-8);
  model_free(probe);
  expect_nmse("reward input gradient", grad[1], grad[0], 5L * cls_cfg.dim, 1e-8);
  for (int k = 0; k < 2; k++) free(grad[k]), free(g[k]);
}

/* the caption reward (src/reward_caption.h) and its input gradient on backend o: the cells cut by
 * patchify, the 11-class cell classifier forward and backward, unpatchify into the canvas gradient */
static void caption_reward_on(const amd_ops *o, double *R, float **grad) {
  ops = o;
  enum { B = 3, SIDE = 16 };
  ModelConfig mc = {.kind = "classifier", .dim = 8 * 8, .num_classes = CAPTION_OUTCOMES, .width = 16, .depth = 1,
                    .img_channels = 1, .img_size = 8, .patch = 4, .heads = 2};
  Model *m = model_create(&mc, CAPTION_CELLS * B);
  random_params(m, 7);
  Classifier *c = classifier_wrap(m);
  CaptionReward *r = caption_reward_create(c, SIDE, B, "the test classifier");
  const char *text[B] = {"a bag to the left of a sneaker", "three shirts", "a coat"};
  int tokens[B * CAPTION_MAX_TOKENS];
  char err[256];
  for (int i = 0; i < B; i++) CHECK(caption_encode(text[i], tokens + i * CAPTION_MAX_TOKENS, err, sizeof err) > 0, "%s", err);
  long n = (long)B * SIDE * SIDE;
  float *x = uniform_at(n, -1, 1, 5, 0), *x_dev = ops->alloc(sizeof(float) * (size_t)n), *g_dev = ops->alloc(sizeof(float) * (size_t)n);
  ops->to_device(x_dev, x, sizeof(float) * (size_t)n);
  caption_reward_eval(r, R, g_dev, x_dev, tokens, B);
  *grad = mallocCheck(sizeof(float) * (size_t)n);
  ops->to_host(*grad, g_dev, sizeof(float) * (size_t)n);
  ops->free(x_dev), ops->free(g_dev), free(x);
  caption_reward_free(r);
  classifier_free(c);
  ops = &ops_cpu;
}

static void test_caption_reward(void) {
  double R[2][3];
  float *grad[2];
  caption_reward_on(&ops_cpu, R[0], &grad[0]);
  caption_reward_on(&ops_cuda, R[1], &grad[1]);
  for (int i = 0; i < 3; i++) EXPECT_CLOSE(R[1][i], R[0][i], 1e-6, 1e-5, "caption reward log P(cells hold c)");
  expect_nmse("caption reward input gradient", grad[1], grad[0], 3L * 16 * 16, 1e-8);
  for (int k = 0; k < 2; k++) free(grad[k]);
}

/* Two distillation steps of `method` on backend o (dit networks; the GAN head for all but dmd; the
 * classifier reward, which dmdr and amd use), as cmd_distill runs them: real teacher, fake teacher
 * and student from the same parameters. variants: AMD's amd.beta_on=fake, amd.rls_norm=mean1 and
 * amd.spread_floor=0.1 (docs/DESIGN.md section 4.7). */
static void distill_run_on(const amd_ops *o, Method method, int variants, DistillStats st[2], float **student,
                           long *n) {
  ops = o;
  enum { PROMPTS = 4, K = 2, B = PROMPTS * K, NDATA = 16 };
  Model *real = model_create(&dit_cfg, 2 * B), *fake = model_create(&dit_cfg, B), *stud = model_create(&dit_cfg, B);
  random_params(real, 6);
  ops->copy(fake->params, real->params, sizeof(float) * (size_t)real->num_params);
  ops->copy(stud->params, real->params, sizeof(float) * (size_t)real->num_params);
  ModelConfig hc = {.kind = "head", .dim = fake->feat_dim, .num_classes = dit_cfg.num_classes};
  Model *disc = model_create(&hc, B);
  random_params(disc, 7);
  Model *cm = model_create(&cls_cfg, B);
  random_params(cm, 8);
  Reward reward = {.cls = classifier_wrap(cm)};
  Dataset data = {.n = NDATA, .ndim = 3, .shape = {2, 8, 8}, .dim = dit_cfg.dim, .num_classes = dit_cfg.num_classes};
  data.x = uniform_at((long)NDATA * data.dim, -1, 1, 4, 0);
  data.labels = mallocCheck(sizeof(int) * NDATA);
  for (int i = 0; i < NDATA; i++) data.labels[i] = i % data.num_classes;
  DistillConfig dc = {.method = method, .S = 2, .w = 1.5, .t_min = 0.02, .t_max = 0.98, .fake_per_gen = 2,
                      .lambda_gan = 0.1, .disc_weight = 0.1, .s = 0.5, .lambda_rls = 0.5, .eps = 1e-6,
                      .lambda_r = 0.5, .prompts = PROMPTS, .K = K, .seed = 5, .opt_student = step_opt,
                      .opt_fake = step_opt};
  if (variants) dc.beta_on = AMD_BETA_ON_FAKE, dc.rls_norm = AMD_RLS_MEAN1, dc.spread_floor = 0.1;
  Distill *d = distill_create(&dc, real, fake, stud, method == METHOD_DMD ? NULL : disc, &data,
                              method == METHOD_DMDR || method == METHOD_AMD ? &reward : NULL);
  for (int s = 0; s < 2; s++) EXPECT(distill_step(d, s, &st[s]) == 0, "distill step %d on %s not finite", s, o->name);
  *student = params_host(stud, stud->params);
  *n = stud->num_params;
  distill_free(d);
  reward_free(&reward);
  model_free(real), model_free(fake), model_free(stud), model_free(disc);
  free(data.x), free(data.labels);
  ops = &ops_cpu;
}

static void distill_step_case(Method method, int variants, const char *name) {
  DistillStats cpu[2], gpu[2];
  float *pc, *pg;
  long n;
  distill_run_on(&ops_cpu, method, variants, cpu, &pc, &n);
  distill_run_on(&ops_cuda, method, variants, gpu, &pg, &n);
  for (int s = 0; s < 2; s++) {
    struct { const char *name; double cpu, gpu; } v[] = {
        {"loss_dm", cpu[s].loss_dm, gpu[s].loss_dm},
        {"loss_fake", cpu[s].loss_fake, gpu[s].loss_fake},
        {"loss_gan_g", cpu[s].loss_gan_g, gpu[s].loss_gan_g},
        {"loss_gan_d", cpu[s].loss_gan_d, gpu[s].loss_gan_d},
        {"grad_norm_student", cpu[s].grad_norm_student, gpu[s].grad_norm_student},
        {"grad_norm_fake", cpu[s].grad_norm_fake, gpu[s].grad_norm_fake},
        {"reward_mean", cpu[s].reward_mean, gpu[s].reward_mean},
        {"alpha_mean", cpu[s].alpha_mean, gpu[s].alpha_mean},
        {"fw_mean", cpu[s].fw_mean, gpu[s].fw_mean},
        {"cos_real_fake", cpu[s].cos_real_fake, gpu[s].cos_real_fake}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
      char w[96];
      snprintf(w, sizeof w, "%s step %d %s", name, s, v[i].name);
      EXPECT_CLOSE(v[i].gpu, v[i].cpu, 1e-6, 1e-4, w);
    }
    EXPECT(gpu[s].k_sim == cpu[s].k_sim, "%s step %d: backward-simulation step %d vs %d", name, s, gpu[s].k_sim,
           cpu[s].k_sim);
  }
  printf("  %s: loss_dm %.6f (cpu) vs %.6f (cuda), loss_gan_g %.6f vs %.6f, reward %.6f vs %.6f at step 1\n", name,
         cpu[1].loss_dm, gpu[1].loss_dm, cpu[1].loss_gan_g, gpu[1].loss_gan_g, cpu[1].reward_mean, gpu[1].reward_mean);
  char what[64];
  snprintf(what, sizeof what, "%s student after 2 steps", name);
  expect_nmse(what, pg, pc, n, 1e-10);
  free(pc), free(pg);
}

static void test_distill_step(void) {
  distill_step_case(METHOD_DMD, 0, "dmd");
  distill_step_case(METHOD_DMD2, 0, "dmd2");
  distill_step_case(METHOD_DMDR, 0, "dmdr");
  distill_step_case(METHOD_AMD, 0, "amd");
  distill_step_case(METHOD_AMD, 1, "amd variants"); /* beta_on=fake, rls_norm=mean1, spread_floor 0.1 */
}

/* ---- device selection ------------------------------------------------------------------------- */

static void select_cuda(void *arg) {
  (void)arg;
  ops_select("cuda");
}

static void test_select_without_device(void) {
  EXPECT(expect_fatal(select_cuda, NULL, "no usable CUDA device"), "device=cuda without a device must be a clear error");
  ops_select("auto");
  EXPECT(ops == ops_cpu_best(), "device=auto without a device must run on the CPU, got %s", ops->name);
}

static void test_select_with_device(void) {
  ops_select("cuda");
  EXPECT(ops == &ops_cuda, "device=cuda gave backend %s", ops->name);
  ops_select("auto");
  EXPECT(ops == &ops_cuda, "device=auto with a device gave backend %s", ops->name);
  ops_select("cpu");
  EXPECT(ops == ops_cpu_best(), "device=cpu gave backend %s", ops->name);
}

int main(int argc, char **argv) {
  char why[256] = "";
  if (cuda_device_count(why, sizeof why) < 1) {
    TEST_RUN(test_select_without_device);
    printf("SKIP cuda: no usable CUDA device: %s\n", why);
    return t_finish();
  }
  unsetenv("AMD_TF32"); /* conformance is measured in FP32; the tf32 and bf16 tests set their precision */
  dist_init(&argc, &argv);
  TEST_RUN(test_select_with_device);
  ops = &ops_cpu;
  TEST_RUN(test_table_complete);
  counted_init();
  backend[1] = cuda_counted;
  TEST_RUN(test_memory);
  TEST_RUN(test_staged_copies);
  TEST_RUN(test_gemm);
  TEST_RUN(test_gemm_tf32);
  TEST_RUN(test_gemm_batched);
  TEST_RUN(test_gemm_bf16);
  TEST_RUN(test_pointwise);
  TEST_RUN(test_layernorm);
  TEST_RUN(test_softmax);
  TEST_RUN(test_adaln);
  TEST_RUN(test_linear_fused);
  TEST_RUN(test_attention_forward);
  TEST_RUN(test_attention_fused);
  TEST_RUN(test_cross_attention);
  TEST_RUN(test_patches);
  TEST_RUN(test_heads);
  TEST_RUN(test_embeddings);
  TEST_RUN(test_reductions);
  TEST_RUN(test_adamw);
  TEST_RUN(test_ema_update);
  TEST_RUN(test_randn_identical);
  TEST_RUN(test_losses);
  TEST_RUN(test_graph_run);
  TEST_RUN(test_graph_bf16_scratch);
  TEST_RUN(test_every_op_has_a_case);
  TEST_RUN(test_dit_training_step);
  TEST_RUN(test_graph_training_step);
  TEST_RUN(test_dit_training_step_bf16);
  TEST_RUN(test_mlp_training_step);
  TEST_RUN(test_classifier_step);
  TEST_RUN(test_caption_reward);
  TEST_RUN(test_cross_attention_layer);
  TEST_RUN(test_text_dit_step);
  TEST_RUN(test_distill_step);
  dist_finalize();
  return t_finish();
}
#endif
