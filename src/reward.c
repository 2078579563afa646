/* reward.c: the analytic toy reward and its input gradient, and the Reward dispatch. */
#include "reward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "captions.h"
#include "common.h"
#include "ops.h"

void reward_toy_init(ToyReward *r, const Mixture *mix, const char *pref_text, double bandwidth) {
  CHECK(bandwidth > 0, "reward.bandwidth %g must be positive", bandwidth);
  memset(r, 0, sizeof *r);
  r->mix = mix;
  r->bandwidth = bandwidth;
  for (int k = 0; k < mix->num_modes; k++) r->preference[k] = 1.0;
  if (!pref_text || !pref_text[0]) return;
  const char *p = pref_text;
  for (int k = 0; k < mix->num_modes; k++) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || !isfinite(v) || v <= 0)
      amd_usage_error("config key 'reward.preference' = '%s': entry %d is not a positive number", pref_text, k);
    r->preference[k] = v;
    p = end;
    if (k + 1 < mix->num_modes) {
      if (*p != ',')
        amd_usage_error("config key 'reward.preference' = '%s': needs %d comma-separated values, one per mode",
                        pref_text, mix->num_modes);
      p++;
    }
  }
  if (*p) amd_usage_error("config key 'reward.preference' = '%s': more than %d values (one per mode)", pref_text, mix->num_modes);
}

void reward_toy(const ToyReward *r, double *reward, float *grad, const float *x, const int *labels, int B) {
  const Mixture *m = r->mix;
  double s2 = (r->bandwidth * m->sigma) * (r->bandwidth * m->sigma);
  for (int i = 0; i < B; i++) {
    const float *xi = x + 2 * i;
    int c = labels[i];
    if (!isfinite(xi[0]) || !isfinite(xi[1])) { /* a diverged sample: the caller's guard reports it */
      reward[i] = NAN;
      if (grad) grad[2 * i] = grad[2 * i + 1] = NAN;
      continue;
    }
    double lmax = -INFINITY, logs[1024];
    for (int k = 0; k < m->num_modes; k++) {
      logs[k] = -INFINITY;
      if (m->mode_class[k] != c) continue;
      double dx = xi[0] - m->means[2 * k], dy = xi[1] - m->means[2 * k + 1];
      logs[k] = log(r->preference[k] * m->weights[k]) - (dx * dx + dy * dy) / (2 * s2) - log(2 * 3.141592653589793 * s2);
      if (logs[k] > lmax) lmax = logs[k];
    }
    CHECK(isfinite(lmax), "toy reward: class %d owns no mode", c);
    double z = 0, gx = 0, gy = 0;
    for (int k = 0; k < m->num_modes; k++) {
      if (logs[k] == -INFINITY) continue;
      double e = exp(logs[k] - lmax);
      z += e;
      gx += e * (m->means[2 * k] - xi[0]);
      gy += e * (m->means[2 * k + 1] - xi[1]);
    }
    reward[i] = lmax + log(z);
    if (grad) {
      grad[2 * i] = (float)(gx / z / s2);
      grad[2 * i + 1] = (float)(gy / z / s2);
    }
  }
}

void reward_init_toy(Reward *r, const Mixture *mix, const char *pref_text, double bandwidth) {
  memset(r, 0, sizeof *r);
  reward_toy_init(&r->toy, mix, pref_text, bandwidth);
  r->mix = mix;
}

void reward_init_classifier(Reward *r, const char *ckpt, int max_batch) {
  memset(r, 0, sizeof *r);
  r->cls = classifier_load(ckpt, max_batch, 0);
}

int reward_reads_host(const Reward *r) { return !r->cls; }

int reward_label_ints(const Reward *r) { return r->caption ? CAPTION_MAX_TOKENS : 1; }

void reward_eval(Reward *r, double *reward, float *grad, const float *x, const float *x_host, const int *labels, int B) {
  if (r->caption) {
    caption_reward_eval(r->caption, reward, grad, x, labels, B);
    return;
  }
  if (r->cls) {
    classifier_log_prob_backend(r->cls, reward, grad, x, labels, B);
    return;
  }
  long n = 2L * B; /* toy points are 2-D: grad is (B, 2) */
  if (grad && n > r->grad_n) {
    free(r->grad_h);
    r->grad_h = mallocCheck(sizeof(float) * (size_t)n);
    r->grad_n = n;
  }
  reward_toy(&r->toy, reward, grad ? r->grad_h : NULL, x_host, labels, B);
  if (grad) ops->to_device(grad, r->grad_h, sizeof(float) * (size_t)n);
}

