/* attention.h: multi-head self-attention (Vaswani et al.) as a forward/backward pair over the op
 * interface: the fused attention_forward and attention_backward ops, per (sample, head) in cache
 * on the CPU, reading each head's q, k, v in place from qkv. No causal mask (DiT tokens attend to
 * every token); no projections (the caller's linears make qkv and project the output).
 * Return convention: nothing here fails; functions return void or their result. */
#pragma once

#include "ops.h"

/* floats of the scratch buffers attention_forward and attention_backward need on backend table t
 * (one of each serves every layer: nothing in them outlives the call): the backward's dprob and
 * datt (B, NH, T, T) each, and where t->attention_heads_scratch (CUDA) the heads split out of qkv */
long attention_forward_scratch_floats(const amd_ops *t, int B, int T, int C);
long attention_scratch_floats(const amd_ops *t, int B, int T, int C, int NH);

/* out (B, T, C) = concat_h softmax(q_h k_h^T / sqrt(hs)) v_h over qkv (B, T, 3C), hs = C / NH.
 * Caches prob (B, NH, T, T); the backward reads qkv itself, so it must not change in between. */
void attention_forward(float *out, float *prob, float *scratch, const float *qkv, int B, int T, int C, int NH);
/* dqkv (B, T, 3C) = d loss / d qkv (overwrite), given dout (B, T, C), the forward's qkv and prob */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *prob, int B,
                        int T, int C, int NH);
