/* test_xattn.c: cross-attention (text conditioning) on the CPU backend: the cross_attention_forward
 * op against a double-precision reference written here from its definition in core/ops_list.h, with
 * a key padding mask (a full caption, one padded inside and at the end, and the empty caption,
 * whose output is exactly 0); padded keys' values and keys leave the output unchanged bit for bit;
 * finite-difference gradients of the op (d query, d kv: padded keys and the empty caption get
 * exactly 0) and of the layer of src/cross_attention.h (every entry of every tensor, x and the
 * text), that the backward adds, that a frozen layer gives the same dx and dtext without touching a
 * gradient, the layer's tensors and their init kinds, and its size errors.
 * Losses are L = sum(out * R) for a fixed random R, as in test_grad.c.
 * Not here: CUDA conformance (test_cuda.c), the PyTorch reference (test_xattn_golden.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cross_attention.h"
#include "model.h"
#include "ops.h"
#include "philox.h"
#include "test.h"

#define TEST_SEED 20261205u
#include "gradcheck.h"

enum { B = 3, N = 4, M = 5, C = 8, NH = 2, HS = C / NH, E = 6 };

/* sample 0 sees every key, sample 1 lacks keys 1 and 4, sample 2 has none (the empty caption) */
static const float MASK[B * M] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0};

/* ---- the op ---------------------------------------------------------------------------------- */

typedef struct {
  float *out, *q, *k, *v, *prob, *y, *query, *kv, *mask, *R;
} OpCase;

static double op_loss(void *ctx) {
  OpCase *c = ctx;
  ops->cross_attention_forward(c->out, c->q, c->k, c->v, c->prob, c->y, c->query, c->kv, c->mask, B, N, M, NH, HS);
  return dot(c->out, c->R, (long)B * N * C);
}

static OpCase op_case(void) {
  OpCase c = {alloc_f(B * N * C), alloc_f(B * N * C), alloc_f(B * M * C), alloc_f(B * M * C), alloc_f(B * NH * N * M),
              alloc_f(B * N * C), alloc_f(B * N * C), alloc_f(2 * B * M * C), alloc_f(B * M), alloc_f(B * N * C)};
  fill_uniform(c.query, B * N * C, -1.5, 1.5);
  fill_uniform(c.kv, 2 * B * M * C, -1.5, 1.5);
  fill_uniform(c.R, B * N * C, -1, 1);
  ops->to_device(c.mask, MASK, sizeof MASK);
  return c;
}

static void op_case_free(OpCase *c) {
  float *bufs[] = {c->out, c->q, c->k, c->v, c->prob, c->y, c->query, c->kv, c->mask, c->R};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
}

static void test_op_forward(void) {
  OpCase c = op_case();
  op_loss(&c);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < N; i++) {
        const float *qi = c.query + (b * N + i) * C + h * HS;
        double s[M], mx = -INFINITY, z = 0;
        for (int j = 0; j < M; j++) {
          const float *kj = c.kv + (b * M + j) * 2 * C + h * HS;
          s[j] = 0;
          for (int d = 0; d < HS; d++) s[j] += (double)qi[d] * kj[d] / sqrt((double)HS);
          if (MASK[b * M + j] != 0) mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < M; j++) z += MASK[b * M + j] != 0 ? exp(s[j] - mx) : 0;
        for (int j = 0; j < M; j++) {
          double p = z > 0 && MASK[b * M + j] != 0 ? exp(s[j] - mx) / z : 0;
          EXPECT_CLOSE(c.prob[((b * NH + h) * N + i) * M + j], p, 1e-7, 1e-5, "prob");
        }
        for (int d = 0; d < HS; d++) {
          double o = 0;
          for (int j = 0; j < M; j++)
            if (z > 0 && MASK[b * M + j] != 0) o += exp(s[j] - mx) / z * c.kv[(b * M + j) * 2 * C + C + h * HS + d];
          EXPECT_CLOSE(c.out[(b * N + i) * C + h * HS + d], o, 1e-6, 1e-5, "cross-attention output");
        }
      }
  /* the empty caption: exactly 0, not NaN */
  int zero = 1;
  for (int i = 0; i < N * C; i++) zero &= c.out[2 * N * C + i] == 0.0f;
  EXPECT(zero, "the empty caption's output is not exactly 0");
  /* padded keys and values, even huge or non-finite, change nothing */
  float *out1 = host_copy(c.out, B * N * C);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < M; j++)
      if (MASK[b * M + j] == 0)
        for (int e = 0; e < 2 * C; e++) c.kv[(b * M + j) * 2 * C + e] = e % 3 == 0 ? 1e30f : e % 3 == 1 ? -7.0f : 3.0f;
  op_loss(&c);
  int same = 1;
  for (int i = 0; i < B * N * C; i++) same &= c.out[i] == out1[i];
  EXPECT(same, "a padded key's k or v changed the output");
  free(out1);
  op_case_free(&c);
}

