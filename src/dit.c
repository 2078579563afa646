/* dit.c: the `dit` velocity network for images, a scaled-down Diffusion Transformer (Peebles and
 * Xie, "Scalable Diffusion Models with Transformers"), docs/DESIGN.md section 5:
 *   h_0   = Linear(patchify(x)) + pos                       pos: fixed 2-D sin-cos, (T, C)
 *   c     = Linear(SiLU(Linear(sinusoidal(1000 t)))) + class_emb[label]   (label num_classes = null)
 *   block: shift1, scale1, gate1, shift2, scale2, gate2 = Linear(SiLU(c))           (adaLN-Zero)
 *          h += gate1 * proj(attention(qkv(LN(h) (1 + scale1) + shift1)))
 *          h += gate2 * fc2(GELU(fc1(LN(h) (1 + scale2) + shift2)))                (MLP ratio 4)
 *   v     = unpatchify(Linear(LN(h_L) (1 + scale) + shift)), shift, scale = Linear(SiLU(c))
 * Text mode (cfg.text, docs/DESIGN.md section 5.2): labels are captions (B, max_text) of token ids,
 * 0 the padding; the text encoder (text_encoder.h) gives text (B, max_text, text_width) and pooled,
 *   c     = Linear(SiLU(Linear(sinusoidal(1000 t)))) + Linear(pooled)        (cond.text; no class table)
 *   block: ... h += gate1 * proj(...); h += xattn(h, text, mask) (block<l>.xattn, no gate); h += gate2 ...
 * the MLP half reading hx, the stream after the cross-attention. Its backward adds every block's
 * text gradient into dtext, then (unit 0) runs the encoder's with dtext and d pooled.
 * LayerNorms have no affine. The modulation and output weights are INIT_ZERO (each block starts as
 * the identity, the output at 0); their names end in ".zero.w", as checkpoints have them.
 * Features for a GAN head: the mean over tokens of h_L, (B, C).
 * The `classifier` kind (ModelKind.classifier: the reward and evaluator networks, docs/DESIGN.md
 * section 5) uses the same blocks without time or class conditioning: c is one learned vector (the single row of cond.emb), and
 *   feat  = mean over tokens of LN(h_L)          (B, C), also the Frechet-distance features
 *   out   = logits = Linear(feat)                (B, num_classes); t and labels are ignored
 * The forward and the backward run on the backends' fused transformer ops (docs/DESIGN.md section 2.2).
 * Not here: those ops' implementations; flash attention. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "attention.h"
#include "common.h"
#include "cond_embed.h"
#include "cross_attention.h"
#include "layers.h"
#include "model.h"
#include "ops.h"
#include "text_encoder.h"

typedef struct {
  long adaw, adab, qkvw, qkvb, projw, projb, fc1w, fc1b, fc2w, fc2b;
} DitBlockParams;

typedef struct {
  /* parameter offsets into the flat buffer */
  long patchw, patchb, cemb, fadaw, fadab, outw, outb; /* cemb: the classifier's cond.emb */
  CondEmbed ce;        /* time and class conditioning (not in a classifier) */
  DitBlockParams *blk; /* (depth) */
  int T, P;            /* tokens per image, features per patch token p*p*C_img */
  int classifier;      /* kind "classifier": no time/class conditioning, logits out */
  long headw, headb;   /* classifier head */
  float *pos;          /* (T, C) fixed positions, not a parameter */
  float *ones;         /* (T) for mean pooling through the GEMM */
  /* activations of the last forward; per-block buffers are stacked over blocks */
  int *labels;                                  /* (B) all 0: the classifier's cond.emb row */
  float *tokens;                                /* (B, T, P) patchified input */
  float *cond, *csilu;                          /* (B, C) */
  float *mod;                                   /* (L, B, 6C) adaLN outputs */
  float *h;                                     /* (L + 1, B, T, C) residual stream between blocks */
  float *hmid;                                  /* (L, B, T, C) after the attention half */
  float *ln1, *m1, *att, *proj, *ln2, *m2, *f2; /* (L, B, T, C) each */
  float *mean1, *rstd1, *mean2, *rstd2;         /* (L, B, T) each */
  float *qkv;                                   /* (L, B, T, 3C), which the attention's backward reads */
  float *prob;                                  /* (L, B, NH, T, T) */
  float *g, *gdg;                               /* (L, B, T, 4C) GELU of fc1's output, GELU's derivative there */
  float *fmod;                                  /* (B, 2C) final adaLN */
  float *lnf, *mf;                              /* (B, T, C) */
  float *meanf, *rstdf;                         /* (B, T) */
  float *otok;                                  /* (B, T, P) */
  float *feat;                                  /* (B, C) mean-pooled h_L */
  /* scratch: attention's forward and backward scratch */
  float *ay, *ascratch;
  float *dh, *s1, *s2;  /* (B, T, C) */
  float *d3;            /* (B, T, 3C) */
  float *d4a, *d4b;     /* (B, T, 4C) */
  float *dtok;          /* (B, T, P) */
  float *dimg;          /* (B, dim) */
  float *dmod;          /* (B, 6C) */
  float *dcsilu, *dcond; /* (B, C) */
  /* text mode (cfg.text): the caption encoder, each block's cross-attention and c's pooled term */
  int text;
  TextEncoder te;
  CrossAttention *xa;    /* (depth) block<l>.xattn */
  long ctw, ctb;         /* cond.text.{w,b}: Linear(pooled) (C, E) */
  float *hx;             /* (L, B, T, C) after the cross-attention (inference: h itself) */
  float *xo;             /* (B, T, C) the cross-attention's output */
  float *ctmp;           /* (B, C) Linear(pooled) */
  float *dtext;          /* (B, max_text, E) */
  float *dpooled;        /* (B, E) */
  int B;
  int kept; /* 1: the last forward kept its activations (not an inference forward) */
  int infer_only; /* 1: created with MODEL_INFERENCE: one block's buffers, no backward scratch (NULL) */
} Dit;

