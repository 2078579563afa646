/* test_h5.c: round trips of every amd HDF5 file kind (io/dataset.c, io/ckpt.c, io/trainlog.c) and
 * the errors io/h5.c and the readers give for bad input: missing, truncated, foreign, wrong-kind and
 * newer files, inconsistent shapes, labels out of range, NaN, values out of range and damaged toy
 * mixtures; the dataset checks distill and eval share. Each bad input runs in a forked child
 * through expect_fatal. Files go to a scratch folder /tmp/amd_test_h5_XXXXXX, removed when every
 * case passed (kept otherwise, to look at).
 * Serial paths only: one rank, and MPI only in the child that saves checkpoints (see t_save_three).
 * Not here: the collective hyperslab writes of a multi-rank checkpoint (test_zero.c, run at -np 3 by
 * scenario_zero.sh). */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_ckpt.h"
#include "common.h"
#include "dataset.h"
#include "h5.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "provenance.h"
#include "test.h"
#include "toy2d.h"
#include "trainlog.h"

static char scratch[64];

/* scratch/name into buf (4096 bytes) */
static char *t_file(char *buf, const char *name) {
  snprintf(buf, 4096, "%s/%s", scratch, name);
  return buf;
}

/* ---------------------------------------------------------------------------------------------- */
/* datasets */

/* A toy dataset of n samples from a ring mixture, its labels and mixture included. */
static void make_toy(Dataset *d, long n) {
  memset(d, 0, sizeof *d);
  d->n = n;
  d->ndim = 1;
  d->shape[0] = 2;
  d->dim = 2;
  d->num_classes = 3;
  d->x = mallocCheck(sizeof(float) * 2 * (size_t)n);
  d->labels = mallocCheck(sizeof(int) * (size_t)n);
  snprintf(d->source, sizeof d->source, "toy2d ring");
  snprintf(d->class_names, sizeof d->class_names, "zero,one,two");
  d->has_mixture = 1;
  mixture_make(&d->mix, "ring", 8, 3, 0.8, 0.05);
  mixture_sample(&d->mix, 9, n, d->x, d->labels);
}

static void test_dataset_toy_round_trip(void) {
  char path[4096], tmp[4200];
  Dataset w, r;
  make_toy(&w, 50);
  t_file(path, "toy.h5");
  dataset_write(path, &w, "amd-dataset", "data.kind = toy2d\n", NULL, NULL);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  EXPECT(!amd_file_exists(tmp), "the .tmp file remains after dataset_write");
  dataset_read(path, "amd-dataset", &r);
  EXPECT(r.n == 50 && r.ndim == 1 && r.shape[0] == 2 && r.dim == 2, "shape: n %ld ndim %d shape %d dim %d", r.n, r.ndim,
         r.shape[0], r.dim);
  EXPECT(r.num_classes == 3, "num_classes %d", r.num_classes);
  EXPECT(strcmp(r.source, "toy2d ring") == 0, "source '%s'", r.source);
  EXPECT(strcmp(r.class_names, "zero,one,two") == 0, "class_names '%s'", r.class_names);
  if (r.n == 50 && r.dim == 2) {
    EXPECT(memcmp(r.x, w.x, sizeof(float) * 100) == 0, "x differs");
    EXPECT(memcmp(r.labels, w.labels, sizeof(int) * 50) == 0, "labels differ");
  }
  EXPECT(r.has_mixture == 1, "the mixture was not read back");
  if (r.has_mixture) {
    const Mixture *a = &w.mix, *b = &r.mix;
    EXPECT(b->dim == 2 && b->num_modes == 8 && b->num_classes == 3, "mixture header %d %d %d", b->dim, b->num_modes,
           b->num_classes);
    EXPECT(b->sigma == a->sigma, "sigma %g vs %g", b->sigma, a->sigma);
    if (b->num_modes == 8) {
      EXPECT(memcmp(b->means, a->means, sizeof(float) * 16) == 0, "means differ");
      EXPECT(memcmp(b->weights, a->weights, sizeof(float) * 8) == 0, "weights differ");
      EXPECT(memcmp(b->mode_class, a->mode_class, sizeof(int) * 8) == 0, "mode_class differs");
    }
  }
  /* the standard attributes */
  hid_t f = h5_open(path, "amd-dataset", 0, NULL);
  char *cfg = h5_attr_read_str(f, "config"), *by = h5_attr_read_str(f, "created_by");
  EXPECT(strcmp(cfg, "data.kind = toy2d\n") == 0, "config '%s'", cfg);
  EXPECT(strcmp(by, "amd " AMD_VERSION) == 0, "created_by '%s'", by);
  EXPECT(h5_attr_read_i64(f, "format_version") == AMD_FORMAT_VERSION, "format_version");
  free(cfg);
  free(by);
  h5_close(f);
  dataset_free(&w);
  dataset_free(&r);
}

