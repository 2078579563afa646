/* cmd_eval.c: `amd eval`: the metrics of a samples file against a dataset (docs/DESIGN.md section 9),
 * printed as a table and stored in an HDF5 eval file (/eval/<metric>). Rank 0 computes.
 *   toy 2-D data  exact metrics from the mixture (src/metrics.h)
 *   images        Frechet distance and k-NN precision/recall in evaluator features against the
 *                 dataset given (the held-out test split), evaluator class accuracy (prompt
 *                 adherence), training-reward mean (with reward=), NFE and images per second
 *   captions      samples of a caption model (amd sample prompts=) against a captioned test split:
 *                 the GenEval-like score per category, overall, seen and held out, and FD and
 *                 precision/recall in the features of an evaluator cell classifier
 *                 (src/metrics_caption.h), the caption reward's mean (with reward=) */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "caption.h"
#include "captions.h"
#include "ckpt.h"
#include "classifier.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "eval_metrics.h"
#include "h5.h"
#include "metrics_caption.h"
#include "model_ckpt.h"
#include "ops.h"
#include "reward_caption.h"

typedef struct {
  char samples[CFG_STR_MAX], data[CFG_STR_MAX], out[CFG_STR_MAX], evaluator[CFG_STR_MAX], reward[CFG_STR_MAX];
  int projections, seed, max_ref, pr_k, pr_max, batch, threads;
} EvalConfig;

#define K(name, type, field, def, lo, hi, choices, help) {name, type, offsetof(EvalConfig, field), def, lo, hi, choices, help}
static const cfg_key eval_keys[] = {
    K("samples", CFG_PATH, samples, "", 0, 0, NULL, "samples file (amd sample); required"),
    K("data", CFG_PATH, data, "", 0, 0, NULL, "dataset to compare with; default: the one the samples name"),
    K("out", CFG_STR, out, "", 0, 0, NULL, "eval file to write; default: <samples>_eval.h5"),
    K("sw.projections", CFG_INT, projections, EVAL_STR(EVAL_SW_PROJECTIONS), 1, 100000, NULL, "directions of the sliced Wasserstein distance"),
    K("sw.max_ref", CFG_INT, max_ref, EVAL_STR(EVAL_SW_MAX_REF), 1, 100000000, NULL, "data points used as the reference set"),
    K("seed", CFG_INT, seed, "0", 0, 2147483647, NULL, "Philox seed of the projections"),
    K("evaluator", CFG_PATH, evaluator, "", 0, 0, NULL, "images: evaluator classifier checkpoint (amd train task=evaluator; caption samples: a cell classifier); required"),
    K("reward", CFG_PATH, reward, "", 0, 0, NULL, "images: reward classifier checkpoint (caption samples: a cell classifier), for the training-reward mean; optional"),
    K("pr.k", CFG_INT, pr_k, EVAL_STR(EVAL_PR_K), 1, 1000, NULL, "images: k of the k-NN precision and recall"),
    K("pr.max", CFG_INT, pr_max, "10000", 10, 100000000, NULL, "images: at most this many samples and reference images in precision/recall"),
    K("batch", CFG_INT, batch, EVAL_STR(EVAL_BATCH), 1, 1 << 20, NULL, "images: classifier batch"),
    K("threads", CFG_INT, threads, "0", 0, 1024, NULL, "OpenMP threads; 0 = node cores"),
    CFG_END};
#undef K

static void write_scalar(hid_t g, const char *name, double v) {
  hsize_t one = 1;
  h5_write_f64(g, name, &v, 1, &one);
}

typedef struct {
  const char *name;
  double v;
} Metric;

/* Image metrics into m[]; returns their count. s: samples, d: the reference (test) images. */
static int image_metrics_of(Metric *m, const EvalConfig *c, const Dataset *s, const Dataset *d) {
  if (!c->evaluator[0]) amd_usage_error("image metrics need evaluator=<run of amd train task=evaluator>");
  ImageReference *ref = image_reference_create(c->evaluator, "evaluator", c->batch, d, "the samples");
  ImageMetrics im;
  image_metrics(&im, ref, s->x, s->labels, s->n, c->pr_k, c->pr_max);
  int n = 0;
  m[n++] = (Metric){"fd", im.fd};
  m[n++] = (Metric){"precision", im.precision};
  m[n++] = (Metric){"recall", im.recall};
  m[n++] = (Metric){"accuracy", im.accuracy};
  m[n++] = (Metric){"accuracy_of_data", ref->accuracy};
  if (c->reward[0]) {
    Classifier *rw = classifier_load(c->reward, c->batch, MODEL_INFERENCE); /* no gradient: scores only */
    if (rw->dim != s->dim || rw->num_classes != s->num_classes)
      amd_usage_error("reward '%s' (dim %d, %d classes) does not match the samples (dim %d, %d classes)", c->reward,
                      rw->dim, rw->num_classes, s->dim, s->num_classes);
    double *r = mallocCheck(sizeof(double) * (size_t)s->n), sum = 0;
    classifier_log_prob(rw, r, NULL, s->x, s->labels, s->n);
    for (long i = 0; i < s->n; i++) sum += r[i];
    m[n++] = (Metric){"reward", sum / (double)s->n};
    free(r);
    classifier_free(rw);
  }
  m[n++] = (Metric){"samples", (double)s->n};
  m[n++] = (Metric){"reference", (double)d->n};
  image_reference_free(ref);
  return n;
}

