/* test_fused.c: each fused op of the CPU backend's transformer against its unfused form, on the
 * same inputs, bit for bit (the fused ops keep the order of every float operation; core/ops_list.h):
 * the fused linear layers against gemm + bias_add (+ gelu_forward, or copy + gated_residual_forward),
 * with and without a bias, at 1 to 3 threads, with row counts that run as one block and in row
 * blocks with a long last block, and the gated residual in place (h_out = h_in); adaLN's
 * layernorm_modulate_forward against layernorm_forward + modulate_forward, with and without keeping
 * LN(x), mean and rstd, and modulate_layernorm_backward against modulate_backward +
 * layernorm_backward; gelu_bias_backward and gated_residual_bias_backward against their op and
 * bias_backward; attention_forward and attention_backward against the ops of the unfused
 * attention; and the whole Fashion-MNIST dit and reward classifier, forward and
 * backward, with the fused ops and with each replaced by its unfused composition, and its
 * inference forward (no activations kept) against its training forward, also on a model created
 * for inference only (MODEL_INFERENCE, whose training forward is refused); and the CPU backend's
 * AVX2 and AVX-512 compiles (ops_cpu_avx2, ops_cpu_avx512) against its baseline one (ops_cpu),
 * each where this processor has it (else skipped, saying so): the three models forward and
 * backward, AdamW, SiLU, GELU, softmax, LayerNorm, the EMA and sum_squares, bit for bit; and gemm
 * at 2 threads (cut along C's longer side) and 3 (OpenBLAS's threads) against 1 thread, bit for bit;
 * in precision=bf16, the fused linear layers against the unfused ops in bf16, both ways of the bf16
 * products, and the three models fused against unfused (the fused attention on both sides), bit for
 * bit.
 * Not here: values against a reference (test_dit checks the unfused ops, test_dit_golden the whole
 * dit against PyTorch), CUDA conformance (test_cuda). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "backend.h"
#include "common.h"
#include "gemm_bf16.h"
#include "model.h"
#include "ops.h"
#include "test.h"

#define TEST_SEED 20261205u
#include "gradcheck.h"

static void expect_same(const char *what, const float *got, const float *want, long n) {
  long bad = 0, first = -1;
  for (long i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) bad++, first = first < 0 ? i : first;
  EXPECT(bad == 0, "%s: %ld of %ld values differ from the unfused ops' (first at %ld: %.9g vs %.9g)", what, bad, n,
         first, bad ? got[first] : 0.0, bad ? want[first] : 0.0);
}

/* B, T (rows B T), K inputs, O outputs: small layers (one GEMM; one in blocks but for OpenBLAS's
 * small-matrix kernels), blocks with a long last one (2500 rows), and every linear layer of the
 * Fashion-MNIST dit (width 128, 49 tokens, patch 16 features) and of its reward classifier (width 64)
 * at the distillation's batch of 64 */
static const int shapes[][4] = {{3, 17, 24, 40}, {8, 125, 37, 19}, {20, 125, 64, 256}, {64, 49, 16, 128},
                                {64, 49, 128, 384}, {64, 49, 128, 128}, {64, 49, 128, 512}, {64, 49, 512, 128},
                                {64, 49, 128, 16}, {64, 1, 128, 768}, {64, 49, 64, 192}, {64, 49, 64, 64}};

typedef struct {
  int B, T, K, O, N;
  long n;
  float *x, *W, *b, *h_in, *cond; /* inputs: x (N, K), W (O, K), b (O), h_in (N, O), cond (B, 6 O) */
} Layer;

static Layer layer_make(const int *s) {
  Layer l = {.B = s[0], .T = s[1], .K = s[2], .O = s[3]};
  l.N = l.B * l.T, l.n = (long)l.N * l.O;
  l.x = alloc_f((long)l.N * l.K), l.W = alloc_f((long)l.O * l.K), l.b = alloc_f(l.O);
  l.h_in = alloc_f(l.n), l.cond = alloc_f(6L * l.B * l.O);
  fill_uniform(l.x, (long)l.N * l.K, -1, 1), fill_uniform(l.W, (long)l.O * l.K, -0.5, 0.5);
  fill_uniform(l.b, l.O, -1, 1), fill_uniform(l.h_in, l.n, -2, 2), fill_uniform(l.cond, 6L * l.B * l.O, -1, 1);
  return l;
}

static void layer_free(Layer *l) {
  ops->free(l->x), ops->free(l->W), ops->free(l->b), ops->free(l->h_in), ops->free(l->cond);
}

/* z = x W^T + b, unfused */
static void unfused_linear(float *z, const Layer *l, const float *b) {
  ops->gemm(0, 1, l->N, l->O, l->K, 1.0f, l->x, l->W, 0.0f, z);
  if (b) ops->bias_add(z, b, l->N, l->O);
}

static void check_layer(const Layer *l, const float *b, const char *tag) {
  long n = l->n;
  float *want = alloc_f(n), *want_y = alloc_f(n), *want_dg = alloc_f(n), *want_h = alloc_f(n);
  float *got = alloc_f(n), *got_y = alloc_f(n), *got_dg = alloc_f(n), *got_h = alloc_f(n);
  char what[160];
  unfused_linear(want, l, b);
  ops->fill(got, 7.0f, n); /* the fused ops overwrite */
  ops->linear_forward(got, l->x, l->W, b, l->N, l->K, l->O);
  snprintf(what, sizeof what, "linear_forward %s", tag);
  expect_same(what, got, want, n);

  ops->gelu_forward(want_y, want_dg, want, n);
  for (int v = 0; v < 4; v++) { /* with and without pre (NULL: z is made in y), with and without dg */
    int keep_pre = v < 2, keep_dg = v % 2 == 0;
    const char *how = keep_pre ? (keep_dg ? "" : " without dg") : keep_dg ? " without pre" : " without pre or dg";
    ops->fill(got, 7.0f, n), ops->fill(got_y, 7.0f, n), ops->fill(got_dg, 7.0f, n);
    ops->linear_gelu_forward(got_y, keep_dg ? got_dg : NULL, keep_pre ? got : NULL, l->x, l->W, b, l->N, l->K, l->O);
    snprintf(what, sizeof what, "linear_gelu_forward y%s %s", how, tag);
    expect_same(what, got_y, want_y, n);
    if (keep_pre) {
      snprintf(what, sizeof what, "linear_gelu_forward pre%s %s", how, tag);
      expect_same(what, got, want, n);
    }
    if (keep_dg) {
      snprintf(what, sizeof what, "linear_gelu_forward dg%s %s", how, tag);
      expect_same(what, got_dg, want_dg, n);
    }
  }

  const float *gate = l->cond + 5 * l->O; /* chunk 5 of the adaLN output, as the dit's MLP half */
  ops->copy(want_h, l->h_in, sizeof(float) * (size_t)n);
  ops->gated_residual_forward(want_h, gate, want, 6 * l->O, l->B, l->T, l->O);
  ops->fill(got, 7.0f, n), ops->fill(got_h, 7.0f, n);
  ops->linear_residual_forward(got_h, got, l->h_in, gate, 6 * l->O, l->x, l->W, b, l->B, l->T, l->K, l->O);
  snprintf(what, sizeof what, "linear_residual_forward y %s", tag);
  expect_same(what, got, want, n);
  snprintf(what, sizeof what, "linear_residual_forward h %s", tag);
  expect_same(what, got_h, want_h, n);
  ops->copy(got_h, l->h_in, sizeof(float) * (size_t)n); /* in place: h_out = h_in */
  ops->linear_residual_forward(got_h, got, got_h, gate, 6 * l->O, l->x, l->W, b, l->B, l->T, l->K, l->O);
  snprintf(what, sizeof what, "linear_residual_forward in place %s", tag);
  expect_same(what, got_h, want_h, n);

  float *bufs[] = {want, want_y, want_dg, want_h, got, got_y, got_dg, got_h};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
}