/* Units (model.h): 0 the patch embedding and the conditioning (in text mode the text encoder too),
 * 1 + l block l (with its cross-attention), depth + 1 the final layer (the classifier's head). */
#define P_(off) model_param(m, off)
#define G_(off) model_grad(m, off)

/* DiT's get_2d_sincos_pos_embed: the first C/2 features encode the patch column, the rest its row,
 * each half as [sin(pos w_k), cos(pos w_k)], w_k = 10000^(-k / (C/4)). */
static void sincos_2d(float *pos, int grid, int C) {
  int q = C / 4;
  for (int i = 0; i < grid; i++)
    for (int j = 0; j < grid; j++) {
      float *p = pos + ((long)i * grid + j) * C;
      for (int k = 0; k < q; k++) {
        double w = pow(10000.0, -(double)k / q);
        p[k] = (float)sin(j * w), p[q + k] = (float)cos(j * w);
        p[2 * q + k] = (float)sin(i * w), p[3 * q + k] = (float)cos(i * w);
      }
    }
}

static void dit_forward(Model *m, float *out, const float *x, const float *t, const int *labels, int B) {
  Dit *a = m->impl;
  const ModelConfig *c = &m->cfg;
  int C = c->width, T = a->T, P = a->P, L = c->depth, NH = c->heads, BT = B * T;
  int S = c->img_size, CI = c->img_channels, p = c->patch;
  long BC = (long)B * C, hsz = (long)m->max_batch * T * C;
  long psz = (long)m->max_batch * NH * T * T, rsz = (long)m->max_batch * T;
  CHECK(B <= m->max_batch, "dit forward: batch %d exceeds the model's max batch %d", B, m->max_batch);
  CHECK(m->inference || !a->infer_only,
        "dit forward: a training forward on a model created for inference only (MODEL_INFERENCE), which has no room "
        "for its activations");
  a->B = B;
  /* an inference forward (model.h) keeps nothing for a backward: the residual stream is updated in
   * place in h's first slot, every block works in block 0's buffers, and LN(x), its statistics and
   * GELU's derivative are not stored; the same operations on the same values otherwise */
  int keep = a->kept = !m->inference;
  ops->patchify(a->tokens, x, B, CI, S, S, p);
  model_unit_enter(m, 0, MODEL_FORWARD);
  linear_forward(a->h, a->tokens, P_(a->patchw), P_(a->patchb), BT, P, C);
  ops->bias_add(a->h, a->pos, B, T * C);
  if (a->classifier) { /* labels stay all 0: every sample reads the one row of cond.emb */
    ops->embedding_forward(a->cond, P_(a->cemb), a->labels, B, C);
  } else if (a->text) { /* c = temb(t) + Linear(pooled caption) */
    cond_embed_forward(&a->ce, a->cond, m, t, NULL, B);
    text_encoder_forward(&a->te, m, labels, B);
    linear_forward(a->ctmp, a->te.pooled, P_(a->ctw), P_(a->ctb), B, c->text_width, C);
    ops->axpy(a->cond, 1.0f, a->ctmp, BC);
  } else {
    cond_embed_forward(&a->ce, a->cond, m, t, labels, B);
  }
  model_unit_leave(m, 0);
  ops->silu_forward(a->csilu, a->cond, BC);
  for (int l = 0; l < L; l++) {
    const DitBlockParams *w = &a->blk[l];
    model_unit_enter(m, 1 + l, MODEL_FORWARD);
    long s = keep ? l : 0; /* the buffers' slot */
    float *h = a->h + s * hsz, *hn = keep ? h + hsz : h, *hmid = keep ? a->hmid + l * hsz : h;
    float *mod = a->mod + s * m->max_batch * 6 * C;
    float *ln1 = keep ? a->ln1 + l * hsz : NULL, *ln2 = keep ? a->ln2 + l * hsz : NULL;
    float *mean1 = keep ? a->mean1 + l * rsz : NULL, *rstd1 = keep ? a->rstd1 + l * rsz : NULL;
    float *mean2 = keep ? a->mean2 + l * rsz : NULL, *rstd2 = keep ? a->rstd2 + l * rsz : NULL;
    float *m1 = a->m1 + s * hsz, *att = a->att + s * hsz, *proj = a->proj + s * hsz;
    float *m2 = a->m2 + s * hsz, *f2 = a->f2 + s * hsz;
    float *qkv = a->qkv + 3 * s * hsz, *g = a->g + 4 * s * hsz;
    float *gdg = keep ? a->gdg + 4 * l * hsz : NULL;
    linear_forward(mod, a->csilu, P_(w->adaw), P_(w->adab), B, C, 6 * C);
    ops->layernorm_modulate_forward(m1, ln1, mean1, rstd1, h, mod, mod + C, 6 * C, B, T, C);
    linear_forward(qkv, m1, P_(w->qkvw), P_(w->qkvb), BT, C, 3 * C);
    attention_forward(att, a->prob + s * psz, a->ay, qkv, B, T, C, NH);
    ops->linear_residual_forward(hmid, proj, h, mod + 2 * C, 6 * C, att, P_(w->projw), P_(w->projb), B, T, C, C);
    float *hx = hmid; /* the MLP half's input */
    if (a->text) { /* hx = hmid + xattn(hmid, text, mask), no gate */
      hx = keep ? a->hx + l * hsz : h;
      cross_attention_forward(&a->xa[l], a->xo, m, hmid, a->te.text, a->te.mask, B, c->max_text);
      ops->add(hx, hmid, a->xo, (long)BT * C);
    }
    ops->layernorm_modulate_forward(m2, ln2, mean2, rstd2, hx, mod + 3 * C, mod + 4 * C, 6 * C, B, T, C);
    /* fc1's output itself is not kept (the backward reads GELU's derivative): made in g, replaced by
     * GELU's */
    ops->linear_gelu_forward(g, gdg, NULL, m2, P_(w->fc1w), P_(w->fc1b), BT, C, 4 * C);
    ops->linear_residual_forward(hn, f2, hx, mod + 5 * C, 6 * C, g, P_(w->fc2w), P_(w->fc2b), B, T, 4 * C, C);
    model_unit_leave(m, 1 + l);
  }
  const float *hL = a->h + (keep ? L : 0) * hsz;
  model_unit_enter(m, L + 1, MODEL_FORWARD);
  if (a->classifier) {
    ops->layernorm_forward(a->lnf, a->meanf, a->rstdf, hL, BT, C);
    ops->gemm_batched(0, 0, 1, C, T, 1.0f / T, a->ones, 0, a->lnf, (long)T * C, 0.0f, a->feat, C, B);
    linear_forward(out, a->feat, P_(a->headw), P_(a->headb), B, C, c->num_classes);
    model_unit_leave(m, L + 1);
    return;
  }
  ops->gemm_batched(0, 0, 1, C, T, 1.0f / T, a->ones, 0, hL, (long)T * C, 0.0f, a->feat, C, B); /* token mean */
  linear_forward(a->fmod, a->csilu, P_(a->fadaw), P_(a->fadab), B, C, 2 * C);
  ops->layernorm_modulate_forward(a->mf, keep ? a->lnf : NULL, keep ? a->meanf : NULL, keep ? a->rstdf : NULL, hL,
                                  a->fmod, a->fmod + C, 2 * C, B, T, C);
  linear_forward(a->otok, a->mf, P_(a->outw), P_(a->outb), BT, C, P);
  model_unit_leave(m, L + 1);
  ops->unpatchify(out, a->otok, B, CI, S, S, p);
}

