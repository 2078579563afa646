/* ckpt.c: writing and loading checkpoints. */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "h5.h"
#include "ops.h"
#include "zero.h"
#include "runctl.h"

typedef struct {
  char name[MODEL_NAME_MAX];
  long long offset;
  int ndim;
  int shape[4];
} LayoutRow;

static hid_t layout_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(LayoutRow));
  hid_t s = H5Tcopy(H5T_C_S1);
  H5Tset_size(s, MODEL_NAME_MAX);
  hsize_t four = 4;
  hid_t a = H5Tarray_create2(H5T_NATIVE_INT, 1, &four);
  H5Tinsert(t, "name", HOFFSET(LayoutRow, name), s);
  H5Tinsert(t, "offset", HOFFSET(LayoutRow, offset), H5T_NATIVE_LLONG);
  H5Tinsert(t, "ndim", HOFFSET(LayoutRow, ndim), H5T_NATIVE_INT);
  H5Tinsert(t, "shape", HOFFSET(LayoutRow, shape), a);
  H5Tclose(s);
  H5Tclose(a);
  return t;
}

/* This rank's part [begin, end) of the global vector `name` of n values: values from dev, which
 * holds [dev_begin, dev_begin + dev_n) of the vector (backend memory). */
static void write_vector(hid_t g, const char *name, const float *dev, long dev_begin, long dev_n, long n) {
  long begin, end;
  zero_shard(n, amd_rank(), dist_size(), &begin, &end);
  CHECK(begin >= dev_begin && end <= dev_begin + dev_n,
        "checkpoint: rank %d holds values %ld..%ld of '%s' but must write %ld..%ld", amd_rank(), dev_begin,
        dev_begin + dev_n, name, begin, end);
  float *host = mallocCheck(sizeof(float) * (size_t)(end > begin ? end - begin : 1));
  ops->to_host(host, dev + (begin - dev_begin), sizeof(float) * (size_t)(end - begin));
  h5_write_slab(g, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, host, (hsize_t)n, (hsize_t)begin, (hsize_t)(end - begin));
  free(host);
}

static void write_net(hid_t f, const CkptNet *net) {
  const Model *m = net->model;
  hid_t g = h5_group_create(f, net->name);
  h5_attr_write_str(g, "kind", m->cfg.kind);
  h5_attr_write_i64(g, "dim", m->cfg.dim);
  h5_attr_write_i64(g, "num_classes", m->cfg.num_classes);
  h5_attr_write_i64(g, "width", m->cfg.width);
  h5_attr_write_i64(g, "depth", m->cfg.depth);
  h5_attr_write_i64(g, "temb_dim", m->cfg.temb_dim);
  h5_attr_write_i64(g, "img_channels", m->cfg.img_channels);
  h5_attr_write_i64(g, "img_size", m->cfg.img_size);
  h5_attr_write_i64(g, "patch", m->cfg.patch);
  h5_attr_write_i64(g, "heads", m->cfg.heads);
  h5_attr_write_i64(g, "num_params", m->num_params);
  write_vector(g, "params", m->params, 0, m->num_params, m->num_params);
  if (net->opt) {
    write_vector(g, "adam_m", net->opt->m, net->opt->begin, net->opt->n, m->num_params);
    write_vector(g, "adam_v", net->opt->v, net->opt->begin, net->opt->n, m->num_params);
  }
  LayoutRow *rows = callocCheck((size_t)m->num_tensors, sizeof *rows);
  for (int i = 0; i < m->num_tensors; i++) {
    snprintf(rows[i].name, sizeof rows[i].name, "%s", m->tensors[i].name);
    rows[i].offset = m->tensors[i].offset;
    rows[i].ndim = m->tensors[i].ndim;
    memcpy(rows[i].shape, m->tensors[i].shape, sizeof rows[i].shape);
  }
  hid_t t = layout_type();
  hsize_t nt = (hsize_t)m->num_tensors;
  h5_write_slab(g, "layout", t, t, rows, nt, 0, amd_rank() == 0 ? nt : 0);
  H5Tclose(t);
  free(rows);
  H5Gclose(g);
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

static void prune(const char *run_dir, int keep) {
  DIR *dir = opendir(run_dir);
  if (!dir) return;
  long steps[4096];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) && n < 4096) {
    long s;
    if (parse_step(e->d_name, &s)) steps[n++] = s;
  }
  closedir(dir);
  qsort(steps, (size_t)n, sizeof(long), cmp_long);
  for (int i = 0; i + keep < n; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", run_dir, steps[i]);
    if (unlink(path) != 0) fprintf(stderr, "amd: warning: cannot remove old checkpoint '%s': %s\n", path, strerror(errno));
  }
}