/* check_layer on every shape, with and without a bias, at 1 to 3 threads; `how` starts each tag */
static void linear_fused_cases(const char *how) {
  int threads = omp_get_max_threads();
  for (size_t z = 0; z < sizeof shapes / sizeof shapes[0]; z++) {
    Layer l = layer_make(shapes[z]);
    for (int th = 1; th <= 3; th++) {
      omp_set_num_threads(th);
      for (int bias = 0; bias < 2; bias++) {
        char tag[96];
        snprintf(tag, sizeof tag, "%s%dx%dx%d%s, %d threads", how, l.N, l.K, l.O, bias ? " bias" : "", th);
        check_layer(&l, bias ? l.b : NULL, tag);
      }
    }
    layer_free(&l);
  }
  omp_set_num_threads(threads);
}

static void test_linear_fused(void) { linear_fused_cases(""); }

/* precision=bf16: the fused linear layers (with AMX: one product with the bias and the step in its
 * epilogue, src/gemm_bf16.h; without: the row blocks on rounded operands) against gemm + bias_add +
 * the step in bf16, bit for bit, at 1 to 3 threads, both ways of the bf16 products */
static void test_linear_fused_bf16(void) {
  cpu_set_bf16(1);
  for (int way = 1; way >= 0; way--) {
    if (gemm_bf16_select(way) != way) {
      printf("  the amx way skipped: this processor (or its kernel) has no AMX-BF16\n");
      continue;
    }
    linear_fused_cases(way ? "bf16 amx " : "bf16 round ");
  }
  gemm_bf16_select(1);
  cpu_set_bf16(0);
}

/* adaLN: layernorm_modulate_forward against layernorm_forward + modulate_forward, and
 * modulate_layernorm_backward against modulate_backward + layernorm_backward, the conditioning
 * chunks 3 and 4 of a (B, 6C) adaLN output as the dit's MLP half reads them */
static void test_layernorm_modulate(void) {
  static const int ln_shapes[][3] = {{3, 17, 24}, {4, 49, 128}, {64, 49, 128}}; /* B, T, C; the last threaded */
  for (size_t z = 0; z < sizeof ln_shapes / sizeof ln_shapes[0]; z++) {
    int B = ln_shapes[z][0], T = ln_shapes[z][1], C = ln_shapes[z][2], N = B * T, ld = 6 * C;
    long n = (long)N * C;
    float *x = alloc_f(n), *cond = alloc_f((long)B * ld);
    fill_uniform(x, n, -3, 3), fill_uniform(cond, (long)B * ld, -1, 1);
    const float *shift = cond + 3 * C, *scale = cond + 4 * C;
    float *want_ln = alloc_f(n), *want_y = alloc_f(n), *want_mean = alloc_f(N), *want_rstd = alloc_f(N);
    float *ln = alloc_f(n), *y = alloc_f(n), *mean = alloc_f(N), *rstd = alloc_f(N);
    ops->layernorm_forward(want_ln, want_mean, want_rstd, x, N, C);
    ops->modulate_forward(want_y, want_ln, shift, scale, ld, B, T, C);
    ops->fill(ln, 7.0f, n), ops->fill(y, 7.0f, n), ops->fill(mean, 7.0f, N), ops->fill(rstd, 7.0f, N);
    ops->layernorm_modulate_forward(y, ln, mean, rstd, x, shift, scale, ld, B, T, C);
    char what[96];
    snprintf(what, sizeof what, "layernorm_modulate_forward y %dx%dx%d", B, T, C);
    expect_same(what, y, want_y, n);
    snprintf(what, sizeof what, "layernorm_modulate_forward ln %dx%dx%d", B, T, C);
    expect_same(what, ln, want_ln, n);
    snprintf(what, sizeof what, "layernorm_modulate_forward mean %dx%dx%d", B, T, C);
    expect_same(what, mean, want_mean, N);
    snprintf(what, sizeof what, "layernorm_modulate_forward rstd %dx%dx%d", B, T, C);
    expect_same(what, rstd, want_rstd, N);
    ops->fill(y, 7.0f, n);
    ops->layernorm_modulate_forward(y, NULL, NULL, NULL, x, shift, scale, ld, B, T, C);
    snprintf(what, sizeof what, "layernorm_modulate_forward y, nothing kept, %dx%dx%d", B, T, C);
    expect_same(what, y, want_y, n);
    /* the backward: dx adds (it starts from the same random values), dshift and dscale overwrite */
    float *dy = alloc_f(n), *dm = alloc_f(n), *dx0 = alloc_f(n), *want_dx = alloc_f(n), *dx = alloc_f(n);
    float *want_dcond = alloc_f((long)B * ld), *dcond = alloc_f((long)B * ld);
    fill_uniform(dy, n, -1, 1), fill_uniform(dx0, n, -1, 1);
    ops->copy(want_dx, dx0, sizeof(float) * (size_t)n), ops->copy(dx, dx0, sizeof(float) * (size_t)n);
    ops->modulate_backward(dm, want_dcond + 3 * C, want_dcond + 4 * C, dy, want_ln, scale, ld, B, T, C);
    ops->layernorm_backward(want_dx, dm, x, want_mean, want_rstd, N, C);
    ops->fill(dcond, 7.0f, (long)B * ld);
    ops->modulate_layernorm_backward(dx, dcond + 3 * C, dcond + 4 * C, dm, dy, want_ln, scale, x, want_mean, want_rstd,
                                     ld, B, T, C);
    snprintf(what, sizeof what, "modulate_layernorm_backward dx %dx%dx%d", B, T, C);
    expect_same(what, dx, want_dx, n);
    for (int b = 0; b < B; b++) {
      snprintf(what, sizeof what, "modulate_layernorm_backward dshift, dscale, sample %d of %dx%dx%d", b, B, T, C);
      expect_same(what, dcond + (long)b * ld + 3 * C, want_dcond + (long)b * ld + 3 * C, 2 * C);
    }
    float *more[] = {dy, dm, dx0, want_dx, dx, want_dcond, dcond};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) ops->free(more[i]);
    float *bufs[] = {x, cond, want_ln, want_y, want_mean, want_rstd, ln, y, mean, rstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  }
}

