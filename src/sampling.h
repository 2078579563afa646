/* sampling.h: samples of a trained network and their picture, shared by `amd sample` and the
 * pictures a run takes while it trains (sample.every, src/snapshot.h). A SampleDraw integrates a
 * velocity network's ODE (Euler or Heun on the shifted grid of flow.h, with classifier-free
 * guidance) or runs a student's own few-step generator (generator.h), over batches of at most
 * per_call samples with its own device buffers (the model's parameters are only read).
 * Draws: the ODE's starting noise is keyed (seed, RNG_SAMPLE, 0, global sample index), the
 * generator's as generator.h says with key 0, so a sample depends on neither the batch nor the rank.
 * Not here: which samples (labels, count, seed) or where they go (the callers).
 * Return convention: errors stop the program (amd_fatal); functions return void or their result. */
#pragma once
#include <stdint.h>

#include "dataset.h"
#include "flow.h"
#include "generator.h"
#include "model.h"

typedef struct {
  Sampler *ode;   /* euler, heun */
  Generator *gen; /* generator */
  int heun, steps, per_call, dim;
  int label_ints; /* ints per sample of labels: model_label_ints (a caption's max_text in text mode) */
  double *grid;   /* (steps + 1) the ODE's time grid */
  float *x;       /* backend (per_call, dim) */
  int *labels;    /* backend (per_call, label_ints) */
} SampleDraw;

/* sampler: "euler", "heun" or "generator" (steps <= the generator's maximum); the model must hold
 * per_call samples (2 per_call with guidance, cfg != 1). */
SampleDraw *sample_draw_create(Model *model, const char *sampler, int steps, double cfg, double shift, int per_call);
void sample_draw_free(SampleDraw *d);
/* x_host (n, dim) = samples of labels (host, (n, label_ints)) whose global indices start at index0; returns
 * the network evaluations per sample (0 when n = 0 and the sampler is an ODE). */
int sample_draw(SampleDraw *d, float *x_host, const int *labels, long n, uint64_t seed, long index0);

/* A picture of samples: images as a grid with a row per class (the first `cols` samples of each,
 * short rows padded black), 2-D points as a 640-pixel scatter plot of [-range, range]^2 coloured by
 * class over the mixture's mode centres (mix may be NULL). Other samples are an error. */
void samples_png(const char *path, const Dataset *samples, int cols, const Mixture *mix, double range);