static const float *dit_features(const Model *m) { return ((const Dit *)m->impl)->feat; }

static void dit_backward(Model *m, float *dx, const float *dout, const float *dfeat, int B) {
  Dit *a = m->impl;
  const ModelConfig *c = &m->cfg;
  int C = c->width, T = a->T, P = a->P, L = c->depth, NH = c->heads, BT = B * T;
  int S = c->img_size, CI = c->img_channels, p = c->patch;
  long BC = (long)B * C, BTC = (long)BT * C, hsz = (long)m->max_batch * T * C;
  long psz = (long)m->max_batch * NH * T * T, rsz = (long)m->max_batch * T;
  CHECK(B == a->B, "dit backward: batch %d differs from the forward batch %d", B, a->B);
  CHECK(a->kept, "dit backward: the last forward was an inference forward, which keeps nothing for a backward");
  const float *hL = a->h + L * hsz;
  ops->fill(a->dh, 0.0f, BTC);
  ops->fill(a->dcsilu, 0.0f, BC);
  if (a->text && !m->frozen) ops->fill(a->dtext, 0.0f, (long)B * c->max_text * c->text_width);
  model_unit_enter(m, L + 1, MODEL_BACKWARD);
  if (a->classifier) { /* feat = mean_t LN(h_L), logits = Linear(feat) */
    ops->fill(a->dcond, 0.0f, BC); /* d feat */
    if (dout) linear_backward(a->dcond, G_(a->headw), G_(a->headb), dout, a->feat, P_(a->headw), B, C, c->num_classes);
    if (dfeat) ops->axpy(a->dcond, 1.0f, dfeat, BC);
    ops->gemm_batched(1, 0, T, C, 1, 1.0f / T, a->ones, 0, a->dcond, C, 0.0f, a->s1, (long)T * C, B); /* overwrites */
    ops->layernorm_backward(a->dh, a->s1, hL, a->meanf, a->rstdf, BT, C);
  } else if (dout) {
    ops->patchify(a->dtok, dout, B, CI, S, S, p); /* the adjoint of unpatchify */
    linear_backward_overwrite(a->s1, G_(a->outw), G_(a->outb), a->dtok, a->mf, P_(a->outw), BT, C, P);
    ops->modulate_layernorm_backward(a->dh, a->dmod, a->dmod + C, a->s2, a->s1, a->lnf, a->fmod + C, hL, a->meanf,
                                     a->rstdf, 2 * C, B, T, C);
    linear_backward(a->dcsilu, G_(a->fadaw), G_(a->fadab), a->dmod, a->csilu, P_(a->fadaw), B, C, 2 * C);
  }
  model_unit_leave(m, L + 1);
  if (dfeat && !a->classifier) /* dh (T, C) += ones (T, 1) dfeat (1, C) / T per sample */
    ops->gemm_batched(1, 0, T, C, 1, 1.0f / T, a->ones, 0, dfeat, C, 1.0f, a->dh, (long)T * C, B);
  for (int l = L - 1; l >= 0; l--) {
    const DitBlockParams *w = &a->blk[l];
    float *h = a->h + l * hsz, *hmid = a->hmid + l * hsz, *hx = a->text ? a->hx + l * hsz : hmid;
    float *mod = a->mod + (long)l * m->max_batch * 6 * C;
    float *ln1 = a->ln1 + l * hsz, *m1 = a->m1 + l * hsz, *att = a->att + l * hsz, *proj = a->proj + l * hsz;
    float *ln2 = a->ln2 + l * hsz, *m2 = a->m2 + l * hsz, *f2 = a->f2 + l * hsz;
    float *g = a->g + 4 * l * hsz;
    model_unit_enter(m, 1 + l, MODEL_BACKWARD);
    /* the backward ops below overwrite s1, s2, d4b, d3 and each of dmod's six chunks once (ops.h) */
    float *dmod = a->dmod;
    /* MLP half: h_l+1 = hx + gate2 f2; dh carries d hx through the residual (hx = hmid in class mode) */
    /* the bias gradients of fc2, fc1 and proj come with the output gradients that make them */
    ops->gated_residual_bias_backward(a->s1, dmod + 5 * C, G_(w->fc2b), a->dh, f2, mod + 5 * C, 6 * C, B, T, C);
    linear_backward_overwrite(a->d4a, G_(w->fc2w), NULL, a->s1, g, P_(w->fc2w), BT, 4 * C, C);
    ops->gelu_bias_backward(a->d4b, G_(w->fc1b), a->d4a, NULL, a->gdg + 4 * l * hsz, BT, 4 * C);
    linear_backward_overwrite(a->s1, G_(w->fc1w), NULL, a->d4b, m2, P_(w->fc1w), BT, C, 4 * C);
    ops->modulate_layernorm_backward(a->dh, dmod + 3 * C, dmod + 4 * C, a->s2, a->s1, ln2, mod + 4 * C, hx,
                                     a->mean2 + l * rsz, a->rstd2 + l * rsz, 6 * C, B, T, C);
    if (a->text) { /* hx = hmid + xattn(hmid): the layer adds into d hmid (dh) and into dtext */
      ops->copy(a->s1, a->dh, sizeof(float) * (size_t)BTC);
      cross_attention_backward(&a->xa[l], m, a->dh, m->frozen ? NULL : a->dtext, a->s1, hmid, a->te.text, B);
    }
    /* attention half: hmid = h + gate1 proj */
    ops->gated_residual_bias_backward(a->s1, dmod + 2 * C, G_(w->projb), a->dh, proj, mod + 2 * C, 6 * C, B, T, C);
    linear_backward_overwrite(a->s2, G_(w->projw), NULL, a->s1, att, P_(w->projw), BT, C, C);
    attention_backward(a->d3, a->ascratch, a->s2, a->qkv + 3 * l * hsz, a->prob + l * psz, B, T, C, NH);
    linear_backward_overwrite(a->s1, G_(w->qkvw), G_(w->qkvb), a->d3, m1, P_(w->qkvw), BT, C, 3 * C);
    ops->modulate_layernorm_backward(a->dh, dmod, dmod + C, a->s2, a->s1, ln1, mod + C, h, a->mean1 + l * rsz,
                                     a->rstd1 + l * rsz, 6 * C, B, T, C);
    linear_backward(a->dcsilu, G_(w->adaw), G_(w->adab), dmod, a->csilu, P_(w->adaw), B, C, 6 * C);
    model_unit_leave(m, 1 + l);
  }
  /* h_0 = Linear(tokens) + pos */
  model_unit_enter(m, 0, MODEL_BACKWARD);
  linear_backward_overwrite(dx ? a->dtok : NULL, G_(a->patchw), G_(a->patchb), a->dh, a->tokens, P_(a->patchw), BT, P, C);
  if (dx) {
    ops->unpatchify(a->dimg, a->dtok, B, CI, S, S, p);
    ops->axpy(dx, 1.0f, a->dimg, (long)B * c->dim);
  }
  if (!m->frozen) { /* what follows only feeds parameter gradients */
    ops->fill(a->dcond, 0.0f, BC);
    ops->silu_backward(a->dcond, a->dcsilu, a->cond, BC);
    if (a->classifier) {
      ops->embedding_backward(G_(a->cemb), a->dcond, a->labels, B, C);
    } else {
      cond_embed_backward(&a->ce, m, a->dcond, B);
      if (a->text) { /* the pooled path, then the encoder with every block's text gradient */
        linear_backward_overwrite(a->dpooled, G_(a->ctw), G_(a->ctb), a->dcond, a->te.pooled, P_(a->ctw), B,
                                  c->text_width, C);
        text_encoder_backward(&a->te, m, a->dtext, a->dpooled, B);
      }
    }
  }
  model_unit_leave(m, 0);
}

