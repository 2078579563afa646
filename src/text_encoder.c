/* text_encoder.c: the caption encoder of a text-mode dit (text_encoder.h) on the LayerNorm, linear,
 * GELU, embedding and cross-attention ops. */
#include "text_encoder.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "layers.h"
#include "ops.h"

#define P_(off) model_param(m, off)
#define G_(off) model_grad(m, off)

/* Vaswani et al.'s positions: position p's features [sin(p w_k), cos(p w_k)], w_k = 10000^(-k / (E/2)) */
static void sincos_1d(float *pos, int len, int E) {
  int q = E / 2;
  for (int p = 0; p < len; p++)
    for (int k = 0; k < q; k++) {
      double w = pow(10000.0, -(double)k / q);
      pos[(long)p * E + k] = (float)sin(p * w), pos[(long)p * E + q + k] = (float)cos(p * w);
    }
}

static long add_block(Model *m, int l, const char *what, int rows, int cols, InitKind init) {
  char name[MODEL_NAME_MAX];
  int n = snprintf(name, sizeof name, "text.block%d.%s", l, what);
  CHECK(n > 0 && n < (int)sizeof name, "tensor name text.block%d.%s too long", l, what);
  return cols ? model_add_matrix(m, name, rows, cols, init) : model_add_vector(m, name, rows, init);
}

static float *upload(const float *host, size_t n) {
  float *d = ops->alloc(sizeof(float) * n);
  ops->to_device(d, host, sizeof(float) * n);
  return d;
}

void text_encoder_create(TextEncoder *te, Model *m, int vocab, int width, int depth, int heads, int len) {
  int E = width, D = depth, L = len, Bm = m->max_batch;
  CHECK(vocab >= 2 && E >= 2 && E % 2 == 0 && heads >= 1 && E % heads == 0 && depth >= 0 && len >= 1,
        "text encoder: vocab %d, width %d (even, a multiple of heads %d), depth %d, length %d", vocab, E, heads, depth,
        len);
  amd_mul_checked(Bm, L, INT_MAX, "the batch x model.max_text of a text encoder");
  *te = (TextEncoder){.vocab = vocab, .width = E, .depth = D, .heads = heads, .len = L};
  te->emb = model_add_matrix(m, "text.emb", vocab, E, INIT_NORMAL);
  te->blk = callocCheck((size_t)D + 1, sizeof *te->blk);
  te->attn = callocCheck((size_t)D + 1, sizeof *te->attn);
  /* inference only (MODEL_INFERENCE): one block's buffers, which every block reuses, and no backward's */
  int infer = te->infer_only = m->inference;
  for (int l = 0; l < D; l++) {
    char prefix[MODEL_NAME_MAX];
    snprintf(prefix, sizeof prefix, "text.block%d.attn", l);
    cross_attention_create_sharing(&te->attn[l], m, prefix, E, E, heads, L, L, infer && l ? &te->attn[0] : NULL);
    TextBlockParams *w = &te->blk[l];
    w->fc1w = add_block(m, l, "fc1.w", 4 * E, E, INIT_FAN_IN), w->fc1b = add_block(m, l, "fc1.b", 4 * E, 0, INIT_ZERO);
    w->fc2w = add_block(m, l, "fc2.w", E, 4 * E, INIT_FAN_IN), w->fc2b = add_block(m, l, "fc2.b", E, 0, INIT_ZERO);
  }
  size_t f = sizeof(float), BL = (size_t)Bm * L, BLE = BL * E, Ds = (size_t)(D && !infer ? D : 1);
  float *host = callocCheck((size_t)2 * E * E + (size_t)L * E + (size_t)vocab, sizeof(float));
  for (int v = 1; v < vocab; v++) host[v] = 1.0f;
  te->maskrow = upload(host, (size_t)vocab);
  sincos_1d(host, L, E);
  te->pos = upload(host, (size_t)L * E);
  for (size_t i = 0; i < (size_t)2 * E * E; i++) host[i] = 0.0f;
  for (int i = 0; i < E; i++) host[(size_t)(E + i) * E + i] = 1.0f; /* row E + i picks feature i */
  te->sel = upload(host, (size_t)2 * E * E);
  free(host);
  te->zq = ops->alloc(f * (size_t)Bm * E);
  te->ids = ops->alloc(sizeof(int) * BL);
  te->mask = ops->alloc(f * BL);
  te->x = ops->alloc(f * BLE * (infer ? 1 : (size_t)D + 1)); /* inference: updated in place */
  te->xmid = ops->alloc(f * BLE * Ds);
  te->lnk = ops->alloc(f * BLE * Ds), te->meank = ops->alloc(f * BL * Ds), te->rstdk = ops->alloc(f * BL * Ds);
  te->lnm = ops->alloc(f * BLE * Ds), te->meanm = ops->alloc(f * BL * Ds), te->rstdm = ops->alloc(f * BL * Ds);
  te->g = ops->alloc(f * 4 * BLE * Ds), te->gdg = infer ? NULL : ops->alloc(f * 4 * BLE * Ds);
  te->text = ops->alloc(f * BLE), te->meanf = ops->alloc(f * BL), te->rstdf = ops->alloc(f * BL);
  te->pooled = ops->alloc(f * (size_t)Bm * E);
  te->pkv = ops->alloc(f * 2 * BLE);
  te->pq = ops->alloc(f * (size_t)Bm * E), te->pk = ops->alloc(f * BLE), te->pv = ops->alloc(f * BLE);
  te->pprob = ops->alloc(f * BL), te->py = ops->alloc(f * (size_t)Bm * E);
  te->ao = ops->alloc(f * BLE);
  if (infer) return; /* the backward's scratch stays NULL */
  te->dx = ops->alloc(f * BLE), te->dt1 = ops->alloc(f * BLE), te->dt2 = ops->alloc(f * BLE);
  te->d4a = ops->alloc(f * 4 * BLE), te->d4b = ops->alloc(f * 4 * BLE);
  te->dpkv = ops->alloc(f * 2 * BLE), te->dpq = ops->alloc(f * (size_t)Bm * E);
  te->pscratch = ops->alloc(f * (size_t)cross_attention_scratch_floats(ops, Bm, 1, L, E, 1));
}

