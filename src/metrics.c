/* metrics.c: toy-data metrics. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "philox.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* value of the sorted sample at quantile level q in (0, 1), linear between order statistics */
static double quantile(const double *sorted, long n, double q) {
  double pos = q * n - 0.5;
  if (pos <= 0) return sorted[0];
  if (pos >= n - 1) return sorted[n - 1];
  long i = (long)pos;
  double f = pos - i;
  return sorted[i] * (1 - f) + sorted[i + 1] * f;
}

double sliced_w1(const float *x, long n, const float *ref, long nref, int dim, int projections, uint64_t seed) {
  CHECK(n >= 1 && nref >= 1 && projections >= 1, "sliced W1 needs samples on both sides");
  double *px = mallocCheck(sizeof(double) * (size_t)n), *pr = mallocCheck(sizeof(double) * (size_t)nref);
  float *dir = mallocCheck(sizeof(float) * (size_t)dim);
  long levels = n < nref ? n : nref;
  double total = 0;
  for (int p = 0; p < projections; p++) {
    rng_normal(dir, dim, seed, RNG_METRIC, 0, (uint32_t)p);
    double norm = 0;
    for (int d = 0; d < dim; d++) norm += (double)dir[d] * dir[d];
    norm = sqrt(norm) + 1e-30;
    for (long i = 0; i < n; i++) {
      double s = 0;
      for (int d = 0; d < dim; d++) s += x[i * dim + d] * (double)dir[d];
      px[i] = s / norm;
    }
    for (long i = 0; i < nref; i++) {
      double s = 0;
      for (int d = 0; d < dim; d++) s += ref[i * dim + d] * (double)dir[d];
      pr[i] = s / norm;
    }
    qsort(px, (size_t)n, sizeof(double), cmp_double);
    qsort(pr, (size_t)nref, sizeof(double), cmp_double);
    double w = 0;
    for (long l = 0; l < levels; l++) {
      double q = (l + 0.5) / levels;
      w += fabs(quantile(px, n, q) - quantile(pr, nref, q));
    }
    total += w / levels;
  }
  free(px), free(pr), free(dir);
  return total / projections;
}

void toy_metrics(ToyMetrics *o, const Mixture *m, const float *x, const int *labels, long n, const float *ref,
                 long nref, int projections, uint64_t seed) {
  CHECK(m->num_modes <= METRIC_MAX_MODES, "metrics: %d modes, at most %d", m->num_modes, METRIC_MAX_MODES);
  CHECK(n >= 1, "metrics: no samples");
  memset(o, 0, sizeof *o);
  o->n = n;
  o->num_modes = m->num_modes;
  long off = 0, wrong = 0, labelled = 0;
  double logp = 0;
  long *count = callocCheck((size_t)m->num_modes, sizeof(long));
  for (long i = 0; i < n; i++) {
    double dist;
    int k = mixture_nearest_mode(m, x + 2 * i, &dist);
    int c = labels[i];
    int real_label = c >= 0 && c < m->num_classes;
    if (real_label) {
      labelled++;
      logp += mixture_log_density(m, x + 2 * i, c);
      for (int j = 0; j < m->num_modes; j++)
        if (m->mode_class[j] == c) o->target_mass[j] += m->weights[j];
    } else {
      for (int j = 0; j < m->num_modes; j++) o->target_mass[j] += m->weights[j] / m->num_classes;
    }
    if (dist > 3.0) {
      off++;
      continue;
    }
    count[k]++;
    if (real_label && m->mode_class[k] != c) wrong++;
  }
  long on = n - off;
  for (int k = 0; k < m->num_modes; k++) {
    o->target_mass[k] /= (double)n;
    o->mode_mass[k] = (double)count[k] / (double)n;
    o->mass_error += 0.5 * fabs(o->mode_mass[k] - o->target_mass[k]);
    /* covered: at least 10% of the samples the mode should hold (and at least one) */
    double expected = o->target_mass[k] * n;
    if (count[k] >= 1 && count[k] >= 0.1 * expected) o->modes_covered++;
  }
  /* off-manifold mass is missing from every mode: count it as error once */
  o->mass_error += 0.5 * (double)off / (double)n;
  o->coverage = (double)o->modes_covered / m->num_modes;
  o->off_manifold = (double)off / (double)n;
  o->wrong_class = on ? (double)wrong / (double)on : 0.0;
  o->log_density = labelled ? logp / (double)labelled : 0.0;
  o->sliced_w1 = ref ? sliced_w1(x, n, ref, nref, 2, projections, seed) : NAN;
  free(count);
}