void reward_free(Reward *r) {
  caption_reward_free(r->caption);
  classifier_free(r->cls);
  free(r->grad_h);
  r->cls = NULL, r->caption = NULL, r->grad_h = NULL, r->grad_n = 0;
}

Reward *reward_select(Reward *r, const Dataset *data, const char *data_path, const char *ckpt, const char *pref_text,
                      double bandwidth, int max_batch, const char *needed_by) {
  return reward_select_for(r, data, data_path, ckpt, pref_text, bandwidth, max_batch, 1, needed_by);
}

Reward *reward_select_for(Reward *r, const Dataset *data, const char *data_path, const char *ckpt, const char *pref_text,
                          double bandwidth, int max_batch, int label_ints, const char *needed_by) {
  if (data->has_mixture) {
    if (ckpt[0])
      amd_usage_error("config key 'reward.ckpt': '%s' is a toy dataset, whose reward is analytic; leave it empty", data_path);
    reward_init_toy(r, &data->mix, pref_text, bandwidth);
    return r;
  }
  CaptionSet caps;
  int captioned = captions_read(data_path, data->n, data->num_classes, &caps);
  if (captioned) {
    int tokens = caps.max_tokens;
    captions_free(&caps);
    if (!ckpt[0] && !needed_by) return NULL;
    if (!ckpt[0])
      amd_usage_error("method=%s on the captioned canvases '%s' needs a caption reward: reward.ckpt=<run of amd train "
                      "task=reward on their cells (amd data cells)>", needed_by, data_path);
    if (pref_text[0]) amd_usage_error("config key 'reward.preference' applies to toy data only");
    if (tokens != CAPTION_MAX_TOKENS)
      amd_usage_error("'%s': captions of %d tokens, not this amd's %d", data_path, tokens, CAPTION_MAX_TOKENS);
    if (data->ndim != 3 || data->shape[0] != 1 || data->shape[1] != data->shape[2])
      amd_usage_error("'%s': captioned canvases of %d x %d x %d; the caption reward reads square one-channel canvases",
                      data_path, data->shape[0], data->shape[1], data->shape[2]);
    reward_init_classifier(r, ckpt, CAPTION_CELLS * max_batch);
    char what[4300];
    snprintf(what, sizeof what, "config key 'reward.ckpt': '%s'", ckpt);
    r->caption = caption_reward_create(r->cls, data->shape[1], max_batch, what);
    if (label_ints != CAPTION_MAX_TOKENS) /* its labels would be read as token rows */
      amd_usage_error("the data '%s' are captioned canvases, whose reward (the caption reward of '%s') reads each "
                      "sample's caption, but this teacher's prompts are class labels: distill a caption teacher "
                      "(amd train model.text=1)", data_path, ckpt);
    return r;
  }
  if (ckpt[0]) {
    if (pref_text[0]) amd_usage_error("config key 'reward.preference' applies to toy data only");
    reward_init_classifier(r, ckpt, max_batch);
    if (r->cls->num_classes == CAPTION_OUTCOMES && data->num_classes != CAPTION_OUTCOMES)
      amd_usage_error("config key 'reward.ckpt': '%s' (%d classes of %d pixels) looks like a cell classifier of "
                      "captioned canvases, but the data '%s' (%d classes) has no captions: the caption reward needs "
                      "the canvases of amd data compose", ckpt, r->cls->num_classes, r->cls->dim, data_path,
                      data->num_classes);
    CHECK(r->cls->dim == data->dim && r->cls->num_classes == data->num_classes,
          "reward classifier '%s' (dim %d, %d classes) does not match the data '%s' and its teacher (dim %d, %d "
          "classes)", ckpt, r->cls->dim, r->cls->num_classes, data_path, data->dim, data->num_classes);
    return r;
  }
  if (needed_by)
    amd_usage_error("method=%s on '%s' (no toy mixture) needs a reward network: reward.ckpt=<run of amd train "
                    "task=reward>", needed_by, data_path);
  return NULL;
}