/* The caption reward's mean over the canvases x (n) with their captions tokens (n, CAPTION_MAX_TOKENS). */
static double caption_reward_mean(const EvalConfig *c, const Dataset *s, const int *tokens) {
  Classifier *cls = classifier_load(c->reward, CAPTION_CELLS * c->batch, MODEL_INFERENCE);
  char what[CFG_STR_MAX + 32];
  snprintf(what, sizeof what, "reward '%s'", c->reward);
  CaptionReward *rw = caption_reward_create(cls, s->shape[1], c->batch, what);
  float *x = ops->alloc(sizeof(float) * (size_t)c->batch * s->dim);
  double *r = mallocCheck(sizeof(double) * (size_t)c->batch), sum = 0;
  for (long b = 0; b < s->n; b += c->batch) {
    int B = (int)(s->n - b < c->batch ? s->n - b : c->batch);
    ops->to_device(x, s->x + (size_t)b * s->dim, sizeof(float) * (size_t)B * s->dim);
    caption_reward_eval(rw, r, NULL, x, tokens + (size_t)b * CAPTION_MAX_TOKENS, B);
    for (int i = 0; i < B; i++) sum += r[i];
  }
  free(r);
  ops->free(x);
  caption_reward_free(rw);
  classifier_free(cls);
  return sum / (double)s->n;
}

/* Caption metrics into m[]; returns their count. s: the samples, tokens their captions; d: the
 * captioned reference (test) canvases, caps their captions. */
static int caption_metrics_of(Metric *m, const EvalConfig *c, const Dataset *s, const int *tokens, const Dataset *d,
                              const CaptionSet *caps) {
  if (!c->evaluator[0])
    amd_usage_error("caption samples need evaluator=<run of amd train task=evaluator on the cells of captioned canvases "
                    "(amd data cells)>");
  CaptionReference *ref = caption_reference_create(c->evaluator, "evaluator", c->batch, d, caps);
  CaptionMetrics cm;
  caption_metrics(&cm, ref, s->x, tokens, s->n, c->pr_k, c->pr_max);
  const CaptionScore *sc = &cm.score;
  static const char *const names[CAPTION_CATEGORIES] = {"geneval_single", "geneval_two", "geneval_counting",
                                                        "geneval_position"};
  int n = 0;
  m[n++] = (Metric){"geneval_overall", caption_share(sc->pass_all, sc->n_all)};
  for (int k = 0; k < CAPTION_CATEGORIES; k++) m[n++] = (Metric){names[k], caption_share(sc->pass[k], sc->n[k])};
  m[n++] = (Metric){"geneval_seen", caption_share(sc->pass_seen, sc->n_seen)};
  m[n++] = (Metric){"geneval_heldout", caption_share(sc->pass_held, sc->n_held)};
  m[n++] = (Metric){"heldout_samples", (double)sc->n_held};
  m[n++] = (Metric){"geneval_of_data", caption_share(ref->of_data.pass_all, ref->of_data.n_all)};
  m[n++] = (Metric){"fd", cm.fd};
  m[n++] = (Metric){"precision", cm.precision};
  m[n++] = (Metric){"recall", cm.recall};
  if (c->reward[0]) m[n++] = (Metric){"reward", caption_reward_mean(c, s, tokens)};
  m[n++] = (Metric){"samples", (double)s->n};
  m[n++] = (Metric){"reference", (double)d->n};
  caption_reference_free(ref);
  return n;
}