static void add_sampler_attrs(hid_t file, const void *ctx) {
  h5_attr_write_i64(file, "steps", *(const int *)ctx);
  h5_attr_write_str(file, "checkpoint", "run/ckpt_00000030.h5");
}

/* Images (N, C, H, W), written as a samples file with extra attributes. */
static void test_dataset_image_round_trip(void) {
  enum { N = 3, C = 2, H = 4, W = 5 };
  Dataset w, r;
  memset(&w, 0, sizeof w);
  w.n = N;
  w.ndim = 3;
  w.shape[0] = C, w.shape[1] = H, w.shape[2] = W;
  w.dim = C * H * W;
  w.num_classes = 10;
  w.x = mallocCheck(sizeof(float) * N * C * H * W);
  w.labels = mallocCheck(sizeof(int) * N);
  for (int i = 0; i < N * C * H * W; i++) w.x[i] = (float)sin(0.37 * i);
  for (int i = 0; i < N; i++) w.labels[i] = 9 - 4 * i;
  snprintf(w.source, sizeof w.source, "fmnist");
  char path[4096];
  t_file(path, "images.h5");
  int steps = 4;
  dataset_write(path, &w, "amd-samples", "", add_sampler_attrs, &steps);
  dataset_read(path, "amd-samples", &r);
  EXPECT(r.n == N && r.ndim == 3 && r.shape[0] == C && r.shape[1] == H && r.shape[2] == W && r.dim == C * H * W,
         "shape: n %ld ndim %d (%d, %d, %d) dim %d", r.n, r.ndim, r.shape[0], r.shape[1], r.shape[2], r.dim);
  if (r.n == N && r.dim == C * H * W) {
    EXPECT(memcmp(r.x, w.x, sizeof(float) * N * C * H * W) == 0, "x differs");
    EXPECT(memcmp(r.labels, w.labels, sizeof(int) * N) == 0, "labels differ");
  }
  EXPECT(r.num_classes == 10 && r.has_mixture == 0, "num_classes %d has_mixture %d", r.num_classes, r.has_mixture);
  EXPECT(strcmp(r.source, "fmnist") == 0 && r.class_names[0] == '\0', "source '%s' class_names '%s'", r.source,
         r.class_names);
  hid_t f = h5_open(path, "amd-samples", 0, NULL);
  char *ck = h5_attr_read_str(f, "checkpoint");
  EXPECT(h5_attr_read_i64(f, "steps") == 4 && strcmp(ck, "run/ckpt_00000030.h5") == 0, "extra attributes");
  free(ck);
  h5_close(f);
  dataset_free(&w);
  dataset_free(&r);
}

/* ---------------------------------------------------------------------------------------------- */
/* checkpoints */

static const ModelConfig t_cfg = {.kind = "mlp", .dim = 2, .num_classes = 3, .width = 8, .depth = 1, .temb_dim = 8};

static float *t_host(const float *dev, long n) {
  float *h = mallocCheck(sizeof(float) * (size_t)n);
  ops->to_host(h, dev, sizeof(float) * (size_t)n);
  return h;
}

static void t_fill_moments(AdamW *o, float base) {
  float *h = mallocCheck(sizeof(float) * (size_t)o->n);
  for (long i = 0; i < o->n; i++) h[i] = base + 0.001f * (float)i;
  ops->to_device(o->m, h, sizeof(float) * (size_t)o->n);
  for (long i = 0; i < o->n; i++) h[i] = base * base + 1e-5f * (float)i;
  ops->to_device(o->v, h, sizeof(float) * (size_t)o->n);
  free(h);
}

/* Names in dir ending in suffix, sorted, up to max of them into names; returns how many there are. */
static int t_list(const char *dir, const char *suffix, char names[][64], int max) {
  struct dirent **e;
  int ne = scandir(dir, &e, NULL, alphasort), n = 0;
  for (int i = 0; i < ne; i++) {
    size_t l = strlen(e[i]->d_name), s = strlen(suffix);
    if (l >= s && strcmp(e[i]->d_name + l - s, suffix) == 0) {
      if (n < max) snprintf(names[n], 64, "%.63s", e[i]->d_name);
      n++;
    }
    free(e[i]);
  }
  if (ne >= 0) free(e);
  return n;
}

static char t_run_dir[4096], t_ckpt_path[4200];

static void load_other_width(void *arg) {
  (void)arg;
  ModelConfig c = t_cfg;
  c.width = 16;
  Model *m = model_create(&c, 4);
  CkptState st;
  CkptNet net = {"student", m, NULL, NULL};
  model_ckpt_load(t_ckpt_path, &st, &net, 1);
}

static void load_missing_net(void *arg) {
  (void)arg;
  Model *m = model_create(&t_cfg, 4);
  CkptState st;
  CkptNet net = {"teacher", m, NULL, NULL};
  model_ckpt_load(t_ckpt_path, &st, &net, 1);
}

/* Contents of save number s (0, 1, 2: steps 10, 20, 30), so that the saving process and this one
 * agree on what the newest file holds. */
