/* flow.c: rectified-flow training loss and the Euler and Heun samplers. */
#include "flow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "philox.h"

FlowBatch *flow_batch_create(int max_batch, int dim, int label_ints) {
  CHECK(label_ints >= 1, "flow batch: %d ints per label", label_ints);
  FlowBatch *b = callocCheck(1, sizeof *b);
  b->label_ints = label_ints;
  size_t bd = sizeof(float) * (size_t)max_batch * dim, bs = sizeof(float) * (size_t)max_batch;
  b->max_batch = max_batch, b->dim = dim;
  b->e = ops->alloc(bd), b->xt = ops->alloc(bd), b->v = ops->alloc(bd);
  b->pred = ops->alloc(bd), b->dpred = ops->alloc(bd);
  b->t = ops->alloc(bs), b->loss = ops->alloc(bs);
  b->labels = ops->alloc(sizeof(int) * (size_t)max_batch * label_ints);
  b->t_host = mallocCheck(bs), b->loss_host = mallocCheck(bs);
  b->labels_host = mallocCheck(sizeof(int) * (size_t)max_batch * label_ints);
  return b;
}

void flow_batch_free(FlowBatch *b) {
  if (!b) return;
  float *dev[] = {b->e, b->xt, b->v, b->pred, b->dpred, b->t, b->loss};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) ops->free(dev[i]);
  ops->free(b->labels);
  ops->graph_free(b->graph);
  free(b->t_host), free(b->loss_host), free(b->labels_host);
  free(b);
}

/* the device part of a training batch: its arguments by value, compared byte for byte by
 * graph_run (zeroed first, so padding compares too) */
typedef struct {
  float *loss;
  Model *m;
  FlowBatch *b;
  const float *x0, *weights;
  long global_batch;
  int B;
} FlowStep;

static void flow_step(const void *arg) {
  const FlowStep *s = arg;
  FlowBatch *b = s->b;
  ops->flow_interpolate(b->xt, b->v, s->x0, b->e, b->t, s->B, b->dim);
  s->m->forward(s->m, b->pred, b->xt, b->t, b->labels, s->B);
  ops->mse_forward_backward(s->loss, b->dpred, b->pred, b->v, s->weights, s->B, b->dim, 1.0f / (float)s->global_batch);
  s->m->backward(s->m, NULL, b->dpred, NULL, s->B);
}

double flow_sample_t(const FlowConfig *fc, uint64_t seed, uint32_t step, uint32_t index) {
  if (!fc->logit_normal) return rng_uniform(seed, RNG_TIME, step, index, 0);
  float z;
  rng_normal(&z, 1, seed, RNG_TIME, step, index);
  return 1.0 / (1.0 + exp(-(fc->t_mean + fc->t_std * z)));
}

void flow_train_batch_into(float *loss, Model *m, FlowBatch *b, const float *x0, const int *labels,
                           const float *weights, int B, uint32_t index0, uint32_t step, uint64_t seed,
                           const FlowConfig *fc, long global_batch) {
  int D = b->dim, P = model_label_ints(&m->cfg);
  CHECK(B <= b->max_batch, "flow batch %d exceeds its buffers (%d)", B, b->max_batch);
  CHECK(P == b->label_ints, "flow batch of %d ints per label for a model that reads %d", b->label_ints, P);
  int null = m->cfg.text ? 0 : m->cfg.num_classes; /* text: the empty caption, every token padding */
  for (int i = 0; i < B; i++) {
    uint32_t g = index0 + (uint32_t)i;
    b->t_host[i] = (float)flow_sample_t(fc, seed, step, g);
    int drop = rng_uniform(seed, RNG_DROP, step, g, 0) < fc->p_uncond;
    for (int j = 0; j < P; j++) b->labels_host[(long)i * P + j] = drop ? null : labels[(long)i * P + j];
  }
  ops->to_device(b->t, b->t_host, sizeof(float) * (size_t)B);
  ops->to_device(b->labels, b->labels_host, sizeof(int) * (size_t)B * P);
  ops->randn(b->e, B, D, seed, RNG_NOISE, step, index0);
  FlowStep s;
  memset(&s, 0, sizeof s);
  s.loss = loss, s.m = m, s.b = b, s.x0 = x0, s.weights = weights, s.global_batch = global_batch, s.B = B;
  if (m->shard)
    flow_step(&s); /* ZeRO stage 3 gathers units over MPI inside forward and backward */
  else
    ops->graph_run(&b->graph, flow_step, &s, sizeof s);
}

double flow_train_batch(Model *m, FlowBatch *b, const float *x0, const int *labels, const float *weights, int B,
                        uint32_t index0, uint32_t step, uint64_t seed, const FlowConfig *fc, long global_batch) {
  flow_train_batch_into(b->loss, m, b, x0, labels, weights, B, index0, step, seed, fc, global_batch);
  ops->to_host(b->loss_host, b->loss, sizeof(float) * (size_t)B);
  double sum = 0;
  for (int i = 0; i < B; i++) sum += b->loss_host[i];
  return sum;
}

