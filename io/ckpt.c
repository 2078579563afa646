/* ckpt.c: writing and reading checkpoint files (ckpt.h). */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "h5.h"

/* /counters holds four values; their order in the file: */
enum { COUNTER_FAKE_UPDATES, COUNTER_STUDENT_STEPS, COUNTER_ROLLBACKS, COUNTER_RESERVED, NCOUNTERS };

static void (*pause_hook)(void);

void ckpt_set_pause_hook(void (*hook)(void)) { pause_hook = hook; }

static hid_t layout_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(CkptTensor));
  hid_t s = H5Tcopy(H5T_C_S1);
  H5Tset_size(s, CKPT_NAME_MAX);
  hsize_t four = 4;
  hid_t a = H5Tarray_create2(H5T_NATIVE_INT, 1, &four);
  H5Tinsert(t, "name", HOFFSET(CkptTensor, name), s);
  H5Tinsert(t, "offset", HOFFSET(CkptTensor, offset), H5T_NATIVE_LLONG);
  H5Tinsert(t, "ndim", HOFFSET(CkptTensor, ndim), H5T_NATIVE_INT);
  H5Tinsert(t, "shape", HOFFSET(CkptTensor, shape), a);
  H5Tclose(s);
  H5Tclose(a);
  return t;
}

void ckpt_begin(CkptWriter *w, const char *run_dir, const CkptState *st, const char *config_text,
                const char *data_path) {
  snprintf(w->run_dir, sizeof w->run_dir, "%s", run_dir);
  snprintf(w->path, sizeof w->path, "%s/ckpt_%08ld.h5", run_dir, st->step);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path);
  w->file = h5_create_parallel(w->tmp, "amd-checkpoint", config_text);
  w->net = -1;
  h5_attr_write_i64(w->file, "step", st->step);
  h5_attr_write_i64(w->file, "seed", (long long)st->seed);
  h5_attr_write_i64(w->file, "data_cursor", st->data_cursor);
  h5_attr_write_f64(w->file, "time", st->time);
  h5_attr_write_str(w->file, "data", data_path ? data_path : "");
  if (st->teacher[0]) h5_attr_write_str(w->file, "teacher", st->teacher);
  if (st->data_fingerprint[0]) h5_attr_write_str(w->file, "data_fingerprint", st->data_fingerprint);
  double counters[NCOUNTERS] = {0};
  counters[COUNTER_FAKE_UPDATES] = (double)st->fake_updates;
  counters[COUNTER_STUDENT_STEPS] = (double)st->student_steps;
  counters[COUNTER_ROLLBACKS] = (double)st->rollbacks;
  h5_write_slab(w->file, "counters", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, counters, NCOUNTERS, 0,
                amd_rank() == 0 ? NCOUNTERS : 0);
}

void ckpt_begin_net(CkptWriter *w, const char *net, const char *kind, const CkptAttr *attrs, int nattrs) {
  w->net = h5_group_create(w->file, net);
  h5_attr_write_str(w->net, "kind", kind);
  for (int i = 0; i < nattrs; i++) h5_attr_write_i64(w->net, attrs[i].key, attrs[i].value);
}

void ckpt_write_vector(CkptWriter *w, const char *name, const float *host, long n, long begin, long count) {
  CHECK(begin >= 0 && count >= 0 && begin + count <= n, "checkpoint: rank %d writes values %ld..%ld of '%s' of %ld",
        amd_rank(), begin, begin + count, name, n);
  h5_write_slab(w->net, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, host, (hsize_t)n, (hsize_t)begin, (hsize_t)count);
}

void ckpt_write_layout(CkptWriter *w, const CkptTensor *rows, int nrows) {
  hid_t t = layout_type();
  hsize_t nt = (hsize_t)nrows;
  h5_write_slab(w->net, "layout", t, t, rows, nt, 0, amd_rank() == 0 ? nt : 0);
  H5Tclose(t);
}

void ckpt_end_net(CkptWriter *w) {
  H5Gclose(w->net);
  w->net = -1;
}

static void sync_file(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) amd_fatal("cannot reopen '%s' to sync it: %s", path, strerror(errno));
  if (fsync(fd) != 0) amd_fatal("fsync of '%s' failed: %s", path, strerror(errno));
  close(fd);
}

static int parse_step(const char *name, long *step) {
  char tail[8];
  return sscanf(name, "ckpt_%ld.h%2s", step, tail) == 2 && strcmp(tail, "5") == 0 &&
         strlen(name) > 8 && strcmp(name + strlen(name) - 3, ".h5") == 0;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

int ckpt_list(const char *run_dir, long *steps, int max) {
  DIR *dir = opendir(run_dir);
  if (!dir) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) && n < max) {
    long s;
    if (parse_step(e->d_name, &s)) steps[n++] = s;
  }
  closedir(dir);
  qsort(steps, (size_t)n, sizeof(long), cmp_long);
  return n;
}

