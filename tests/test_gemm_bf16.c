/* test_gemm_bf16.c: the CPU backend's precision=bf16 (src/gemm_bf16.h).
 * The rounding against hand values (ties to even, NaN, infinities, signed zero, overflow); every
 * product, each transpose, beta 0 and 1, shapes with edges on every side of the 32 x 32 blocks and
 * the DiT's, in both ways (amx where this processor has it, else skipped saying so; round
 * everywhere) against a double-precision product of the bf16-rounded operands under the float32
 * sum's bound, and further from the float32 product than that bound somewhere (the operands were
 * rounded); the amx way at 1, 2 and 3 threads and inside a parallel region (gemm_batched), bit for
 * bit; the setting (bf16 turns the products on and fp32 off, tf32 is refused naming the backend);
 * and a DiT's flow-loss forward and backward in bf16 against float32: the loss within 2e-3
 * relative, the gradient's NMSE under 1e-4 and above 1e-9. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "flow.h"
#include "gemm_bf16.h"
#include "model.h"
#include "ops.h"
#include "test.h"

#define TEST_SEED 20261206u
#include "gradcheck.h"

static uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}
static float float_of(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

static void test_bf16_round(void) {
  static const uint32_t cases[][2] = {
      {0x3f800000u, 0x3f800000u}, /* 1 */
      {0x3f808000u, 0x3f800000u}, /* 1 + 2^-8: a tie, to the even 1 */
      {0x3f818000u, 0x3f820000u}, /* 1 + 3 2^-8: a tie, to the even 1 + 2^-6 */
      {0x3f808001u, 0x3f810000u}, /* just above the tie: up */
      {0x3f807fffu, 0x3f800000u}, /* just below: down */
      {0xbf818000u, 0xbf820000u}, /* negative ties the same way */
      {0x80000000u, 0x80000000u}, /* -0 */
      {0x7f800000u, 0x7f800000u}, /* +inf */
      {0xff800000u, 0xff800000u}, /* -inf */
      {0x7f7fffffu, 0x7f800000u}, /* the largest float rounds up to inf */
      {0x00018000u, 0x00020000u}, /* a subnormal tie, to even */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint32_t got = bits_of(bf16_round_float(float_of(cases[i][0])));
    EXPECT(got == cases[i][1], "bf16_round_float(0x%08x) = 0x%08x, want 0x%08x", cases[i][0], got, cases[i][1]);
  }
  float n = bf16_round_float(float_of(0xff812345u)); /* a signalling NaN with payload */
  EXPECT(isnan(n) && signbit(n) && (bits_of(n) & 0xffffu) == 0 && (bits_of(n) & 0x00400000u),
         "NaN rounds to 0x%08x: want a quiet NaN of its sign with the low half clear", bits_of(n));
  float x[5] = {1.0f, float_of(0x3f808000u), -3.5f, float_of(0x3f808001u), 0.0f}, y[5];
  bf16_round_floats(y, x, 5);
  for (int i = 0; i < 5; i++)
    EXPECT(bits_of(y[i]) == bits_of(bf16_round_float(x[i])), "bf16_round_floats [%d] differs from bf16_round_float", i);
}

/* the shapes: edges of the 32 x 32 blocks and the 32-wide k blocks, one dimension 1, the DiT's */
static const int shapes[][3] = {{1, 1, 1},    {5, 6, 1},     {37, 23, 19},  {1, 64, 33},   {64, 1, 7},
                                {33, 17, 65}, {32, 32, 32},  {47, 81, 100}, {49, 49, 32},  {32, 49, 49},
                                {300, 96, 64}, {128, 384, 128}, {96, 128, 517}};

/* op(A)[i][k] and op(B)[k][j] of row-major storage */
static float at_a(const float *A, int ta, int M, int K, int i, int k) {
  return ta ? A[(long)k * M + i] : A[(long)i * K + k];
}
static float at_b(const float *B, int tb, int N, int K, int k, int j) {
  return tb ? B[(long)j * K + k] : B[(long)k * N + j];
}

/* ops->gemm in bf16 on every shape, transpose and beta against the double product of the rounded
 * operands: |got - ref| <= (K + 4) 2^-24 (|alpha| sum |a b| + |beta c|) + 1e-30, the bound of any
 * order of float32 sums of exact products. Returns how many elements were further from the
 * float32 operands' product than that bound (the rounding is seen). */
