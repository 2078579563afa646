/* cross_attention.c: the cross-attention layer (cross_attention.h) on the LayerNorm, linear and
 * cross-attention ops. */
#include "cross_attention.h"

#include <stdio.h>

#include "common.h"
#include "layers.h"
#include "ops.h"

long cross_attention_scratch_floats(const amd_ops *t, int B, int N, int M, int C, int NH) {
  return 2L * B * NH * N * M + (t->attention_heads_scratch ? 2L * B * (N + M) * C : 0); /* dprob, datt; dy, dq, dk, dv */
}

static long add_named(Model *m, const char *prefix, const char *name, int rows, int cols, InitKind init) {
  char full[MODEL_NAME_MAX];
  int n = snprintf(full, sizeof full, "%s.%s", prefix, name);
  CHECK(n > 0 && n < (int)sizeof full, "tensor name %s.%s longer than %d characters", prefix, name,
        MODEL_NAME_MAX - 1);
  return cols ? model_add_matrix(m, full, rows, cols, init) : model_add_vector(m, full, rows, init);
}

void cross_attention_create_sharing(CrossAttention *xa, Model *m, const char *prefix, int width, int text_dim,
                                    int heads, int tokens, int max_text, const CrossAttention *share) {
  int C = width;
  CHECK(C > 0 && heads > 0 && C % heads == 0, "cross-attention: width %d is not a positive multiple of heads %d", C,
        heads);
  CHECK(text_dim > 0 && tokens > 0 && max_text > 0,
        "cross-attention: text_dim %d, tokens %d, max_text %d must be positive", text_dim, tokens, max_text);
  CHECK(!share || (m->inference && share->infer_only && share->width == C && share->text_dim == text_dim &&
                   share->heads == heads && share->tokens == tokens && share->max_text == max_text),
        "cross-attention %s: buffers shared with a layer of other sizes, or in a model not created for inference only",
        prefix);
  *xa = (CrossAttention){.width = C, .text_dim = text_dim, .heads = heads, .tokens = tokens, .max_text = max_text,
                         .infer_only = m->inference, .shared = share != NULL};
  xa->qw = add_named(m, prefix, "q.w", C, C, INIT_FAN_IN);
  xa->qb = add_named(m, prefix, "q.b", C, 0, INIT_ZERO);
  xa->kvw = add_named(m, prefix, "kv.w", 2 * C, text_dim, INIT_FAN_IN);
  xa->kvb = add_named(m, prefix, "kv.b", 2 * C, 0, INIT_ZERO);
  xa->projw = add_named(m, prefix, "proj.zero.w", C, C, INIT_ZERO);
  xa->projb = add_named(m, prefix, "proj.b", C, 0, INIT_ZERO);
  if (share) { /* the forward's buffers are share's; no backward's */
    xa->ln = share->ln, xa->mean = share->mean, xa->rstd = share->rstd, xa->query = share->query, xa->kv = share->kv;
    xa->q = share->q, xa->k = share->k, xa->v = share->v, xa->prob = share->prob, xa->att = share->att;
    xa->y = share->y;
    return;
  }
  size_t f = sizeof(float), Bmax = (size_t)m->max_batch;
  size_t nc = Bmax * tokens * C, mc = Bmax * max_text * C, rows = Bmax * tokens;
  xa->ln = ops->alloc(f * nc), xa->mean = ops->alloc(f * rows), xa->rstd = ops->alloc(f * rows);
  xa->query = ops->alloc(f * nc), xa->kv = ops->alloc(f * 2 * mc);
  xa->q = ops->alloc(f * nc), xa->k = ops->alloc(f * mc), xa->v = ops->alloc(f * mc);
  xa->prob = ops->alloc(f * Bmax * heads * tokens * max_text);
  xa->att = ops->alloc(f * nc), xa->y = ops->alloc(f * (ops->attention_heads_scratch ? nc : 0));
  if (xa->infer_only) return; /* the backward's buffers stay NULL */
  xa->datt = ops->alloc(f * nc), xa->dquery = ops->alloc(f * nc), xa->dln = ops->alloc(f * nc);
  xa->dkv = ops->alloc(f * 2 * mc);
  xa->scratch = ops->alloc(f * (size_t)cross_attention_scratch_floats(ops, m->max_batch, tokens, max_text, C, heads));
}

