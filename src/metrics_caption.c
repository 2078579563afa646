/* metrics_caption.c: the GenEval-like score and the canvas metrics in cell features
 * (metrics_caption.h). */
#include "metrics_caption.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics_img.h"

void canvas_cells(float *cells, const float *x, long n, int side) {
  int cs = side / CAPTION_GRID;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++)
    for (int j = 0; j < CAPTION_CELLS; j++) {
      float *out = cells + ((size_t)i * CAPTION_CELLS + (size_t)j) * (size_t)(cs * cs);
      const float *in = x + (size_t)i * (size_t)(side * side) + (size_t)((j / CAPTION_GRID) * cs * side + (j % CAPTION_GRID) * cs);
      for (int r = 0; r < cs; r++) memcpy(out + r * cs, in + (size_t)r * side, sizeof(float) * (size_t)cs);
    }
}

int caption_cells_hold(const float *logits, const Caption *c) {
  int outcome[CAPTION_CELLS], cls[CAPTION_CELLS], cell[CAPTION_CELLS];
  for (int j = 0; j < CAPTION_CELLS; j++) outcome[j] = argmax_row(logits + j * CAPTION_OUTCOMES, CAPTION_OUTCOMES);
  int n = caption_items_of_cells(outcome, cls, cell);
  return caption_holds(c, cls, cell, n);
}

int caption_held_pairs(const char *text, unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES], char *err, size_t size) {
  memset(held, 0, sizeof(unsigned char) * CAPTION_CLASSES * CAPTION_CLASSES);
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", text);
  for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *plus = strchr(item, '+');
    int a = -1, b = -1;
    if (plus) *plus = '\0', a = caption_class_find(item), b = caption_class_find(plus + 1);
    if (a < 0 || b < 0 || a == b) {
      snprintf(err, size, "held-out pair '%s%s%s' is not two distinct singular nouns noun+noun", item, plus ? "+" : "",
               plus ? plus + 1 : "");
      return -1;
    }
    held[a][b] = held[b][a] = 1;
  }
  return 0;
}

int caption_is_held_out(const Caption *c, const unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES]) {
  return (c->category == CAPTION_TWO || c->category == CAPTION_POSITION) && held[c->a][c->b];
}

void caption_score_add(CaptionScore *s, const Caption *c, int held_out, int pass) {
  s->n[c->category]++, s->pass[c->category] += pass;
  s->n_all++, s->pass_all += pass;
  if (held_out) s->n_held++, s->pass_held += pass;
  else s->n_seen++, s->pass_seen += pass;
}

double caption_share(long pass, long n) { return n ? (double)pass / (double)n : NAN; }

/* logits (CAPTION_CELLS n, K) and canvas features (n, CAPTION_CELLS F) of n canvases; a canvas's
 * features are its cells' rows of the evaluator's features, which canvas_cells keeps adjacent. */
static void run_cells(Classifier *ev, int side, const float *x, long n, float *logits, float *feat) {
  long cells_n = (long)CAPTION_CELLS * n;
  float *cells = mallocCheck(sizeof(float) * (size_t)cells_n * (size_t)ev->dim);
  canvas_cells(cells, x, n, side);
  classifier_run(ev, logits, feat, cells, cells_n);
  free(cells);
}

/* parse the captions of n canvases and score them by their cells' logits into s */
static void score_canvases(CaptionScore *s, const unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES],
                           const float *logits, const int *tokens, long n, const char *what) {
  memset(s, 0, sizeof *s);
  for (long i = 0; i < n; i++) {
    Caption c;
    char err[256];
    if (caption_parse(tokens + (size_t)i * CAPTION_MAX_TOKENS, &c, err, sizeof err) != 0)
      amd_input_error("%s: the caption of canvas %ld: %s", what, i, err);
    int pass = caption_cells_hold(logits + (size_t)i * CAPTION_CELLS * CAPTION_OUTCOMES, &c);
    caption_score_add(s, &c, caption_is_held_out(&c, held), pass);
  }
}

CaptionReference *caption_reference_create(const char *evaluator, const char *key, int batch, const Dataset *ref,
                                           const CaptionSet *caps) {
  CHECK(ref->n >= 2, "caption metrics: %ld reference canvases, at least 2", ref->n);
  if (ref->ndim != 3 || ref->shape[0] != 1 || ref->shape[1] != ref->shape[2] || ref->shape[1] % CAPTION_GRID)
    amd_usage_error("caption metrics: reference canvases of %d x %d x %d; expected one channel of %d x %d cells",
                    ref->shape[0], ref->shape[1], ref->shape[2], CAPTION_GRID, CAPTION_GRID);
  if (caps->max_tokens != CAPTION_MAX_TOKENS)
    amd_usage_error("caption metrics: reference captions of %d tokens, not this amd's %d", caps->max_tokens, CAPTION_MAX_TOKENS);
  int side = ref->shape[1], cs = side / CAPTION_GRID;
  Classifier *ev = classifier_load(evaluator, CAPTION_CELLS * batch, MODEL_INFERENCE);
  if (ev->num_classes != CAPTION_OUTCOMES || ev->dim != cs * cs)
    amd_usage_error("%s '%s' (%d classes of %d pixels) is not a cell classifier of these %d x %d canvases: the "
                    "GenEval-like score needs %d classes (the %d item classes and 'empty') of one %d x %d cell; cut "
                    "the captioned data with amd data cells and train task=evaluator on that", key, evaluator,
                    ev->num_classes, ev->dim, side, side, CAPTION_OUTCOMES, CAPTION_CLASSES, cs, cs);
  CaptionReference *r = callocCheck(1, sizeof *r);
  char err[512];
  if (caption_held_pairs(caps->held_out_pairs, r->held, err, sizeof err) != 0)
    amd_input_error("caption metrics: the reference's /captions attribute held_out_pairs: %s", err);
  int F = CAPTION_CELLS * ev->feat_dim;
  r->ev = ev, r->side = side, r->feat_dim = F, r->n = ref->n;
  r->feat = mallocCheck(sizeof(float) * (size_t)ref->n * F);
  r->mu = mallocCheck(sizeof(double) * (size_t)F), r->cov = mallocCheck(sizeof(double) * (size_t)F * F);
  float *logits = mallocCheck(sizeof(float) * (size_t)ref->n * CAPTION_CELLS * CAPTION_OUTCOMES);
  run_cells(ev, side, ref->x, ref->n, logits, r->feat);
  feature_stats(r->feat, ref->n, F, r->mu, r->cov);
  score_canvases(&r->of_data, r->held, logits, caps->tokens, ref->n, "the reference");
  free(logits);
  return r;
}

void caption_reference_free(CaptionReference *r) {
  if (!r) return;
  classifier_free(r->ev);
  free(r->feat), free(r->mu), free(r->cov);
  free(r);
}

void caption_metrics(CaptionMetrics *m, const CaptionReference *r, const float *x, const int *tokens, long n, int pr_k,
                     long pr_max) {
  CHECK(n >= 2, "caption metrics: %ld canvases, at least 2", n);
  int F = r->feat_dim;
  float *feat = mallocCheck(sizeof(float) * (size_t)n * F);
  float *logits = mallocCheck(sizeof(float) * (size_t)n * CAPTION_CELLS * CAPTION_OUTCOMES);
  run_cells(r->ev, r->side, x, n, logits, feat);
  score_canvases(&m->score, r->held, logits, tokens, n, "the samples");
  feature_metrics(feat, n, r->feat, r->n, r->mu, r->cov, F, pr_k, pr_max, &m->fd, &m->precision, &m->recall);
  free(feat), free(logits);
}