/* ---- the unfused compositions, the fused attention, and the whole dit with each fused op replaced -- */

static const amd_ops *backend_ops; /* the CPU table the unfused compositions call */

static void unfused_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
  backend_ops->gemm(0, 1, N, O, K, 1.0f, x, W, 0.0f, y);
  if (b) backend_ops->bias_add(y, b, N, O);
}
static void unfused_linear_gelu_forward(float *y, float *dg, float *pre, const float *x, const float *W,
                                        const float *b, int N, int K, int O) {
  float *z = pre ? pre : y; /* as the fused op: pre NULL makes z in y */
  unfused_linear_forward(z, x, W, b, N, K, O);
  backend_ops->gelu_forward(y, dg, z, (long)N * O);
}
static void unfused_linear_residual_forward(float *h_out, float *y, const float *h_in, const float *gate, int ld,
                                            const float *x, const float *W, const float *b, int B, int T, int K,
                                            int O) {
  unfused_linear_forward(y, x, W, b, B * T, K, O);
  if (h_out != h_in) backend_ops->copy(h_out, h_in, sizeof(float) * (size_t)B * T * O);
  backend_ops->gated_residual_forward(h_out, gate, y, ld, B, T, O);
}
static void unfused_layernorm_modulate_forward(float *y, float *ln, float *mean, float *rstd, const float *x,
                                               const float *shift, const float *scale, int ld, int B, int T, int C) {
  long N = (long)B * T;
  float *l = ln ? ln : backend_ops->alloc(sizeof(float) * (size_t)N * C);
  float *mu = mean ? mean : backend_ops->alloc(sizeof(float) * (size_t)N);
  float *rs = rstd ? rstd : backend_ops->alloc(sizeof(float) * (size_t)N);
  backend_ops->layernorm_forward(l, mu, rs, x, (int)N, C);
  backend_ops->modulate_forward(y, l, shift, scale, ld, B, T, C);
  if (!ln) backend_ops->free(l);
  if (!mean) backend_ops->free(mu);
  if (!rstd) backend_ops->free(rs);
}

/* the unfused sequences as the CUDA backend runs them, each in buffers of its own (the CPU's ops
 * take no scratch for the heads): the heads split out of qkv, and in the backward dq in dy's place
 * and dk in v's once those are read */
static void unfused_attention_forward(float *out, float *prob, float *scratch, const float *qkv, int B, int T, int NH,
                                      int hs) {
  (void)scratch;
  int n = B * NH;
  long th = (long)T * hs, tt = (long)T * T, btc = (long)B * T * NH * hs;
  float *q = alloc_f(4 * btc), *k = q + btc, *v = k + btc, *y = v + btc;
  backend_ops->heads_split(q, k, v, qkv, B, T, NH, hs);
  backend_ops->gemm_batched(0, 1, T, T, hs, 1.0f / sqrtf((float)hs), q, th, k, th, 0.0f, prob, tt, n);
  backend_ops->softmax_forward(prob, prob, n * T, T);
  backend_ops->gemm_batched(0, 0, T, hs, T, 1.0f, prob, tt, v, th, 0.0f, y, th, n);
  backend_ops->heads_merge(out, y, B, T, NH, hs);
  backend_ops->free(q);
}

static void unfused_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                       const float *prob, int B, int T, int NH, int hs) {
  int n = B * NH;
  long th = (long)T * hs, tt = (long)T * T, btc = (long)B * T * NH * hs;
  (void)scratch;
  float *dprob = alloc_f(2 * n * tt + 5 * btc), *datt = dprob + n * tt, *q = datt + n * tt, *k = q + btc;
  float *v = k + btc, *dy = v + btc, *dv = dy + btc, *dq = dy, *dk = v;
  float scale = 1.0f / sqrtf((float)hs);
  backend_ops->heads_split(q, k, v, qkv, B, T, NH, hs);
  backend_ops->heads_merge_backward(dy, dout, B, T, NH, hs);
  backend_ops->gemm_batched(0, 1, T, T, hs, 1.0f, dy, th, v, th, 0.0f, dprob, tt, n);
  backend_ops->gemm_batched(1, 0, T, hs, T, 1.0f, prob, tt, dy, th, 0.0f, dv, th, n);
  backend_ops->softmax_backward(datt, dprob, prob, n * T, T);
  backend_ops->gemm_batched(0, 0, T, hs, T, scale, datt, tt, k, th, 0.0f, dq, th, n);
  backend_ops->gemm_batched(1, 0, T, hs, T, scale, datt, tt, q, th, 0.0f, dk, th, n);
  backend_ops->heads_split_backward(dqkv, dq, dk, dv, B, T, NH, hs);
  backend_ops->free(dprob);
}

/* attention_forward against heads_split, gemm_batched, softmax_forward, gemm_batched, heads_merge,
 * and attention_backward against heads_split and its five unfused ops and the two copies:
 * the dit's heads (4 x 32 over 49 tokens) at the batch of 64, an odd shape, and heads large enough
 * that gemm_batched runs them one after the other on OpenBLAS's threads */
static void test_attention_fused(void) {
  static const int att_shapes[][4] = {{64, 49, 4, 32}, {3, 7, 2, 5}, {2, 256, 2, 64}}; /* B, T, NH, hs */
  backend_ops = ops;
  for (size_t z = 0; z < sizeof att_shapes / sizeof att_shapes[0]; z++) {
    int B = att_shapes[z][0], T = att_shapes[z][1], NH = att_shapes[z][2], hs = att_shapes[z][3];
    long C = (long)NH * hs, n = (long)B * T * C, np = (long)B * NH * T * T;
    float *qkv = alloc_f(3 * n);
    fill_uniform(qkv, 3 * n, -2, 2);
    float *want[2], *got[2]; /* out, prob */
    long len[2] = {n, np};
    for (int i = 0; i < 2; i++) want[i] = alloc_f(len[i]), got[i] = alloc_f(len[i]), ops->fill(got[i], 7.0f, len[i]);
    long nf = attention_forward_scratch_floats(ops, B, T, (int)C);
    float *fscratch = alloc_f(nf);
    unfused_attention_forward(want[0], want[1], fscratch, qkv, B, T, NH, hs);
    ops->fill(fscratch, 7.0f, nf);
    ops->attention_forward(got[0], got[1], fscratch, qkv, B, T, NH, hs);
    static const char *names[2] = {"out", "prob"};
    for (int i = 0; i < 2; i++) {
      char what[96];
      snprintf(what, sizeof what, "attention_forward %s, B %d T %d NH %d hs %d", names[i], B, T, NH, hs);
      expect_same(what, got[i], want[i], len[i]);
    }
    /* the backward from the forward's qkv and prob, into a poisoned dqkv (it overwrites) */
    long ns = attention_scratch_floats(ops, B, T, (int)C, NH);
    float *dout = alloc_f(n), *scratch = alloc_f(ns), *dqkv_want = alloc_f(3 * n), *dqkv = alloc_f(3 * n);
    fill_uniform(dout, n, -1, 1);
    unfused_attention_backward(dqkv_want, scratch, dout, qkv, want[1], B, T, NH, hs);
    ops->fill(dqkv, 7.0f, 3 * n), ops->fill(scratch, 7.0f, ns);
    ops->attention_backward(dqkv, scratch, dout, qkv, want[1], B, T, NH, hs);
    char what[96];
    snprintf(what, sizeof what, "attention_backward dqkv, B %d T %d NH %d hs %d", B, T, NH, hs);
    expect_same(what, dqkv, dqkv_want, 3 * n);
    for (int i = 0; i < 2; i++) ops->free(want[i]), ops->free(got[i]);
    ops->free(qkv), ops->free(fscratch), ops->free(dout), ops->free(scratch), ops->free(dqkv_want), ops->free(dqkv);
  }
}