#define DIT_BUFFERS(a)                                                                                    \
  {a->pos, a->ones, a->tokens, a->cond, a->csilu, a->mod, a->h, a->hmid, a->ln1,                             \
   a->m1, a->att, a->proj, a->ln2, a->m2, a->f2, a->mean1, a->rstd1, a->mean2, a->rstd2, a->qkv, a->prob,     \
   a->g, a->gdg, a->fmod, a->lnf, a->mf, a->meanf, a->rstdf, a->otok, a->feat, a->ay,                  \
   a->ascratch, a->dh, a->s1, a->s2, a->d3, a->d4a, a->d4b, a->dtok, a->dimg, a->dmod, a->dcsilu, a->dcond}

static void dit_free(Model *m) {
  Dit *a = m->impl;
  float *bufs[] = DIT_BUFFERS(a);
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  ops->free(a->labels);
  if (!a->classifier) cond_embed_free(&a->ce);
  if (a->text) {
    text_encoder_free(&a->te);
    for (int l = 0; l < m->cfg.depth; l++) cross_attention_free(&a->xa[l]);
    float *tbufs[] = {a->hx, a->xo, a->ctmp, a->dtext, a->dpooled};
    for (size_t i = 0; i < sizeof tbufs / sizeof tbufs[0]; i++) ops->free(tbufs[i]);
    free(a->xa);
  }
  free(a->blk);
  free(a);
}

