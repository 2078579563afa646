/* trainlog.c: appending rows to the HDF5 training log. */
#include "trainlog.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5.h"

#define CHUNK 1024

static void create_column(hid_t g, const char *name, hid_t type) {
  hsize_t zero = 0, unlim = H5S_UNLIMITED, chunk = CHUNK;
  hid_t space = H5Screate_simple(1, &zero, &unlim);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  hid_t d = H5Dcreate2(g, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  h5Check(d, "HDF5: cannot create log column '%s'", name);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

static hsize_t column_length(hid_t d) {
  hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, NULL);
  H5Sclose(s);
  return n;
}

/* Appends n values (of memory type mtype) to a 1-D extendable dataset. */
static void append(hid_t d, hid_t mtype, const void *vals, hsize_t n, const char *what) {
  hsize_t old = column_length(d), total = old + n;
  h5Check(H5Dset_extent(d, &total), "HDF5: cannot extend log column '%s'", what);
  hid_t fs = H5Dget_space(d);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &old, NULL, &n, NULL);
  hid_t ms = H5Screate_simple(1, &n, NULL);
  h5Check(H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, vals), "HDF5: cannot append to log column '%s'", what);
  H5Sclose(ms);
  H5Sclose(fs);
}

static hid_t str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  return t;
}

void trainlog_create(const char *path, const char *config_text) {
  if (amd_rank() != 0) return;
  hid_t f = h5_create(path, "amd-log", config_text);
  hid_t g = h5_group_create(f, "events");
  create_column(g, "step", H5T_STD_I64LE);
  hid_t st = str_type();
  create_column(g, "message", st);
  H5Tclose(st);
  H5Gclose(g);
  h5_close(f);
}

void trainlog_open(TrainLog *l, const char *path, const char *table, const char *const *cols, int ncols,
                   long resume_step) {
  memset(l, 0, sizeof *l);
  if (amd_rank() != 0) return;
  CHECK(ncols >= 1 && ncols <= TRAINLOG_MAX_COLS && strcmp(cols[0], "step") == 0,
        "log: columns must start with 'step' (got %d columns)", ncols);
  snprintf(l->path, sizeof l->path, "%s", path);
  snprintf(l->table, sizeof l->table, "%s", table);
  l->ncols = ncols;
  for (int i = 0; i < ncols; i++) snprintf(l->cols[i], sizeof l->cols[i], "%s", cols[i]);
  l->cap = 256;
  l->buf = mallocCheck(sizeof(double) * (size_t)(l->cap * ncols));
  hid_t f = h5_open(path, "amd-log", 1, NULL);
  if (!h5_exists(f, table)) {
    hid_t g = h5_group_create(f, table);
    for (int i = 0; i < ncols; i++) create_column(g, cols[i], H5T_IEEE_F64LE);
    H5Gclose(g);
    h5_close(f);
    return;
  }
  CHECK(resume_step >= 0, "log '%s' already has a table '%s'", path, table);
  /* resumed: keep rows up to the checkpoint's step, so the log reads as one uninterrupted run */
  hid_t g = h5_group_open(f, table);
  hsize_t dims;
  double *steps = h5_read_f64(g, "step", 1, &dims);
  hsize_t keep = 0;
  while (keep < dims && steps[keep] <= (double)resume_step) keep++;
  free(steps);
  for (int i = 0; i < ncols; i++) {
    if (!h5_exists(g, cols[i])) amd_fatal("log '%s' has no column '%s/%s': it was written by another kind of run", path, table, cols[i]);
    hid_t d = H5Dopen2(g, cols[i], H5P_DEFAULT);
    h5Check(H5Dset_extent(d, &keep), "HDF5: cannot truncate log column '%s'", cols[i]);
    H5Dclose(d);
  }
  H5Gclose(g);
  h5_close(f);
}

void trainlog_append(TrainLog *l, const double *row) {
  if (!l->buf) return;
  if (l->nbuf == l->cap) {
    l->cap *= 2;
    double *nb = realloc(l->buf, sizeof(double) * (size_t)(l->cap * l->ncols));
    CHECK(nb, "out of memory growing the log buffer");
    l->buf = nb;
  }
  memcpy(l->buf + l->nbuf * l->ncols, row, sizeof(double) * (size_t)l->ncols);
  l->nbuf++;
}

void trainlog_flush(TrainLog *l) {
  if (!l->buf || l->nbuf == 0) return;
  hid_t f = h5_open(l->path, "amd-log", 1, NULL);
  hid_t g = h5_group_open(f, l->table);
  double *col = mallocCheck(sizeof(double) * (size_t)l->nbuf);
  for (int c = 0; c < l->ncols; c++) {
    for (long r = 0; r < l->nbuf; r++) col[r] = l->buf[r * l->ncols + c];
    hid_t d = H5Dopen2(g, l->cols[c], H5P_DEFAULT);
    h5Check(d, "log '%s': column '%s' is missing", l->path, l->cols[c]);
    append(d, H5T_NATIVE_DOUBLE, col, (hsize_t)l->nbuf, l->cols[c]);
    H5Dclose(d);
  }
  free(col);
  H5Gclose(g);
  h5_close(f);
  l->nbuf = 0;
}

void trainlog_event(TrainLog *l, long step, const char *message) {
  if (!l->buf) return;
  trainlog_flush(l);
  hid_t f = h5_open(l->path, "amd-log", 1, NULL);
  hid_t g = h5_group_open(f, "events");
  long long s = step;
  hid_t d = H5Dopen2(g, "step", H5P_DEFAULT);
  append(d, H5T_NATIVE_LLONG, &s, 1, "events/step");
  H5Dclose(d);
  hid_t st = str_type();
  d = H5Dopen2(g, "message", H5P_DEFAULT);
  append(d, st, &message, 1, "events/message");
  H5Dclose(d);
  H5Tclose(st);
  H5Gclose(g);
  h5_close(f);
}

void trainlog_close(TrainLog *l) {
  trainlog_flush(l);
  free(l->buf);
  memset(l, 0, sizeof *l);
}
