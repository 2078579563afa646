/* snapshot.c: pictures of a network while it trains (snapshot.h). */
#include "snapshot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "sampling.h"

enum { GRID_CLASSES = 10, GRID_COLS = 8, SCATTER_POINTS = 2048 };

struct Snapshot {
  SampleDraw *draw;
  const Dataset *data;
  char run[4096];
  uint64_t seed;
  Dataset samples; /* x and labels: the fixed labels, the samples of the last picture */
  int *captions;   /* a caption model: (samples.n, label_ints) the token ids each sample reads; else NULL */
  double range;    /* scatter plot: [-range, range]^2 */
};

void snapshot_check(const Dataset *data, const char *key) {
  if (data->ndim != 3 && data->dim != 2)
    amd_usage_error("config key '%s': pictures need images or 2-D data; this data is vectors of %d", key, data->dim);
}

Snapshot *snapshot_create(Model *model, const char *sampler, int steps, const Dataset *data, const char *run,
                          uint64_t seed, const char *key) {
  snapshot_check(data, key);
  if (dist_rank() != 0) return NULL;
  Snapshot *s = callocCheck(1, sizeof *s);
  Dataset *o = &s->samples;
  *o = (Dataset){.ndim = data->ndim, .dim = data->dim, .num_classes = data->num_classes};
  for (int i = 0; i < 3; i++) o->shape[i] = data->shape[i];
  int classes = amd_min_i(data->num_classes, GRID_CLASSES);
  o->n = data->ndim == 3 ? (long)classes * GRID_COLS : SCATTER_POINTS;
  o->x = mallocCheck(sizeof(float) * (size_t)o->n * o->dim);
  o->labels = mallocCheck(sizeof(int) * (size_t)o->n);
  for (long i = 0; i < o->n; i++) o->labels[i] = data->ndim == 3 ? (int)(i / GRID_COLS) : (int)(i % data->num_classes);
  if (data->has_mixture) { /* the modes and 10 sigma around them: 1.2, amd sample's, for the default toy */
    for (int i = 0; i < data->mix.num_modes * data->mix.dim; i++) s->range = fmax(s->range, fabs((double)data->mix.means[i]));
    s->range += 10 * data->mix.sigma;
  } else {
    for (long i = 0; i < data->n * data->dim; i++) s->range = fmax(s->range, fabs((double)data->x[i]));
    s->range = s->range > 0 ? 1.1 * s->range : 1.0;
  }
  s->data = data, s->seed = seed ^ (SNAPSHOT_KEY << 32);
  snprintf(s->run, sizeof s->run, "%s", run);
  s->draw = sample_draw_create(model, sampler, steps, 1.0, 1.0, amd_min_i(model->max_batch, (int)o->n));
  return s;
}

void snapshot_use_captions(Snapshot *s, const int *tokens, char *const *text, long n, int len) {
  if (!s || s->data->ndim != 3) return;
  long row[GRID_CLASSES];
  int rows = 0;
  for (long i = 0; i < n && rows < GRID_CLASSES; i++) {
    int seen = 0;
    for (int r = 0; r < rows && !seen; r++)
      seen = memcmp(tokens + (size_t)row[r] * len, tokens + (size_t)i * len, sizeof(int) * (size_t)len) == 0;
    if (!seen) row[rows++] = i;
  }
  CHECK(rows > 0, "snapshot: no captions to picture");
  s->samples.n = (long)rows * GRID_COLS;
  s->captions = mallocCheck(sizeof(int) * (size_t)s->samples.n * len);
  for (long i = 0; i < s->samples.n; i++) {
    s->samples.labels[i] = (int)(i / GRID_COLS);
    memcpy(s->captions + (size_t)i * len, tokens + (size_t)row[i / GRID_COLS] * len, sizeof(int) * (size_t)len);
  }
  amd_log("sample pictures: a row per caption, 8 samples each:");
  for (int r = 0; r < rows; r++) amd_log("%s '%s'", r ? "," : "", text[row[r]]);
  amd_log("\n");
}

void snapshot_take(Snapshot *s, long step) {
  if (!s) return;
  sample_draw(s->draw, s->samples.x, s->captions ? s->captions : s->samples.labels, s->samples.n, s->seed, 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/samples_%08ld.png", s->run, step);
  samples_png(path, &s->samples, GRID_COLS, s->data->has_mixture ? &s->data->mix : NULL, s->range);
  amd_log("samples %s\n", path);
}

void snapshot_free(Snapshot *s) {
  if (!s) return;
  sample_draw_free(s->draw);
  free(s->samples.x), free(s->samples.labels), free(s->captions);
  free(s);
}
