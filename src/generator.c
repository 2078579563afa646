/* generator.c: the few-step student's sampling and backward simulation. */
#include "generator.h"

#include <stdlib.h>

#include "common.h"
#include "ops.h"
#include "philox.h"

Generator *generator_create(Model *model, int S, int max_batch) {
  CHECK(S >= 1 && S <= GENERATOR_MAX_STEPS, "student steps %d out of range [1, %d]", S, GENERATOR_MAX_STEPS);
  CHECK(max_batch <= model->max_batch, "generator batch %d exceeds the model's %d", max_batch, model->max_batch);
  Generator *g = callocCheck(1, sizeof *g);
  g->model = model, g->S = S, g->max_batch = max_batch;
  for (int k = 0; k < S; k++) g->grid[k] = 1.0 - (double)k / S;
  size_t bd = sizeof(float) * (size_t)max_batch * model->cfg.dim;
  g->xt = ops->alloc(bd), g->v = ops->alloc(bd), g->noise = ops->alloc(bd);
  g->t = ops->alloc(sizeof(float) * (size_t)max_batch);
  g->t_host = mallocCheck(sizeof(float) * (size_t)max_batch);
  return g;
}

void generator_free(Generator *g) {
  if (!g) return;
  ops->free(g->xt), ops->free(g->v), ops->free(g->noise), ops->free(g->t);
  free(g->t_host);
  free(g);
}

static void set_t(Generator *g, double t, int B) {
  for (int i = 0; i < B; i++) g->t_host[i] = (float)t;
  ops->to_device(g->t, g->t_host, sizeof(float) * (size_t)B);
}

void generator_run(Generator *g, float *x, const int *labels, int B, int k, uint64_t seed, uint32_t key, uint32_t index0) {
  CHECK(k >= 1 && k <= g->S && B <= g->max_batch, "generator_run: step %d of %d, batch %d of %d", k, g->S, B, g->max_batch);
  int D = g->model->cfg.dim;
  long n = (long)B * D;
  ops->randn(g->xt, B, D, seed, RNG_GEN, key, index0);
  for (int j = 0; j < k; j++) {
    double t = g->grid[j];
    set_t(g, t, B);
    g->model->forward(g->model, g->v, g->xt, g->t, labels, B);
    ops->flow_denoise(x, g->xt, g->v, g->t, B, D);
    g->t_last = t;
    if (j + 1 == k) break;
    /* re-noise to the next grid point: xt = (1 - t') x0 + t' e */
    double tn = g->grid[j + 1];
    ops->randn(g->noise, B, D, seed, RNG_RENOISE, key * GENERATOR_MAX_STEPS + (uint32_t)j, index0);
    ops->copy(g->xt, x, sizeof(float) * (size_t)n);
    ops->scale(g->xt, (float)(1.0 - tn), n);
    ops->axpy(g->xt, (float)tn, g->noise, n);
  }
}

void generator_backward(Generator *g, const float *dx, int B) {
  /* x0 = xt - t v, xt held fixed (earlier steps ran without gradient): dv = -t dx */
  long n = (long)B * g->model->cfg.dim;
  ops->copy(g->v, dx, sizeof(float) * (size_t)n);
  ops->scale(g->v, (float)-g->t_last, n);
  g->model->backward(g->model, NULL, g->v, NULL, B);
}
