/* sampling.c: samples of a trained network and their picture (sampling.h). */
#include "sampling.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "philox.h"
#include "png.h"

SampleDraw *sample_draw_create(Model *model, const char *sampler, int steps, double cfg, double shift, int per_call) {
  SampleDraw *d = callocCheck(1, sizeof *d);
  d->steps = steps, d->per_call = per_call, d->dim = model->cfg.dim, d->label_ints = model_label_ints(&model->cfg);
  d->heun = strcmp(sampler, "heun") == 0;
  if (strcmp(sampler, "generator") == 0) {
    d->gen = generator_create(model, steps, per_call);
  } else {
    d->ode = sampler_create(model, cfg, per_call);
    d->grid = mallocCheck(sizeof(double) * (size_t)(steps + 1));
    flow_time_grid(d->grid, steps, shift);
  }
  d->labels = ops->alloc(sizeof(int) * (size_t)per_call * d->label_ints);
  d->x = ops->alloc(sizeof(float) * (size_t)per_call * d->dim);
  return d;
}

void sample_draw_free(SampleDraw *d) {
  if (!d) return;
  ops->free(d->x);
  ops->free(d->labels);
  generator_free(d->gen);
  sampler_free(d->ode);
  free(d->grid);
  free(d);
}

int sample_draw(SampleDraw *d, float *x_host, const int *labels, long n, uint64_t seed, long index0) {
  int nfe = d->gen ? d->steps : 0, D = d->dim;
  long P = d->label_ints;
  for (long b = 0; b < n; b += d->per_call) {
    int B = (int)(n - b < d->per_call ? n - b : d->per_call);
    uint32_t index = (uint32_t)(index0 + b);
    if (d->gen) {
      ops->to_device(d->labels, labels + b * P, sizeof(int) * (size_t)(B * P));
      generator_run(d->gen, d->x, d->labels, B, d->steps, seed, 0, index);
    } else {
      ops->randn(d->x, B, D, seed, RNG_SAMPLE, 0, index);
      nfe = d->heun ? sample_heun(d->ode, d->x, labels + b * P, B, d->grid, d->steps)
                    : sample_euler(d->ode, d->x, labels + b * P, B, d->grid, d->steps);
    }
    ops->to_host(x_host + (size_t)b * D, d->x, sizeof(float) * (size_t)B * D);
  }
  return nfe;
}

/* a row per class present, the first `cols` samples of each, in class order */
static void write_grid(const char *path, const Dataset *d, int cols) {
  int K = d->num_classes, rows = 0;
  float *grid = mallocCheck(sizeof(float) * (size_t)K * cols * d->dim);
  for (int k = 0; k < K; k++) {
    int got = 0;
    for (long i = 0; i < d->n && got < cols; i++)
      if (d->labels[i] == k) memcpy(grid + ((size_t)rows * cols + got++) * d->dim, d->x + (size_t)i * d->dim, sizeof(float) * (size_t)d->dim);
    if (!got) continue;
    for (; got < cols; got++) /* a short row: blank (black) cells */
      for (int j = 0; j < d->dim; j++) grid[((size_t)rows * cols + got) * d->dim + j] = -1.0f;
    rows++;
  }
  CHECK(rows > 0, "png grid: no samples");
  png_image_grid(path, grid, rows * cols, d->shape[0], d->shape[1], d->shape[2], cols);
  free(grid);
}

void samples_png(const char *path, const Dataset *samples, int cols, const Mixture *mix, double range) {
  amd_mkdirs_parent(path);
  if (samples->ndim == 3) {
    write_grid(path, samples, cols);
    return;
  }
  CHECK(samples->dim == 2, "png= draws 2-D data or images; these samples are vectors of %d", samples->dim);
  png_scatter(path, samples->x, samples->labels, samples->n, samples->num_classes, mix ? mix->means : NULL,
              mix ? mix->num_modes : 0, (float)-range, (float)range, 640);
}
