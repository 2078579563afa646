/* test_runctl.c: run control (src/runctl.c), per-rank timing (src/timing.c) and the log's two-copy
 * kill safety (io/trainlog.c). The tests that reduce over ranks run in a child process that is a
 * one-rank MPI job and leaves by _exit (Open MPI keeps allocations LeakSanitizer would report, as
 * in test_h5.c); the others run here, under the leak check:
 *  - the divergence guard: NaN/Inf losses and gradients, spikes against the running window (only
 *    once the window is full, healthy losses only), the learning-rate scale, and the rollback
 *    decisions (initial state, newest checkpoint, give up after max_rollbacks) with their events;
 *  - stop signals: SIGUSR1 and SIGTERM set the flag that runctl_stop_agreed reports;
 *  - the log: a copy marked incomplete (as a kill -9 inside a flush leaves it) and damaged is
 *    rebuilt from the other, readers get the whole copy, rewind drops rows in both copies;
 *  - timing: communication and I/O seconds are reported once, compute is the rest. */
#include <ftw.h>
#include <mpi.h>
#include <signal.h>
#include <sys/stat.h>

#include "common.h"
#include "h5.h"
#include "runctl.h"
#include "test.h"
#include "timing.h"
#include "trainlog.h"

static char scratch[64];

static char *t_file(char *buf, const char *name) {
  snprintf(buf, 4096, "%s/%s", scratch, name);
  return buf;
}

static void touch(const char *path) {
  FILE *f = fopen(path, "w");
  if (f) fclose(f);
}

static int check(Guard *g, double loss, int finite) {
  static const char *const names[] = {"loss"};
  char why[256];
  return guard_check(g, &loss, names, 1, finite, why, sizeof why);
}

static void test_guard_nonfinite(void) {
  Guard g;
  guard_init(&g, 0, 5, 3, 0.5, 0);
  EXPECT(!check(&g, 1.0, 1), "a finite loss is healthy");
  EXPECT(check(&g, NAN, 1), "NaN loss");
  EXPECT(check(&g, INFINITY, 1), "Inf loss");
  EXPECT(check(&g, 1.0, 0), "non-finite gradient");
  for (int i = 0; i < 20; i++) EXPECT(!check(&g, 1e30, 1), "spike = 0: a huge finite loss is not a divergence");
  static const char *const names[] = {"loss_dm", "loss_fake"};
  double two[2] = {1.0, NAN};
  char why[256];
  Guard h;
  guard_init(&h, 0, 5, 3, 0.5, 0);
  EXPECT(guard_check(&h, two, names, 2, 1, why, sizeof why), "the second of two losses is NaN");
  EXPECT(strcmp(why, "loss_fake NaN") == 0, "why names the loss: '%s'", why);
}

static void test_guard_spike(void) {
  Guard g;
  guard_init(&g, 3.0, 4, 3, 0.5, 0);
  EXPECT(!check(&g, 1.0, 1) && !check(&g, 1.0, 1) && !check(&g, 1.0, 1), "warming up");
  EXPECT(!check(&g, 100.0, 1), "the window is not full yet: no spike check");
  /* window now {1, 1, 1, 100}: mean 25.75 */
  EXPECT(!check(&g, 70.0, 1), "70 < 3 x 25.75");
  /* window {1, 1, 100, 70}: mean 43 */
  EXPECT(check(&g, 130.0, 1), "130 > 3 x 43");
  EXPECT(!check(&g, 128.0, 1), "a diverged loss did not join the window: 128 < 129");
  char why[256];
  double loss = 1e6;
  static const char *const names[] = {"loss"};
  EXPECT(guard_check(&g, &loss, names, 1, 1, why, sizeof why) && strstr(why, "above 3 x its mean") != NULL,
         "why: '%s'", why);
}

static void test_guard_lr_scale(void) {
  Guard g;
  guard_init(&g, 0, 5, 3, 0.5, 0);
  EXPECT(guard_lr_scale(&g) == 1.0, "no rollback: %g", guard_lr_scale(&g));
  guard_init(&g, 0, 5, 3, 0.5, 2);
  EXPECT(guard_lr_scale(&g) == 0.25, "two rollbacks done (a resumed run): %g", guard_lr_scale(&g));
}