/* The captions of a samples file (/captions/tokens, (n, CAPTION_MAX_TOKENS)); NULL when it has none. */
static int *samples_tokens(const char *path, long n) {
  hid_t f = h5_open(path, "amd-samples", 0, NULL);
  int *tokens = NULL;
  if (h5_exists(f, "captions/tokens")) {
    hsize_t dims[2];
    hid_t g = h5_group_open(f, "captions");
    tokens = h5_read_i32(g, "tokens", 2, dims);
    H5Gclose(g);
    if ((long)dims[0] != n || dims[1] != CAPTION_MAX_TOKENS)
      amd_input_error("'%s': /captions/tokens is %llu x %llu, expected %ld x %d (a caption per sample)", path,
                      (unsigned long long)dims[0], (unsigned long long)dims[1], n, CAPTION_MAX_TOKENS);
  }
  h5_close(f);
  return tokens;
}

/* The toy table: the scalar metrics, then the per-mode target and mass. */
static void print_toy(const ToyMetrics *m, const Mixture *mix, const char *samples, const char *data, long long nfe,
                      double rate) {
  printf("eval of %s against %s\n", samples, data);
  printf("  %-22s %ld\n", "samples", m->n);
  printf("  %-22s %.4f (%d of %d modes)\n", "coverage", m->coverage, m->modes_covered, m->num_modes);
  printf("  %-22s %.4f\n", "off_manifold", m->off_manifold);
  printf("  %-22s %.4f\n", "mass_error (TV)", m->mass_error);
  printf("  %-22s %.4f\n", "wrong_class", m->wrong_class);
  printf("  %-22s %.5f\n", "sliced_w1", m->sliced_w1);
  printf("  %-22s %.4f\n", "log_density", m->log_density);
  printf("  %-22s %lld\n", "nfe", nfe);
  printf("  %-22s %.0f\n", "samples_per_s", rate);
  printf("  %-6s %-6s %-8s %-8s\n", "mode", "class", "target", "mass");
  for (int k = 0; k < m->num_modes; k++)
    printf("  %-6d %-6d %-8.4f %-8.4f\n", k, mix->mode_class[k], m->target_mass[k], m->mode_mass[k]);
}

/* The eval file: /eval/<name> per metric (and the per-mode arrays of toy data), written under
 * "<out>.tmp" and renamed, so a crash leaves no half file. */
static void write_eval(const char *out, const EvalConfig *c, const char *data_path, const Metric *m, int nm,
                       const ToyMetrics *toy) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  char *text = cfg_to_text(eval_keys, c);
  amd_mkdirs_parent(out);
  hid_t f = h5_create(tmp, "amd-eval", text);
  h5_attr_write_str(f, "samples", c->samples);
  h5_attr_write_str(f, "data", data_path);
  if (!toy) h5_attr_write_str(f, "evaluator", c->evaluator);
  hid_t g = h5_group_create(f, "eval");
  for (int i = 0; i < nm; i++) write_scalar(g, m[i].name, m[i].v);
  if (toy) {
    hsize_t n = (hsize_t)toy->num_modes;
    h5_write_f64(g, "mode_mass", toy->mode_mass, 1, &n);
    h5_write_f64(g, "target_mass", toy->target_mass, 1, &n);
  }
  H5Gclose(g);
  h5_close(f);
  if (rename(tmp, out) != 0) amd_fatal("cannot rename '%s' to '%s'", tmp, out);
  free(text);
}

