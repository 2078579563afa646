/* dataset.c: reading and writing dataset and samples files. */
#include "dataset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5.h"

/* A 64-bit checksum of n bytes, continuing from h: eight bytes at a time, each mixed in by a
 * multiply and a shift, so any changed value, or the same values in another order, changes it. */
static uint64_t checksum64(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = 0;
    memcpy(&w, p + i, n - i < 8 ? n - i : 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  return h ^ (uint64_t)n;
}

void dataset_write(const char *path, const Dataset *d, const char *format, const char *config_text,
                   void (*extra)(hid_t file, const void *ctx), const void *ctx) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hid_t f = h5_create(tmp, format, config_text);
  hsize_t dims[4] = {(hsize_t)d->n, 0, 0, 0};
  for (int i = 0; i < d->ndim; i++) dims[1 + i] = (hsize_t)d->shape[i];
  h5_write_f32(f, "x", d->x, 1 + d->ndim, dims);
  h5_write_i32(f, "labels", d->labels, 1, dims);
  h5_attr_write_i64(f, "num_classes", d->num_classes);
  h5_attr_write_str(f, "class_names", d->class_names);
  h5_attr_write_str(f, "source", d->source);
  if (d->has_mixture) {
    const Mixture *m = &d->mix;
    hid_t g = h5_group_create(f, "mixture");
    hsize_t md[2] = {(hsize_t)m->num_modes, (hsize_t)m->dim};
    h5_write_f32(g, "means", m->means, 2, md);
    h5_write_f32(g, "weights", m->weights, 1, md);
    h5_write_i32(g, "mode_class", m->mode_class, 1, md);
    h5_attr_write_f64(g, "sigma", m->sigma);
    H5Gclose(g);
  }
  if (extra) extra(f, ctx);
  h5_close(f);
  if (rename(tmp, path) != 0) amd_fatal("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
}

/* Stops with an input error unless the mixture m (read from file fn) is a density: consistent
 * shapes, finite means, a positive sigma, non-negative weights that sum to 1 over each class's
 * modes, and every class owning a mode. */
static void mixture_check(const Mixture *m, const char *fn, hsize_t nw, hsize_t nc) {
  if (m->dim != 2 || nw != (hsize_t)m->num_modes || nc != (hsize_t)m->num_modes || m->num_modes < 1 ||
      m->num_modes > 1024)
    amd_input_error("'%s': /mixture has inconsistent shapes (means %d x %d, weights %llu, mode_class %llu; at most "
                    "1024 modes of 2-D points)", fn, m->num_modes, m->dim, (unsigned long long)nw, (unsigned long long)nc);
  if (!(m->sigma > 0) || !isfinite(m->sigma))
    amd_input_error("'%s': /mixture sigma %g is not a positive number", fn, m->sigma);
  for (int i = 0; i < 2 * m->num_modes; i++)
    if (!isfinite(m->means[i]) || fabsf(m->means[i]) > DATASET_TOY_MAX_ABS)
      amd_input_error("'%s': /mixture/means[%d, %d] = %g is not a finite number within +-%g: the file is damaged", fn,
                      i / 2, i % 2, m->means[i], DATASET_TOY_MAX_ABS);
  for (int k = 0; k < m->num_modes; k++) {
    if (!(m->weights[k] >= 0) || !isfinite(m->weights[k]))
      amd_input_error("'%s': /mixture/weights[%d] = %g is not a non-negative number: the file is damaged", fn, k,
                      m->weights[k]);
    if (m->mode_class[k] < 0 || m->mode_class[k] >= m->num_modes)
      amd_input_error("'%s': /mixture/mode_class[%d] = %d is outside [0, %d)", fn, k, m->mode_class[k], m->num_modes);
  }
  for (int c = 0; c < m->num_classes; c++) {
    int owned = 0;
    double sum = 0;
    for (int k = 0; k < m->num_modes; k++)
      if (m->mode_class[k] == c) owned++, sum += m->weights[k];
    if (!owned) amd_input_error("'%s': /mixture: class %d owns no mode", fn, c);
    /* float32 weights of 1/owned sum to 1 within a few ulps; 1e-4 is far above that and far below
     * any real change of the target */
    if (fabs(sum - 1.0) > 1e-4)
      amd_input_error("'%s': /mixture: the weights of class %d's modes sum to %.6g, not 1: the file is damaged", fn, c,
                      sum);
  }
}

int dataset_read_mixture(hid_t f, Mixture *m) {
  char fn[1024];
  if (!h5_exists(f, "mixture")) return 0;
  memset(m, 0, sizeof *m);
  hid_t g = h5_group_open(f, "mixture");
  hsize_t md[2], wd[1], cd[1];
  m->means = h5_read_f32(g, "means", 2, md);
  m->weights = h5_read_f32(g, "weights", 1, wd);
  m->mode_class = h5_read_i32(g, "mode_class", 1, cd);
  m->sigma = h5_attr_read_f64(g, "sigma");
  m->num_modes = md[0] <= 1024 ? (int)md[0] : 0;
  m->dim = (int)md[1];
  H5Gclose(g);
  h5_filename(f, fn, sizeof fn);
  m->num_classes = 0;
  for (int k = 0; k < m->num_modes && wd[0] == md[0] && cd[0] == md[0]; k++)
    if (m->mode_class[k] >= 0 && m->mode_class[k] < m->num_modes)
      m->num_classes = amd_max_i(m->num_classes, m->mode_class[k] + 1);
  mixture_check(m, fn, wd[0], cd[0]);
  return 1;
}

/* Stops with an input error naming the first value of /x that no dataset of this kind can hold:
 * a non-finite one in any file; in a dataset, an image value outside [-1, 1] (what amd data
 * stores) or a toy point beyond the bound of dataset.h (DATASET_TOY_SIGMAS). */
static void check_values(const char *path, const char *format, const Dataset *d) {
  long first = -1, nonfinite = 0;
  for (long i = 0; i < d->n * d->dim; i++)
    if (!isfinite(d->x[i]) && nonfinite++ == 0) first = i;
  if (nonfinite)
    amd_input_error("'%s': /x[%ld, %ld] is %g, not a finite number; /x holds %ld non-finite values: the file is "
                    "damaged", path, first / d->dim, first % d->dim, d->x[first], nonfinite);
  if (strcmp(format, "amd-dataset") != 0) return;
  double bound = DATASET_TOY_MAX_ABS;
  char why[256];
  if (d->ndim == 3) {
    bound = 1.0;
    snprintf(why, sizeof why, "images are stored in [-1, 1]");
  } else if (d->has_mixture) {
    double far = 0;
    for (int i = 0; i < 2 * d->mix.num_modes; i++) far = fmax(far, fabs(d->mix.means[i]));
    bound = fmin(bound, far + DATASET_TOY_SIGMAS * d->mix.sigma);
    snprintf(why, sizeof why, "%g sigma beyond the farthest mode of its /mixture, a draw that never happens",
             DATASET_TOY_SIGMAS);
  } else {
    snprintf(why, sizeof why, "the bound of toy points without a mixture");
  }
  for (long i = 0; i < d->n * d->dim; i++)
    if (fabs(d->x[i]) > bound)
      amd_input_error("'%s': /x[%ld, %ld] = %g is outside [-%g, %g] (%s): the file is damaged", path, i / d->dim,
                      i % d->dim, d->x[i], bound, bound, why);
}

void dataset_read(const char *path, const char *format, Dataset *d) {
  memset(d, 0, sizeof *d);
  hid_t f = h5_open(path, format, 0, NULL);
  hsize_t dims[4], ld[1];
  hid_t dset = H5Dopen2(f, "x", H5P_DEFAULT);
  if (dset < 0) amd_input_error("'%s': dataset '/x' is missing", path);
  hid_t space = H5Dget_space(dset);
  int rank = H5Sget_simple_extent_ndims(space);
  H5Sclose(space);
  H5Dclose(dset);
  if (rank != 2 && rank != 4)
    amd_input_error("'%s': /x has %d dimensions, expected 2 (N, D) or 4 (N, C, H, W)", path, rank);
  d->x = h5_read_f32(f, "x", rank, dims);
  d->labels = h5_read_i32(f, "labels", 1, ld);
  d->n = (long)dims[0];
  d->ndim = rank - 1;
  long dim = 1; /* counted in long: the shape comes from the file, and a sample's size is an int */
  for (int i = 0; i < d->ndim && dim <= INT_MAX; i++)
    dim = dims[1 + i] > (hsize_t)INT_MAX ? (long)INT_MAX + 1 : dim * (long)dims[1 + i];
  if (dim > INT_MAX) amd_input_error("'%s': /x holds samples of more than %d values", path, INT_MAX);
  for (int i = 0; i < d->ndim; i++) d->shape[i] = (int)dims[1 + i];
  d->dim = (int)dim;
  if (ld[0] != dims[0])
    amd_input_error("'%s': /labels has %llu entries but /x has %llu samples", path, (unsigned long long)ld[0],
                    (unsigned long long)dims[0]);
  if (d->n < 1 || d->dim < 1) amd_input_error("'%s': /x is empty", path);
  d->num_classes = (int)h5_attr_read_i64(f, "num_classes");
  if (d->num_classes < 1) amd_input_error("'%s': num_classes %d must be at least 1", path, d->num_classes);
  char *s = h5_attr_read_str(f, "source");
  snprintf(d->source, sizeof d->source, "%s", s);
  free(s);
  if (h5_attr_exists(f, "class_names")) {
    s = h5_attr_read_str(f, "class_names");
    snprintf(d->class_names, sizeof d->class_names, "%s", s);
    free(s);
  }
  d->has_mixture = dataset_read_mixture(f, &d->mix);
  /* a captioned dataset's prompts are part of what a model trains on: their tokens join the checksum */
  hsize_t td[2] = {0, 0};
  int *tokens = h5_exists(f, "captions/tokens") ? h5_read_i32(f, "captions/tokens", 2, td) : NULL;
  h5_close(f);
  if (d->has_mixture && (d->mix.num_classes != d->num_classes || d->dim != 2))
    amd_input_error("'%s': /mixture has %d classes of 2-D points but the file holds %d classes of %d values", path,
                    d->mix.num_classes, d->num_classes, d->dim);
  for (long i = 0; i < d->n; i++)
    if (d->labels[i] < 0 || d->labels[i] >= d->num_classes)
      amd_input_error("'%s': /labels[%ld] = %d is outside [0, %d)", path, i, d->labels[i], d->num_classes);
  check_values(path, format, d);
  uint64_t h = 0x243f6a8885a308d3ULL; /* any fixed start */
  long long head[6] = {d->n, d->ndim, d->shape[0], d->shape[1], d->shape[2], d->num_classes};
  h = checksum64(h, head, sizeof head);
  h = checksum64(h, d->x, sizeof(float) * (size_t)d->n * (size_t)d->dim);
  h = checksum64(h, d->labels, sizeof(int) * (size_t)d->n);
  if (tokens) h = checksum64(h, tokens, sizeof(int) * (size_t)(td[0] * td[1]));
  free(tokens);
  d->checksum = h;
}

void dataset_fingerprint(const Dataset *d, char *out, size_t n) {
  char shape[64] = "";
  for (int i = 0; i < d->ndim; i++)
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%d", i ? "x" : "", d->shape[i]);
  snprintf(out, n, "%ld samples of %s, %d classes, checksum %016llx", d->n, shape, d->num_classes,
           (unsigned long long)d->checksum);
}

int dataset_fingerprint_differs(const char *now, const char *recorded, char *why, size_t n) {
  if (strcmp(now, recorded) == 0) return 0;
  const char *a = strstr(now, ", checksum "), *b = strstr(recorded, ", checksum ");
  if (a && b && a - now == b - recorded && strncmp(now, recorded, (size_t)(a - now)) == 0)
    snprintf(why, n, "the same shape and classes (%.*s) but other values (checksum %s, recorded %s)", (int)(a - now), now,
             a + 11, b + 11);
  else
    snprintf(why, n, "it holds %s; recorded: %s", now, recorded);
  return 1;
}

char *dataset_read_recorded(const char *owner_path, const char *owner_format, Dataset *d, const char *hint) {
  hid_t f = h5_open(owner_path, owner_format, 0, NULL);
  char *path = h5_attr_exists(f, "data") ? h5_attr_read_str(f, "data") : strdup("");
  char *recorded = h5_attr_exists(f, "data_fingerprint") ? h5_attr_read_str(f, "data_fingerprint") : NULL;
  h5_close(f);
  if (path[0]) {
    if (!amd_file_exists(path))
      amd_usage_error("the dataset '%s' that '%s' records does not exist (moved or deleted?): %s", path, owner_path,
                      hint);
    dataset_read(path, "amd-dataset", d);
    char now[DATASET_FINGERPRINT_MAX], why[512];
    dataset_fingerprint(d, now, sizeof now);
    if (recorded && dataset_fingerprint_differs(now, recorded, why, sizeof why))
      amd_usage_error("the dataset '%s' is not the one '%s' records: %s. The file was replaced or changed since; %s",
                      path, owner_path, why, hint);
  }
  free(recorded);
  return path;
}

void dataset_check_fits(const Dataset *d, const char *key, const char *path, int dim, int num_classes,
                        const char *what) {
  if (d->dim != dim || d->num_classes != num_classes)
    amd_usage_error("%s '%s' (dim %d, %d classes) does not match %s (dim %d, %d classes)", key, path, d->dim,
                    d->num_classes, what, dim, num_classes);
}

/* Same target: modes, their classes, means, weights and sigma, as stored (float32). */
static int mixture_same(const Mixture *a, const Mixture *b) {
  if (a->num_modes != b->num_modes || a->num_classes != b->num_classes || (float)a->sigma != (float)b->sigma) return 0;
  for (int k = 0; k < a->num_modes; k++)
    if (a->mode_class[k] != b->mode_class[k] || a->weights[k] != b->weights[k] ||
        a->means[2 * k] != b->means[2 * k] || a->means[2 * k + 1] != b->means[2 * k + 1])
      return 0;
  return 1;
}

void dataset_check_same_target(const Dataset *d, const char *key, const char *path, const char *trained_path,
                               const char *what) {
  if (!d->has_mixture || !trained_path[0] || strcmp(trained_path, path) == 0 || !amd_file_exists(trained_path)) return;
  Mixture m;
  hid_t f = h5_open(trained_path, "amd-dataset", 0, NULL);
  int has = dataset_read_mixture(f, &m);
  h5_close(f);
  if (!has) return;
  int same = mixture_same(&d->mix, &m);
  int modes = m.num_modes;
  mixture_free(&m);
  if (!same)
    amd_usage_error("%s '%s' (%d modes) is another toy mixture than '%s' (%d modes), the dataset %s was trained on: "
                    "its metrics and rewards would measure another target; pass that dataset, or leave %s empty",
                    key, path, d->mix.num_modes, trained_path, modes, what, key);
}

void dataset_read_split(const char *path, Dataset *d, const char *key, const Dataset *like, const char *like_path) {
  dataset_read(path, "amd-dataset", d);
  char what[1200];
  snprintf(what, sizeof what, "data '%s'", like_path);
  dataset_check_fits(d, key, path, like->dim, like->num_classes, what);
}

void mixture_free(Mixture *m) {
  free(m->means);
  free(m->weights);
  free(m->mode_class);
  memset(m, 0, sizeof *m);
}

void dataset_free(Dataset *d) {
  free(d->x);
  free(d->labels);
  if (d->has_mixture) mixture_free(&d->mix);
  memset(d, 0, sizeof *d);
}