static void t_ckpt_contents(Model *m, AdamW *o, CkptState *st, int s) {
  model_init_params(m, 100 + (uint64_t)s);
  t_fill_moments(o, 0.1f * (float)(s + 1));
  memset(st, 0, sizeof *st);
  st->step = 10L * (s + 1);
  st->seed = 0xF123456789ABCDEFull; /* high bit set: survives the int64 attribute */
  st->data_cursor = 64 * st->step + 3;
  st->fake_updates = (long)(s + 1) + (1L << 40); /* large: survives the float64 /counters */
  st->student_steps = 2L * (s + 1);
  st->rollbacks = 3L * (s + 1);
}

/* model_ckpt_save ends in MPI_Barrier, so the saves run in a child that initializes MPI, and this process
 * never does: Open MPI's MPI_Finalize never returns in a forked child, and amd_fatal calls it in a
 * one-rank job, so an expect_fatal child of a process with MPI up would hang. The saving child
 * leaves by _exit, which skips LeakSanitizer's report of Open MPI's own allocations. */
static int t_save_three(Model *m, AdamW *o) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    MPI_Init(NULL, NULL);
    CkptNet net = {"student", m, o, NULL};
    CkptState st;
    for (int s = 0; s < 3; s++) {
      t_ckpt_contents(m, o, &st, s);
      model_ckpt_save(t_run_dir, &st, &net, 1, "train.steps = 30\n", "data/toy.h5", 2);
    }
    MPI_Finalize();
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Three saves with keep = 2 (the oldest goes, no .tmp stays), then loads of the newest. */
static void test_checkpoint_round_trip(void) {
  t_file(t_run_dir, "run");
  amd_mkdirs(t_run_dir);
  Model *m = model_create(&t_cfg, 4);
  AdamW *o = adamw_create(m->num_params);
  EXPECT(t_save_three(m, o), "the process saving the checkpoints failed");
  CkptState st;
  t_ckpt_contents(m, o, &st, 2);
  char names[8][64];
  int nh5 = t_list(t_run_dir, ".h5", names, 8);
  EXPECT(nh5 == 2 && strcmp(names[0], "ckpt_00000020.h5") == 0 && strcmp(names[1], "ckpt_00000030.h5") == 0,
         "keep=2 left %d files: %s %s", nh5, nh5 > 0 ? names[0] : "", nh5 > 1 ? names[1] : "");
  EXPECT(t_list(t_run_dir, ".tmp", names, 8) == 0, "a .tmp file remains");

  char want_path[4300];
  snprintf(want_path, sizeof want_path, "%s/ckpt_00000030.h5", t_run_dir);
  long latest = ckpt_latest(t_run_dir, t_ckpt_path, sizeof t_ckpt_path);
  EXPECT(latest == 30, "ckpt_latest %ld", latest);
  EXPECT(strcmp(t_ckpt_path, want_path) == 0, "ckpt_latest path '%s'", t_ckpt_path);
  char empty_dir[4096], unused[64];
  t_file(empty_dir, "no_such_run");
  EXPECT(ckpt_latest(empty_dir, unused, sizeof unused) == -1, "ckpt_latest of a missing folder");

  Model *m2 = model_create(&t_cfg, 4);
  AdamW *o2 = adamw_create(m2->num_params);
  CkptNet net2 = {"student", m2, o2, NULL};
  CkptState st2;
  model_ckpt_load(t_ckpt_path, &st2, &net2, 1);
  long n = m->num_params;
  float *p1 = t_host(m->params, n), *p2 = t_host(m2->params, n);
  float *m1 = t_host(o->m, n), *mm2 = t_host(o2->m, n), *v1 = t_host(o->v, n), *v2 = t_host(o2->v, n);
  EXPECT(memcmp(p1, p2, sizeof(float) * (size_t)n) == 0, "params differ after load");
  EXPECT(memcmp(m1, mm2, sizeof(float) * (size_t)n) == 0, "adam_m differs after load");
  EXPECT(memcmp(v1, v2, sizeof(float) * (size_t)n) == 0, "adam_v differs after load");
  EXPECT(st2.step == 30 && st2.seed == st.seed && st2.data_cursor == st.data_cursor,
         "state: step %ld seed %llx cursor %ld", st2.step, (unsigned long long)st2.seed, st2.data_cursor);
  EXPECT(st2.fake_updates == st.fake_updates && st2.student_steps == st.student_steps && st2.rollbacks == st.rollbacks,
         "counters: %ld %ld %ld vs %ld %ld %ld", st2.fake_updates, st2.student_steps, st2.rollbacks, st.fake_updates,
         st.student_steps, st.rollbacks);

  /* parameters only */
  Model *m3 = model_create(&t_cfg, 4);
  CkptNet net3 = {"student", m3, NULL, NULL};
  model_ckpt_load(t_ckpt_path, &st2, &net3, 1);
  float *p3 = t_host(m3->params, n);
  EXPECT(memcmp(p1, p3, sizeof(float) * (size_t)n) == 0, "params differ after a parameters-only load");

  ModelConfig c;
  model_ckpt_config(t_ckpt_path, "student", &c);
  EXPECT(strcmp(c.kind, "mlp") == 0 && c.dim == 2 && c.num_classes == 3 && c.width == 8 && c.depth == 1 &&
             c.temb_dim == 8,
         "config %s %d %d %d %d %d", c.kind, c.dim, c.num_classes, c.width, c.depth, c.temb_dim);
  char *data = ckpt_read_attr(t_ckpt_path, "data");
  EXPECT(strcmp(data, "data/toy.h5") == 0, "data path '%s'", data);
  free(data);

  EXPECT(expect_fatal(load_other_width, NULL, "width"), "loading into a model of another width");
  EXPECT(expect_fatal(load_missing_net, NULL, "no network 'teacher'"), "loading a net the file lacks");

  free(p1), free(p2), free(p3), free(m1), free(mm2), free(v1), free(v2);
  model_free(m), model_free(m2), model_free(m3);
  adamw_free(o), adamw_free(o2);
}

