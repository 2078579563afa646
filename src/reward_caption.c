/* reward_caption.c: the caption reward: S(c) by enumeration, log P and its logit gradient, and the
 * canvas <-> cells plumbing around the cell classifier. */
#include "reward_caption.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"

/* Every caption the grammar can say has a distinct key below CAPTION_KEYS. */
#define CAPTION_KEYS (CAPTION_CATEGORIES * CAPTION_CLASSES * (CAPTION_CLASSES + 1) * (CAPTION_MAX_ITEMS + 1) * (CAPTION_RELATIONS + 1))

static int caption_key(const Caption *c) {
  int k = c->category;
  k = k * CAPTION_CLASSES + c->a;
  k = k * (CAPTION_CLASSES + 1) + c->b + 1;
  k = k * (CAPTION_MAX_ITEMS + 1) + c->count;
  return k * (CAPTION_RELATIONS + 1) + c->relation + 1;
}

void caption_assignments(const Caption *c, CaptionAssignments *s) {
  int total = 1;
  for (int j = 0; j < CAPTION_CELLS; j++) total *= CAPTION_OUTCOMES;
  s->n = 0;
  s->a = NULL;
  int cap = 0;
  for (int code = 0; code < total; code++) {
    int outcome[CAPTION_CELLS], cls[CAPTION_CELLS], cell[CAPTION_CELLS];
    for (int j = 0, r = code; j < CAPTION_CELLS; j++, r /= CAPTION_OUTCOMES) outcome[j] = r % CAPTION_OUTCOMES;
    int n = caption_items_of_cells(outcome, cls, cell);
    if (!caption_holds(c, cls, cell, n)) continue;
    if (s->n == cap) {
      cap = cap ? 2 * cap : 16;
      s->a = realloc(s->a, sizeof *s->a * (size_t)cap);
      CHECK(s->a, "out of memory");
    }
    for (int j = 0; j < CAPTION_CELLS; j++) s->a[s->n][j] = (unsigned char)outcome[j];
    s->n++;
  }
}

void caption_assignments_free(CaptionAssignments *s) {
  free(s->a);
  s->a = NULL, s->n = 0;
}

double caption_log_prob(const float *logits, const CaptionAssignments *s, float *dlogits) {
  enum { K = CAPTION_OUTCOMES, J = CAPTION_CELLS };
  double logp[J][K];
  for (int j = 0; j < J; j++) { /* log softmax of each cell */
    const float *z = logits + j * K;
    double mx = -INFINITY, sum = 0;
    for (int k = 0; k < K; k++) mx = fmax(mx, z[k]);
    for (int k = 0; k < K; k++) sum += exp(z[k] - mx);
    for (int k = 0; k < K; k++) logp[j][k] = z[k] - mx - log(sum);
  }
  double *l = mallocCheck(sizeof(double) * (size_t)(s->n ? s->n : 1)), lmax = -INFINITY;
  for (int i = 0; i < s->n; i++) {
    l[i] = 0;
    for (int j = 0; j < J; j++) l[i] += logp[j][s->a[i][j]];
    lmax = fmax(lmax, l[i]);
  }
  double sum = 0;
  for (int i = 0; i < s->n; i++) sum += exp(l[i] - lmax);
  double R = s->n && isfinite(lmax) ? lmax + log(sum) : (isnan(lmax) ? NAN : -INFINITY);
  if (dlogits) {
    double q[J][K] = {{0}}; /* the posterior of each cell's outcome given that the canvas holds c */
    if (isfinite(R))
      for (int i = 0; i < s->n; i++) {
        double w = exp(l[i] - R);
        for (int j = 0; j < J; j++) q[j][s->a[i][j]] += w;
      }
    for (int j = 0; j < J; j++)
      for (int k = 0; k < K; k++) dlogits[j * K + k] = isfinite(R) ? (float)(q[j][k] - exp(logp[j][k])) : NAN; /* the caller's guard reports it */
  }
  free(l);
  return R;
}

