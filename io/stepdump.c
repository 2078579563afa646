/* stepdump.c: the testing dump of one distillation step (stepdump.h). */
#include "stepdump.h"

#include <stdlib.h>

#include "common.h"
#include "h5.h"

struct StepDump {
  hid_t file, group;
};

StepDump *step_dump_create(const char *path, const char *config_text, const char *key) {
  h5_check_replaceable(path, STEP_DUMP_FORMAT, key);
  StepDump *s = callocCheck(1, sizeof *s);
  s->file = h5_create(path, STEP_DUMP_FORMAT, config_text);
  s->group = -1;
  return s;
}

void step_dump_attr_str(StepDump *s, const char *name, const char *value) {
  if (s) h5_attr_write_str(s->file, name, value);
}

void step_dump_attr_i64(StepDump *s, const char *name, long long value) {
  if (s) h5_attr_write_i64(s->file, name, value);
}

void step_dump_group(StepDump *s, const char *name) {
  if (!s) return;
  if (s->group >= 0) H5Gclose(s->group);
  s->group = h5_group_create(s->file, name);
}

static hid_t where(const StepDump *s) { return s->group >= 0 ? s->group : s->file; }

void step_dump_f32(StepDump *s, const char *name, const float *x, int rows, int cols) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  if (s) h5_write_f32(where(s), name, x, cols ? 2 : 1, dims);
}

void step_dump_f64(StepDump *s, const char *name, const double *x, int rows, int cols) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  if (s) h5_write_f64(where(s), name, x, cols ? 2 : 1, dims);
}

void step_dump_i32(StepDump *s, const char *name, const int *x, int rows, int cols) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  if (s) h5_write_i32(where(s), name, x, cols ? 2 : 1, dims);
}

void step_dump_close(StepDump *s) {
  if (!s) return;
  if (s->group >= 0) H5Gclose(s->group);
  h5_close(s->file);
  free(s);
}