static void unfused_modulate_layernorm_backward(float *dx, float *dshift, float *dscale, float *dm, const float *dy,
                                                const float *ln, const float *scale, const float *x,
                                                const float *mean, const float *rstd, int ld, int B, int T, int C) {
  backend_ops->modulate_backward(dm, dshift, dscale, dy, ln, scale, ld, B, T, C);
  backend_ops->layernorm_backward(dx, dm, x, mean, rstd, B * T, C);
}

static void unfused_gelu_bias_backward(float *dx, float *db, const float *dy, const float *x, const float *dg, int N,
                                       int O) {
  backend_ops->gelu_backward(dx, dy, x, dg, (long)N * O);
  if (db) backend_ops->bias_backward(db, dx, N, O);
}
static void unfused_gated_residual_bias_backward(float *dy, float *dgate, float *db, const float *dx, const float *y,
                                                 const float *gate, int ld, int B, int T, int C) {
  backend_ops->gated_residual_backward(dy, dgate, dx, y, gate, ld, B, T, C);
  if (db) backend_ops->bias_backward(db, dy, B * T, C);
}

/* gelu_bias_backward and gated_residual_bias_backward against their two unfused ops, with and without
 * the bias gradient, from a random db (it adds): the dit's MLP (49 tokens, 64 samples, width 128),
 * an odd shape, and one wider than a column block of bias_backward */
static void test_bias_backward_fused(void) {
  static const int bb_shapes[][3] = {{64, 49, 128}, {3, 7, 19}, {4, 30, 700}}; /* B, T, C; GELU over 4C */
  backend_ops = ops;
  for (size_t z = 0; z < sizeof bb_shapes / sizeof bb_shapes[0]; z++) {
    int B = bb_shapes[z][0], T = bb_shapes[z][1], C = bb_shapes[z][2], N = B * T, O = 4 * C, ld = 6 * C;
    long n = (long)N * C, n4 = (long)N * O;
    float *dy4 = alloc_f(n4), *x4 = alloc_f(n4), *dg4 = alloc_f(n4), *y4 = alloc_f(n4), *db0 = alloc_f(O);
    fill_uniform(dy4, n4, -1, 1), fill_uniform(x4, n4, -3, 3), fill_uniform(db0, O, -1, 1);
    ops->gelu_forward(y4, dg4, x4, n4);
    for (int with_dg = 0; with_dg < 2; with_dg++) {
      float *want = alloc_f(n4), *got = alloc_f(n4), *want_db = alloc_f(O), *got_db = alloc_f(O);
      ops->copy(want_db, db0, sizeof(float) * (size_t)O), ops->copy(got_db, db0, sizeof(float) * (size_t)O);
      unfused_gelu_bias_backward(want, want_db, dy4, x4, with_dg ? dg4 : NULL, N, O);
      ops->fill(got, 7.0f, n4);
      ops->gelu_bias_backward(got, got_db, dy4, with_dg ? NULL : x4, with_dg ? dg4 : NULL, N, O); /* dg: no x read */
      char what[96];
      snprintf(what, sizeof what, "gelu_bias_backward dx %dx%d%s", N, O, with_dg ? " derivative kept" : "");
      expect_same(what, got, want, n4);
      snprintf(what, sizeof what, "gelu_bias_backward db %dx%d%s", N, O, with_dg ? " derivative kept" : "");
      expect_same(what, got_db, want_db, O);
      ops->fill(got, 7.0f, n4);
      ops->gelu_bias_backward(got, NULL, dy4, with_dg ? NULL : x4, with_dg ? dg4 : NULL, N, O);
      snprintf(what, sizeof what, "gelu_bias_backward dx without db %dx%d", N, O);
      expect_same(what, got, want, n4);
      ops->free(want), ops->free(got), ops->free(want_db), ops->free(got_db);
    }
    float *dx = alloc_f(n), *y = alloc_f(n), *cond = alloc_f((long)B * ld), *dbc = alloc_f(C);
    float *want = alloc_f(n), *got = alloc_f(n), *want_dc = alloc_f((long)B * ld), *got_dc = alloc_f((long)B * ld);
    float *want_db = alloc_f(C), *got_db = alloc_f(C);
    fill_uniform(dx, n, -1, 1), fill_uniform(y, n, -2, 2), fill_uniform(cond, (long)B * ld, -1, 1);
    fill_uniform(dbc, C, -1, 1);
    ops->copy(want_db, dbc, sizeof(float) * (size_t)C), ops->copy(got_db, dbc, sizeof(float) * (size_t)C);
    unfused_gated_residual_bias_backward(want, want_dc + 5 * C, want_db, dx, y, cond + 5 * C, ld, B, T, C);
    ops->fill(got, 7.0f, n);
    ops->gated_residual_bias_backward(got, got_dc + 5 * C, got_db, dx, y, cond + 5 * C, ld, B, T, C);
    char what[96];
    snprintf(what, sizeof what, "gated_residual_bias_backward dy %dx%dx%d", B, T, C);
    expect_same(what, got, want, n);
    snprintf(what, sizeof what, "gated_residual_bias_backward db %dx%dx%d", B, T, C);
    expect_same(what, got_db, want_db, C);
    for (int b = 0; b < B; b++) {
      snprintf(what, sizeof what, "gated_residual_bias_backward dgate, sample %d of %dx%dx%d", b, B, T, C);
      expect_same(what, got_dc + (long)b * ld + 5 * C, want_dc + (long)b * ld + 5 * C, C);
    }
    float *bufs[] = {dy4, x4, dg4, y4, db0, dx, y, cond, dbc, want, got, want_dc, got_dc, want_db, got_db};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  }
}

