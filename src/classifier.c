/* classifier.c: loading and running the reward and evaluator classifiers. */
#include "classifier.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "dist.h"
#include "model_ckpt.h"
#include "ops.h"

Classifier *classifier_wrap(Model *m) {
  CHECK(m->kind->classifier, "a '%s' model is not a classifier", m->cfg.kind);
  Classifier *c = callocCheck(1, sizeof *c);
  c->m = m;
  c->max_batch = m->max_batch, c->num_classes = m->cfg.num_classes, c->dim = m->cfg.dim, c->feat_dim = m->feat_dim;
  size_t f = sizeof(float), B = (size_t)c->max_batch, K = (size_t)c->num_classes, D = (size_t)c->dim;
  c->x = ops->alloc(f * B * D), c->dx = ops->alloc(f * B * D);
  c->logits = ops->alloc(f * B * K), c->dlogits = ops->alloc(f * B * K);
  c->logits_h = mallocCheck(f * B * K), c->dlogits_h = mallocCheck(f * B * K);
  return c;
}

Classifier *classifier_load(const char *ckpt, int max_batch, int flags) {
  char path[4200];
  ckpt_resolve(ckpt, path, sizeof path);
  if (!ckpt_has_net(path, "classifier"))
    amd_usage_error("'%s' holds no classifier: train one with amd train task=reward (or task=evaluator)", path);
  ModelConfig mc;
  model_ckpt_config(path, "classifier", &mc);
  Model *m = model_create_flags(&mc, max_batch, flags);
  model_ckpt_load_params(path, "classifier", m);
  return classifier_wrap(m);
}

void classifier_free(Classifier *c) {
  if (!c) return;
  float *dev[] = {c->x, c->dx, c->logits, c->dlogits};
  for (int i = 0; i < 4; i++) ops->free(dev[i]);
  free(c->logits_h), free(c->dlogits_h);
  model_free(c->m); /* the classifier owns its model, also a wrapped one */
  free(c);
}

void classifier_run(Classifier *c, float *logits, float *feat, const float *x, long n) {
  int K = c->num_classes, D = c->dim, F = c->feat_dim;
  for (long b = 0; b < n; b += c->max_batch) {
    int B = (int)(n - b < c->max_batch ? n - b : c->max_batch);
    ops->to_device(c->x, x + (size_t)b * D, sizeof(float) * (size_t)B * D);
    c->m->forward(c->m, c->logits, c->x, NULL, NULL, B);
    ops->to_host(logits + (size_t)b * K, c->logits, sizeof(float) * (size_t)B * K);
    if (feat) ops->to_host(feat + (size_t)b * F, c->m->features(c->m), sizeof(float) * (size_t)B * F);
  }
}

double cross_entropy_row(const float *z, int K, int label, float *dz, float scale) {
  double mx = -INFINITY, s = 0;
  for (int k = 0; k < K; k++) mx = fmax(mx, z[k]);
  for (int k = 0; k < K; k++) s += exp(z[k] - mx);
  double lse = mx + log(s);
  if (dz)
    for (int k = 0; k < K; k++) dz[k] = scale * (float)(exp(z[k] - lse) - (k == label));
  return lse - z[label];
}

int argmax_row(const float *z, int K) {
  int best = 0;
  for (int k = 1; k < K; k++)
    if (z[k] > z[best]) best = k;
  return best;
}

const float *classifier_logits_backend(Classifier *c, const float *x, int B) {
  CHECK(B <= c->max_batch, "classifier: batch %d exceeds its buffers (%d)", B, c->max_batch);
  c->m->forward(c->m, c->logits, x, NULL, NULL, B);
  ops->to_host(c->logits_h, c->logits, sizeof(float) * (size_t)B * c->num_classes);
  return c->logits_h;
}

void classifier_input_grad_backend(Classifier *c, float *grad, const float *dlogits, int B) {
  CHECK(B <= c->max_batch, "classifier: batch %d exceeds its buffers (%d)", B, c->max_batch);
  ops->to_device(c->dlogits, dlogits, sizeof(float) * (size_t)B * c->num_classes);
  ops->fill(grad, 0.0f, (long)B * c->dim);
  c->m->frozen = 1; /* only the input gradient */
  c->m->backward(c->m, grad, c->dlogits, NULL, B);
  c->m->frozen = 0;
}

void classifier_log_prob_backend(Classifier *c, double *logp, float *grad, const float *x, const int *labels, int B) {
  int K = c->num_classes;
  const float *logits = classifier_logits_backend(c, x, B);
  for (int i = 0; i < B; i++) {
    int y = labels[i];
    CHECK(y >= 0 && y < K, "classifier: label %d out of range [0, %d)", y, K);
    /* log p = -CE; d log p / dz = onehot - softmax = -(softmax - onehot) */
    logp[i] = -cross_entropy_row(logits + (size_t)i * K, K, y, grad ? c->dlogits_h + (size_t)i * K : NULL, -1.0f);
  }
  if (grad) classifier_input_grad_backend(c, grad, c->dlogits_h, B);
}

void classifier_log_prob(Classifier *c, double *logp, float *grad, const float *x, const int *labels, long n) {
  int D = c->dim;
  for (long b = 0; b < n; b += c->max_batch) {
    int B = (int)(n - b < c->max_batch ? n - b : c->max_batch);
    ops->to_device(c->x, x + (size_t)b * D, sizeof(float) * (size_t)B * D);
    classifier_log_prob_backend(c, logp + b, grad ? c->dx : NULL, c->x, labels + b, B);
    if (grad) ops->to_host(grad + (size_t)b * D, c->dx, sizeof(float) * (size_t)B * D);
  }
}

double classifier_train_batch(Classifier *c, const float *x, const int *labels, int B, long global_batch, int *correct) {
  int K = c->num_classes;
  Model *m = c->m;
  m->forward(m, c->logits, x, NULL, NULL, B);
  ops->to_host(c->logits_h, c->logits, sizeof(float) * (size_t)B * K);
  double loss = 0;
  int right = 0;
  for (int i = 0; i < B; i++) {
    const float *z = c->logits_h + (size_t)i * K;
    loss += cross_entropy_row(z, K, labels[i], c->dlogits_h + (size_t)i * K, 1.0f / (float)global_batch);
    right += argmax_row(z, K) == labels[i];
  }
  ops->to_device(c->dlogits, c->dlogits_h, sizeof(float) * (size_t)B * K);
  m->backward(m, NULL, c->dlogits, NULL, B);
  if (correct) *correct = right;
  return loss;
}

long classifier_count_correct(Classifier *c, const float *x, const int *labels, long n) {
  int K = c->num_classes;
  long right = 0;
  float *logits = mallocCheck(sizeof(float) * (size_t)c->max_batch * K);
  for (long b = 0; b < n; b += c->max_batch) {
    long B = n - b < c->max_batch ? n - b : c->max_batch;
    classifier_run(c, logits, NULL, x + (size_t)b * c->dim, B);
    for (long i = 0; i < B; i++) right += argmax_row(logits + (size_t)i * K, K) == labels[b + i];
  }
  free(logits);
  return right;
}

double classifier_test_accuracy(Classifier *c, const Dataset *test) {
  long i0, i1;
  dist_split(test->n, &i0, &i1);
  double right = (double)classifier_count_correct(c, test->x + (size_t)i0 * test->dim, test->labels + i0, i1 - i0);
  return dist_allreduce_sum_f64(right) / (double)test->n;
}
