/* toy2d.c: the toy mixture: layout, sampling, nearest mode and exact density. */
#include "toy2d.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "philox.h"

void mixture_make(Mixture *m, const char *layout, int num_modes, int num_classes, double radius, double sigma) {
  CHECK(num_modes >= 1 && num_classes >= 1 && num_classes <= num_modes,
        "toy mixture: need 1 <= classes (%d) <= modes (%d)", num_classes, num_modes);
  CHECK(num_modes <= 1024, "toy mixture: %d modes, at most 1024", num_modes);
  CHECK(sigma > 0 && radius > 0, "toy mixture: sigma %g and radius %g must be positive", sigma, radius);
  memset(m, 0, sizeof *m);
  m->dim = 2;
  m->num_modes = num_modes;
  m->num_classes = num_classes;
  m->sigma = sigma;
  m->means = callocCheck((size_t)num_modes * 2, sizeof(float));
  m->weights = callocCheck((size_t)num_modes, sizeof(float));
  m->mode_class = callocCheck((size_t)num_modes, sizeof(int));
  if (strcmp(layout, "ring") == 0) {
    for (int k = 0; k < num_modes; k++) {
      double a = 2.0 * 3.141592653589793 * k / num_modes;
      m->means[2 * k] = (float)(radius * cos(a));
      m->means[2 * k + 1] = (float)(radius * sin(a));
    }
  } else if (strcmp(layout, "grid") == 0) {
    int side = (int)ceil(sqrt((double)num_modes));
    for (int k = 0; k < num_modes; k++) {
      int i = k % side, j = k / side;
      double step = side > 1 ? 2.0 * radius / (side - 1) : 0.0;
      m->means[2 * k] = (float)(side > 1 ? -radius + i * step : 0.0);
      m->means[2 * k + 1] = (float)(side > 1 ? -radius + j * step : 0.0);
    }
  } else {
    amd_usage_error("toy layout '%s': expected ring or grid", layout);
  }
  for (int k = 0; k < num_modes; k++) m->mode_class[k] = k % num_classes;
  for (int k = 0; k < num_modes; k++) {
    int owned = 0;
    for (int j = 0; j < num_modes; j++) owned += m->mode_class[j] == m->mode_class[k];
    m->weights[k] = 1.0f / (float)owned;
  }
}

void mixture_sample(const Mixture *m, uint64_t seed, long n, float *x, int *labels) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    int c = (int)(i % m->num_classes);
    double u = rng_uniform(seed, RNG_TOYDATA, 0, (uint32_t)i, 0), acc = 0;
    int mode = -1;
    for (int k = 0; k < m->num_modes; k++) {
      if (m->mode_class[k] != c) continue;
      mode = k;
      acc += m->weights[k];
      if (u < acc) break;
    }
    float z[2];
    rng_normal(z, 2, seed, RNG_TOYDATA, 1, (uint32_t)i);
    x[2 * i] = m->means[2 * mode] + (float)m->sigma * z[0];
    x[2 * i + 1] = m->means[2 * mode + 1] + (float)m->sigma * z[1];
    labels[i] = c;
  }
}

int mixture_nearest_mode(const Mixture *m, const float *x, double *dist_sigma) {
  int best = 0;
  double bd = INFINITY;
  for (int k = 0; k < m->num_modes; k++) {
    double dx = x[0] - m->means[2 * k], dy = x[1] - m->means[2 * k + 1];
    double d = dx * dx + dy * dy;
    if (d < bd) bd = d, best = k;
  }
  if (dist_sigma) *dist_sigma = sqrt(bd) / m->sigma;
  return best;
}

double mixture_log_density(const Mixture *m, const float *x, int c) {
  /* log-sum-exp over the modes of class c (or all modes, classes uniform) */
  double s2 = m->sigma * m->sigma, lmax = -INFINITY, terms[1024];
  int nt = 0;
  for (int k = 0; k < m->num_modes && nt < 1024; k++) {
    if (c >= 0 && m->mode_class[k] != c) continue;
    double dx = x[0] - m->means[2 * k], dy = x[1] - m->means[2 * k + 1];
    double w = m->weights[k] * (c >= 0 ? 1.0 : 1.0 / m->num_classes);
    double l = log(w) - (dx * dx + dy * dy) / (2 * s2) - log(2 * 3.141592653589793 * s2);
    terms[nt++] = l;
    if (l > lmax) lmax = l;
  }
  double s = 0;
  for (int i = 0; i < nt; i++) s += exp(terms[i] - lmax);
  return lmax + log(s);
}