CaptionReward *caption_reward_create(Classifier *cls, int side, int max_batch, const char *what) {
  int cell = side / CAPTION_GRID;
  if (side % CAPTION_GRID || cls->num_classes != CAPTION_OUTCOMES || cls->dim != cell * cell)
    amd_usage_error("%s (%d classes of %d pixels) is not a cell classifier of these %d x %d canvases: the caption "
                    "reward needs %d classes (the %d item classes and 'empty') of one %d x %d cell; cut the "
                    "captioned data with amd data cells and train on that", what, cls->num_classes, cls->dim, side,
                    side, CAPTION_OUTCOMES, CAPTION_CLASSES, cell, cell);
  CHECK(cls->max_batch >= CAPTION_CELLS * max_batch, "caption reward: the classifier's batch %d is below %d cells of %d canvases",
        cls->max_batch, CAPTION_CELLS * max_batch, max_batch);
  CaptionReward *r = callocCheck(1, sizeof *r);
  r->cls = cls, r->max_batch = max_batch, r->side = side, r->cell = cell;
  size_t n = (size_t)CAPTION_CELLS * (size_t)max_batch;
  r->cells = ops->alloc(sizeof(float) * n * (size_t)(cell * cell));
  r->dcells = ops->alloc(sizeof(float) * n * (size_t)(cell * cell));
  r->dlogits_h = mallocCheck(sizeof(float) * n * CAPTION_OUTCOMES);
  r->cache = callocCheck(CAPTION_KEYS, sizeof *r->cache);
  r->of_sample = callocCheck((size_t)max_batch, sizeof *r->of_sample);
  return r;
}

/* S(c) of the caption with these tokens, from the cache */
static const CaptionAssignments *assignments_of(CaptionReward *r, const int *tokens, int i) {
  Caption c;
  char err[256];
  if (caption_parse(tokens, &c, err, sizeof err) != 0) amd_fatal("caption reward: the caption of sample %d: %s", i, err);
  int key = caption_key(&c);
  if (!r->cache[key]) {
    r->cache[key] = callocCheck(1, sizeof(CaptionAssignments));
    caption_assignments(&c, r->cache[key]);
    CHECK(r->cache[key]->n > 0, "caption reward: no layout of %d cells holds the caption of sample %d", CAPTION_CELLS, i);
  }
  return r->cache[key];
}

void caption_reward_eval(CaptionReward *r, double *reward, float *grad, const float *x, const int *tokens, int B) {
  CHECK(B <= r->max_batch, "caption reward: batch %d exceeds its buffers (%d)", B, r->max_batch);
  enum { K = CAPTION_OUTCOMES, J = CAPTION_CELLS };
  /* the captions first: one that does not parse stops the program before any work */
  for (int i = 0; i < B; i++) r->of_sample[i] = assignments_of(r, tokens + (size_t)i * CAPTION_MAX_TOKENS, i);
  /* the cells as a batch of J B images: patchify's tokens are the cells in row-major order */
  ops->patchify(r->cells, x, B, 1, r->side, r->side, r->cell);
  const float *logits = classifier_logits_backend(r->cls, r->cells, J * B);
  for (int i = 0; i < B; i++)
    reward[i] = caption_log_prob(logits + (size_t)i * J * K, r->of_sample[i], grad ? r->dlogits_h + (size_t)i * J * K : NULL);
  if (!grad) return;
  classifier_input_grad_backend(r->cls, r->dcells, r->dlogits_h, J * B);
  ops->unpatchify(grad, r->dcells, B, 1, r->side, r->side, r->cell); /* the adjoint: each cell's gradient in place */
}

void caption_reward_free(CaptionReward *r) {
  if (!r) return;
  for (int k = 0; k < CAPTION_KEYS; k++)
    if (r->cache[k]) caption_assignments_free(r->cache[k]), free(r->cache[k]);
  free(r->cache), free(r->of_sample), free(r->dlogits_h);
  ops->free(r->cells), ops->free(r->dcells);
  free(r);
}