static void prune(const char *run_dir, int keep) {
  long steps[4096];
  int n = ckpt_list(run_dir, steps, 4096);
  for (int i = 0; i + keep < n; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", run_dir, steps[i]);
    if (unlink(path) != 0) fprintf(stderr, "amd: warning: cannot remove old checkpoint '%s': %s\n", path, strerror(errno));
  }
}

void ckpt_commit(CkptWriter *w, int keep) {
  if (pause_hook) pause_hook(); /* testing: a kill -9 here must leave the previous one whole */
  h5Check(H5Fflush(w->file, H5F_SCOPE_GLOBAL), "HDF5: flushing '%s' failed (disk full?)", w->tmp);
  h5_close(w->file);
  /* every rank has closed the file: it is complete, and rank 0 alone publishes it */
  MPI_Barrier(MPI_COMM_WORLD);
  if (amd_rank() == 0) {
    sync_file(w->tmp);
    if (rename(w->tmp, w->path) != 0) amd_fatal("cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
    if (keep > 0) prune(w->run_dir, keep);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

long ckpt_latest(const char *run_dir, char *path, size_t n) {
  DIR *dir = opendir(run_dir);
  if (!dir) return -1;
  long best = -1;
  struct dirent *e;
  while ((e = readdir(dir))) {
    long s;
    if (parse_step(e->d_name, &s) && s > best) best = s;
  }
  closedir(dir);
  if (best >= 0) snprintf(path, n, "%s/ckpt_%08ld.h5", run_dir, best);
  return best;
}

hid_t ckpt_open(const char *path) { return h5_open(path, "amd-checkpoint", 0, NULL); }

void ckpt_close(hid_t f) { h5_close(f); }

void ckpt_read_state(hid_t f, const char *path, CkptState *st) {
  memset(st, 0, sizeof *st);
  st->step = (long)h5_attr_read_i64(f, "step");
  st->seed = (uint64_t)h5_attr_read_i64(f, "seed");
  st->data_cursor = (long)h5_attr_read_i64(f, "data_cursor");
  /* the training clock feeds only the log's time column: absent (an older file) or damaged, it
   * restarts at 0 rather than refusing the checkpoint */
  double t = h5_attr_exists(f, "time") ? h5_attr_read_f64(f, "time") : 0;
  st->time = isfinite(t) && t >= 0 ? t : 0;
  if (h5_attr_exists(f, "teacher")) {
    char *t = h5_attr_read_str(f, "teacher");
    snprintf(st->teacher, sizeof st->teacher, "%s", t);
    free(t);
  }
  if (h5_attr_exists(f, "data_fingerprint")) {
    char *t = h5_attr_read_str(f, "data_fingerprint");
    snprintf(st->data_fingerprint, sizeof st->data_fingerprint, "%s", t);
    free(t);
  }
  hsize_t d;
  double *counters = h5_read_f64(f, "counters", 1, &d);
  CHECK(d == NCOUNTERS, "'%s': /counters has %llu entries, expected %d", path, (unsigned long long)d, NCOUNTERS);
  st->fake_updates = (long)counters[COUNTER_FAKE_UPDATES];
  st->student_steps = (long)counters[COUNTER_STUDENT_STEPS];
  st->rollbacks = (long)counters[COUNTER_ROLLBACKS];
  free(counters);
}

char *ckpt_net_kind(hid_t f, const char *path, const char *net) {
  if (!h5_exists(f, net)) amd_input_error("'%s' holds no network '%s'", path, net);
  hid_t g = h5_group_open(f, net);
  char *kind = h5_attr_read_str(g, "kind");
  H5Gclose(g);
  return kind;
}

long long ckpt_net_attr(hid_t f, const char *net, const char *key, int required) {
  hid_t g = h5_group_open(f, net);
  long long v = required || h5_attr_exists(g, key) ? h5_attr_read_i64(g, key) : 0;
  H5Gclose(g);
  return v;
}

void ckpt_read_vector(hid_t f, const char *path, const char *net, const char *name, long n, long begin, long count,
                      float *host) {
  hid_t g = h5_group_open(f, net);
  hsize_t d = h5_len_1d(g, name);
  if ((long)d != n)
    amd_fatal("'%s': /%s/%s has %llu values, the model has %ld parameters", path, net, name, (unsigned long long)d, n);
  h5_read_f32_range(g, name, (hsize_t)begin, (hsize_t)count, host);
  H5Gclose(g);
}

void ckpt_resolve(const char *file_or_run, char *path, size_t n) {
  struct stat st;
  snprintf(path, n, "%s", file_or_run);
  if (stat(file_or_run, &st) == 0 && S_ISDIR(st.st_mode) && ckpt_latest(file_or_run, path, n) < 0)
    amd_input_error("run folder '%s' holds no checkpoint", file_or_run);
}

int ckpt_has_net(const char *path, const char *net) {
  hid_t f = h5_open(path, "amd-checkpoint", 0, NULL);
  int has = h5_exists(f, net);
  h5_close(f);
  return has;
}

char *ckpt_read_attr(const char *path, const char *name) {
  hid_t f = h5_open(path, "amd-checkpoint", 0, NULL);
  char *s = h5_attr_exists(f, name) ? h5_attr_read_str(f, name) : strdup("");
  h5_close(f);
  return s;
}

/* --- validation: every failure is a reason in why, never fatal ---------------------------------- */
static int read_i64(hid_t obj, const char *name, long long *v) {
  if (H5Aexists(obj, name) <= 0) return 1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  int bad = a < 0 || H5Aread(a, H5T_NATIVE_LLONG, v) < 0;
  if (a >= 0) H5Aclose(a);
  return bad;
}

/* A 1-D float dataset of n finite values (and none negative when nonneg): 0, or 1 with why. */
static int check_vector(hid_t g, const char *net, const char *name, long long n, int nonneg, char *why, size_t wn) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  if (d < 0) return snprintf(why, wn, "/%s/%s cannot be opened", net, name), 1;
  hid_t fs = H5Dget_space(d);
  hsize_t len = 0;
  int bad = H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, &len, NULL) != 1 ||
            (long long)len != n;
  if (bad) snprintf(why, wn, "/%s/%s has %llu values, not the %lld of num_params", net, name, (unsigned long long)len, n);
  enum { CHUNK = 1 << 20 };
  float *buf = bad ? NULL : mallocCheck(sizeof(float) * CHUNK);
  for (hsize_t at = 0; !bad && at < len; at += CHUNK) {
    hsize_t count = len - at < CHUNK ? len - at : CHUNK;
    hid_t ms = H5Screate_simple(1, &count, NULL);
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &count, NULL) < 0 ||
        H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0) {
      bad = 1;
      snprintf(why, wn, "/%s/%s cannot be read (truncated or damaged)", net, name);
    }
    for (hsize_t i = 0; !bad && i < count; i++)
      if (!isfinite(buf[i]) || (nonneg && buf[i] < 0)) {
        bad = 1;
        snprintf(why, wn, "/%s/%s[%llu] = %g", net, name, (unsigned long long)(at + i), buf[i]);
      }
    H5Sclose(ms);
  }
  free(buf);
  H5Sclose(fs);
  H5Dclose(d);
  return bad;
}

