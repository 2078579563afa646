/* optim.c: AdamW step, clipping and schedule on the backend's fused adamw op. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "ops.h"

AdamW *adamw_create(long n) { return adamw_create_range(0, n); }

AdamW *adamw_create_range(long begin, long n) {
  AdamW *o = callocCheck(1, sizeof *o);
  o->begin = begin, o->n = n;
  o->m = ops->alloc(sizeof(float) * (size_t)n);
  o->v = ops->alloc(sizeof(float) * (size_t)n);
  return o;
}

void adamw_free(AdamW *o) {
  if (!o) return;
  ops->free(o->m);
  ops->free(o->v);
  free(o);
}

double adamw_lr(const AdamWConfig *c, long step) {
  if (c->warmup > 0 && step < c->warmup) return c->lr * (double)(step + 1) / (double)c->warmup;
  if (!c->cosine || c->total_steps <= c->warmup) return c->lr;
  double p = (double)(step - c->warmup) / (double)(c->total_steps - c->warmup);
  if (p > 1) p = 1;
  return c->lr_min + 0.5 * (c->lr - c->lr_min) * (1.0 + cos(3.141592653589793 * p));
}

double adamw_update(AdamW *o, float *params, const float *grads, const AdamWConfig *c, long step, double grad_norm) {
  return adamw_update_part(o, params + o->begin, grads + o->begin, c, step, grad_norm);
}

double adamw_update_part(AdamW *o, float *params, const float *grads, const AdamWConfig *c, long step,
                         double grad_norm) {
  double scale = 1.0;
  if (c->grad_clip > 0 && grad_norm > c->grad_clip) scale = c->grad_clip / (grad_norm + 1e-12);
  ops->adamw(params, grads, o->m, o->v, o->n, (float)adamw_lr(c, step), (float)c->beta1, (float)c->beta2,
             (float)c->eps, (float)c->weight_decay, (float)scale, step + 1);
  return scale;
}