static void test_op_backward(void) {
  OpCase c = op_case();
  long sf = cross_attention_scratch_floats(ops, B, N, M, C, NH);
  float *dquery = alloc_f(B * N * C), *dkv = alloc_f(2 * B * M * C), *scratch = alloc_f(sf);
  op_loss(&c);
  ops->cross_attention_backward(dquery, dkv, scratch, c.R, c.q, c.k, c.v, c.prob, B, N, M, NH, HS);
  check_grad("d/d query", c.query, dquery, B * N * C, op_loss, &c);
  check_grad("d/d kv", c.kv, dkv, 2 * B * M * C, op_loss, &c);
  int zero = 1;
  for (int b = 0; b < B; b++)
    for (int j = 0; j < M; j++)
      if (MASK[b * M + j] == 0)
        for (int e = 0; e < 2 * C; e++) zero &= dkv[(b * M + j) * 2 * C + e] == 0.0f;
  for (int i = 0; i < N * C; i++) zero &= dquery[2 * N * C + i] == 0.0f;
  EXPECT(zero, "a padded key, or the empty caption's query, has a nonzero gradient");
  float *dq1 = host_copy(dquery, B * N * C), *dkv1 = host_copy(dkv, 2 * B * M * C);
  op_loss(&c);
  ops->fill(scratch, 7.0f, sf); /* no scratch is read before it is written */
  ops->cross_attention_backward(dquery, dkv, scratch, c.R, c.q, c.k, c.v, c.prob, B, N, M, NH, HS);
  expect_doubled("d/d query", dquery, dq1, B * N * C);
  expect_doubled("d/d kv", dkv, dkv1, 2 * B * M * C);
  free(dq1), free(dkv1);
  ops->free(dquery), ops->free(dkv), ops->free(scratch);
  op_case_free(&c);
}

/* ---- the layer ------------------------------------------------------------------------------- */

/* a model holding the layer alone, as a builder would register it */
static Model *layer_model(CrossAttention *xa) {
  Model *m = callocCheck(1, sizeof *m);
  m->max_batch = B + 1, m->num_units = 1; /* B below max_batch catches code sized by max_batch */
  cross_attention_create(xa, m, "blk.xattn", C, E, NH, N, M + 2);
  m->unit_begin[1] = m->num_params, m->p_end = m->num_params;
  m->params = alloc_f(m->num_params), m->grads = alloc_f(m->num_params);
  return m;
}

static void layer_model_free(Model *m, CrossAttention *xa) {
  cross_attention_free(xa);
  ops->free(m->params), ops->free(m->grads);
  free(m);
}

typedef struct {
  CrossAttention xa;
  Model *m;
  float *out, *x, *text, *mask, *R;
} LayerCase;

static double layer_loss(void *ctx) {
  LayerCase *c = ctx;
  cross_attention_forward(&c->xa, c->out, c->m, c->x, c->text, c->mask, B, M);
  return dot(c->out, c->R, (long)B * N * C);
}

static void test_layer_tensors(void) {
  CrossAttention xa;
  Model *m = layer_model(&xa);
  static const char *const names[] = {"blk.xattn.q.w",  "blk.xattn.q.b",        "blk.xattn.kv.w",
                                      "blk.xattn.kv.b", "blk.xattn.proj.zero.w", "blk.xattn.proj.b"};
  static const int rows[] = {C, C, 2 * C, 2 * C, C, C}, cols[] = {C, 1, E, 1, C, 1};
  static const InitKind init[] = {INIT_FAN_IN, INIT_ZERO, INIT_FAN_IN, INIT_ZERO, INIT_ZERO, INIT_ZERO};
  EXPECT(m->num_tensors == 6, "%d tensors, expected 6", m->num_tensors);
  long off = 0;
  for (int k = 0; k < 6 && k < m->num_tensors; k++) {
    const TensorInfo *t = &m->tensors[k];
    EXPECT(strcmp(t->name, names[k]) == 0, "tensor %d is %s, expected %s", k, t->name, names[k]);
    EXPECT(t->shape[0] == rows[k] && t->shape[1] == cols[k], "%s is (%d, %d), expected (%d, %d)", t->name,
           t->shape[0], t->shape[1], rows[k], cols[k]);
    EXPECT(t->init == init[k], "%s has init kind %d, expected %d", t->name, (int)t->init, (int)init[k]);
    EXPECT(t->offset == off, "%s at offset %ld, expected %ld", t->name, t->offset, off);
    off += (long)rows[k] * cols[k];
  }
  EXPECT(m->num_params == off, "%ld parameters, the tensors hold %ld", m->num_params, off);
  /* initialized, the output projection is zero: the layer starts as out = 0 */
  model_init_params(m, 7);
  float *out = alloc_f(B * N * C), *x = alloc_f(B * N * C), *text = alloc_f(B * M * E), *mask = alloc_f(B * M);
  fill_uniform(x, B * N * C, -1, 1), fill_uniform(text, B * M * E, -1, 1);
  ops->to_device(mask, MASK, sizeof MASK);
  ops->fill(out, 5.0f, B * N * C);
  cross_attention_forward(&xa, out, m, x, text, mask, B, M);
  int zero = 1;
  for (int i = 0; i < B * N * C; i++) zero &= out[i] == 0.0f;
  EXPECT(zero, "an initialized cross-attention layer does not output 0");
  ops->free(out), ops->free(x), ops->free(text), ops->free(mask);
  layer_model_free(m, &xa);
}

