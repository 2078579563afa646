/* metrics.h: toy-data metrics (docs/DESIGN.md section 9), exact because the mixture is known.
 *   mode mass      share of samples whose nearest mode is k (on-manifold samples only)
 *   target mass    share mode k should have given the samples' labels and the mixture weights
 *   mass error     total variation between the two: 0.5 sum_k |mass_k - target_k|
 *   coverage       share of modes holding at least 10% of their target count
 *   off-manifold   share of samples beyond 3 sigma of every mode: the measurable Forbidden Zone
 *   wrong class    share of on-manifold samples whose nearest mode belongs to another class
 *   sliced W1      sliced 1-Wasserstein distance to the data, over random directions
 *   log density    mean log p(x | c) under the true mixture (for samples with a real label)
 * Not here: image metrics (metrics_img.h).
 * Return convention: errors stop the program (amd_fatal); functions return void or their result. */
#pragma once
#include <stdint.h>

#include "toy2d.h"

#define METRIC_MAX_MODES 1024

typedef struct {
  long n;
  int num_modes;
  double mode_mass[METRIC_MAX_MODES], target_mass[METRIC_MAX_MODES];
  double mass_error, coverage, off_manifold, wrong_class, sliced_w1, log_density;
  int modes_covered;
} ToyMetrics;

void toy_metrics(ToyMetrics *out, const Mixture *m, const float *x, const int *labels, long n, const float *ref,
                 long nref, int projections, uint64_t seed);
/* Sliced 1-Wasserstein distance between two point sets in `dim` dimensions: the mean over
 * `projections` Philox-drawn unit directions of the 1-D W1 between the projected sets, computed on
 * a common quantile grid of min(n, nref) levels. */
double sliced_w1(const float *x, long n, const float *ref, long nref, int dim, int projections, uint64_t seed);
