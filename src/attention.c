/* attention.c: multi-head self-attention on the fused attention ops (core/ops_list.h). */
#include "attention.h"

#include "ops.h"

long attention_forward_scratch_floats(const amd_ops *t, int B, int T, int C) {
  return t->attention_heads_scratch ? 4L * B * T * C : 0; /* q, k, v, y where the heads are split and merged */
}

long attention_scratch_floats(const amd_ops *t, int B, int T, int C, int NH) {
  return 2L * B * NH * T * T + (t->attention_heads_scratch ? 5L * B * T * C : 0); /* dprob, datt; q, k, v, dy, dv */
}

void attention_forward(float *out, float *prob, float *scratch, const float *qkv, int B, int T, int C, int NH) {
  ops->attention_forward(out, prob, scratch, qkv, B, T, NH, C / NH); /* fused per (sample, head) */
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *prob, int B,
                        int T, int C, int NH) {
  ops->attention_backward(dqkv, scratch, dout, qkv, prob, B, T, NH, C / NH); /* fused per (sample, head) */
}