/* The elementwise and row ops outside the dit's fused ones, the table of instruction set `isa`
 * (backend.h: 1 AVX2, 2 AVX-512; src/ops_cpu.c) against the baseline one, bit for bit, on lengths
 * that leave a vector tail (n = 100003, rows of 49 and 250): AdamW (two steps, with clipping scale
 * and weight decay), SiLU and GELU forward and backward, softmax forward and backward, LayerNorm
 * forward and backward, the EMA update and the sums. Skipped where the processor lacks it. */
static void isa_table_case(int isa) {
  static char why[96];
  if (!ops_cpu_isa(isa)) {
    snprintf(why, sizeof why, "this processor has no %s (the narrower tables run)", cpu_isa_names[isa]);
    t_skip(why);
    return;
  }
  const amd_ops *tab[2] = {&ops_cpu, ops_cpu_isa(isa)};
  enum { N = 100003, R = 400, C = 250 };
  float *in[4], *out[2][6];
  for (int i = 0; i < 4; i++) in[i] = alloc_f(N), fill_uniform(in[i], N, -3, 3);
  for (int k = 0; k < 2; k++) {
    const amd_ops *o = tab[k];
    for (int i = 0; i < 6; i++) out[k][i] = alloc_f(N);
    float *p = out[k][0], *m = out[k][1], *v = out[k][2];
    o->copy(p, in[0], sizeof(float) * N);
    for (long t = 1; t <= 2; t++) o->adamw(p, in[1], m, v, N, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.7f, t);
    o->silu_forward(out[k][3], in[2], N);
    o->silu_backward(out[k][3], in[3], in[2], N);
    o->gelu_forward(out[k][4], out[k][5], in[2], N);
    o->gelu_backward(out[k][4], in[3], in[2], out[k][5], N);
    o->ema_update(out[k][1], in[3], N, 0.01f);
  }
  static const char *const names[6] = {"adamw p", "adamw m, then ema_update", "adamw v", "silu forward + backward",
                                        "gelu backward", "gelu forward th"};
  for (int i = 0; i < 6; i++) {
    char what[96];
    snprintf(what, sizeof what, "%s, %s table", names[i], cpu_isa_names[isa]);
    float *a = host_copy(out[1][i], N), *b = host_copy(out[0][i], N);
    expect_same(what, a, b, N);
    free(a), free(b);
  }
  /* rows: softmax of 49 and of 250 columns, layernorm of 250 */
  for (int k = 0; k < 2; k++) {
    const amd_ops *o = tab[k];
    o->softmax_forward(out[k][0], in[0], R, 49);
    o->softmax_backward(out[k][1], in[1], out[k][0], R, 49);
    o->softmax_forward(out[k][2], in[2], R, C);
    o->layernorm_forward(out[k][3], out[k][4], out[k][4] + R, in[3], R, C);
    o->fill(out[k][5], 0.0f, (long)R * C);
    o->layernorm_backward(out[k][5], in[0], in[3], out[k][4], out[k][4] + R, R, C);
  }
  static const long len[6] = {R * 49, R * 49, R * C, R * C, 2 * R, R * C};
  static const char *const rows[6] = {"softmax forward", "softmax backward", "softmax forward, 250 columns",
                                      "layernorm forward", "layernorm mean, rstd", "layernorm backward"};
  for (int i = 0; i < 6; i++) {
    char what[96];
    snprintf(what, sizeof what, "%s, %s table", rows[i], cpu_isa_names[isa]);
    float *a = host_copy(out[1][i], len[i]), *b = host_copy(out[0][i], len[i]);
    expect_same(what, a, b, len[i]);
    free(a), free(b);
  }
  double s0 = ops_cpu.sum_squares(in[0], N), s1 = tab[1]->sum_squares(in[0], N);
  EXPECT(memcmp(&s0, &s1, sizeof s0) == 0, "sum_squares: %s table %.17g, baseline %.17g", cpu_isa_names[isa], s1,
         s0);
  for (int i = 0; i < 4; i++) ops->free(in[i]);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 6; i++) ops->free(out[k][i]);
}

static void test_avx2_table(void) { isa_table_case(1); }
static void test_avx512_table(void) { isa_table_case(2); }

/* the documented order of sum_squares over x[0, n): 16 interleaved double sums (sum k takes the
 * elements k, k + 16, ..., the tail's too), added in order */
static double sum16(const float *x, long n) {
  double acc[16] = {0}, s = 0;
  for (long j = 0; j < n; j++) acc[j % 16] += (double)x[j] * x[j];
  for (int k = 0; k < 16; k++) s += acc[k];
  return s;
}

/* sum_squares (src/ops_cpu.c) at one thread is its documented order exactly (sum16); at 3 threads,
 * above its 65536-element threshold, the three blocks' sums (ceil(n / 3) elements each, the last
 * shorter) added in that order, the same bits on 10 calls in a row (an OpenMP reduction adds the
 * threads' sums in the order they finish); and within n ulp (the bound of any order of n positive
 * double adds) of the long double sum, at 1 and 3 threads and on lengths with and without a tail
 * (the tables' equality is test_avx2_table's and test_avx512_table's). */
/* gemm at 2 threads (cut along C's longer side, src/ops_cpu.c) and 3 (OpenBLAS's threads) against 1
 * thread (one sgemm),
 * bit for bit: the GEMMs of the Fashion-MNIST dit's backward (width 128, 3136 rows), of the teacher
 * dit's (width 256), the adaLN weight gradient, cuts along rows and along columns, odd sizes, each
 * transpose, beta 1 with alpha 0.5 (C accumulates), and products near the cut's lower limit and
 * OpenBLAS's direct and small-matrix kernels (the patch embedding and output layer, K = 16 or 33) */
static void test_gemm_split(void) {
  static const int gs[][5] = {{1, 0, 512, 128, 3136}, {1, 0, 384, 128, 3136}, {1, 0, 128, 128, 3136},
                              {1, 0, 128, 512, 3136}, {0, 0, 3136, 512, 128}, {0, 0, 3136, 128, 512},
                              {1, 0, 1024, 256, 3136}, {1, 0, 256, 1024, 3136}, {0, 1, 3136, 768, 256},
                              {1, 0, 1536, 256, 64},  {0, 0, 64, 256, 1536},  {0, 1, 1001, 333, 97},
                              {1, 1, 300, 500, 200},  {0, 0, 3136, 256, 16},  {1, 0, 256, 16, 3136},
                              {0, 1, 3136, 16, 256},  {0, 0, 64, 256, 256},   {0, 1, 6272, 128, 16},
                              {0, 0, 2048, 128, 33}};
  int saved = omp_get_max_threads();
  for (size_t z = 0; z < sizeof gs / sizeof gs[0]; z++) {
    int tA = gs[z][0], tB = gs[z][1], M = gs[z][2], N = gs[z][3], K = gs[z][4];
    float *A = alloc_f((long)M * K), *B = alloc_f((long)K * N), *C0 = alloc_f((long)M * N), *C1 = alloc_f((long)M * N);
    fill_uniform(A, (long)M * K, -1, 1), fill_uniform(B, (long)K * N, -1, 1);
    for (int beta = 0; beta < 2; beta++) {
      float al = beta ? 0.5f : 1.0f;
      fill_uniform(C0, (long)M * N, -1, 1);
      ops->copy(C1, C0, sizeof(float) * (size_t)M * N);
      omp_set_num_threads(1);
      ops->gemm(tA, tB, M, N, K, al, A, B, (float)beta, C0);
      for (int th = 2; th <= 3; th++) {
        float *C2 = alloc_f((long)M * N);
        ops->copy(C2, C1, sizeof(float) * (size_t)M * N);
        omp_set_num_threads(th);
        ops->gemm(tA, tB, M, N, K, al, A, B, (float)beta, C2);
        char what[96];
        snprintf(what, sizeof what, "gemm %c%c %dx%dx%d beta %d at %d threads", tA ? 'T' : 'N', tB ? 'T' : 'N', M, N, K,
                 beta, th);
        expect_same(what, C2, C0, (long)M * N);
        ops->free(C2);
      }
    }
    ops->free(A), ops->free(B), ops->free(C0), ops->free(C1);
  }
  omp_set_num_threads(saved);
}