void cross_attention_create(CrossAttention *xa, Model *m, const char *prefix, int width, int text_dim, int heads,
                            int tokens, int max_text) {
  cross_attention_create_sharing(xa, m, prefix, width, text_dim, heads, tokens, max_text, NULL);
}

void cross_attention_free(CrossAttention *xa) {
  float *bufs[] = {xa->ln,  xa->mean, xa->rstd, xa->query,  xa->kv,  xa->q,   xa->k,   xa->v,
                   xa->prob, xa->att, xa->y,    xa->datt, xa->dquery, xa->dln, xa->dkv, xa->scratch};
  if (!xa->shared) /* a sharing layer's are its owner's (and it has no backward's) */
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  *xa = (CrossAttention){0};
}

void cross_attention_forward(CrossAttention *xa, float *out, const Model *m, const float *x, const float *text,
                             const float *mask, int B, int M) {
  int C = xa->width, N = xa->tokens, NH = xa->heads, BN = B * N;
  CHECK(B >= 1 && B <= m->max_batch, "cross-attention forward: batch %d outside 1 .. %d", B, m->max_batch);
  CHECK(M >= 1 && M <= xa->max_text, "cross-attention forward: %d text tokens, outside 1 .. %d", M, xa->max_text);
  xa->B = B, xa->M = M;
  ops->layernorm_forward(xa->ln, xa->mean, xa->rstd, x, BN, C);
  linear_forward(xa->query, xa->ln, model_param(m, xa->qw), model_param(m, xa->qb), BN, C, C);
  linear_forward(xa->kv, text, model_param(m, xa->kvw), model_param(m, xa->kvb), B * M, xa->text_dim, 2 * C);
  ops->cross_attention_forward(xa->att, xa->q, xa->k, xa->v, xa->prob, xa->y, xa->query, xa->kv, mask, B, N, M, NH,
                               C / NH);
  linear_forward(out, xa->att, model_param(m, xa->projw), model_param(m, xa->projb), BN, C, C);
}

void cross_attention_backward(CrossAttention *xa, Model *m, float *dx, float *dtext, const float *dout,
                              const float *x, const float *text, int B) {
  int C = xa->width, N = xa->tokens, NH = xa->heads, M = xa->M, BN = B * N;
  CHECK(!xa->infer_only, "cross-attention backward: the layer of a model created for inference only (MODEL_INFERENCE)");
  CHECK(B == xa->B, "cross-attention backward: batch %d, the forward's was %d", B, xa->B);
  linear_backward_overwrite(xa->datt, model_grad(m, xa->projw), model_grad(m, xa->projb), dout, xa->att,
                            model_param(m, xa->projw), BN, C, C);
  ops->fill(xa->dquery, 0.0f, (long)BN * C);
  ops->fill(xa->dkv, 0.0f, 2L * B * M * C);
  ops->cross_attention_backward(xa->dquery, xa->dkv, xa->scratch, xa->datt, xa->q, xa->k, xa->v, xa->prob, B, N, M,
                                NH, C / NH);
  linear_backward(dtext, model_grad(m, xa->kvw), model_grad(m, xa->kvb), xa->dkv, text, model_param(m, xa->kvw),
                  B * M, xa->text_dim, 2 * C);
  if (!dx && m->frozen) return; /* nothing below would be written */
  linear_backward_overwrite(dx ? xa->dln : NULL, model_grad(m, xa->qw), model_grad(m, xa->qb), xa->dquery, xa->ln,
                            model_param(m, xa->qw), BN, C, C);
  if (dx) ops->layernorm_backward(dx, xa->dln, x, xa->mean, xa->rstd, BN, C);
}
