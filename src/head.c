/* head.c: the `head` model: a linear scorer on features, out (B, 1) = x W^T + b, x (B, dim). It is
 * the GAN discriminator head of DMD2 on the fake teacher's pooled features, a Model so that it is
 * checkpointed, reduced and optimized like every other network. t and labels are ignored. */
#include <stdlib.h>

#include "common.h"
#include "layers.h"
#include "model.h"
#include "ops.h"

typedef struct {
  long w, b;
  float *x; /* (B, dim) input of the last forward */
  int B;
} Head;

static void head_forward(Model *m, float *out, const float *x, const float *t, const int *labels, int B) {
  (void)t, (void)labels;
  Head *h = m->impl;
  CHECK(B <= m->max_batch, "head forward: batch %d exceeds %d", B, m->max_batch);
  ops->copy(h->x, x, sizeof(float) * (size_t)B * m->cfg.dim);
  h->B = B;
  model_unit_enter(m, 0, MODEL_FORWARD);
  linear_forward(out, x, model_param(m, h->w), model_param(m, h->b), B, m->cfg.dim, 1);
  model_unit_leave(m, 0);
}

static void head_backward(Model *m, float *dx, const float *dout, const float *dfeat, int B) {
  (void)dfeat;
  Head *h = m->impl;
  CHECK(B == h->B, "head backward: batch %d differs from the forward batch %d", B, h->B);
  model_unit_enter(m, 0, MODEL_BACKWARD);
  linear_backward(dx, model_grad(m, h->w), model_grad(m, h->b), dout, h->x, model_param(m, h->w), B, m->cfg.dim, 1);
  model_unit_leave(m, 0);
}

static const float *head_features(const Model *m) { return ((const Head *)m->impl)->x; }

static void head_free(Model *m) {
  Head *h = m->impl;
  ops->free(h->x);
  free(h);
}

Model *head_create(Model *m) {
  Head *h = callocCheck(1, sizeof *h);
  h->w = model_add_matrix(m, "head.w", 1, m->cfg.dim, INIT_FAN_IN);
  h->b = model_add_vector(m, "head.b", 1, INIT_ZERO);
  h->x = ops->alloc(sizeof(float) * (size_t)m->max_batch * m->cfg.dim);
  m->impl = h;
  m->forward = head_forward;
  m->backward = head_backward;
  m->features = head_features;
  m->feat_dim = m->cfg.dim;
  m->free_impl = head_free;
  return m;
}