void text_encoder_free(TextEncoder *te) {
  float *bufs[] = {te->maskrow, te->pos,  te->sel,   te->zq,  te->mask,  te->x,      te->xmid,  te->lnk,
                   te->meank,   te->rstdk, te->lnm,  te->meanm, te->rstdm, te->g,    te->gdg,
                   te->text,    te->meanf, te->rstdf, te->pooled, te->pkv, te->pq,   te->pk,    te->pv,
                   te->pprob,   te->py,   te->ao,    te->dx,  te->dt1,   te->dt2,    te->d4a,   te->d4b,
                   te->dpkv,    te->dpq,  te->pscratch};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  ops->free(te->ids);
  for (int l = 0; l < te->depth; l++) cross_attention_free(&te->attn[l]);
  free(te->attn), free(te->blk);
  *te = (TextEncoder){0};
}

void text_encoder_forward(TextEncoder *te, const Model *m, const int *ids, int B) {
  int E = te->width, L = te->len, BL = B * L;
  long BLE = (long)BL * E, sz = (long)m->max_batch * L * E, rs = (long)m->max_batch * L;
  CHECK(B >= 1 && B <= m->max_batch, "text encoder forward: batch %d outside 1 .. %d", B, m->max_batch);
  te->B = B;
  ops->copy(te->ids, ids, sizeof(int) * (size_t)BL);
  ops->embedding_forward(te->mask, te->maskrow, ids, BL, 1);
  ops->embedding_forward(te->x, P_(te->emb), ids, BL, E);
  ops->bias_add(te->x, te->pos, B, L * E);
  for (int l = 0; l < te->depth; l++) {
    const TextBlockParams *w = &te->blk[l];
    long s = te->infer_only ? 0 : l; /* the buffers' slot; inference only: x_{l+1} overwrites x_l */
    float *x = te->x + s * sz, *xn = te->infer_only ? x : x + sz, *xmid = te->xmid + s * sz, *lnk = te->lnk + s * sz;
    float *lnm = te->lnm + s * sz, *g = te->g + 4 * s * sz, *gdg = te->infer_only ? NULL : te->gdg + 4 * l * sz;
    ops->layernorm_forward(lnk, te->meank + s * rs, te->rstdk + s * rs, x, BL, E);
    cross_attention_forward(&te->attn[l], te->ao, m, x, lnk, te->mask, B, L);
    ops->add(xmid, x, te->ao, BLE);
    ops->layernorm_forward(lnm, te->meanm + s * rs, te->rstdm + s * rs, xmid, BL, E);
    /* fc1's output is not kept (the backward reads GELU's derivative): made in g, replaced by GELU's */
    ops->linear_gelu_forward(g, gdg, NULL, lnm, P_(w->fc1w), P_(w->fc1b), BL, E, 4 * E);
    linear_forward(te->ao, g, P_(w->fc2w), P_(w->fc2b), BL, 4 * E, E);
    ops->add(xn, xmid, te->ao, BLE);
  }
  ops->layernorm_forward(te->text, te->meanf, te->rstdf, te->x + (te->infer_only ? 0 : te->depth) * sz, BL, E);
  /* the masked mean: a zero query over keys 0 and values text, one head of width E */
  linear_forward(te->pkv, te->text, te->sel, NULL, BL, E, 2 * E);
  ops->cross_attention_forward(te->pooled, te->pq, te->pk, te->pv, te->pprob, te->py, te->zq, te->pkv, te->mask, B, 1,
                               L, 1, E);
}