/* /counters: NCOUNTERS doubles; 0, or 1 when missing or unreadable. */
static int read_counters(hid_t f, double *out) {
  if (H5Lexists(f, "counters", H5P_DEFAULT) <= 0) return 1;
  hid_t d = H5Dopen2(f, "counters", H5P_DEFAULT);
  if (d < 0) return 1;
  hid_t fs = H5Dget_space(d);
  hsize_t len = 0;
  int bad = H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, &len, NULL) != 1 ||
            len != NCOUNTERS || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0;
  H5Sclose(fs);
  H5Dclose(d);
  return bad;
}

typedef struct {
  char *why;
  size_t n;
  int bad;
} NetCheck;

/* H5Literate's visit of a root member: a group is a network (datasets such as /counters pass). */
static herr_t check_net(hid_t root, const char *net, const H5L_info_t *info, void *arg) {
  (void)info;
  NetCheck *c = arg;
  hid_t g = H5Gopen2(root, net, H5P_DEFAULT);
  if (g < 0) return 0; /* not a group: /counters, say */
  long long np = 0;
  if (read_i64(g, "num_params", &np) || np <= 0) {
    c->bad = 1;
    snprintf(c->why, c->n, "/%s has no valid num_params", net);
  }
  static const char *const vecs[] = {"params", "adam_m", "adam_v"};
  for (int i = 0; i < 3 && !c->bad; i++)
    if (i == 0 || H5Lexists(g, vecs[i], H5P_DEFAULT) > 0) c->bad = check_vector(g, net, vecs[i], np, i == 2, c->why, c->n);
  H5Gclose(g);
  return c->bad; /* nonzero stops the iteration */
}

int ckpt_validate(const char *path, long step, char *why, size_t n) {
  hid_t fapl = h5_fapl(); /* also quiets HDF5's own error printing */
  hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
  H5Pclose(fapl);
  if (f < 0) return snprintf(why, n, "not an HDF5 file that opens (truncated or damaged)"), 1;
  long long st = -1;
  double counters[NCOUNTERS];
  int bad = 1;
  if (read_i64(f, "step", &st) || st != step) {
    snprintf(why, n, "its step attribute (%lld) is not the step %ld of its name", st, step);
  } else if (read_counters(f, counters)) {
    snprintf(why, n, "/counters is missing or damaged");
  } else {
    bad = 0;
    for (int i = 0; i < NCOUNTERS && !bad; i++)
      if (!isfinite(counters[i]) || counters[i] < 0 || counters[i] != floor(counters[i]) || counters[i] > 9.0e15)
        bad = 1, snprintf(why, n, "/counters[%d] = %g is not a count", i, counters[i]);
  }
  if (!bad) {
    NetCheck c = {why, n, 0};
    hsize_t idx = 0;
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, check_net, &c) < 0) bad = 1;
    else bad = c.bad;
    if (bad && !c.bad) snprintf(why, n, "its networks cannot be listed");
  }
  H5Fclose(f);
  return bad;
}
