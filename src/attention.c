/* attention.c: multi-head self-attention on the fused attention ops (core/ops_list.h). */
#include "attention.h"

#include "ops.h"

long attention_scratch_floats(int B, int T, int C, int NH) {
  return 4L * B * T * C + 2L * B * NH * T * T; /* dy, dq, dk, dv; dprob, datt */
}

void attention_forward(float *out, float *q, float *k, float *v, float *prob, float *y, const float *qkv,
                       int B, int T, int C, int NH) {
  ops->attention_forward(out, q, k, v, prob, y, qkv, B, T, NH, C / NH); /* fused per (sample, head) */
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *q, const float *k,
                        const float *v, const float *prob, int B, int T, int C, int NH) {
  ops->attention_backward(dqkv, scratch, dout, q, k, v, prob, B, T, NH, C / NH); /* fused per (sample, head) */
}
