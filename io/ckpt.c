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

/* --- checksums: sum mod 2^64 over i of mix64(bits_i ^ mix64(i)), i the global index of an element
 * and bits_i its bit pattern (a float's 32 bits, a double's 64, a layout row's hash), so ranks sum
 * the parts of their ranges in any order and a change of any one element always changes the sum
 * (mix64, SplitMix64's finalizer, is a bijection). docs/DESIGN.md section 6.3. ---------------------- */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t sum_f32(const float *x, uint64_t first, uint64_t count) {
  uint64_t s = 0;
  for (uint64_t i = 0; i < count; i++) {
    uint32_t b;
    memcpy(&b, x + i, sizeof b);
    s += mix64(b ^ mix64(first + i));
  }
  return s;
}

static uint64_t sum_f64(const double *x, uint64_t count) {
  uint64_t s = 0;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t b;
    memcpy(&b, x + i, sizeof b);
    s += mix64(b ^ mix64(i));
  }
  return s;
}

/* a layout row's fields (not its padding bytes): FNV-1a of the name, then each number mixed in */
static uint64_t sum_layout(const CkptTensor *rows, uint64_t count) {
  uint64_t s = 0;
  for (uint64_t i = 0; i < count; i++) {
    const CkptTensor *r = rows + i;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < sizeof r->name && r->name[k]; k++) h = (h ^ (unsigned char)r->name[k]) * 0x100000001b3ULL;
    h = mix64(h ^ (uint64_t)r->offset);
    h = mix64(h ^ (uint64_t)(uint32_t)r->ndim);
    for (int k = 0; k < 4; k++) h = mix64(h ^ (uint64_t)(uint32_t)r->shape[k]);
    s += mix64(h ^ mix64(i));
  }
  return s;
}

/* The attribute `checksum` (uint64) of dataset `name` of loc; every rank passes the same value. */
static void write_checksum(hid_t loc, const char *name, uint64_t sum) {
  char fn[1024];
  h5_filename(loc, fn, sizeof fn);
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) amd_fatal("HDF5: cannot reopen dataset '%s' in '%s' for its checksum", name, fn);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(d, "checksum", H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, H5T_NATIVE_UINT64, &sum) < 0)
    amd_fatal("HDF5: cannot write the checksum of '%s' in '%s' (disk full?)", name, fn);
  H5Aclose(a);
  H5Sclose(space);
  H5Dclose(d);
}

/* The checksum attribute of an open dataset: 1 and *sum when present, 0 when absent (a checkpoint
 * written before checksums), -1 when unreadable. */
static int read_checksum(hid_t d, uint64_t *sum) {
  if (H5Aexists(d, "checksum") <= 0) return 0;
  hid_t a = H5Aopen(d, "checksum", H5P_DEFAULT);
  int ok = a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, sum) >= 0;
  if (a >= 0) H5Aclose(a);
  return ok ? 1 : -1;
}

static uint64_t allreduce_sum_u64(uint64_t x) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return x;
  uint64_t all = 0;
  if (MPI_Allreduce(&x, &all, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
    amd_fatal("checkpoint: the checksum reduction failed");
  return all;
}

void ckpt_begin(CkptWriter *w, const char *run_dir, const CkptState *st, const char *config_text,
                const char *data_path) {
  snprintf(w->run_dir, sizeof w->run_dir, "%s", run_dir);
  snprintf(w->path, sizeof w->path, "%s/ckpt_%08ld.h5", run_dir, st->step);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path);
  w->step = st->step;
  w->file = h5_create_parallel(w->tmp, "amd-checkpoint", config_text);
  w->net = -1;
  h5_attr_write_i64(w->file, "step", st->step);
  h5_attr_write_i64(w->file, "seed", (long long)st->seed);
  h5_attr_write_i64(w->file, "data_cursor", st->data_cursor);
  h5_attr_write_f64(w->file, "time", st->time);
  h5_attr_write_str(w->file, "data", data_path ? data_path : "");
  if (st->teacher[0]) h5_attr_write_str(w->file, "teacher", st->teacher);
  if (st->data_fingerprint[0]) h5_attr_write_str(w->file, "data_fingerprint", st->data_fingerprint);
  if (st->teacher_fingerprint[0]) h5_attr_write_str(w->file, "teacher_fingerprint", st->teacher_fingerprint);
  double counters[NCOUNTERS] = {0};
  counters[COUNTER_FAKE_UPDATES] = (double)st->fake_updates;
  counters[COUNTER_STUDENT_STEPS] = (double)st->student_steps;
  counters[COUNTER_ROLLBACKS] = (double)st->rollbacks;
  h5_write_slab(w->file, "counters", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, counters, NCOUNTERS, 0,
                amd_rank() == 0 ? NCOUNTERS : 0);
  write_checksum(w->file, "counters", sum_f64(counters, NCOUNTERS)); /* every rank holds the same state */
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
  write_checksum(w->net, name, allreduce_sum_u64(sum_f32(host, (uint64_t)begin, (uint64_t)count)));
}