static long products_against_reference(const char *way) {
  long beyond = 0;
  for (size_t z = 0; z < sizeof shapes / sizeof shapes[0]; z++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int bz = 0; bz < 2; bz++) {
          int M = shapes[z][0], N = shapes[z][1], K = shapes[z][2];
          float alpha = 0.7f, beta = bz ? 0.3f : 0.0f;
          float *A = alloc_f((long)M * K), *B = alloc_f((long)K * N);
          float *C = alloc_f((long)M * N), *C0 = alloc_f((long)M * N);
          fill_uniform(A, (long)M * K, -1, 1), fill_uniform(B, (long)K * N, -1, 1), fill_uniform(C, (long)M * N, -1, 1);
          if (!bz) /* beta 0 does not read C: NaN there must not show */
            for (long i = 0; i < (long)M * N; i++) C[i] = NAN;
          memcpy(C0, C, sizeof(float) * (size_t)M * N);
          ops->gemm(ta, tb, M, N, K, alpha, A, B, beta, C);
          long bad = 0, worst = -1;
          double worst_ratio = 0;
          for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
              double r = 0, e = 0, mag = 0;
              for (int k = 0; k < K; k++) {
                float a = at_a(A, ta, M, K, i, k), b = at_b(B, tb, N, K, k, j);
                r += (double)bf16_round_float(a) * bf16_round_float(b), e += (double)a * b, mag += fabs((double)a * b);
              }
              double c0 = bz ? C0[(long)i * N + j] : 0;
              double ref = alpha * r + beta * c0, exact = alpha * e + beta * c0;
              double bound = (K + 4) * ldexp(1.0, -24) * (fabs(alpha) * mag + fabs(beta * c0)) + 1e-30;
              double err = fabs(C[(long)i * N + j] - ref);
              if (!(err <= bound)) bad++;
              if (err / bound > worst_ratio || !(err <= bound)) worst_ratio = err / bound, worst = (long)i * N + j;
              beyond += fabs(C[(long)i * N + j] - exact) > bound;
            }
          EXPECT(bad == 0, "%s: gemm %c%c %dx%dx%d beta %g: %ld of %d elements beyond the float32 sum's bound of the "
                 "rounded product (worst [%ld] at %.3g times the bound)", way, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K,
                 (double)beta, bad, M * N, worst, worst_ratio);
          ops->free(A), ops->free(B), ops->free(C), ops->free(C0);
        }
  return beyond;
}

static void test_bf16_products_amx(void) {
  if (!gemm_bf16_select(1)) {
    t_skip("this processor (or its kernel) has no AMX-BF16; the round way is tested");
    return;
  }
  cpu_set_bf16(1);
  long beyond = products_against_reference("amx");
  EXPECT(beyond > 100, "amx: only %ld elements differ from the float32 product by more than the bound: were the "
         "operands rounded?", beyond);
  cpu_set_bf16(0);
}

static void test_bf16_products_round(void) {
  gemm_bf16_select(0);
  cpu_set_bf16(1);
  long beyond = products_against_reference("round");
  EXPECT(beyond > 100, "round: only %ld elements differ from the float32 product by more than the bound", beyond);
  cpu_set_bf16(0);
  gemm_bf16_select(1);
}

/* the amx way's bits do not depend on the threads that cut C, nor on being inside a parallel region */
static void test_bf16_threads(void) {
  if (!gemm_bf16_select(1)) {
    t_skip("no AMX-BF16 here: the round way's sums are the float32 sgemm's (test_fused checks its threads)");
    return;
  }
  cpu_set_bf16(1);
  static const int gs[][5] = {{0, 1, 3136, 384, 128}, {1, 0, 512, 128, 3136}, {0, 0, 3136, 128, 512},
                              {1, 1, 300, 500, 200},  {0, 1, 100, 1001, 97}};
  int saved = omp_get_max_threads();
  for (size_t z = 0; z < sizeof gs / sizeof gs[0]; z++) {
    int ta = gs[z][0], tb = gs[z][1], M = gs[z][2], N = gs[z][3], K = gs[z][4];
    float *A = alloc_f((long)M * K), *B = alloc_f((long)K * N), *C1 = alloc_f((long)M * N), *C = alloc_f((long)M * N);
    fill_uniform(A, (long)M * K, -1, 1), fill_uniform(B, (long)K * N, -1, 1), fill_uniform(C1, (long)M * N, -1, 1);
    memcpy(C, C1, sizeof(float) * (size_t)M * N);
    omp_set_num_threads(1);
    ops->gemm(ta, tb, M, N, K, 0.5f, A, B, 1.0f, C1);
    for (int th = 2; th <= 3; th++) {
      float *C2 = alloc_f((long)M * N);
      memcpy(C2, C, sizeof(float) * (size_t)M * N);
      omp_set_num_threads(th);
      ops->gemm(ta, tb, M, N, K, 0.5f, A, B, 1.0f, C2);
      EXPECT(memcmp(C2, C1, sizeof(float) * (size_t)M * N) == 0,
             "gemm %c%c %dx%dx%d at %d threads differs from 1 thread", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, th);
      ops->free(C2);
    }
    ops->free(A), ops->free(B), ops->free(C1), ops->free(C);
  }
  /* a batch of small products runs one per thread inside a parallel region */
  enum { BT = 8, T = 49, HS = 32 };
  float *q = alloc_f(BT * T * HS), *k = alloc_f(BT * T * HS), *s1 = alloc_f(BT * T * T), *s2 = alloc_f(BT * T * T);
  fill_uniform(q, BT * T * HS, -1, 1), fill_uniform(k, BT * T * HS, -1, 1);
  omp_set_num_threads(1);
  ops->gemm_batched(0, 1, T, T, HS, 0.25f, q, T * HS, k, T * HS, 0.0f, s1, T * T, BT);
  omp_set_num_threads(2);
  ops->gemm_batched(0, 1, T, T, HS, 0.25f, q, T * HS, k, T * HS, 0.0f, s2, T * T, BT);
  EXPECT(memcmp(s1, s2, sizeof(float) * BT * T * T) == 0, "gemm_batched at 2 threads differs from 1 thread");
  for (int b = 0; b < BT; b++) { /* and each matrix is the single product's */
    ops->gemm(0, 1, T, T, HS, 0.25f, q + b * T * HS, k + b * T * HS, 0.0f, s2 + b * T * T);
  }
  EXPECT(memcmp(s1, s2, sizeof(float) * BT * T * T) == 0, "gemm_batched differs from one gemm per matrix");
  ops->free(q), ops->free(k), ops->free(s1), ops->free(s2);
  omp_set_num_threads(saved);
  cpu_set_bf16(0);
}

