/* optim.h: AdamW over a network's flat parameter vector, with global-norm gradient clipping and the
 * learning-rate schedule. The moments share the parameter layout, so a checkpoint or a ZeRO shard
 * is one (offset, length) range of each.
 * Return convention: nothing here fails but allocation, which stops the program; functions
 * return void or their result. */
#pragma once

typedef struct {
  double lr, lr_min;   /* peak and final learning rate */
  long warmup;         /* linear warmup steps */
  int cosine;          /* 1: cosine decay from lr to lr_min over total_steps; 0: constant */
  long total_steps;
  double beta1, beta2, eps, weight_decay;
  double grad_clip;    /* global-norm clip; 0 disables */
} AdamWConfig;

/* Moments of the range [begin, begin + n) of a flat vector: all of it, or a ZeRO shard (mpi/zero.h). */
typedef struct {
  long begin, n;
  float *m, *v; /* (n) backend memory */
} AdamW;

AdamW *adamw_create(long n); /* the whole vector of n */
AdamW *adamw_create_range(long begin, long n);
void adamw_free(AdamW *o);
/* Learning rate at (0-based) step. */
double adamw_lr(const AdamWConfig *c, long step);
/* One update at (0-based) step of params[begin, begin + n) from grads[begin, begin + n) (full-length
 * vectors), the gradient's global norm being grad_norm; returns the clip scale applied (1 when not
 * clipped). */
double adamw_update(AdamW *o, float *params, const float *grads, const AdamWConfig *c, long step, double grad_norm);
/* The same with params and grads holding the range alone (n values each, value begin first): a
 * network that stores only its ZeRO shard (stage 3). */
double adamw_update_part(AdamW *o, float *params, const float *grads, const AdamWConfig *c, long step,
                         double grad_norm);