/* a matrix (r, c) and a vector (n) of block l, named "block<l>.<what>" */
static long add2l(Model *m, int l, const char *what, int r, int c, InitKind init) {
  char name[MODEL_NAME_MAX];
  snprintf(name, sizeof name, "block%d.%s", l, what);
  return model_add_matrix(m, name, r, c, init);
}
static long add1l(Model *m, int l, const char *what, int n, InitKind init) {
  char name[MODEL_NAME_MAX];
  snprintf(name, sizeof name, "block%d.%s", l, what);
  return model_add_vector(m, name, n, init);
}

Model *dit_create(Model *m) {
  const ModelConfig *c = &m->cfg;
  int C = c->width, L = c->depth, B = m->max_batch, NH = c->heads, grid = c->img_size / c->patch;
  Dit *a = callocCheck(1, sizeof *a);
  a->T = grid * grid;
  a->P = c->patch * c->patch * c->img_channels;
  int T = a->T, P = a->P;
  /* the GEMMs and the attention count their rows in int */
  amd_mul_checked(B, T, INT_MAX, "the batch x tokens per image ((image size / model.patch)^2) of a dit");
  amd_mul_checked(B, NH, INT_MAX, "the batch x model.heads of a dit");
  a->blk = callocCheck((size_t)L + 1, sizeof *a->blk);
  a->classifier = m->kind->classifier;
  a->patchw = model_add_matrix(m, "patch.w", C, P, INIT_FAN_IN);
  a->patchb = model_add_vector(m, "patch.b", C, INIT_ZERO);
  if (a->classifier) {
    a->cemb = model_add_matrix(m, "cond.emb", 1, C, INIT_NORMAL);
  } else if (c->text) { /* time embedding, then the encoder and c's pooled term */
    a->text = 1;
    cond_embed_create(&a->ce, m, C, c->temb_dim, 0);
    text_encoder_create(&a->te, m, c->vocab, c->text_width, c->text_depth, NH, c->max_text);
    a->ctw = model_add_matrix(m, "cond.text.w", C, c->text_width, INIT_FAN_IN);
    a->ctb = model_add_vector(m, "cond.text.b", C, INIT_ZERO);
    a->xa = callocCheck((size_t)L + 1, sizeof *a->xa);
  } else {
    cond_embed_create(&a->ce, m, C, c->temb_dim, c->num_classes);
  }
  for (int l = 0; l < L; l++) {
    DitBlockParams *w = &a->blk[l];
    model_begin_unit(m);
    w->adaw = add2l(m, l, "ada.zero.w", 6 * C, C, INIT_ZERO), w->adab = add1l(m, l, "ada.b", 6 * C, INIT_ZERO);
    w->qkvw = add2l(m, l, "qkv.w", 3 * C, C, INIT_FAN_IN), w->qkvb = add1l(m, l, "qkv.b", 3 * C, INIT_ZERO);
    w->projw = add2l(m, l, "proj.w", C, C, INIT_FAN_IN), w->projb = add1l(m, l, "proj.b", C, INIT_ZERO);
    if (a->text) {
      char prefix[MODEL_NAME_MAX];
      snprintf(prefix, sizeof prefix, "block%d.xattn", l);
      /* inference only: every block's layer works in block 0's buffers, as the block itself does */
      cross_attention_create_sharing(&a->xa[l], m, prefix, C, c->text_width, NH, T, c->max_text,
                                     m->inference && l ? &a->xa[0] : NULL);
    }
    w->fc1w = add2l(m, l, "fc1.w", 4 * C, C, INIT_FAN_IN), w->fc1b = add1l(m, l, "fc1.b", 4 * C, INIT_ZERO);
    w->fc2w = add2l(m, l, "fc2.w", C, 4 * C, INIT_FAN_IN), w->fc2b = add1l(m, l, "fc2.b", C, INIT_ZERO);
  }
  model_begin_unit(m);
  if (a->classifier) {
    a->headw = model_add_matrix(m, "head.w", c->num_classes, C, INIT_FAN_IN);
    a->headb = model_add_vector(m, "head.b", c->num_classes, INIT_ZERO);
  } else {
    a->fadaw = model_add_matrix(m, "final.ada.zero.w", 2 * C, C, INIT_ZERO);
    a->fadab = model_add_vector(m, "final.ada.b", 2 * C, INIT_ZERO);
    a->outw = model_add_matrix(m, "final.out.zero.w", P, C, INIT_ZERO);
    a->outb = model_add_vector(m, "final.out.b", P, INIT_ZERO);
  }

  /* A training model keeps every block's activations (slot l of each per-block buffer) and has the
   * backward's scratch; an inference-only one (MODEL_INFERENCE) has one slot, which every block
   * reuses, and what only a training forward or the backward touch is NULL (DIT_BUFFERS frees NULL) */
  int infer = a->infer_only = m->inference;
  size_t f = sizeof(float), BC = (size_t)B * C, BTC = BC * (size_t)T, BT = (size_t)B * T;
  size_t Ls = (size_t)(infer || !L ? 1 : L);
#define KEEP_ALLOC(bytes) (infer ? NULL : ops->alloc(bytes))
  float *host = mallocCheck(f * (size_t)T * C);
  sincos_2d(host, grid, C);
  a->pos = ops->alloc(f * (size_t)T * C);
  ops->to_device(a->pos, host, f * (size_t)T * C);
  for (int i = 0; i < T; i++) host[i] = 1.0f;
  a->ones = ops->alloc(f * (size_t)T);
  ops->to_device(a->ones, host, f * (size_t)T);
  free(host);
  a->labels = ops->alloc(sizeof(int) * (size_t)B);
  a->tokens = ops->alloc(f * BT * P);
  a->cond = ops->alloc(f * BC);
  a->csilu = ops->alloc(f * BC);
  a->mod = ops->alloc(f * 6 * BC * Ls);
  a->h = ops->alloc(f * BTC * (infer ? 1 : (size_t)L + 1));
  float **per_block[] = {&a->m1, &a->att, &a->proj, &a->m2, &a->f2};
  for (size_t i = 0; i < sizeof per_block / sizeof per_block[0]; i++) *per_block[i] = ops->alloc(f * BTC * Ls);
  float **kept_block[] = {&a->hmid, &a->ln1, &a->ln2};
  for (size_t i = 0; i < sizeof kept_block / sizeof kept_block[0]; i++) *kept_block[i] = KEEP_ALLOC(f * BTC * Ls);
  a->mean1 = KEEP_ALLOC(f * BT * Ls), a->rstd1 = KEEP_ALLOC(f * BT * Ls);
  a->mean2 = KEEP_ALLOC(f * BT * Ls), a->rstd2 = KEEP_ALLOC(f * BT * Ls);
  a->qkv = ops->alloc(f * 3 * BTC * Ls);
  a->prob = ops->alloc(f * (size_t)B * NH * T * T * Ls);
  a->g = ops->alloc(f * 4 * BTC * Ls), a->gdg = KEEP_ALLOC(f * 4 * BTC * Ls);
  a->fmod = ops->alloc(f * 2 * BC);
  a->lnf = ops->alloc(f * BTC), a->mf = ops->alloc(f * BTC); /* the classifier's head reads lnf */
  a->meanf = ops->alloc(f * BT), a->rstdf = ops->alloc(f * BT);
  a->otok = ops->alloc(f * BT * P);
  a->feat = ops->alloc(f * BC);
  a->ay = ops->alloc(f * (size_t)attention_forward_scratch_floats(ops, B, T, C));
  a->ascratch = KEEP_ALLOC(f * (size_t)attention_scratch_floats(ops, B, T, C, NH));
  a->dh = KEEP_ALLOC(f * BTC), a->s1 = KEEP_ALLOC(f * BTC), a->s2 = KEEP_ALLOC(f * BTC);
  a->d3 = KEEP_ALLOC(f * 3 * BTC);
  a->d4a = KEEP_ALLOC(f * 4 * BTC), a->d4b = KEEP_ALLOC(f * 4 * BTC);
  a->dtok = KEEP_ALLOC(f * BT * P);
  a->dimg = KEEP_ALLOC(f * (size_t)B * c->dim);
  a->dmod = KEEP_ALLOC(f * 6 * BC);
  a->dcsilu = KEEP_ALLOC(f * BC), a->dcond = KEEP_ALLOC(f * BC);
  if (a->text) {
    a->hx = KEEP_ALLOC(f * BTC * Ls), a->xo = ops->alloc(f * BTC), a->ctmp = ops->alloc(f * BC);
    a->dtext = KEEP_ALLOC(f * (size_t)B * c->max_text * c->text_width);
    a->dpooled = KEEP_ALLOC(f * (size_t)B * c->text_width);
  }
#undef KEEP_ALLOC
  m->impl = a;
  m->forward = dit_forward;
  m->backward = dit_backward;
  m->features = dit_features;
  m->feat_dim = C;
  m->free_impl = dit_free;
  return m;
}
