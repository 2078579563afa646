/* ema.c: the exponential moving average of parameters (ema.h) on the backend's ema_update op. */
#include "ema.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "ops.h"

Ema *ema_create_range(long begin, long n) {
  Ema *e = callocCheck(1, sizeof *e);
  e->begin = begin, e->n = n;
  e->w = ops->alloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  return e;
}

void ema_free(Ema *e) {
  if (!e) return;
  ops->free(e->w);
  free(e);
}

double ema_decay(const EmaConfig *c, long step) {
  if (c->power <= 0) return c->decay;
  double warm = 1.0 - pow(1.0 + (double)step, -c->power);
  return warm < c->decay ? warm : c->decay;
}

void ema_copy_from_part(Ema *e, const float *part) { ops->copy(e->w, part, sizeof(float) * (size_t)e->n); }

void ema_copy_from(Ema *e, const float *params) { ema_copy_from_part(e, params + e->begin); }

void ema_update_part(Ema *e, const float *part, double decay) {
  if (decay <= 0) {
    ema_copy_from_part(e, part);
    return;
  }
  ops->ema_update(e->w, part, e->n, (float)(1.0 - decay));
}

void ema_update(Ema *e, const float *params, double decay) { ema_update_part(e, params + e->begin, decay); }

void ema_log_memory(const Ema *e, const char *net) {
  amd_log("EMA of %s, bytes per rank: %ld (%ld values)\n", net, (long)sizeof(float) * e->n, e->n);
}
