/* model_checks.h: what every model's backward must do, for the model tests (test_dit.c,
 * test_text.c): a second backward adds (grads and dx double), and a frozen model's backward gives the
 * same dx bit for bit and leaves every parameter gradient as it was.
 * Return convention: nothing here can fail; each EXPECT records a failed check. */
#pragma once
#include <string.h>

#include "gradcheck.h"
#include "model.h"

/* After a first backward left grads1 (the model's gradients) and dx1 (n) in place: loss(ctx) runs
 * the forward again, then a second backward into m->grads and dx must double both; then, dx zeroed
 * and the model frozen, a third must give dx1 again and leave the gradients alone. R, Rf, B: the
 * backward's arguments. */
static inline void check_backward_adds_and_frozen(const char *what, Model *m, float *dx, long n, const float *R,
                                                  const float *Rf, int B, loss_fn loss, void *ctx) {
  float *grads1 = host_copy(m->grads, m->num_params), *dx1 = host_copy(dx, n);
  char name[96];
  loss(ctx);
  m->backward(m, dx, R, Rf, B);
  snprintf(name, sizeof name, "%s grads", what);
  expect_doubled(name, m->grads, grads1, m->num_params);
  snprintf(name, sizeof name, "%s dx", what);
  expect_doubled(name, dx, dx1, n);

  /* frozen: the same input gradient bit for bit, and not one parameter gradient touched */
  float *grads2 = host_copy(m->grads, m->num_params);
  ops->fill(dx, 0.0f, n);
  m->frozen = 1;
  loss(ctx);
  m->backward(m, dx, R, Rf, B);
  m->frozen = 0;
  float *dx3 = host_copy(dx, n), *grads3 = host_copy(m->grads, m->num_params);
  EXPECT(memcmp(dx3, dx1, sizeof(float) * (size_t)n) == 0, "%s: frozen backward: dx differs", what);
  EXPECT(memcmp(grads3, grads2, sizeof(float) * (size_t)m->num_params) == 0,
         "%s: frozen backward changed parameter gradients", what);
  free(grads1), free(dx1), free(grads2), free(dx3), free(grads3);
}
