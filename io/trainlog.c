/* trainlog.c: appending rows to the HDF5 training log, in two copies that a kill cannot both damage.
 * Every change (create, new table, rows, event, rewind) goes first to log.h5.bak, then to log.h5,
 * each copy opened, changed and closed inside a marker file <copy>.dirty created before and removed
 * after. A kill -9 at any moment therefore leaves at most one copy marked, and the other whole and
 * at most one change behind; trainlog_recover() rebuilds the marked copy from the whole one. The
 * cost is a second small append per flush; no whole-file copy happens outside recovery. */
#include "trainlog.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "h5.h"

#define CHUNK 1024

static hid_t str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  return t;
}

/* A column of the type, units and description io/schema.c gives it: counts are int64 (converted
 * from the rows' doubles when appended), measurements float64, messages text. */
static void create_column(hid_t g, const char *name) {
  const SchemaEntry *e = h5_schema(g, name);
  hid_t type = e->type == SCHEMA_INT ? H5T_STD_I64LE : e->type == SCHEMA_FLOAT ? H5T_IEEE_F64LE : -1;
  hid_t text = -1;
  if (e->type == SCHEMA_TEXT) type = text = str_type();
  CHECK(type >= 0, "log column '%s': io/schema.c describes it as %s", name, schema_type_name(e->type));
  hsize_t zero = 0, unlim = H5S_UNLIMITED, chunk = CHUNK;
  hid_t space = H5Screate_simple(1, &zero, &unlim);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  hid_t d = H5Dcreate2(g, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  h5Check(d, "HDF5: cannot create log column '%s'", name);
  h5_describe(d, e);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  if (text >= 0) H5Tclose(text);
}

static hsize_t column_length(hid_t d) {
  hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, NULL);
  H5Sclose(s);
  return n;
}

static int is_integer(hid_t d) {
  hid_t t = H5Dget_type(d);
  int yes = H5Tget_class(t) == H5T_INTEGER;
  H5Tclose(t);
  return yes;
}

/* Appends n values (of memory type mtype) to a 1-D extendable dataset. */
static void append(hid_t d, hid_t mtype, const void *vals, hsize_t n, const char *what) {
  hsize_t old = column_length(d), total = old + n;
  char fn[1024];
  h5Check(H5Dset_extent(d, &total), "HDF5: cannot extend log column '%s' of '%s'", what, h5_filename(d, fn, sizeof fn));
  hid_t fs = H5Dget_space(d);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &old, NULL, &n, NULL);
  hid_t ms = H5Screate_simple(1, &n, NULL);
  errno = 0;
  if (H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, vals) < 0) {
    char why[128];
    h5_filename(d, fn, sizeof fn);
    amd_fatal("HDF5: cannot append to log column '%s' of '%s' (%s)", what, fn, h5_write_failure(fn, why, sizeof why));
  }
  H5Sclose(ms);
  H5Sclose(fs);
}

/* --- the two copies --------------------------------------------------------------------------- */

static void copy_names(const char *path, char *bak, char *mark_main, char *mark_bak, size_t n) {
  snprintf(bak, n, "%s.bak", path);
  snprintf(mark_main, n, "%s.dirty", path);
  snprintf(mark_bak, n, "%s.bak.dirty", path);
}

static void mark(const char *marker) {
  int fd = open(marker, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) amd_fatal("cannot create the log marker '%s': %s", marker, strerror(errno));
  close(fd);
}

static void unmark(const char *marker) {
  if (unlink(marker) != 0 && errno != ENOENT) amd_fatal("cannot remove the log marker '%s': %s", marker, strerror(errno));
}

/* Copies src over dst through dst.tmp and a rename, so dst is never half-written. */
static void copy_file(const char *src, const char *dst) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp", dst);
  FILE *in = fopenCheck(src, "rb"), *out = fopenCheck(tmp, "wb");
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) amd_fatal("cannot write '%s': %s", tmp, strerror(errno));
  CHECK(!ferror(in), "cannot read '%s': %s", src, strerror(errno));
  fclose(in);
  if (fflush(out) != 0 || fsync(fileno(out)) != 0) amd_fatal("cannot write '%s': %s", tmp, strerror(errno));
  fclose(out);
  if (rename(tmp, dst) != 0) amd_fatal("cannot rename '%s' to '%s': %s", tmp, dst, strerror(errno));
}

