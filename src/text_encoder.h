/* text_encoder.h: the caption encoder of a text-mode dit (issue 20, docs/DESIGN.md section 5.2), a
 * small pre-LN transformer over token ids, trained with the DiT as part of its flat buffer:
 *   x_0   = emb[ids] + pos                              emb (V, E) normal; pos fixed 1-D sin-cos (L, E)
 *   block: x += attn(x, LN(x), mask)                    masked self-attention (the cross-attention
 *                                                        layer with keys and values from LN(x))
 *          x += fc2(GELU(fc1(LN(x))))                   MLP ratio 4
 *   text  = LN(x_depth)                                 (B, L, E), what the DiT's blocks read
 *   pooled = sum_l mask_l text_l / sum_l mask_l          (B, E), the masked mean; 0 for an empty caption
 * over captions ids (B, L), L = max_text, token 0 the padding (mask = ids != 0). LayerNorms have no
 * affine (eps 1e-6). The attention is src/cross_attention.h's layer with query = key sequence:
 * its query LayerNorm and this file's LN(x) for the keys and values are the same LN, computed twice
 * (the layer keeps its own for the backward). Its output projection starts at zero, so each block's
 * attention half starts as the identity.
 * Padding: a padded position's row is computed (row-wise ops cannot skip it) but is never read into
 * a caption token's row, the pooled vector or the DiT (every attention masks it as a key, and the
 * masked mean gives it weight 0), so what a padded row holds changes nothing (tests/test_text.c).
 * The masked mean runs on the cross-attention op: a zero query (one head of width E) scores every
 * key alike, so its softmax over the caption's tokens is 1 / count each, and the empty caption's
 * all-padding softmax is 0 (section 2.2); the keys and values (B, L, 2E) are [0, text] from a fixed
 * selection matrix.
 * Tensors, in this order: text.emb (V, E), then per block l text.block<l>.attn.* (the cross-attention
 * layer's six) and text.block<l>.fc1.{w,b} (4E, E), text.block<l>.fc2.{w,b} (E, 4E).
 * Not here: the tokenizer (src/caption.*), the DiT that calls this (dit.c).
 * Return convention: nothing here fails but allocation and the size checks, which stop the program. */
#pragma once
#include "cross_attention.h"
#include "model.h"

typedef struct {
  long fc1w, fc1b, fc2w, fc2b;
} TextBlockParams;

typedef struct {
  long emb; /* text.emb (V, E) */
  TextBlockParams *blk;
  CrossAttention *attn; /* (depth) the blocks' self-attention */
  int vocab, width, depth, heads, len;
  /* fixed, not parameters */
  float *maskrow; /* (V) 0 for token 0, 1 for every other: mask = maskrow[ids] */
  float *pos;     /* (L, E) */
  float *sel;     /* (2E, E) [0; I]: kv of the masked mean = [0, text] */
  float *zq;      /* (B, 1, E) zero queries of the masked mean */
  /* activations of the last forward, for max_batch captions; per-block buffers stacked over blocks */
  int *ids;                       /* (B, L) */
  float *mask;                    /* (B, L) */
  float *x;                       /* (depth + 1, B, L, E) residual stream */
  float *xmid;                    /* (depth, B, L, E) after the attention half */
  float *lnk, *meank, *rstdk;     /* (depth, B, L, E), (depth, B, L) x2: LN(x), the keys' and values' input */
  float *lnm, *meanm, *rstdm;     /* the same for the MLP's LN(xmid) */
  float *g, *gdg;                 /* (depth, B, L, 4E) GELU of fc1's output, GELU's derivative there */
  float *text, *meanf, *rstdf;    /* (B, L, E), (B, L) x2: the output */
  float *pooled;                  /* (B, E) */
  float *pkv, *pq, *pk, *pv, *pprob, *py; /* the masked mean's op buffers */
  /* scratch */
  float *ao;                      /* (B, L, E) attention or MLP output */
  float *dx, *dt1, *dt2;          /* (B, L, E) */
  float *d4a, *d4b;               /* (B, L, 4E) */
  float *dpkv, *dpq, *pscratch;   /* the masked mean's backward */
  int B;
  int infer_only; /* 1: its model was created with MODEL_INFERENCE: one block's buffers (slot 0, the residual
                   * stream updated in place), gdg and the backward's scratch NULL */
} TextEncoder;

/* Registers the tensors in m (under "text.") and allocates buffers for m->max_batch captions of
 * len tokens; width even and a multiple of heads. */
void text_encoder_create(TextEncoder *te, Model *m, int vocab, int width, int depth, int heads, int len);
void text_encoder_free(TextEncoder *te);
/* te->text (B, L, E), te->mask (B, L) and te->pooled (B, E) from ids (B, L) (backend memory, each
 * below vocab; 0 padding) */
void text_encoder_forward(TextEncoder *te, const Model *m, const int *ids, int B);
/* After the forward: adds d loss / d params into m's gradients (nothing when m is frozen) given
 * dtext (B, L, E) = d loss / d te->text (the pooled path's gradient is added into it) and dpooled
 * (B, E) = d loss / d te->pooled (NULL: none). */
void text_encoder_backward(TextEncoder *te, Model *m, float *dtext, const float *dpooled, int B);