/* A copy of the step-30 checkpoint with one change (kind: params, counters, layout, none = the
 * checksum attributes removed); returns ckpt_validate's answer, why receives the reason. */
static int t_validate_changed(const char *kind, char *why, size_t n) {
  char path[4200];
  snprintf(path, sizeof path, "%s/changed_%s.h5", t_run_dir, kind);
  FILE *a = fopenCheck(t_ckpt_path, "rb"), *b = fopenCheck(path, "wb");
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, a)) > 0) CHECK(fwrite(buf, 1, k, b) == k, "cannot write '%s'", path);
  fclose(a), fclose(b);
  hid_t f = h5_open(path, "amd-checkpoint", 1, NULL);
  if (strcmp(kind, "params") == 0) { /* the lowest bit of one parameter: finite, a tiny change */
    hid_t d = H5Dopen2(f, "student/params", H5P_DEFAULT);
    hsize_t len = h5_len_1d(f, "student/params");
    float *v = h5_read_f32(f, "student/params", 1, &len);
    uint32_t bits;
    memcpy(&bits, v + 3, 4), bits ^= 1u, memcpy(v + 3, &bits, 4);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v), H5Dclose(d);
  } else if (strcmp(kind, "counters") == 0) { /* still counts: only the checksum tells */
    hsize_t len;
    double *c = h5_read_f64(f, "counters", 1, &len);
    c[0] += 1;
    hid_t d = H5Dopen2(f, "counters", H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, c);
    free(c), H5Dclose(d);
  } else if (strcmp(kind, "layout") == 0) { /* one tensor's offset, through that member alone */
    hid_t d = H5Dopen2(f, "student/layout", H5P_DEFAULT), t = H5Tcreate(H5T_COMPOUND, sizeof(long long));
    H5Tinsert(t, "offset", 0, H5T_NATIVE_LLONG);
    long long off[256];
    H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
    off[1] += 4;
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
    H5Tclose(t), H5Dclose(d);
  } else {
    const char *const all[] = {"counters", "student/params", "student/adam_m", "student/adam_v", "student/layout"};
    for (int i = 0; i < 5; i++) H5Adelete_by_name(f, all[i], "checksum", H5P_DEFAULT);
  }
  h5_close(f);
  return ckpt_validate(path, 30, why, n);
}

/* Every array carries a checksum that ckpt_validate checks: a change that leaves the values
 * plausible is found; a file without checksums (written before them) passes. */
static void test_checkpoint_checksums(void) {
  char why[512] = "";
  EXPECT(ckpt_validate(t_ckpt_path, 30, why, sizeof why) == 0, "the saved checkpoint fails: %s", why);
  EXPECT(ckpt_validate(t_ckpt_path, -1, why, sizeof why) == 0, "any step: %s", why);
  EXPECT(ckpt_validate(t_ckpt_path, 20, why, sizeof why) != 0 && strstr(why, "not the step 20"), "step 20: %s", why);
  EXPECT(t_validate_changed("params", why, sizeof why) != 0 && strstr(why, "/student/params does not match its checksum"),
         "a flipped bit: %s", why);
  EXPECT(t_validate_changed("counters", why, sizeof why) != 0 && strstr(why, "/counters does not match its checksum"),
         "a changed counter: %s", why);
  EXPECT(t_validate_changed("layout", why, sizeof why) != 0 && strstr(why, "/student/layout does not match its checksum"),
         "a changed layout row: %s", why);
  EXPECT(t_validate_changed("none", why, sizeof why) == 0, "a checkpoint without checksums: %s", why);
}

/* ---------------------------------------------------------------------------------------------- */
/* logs */

static double *read_col(const char *path, const char *name, hsize_t *n) {
  hid_t f = h5_open(path, "amd-log", 0, NULL);
  double *v = h5_read_f64(f, name, 1, n);
  h5_close(f);
  return v;
}

