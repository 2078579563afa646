/* cross_attention.h: multi-head cross-attention from image tokens to text tokens, the layer through
 * which a DiT block reads a caption (docs/DESIGN.md section 5.2; placed and initialized as
 * PixArt-alpha's, with a LayerNorm before the queries as in Stable Diffusion's transformer blocks):
 *   out (B, N, C) = proj(attention(q = Linear(LN(x)), [k v] = Linear(text), mask))
 * over image tokens x (B, N, C) and the text encoder's tokens text (B, M, E), E its width, M <=
 * max_text the padded caption length of the batch. mask (B, M): 1 for a caption token, 0 for padding;
 * a padded token gets no weight, and a caption of padding only (the empty caption of classifier-free
 * guidance) makes its sample's attention output 0, so its out is proj's bias. The LayerNorm has no
 * affine (eps 1e-6) as the DiT's. The caller adds out into its residual stream.
 * Tensors, in this order under a prefix P: P.q.w (C, C), P.q.b (C), P.kv.w (2C, E) (k's rows, then
 * v's), P.kv.b (2C), P.proj.zero.w (C, C), P.proj.b (C); fan-in weights, zero biases, and the output
 * projection zero (as PixArt-alpha's), so the layer starts as out = 0 and a block with it still starts
 * as the identity.
 * The core, softmax(q k^T / sqrt(hs) + log mask) v per (sample, head), is the backends'
 * cross_attention_forward / cross_attention_backward op pair (core/ops_list.h).
 * Not here: the text encoder and the DiT block that calls this (issue 20's next part).
 * Return convention: nothing here fails but allocation and the size checks, which stop the program. */
#pragma once
#include "model.h"
#include "ops.h"

/* floats of the scratch buffer the cross_attention_backward op of backend table t needs for B
 * samples of N queries and M keys over width C in NH heads: dprob and datt, and where
 * t->attention_heads_scratch (CUDA) the heads of dy, dq, dk, dv */
long cross_attention_scratch_floats(const amd_ops *t, int B, int N, int M, int C, int NH);

typedef struct {
  long qw, qb, kvw, kvb, projw, projb; /* parameter offsets */
  int width, text_dim, heads, tokens, max_text;
  /* activations of the last forward, for m->max_batch samples */
  float *ln, *mean, *rstd;    /* (B, N, C), (B, N), (B, N): LN(x) and its statistics */
  float *query, *kv;          /* (B, N, C), (B, M, 2C): the projections */
  float *q, *k, *v, *prob;    /* (B, NH, N, hs), (B, NH, M, hs) each, (B, NH, N, M): the op's caches */
  float *att;                 /* (B, N, C): the attention output, proj's input */
  float *y;                   /* (B, NH, N, hs): the op's forward scratch (none on the CPU) */
  float *datt, *dquery, *dln; /* (B, N, C) each */
  float *dkv;                 /* (B, M, 2C) */
  float *scratch;             /* cross_attention_scratch_floats */
  int B, M;                   /* of the last forward */
  int infer_only;             /* 1: its model was created with MODEL_INFERENCE: no backward's buffers (NULL) */
  int shared;                 /* 1: the forward's buffers are another layer's (cross_attention_create_sharing) */
} CrossAttention;

/* Registers the tensors in m under prefix and allocates buffers for m->max_batch samples of `tokens`
 * image tokens and up to max_text text tokens (in a model created with MODEL_INFERENCE only the
 * forward's); width divisible by heads. */
void cross_attention_create(CrossAttention *xa, Model *m, const char *prefix, int width, int text_dim, int heads,
                            int tokens, int max_text);
/* The same, but with share (an earlier layer of the same sizes in a model created with
 * MODEL_INFERENCE) it allocates no buffers at all: it works in share's, as the inference-only dit's
 * blocks do in one slot. Each layer's forward
 * then overwrites what the last one left there. */
void cross_attention_create_sharing(CrossAttention *xa, Model *m, const char *prefix, int width, int text_dim,
                                    int heads, int tokens, int max_text, const CrossAttention *share);
void cross_attention_free(CrossAttention *xa);
/* out (B, N, C) from x (B, N, C), text (B, M, E) and mask (B, M), N = tokens, 1 <= M <= max_text */
void cross_attention_forward(CrossAttention *xa, float *out, const Model *m, const float *x, const float *text,
                             const float *mask, int B, int M);
/* After the forward of the same x, text, mask: adds d loss / d params into m's gradients (none when m
 * is frozen), d loss / d x into dx and d loss / d text into dtext (each skipped when NULL), given
 * dout (B, N, C). */
void cross_attention_backward(CrossAttention *xa, Model *m, float *dx, float *dtext, const float *dout,
                              const float *x, const float *text, int B);