void ckpt_write_layout(CkptWriter *w, const CkptTensor *rows, int nrows) {
  hid_t t = layout_type();
  hsize_t nt = (hsize_t)nrows;
  h5_write_slab(w->net, "layout", t, t, rows, nt, 0, amd_rank() == 0 ? nt : 0);
  H5Tclose(t);
  /* rank 0's rows are the ones written: its checksum, broadcast as a sum with zeros */
  write_checksum(w->net, "layout", allreduce_sum_u64(amd_rank() == 0 ? sum_layout(rows, nt) : 0));
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

/* The step attribute of a checkpoint file, or -1 when it cannot be read (never fatal). */
static long long stored_step(const char *path) {
  hid_t fapl = h5_fapl();
  hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
  H5Pclose(fapl);
  long long step = -1;
  if (f < 0) return -1;
  hid_t a = H5Aexists(f, "step") > 0 ? H5Aopen(f, "step", H5P_DEFAULT) : -1;
  if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &step) < 0) step = -1;
  if (a >= 0) H5Aclose(a);
  H5Fclose(f);
  return step;
}

/* ckpt.keep after writing the checkpoint of step `now`: keeps the newest `keep` of this run's own
 * checkpoints, the one just written included. Only a file whose step attribute is the step of its
 * name and at most `now` counts, and only such files are removed: a misnamed copy (ckpt_99999999.h5
 * holding step 300), an unreadable file and a checkpoint beyond `now` (left by a run that went back
 * to an older one) are left alone, with a note the first time, so pruning never removes the
 * checkpoint just written nor a file it cannot tell is an older one of this run. */
static void prune(const char *run_dir, long now, int keep) {
  static int noted;
  long steps[4096];
  int n = ckpt_list(run_dir, steps, 4096), kept = 0;
  if (n <= keep) return; /* nothing to remove: no file need be opened */
  for (int i = n - 1; i >= 0; i--) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", run_dir, steps[i]);
    long long inside = steps[i] == now ? now : stored_step(path);
    if (steps[i] > now || inside != steps[i]) {
      if (!noted++)
        fprintf(stderr, "amd: note: ckpt.keep leaves '%s' alone: %s\n", path,
                steps[i] > now ? "it is beyond the step just written" : "its step attribute is not its name's (a copy, or damaged)");
      continue;
    }
    if (++kept <= keep) continue;
    if (unlink(path) != 0) fprintf(stderr, "amd: warning: cannot remove old checkpoint '%s': %s\n", path, strerror(errno));
  }
}