static void check_log(const char *path, long last_step) {
  hsize_t ns = 0, nl = 0;
  double *s = read_col(path, "/train/step", &ns), *l = read_col(path, "/train/loss", &nl);
  EXPECT((long)ns == last_step && (long)nl == last_step, "%llu steps and %llu losses, want %ld", (unsigned long long)ns,
         (unsigned long long)nl, last_step);
  int bad = 0;
  for (hsize_t i = 0; i < ns && i < nl; i++) bad += s[i] != (double)(i + 1) || l[i] != 1.0 / (double)(i + 1);
  EXPECT(bad == 0, "%d rows differ", bad);
  free(s);
  free(l);
}

static void log_rows(TrainLog *l, long from, long to) {
  for (long k = from; k <= to; k++) {
    double row[2] = {(double)k, 1.0 / (double)k};
    trainlog_append(l, row);
  }
}

static void reopen_fresh(void *path) {
  const char *const cols[2] = {"step", "loss"};
  TrainLog l;
  trainlog_open(&l, path, "train", cols, 2, -1);
}

static void test_log_round_trip(void) {
  char path[4096];
  t_file(path, "log.h5");
  const char *const cols[2] = {"step", "loss"}, *const adv_cols[3] = {"step", "reward", "advantage"};
  TrainLog l, adv;
  trainlog_create(path, "train.steps = 130\n");
  trainlog_open(&l, path, "train", cols, 2, -1);
  trainlog_open(&adv, path, "advantage", adv_cols, 3, -1);
  log_rows(&l, 1, 5);
  trainlog_flush(&l);
  check_log(path, 5); /* readable between flushes */
  for (int k = 0; k < 7; k++) {
    double row[3] = {3, 0.5 * k, -0.25 * k};
    trainlog_append(&adv, row);
  }
  trainlog_close(&adv);
  log_rows(&l, 6, 300); /* past the initial buffer of 256 rows */
  trainlog_close(&l);
  check_log(path, 300);
  hsize_t na = 0;
  double *a = read_col(path, "/advantage/advantage", &na);
  EXPECT(na == 7 && a[6] == -1.5, "%llu advantage rows", (unsigned long long)na);
  free(a);
  EXPECT(expect_fatal(reopen_fresh, path, "already has a table"), "a fresh run reopening a table");

  /* resume from step 120: rows 121.. were logged after that checkpoint and go */
  trainlog_open(&l, path, "train", cols, 2, 120);
  trainlog_close(&l);
  check_log(path, 120);
  trainlog_open(&l, path, "train", cols, 2, 120);
  log_rows(&l, 121, 130);
  trainlog_event(&l, 125, "resume");
  trainlog_event(&l, 130, "nan");
  trainlog_close(&l);
  check_log(path, 130);

  hsize_t ne = 0;
  double *es = read_col(path, "/events/step", &ne);
  EXPECT(ne == 2 && es[0] == 125 && es[1] == 130, "%llu events", (unsigned long long)ne);
  free(es);
  hid_t f = h5_open(path, "amd-log", 0, NULL);
  hid_t d = H5Dopen2(f, "/events/message", H5P_DEFAULT);
  hid_t ft = H5Dget_type(d), t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5Tget_cset(ft)); /* HDF5 does not convert between ASCII and UTF-8 */
  H5Tclose(ft);
  char *msg[2] = {NULL, NULL};
  if (ne == 2 && d >= 0 && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, msg) >= 0) {
    EXPECT(msg[0] && msg[1] && strcmp(msg[0], "resume") == 0 && strcmp(msg[1], "nan") == 0, "messages '%s' '%s'",
           msg[0] ? msg[0] : "(null)", msg[1] ? msg[1] : "(null)");
    hid_t space = H5Dget_space(d);
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, msg);
    H5Sclose(space);
  } else {
    EXPECT(0, "cannot read /events/message");
  }
  H5Tclose(t);
  if (d >= 0) H5Dclose(d);
  h5_close(f);
}

/* ---------------------------------------------------------------------------------------------- */
/* bad inputs */

static void read_dataset(void *path) {
  Dataset d;
  dataset_read(path, "amd-dataset", &d);
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopenCheck(from, "rb"), *b = fopenCheck(to, "wb");
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) CHECK(fwrite(buf, 1, n, b) == n, "cannot write '%s'", to);
  fclose(a);
  fclose(b);
}

static void test_bad_missing(void) {
  char path[4096];
  EXPECT(expect_fatal(read_dataset, t_file(path, "nothing_here.h5"), "does not exist"), "missing file");
}

static void test_bad_truncated(void) {
  char good[4096], path[4096];
  Dataset w;
  make_toy(&w, 2000);
  dataset_write(t_file(good, "whole.h5"), &w, "amd-dataset", "", NULL, NULL);
  dataset_free(&w);
  copy_file(good, t_file(path, "half.h5"));
  struct stat st;
  EXPECT(stat(path, &st) == 0 && truncate(path, st.st_size / 2) == 0, "cannot truncate the copy");
  EXPECT(expect_fatal(read_dataset, path, "truncated"), "truncated file");
}

