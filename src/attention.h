/* attention.h: multi-head self-attention (Vaswani et al.) as a forward/backward pair over the op
 * interface: the fused attention_forward and attention_backward ops, per (sample, head) in cache
 * on the CPU. No causal mask (DiT tokens attend to every token); no projections (the caller's linears
 * make qkv and project the output).
 * Return convention: nothing here fails; functions return void or their result. */
#pragma once

/* floats of the scratch buffer attention_backward needs */
long attention_scratch_floats(int B, int T, int C, int NH);

/* out (B, T, C) = concat_h softmax(q_h k_h^T / sqrt(hs)) v_h over qkv (B, T, 3C), hs = C / NH.
 * Caches q, k, v (B, NH, T, hs) each and prob (B, NH, T, T); y (B, NH, T, hs) is scratch. */
void attention_forward(float *out, float *q, float *k, float *v, float *prob, float *y, const float *qkv,
                       int B, int T, int C, int NH);
/* dqkv (B, T, 3C) = d loss / d qkv (overwrite), given dout (B, T, C) and the forward's caches */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *q, const float *k,
                        const float *v, const float *prob, int B, int T, int C, int NH);