static void test_layer_backward(void) {
  LayerCase c = {0};
  c.m = layer_model(&c.xa);
  Model *m = c.m;
  long np = m->num_params;
  c.out = alloc_f(B * N * C), c.x = alloc_f(B * N * C), c.text = alloc_f(B * M * E), c.mask = alloc_f(B * M);
  c.R = alloc_f(B * N * C);
  fill_uniform(m->params, np, -0.8, 0.8); /* every weight live, the zero-init projection included */
  fill_uniform(c.x, B * N * C, -2, 2), fill_uniform(c.text, B * M * E, -1.5, 1.5), fill_uniform(c.R, B * N * C, -1, 1);
  ops->to_device(c.mask, MASK, sizeof MASK);
  float *dx = alloc_f(B * N * C), *dtext = alloc_f(B * M * E);
  layer_loss(&c);
  model_zero_grad(m);
  cross_attention_backward(&c.xa, m, dx, dtext, c.R, c.x, c.text, B);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *t = &m->tensors[k];
    check_grad(t->name, m->params + t->offset, m->grads + t->offset, (long)t->shape[0] * t->shape[1], layer_loss, &c);
  }
  check_grad("d/dx", c.x, dx, B * N * C, layer_loss, &c);
  check_grad("d/d text", c.text, dtext, B * M * E, layer_loss, &c);
  int zero = 1;
  for (int b = 0; b < B; b++)
    for (int j = 0; j < M; j++)
      if (MASK[b * M + j] == 0)
        for (int e = 0; e < E; e++) zero &= dtext[(b * M + j) * E + e] == 0.0f;
  for (int i = 0; i < N * C; i++) zero &= dx[2 * N * C + i] == 0.0f;
  EXPECT(zero, "a padded text token, or the empty caption's x, has a nonzero gradient");

  /* the backward adds into dx, dtext and every parameter gradient */
  float *g1 = host_copy(m->grads, np), *dx1 = host_copy(dx, B * N * C), *dt1 = host_copy(dtext, B * M * E);
  layer_loss(&c);
  cross_attention_backward(&c.xa, m, dx, dtext, c.R, c.x, c.text, B);
  expect_doubled("parameter gradients", m->grads, g1, np);
  expect_doubled("d/dx", dx, dx1, B * N * C);
  expect_doubled("d/d text", dtext, dt1, B * M * E);

  /* frozen: the same input gradients, bit for bit, and no parameter gradient touched */
  float *g2 = host_copy(m->grads, np);
  m->frozen = 1;
  ops->fill(dx, 0.0f, B * N * C), ops->fill(dtext, 0.0f, B * M * E);
  cross_attention_backward(&c.xa, m, dx, dtext, c.R, c.x, c.text, B);
  int same = 1;
  for (long i = 0; i < np; i++) same &= m->grads[i] == g2[i];
  EXPECT(same, "a frozen layer's backward changed a parameter gradient");
  same = 1;
  for (int i = 0; i < B * N * C; i++) same &= dx[i] == dx1[i];
  for (int i = 0; i < B * M * E; i++) same &= dtext[i] == dt1[i];
  EXPECT(same, "a frozen layer's dx or dtext differs from the trained layer's");
  m->frozen = 0;
  free(g1), free(g2), free(dx1), free(dt1);
  ops->free(c.out), ops->free(c.x), ops->free(c.text), ops->free(c.mask), ops->free(c.R);
  ops->free(dx), ops->free(dtext);
  layer_model_free(m, &c.xa);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void forward_too_long(void *arg) {
  (void)arg;
  CrossAttention xa;
  Model *m = layer_model(&xa);
  float *buf = alloc_f(B * (M + 3) * 2 * C + B * N * C);
  cross_attention_forward(&xa, buf, m, buf, buf, buf, B, M + 3);
}

static void create_bad_heads(void *arg) {
  (void)arg;
  Model m = {.max_batch = 1, .num_units = 1};
  CrossAttention xa;
  cross_attention_create(&xa, &m, "x", 10, 4, 3, 2, 2);
}

static void test_errors(void) {
  EXPECT(expect_fatal(forward_too_long, NULL, "8 text tokens, outside 1 .. 7"),
         "a caption longer than max_text must be a clear error");
  EXPECT(expect_fatal(create_bad_heads, NULL, "width 10 is not a positive multiple of heads 3"),
         "width not divisible by heads must be a clear error");
}

int main(void) {
  TEST_RUN(test_op_forward);
  TEST_RUN(test_op_backward);
  TEST_RUN(test_layer_tensors);
  TEST_RUN(test_layer_backward);
  TEST_RUN(test_errors);
  return t_finish();
}