static void test_sum_squares_order(void) {
  static const long lens[4] = {100003, 100000, 17, 5};
  float *x = alloc_f(lens[0]);
  fill_uniform(x, lens[0], -3, 3);
  int was = omp_get_max_threads();
  for (int i = 0; i < 4; i++) {
    long n = lens[i], c = (n + 2) / 3;
    double want = sum16(x, n), want3 = n > 65536 ? sum16(x, c) + sum16(x + c, c) + sum16(x + 2 * c, n - 2 * c) : want;
    long double exact = 0;
    for (long j = 0; j < n; j++) exact += (long double)x[j] * x[j];
    omp_set_num_threads(1);
    double got = ops->sum_squares(x, n);
    EXPECT(memcmp(&got, &want, sizeof got) == 0, "sum_squares n=%ld at 1 thread: %.17g, the 16-sum order %.17g", n,
           got, want);
    omp_set_num_threads(3);
    double got2 = ops->sum_squares(x, n);
    EXPECT(memcmp(&got2, &want3, sizeof got2) == 0, "sum_squares n=%ld at 3 threads: %.17g, the blocks in order %.17g",
           n, got2, want3);
    int same = 1;
    for (int r = 0; r < 10; r++) {
      double again = ops->sum_squares(x, n);
      same &= memcmp(&again, &got2, sizeof again) == 0;
    }
    EXPECT(same, "sum_squares n=%ld at 3 threads does not repeat bit for bit", n);
    long double bound = (long double)n * 2.3e-16L * exact;
    EXPECT(fabsl(got2 - exact) <= bound && fabsl(got - exact) <= bound,
           "sum_squares n=%ld: %.17g (1 thread), %.17g (3), long double sum %.17Lg", n, got, got2, exact);
  }
  omp_set_num_threads(was);
  ops->free(x);
}

/* LayerNorm's row sums (src/ops_cpu.c: 16 interleaved double sums, sum k takes columns k, k + 16,
 * ..., added in order): layernorm_forward's mean, rstd and output equal that computation done here,
 * on rows of 256 and of 250 columns (a tail), so every column, the tail's too, is counted once with
 * the right mean. (Rounded to float, the results seldom show the order of the double adds; the
 * tables' equality, test_avx2_table and test_avx512_table, is what pins the order across widths.) */
static void test_layernorm_order(void) {
  enum { R = 37 };
  static const int widths[2] = {256, 250};
  for (int w = 0; w < 2; w++) {
    int C = widths[w];
    float *x = alloc_f((long)R * C), *y = alloc_f((long)R * C), *mean = alloc_f(R), *rstd = alloc_f(R);
    fill_uniform(x, (long)R * C, -2, 3);
    ops->layernorm_forward(y, mean, rstd, x, R, C);
    int bad_stats = 0, bad_out = 0;
    for (int r = 0; r < R; r++) {
      const float *xr = x + (long)r * C;
      double a[16] = {0}, q[16] = {0}, s = 0, ss = 0;
      for (int c = 0; c < C; c++) a[c % 16] += xr[c];
      for (int k = 0; k < 16; k++) s += a[k];
      double mu = s / C;
      for (int c = 0; c < C; c++) q[c % 16] += (xr[c] - mu) * (xr[c] - mu);
      for (int k = 0; k < 16; k++) ss += q[k];
      double rs = 1.0 / sqrt(ss / C + 1e-6);
      bad_stats += mean[r] != (float)mu || rstd[r] != (float)rs;
      for (int c = 0; c < C; c++) bad_out += y[(long)r * C + c] != (float)((xr[c] - mu) * rs);
    }
    EXPECT(bad_stats == 0, "layernorm_forward C=%d: %d of %d rows' mean or rstd differ from the 16-sum order", C,
           bad_stats, R);
    EXPECT(bad_out == 0, "layernorm_forward C=%d: %d outputs differ from (x - mean) rstd in that order", C, bad_out);
    ops->free(x), ops->free(y), ops->free(mean), ops->free(rstd);
  }
}

static void choose_cpu_table(void *arg) {
  (void)arg;
  ops_cpu_best();
}

/* AMD_CPU_ISA (src/backend.c): unset or auto the widest table this processor has, each name it has
 * that table, and a name it lacks, an unknown value or the older AMD_CPU_AVX2 a usage error naming
 * the setting. */
static void test_cpu_isa_choice(void) {
  const amd_ops *widest = &ops_cpu;
  for (int i = 0; i < CPU_ISA_COUNT; i++)
    if (ops_cpu_isa(i)) widest = ops_cpu_isa(i);
  unsetenv("AMD_CPU_AVX2");
  unsetenv("AMD_CPU_ISA");
  EXPECT(ops_cpu_best() == widest, "AMD_CPU_ISA unset: table %s, want %s", ops_cpu_isa_name(ops_cpu_best()),
         ops_cpu_isa_name(widest));
  setenv("AMD_CPU_ISA", "auto", 1);
  EXPECT(ops_cpu_best() == widest, "AMD_CPU_ISA=auto: table %s, want %s", ops_cpu_isa_name(ops_cpu_best()),
         ops_cpu_isa_name(widest));
  for (int i = 0; i < CPU_ISA_COUNT; i++) {
    setenv("AMD_CPU_ISA", cpu_isa_names[i], 1);
    if (ops_cpu_isa(i)) {
      EXPECT(ops_cpu_best() == ops_cpu_isa(i), "AMD_CPU_ISA=%s gave table %s", cpu_isa_names[i],
             ops_cpu_isa_name(ops_cpu_best()));
      EXPECT(strcmp(ops_cpu_isa_name(ops_cpu_isa(i)), cpu_isa_names[i]) == 0, "table %d is named %s", i,
             ops_cpu_isa_name(ops_cpu_isa(i)));
    } else {
      EXPECT(expect_fatal(choose_cpu_table, NULL, "does not have"), "AMD_CPU_ISA=%s on a processor without it ran",
             cpu_isa_names[i]);
    }
  }
  setenv("AMD_CPU_ISA", "avx1024", 1);
  EXPECT(expect_fatal(choose_cpu_table, NULL, "AMD_CPU_ISA='avx1024'"), "AMD_CPU_ISA=avx1024 was accepted");
  unsetenv("AMD_CPU_ISA");
  setenv("AMD_CPU_AVX2", "0", 1);
  EXPECT(expect_fatal(choose_cpu_table, NULL, "AMD_CPU_ISA=baseline"), "AMD_CPU_AVX2=0 was accepted silently");
  unsetenv("AMD_CPU_AVX2");
  EXPECT(ops_cpu_isa(-1) == NULL && ops_cpu_isa(CPU_ISA_COUNT) == NULL, "ops_cpu_isa out of range gave a table");
  EXPECT(ops_cpu_isa_name(&ops_cpu) && strcmp(ops_cpu_isa_name(&ops_cpu), "baseline") == 0,
         "ops_cpu is not named baseline");
}