int cmd_eval(int argc, char **argv) {
  EvalConfig c;
  cfg_parse_args(eval_keys, &c, argc, argv, "eval", "Metrics of a samples file against its dataset.");
  if (!c.samples[0]) amd_usage_error("config key 'samples' is required: a samples file (amd sample)");
  if (dist_rank() != 0) return 0;

  Dataset s, d;
  dataset_read(c.samples, "amd-samples", &s);
  hid_t sf = h5_open(c.samples, "amd-samples", 0, NULL);
  char *trained = h5_attr_exists(sf, "data") ? h5_attr_read_str(sf, "data") : strdup(""); /* the samples' model's */
  long long nfe = h5_attr_exists(sf, "nfe") ? h5_attr_read_i64(sf, "nfe") : 0;
  double rate = h5_attr_exists(sf, "samples_per_s") ? h5_attr_read_f64(sf, "samples_per_s") : 0;
  h5_close(sf);
  /* the dataset the samples name, checked by content (io/dataset.h), or data= */
  char *data_path = c.data[0] ? strdup(c.data)
                              : dataset_read_recorded(c.samples, "amd-samples", &d,
                                                      "pass data= to compare with another dataset on purpose");
  if (!data_path[0]) amd_usage_error("samples '%s' name no dataset: pass data=", c.samples);
  if (c.data[0]) dataset_read(data_path, "amd-dataset", &d);
  char what[4300];
  snprintf(what, sizeof what, "the samples '%s'", c.samples);
  /* a caption model's samples have their prompts for classes (amd sample), so only sizes must fit */
  int *tokens = samples_tokens(c.samples, s.n);
  dataset_check_fits(&d, c.data[0] ? "data" : "the samples' dataset", data_path, s.dim,
                     tokens ? d.num_classes : s.num_classes, what);
  dataset_check_same_target(&d, "data", data_path, trained, "the samples' model");
  free(trained);
  char out[4200];
  if (c.out[0]) {
    snprintf(out, sizeof out, "%s", c.out);
  } else {
    size_t n = strlen(c.samples);
    int h5 = n > 3 && strcmp(c.samples + n - 3, ".h5") == 0;
    snprintf(out, sizeof out, "%.*s_eval.h5", (int)(h5 ? n - 3 : n), c.samples);
  }
  h5_check_replaceable(out, "amd-eval", "out");
  Metric m[24];
  int nm;
  ToyMetrics toy;
  float *ref = NULL;
  CaptionSet caps;
  int captioned = s.ndim == 3 && captions_read(data_path, d.n, d.num_classes, &caps);
  if (tokens && !captioned)
    amd_usage_error("samples '%s' are a caption model's, but the data '%s' has no /captions: score them against a "
                    "captioned test split (amd data compose), data=<its out_test>", c.samples, data_path);
  if (!tokens && captioned && c.evaluator[0]) {
    char ev[4200];
    ModelConfig ec;
    ckpt_resolve(c.evaluator, ev, sizeof ev);
    if (ckpt_has_net(ev, "classifier")) {
      model_ckpt_config(ev, "classifier", &ec);
      if (ec.num_classes == CAPTION_OUTCOMES && ec.dim != s.dim)
        amd_usage_error("samples '%s' have no /captions, so the cell classifier '%s' has nothing to check them "
                        "against: draw them from a caption model with amd sample prompts=", c.samples, c.evaluator);
    }
  }
  if (tokens) {
    backend_init("auto", "fp32", c.threads);
    nm = caption_metrics_of(m, &c, &s, tokens, &d, &caps);
    m[nm++] = (Metric){"nfe", (double)nfe};
    m[nm++] = (Metric){"samples_per_s", rate};
    printf("eval of %s against %s (caption evaluator %s)\n", c.samples, data_path, c.evaluator);
    for (int i = 0; i < nm; i++) printf("  %-22s %.5g\n", m[i].name, m[i].v);
  } else if (s.ndim == 3) {
    backend_init("auto", "fp32", c.threads);
    nm = image_metrics_of(m, &c, &s, &d);
    m[nm++] = (Metric){"nfe", (double)nfe};
    m[nm++] = (Metric){"samples_per_s", rate};
    printf("eval of %s against %s (evaluator %s)\n", c.samples, data_path, c.evaluator);
    for (int i = 0; i < nm; i++) printf("  %-22s %.5g\n", m[i].name, m[i].v);
  } else {
    if (!d.has_mixture)
      amd_usage_error("dataset '%s' has no /mixture: toy metrics need a toy2d dataset", data_path);
    if (s.dim != 2) amd_usage_error("toy metrics need 2-D samples; '%s' holds vectors of %d", c.samples, s.dim);
    long nref = eval_toy_reference(&d, s.labels, s.n, c.max_ref, &ref);
    toy_metrics(&toy, &d.mix, s.x, s.labels, s.n, nref ? ref : NULL, nref, c.projections, (uint64_t)c.seed);
    print_toy(&toy, &d.mix, c.samples, data_path, nfe, rate);
    Metric t[] = {{"n", (double)toy.n}, {"coverage", toy.coverage}, {"modes_covered", toy.modes_covered},
                  {"off_manifold", toy.off_manifold}, {"mass_error", toy.mass_error}, {"wrong_class", toy.wrong_class},
                  {"sliced_w1", toy.sliced_w1}, {"log_density", toy.log_density}, {"nfe", (double)nfe},
                  {"samples_per_s", rate}};
    nm = (int)(sizeof t / sizeof t[0]);
    memcpy(m, t, sizeof t);
  }
  write_eval(out, &c, data_path, m, nm, s.ndim == 3 ? NULL : &toy);
  printf("wrote %s\n", out);
  if (captioned) captions_free(&caps);
  free(tokens);
  free(ref), free(data_path);
  dataset_free(&s);
  dataset_free(&d);
  return 0;
}