void trainlog_recover(const char *path) {
  char bak[4200], mark_main[4200], mark_bak[4200];
  copy_names(path, bak, mark_main, mark_bak, sizeof bak);
  if (amd_file_exists(mark_main)) {
    CHECK(amd_file_exists(bak) && !amd_file_exists(mark_bak), "log '%s' and its copy '%s' are both incomplete", path, bak);
    copy_file(bak, path);
    unmark(mark_main);
    amd_log("log: %s was being written when the job stopped; restored it from %s\n", path, bak);
  } else if (amd_file_exists(path) && (amd_file_exists(mark_bak) || !amd_file_exists(bak))) {
    copy_file(path, bak);
    unmark(mark_bak);
  } else if (!amd_file_exists(path) && amd_file_exists(bak)) {
    /* the log itself was lost (deleted, say): its copy is the log, and is never overwritten */
    if (amd_file_exists(mark_bak))
      amd_fatal("log '%s' is missing and its copy '%s' is incomplete (a kill during its last change): move the copy "
                "away to start a new log", path, bak);
    copy_file(bak, path);
    amd_log("log: %s was missing; restored it from %s\n", path, bak);
  }
}

const char *trainlog_whole_copy(const char *path, char *buf, size_t n) {
  char bak[4200], mark_main[4200], mark_bak[4200];
  copy_names(path, bak, mark_main, mark_bak, sizeof bak);
  if (!amd_file_exists(mark_main) || !amd_file_exists(bak)) return path;
  snprintf(buf, n, "%s", bak);
  return buf;
}

static double io_seconds;
static void (*pause_hook)(void);

double trainlog_io_seconds(void) { return io_seconds; }

void trainlog_set_pause_hook(void (*hook)(void)) { pause_hook = hook; }

typedef void (*LogOp)(hid_t f, const void *arg);

/* Applies one change to the .bak copy, then to the log itself (create: new files with the standard
 * attributes and config text), each inside its marker. */
static void apply(const char *path, LogOp op, const void *arg, int create, const char *config_text) {
  double t0 = amd_time();
  char bak[4200], mark_main[4200], mark_bak[4200];
  copy_names(path, bak, mark_main, mark_bak, sizeof bak);
  const char *copies[2] = {bak, path}, *marks[2] = {mark_bak, mark_main};
  for (int c = 0; c < 2; c++) {
    mark(marks[c]);
    hid_t f = create ? h5_create(copies[c], "amd-log", config_text) : h5_open(copies[c], "amd-log", 1, NULL);
    op(f, arg);
    h5_close(f);
    unmark(marks[c]);
  }
  io_seconds += amd_time() - t0;
}

/* --- the changes ------------------------------------------------------------------------------- */

static void op_create(hid_t f, const void *arg) {
  (void)arg;
  hid_t g = h5_group_create(f, "events");
  create_column(g, "step");
  create_column(g, "message");
  H5Gclose(g);
}

typedef struct {
  const TrainLog *l;
  long step; /* open: resume step (-1 fresh); rewind: last step kept */
} TableArg;

/* A float column that a log of an older amd lacks (comm_s, say), when a run resumes it: made, with
 * NaN on the rows kept. Any other missing column means the log is of another kind of run. */
static void add_missing_column(hid_t g, const TrainLog *l, const char *name, hsize_t rows) {
  if (h5_schema(g, name)->type != SCHEMA_FLOAT)
    amd_fatal("log '%s' has no column '%s/%s': it was written by another kind of run", l->path, l->table, name);
  create_column(g, name);
  if (rows == 0) return;
  double *nan = mallocCheck(sizeof(double) * (size_t)rows);
  for (hsize_t r = 0; r < rows; r++) nan[r] = NAN;
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  append(d, H5T_NATIVE_DOUBLE, nan, rows, name);
  H5Dclose(d);
  free(nan);
}

/* Keeps the rows of a table whose step is at most `step`. */
static void truncate_table(hid_t f, const TrainLog *l, long step) {
  hid_t g = h5_group_open(f, l->table);
  hsize_t dims;
  double *steps = h5_read_f64(g, "step", 1, &dims);
  hsize_t keep = 0;
  while (keep < dims && steps[keep] <= (double)step) keep++;
  free(steps);
  for (int i = 0; i < l->ncols; i++) {
    if (!h5_exists(g, l->cols[i])) add_missing_column(g, l, l->cols[i], keep);
    hid_t d = H5Dopen2(g, l->cols[i], H5P_DEFAULT);
    h5Check(H5Dset_extent(d, &keep), "HDF5: cannot truncate log column '%s'", l->cols[i]);
    H5Dclose(d);
  }
  H5Gclose(g);
}

static void op_open_table(hid_t f, const void *arg) {
  const TableArg *a = arg;
  const TrainLog *l = a->l;
  if (!h5_exists(f, l->table)) {
    hid_t g = h5_group_create(f, l->table);
    for (int i = 0; i < l->ncols; i++) create_column(g, l->cols[i]);
    H5Gclose(g);
    return;
  }
  CHECK(a->step >= 0, "log '%s' already has a table '%s'", l->path, l->table);
  /* resumed: keep rows up to the checkpoint's step, so the log reads as one uninterrupted run */
  truncate_table(f, l, a->step);
}

typedef struct {
  const char *table;
  long step;
} DropArg;