static char **read_messages(const char *path, hsize_t *n) {
  hid_t f = h5_open(path, "amd-log", 0, NULL);
  hid_t d = H5Dopen2(f, "/events/message", H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  H5Sget_simple_extent_dims(s, n, NULL);
  char **msg = callocCheck(*n + 1, sizeof(char *));
  hid_t ft = H5Dget_type(d), t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5Tget_cset(ft));
  if (*n) H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, msg);
  H5Tclose(ft), H5Tclose(t), H5Sclose(s), H5Dclose(d);
  h5_close(f);
  return msg;
}

static void free_messages(char **msg, hsize_t n) {
  for (hsize_t i = 0; i < n; i++) free(msg[i]);
  free(msg);
}

static void test_guard_rollback(void) {
  char run[4096], log_path[4096], ckpt[4200];
  t_file(run, "rollback_run");
  amd_mkdirs(run);
  t_file(log_path, "rollback_run/log.h5");
  const char *const cols[2] = {"step", "loss"};
  TrainLog l;
  trainlog_create(log_path, "");
  trainlog_open(&l, log_path, "train", cols, 2, -1);
  Guard g;
  guard_init(&g, 0, 5, 2, 0.5, 0);
  EXPECT(guard_rollback(&g, &l, 7, "training", "loss nan", NULL) == 0, "no checkpoint: back to the initial state");
  EXPECT(g.rollbacks == 1 && guard_lr_scale(&g) == 0.5, "%ld rollbacks, scale %g", g.rollbacks, guard_lr_scale(&g));
  snprintf(ckpt, sizeof ckpt, "%s/ckpt_00000010.h5", run);
  EXPECT(guard_rollback(&g, &l, 12, "training", "loss nan", ckpt) == 0, "back to a checkpoint");
  EXPECT(guard_rollback(&g, &l, 13, "training", "loss nan", ckpt) != 0, "max_rollbacks = 2 used up");
  EXPECT(g.rollbacks == 2, "%ld rollbacks", g.rollbacks);
  trainlog_close(&l);
  hsize_t n;
  char **msg = read_messages(log_path, &n);
  EXPECT(n == 3, "%llu events", (unsigned long long)n);
  if (n == 3) {
    EXPECT(strstr(msg[0], "rollback 1 of 2 to the initial state") != NULL, "'%s'", msg[0]);
    EXPECT(strstr(msg[1], "rollback 2 of 2 to") != NULL && strstr(msg[1], "ckpt_00000010.h5, learning rates x 0.25") != NULL,
           "'%s'", msg[1]);
    EXPECT(strstr(msg[2], "giving up after 2 rollbacks") != NULL, "'%s'", msg[2]);
  }
  free_messages(msg, n);
}

static void test_stop_signals(void) {
  runctl_install_signals();
  EXPECT(runctl_stop_agreed() == 0, "no signal yet");
  raise(SIGUSR1);
  EXPECT(runctl_stop_agreed() == SIGUSR1, "SIGUSR1 (the process is still alive)");
  raise(SIGTERM);
  EXPECT(runctl_stop_agreed() == SIGTERM, "SIGTERM");
  EXPECT(strcmp(runctl_signal_name(SIGUSR1), "SIGUSR1") == 0, "name");
}

static long rows_in(const char *path) {
  hid_t f = h5_open(path, "amd-log", 0, NULL);
  hsize_t n = 0, m = 0;
  double *s = h5_read_f64(f, "/train/step", 1, &n), *l = h5_read_f64(f, "/train/loss", 1, &m);
  long bad = n != m;
  for (hsize_t i = 0; i < n && i < m; i++) bad += s[i] != (double)(i + 1) || l[i] != 0.5 * (double)(i + 1);
  free(s), free(l);
  h5_close(f);
  return bad ? -1 : (long)n;
}

static void append_rows(TrainLog *l, long from, long to) {
  for (long k = from; k <= to; k++) {
    double row[2] = {(double)k, 0.5 * (double)k};
    trainlog_append(l, row);
  }
}

static void damage(const char *path) { CHECK(truncate(path, 700) == 0, "cannot truncate %s", path); }