static void test_bad_not_hdf5(void) {
  char path[4096];
  FILE *f = fopenCheck(t_file(path, "notes.h5"), "w");
  fprintf(f, "x,label\n0.1,0.2,0\n");
  fclose(f);
  EXPECT(expect_fatal(read_dataset, path, "not an HDF5 file"), "text file");
}

static void test_bad_foreign_hdf5(void) {
  char path[4096];
  hid_t f = H5Fcreate(t_file(path, "foreign.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT(f >= 0, "H5Fcreate failed");
  if (f >= 0) H5Fclose(f);
  EXPECT(expect_fatal(read_dataset, path, "not an amd file"), "HDF5 file without 'format'");
}

static void test_bad_wrong_kind(void) {
  char path[4096];
  const char *const cols[2] = {"step", "loss"};
  TrainLog l;
  trainlog_create(t_file(path, "kind_log.h5"), "");
  trainlog_open(&l, path, "train", cols, 2, -1);
  trainlog_close(&l);
  EXPECT(expect_fatal(read_dataset, path, "expected amd-dataset"), "a log read as a dataset");
}

static void test_bad_newer_version(void) {
  char path[4096];
  Dataset w;
  make_toy(&w, 10);
  dataset_write(t_file(path, "v99.h5"), &w, "amd-dataset", "", NULL, NULL);
  dataset_free(&w);
  hid_t f = h5_open(path, "amd-dataset", 1, NULL);
  h5_attr_write_i64(f, "format_version", 99);
  h5_close(f);
  EXPECT(expect_fatal(read_dataset, path, "newer"), "format_version 99");
}

static void test_bad_labels_length(void) {
  char path[4096];
  float x[8] = {0};
  int labels[3] = {0, 1, 0};
  hsize_t xd[2] = {4, 2}, ld[1] = {3};
  hid_t f = h5_create(t_file(path, "short_y.h5"), "amd-dataset", "");
  h5_write_f32(f, "x", x, 2, xd);
  h5_write_i32(f, "labels", labels, 1, ld);
  h5_attr_write_i64(f, "num_classes", 2);
  h5_attr_write_str(f, "source", "test");
  h5_close(f);
  EXPECT(expect_fatal(read_dataset, path, "labels"), "3 labels for 4 samples");
}

static void test_bad_label_range(void) {
  char path[4096];
  Dataset w;
  make_toy(&w, 10);
  w.labels[7] = 3; /* num_classes is 3 */
  dataset_write(t_file(path, "y_big.h5"), &w, "amd-dataset", "", NULL, NULL);
  w.labels[7] = -1;
  char path2[4096];
  dataset_write(t_file(path2, "y_negative.h5"), &w, "amd-dataset", "", NULL, NULL);
  dataset_free(&w);
  EXPECT(expect_fatal(read_dataset, path, "outside"), "label 3 of 3 classes");
  EXPECT(expect_fatal(read_dataset, path2, "outside"), "label -1");
}

static void test_bad_nan(void) {
  char path[4096];
  Dataset w;
  make_toy(&w, 10);
  w.x[13] = NAN;
  w.x[4] = INFINITY;
  dataset_write(t_file(path, "nan.h5"), &w, "amd-dataset", "", NULL, NULL);
  dataset_free(&w);
  EXPECT(expect_fatal(read_dataset, path, "2 non-finite"), "NaN and Inf in /x");
}

/* Impossible values (issue 16, item 7): a bit flip in a toy point, an image value outside [-1, 1],
 * a damaged mixture; each error names the file, the dataset and the index. */
static void write_toy_with(const char *name, char *path, void (*damage)(Dataset *)) {
  Dataset w;
  make_toy(&w, 10);
  damage(&w);
  dataset_write(t_file(path, name), &w, "amd-dataset", "", NULL, NULL);
  dataset_free(&w);
}
static void flip_x(Dataset *d) { d->x[7] = 3.0e9f; }
static void far_x(Dataset *d) { d->x[6] = 179.0f; }
static void nan_mean(Dataset *d) { d->mix.means[5] = NAN; }
static void negative_weight(Dataset *d) { d->mix.weights[2] = -d->mix.weights[2]; }
static void heavy_weight(Dataset *d) { d->mix.weights[1] *= 1.5f; }
static void zero_sigma(Dataset *d) { d->mix.sigma = 0; }

static void test_bad_values(void) {
  char path[4096];
  write_toy_with("flip.h5", path, flip_x);
  EXPECT(expect_fatal(read_dataset, path, "flip.h5': /x[3, 1] = 3e+09 is outside [-"), "a bit flip: x = 3e9");
  write_toy_with("far.h5", path, far_x);
  EXPECT(expect_fatal(read_dataset, path, "/x[3, 0] = 179 is outside [-3.3, 3.3] (50 sigma beyond the farthest mode"),
         "x = 179, 50 sigma = 2.5 beyond modes at radius 0.8");
  write_toy_with("nan_mean.h5", path, nan_mean);
  EXPECT(expect_fatal(read_dataset, path, "/mixture/means[2, 1] = nan is not a finite number"), "NaN mean");
  write_toy_with("neg_weight.h5", path, negative_weight);
  EXPECT(expect_fatal(read_dataset, path, "/mixture/weights[2] = -0.5 is not a non-negative number"),
         "negative weight");
  write_toy_with("heavy_weight.h5", path, heavy_weight);
  EXPECT(expect_fatal(read_dataset, path, "the weights of class 1's modes sum to 1.16667, not 1"), "weights sum");
  write_toy_with("zero_sigma.h5", path, zero_sigma);
  EXPECT(expect_fatal(read_dataset, path, "/mixture sigma 0 is not a positive number"), "sigma 0");
  /* images: amd data stores [-1, 1]; a samples file may hold anything finite */
  Dataset w;
  memset(&w, 0, sizeof w);
  w.n = 2, w.ndim = 3, w.shape[0] = 1, w.shape[1] = 2, w.shape[2] = 2, w.dim = 4, w.num_classes = 2;
  float x[8] = {-1, 1, 0, 0.5f, 0, 0, 1.5f, 0};
  int labels[2] = {0, 1};
  w.x = x, w.labels = labels;
  dataset_write(t_file(path, "img_range.h5"), &w, "amd-dataset", "", NULL, NULL);
  EXPECT(expect_fatal(read_dataset, path, "/x[1, 2] = 1.5 is outside [-1, 1] (images are stored in [-1, 1])"),
         "an image value 1.5");
  dataset_write(t_file(path, "img_samples.h5"), &w, "amd-samples", "", NULL, NULL);
  Dataset r;
  dataset_read(path, "amd-samples", &r);
  EXPECT(r.n == 2 && r.x[6] == 1.5f, "a samples file may leave [-1, 1]");
  dataset_free(&r);
}

/* dataset_check_fits and dataset_check_same_target: the checks distill and eval share. */
typedef struct {
  const char *path, *trained;
  int dim, classes;
} FitCase;

static void check_fits(void *arg) {
  const FitCase *c = arg;
  Dataset d;
  dataset_read(c->path, "amd-dataset", &d);
  dataset_check_fits(&d, "data", c->path, c->dim, c->classes, "the samples 's.h5'");
  dataset_check_same_target(&d, "data", c->path, c->trained, "their model");
  dataset_free(&d);
}

/* Runs fn(arg) in a child, its stderr discarded: 1 when it exited 0. */
static int runs_clean(void (*fn)(void *), void *arg) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stderr)) _exit(99);
    fn(arg);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void other_modes(Dataset *d) {
  mixture_free(&d->mix);
  mixture_make(&d->mix, "ring", 6, 3, 0.8, 0.05);
}
static void no_change(Dataset *d) { (void)d; }

