/* layers.h: layers shared by models, as forward/backward pairs over flat backend pointers.
 * Argument order: outputs, then inputs, then weights, then sizes. Backward adds into every gradient
 * it is given (NULL skips that gradient). Linear weights are (out, in) as in torch.nn.Linear.
 * Return convention: nothing here fails; functions return void. */
#pragma once

/* out (B, O) = inp (B, I) W^T + b;  W (O, I), b (O) or NULL */
void linear_forward(float *out, const float *inp, const float *W, const float *b, int B, int I, int O);
void linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                     const float *W, int B, int I, int O);
/* the same, but dinp is overwritten rather than added into: no zeroing pass for a fresh buffer */
void linear_backward_overwrite(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                               const float *W, int B, int I, int O);