static void test_log_two_copies(void) {
  char path[4096], bak[4200], mark_main[4200], mark_bak[4200], whole[4200];
  t_file(path, "log.h5");
  snprintf(bak, sizeof bak, "%s.bak", path);
  snprintf(mark_main, sizeof mark_main, "%s.dirty", path);
  snprintf(mark_bak, sizeof mark_bak, "%s.bak.dirty", path);
  const char *const cols[2] = {"step", "loss"};
  TrainLog l;
  trainlog_create(path, "");
  trainlog_open(&l, path, "train", cols, 2, -1);
  append_rows(&l, 1, 30);
  trainlog_close(&l);
  EXPECT(rows_in(path) == 30 && rows_in(bak) == 30, "both copies hold the 30 rows");
  EXPECT(!amd_file_exists(mark_main) && !amd_file_exists(mark_bak), "no marker after a flush");
  EXPECT(trainlog_whole_copy(path, whole, sizeof whole) == path, "a clean log is read as is");

  /* a kill while the log itself was written: it is marked and damaged, the .bak is whole */
  touch(mark_main);
  damage(path);
  EXPECT(strcmp(trainlog_whole_copy(path, whole, sizeof whole), bak) == 0, "readers are sent to the .bak");
  trainlog_open(&l, path, "train", cols, 2, 30); /* a resume: recovers first */
  EXPECT(!amd_file_exists(mark_main), "the marker is gone");
  append_rows(&l, 31, 40);
  trainlog_close(&l);
  EXPECT(rows_in(path) == 40 && rows_in(bak) == 40, "recovered from the .bak, then 10 more rows: %ld, %ld",
         rows_in(path), rows_in(bak));

  /* a kill while the .bak was written: the .bak is rebuilt from the log */
  touch(mark_bak);
  damage(bak);
  EXPECT(trainlog_whole_copy(path, whole, sizeof whole) == path, "the log itself is whole");
  trainlog_recover(path);
  EXPECT(!amd_file_exists(mark_bak) && rows_in(bak) == 40, "the .bak rebuilt: %ld rows", rows_in(bak));

  /* a log from before the .bak existed gets one */
  remove(bak);
  trainlog_recover(path);
  EXPECT(rows_in(bak) == 40, "a .bak made for an old log");

  /* rollback: rows beyond step 20 go from the file and the buffer, in both copies */
  trainlog_open(&l, path, "train", cols, 2, 40);
  append_rows(&l, 41, 45);
  trainlog_rewind(&l, 20);
  append_rows(&l, 21, 25);
  trainlog_close(&l);
  EXPECT(rows_in(path) == 25 && rows_in(bak) == 25, "after the rewind: %ld, %ld rows", rows_in(path), rows_in(bak));
}

static void test_timing(void) {
  timing_start();
  timing_add_io(0.125);
  double t[3];
  timing_take(t);
  EXPECT(t[1] == 0 && t[2] == 0.125 && t[0] == 0, "compute %g comm %g io %g (compute is clipped at 0)", t[0], t[1], t[2]);
  char path[4200];
  snprintf(path, sizeof path, "%s/timing_log.h5", scratch);
  trainlog_create(path, ""); /* a log write counts as I/O, by io/trainlog.c's own count */
  timing_take(t);
  EXPECT(t[1] == 0 && t[2] > 0, "a log write: comm %g io %g", t[1], t[2]);
  timing_take(t);
  EXPECT(t[1] == 0 && t[2] == 0 && t[0] >= 0, "the next interval starts empty");
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* The MPI tests, in a child; returns whether they all passed. */
static int run_mpi_tests(void) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    MPI_Init(NULL, NULL);
    TEST_RUN(test_guard_nonfinite);
    TEST_RUN(test_guard_spike);
    TEST_RUN(test_guard_lr_scale);
    TEST_RUN(test_guard_rollback);
    TEST_RUN(test_stop_signals);
    MPI_Finalize();
    fflush(stdout);
    _exit(t_failed ? 1 : 0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void) {
  snprintf(scratch, sizeof scratch, "/tmp/amd_test_runctl_XXXXXX");
  CHECK(mkdtemp(scratch), "cannot create a scratch folder under /tmp");
  if (!run_mpi_tests()) {
    printf("FAIL mpi_tests: the child with the guard and signal tests failed or died\n");
    t_failed++;
  }
  TEST_RUN(test_log_two_copies);
  TEST_RUN(test_timing);
  if (t_failed == 0) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  else printf("  files kept in %s\n", scratch);
  return t_finish();
}