static void test_dataset_fits(void) {
  char a[4096], b[4096], same[4096];
  write_toy_with("fit_a.h5", a, no_change);
  write_toy_with("fit_same.h5", same, no_change);
  write_toy_with("fit_b.h5", b, other_modes);
  FitCase classes = {a, "", 2, 4};
  EXPECT(expect_fatal(check_fits, &classes, "data '"), "other classes");
  EXPECT(expect_fatal(check_fits, &classes, "(dim 2, 3 classes) does not match the samples 's.h5' (dim 2, 4 classes)"),
         "other classes: both named");
  FitCase modes = {b, a, 2, 3};
  EXPECT(expect_fatal(check_fits, &modes, "(6 modes) is another toy mixture than"), "other modes");
  FitCase fine[] = {{a, same, 2, 3}, {a, a, 2, 3}, {a, "", 2, 3}, {a, "/nonexistent/gone.h5", 2, 3}};
  for (int i = 0; i < 4; i++) EXPECT(runs_clean(check_fits, &fine[i]), "case %d fits", i);
}

/* ---------------------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* ---------------------------------------------------------------------------------------------- */
/* the vocabulary (io/schema.c) and the provenance record (io/provenance.h) */

static char *str_attr(hid_t obj, const char *name) { return h5_attr_exists(obj, name) ? h5_attr_read_str(obj, name) : strdup(""); }

static void write_undescribed(void *path) {
  float x[2] = {0};
  hsize_t d[1] = {2};
  hid_t f = h5_create(path, "amd-dataset", "");
  h5_write_f32(f, "x_extra", x, 1, d);
}

static void write_labels_as_float(void *path) {
  float x[2] = {0};
  hsize_t d[1] = {2};
  hid_t f = h5_create(path, "amd-dataset", "");
  h5_write_f32(f, "labels", x, 1, d);
}

static void log_undescribed_column(void *path) {
  const char *const cols[2] = {"step", "loss_new"};
  TrainLog l;
  trainlog_create(path, "");
  trainlog_open(&l, path, "train", cols, 2, -1);
}

