/* cmd_eval.c: `amd eval`: the toy metrics of a samples file against its dataset (DESIGN section 9),
 * printed as a table and stored in an HDF5 eval file (/eval/<metric>). Rank 0 computes. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "h5.h"
#include "metrics.h"

typedef struct {
  char samples[CFG_STR_MAX], data[CFG_STR_MAX], out[CFG_STR_MAX];
  int projections, seed, max_ref;
} EvalConfig;

#define K(name, type, field, def, lo, hi, choices, help) {name, type, offsetof(EvalConfig, field), def, lo, hi, choices, help}
static const cfg_key eval_keys[] = {
    K("samples", CFG_STR, samples, "", 0, 0, NULL, "samples file (amd sample); required"),
    K("data", CFG_STR, data, "", 0, 0, NULL, "dataset to compare with; default: the one the samples name"),
    K("out", CFG_STR, out, "", 0, 0, NULL, "eval file to write; default: <samples>_eval.h5"),
    K("sw.projections", CFG_INT, projections, "128", 1, 100000, NULL, "directions of the sliced Wasserstein distance"),
    K("sw.max_ref", CFG_INT, max_ref, "20000", 1, 100000000, NULL, "data points used as the reference set"),
    K("seed", CFG_INT, seed, "0", 0, 2147483647, NULL, "Philox seed of the projections"),
    CFG_END};
#undef K

static void write_scalar(hid_t g, const char *name, double v) {
  hsize_t one = 1;
  h5_write_f64(g, name, &v, 1, &one);
}

int cmd_eval(int argc, char **argv) {
  EvalConfig c;
  cfg_parse_args(eval_keys, &c, argc, argv, "eval", "Metrics of a samples file against its dataset.");
  if (!c.samples[0]) amd_usage_error("config key 'samples' is required: a samples file (amd sample)");
  if (dist_rank() != 0) return 0;

  Dataset s, d;
  dataset_read(c.samples, "amd-samples", &s);
  hid_t sf = h5_open(c.samples, "amd-samples", 0, NULL);
  char *data_path = c.data[0] ? strdup(c.data) : h5_attr_read_str(sf, "data");
  long long nfe = h5_attr_exists(sf, "nfe") ? h5_attr_read_i64(sf, "nfe") : 0;
  double rate = h5_attr_exists(sf, "samples_per_s") ? h5_attr_read_f64(sf, "samples_per_s") : 0;
  h5_close(sf);
  if (!data_path[0]) amd_usage_error("samples '%s' name no dataset: pass data=", c.samples);
  dataset_read(data_path, "amd-dataset", &d);
  if (!d.has_mixture)
    amd_usage_error("dataset '%s' has no /mixture: toy metrics need a toy2d dataset", data_path);
  CHECK(s.dim == 2 && d.dim == 2, "toy metrics need 2-D samples and data (got %d and %d)", s.dim, d.dim);

  /* reference: data points of the classes present in the samples, at most max_ref of them */
  int *present = callocCheck((size_t)d.num_classes + 1, sizeof(int));
  for (long i = 0; i < s.n; i++)
    if (s.labels[i] >= 0 && s.labels[i] < d.num_classes) present[s.labels[i]] = 1;
  float *ref = mallocCheck(sizeof(float) * 2 * (size_t)d.n);
  long nref = 0;
  for (long i = 0; i < d.n && nref < c.max_ref; i++)
    if (present[d.labels[i]]) memcpy(ref + 2 * nref++, d.x + 2 * i, 2 * sizeof(float));

  ToyMetrics m;
  toy_metrics(&m, &d.mix, s.x, s.labels, s.n, nref ? ref : NULL, nref, c.projections, (uint64_t)c.seed);

  printf("eval of %s against %s\n", c.samples, data_path);
  printf("  %-22s %ld\n", "samples", m.n);
  printf("  %-22s %.4f (%d of %d modes)\n", "coverage", m.coverage, m.modes_covered, m.num_modes);
  printf("  %-22s %.4f\n", "off_manifold", m.off_manifold);
  printf("  %-22s %.4f\n", "mass_error (TV)", m.mass_error);
  printf("  %-22s %.4f\n", "wrong_class", m.wrong_class);
  printf("  %-22s %.5f\n", "sliced_w1", m.sliced_w1);
  printf("  %-22s %.4f\n", "log_density", m.log_density);
  printf("  %-22s %lld\n", "nfe", nfe);
  printf("  %-22s %.0f\n", "samples_per_s", rate);
  printf("  %-6s %-6s %-8s %-8s\n", "mode", "class", "target", "mass");
  for (int k = 0; k < m.num_modes; k++)
    printf("  %-6d %-6d %-8.4f %-8.4f\n", k, d.mix.mode_class[k], m.target_mass[k], m.mode_mass[k]);

  char out[4200];
  if (c.out[0]) {
    snprintf(out, sizeof out, "%s", c.out);
  } else {
    size_t n = strlen(c.samples);
    int h5 = n > 3 && strcmp(c.samples + n - 3, ".h5") == 0;
    snprintf(out, sizeof out, "%.*s_eval.h5", (int)(h5 ? n - 3 : n), c.samples);
  }
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  char *text = cfg_to_text(eval_keys, &c);
  amd_mkdirs_parent(out);
  hid_t f = h5_create(tmp, "amd-eval", text);
  h5_attr_write_str(f, "samples", c.samples);
  h5_attr_write_str(f, "data", data_path);
  hid_t g = h5_group_create(f, "eval");
  write_scalar(g, "n", (double)m.n);
  write_scalar(g, "coverage", m.coverage);
  write_scalar(g, "modes_covered", m.modes_covered);
  write_scalar(g, "off_manifold", m.off_manifold);
  write_scalar(g, "mass_error", m.mass_error);
  write_scalar(g, "wrong_class", m.wrong_class);
  write_scalar(g, "sliced_w1", m.sliced_w1);
  write_scalar(g, "log_density", m.log_density);
  write_scalar(g, "nfe", (double)nfe);
  write_scalar(g, "samples_per_s", rate);
  hsize_t nm = (hsize_t)m.num_modes;
  h5_write_f64(g, "mode_mass", m.mode_mass, 1, &nm);
  h5_write_f64(g, "target_mass", m.target_mass, 1, &nm);
  H5Gclose(g);
  h5_close(f);
  if (rename(tmp, out) != 0) amd_fatal("cannot rename '%s' to '%s'", tmp, out);
  printf("wrote %s\n", out);
  free(text), free(ref), free(present), free(data_path);
  dataset_free(&s);
  dataset_free(&d);
  return 0;
}
