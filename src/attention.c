/* attention.c: multi-head self-attention: the fused attention_forward op, and the backward on
 * gemm_batched and the softmax op. */
#include "attention.h"

#include <math.h>

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
  int hs = C / NH, n = B * NH;
  long th = (long)T * hs, tt = (long)T * T, btc = (long)B * T * C;
  float *dy = scratch, *dq = dy + btc, *dk = dq + btc, *dv = dk + btc; /* (B, NH, T, hs) each */
  float *dprob = dv + btc, *datt = dprob + (long)n * tt;              /* (B, NH, T, T) each */
  float scale = 1.0f / sqrtf((float)hs);
  ops->heads_merge_backward(dy, dout, B, T, NH, hs);
  ops->gemm_batched(0, 1, T, T, hs, 1.0f, dy, th, v, th, 0.0f, dprob, tt, n); /* dy v^T */
  ops->gemm_batched(1, 0, T, hs, T, 1.0f, prob, tt, dy, th, 0.0f, dv, th, n); /* prob^T dy */
  ops->softmax_backward(datt, dprob, prob, n * T, T);
  ops->gemm_batched(0, 0, T, hs, T, scale, datt, tt, k, th, 0.0f, dq, th, n); /* datt k */
  ops->gemm_batched(1, 0, T, hs, T, scale, datt, tt, q, th, 0.0f, dk, th, n); /* datt^T q */
  ops->heads_split_backward(dqkv, dq, dk, dv, B, T, NH, hs);
}