typedef struct {
  float *out, *feat, *grads, *dx;
} DitRun;

typedef struct {
  Model *m;
  float *dout;
  int B;
} BackwardArgs;

static void backward_after_inference(void *arg) {
  BackwardArgs *b = arg;
  b->m->backward(b->m, NULL, b->dout, NULL, b->B);
}

typedef struct {
  Model *m;
  float *out, *x, *t;
  int *labels, B;
} ForwardArgs;

static void forward_run(void *arg) {
  ForwardArgs *f = arg;
  f->m->forward(f->m, f->out, f->x, f->t, f->labels, f->B);
}

/* the backend memory a model takes (its parameters, gradient and buffers): model_create_flags under
 * a table whose alloc counts the bytes */
static const amd_ops *counted_table;
static size_t counted_bytes;
static void *counting_alloc(size_t bytes) {
  counted_bytes += bytes;
  return counted_table->alloc(bytes);
}
static Model *create_counted(const ModelConfig *cfg, int B, int flags, size_t *bytes) {
  amd_ops counting = *ops;
  counting.alloc = counting_alloc;
  counted_table = ops, counted_bytes = 0;
  ops = &counting;
  Model *m = model_create_flags(cfg, B, flags);
  ops = counted_table;
  *bytes = counted_bytes;
  return m;
}

/* forward and backward of m under the op table `table`, from the same inputs each time */
static DitRun dit_run(Model *m, const amd_ops *table, const float *x, const float *t, const int *labels,
                      const float *R, const float *Rf, int B) {
  const amd_ops *was = ops;
  ops = table;
  long n = (long)B * m->cfg.dim, no = (long)B * (model_kind_get(m->cfg.kind)->classifier ? m->cfg.num_classes : m->cfg.dim);
  float *out = alloc_f(no), *dx = alloc_f(n);
  model_zero_grad(m);
  m->forward(m, out, x, t, labels, B);
  m->backward(m, dx, R, Rf, B);
  DitRun r = {host_copy(out, no), host_copy(m->features(m), (long)B * m->feat_dim), host_copy(m->grads, m->num_params),
              host_copy(dx, n)};
  ops->free(out), ops->free(dx);
  ops = was;
  return r;
}

/* Two runs of one model give the same output, features, parameter gradients and input gradient bit for
 * bit; `how` names the comparison in the failure message ("" or ", avx2 table"). */
static void expect_same_run(const char *name, const char *how, const DitRun *a, const DitRun *b, long no, long nf,
                            long np, long n) {
  const char *parts[4] = {"output", "features", "parameter gradients", "input gradient"};
  const float *pa[4] = {a->out, a->feat, a->grads, a->dx}, *pb[4] = {b->out, b->feat, b->grads, b->dx};
  const long len[4] = {no, nf, np, n};
  for (int i = 0; i < 4; i++) {
    char what[160];
    snprintf(what, sizeof what, "%s %s%s", name, parts[i], how);
    expect_same(what, pa[i], pb[i], len[i]);
  }
}

/* The Fashion-MNIST dit (width 128, depth 4, 4 heads, 4 x 4 patches: 49 tokens), its reward
 * classifier (width 64, depth 2) and the same dit in text mode (captions of up to 12 tokens, some
 * empty, a text encoder of width 64 and 2 blocks) at the distillation's batch of 64, every tensor random (the
 * zero-initialized ones too, so no gate hides a difference): output, features, every parameter
 * gradient and the input gradient, bit for bit. */
