/* cmd_info.c: `amd info FILE.h5`: says what any amd file holds (dataset, samples, checkpoint, log,
 * eval) without the user reaching for h5dump. Unknown or damaged files get the same clear errors
 * as every reader. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "dataset.h"
#include "dist.h"
#include "h5.h"

static void print_common(hid_t f, const char *path, const char *kind) {
  char *by = h5_attr_read_str(f, "created_by");
  printf("%s: %s, format_version %lld, created by %s\n", path, kind, h5_attr_read_i64(f, "format_version"), by);
  free(by);
}

static void info_dataset(const char *path, const char *kind) {
  Dataset d;
  dataset_read(path, kind, &d);
  float lo = INFINITY, hi = -INFINITY;
  for (long i = 0; i < d.n * d.dim; i++) lo = d.x[i] < lo ? d.x[i] : lo, hi = d.x[i] > hi ? d.x[i] : hi;
  printf("  x: %ld samples of shape (", d.n);
  for (int i = 0; i < d.ndim; i++) printf(i ? ", %d" : "%d", d.shape[i]);
  printf("), values in [%.4g, %.4g]\n  classes: %d (%s)\n  source: %s\n", lo, hi, d.num_classes, d.class_names, d.source);
  if (d.has_mixture)
    printf("  mixture: %d modes, sigma %g, %d classes\n", d.mix.num_modes, d.mix.sigma, d.mix.num_classes);
  dataset_free(&d);
}

static void info_samples(hid_t f) {
  const char *str_attrs[] = {"checkpoint", "net", "data", "sampler"};
  for (size_t i = 0; i < 4; i++) {
    if (!h5_attr_exists(f, str_attrs[i])) continue;
    char *v = h5_attr_read_str(f, str_attrs[i]);
    printf("  %s: %s\n", str_attrs[i], v);
    free(v);
  }
  if (h5_attr_exists(f, "steps"))
    printf("  steps %lld, cfg %g, shift %g, seed %lld, NFE %lld, %.3f s (%.0f samples/s)\n", h5_attr_read_i64(f, "steps"),
           h5_attr_read_f64(f, "cfg"), h5_attr_read_f64(f, "shift"), h5_attr_read_i64(f, "seed"),
           h5_attr_read_i64(f, "nfe"), h5_attr_read_f64(f, "seconds"), h5_attr_read_f64(f, "samples_per_s"));
}

static herr_t print_net(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  H5O_info_t oi;
  if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) return 0;
  hid_t g = h5_group_open(loc, name);
  char *kind = h5_attr_read_str(g, "kind");
  printf("  net '%s': %s, dim %lld, classes %lld, width %lld, depth %lld, %lld parameters%s\n", name, kind,
         h5_attr_read_i64(g, "dim"), h5_attr_read_i64(g, "num_classes"), h5_attr_read_i64(g, "width"),
         h5_attr_read_i64(g, "depth"), h5_attr_read_i64(g, "num_params"),
         h5_exists(g, "adam_m") ? ", with AdamW moments" : "");
  if (h5_attr_exists(g, "img_size") && h5_attr_read_i64(g, "img_size") > 0)
    printf("    images %lld x %lld x %lld, patch %lld, heads %lld\n", h5_attr_read_i64(g, "img_channels"),
           h5_attr_read_i64(g, "img_size"), h5_attr_read_i64(g, "img_size"), h5_attr_read_i64(g, "patch"),
           h5_attr_read_i64(g, "heads"));
  free(kind);
  H5Gclose(g);
  return 0;
}

static void info_checkpoint(hid_t f) {
  char *data = h5_attr_read_str(f, "data");
  printf("  step %lld, seed %lld, data cursor %lld, data %s\n", h5_attr_read_i64(f, "step"),
         h5_attr_read_i64(f, "seed"), h5_attr_read_i64(f, "data_cursor"), data);
  free(data);
  h5Check(H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_net, NULL), "cannot list the checkpoint's networks");
}

static herr_t print_column(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  hsize_t n;
  double *v = h5_read_f64(loc, name, 1, &n);
  double lo = INFINITY, hi = -INFINITY;
  for (hsize_t i = 0; i < n; i++) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
  if (n) printf("  %-16s last %-12.6g min %-12.6g max %.6g\n", name, v[n - 1], lo, hi);
  free(v);
  return 0;
}

static void info_log(hid_t f) {
  hid_t g = h5_group_open(f, "train");
  hsize_t n = 0;
  double *steps = h5_read_f64(g, "step", 1, &n);
  printf("  %llu rows", (unsigned long long)n);
  if (n) printf(", steps %.0f to %.0f", steps[0], steps[n - 1]);
  printf("\n");
  free(steps);
  h5Check(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_column, NULL), "cannot list the log columns");
  H5Gclose(g);
  if (h5_exists(f, "advantage/step")) {
    hid_t a = h5_group_open(f, "advantage");
    hsize_t na;
    double *as = h5_read_f64(a, "step", 1, &na);
    printf("  /advantage: %llu per-sample records", (unsigned long long)na);
    if (na) printf(" from step %.0f to %.0f", as[0], as[na - 1]);
    printf("\n");
    free(as);
    H5Gclose(a);
  }
  if (h5_exists(f, "events/step")) {
    hid_t e = h5_group_open(f, "events");
    hsize_t ne;
    double *es = h5_read_f64(e, "step", 1, &ne);
    printf("  %llu events\n", (unsigned long long)ne);
    if (ne) {
      hid_t d = H5Dopen2(e, "message", H5P_DEFAULT);
      char **msg = callocCheck(ne, sizeof(char *));
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      h5Check(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, msg), "cannot read the log's events");
      for (hsize_t i = 0; i < ne; i++) printf("    step %.0f: %s\n", es[i], msg[i] ? msg[i] : "");
      hid_t space = H5Dget_space(d);
      H5Dvlen_reclaim(t, space, H5P_DEFAULT, msg);
      H5Sclose(space);
      H5Tclose(t);
      H5Dclose(d);
      free(msg);
    }
    free(es);
    H5Gclose(e);
  }
}

static herr_t print_scalar(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  hsize_t n;
  double *v = h5_read_f64(loc, name, 1, &n);
  if (n == 1) printf("  %-16s %.6g\n", name, v[0]);
  else printf("  %-16s %llu values\n", name, (unsigned long long)n);
  free(v);
  return 0;
}

int cmd_info(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    if (dist_rank() == 0) printf("usage: amd info FILE.h5 [FILE.h5 ...]\n  summarizes amd datasets, samples, checkpoints, logs and eval files\n");
    return argc < 1 ? AMD_EXIT_USAGE : 0;
  }
  if (dist_rank() != 0) return 0;
  for (int i = 0; i < argc; i++) {
    char kind[32];
    hid_t f = h5_open(argv[i], NULL, 0, kind);
    print_common(f, argv[i], kind);
    if (strcmp(kind, "amd-dataset") == 0 || strcmp(kind, "amd-samples") == 0) {
      if (strcmp(kind, "amd-samples") == 0) info_samples(f);
      info_dataset(argv[i], kind);
    } else if (strcmp(kind, "amd-checkpoint") == 0) {
      info_checkpoint(f);
    } else if (strcmp(kind, "amd-log") == 0) {
      info_log(f);
    } else if (strcmp(kind, "amd-eval") == 0) {
      hid_t g = h5_group_open(f, "eval");
      h5Check(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_scalar, NULL), "cannot list the eval metrics");
      H5Gclose(g);
    } else {
      amd_fatal("'%s' has format '%s', which this amd does not know", argv[i], kind);
    }
    h5_close(f);
  }
  return 0;
}
