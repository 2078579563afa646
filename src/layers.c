/* layers.c: the linear layer on the backend's fused linear op and GEMM. */
#include "layers.h"

#include "ops.h"

void linear_forward(float *out, const float *inp, const float *W, const float *b, int B, int I, int O) {
  ops->linear_forward(out, inp, W, b, B, I, O); /* the GEMM and the bias in one pass */
}

static void linear_backward_beta(float *dinp, float dinp_beta, float *dW, float *db, const float *dout,
                                 const float *inp, const float *W, int B, int I, int O) {
  if (dinp) ops->gemm(0, 0, B, I, O, 1.0f, dout, W, dinp_beta, dinp); /* (B, I) (+)= dout (B, O) W (O, I) */
  if (dW) ops->gemm(1, 0, O, I, B, 1.0f, dout, inp, 1.0f, dW);        /* (O, I) += dout^T inp */
  if (db) ops->bias_backward(db, dout, B, O);
}

void linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                     const float *W, int B, int I, int O) {
  linear_backward_beta(dinp, 1.0f, dW, db, dout, inp, W, B, I, O);
}

void linear_backward_overwrite(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                               const float *W, int B, int I, int O) {
  linear_backward_beta(dinp, 0.0f, dW, db, dout, inp, W, B, I, O);
}