/* Keeps the rows of every column of a table, when the log has it, whose step is at most `step`. */
static void op_drop_beyond(hid_t f, const void *arg) {
  const DropArg *a = arg;
  if (!h5_exists(f, a->table)) return;
  hid_t g = h5_group_open(f, a->table);
  hsize_t dims;
  double *steps = h5_read_f64(g, "step", 1, &dims);
  hsize_t keep = 0;
  while (keep < dims && steps[keep] <= (double)a->step) keep++;
  free(steps);
  H5G_info_t info;
  h5Check(H5Gget_info(g, &info), "HDF5: cannot list log table '%s'", a->table);
  for (hsize_t i = 0; i < info.nlinks; i++) {
    char name[256];
    h5Check(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) > 0 ? 0 : -1,
            "HDF5: cannot list log table '%s'", a->table);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    h5Check(H5Dset_extent(d, &keep), "HDF5: cannot truncate log column '%s/%s'", a->table, name);
    H5Dclose(d);
  }
  H5Gclose(g);
}

static void op_rewind(hid_t f, const void *arg) {
  const TableArg *a = arg;
  truncate_table(f, a->l, a->step);
}

static void op_append_rows(hid_t f, const void *arg) {
  const TrainLog *l = arg;
  hid_t g = h5_group_open(f, l->table);
  double *col = mallocCheck(sizeof(double) * (size_t)l->nbuf);
  long long *counts = mallocCheck(sizeof(long long) * (size_t)l->nbuf);
  for (int c = 0; c < l->ncols; c++) {
    for (long r = 0; r < l->nbuf; r++) col[r] = l->buf[r * l->ncols + c];
    hid_t d = H5Dopen2(g, l->cols[c], H5P_DEFAULT);
    h5Check(d, "log '%s': column '%s' is missing", l->path, l->cols[c]);
    if (is_integer(d)) { /* a count column (a log written before counts were integers is float64) */
      for (long r = 0; r < l->nbuf; r++) {
        CHECK(isfinite(col[r]), "log '%s': count column '%s/%s' got %g", l->path, l->table, l->cols[c], col[r]);
        counts[r] = llround(col[r]);
      }
      append(d, H5T_NATIVE_LLONG, counts, (hsize_t)l->nbuf, l->cols[c]);
    } else {
      append(d, H5T_NATIVE_DOUBLE, col, (hsize_t)l->nbuf, l->cols[c]);
    }
    H5Dclose(d);
    if (c == 0 && pause_hook) {
      /* testing: the file on disk now has a longer step column than the others */
      h5Check(H5Fflush(f, H5F_SCOPE_LOCAL), "HDF5: cannot flush the log");
      pause_hook();
    }
  }
  free(col);
  free(counts);
  H5Gclose(g);
}

typedef struct {
  long step;
  const char *message;
} EventArg;

static void op_event(hid_t f, const void *arg) {
  const EventArg *a = arg;
  hid_t g = h5_group_open(f, "events");
  long long s = a->step;
  hid_t d = H5Dopen2(g, "step", H5P_DEFAULT);
  append(d, H5T_NATIVE_LLONG, &s, 1, "events/step");
  H5Dclose(d);
  hid_t st = str_type();
  d = H5Dopen2(g, "message", H5P_DEFAULT);
  append(d, st, &a->message, 1, "events/message");
  H5Dclose(d);
  H5Tclose(st);
  H5Gclose(g);
}

/* --- the interface ------------------------------------------------------------------------------ */

void trainlog_create(const char *path, const char *config_text) {
  if (amd_rank() != 0) return;
  apply(path, op_create, NULL, 1, config_text);
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
  trainlog_recover(path);
  TableArg a = {l, resume_step};
  apply(path, op_open_table, &a, 0, NULL);
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
  apply(l->path, op_append_rows, l, 0, NULL);
  l->nbuf = 0;
}

void trainlog_rewind(TrainLog *l, long step) {
  if (!l->buf) return;
  long keep = 0;
  while (keep < l->nbuf && l->buf[keep * l->ncols] <= (double)step) keep++;
  l->nbuf = keep;
  TableArg a = {l, step};
  apply(l->path, op_rewind, &a, 0, NULL);
  trainlog_flush(l);
}

void trainlog_drop_beyond(const char *path, const char *table, long step) {
  if (amd_rank() != 0) return;
  DropArg a = {table, step};
  apply(path, op_drop_beyond, &a, 0, NULL);
}

void trainlog_event(TrainLog *l, long step, const char *message) {
  if (!l->buf) return;
  trainlog_flush(l);
  EventArg a = {step, message};
  apply(l->path, op_event, &a, 0, NULL);
}

void trainlog_close(TrainLog *l) {
  trainlog_flush(l);
  free(l->buf);
  memset(l, 0, sizeof *l);
}
