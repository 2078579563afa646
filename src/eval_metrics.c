/* eval_metrics.c: the metrics of `amd eval` over samples in memory (eval_metrics.h). */
#include "eval_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics_img.h"

long eval_toy_reference(const Dataset *data, const int *labels, long n, long max_ref, float **ref) {
  int *present = callocCheck((size_t)data->num_classes + 1, sizeof(int));
  for (long i = 0; i < n; i++)
    if (labels[i] >= 0 && labels[i] < data->num_classes) present[labels[i]] = 1;
  float *r = mallocCheck(sizeof(float) * 2 * (size_t)(data->n ? data->n : 1));
  long nref = 0;
  for (long i = 0; i < data->n && nref < max_ref; i++)
    if (present[data->labels[i]]) memcpy(r + 2 * nref++, data->x + 2 * i, 2 * sizeof(float));
  free(present);
  if (!nref) free(r), r = NULL;
  *ref = r;
  return nref;
}

ImageReference *image_reference_create(const char *evaluator, const char *key, int batch, const Dataset *ref,
                                       const char *what) {
  CHECK(ref->n >= 2, "image metrics: %ld reference images, at least 2", ref->n);
  Classifier *ev = classifier_load(evaluator, batch, MODEL_INFERENCE);
  if (ev->dim != ref->dim || ev->num_classes != ref->num_classes)
    amd_usage_error("%s '%s' (dim %d, %d classes) does not match %s (dim %d, %d classes)", key, evaluator, ev->dim,
                    ev->num_classes, what, ref->dim, ref->num_classes);
  ImageReference *r = callocCheck(1, sizeof *r);
  int F = ev->feat_dim, K = ev->num_classes;
  r->ev = ev, r->feat_dim = F, r->num_classes = K, r->n = ref->n;
  r->feat = mallocCheck(sizeof(float) * (size_t)ref->n * F);
  r->mu = mallocCheck(sizeof(double) * (size_t)F), r->cov = mallocCheck(sizeof(double) * (size_t)F * F);
  float *logits = mallocCheck(sizeof(float) * (size_t)ref->n * K);
  classifier_run(ev, logits, r->feat, ref->x, ref->n);
  feature_stats(r->feat, ref->n, F, r->mu, r->cov);
  long right = 0;
  for (long i = 0; i < ref->n; i++) right += argmax_row(logits + (size_t)i * K, K) == ref->labels[i];
  r->accuracy = (double)right / (double)ref->n;
  free(logits);
  return r;
}

void image_reference_free(ImageReference *r) {
  if (!r) return;
  classifier_free(r->ev);
  free(r->feat), free(r->mu), free(r->cov);
  free(r);
}

void image_metrics(ImageMetrics *m, const ImageReference *r, const float *x, const int *labels, long n, int pr_k,
                   long pr_max) {
  CHECK(n >= 2, "image metrics: %ld samples, at least 2", n);
  int F = r->feat_dim, K = r->num_classes;
  float *feat = mallocCheck(sizeof(float) * (size_t)n * F), *logits = mallocCheck(sizeof(float) * (size_t)n * K);
  classifier_run(r->ev, logits, feat, x, n);
  feature_metrics(feat, n, r->feat, r->n, r->mu, r->cov, F, pr_k, pr_max, &m->fd, &m->precision, &m->recall);
  long right = 0;
  for (long i = 0; i < n; i++) right += argmax_row(logits + (size_t)i * K, K) == labels[i];
  m->accuracy = (double)right / (double)n;
  free(feat), free(logits);
}