static void test_dit_fused_unfused(void) {
  static const ModelConfig cfgs[3] = {
      {.kind = "dit", .dim = 784, .num_classes = 10, .width = 128, .depth = 4, .temb_dim = 128, .img_channels = 1,
       .img_size = 28, .patch = 4, .heads = 4},
      {.kind = "classifier", .dim = 784, .num_classes = 10, .width = 64, .depth = 2, .temb_dim = 0,
       .img_channels = 1, .img_size = 28, .patch = 4, .heads = 4},
      {.kind = "dit", .dim = 784, .num_classes = 10, .width = 128, .depth = 4, .temb_dim = 128, .img_channels = 1,
       .img_size = 28, .patch = 4, .heads = 4, .text = 1, .vocab = 40, .text_width = 64, .text_depth = 2,
       .max_text = 12}};
  static const char *const names[3] = {"dit", "classifier", "text dit"};
  enum { B = 64 };
  backend_ops = ops;
  amd_ops unfused = *ops;
  unfused.linear_forward = unfused_linear_forward;
  unfused.linear_gelu_forward = unfused_linear_gelu_forward;
  unfused.linear_residual_forward = unfused_linear_residual_forward;
  unfused.layernorm_modulate_forward = unfused_layernorm_modulate_forward;
  unfused.attention_forward = unfused_attention_forward;
  unfused.attention_backward = unfused_attention_backward;
  unfused.modulate_layernorm_backward = unfused_modulate_layernorm_backward;
  unfused.gelu_bias_backward = unfused_gelu_bias_backward;
  unfused.gated_residual_bias_backward = unfused_gated_residual_bias_backward;
  size_t train_bytes[3], infer_bytes[3];
  for (int k = 0; k < 3; k++) {
    const ModelConfig *cfg = &cfgs[k];
    Model *m = model_create(cfg, B);
    for (int j = 0; j < m->num_tensors; j++) {
      const TensorInfo *ti = &m->tensors[j];
      fill_uniform(m->params + ti->offset, (long)ti->shape[0] * ti->shape[1] * ti->shape[2] * ti->shape[3], -0.2, 0.2);
    }
    long n = (long)B * cfg->dim, no = (long)B * (k == 1 ? cfg->num_classes : cfg->dim), nf = (long)B * m->feat_dim;
    float *x = alloc_f(n), *t = alloc_f(B), *R = alloc_f(no), *Rf = alloc_f(nf);
    int P = model_label_ints(cfg), *labels = ops->alloc(sizeof(int) * B * P), labels_h[B * 12];
    for (int i = 0; i < B; i++) labels_h[i] = i % (cfg->num_classes + 1); /* num_classes: the null label */
    for (int i = 0; cfg->text && i < B * P; i++) /* caption i % 13 tokens long, caption 0 empty */
      labels_h[i] = i % P < (i / P) % (P + 1) ? 1 + (i * 7) % (cfg->vocab - 1) : 0;
    ops->to_device(labels, labels_h, sizeof(int) * (size_t)(B * P));
    fill_uniform(x, n, -1.5, 1.5), fill_uniform(t, B, 0, 1), fill_uniform(R, no, -1, 1), fill_uniform(Rf, nf, -1, 1);
    DitRun f = dit_run(m, ops, x, t, labels, R, Rf, B), u = dit_run(m, &unfused, x, t, labels, R, Rf, B);
    for (int isa = 1; isa < CPU_ISA_COUNT; isa++) { /* the wider compiles: the same values bit for bit */
      if (!ops_cpu_isa(isa)) {
        printf("  %s: the %s table skipped (this processor lacks it)\n", names[k], cpu_isa_names[isa]);
        continue;
      }
      char how[32];
      snprintf(how, sizeof how, ", %s table", cpu_isa_names[isa]);
      DitRun a = dit_run(m, ops_cpu_isa(isa), x, t, labels, R, Rf, B);
      expect_same_run(names[k], how, &a, &f, no, nf, m->num_params, n);
      free(a.out), free(a.feat), free(a.grads), free(a.dx);
    }
    expect_same_run(names[k], "", &f, &u, no, nf, m->num_params, n);
    /* precision=bf16 (the way this processor has): the fused linear layers, LayerNorms and bias
     * gradients agree with their unfused ops bit for bit there too (attention is the fused op on
     * both sides: its per-head products stay float32, gemm_batched's would round), and the
     * gradients differ from float32 */
    amd_ops unfused_bf16 = unfused;
    unfused_bf16.attention_forward = ops->attention_forward, unfused_bf16.attention_backward = ops->attention_backward;
    cpu_set_bf16(1);
    DitRun fb = dit_run(m, ops, x, t, labels, R, Rf, B), ub = dit_run(m, &unfused_bf16, x, t, labels, R, Rf, B);
    cpu_set_bf16(0);
    char bf[32];
    snprintf(bf, sizeof bf, ", bf16 %s", gemm_bf16_way());
    expect_same_run(names[k], bf, &fb, &ub, no, nf, m->num_params, n);
    EXPECT(memcmp(fb.grads, f.grads, sizeof(float) * (size_t)m->num_params) != 0,
           "%s: the bf16 gradients equal the float32 ones bit for bit", names[k]);
    free(fb.out), free(fb.feat), free(fb.grads), free(fb.dx), free(ub.out), free(ub.feat), free(ub.grads), free(ub.dx);
    /* the inference forward (model.h): the same output and features, and no backward after it */
    m->inference = 1;
    float *out = alloc_f(no);
    m->forward(m, out, x, t, labels, B);
    float *out_h = host_copy(out, no), *feat_h = host_copy(m->features(m), nf);
    char what[160];
    snprintf(what, sizeof what, "%s inference output", names[k]);
    expect_same(what, out_h, f.out, no);
    snprintf(what, sizeof what, "%s inference features", names[k]);
    expect_same(what, feat_h, f.feat, nf);
    BackwardArgs args = {m, R, B};
    EXPECT(expect_fatal(backward_after_inference, &args, "inference forward"), "%s: a backward after an inference forward ran",
           names[k]);
    m->inference = 0;
    /* a model created for inference only (MODEL_INFERENCE: one block's buffers, no backward scratch):
     * the same output and features again, and a training forward on it is refused */
    model_free(create_counted(cfg, B, 0, &train_bytes[k]));
    Model *mi = create_counted(cfg, B, MODEL_INFERENCE, &infer_bytes[k]);
    printf("  %s: %zu bytes of backend memory for training, %zu for inference only\n", names[k], train_bytes[k],
           infer_bytes[k]);
    /* depth 2 or 4: every block's activation slots but one, and the backward's scratch, are gone */
    EXPECT(2 * infer_bytes[k] < train_bytes[k], "%s: a MODEL_INFERENCE model takes %zu bytes, a training one %zu",
           names[k], infer_bytes[k], train_bytes[k]);
    if (k == 2) { /* the text parts too (encoder, the blocks' cross-attention): what text mode adds to the dit */
      size_t add_train = train_bytes[2] - train_bytes[0], add_infer = infer_bytes[2] - infer_bytes[0];
      printf("  text mode adds %zu bytes for training, %zu for inference only\n", add_train, add_infer);
      EXPECT(3 * add_infer < add_train, "text dit: text mode adds %zu bytes to an inference-only dit, %zu to a training one",
             add_infer, add_train);
    }
    EXPECT(mi->inference == 1, "%s: a MODEL_INFERENCE model starts with inference %d", names[k], mi->inference);
    ops->copy(mi->params, m->params, sizeof(float) * (size_t)m->num_params);
    ops->fill(out, 0.0f, no);
    mi->forward(mi, out, x, t, labels, B);
    free(out_h), free(feat_h);
    out_h = host_copy(out, no), feat_h = host_copy(mi->features(mi), nf);
    snprintf(what, sizeof what, "%s MODEL_INFERENCE output", names[k]);
    expect_same(what, out_h, f.out, no);
    snprintf(what, sizeof what, "%s MODEL_INFERENCE features", names[k]);
    expect_same(what, feat_h, f.feat, nf);
    mi->inference = 0;
    ForwardArgs fa = {mi, out, x, t, labels, B};
    EXPECT(expect_fatal(forward_run, &fa, "created for inference only"),
           "%s: a training forward on a MODEL_INFERENCE model ran", names[k]);
    model_free(mi);
    free(out_h), free(feat_h), ops->free(out);
    free(f.out), free(f.feat), free(f.grads), free(f.dx), free(u.out), free(u.feat), free(u.grads), free(u.dx);
    ops->free(x), ops->free(t), ops->free(R), ops->free(Rf), ops->free(labels);
    model_free(m);
  }
}

int main(void) {
  TEST_RUN(test_linear_fused);
  TEST_RUN(test_linear_fused_bf16);
  TEST_RUN(test_layernorm_modulate);
  TEST_RUN(test_attention_fused);
  TEST_RUN(test_bias_backward_fused);
  TEST_RUN(test_dit_fused_unfused);
  TEST_RUN(test_avx2_table);
  TEST_RUN(test_avx512_table);
  TEST_RUN(test_cpu_isa_choice);
  TEST_RUN(test_gemm_split);
  TEST_RUN(test_sum_squares_order);
  TEST_RUN(test_layernorm_order);
  return t_finish();
}