static void set_precision(void *p) { backend_set_precision(p); }

static void test_bf16_setting(void) {
  EXPECT(strcmp(backend_set_precision("bf16"), "bf16") == 0 && cpu_bf16() == 1, "precision=bf16 not in force");
  EXPECT(strcmp(backend_precision(), "bf16") == 0, "backend_precision() = %s", backend_precision());
  EXPECT(strcmp(backend_set_precision("fp32"), "fp32") == 0 && cpu_bf16() == 0, "precision=fp32 left bf16 on");
  EXPECT(expect_fatal(set_precision, "tf32", "precision=tf32: the cpu backend has no tf32 products"),
         "precision=tf32 on the CPU was not refused naming the backend");
  EXPECT(expect_fatal(set_precision, "fp16", "config key 'precision' = 'fp16'"), "precision=fp16 not refused");
  const char *way = gemm_bf16_way();
  EXPECT(strcmp(way, "amx") == 0 || strcmp(way, "round") == 0, "gemm_bf16_way() = %s", way);
}

/* one flow-loss forward and backward of a small DiT: the loss, and the gradient (host, *n floats) */
static double dit_step(float **grads, long *n) {
  static const ModelConfig cfg = {.kind = "dit", .dim = 2 * 16 * 16, .num_classes = 3, .width = 64, .depth = 2,
                                  .temb_dim = 32, .img_channels = 2, .img_size = 16, .patch = 2, .heads = 4};
  enum { B = 8 };
  Model *m = model_create(&cfg, B);
  for (long i = 0; i < m->num_params; i++) /* every weight, the adaLN-Zero ones included, away from 0 */
    m->params[i] = (float)(0.1 * sin(0.37 * (double)i + 1.0));
  FlowBatch *fb = flow_batch_create(B, cfg.dim, model_label_ints(&cfg));
  FlowConfig fc = {.logit_normal = 1, .t_mean = 0, .t_std = 1, .p_uncond = 0.3};
  float *x = alloc_f((long)B * cfg.dim);
  for (long i = 0; i < (long)B * cfg.dim; i++) x[i] = (float)cos(0.11 * (double)i);
  int labels[B] = {0, 1, 2, 0, 1, 2, 0, 1};
  model_zero_grad(m);
  double loss = flow_train_batch(m, fb, x, labels, NULL, B, 0, 0, 11, &fc, B) / B;
  *n = m->num_params, *grads = host_copy(m->grads, m->num_params);
  ops->free(x);
  flow_batch_free(fb), model_free(m);
  return loss;
}

static void test_bf16_dit_step(void) {
  float *g32, *g16;
  long n, n16;
  double l32 = dit_step(&g32, &n);
  cpu_set_bf16(1);
  double l16 = dit_step(&g16, &n16);
  cpu_set_bf16(0);
  EXPECT(n16 == n, "the bf16 step's gradient has %ld values, the float32 one's %ld", n16, n);
  if (n16 < n) n = n16;
  double num = 0, den = 0;
  for (long i = 0; i < n; i++) {
    double d = (double)g16[i] - g32[i];
    num += d * d, den += (double)g32[i] * g32[i];
  }
  double e = num / den;
  printf("  dit %s: loss %.6f (fp32) vs %.6f (bf16), gradient NMSE %.3g\n", gemm_bf16_way(), l32, l16, e);
  EXPECT_CLOSE(l16, l32, 0, 2e-3, "dit bf16 loss");
  EXPECT(e <= 1e-4, "dit bf16 gradient NMSE %.3g against fp32 (bound 1e-4)", e);
  EXPECT(e > 1e-9, "dit bf16 gradient NMSE %.3g: as if the GEMMs had not rounded", e);
  free(g32), free(g16);
}

int main(void) {
  ops = ops_cpu_best();
  TEST_RUN(test_bf16_round);
  TEST_RUN(test_bf16_products_amx);
  TEST_RUN(test_bf16_products_round);
  TEST_RUN(test_bf16_threads);
  TEST_RUN(test_bf16_setting);
  TEST_RUN(test_bf16_dit_step);
  return t_finish();
}