void text_encoder_backward(TextEncoder *te, Model *m, float *dtext, const float *dpooled, int B) {
  CHECK(!te->infer_only, "text encoder backward: a model created for inference only (MODEL_INFERENCE)");
  if (m->frozen) return; /* nothing here reaches the DiT's input */
  int E = te->width, L = te->len, BL = B * L;
  long BLE = (long)BL * E, sz = (long)m->max_batch * L * E, rs = (long)m->max_batch * L;
  CHECK(B == te->B, "text encoder backward: batch %d, the forward's was %d", B, te->B);
  if (dpooled) {
    ops->fill(te->dpq, 0.0f, (long)B * E);
    ops->fill(te->dpkv, 0.0f, 2 * BLE);
    ops->cross_attention_backward(te->dpq, te->dpkv, te->pscratch, dpooled, te->pq, te->pk, te->pv, te->pprob, B, 1,
                                  L, 1, E);
    linear_backward(dtext, NULL, NULL, te->dpkv, te->text, te->sel, BL, E, 2 * E);
  }
  ops->fill(te->dx, 0.0f, BLE);
  ops->layernorm_backward(te->dx, dtext, te->x + te->depth * sz, te->meanf, te->rstdf, BL, E);
  for (int l = te->depth - 1; l >= 0; l--) { /* dx holds d x_{l+1} */
    const TextBlockParams *w = &te->blk[l];
    float *x = te->x + l * sz, *xmid = te->xmid + l * sz, *lnk = te->lnk + l * sz, *lnm = te->lnm + l * sz;
    float *g = te->g + 4 * l * sz, *gdg = te->gdg + 4 * l * sz;
    /* MLP half: x_{l+1} = xmid + fc2(GELU(fc1(LN(xmid)))) */
    linear_backward_overwrite(te->d4a, G_(w->fc2w), G_(w->fc2b), te->dx, g, P_(w->fc2w), BL, 4 * E, E);
    ops->gelu_backward(te->d4b, te->d4a, NULL, gdg, 4 * BLE);
    linear_backward_overwrite(te->dt1, G_(w->fc1w), G_(w->fc1b), te->d4b, lnm, P_(w->fc1w), BL, E, 4 * E);
    ops->layernorm_backward(te->dx, te->dt1, xmid, te->meanm + l * rs, te->rstdm + l * rs, BL, E);
    /* attention half: xmid = x + attn(x, LN(x)); the layer adds into dx and into d LN(x) */
    ops->copy(te->dt1, te->dx, sizeof(float) * (size_t)BLE);
    ops->fill(te->dt2, 0.0f, BLE);
    cross_attention_backward(&te->attn[l], m, te->dx, te->dt2, te->dt1, x, lnk, B);
    ops->layernorm_backward(te->dx, te->dt2, x, te->meank + l * rs, te->rstdk + l * rs, BL, E);
  }
  ops->embedding_backward(G_(te->emb), te->dx, te->ids, BL, E);
}