void flow_time_grid(double *grid, int N, double shift) {
  for (int i = 0; i <= N; i++) {
    double s = 1.0 - (double)i / N;
    grid[i] = shift * s / (1.0 + (shift - 1.0) * s);
  }
  grid[N] = 0.0;
}

Sampler *sampler_create(Model *model, double cfg, int max_batch) {
  Sampler *s = callocCheck(1, sizeof *s);
  int D = model->cfg.dim, rows = cfg != 1.0 ? 2 * max_batch : max_batch;
  CHECK(rows <= model->max_batch, "sampler: %d rows exceed the model's batch %d", rows, model->max_batch);
  s->model = model, s->cfg = cfg, s->max_batch = max_batch;
  s->label_ints = model_label_ints(&model->cfg);
  s->null_class = model->cfg.text ? 0 : model->cfg.num_classes; /* text: every token padding */
  size_t rd = sizeof(float) * (size_t)rows * D, bd = sizeof(float) * (size_t)max_batch * D;
  s->xin = ops->alloc(rd), s->vout = ops->alloc(rd);
  s->tin = ops->alloc(sizeof(float) * (size_t)rows);
  s->lin = ops->alloc(sizeof(int) * (size_t)rows * s->label_ints);
  s->v1 = ops->alloc(bd), s->v2 = ops->alloc(bd), s->xp = ops->alloc(bd);
  s->h = ops->alloc(sizeof(float) * (size_t)max_batch);
  s->t_host = mallocCheck(sizeof(float) * (size_t)rows);
  s->h_host = mallocCheck(sizeof(float) * (size_t)max_batch);
  s->lin_host = mallocCheck(sizeof(int) * (size_t)rows * s->label_ints);
  return s;
}

void sampler_free(Sampler *s) {
  if (!s) return;
  float *dev[] = {s->xin, s->vout, s->tin, s->v1, s->v2, s->xp, s->h};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) ops->free(dev[i]);
  ops->free(s->lin);
  free(s->t_host), free(s->h_host), free(s->lin_host);
  free(s);
}

void sampler_velocity(Sampler *s, float *v, const float *x, double t, const int *labels, int B) {
  int D = s->model->cfg.dim, guided = s->cfg != 1.0, rows = guided ? 2 * B : B;
  size_t bd = sizeof(float) * (size_t)B * D;
  for (int i = 0; i < rows; i++) s->t_host[i] = (float)t;
  long n = (long)B * s->label_ints; /* B labels, or B captions of label_ints ids */
  for (long i = 0; i < n; i++) {
    s->lin_host[i] = labels[i];
    if (guided) s->lin_host[n + i] = s->null_class;
  }
  ops->to_device(s->tin, s->t_host, sizeof(float) * (size_t)rows);
  ops->to_device(s->lin, s->lin_host, sizeof(int) * (size_t)(guided ? 2 * n : n));
  ops->copy(s->xin, x, bd);
  if (guided) ops->copy(s->xin + (size_t)B * D, x, bd);
  s->model->forward(s->model, s->vout, s->xin, s->tin, s->lin, rows);
  if (!guided) {
    ops->copy(v, s->vout, bd);
    return;
  }
  /* v = v_u + w (v_c - v_u) = w v_c + (1 - w) v_u */
  ops->copy(v, s->vout, bd);
  ops->scale(v, (float)s->cfg, (long)B * D);
  ops->axpy(v, (float)(1.0 - s->cfg), s->vout + (size_t)B * D, (long)B * D);
}

static void set_step(Sampler *s, double h, int B) {
  for (int i = 0; i < B; i++) s->h_host[i] = (float)h;
  ops->to_device(s->h, s->h_host, sizeof(float) * (size_t)B);
}

static int evals(const Sampler *s) { return s->cfg != 1.0 ? 2 : 1; }

int sample_euler(Sampler *s, float *x, const int *labels, int B, const double *grid, int N) {
  int D = s->model->cfg.dim;
  for (int i = 0; i < N; i++) {
    sampler_velocity(s, s->v1, x, grid[i], labels, B);
    set_step(s, grid[i + 1] - grid[i], B);
    ops->euler_update(x, s->v1, s->h, B, D);
  }
  return N * evals(s);
}

int sample_heun(Sampler *s, float *x, const int *labels, int B, const double *grid, int N) {
  int D = s->model->cfg.dim, nfe = 0;
  size_t bd = sizeof(float) * (size_t)B * D;
  for (int i = 0; i < N; i++) {
    double h = grid[i + 1] - grid[i];
    sampler_velocity(s, s->v1, x, grid[i], labels, B);
    nfe++;
    if (grid[i + 1] <= 0.0) {
      set_step(s, h, B);
      ops->euler_update(x, s->v1, s->h, B, D);
      continue;
    }
    ops->copy(s->xp, x, bd);
    set_step(s, h, B);
    ops->euler_update(s->xp, s->v1, s->h, B, D);
    sampler_velocity(s, s->v2, s->xp, grid[i + 1], labels, B);
    nfe++;
    set_step(s, 0.5 * h, B);
    ops->euler_update(x, s->v1, s->h, B, D);
    ops->euler_update(x, s->v2, s->h, B, D);
  }
  return nfe * evals(s);
}