void ckpt_save(const char *run_dir, const CkptState *st, const CkptNet *nets, int nnets,
               const char *config_text, const char *data_path, int keep) {
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", run_dir, st->step);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hid_t f = h5_create_parallel(tmp, "amd-checkpoint", config_text);
  h5_attr_write_i64(f, "step", st->step);
  h5_attr_write_i64(f, "seed", (long long)st->seed);
  h5_attr_write_i64(f, "data_cursor", st->data_cursor);
  h5_attr_write_str(f, "data", data_path ? data_path : "");
  if (st->teacher[0]) h5_attr_write_str(f, "teacher", st->teacher);
  double counters[4];
  for (int i = 0; i < 4; i++) counters[i] = (double)st->counters[i];
  h5_write_slab(f, "counters", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, counters, 4, 0, amd_rank() == 0 ? 4 : 0);
  for (int i = 0; i < nnets; i++) write_net(f, &nets[i]);
  runctl_fault_pause(RUNCTL_FAULT_CKPT); /* testing: a kill -9 here must leave the previous one whole */
  h5Check(H5Fflush(f, H5F_SCOPE_GLOBAL), "HDF5: flushing '%s' failed (disk full?)", tmp);
  h5_close(f);
  /* every rank has closed the file: it is complete, and rank 0 alone publishes it */
  MPI_Barrier(MPI_COMM_WORLD);
  if (amd_rank() == 0) {
    sync_file(tmp);
    if (rename(tmp, path) != 0) amd_fatal("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (keep > 0) prune(run_dir, keep);
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

/* Values [dev_begin, dev_begin + dev_n) of the global vector `name`, which must hold n. */
static void read_vector(hid_t g, const char *path, const char *net, const char *name, float *dev, long dev_begin,
                        long dev_n, long n) {
  hsize_t d = h5_len_1d(g, name);
  if ((long)d != n)
    amd_fatal("'%s': /%s/%s has %llu values, the model has %ld parameters", path, net, name, (unsigned long long)d, n);
  float *host = mallocCheck(sizeof(float) * (size_t)(dev_n ? dev_n : 1));
  h5_read_f32_range(g, name, (hsize_t)dev_begin, (hsize_t)dev_n, host);
  ops->to_device(dev, host, sizeof(float) * (size_t)dev_n);
  free(host);
}

/* The image fields came later: a checkpoint without them is from before the dit and holds 0. */
static long long attr_or_zero(hid_t g, const char *name) {
  return h5_attr_exists(g, name) ? h5_attr_read_i64(g, name) : 0;
}

static void check_attr(hid_t g, const char *path, const char *net, const char *name, long long want) {
  long long have = attr_or_zero(g, name);
  if (have != want)
    amd_fatal("'%s': /%s has %s = %lld but this run's model has %lld (architecture mismatch)", path, net, name, have, want);
}

void ckpt_read_model_config(const char *path, const char *net, ModelConfig *c) {
  hid_t f = h5_open(path, "amd-checkpoint", 0, NULL);
  if (!h5_exists(f, net)) amd_fatal("'%s' holds no network '%s'", path, net);
  hid_t g = h5_group_open(f, net);
  char *kind = h5_attr_read_str(g, "kind");
  memset(c, 0, sizeof *c);
  snprintf(c->kind, sizeof c->kind, "%s", kind);
  free(kind);
  c->dim = (int)h5_attr_read_i64(g, "dim");
  c->num_classes = (int)h5_attr_read_i64(g, "num_classes");
  c->width = (int)h5_attr_read_i64(g, "width");
  c->depth = (int)h5_attr_read_i64(g, "depth");
  c->temb_dim = (int)h5_attr_read_i64(g, "temb_dim");
  c->img_channels = (int)attr_or_zero(g, "img_channels");
  c->img_size = (int)attr_or_zero(g, "img_size");
  c->patch = (int)attr_or_zero(g, "patch");
  c->heads = (int)attr_or_zero(g, "heads");
  H5Gclose(g);
  h5_close(f);
  model_config_check(c);
}

char *ckpt_read_attr(const char *path, const char *name) {
  hid_t f = h5_open(path, "amd-checkpoint", 0, NULL);
  char *s = h5_attr_exists(f, name) ? h5_attr_read_str(f, name) : strdup("");
  h5_close(f);
  return s;
}

void ckpt_load(const char *path, CkptState *st, const CkptNet *nets, int nnets) {
  hid_t f = h5_open(path, "amd-checkpoint", 0, NULL);
  memset(st, 0, sizeof *st);
  st->step = (long)h5_attr_read_i64(f, "step");
  st->seed = (uint64_t)h5_attr_read_i64(f, "seed");
  st->data_cursor = (long)h5_attr_read_i64(f, "data_cursor");
  if (h5_attr_exists(f, "teacher")) {
    char *t = h5_attr_read_str(f, "teacher");
    snprintf(st->teacher, sizeof st->teacher, "%s", t);
    free(t);
  }
  hsize_t d;
  double *counters = h5_read_f64(f, "counters", 1, &d);
  CHECK(d == 4, "'%s': /counters has %llu entries, expected 4", path, (unsigned long long)d);
  for (int i = 0; i < 4; i++) st->counters[i] = (long)counters[i];
  free(counters);
  for (int i = 0; i < nnets; i++) {
    const CkptNet *net = &nets[i];
    const Model *m = net->model;
    if (!h5_exists(f, net->name)) amd_fatal("'%s' holds no network '%s'", path, net->name);
    hid_t g = h5_group_open(f, net->name);
    char *kind = h5_attr_read_str(g, "kind");
    if (strcmp(kind, m->cfg.kind) != 0) amd_fatal("'%s': /%s is a '%s' model, expected '%s'", path, net->name, kind, m->cfg.kind);
    free(kind);
    check_attr(g, path, net->name, "dim", m->cfg.dim);
    check_attr(g, path, net->name, "num_classes", m->cfg.num_classes);
    check_attr(g, path, net->name, "width", m->cfg.width);
    check_attr(g, path, net->name, "depth", m->cfg.depth);
    check_attr(g, path, net->name, "temb_dim", m->cfg.temb_dim);
    check_attr(g, path, net->name, "img_channels", m->cfg.img_channels);
    check_attr(g, path, net->name, "img_size", m->cfg.img_size);
    check_attr(g, path, net->name, "patch", m->cfg.patch);
    check_attr(g, path, net->name, "heads", m->cfg.heads);
    check_attr(g, path, net->name, "num_params", m->num_params);
    read_vector(g, path, net->name, "params", m->params, 0, m->num_params, m->num_params);
    if (net->opt) {
      CHECK(net->opt->begin >= 0 && net->opt->begin + net->opt->n <= m->num_params,
            "checkpoint: Adam moments of values %ld..%ld do not fit /%s of %ld", net->opt->begin,
            net->opt->begin + net->opt->n, net->name, m->num_params);
      read_vector(g, path, net->name, "adam_m", net->opt->m, net->opt->begin, net->opt->n, m->num_params);
      read_vector(g, path, net->name, "adam_v", net->opt->v, net->opt->begin, net->opt->n, m->num_params);
    }
    H5Gclose(g);
  }
  h5_close(f);
}

void ckpt_refuse_existing_run(const char *run_dir, const char *log_path) {
  char path[4200];
  int has_log = amd_file_exists(log_path);
  if (ckpt_latest(run_dir, path, sizeof path) >= 0 || has_log)
    amd_usage_error("run folder '%s' already holds a run (%s): pass resume=1 to continue it, or choose another run=",
                    run_dir, has_log ? log_path : path);
}

void ckpt_resolve(const char *file_or_run, char *path, size_t n) {
  struct stat st;
  snprintf(path, n, "%s", file_or_run);
  if (stat(file_or_run, &st) == 0 && S_ISDIR(st.st_mode) && ckpt_latest(file_or_run, path, n) < 0)
    amd_fatal("run folder '%s' holds no checkpoint", file_or_run);
}

int ckpt_has_net(const char *path, const char *net) {
  hid_t f = h5_open(path, "amd-checkpoint", 0, NULL);
  int has = h5_exists(f, net);
  h5_close(f);
  return has;
}