void ckpt_commit(CkptWriter *w, int keep) {
  if (pause_hook) pause_hook(); /* testing: a kill -9 here must leave the previous one whole */
  char why[128];
  errno = 0;
  h5Check(H5Fflush(w->file, H5F_SCOPE_GLOBAL), "HDF5: flushing '%s' failed (%s)", w->tmp,
          h5_write_failure(w->tmp, why, sizeof why));
  h5_close(w->file);
  /* every rank has closed the file: it is complete, and rank 0 alone publishes it */
  MPI_Barrier(MPI_COMM_WORLD);
  if (amd_rank() == 0) {
    sync_file(w->tmp);
    if (rename(w->tmp, w->path) != 0) amd_fatal("cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
    if (keep > 0) prune(w->run_dir, w->step, keep);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

long ckpt_newest_good(const char *run_dir, char *path, size_t n, CkptPassedOver passed, void *ctx) {
  long steps[4096];
  int k = ckpt_list(run_dir, steps, 4096);
  char why[512];
  for (int i = k - 1; i >= 0; i--) {
    snprintf(path, n, "%s/ckpt_%08ld.h5", run_dir, steps[i]);
    if (ckpt_validate(path, steps[i], why, sizeof why) == 0) return steps[i];
    if (passed) passed(ctx, path, why);
  }
  return k > 0 ? -2 : -1;
}

static void say_passed_over(void *ctx, const char *path, const char *why) {
  (void)ctx;
  amd_log("checkpoint %s is damaged (%s): passed over\n", path, why);
}

long ckpt_latest(const char *run_dir, char *path, size_t n) {
  long step = ckpt_newest_good(run_dir, path, n, say_passed_over, NULL);
  return step >= 0 ? step : -1;
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
  if (h5_attr_exists(f, "teacher_fingerprint")) {
    char *t = h5_attr_read_str(f, "teacher_fingerprint");
    snprintf(st->teacher_fingerprint, sizeof st->teacher_fingerprint, "%s", t);
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
  char why[512];
  snprintf(path, n, "%s", file_or_run);
  if (stat(file_or_run, &st) == 0 && S_ISDIR(st.st_mode)) {
    long step = ckpt_newest_good(file_or_run, path, n, say_passed_over, NULL);
    if (step == -1) amd_input_error("run folder '%s' holds no checkpoint", file_or_run);
    if (step == -2)
      amd_input_error("run folder '%s': no checkpoint can be trusted (each is named above, with why)", file_or_run);
    return;
  }
  if (stat(file_or_run, &st) != 0) amd_input_error("checkpoint '%s' does not exist", file_or_run);
  if (ckpt_validate(path, -1, why, sizeof why) != 0) amd_input_error("checkpoint '%s' is damaged: %s", path, why);
}

void ckpt_resolve_shared(const char *file_or_run, char *path, size_t n) {
  int init = 0, size = 1;
  MPI_Initialized(&init);
  if (init) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size == 1) {
    ckpt_resolve(file_or_run, path, n);
    return;
  }
  /* rank 0 reads the files; the others take its answer (a failure there ends every rank) */
  char buf[4200] = "";
  if (amd_rank() == 0) ckpt_resolve(file_or_run, buf, sizeof buf);
  if (MPI_Bcast(buf, (int)sizeof buf, MPI_CHAR, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    amd_fatal("checkpoint: broadcasting the path of '%s' failed", file_or_run);
  snprintf(path, n, "%s", buf);
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

/* A 1-D float dataset of n finite values (and none negative when nonneg) whose checksum, when it
 * has one, matches: 0, or 1 with why. */
static int check_vector(hid_t g, const char *net, const char *name, long long n, int nonneg, char *why, size_t wn) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  if (d < 0) return snprintf(why, wn, "/%s/%s cannot be opened", net, name), 1;
  hid_t fs = H5Dget_space(d);
  hsize_t len = 0;
  int bad = H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, &len, NULL) != 1 ||
            (long long)len != n;
  if (bad) snprintf(why, wn, "/%s/%s has %llu values, not the %lld of num_params", net, name, (unsigned long long)len, n);
  uint64_t stored = 0, sum = 0;
  int has_sum = bad ? 0 : read_checksum(d, &stored);
  if (has_sum < 0) bad = 1, snprintf(why, wn, "/%s/%s has an unreadable checksum", net, name);
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
    if (!bad) sum += sum_f32(buf, at, count);
    H5Sclose(ms);
  }
  if (!bad && has_sum && sum != stored)
    bad = 1, snprintf(why, wn, "/%s/%s does not match its checksum (stored %016llx, computed %016llx)", net, name,
                      (unsigned long long)stored, (unsigned long long)sum);
  free(buf);
  H5Sclose(fs);
  H5Dclose(d);
  return bad;
}

/* /<net>/layout, when it has a checksum: its rows must match it. 0, or 1 with why. */
static int check_layout(hid_t g, const char *net, char *why, size_t wn) {
  if (H5Lexists(g, "layout", H5P_DEFAULT) <= 0) return 0;
  hid_t d = H5Dopen2(g, "layout", H5P_DEFAULT);
  if (d < 0) return snprintf(why, wn, "/%s/layout cannot be opened", net), 1;
  uint64_t stored = 0;
  int has_sum = read_checksum(d, &stored), bad = has_sum < 0;
  if (bad) snprintf(why, wn, "/%s/layout has an unreadable checksum", net);
  hid_t fs = H5Dget_space(d);
  hsize_t len = 0;
  if (!bad && has_sum &&
      (H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, &len, NULL) != 1 || len > (1u << 24)))
    bad = 1, snprintf(why, wn, "/%s/layout is not a list of tensors", net);
  if (!bad && has_sum) {
    CkptTensor *rows = callocCheck(len ? len : 1, sizeof *rows);
    hid_t t = layout_type();
    if (len && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0)
      bad = 1, snprintf(why, wn, "/%s/layout cannot be read (truncated or damaged)", net);
    else if (sum_layout(rows, len) != stored)
      bad = 1, snprintf(why, wn, "/%s/layout does not match its checksum", net);
    H5Tclose(t);
    free(rows);
  }
  H5Sclose(fs);
  H5Dclose(d);
  return bad;
}

/* /counters: NCOUNTERS doubles that match their checksum, when they have one; 0, or 1 when missing,
 * unreadable (2 when they do not match). */
static int read_counters(hid_t f, double *out) {
  if (H5Lexists(f, "counters", H5P_DEFAULT) <= 0) return 1;
  hid_t d = H5Dopen2(f, "counters", H5P_DEFAULT);
  if (d < 0) return 1;
  hid_t fs = H5Dget_space(d);
  hsize_t len = 0;
  int bad = H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, &len, NULL) != 1 ||
            len != NCOUNTERS || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0;
  uint64_t stored = 0;
  int has_sum = bad ? 0 : read_checksum(d, &stored);
  if (has_sum < 0) bad = 1;
  else if (has_sum && sum_f64(out, NCOUNTERS) != stored) bad = 2;
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
  if (!c->bad) c->bad = check_layout(g, net, c->why, c->n);
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
  int bad = 1, counters_bad;
  if (read_i64(f, "step", &st) || (step >= 0 && st != step)) {
    snprintf(why, n, "its step attribute (%lld) is not the step %ld of its name", st, step);
  } else if (st < 0) {
    snprintf(why, n, "its step attribute (%lld) is negative", st);
  } else if ((counters_bad = read_counters(f, counters)) != 0) {
    snprintf(why, n, counters_bad == 2 ? "/counters does not match its checksum" : "/counters is missing or damaged");
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

void ckpt_net_fingerprint(const char *path, const char *net, char *out, size_t n) {
  char name[CKPT_NAME_MAX + 16];
  snprintf(name, sizeof name, "%s/params", net);
  out[0] = '\0';
  hid_t f = ckpt_open(path);
  if (!h5_exists(f, name)) amd_input_error("checkpoint '%s' holds no network '%s'", path, net);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) amd_input_error("checkpoint '%s': cannot open /%s", path, name);
  uint64_t sum;
  if (read_checksum(d, &sum) == 1) snprintf(out, n, "%llu params, checksum %016llx", (unsigned long long)h5_len_1d(f, name),
                                            (unsigned long long)sum);
  H5Dclose(d);
  ckpt_close(f);
}