static void log_nan_count(void *path) {
  const char *const cols[2] = {"step", "loss"};
  TrainLog l;
  trainlog_create(path, "");
  trainlog_open(&l, path, "train", cols, 2, -1);
  double row[2] = {NAN, 1.0};
  trainlog_append(&l, row);
  trainlog_close(&l);
}

/* Every dataset written carries units and description; counts of a log are int64; a dataset the
 * schema does not describe, or of another type, is refused; the provenance record is at the root. */
static void test_schema_and_provenance(void) {
  char path[4096];
  EXPECT(schema_find("amd-log", "/train/step") && schema_find("amd-log", "/train/step")->type == SCHEMA_INT, "step");
  EXPECT(schema_find("amd-checkpoint", "/student/params") != NULL, "a network's params");
  EXPECT(schema_find("amd-checkpoint", "/a/b/params") == NULL, "* is one path component");
  EXPECT(schema_find("amd-dataset", "/train/step") == NULL, "a log column in a dataset");
  EXPECT(schema_find("amd-samples", "/labels") != NULL && schema_find("amd-dataset", "/labels") != NULL, "labels");
  EXPECT(expect_fatal(write_undescribed, t_file(path, "undescribed.h5"), "'/x_extra' of a amd-dataset file is not described"),
         "an undescribed dataset");
  EXPECT(expect_fatal(write_labels_as_float, t_file(path, "labels_float.h5"), "describes it as int"), "labels as float");
  EXPECT(expect_fatal(log_undescribed_column, t_file(path, "log_new.h5"), "'/train/loss_new' of a amd-log file"),
         "an undescribed log column");
  EXPECT(expect_fatal(log_nan_count, t_file(path, "log_nan.h5"), "count column 'train/step' got nan"), "a NaN step");

  provenance_set_str("host", "test-host");
  provenance_set_i64("ranks", 3);
  provenance_set_str("host", "test-host-2"); /* replaced, not repeated */
  const char *const cols[3] = {"step", "loss", "samples_per_s"};
  TrainLog l;
  t_file(path, "described_log.h5");
  trainlog_create(path, "");
  trainlog_open(&l, path, "train", cols, 3, -1);
  for (int s = 1; s <= 3; s++) {
    double row[3] = {s, 0.5, s == 3 ? 100.0 : NAN};
    trainlog_append(&l, row);
  }
  trainlog_close(&l);
  hid_t f = h5_open(path, "amd-log", 0, NULL);
  char *host = str_attr(f, "host");
  EXPECT(strcmp(host, "test-host-2") == 0 && h5_attr_read_i64(f, "ranks") == 3, "provenance host '%s'", host);
  free(host);
  const char *paths[] = {"/train/step", "/train/loss", "/train/samples_per_s", "/events/step", "/events/message"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    hid_t d = H5Dopen2(f, paths[i], H5P_DEFAULT);
    char *units = str_attr(d, "units"), *desc = str_attr(d, "description");
    EXPECT(units[0] && desc[0], "%s: units '%s', description '%s'", paths[i], units, desc);
    hid_t t = H5Dget_type(d);
    int is_int = H5Tget_class(t) == H5T_INTEGER;
    EXPECT(is_int == (strstr(paths[i], "step") != NULL), "%s: integer %d", paths[i], is_int);
    free(units), free(desc);
    H5Tclose(t);
    H5Dclose(d);
  }
  hsize_t n;
  double *steps = h5_read_f64(f, "/train/step", 1, &n); /* readers of doubles still read counts */
  EXPECT(n == 3 && steps[2] == 3.0, "%llu steps", (unsigned long long)n);
  free(steps);
  h5_close(f);
}

int main(void) {
  snprintf(scratch, sizeof scratch, "/tmp/amd_test_h5_XXXXXX");
  CHECK(mkdtemp(scratch), "cannot create a scratch folder under /tmp");
  TEST_RUN(test_dataset_toy_round_trip);
  TEST_RUN(test_dataset_image_round_trip);
  TEST_RUN(test_checkpoint_round_trip);
  TEST_RUN(test_checkpoint_checksums);
  TEST_RUN(test_log_round_trip);
  TEST_RUN(test_bad_missing);
  TEST_RUN(test_bad_truncated);
  TEST_RUN(test_bad_not_hdf5);
  TEST_RUN(test_bad_foreign_hdf5);
  TEST_RUN(test_bad_wrong_kind);
  TEST_RUN(test_bad_newer_version);
  TEST_RUN(test_bad_labels_length);
  TEST_RUN(test_bad_label_range);
  TEST_RUN(test_bad_nan);
  TEST_RUN(test_schema_and_provenance);
  TEST_RUN(test_bad_values);
  TEST_RUN(test_dataset_fits);
  if (t_failed == 0) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  else printf("  files kept in %s\n", scratch);
  return t_finish();
}
