/* runloop.c: the run loop of `amd train` and `amd distill` (runloop.h). */
#include "runloop.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt.h"
#include "common.h"
#include "dist.h"
#include "ops.h"
#include "resume_check.h"
#include "runlock.h"
#include "timing.h"

/* --- testing: pauses inside the checkpoint and log write windows (fault.slow_*) ----------------- */
static int slow_ckpt_ms, slow_log_ms;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
static void pause_ckpt(void) { sleep_ms(slow_ckpt_ms); }
static void pause_log(void) { sleep_ms(slow_log_ms); }

void runloop_check_split(const char *key, int n) {
  if (n < dist_size())
    amd_usage_error("config key '%s' = %d is smaller than the rank count %d: every rank needs a prompt", key, n,
                    dist_size());
}

/* What newest_good passed over, for the log's /events once it is open (resume), or at once. */
static char passed_over[2048];

typedef struct {
  TrainLog *log;
  long step;
} PassedOver;

/* A damaged checkpoint newest_good_here passes over: a message, and an event at `step` once the
 * log is open (else kept for it). */
static void note_passed_over(void *ctx, const char *path, const char *why) {
  const PassedOver *p = ctx;
  char msg[1024];
  snprintf(msg, sizeof msg, "checkpoint %s is damaged (%s): passed over", path, why);
  amd_log("%s\n", msg);
  if (p->log) trainlog_event(p->log, p->step, msg);
  else if (strlen(passed_over) + strlen(msg) + 2 < sizeof passed_over)
    strcat(strcat(passed_over, passed_over[0] ? "; " : ""), msg);
}

/* The newest checkpoint of run_dir that ckpt_validate trusts (ckpt_newest_good): its step, with its
 * path; -1 when the folder holds none. When every one is damaged the run stops with an error. */
static long newest_good_here(const char *run_dir, char *path, size_t n, TrainLog *log, long step) {
  PassedOver p = {log, step};
  long good = ckpt_newest_good(run_dir, path, n, note_passed_over, &p);
  if (good == -2)
    amd_fatal("run folder '%s': no checkpoint can be trusted; the oldest, %s, is damaged (see above)", run_dir, path);
  return good;
}

/* Collective: rank 0 reads the files (newest_good_here); the others learn what it found. */
static long newest_good(const char *run_dir, char *path, size_t n, TrainLog *log, long step) {
  long good = -1;
  if (dist_rank() == 0) good = newest_good_here(run_dir, path, n, log, step);
  mpiCheck(MPI_Bcast(&good, 1, MPI_LONG, 0, MPI_COMM_WORLD));
  if (good >= 0) snprintf(path, n, "%s/ckpt_%08ld.h5", run_dir, good);
  return good;
}

void runloop_check_settings(const RunSettings *rs) {
  const char *run = rs->run;
  struct stat sb;
  char real[4096];
  if (!run[0]) amd_usage_error("config key 'run' is empty: name the run folder (e.g. run=runs/<name>)");
  if (stat(run, &sb) == 0 && !S_ISDIR(sb.st_mode))
    amd_usage_error("config key 'run' = '%s' is an existing file, not a folder: name the run folder", run);
  if (run[strspn(run, "/")] == '\0' || (realpath(run, real) && strcmp(real, "/") == 0))
    amd_usage_error("config key 'run' = '%s' is the root folder: name a run folder of its own (e.g. run=runs/<name>)",
                    run);
}

long runloop_resume_point(const RunSettings *rs, char *path, size_t n) {
  static char cached_run[CFG_STR_MAX], cached_path[4200];
  static long cached_step = -1;
  runloop_check_settings(rs);
  if (!rs->resume) return -1;
  if (strcmp(cached_run, rs->run) != 0) { /* each damaged checkpoint is read and reported once */
    passed_over[0] = '\0';
    cached_step = newest_good(rs->run, cached_path, sizeof cached_path, NULL, 0);
    snprintf(cached_run, sizeof cached_run, "%s", rs->run);
  }
  snprintf(path, n, "%s", cached_path);
  return cached_step;
}

void runloop_prepare(const RunSettings *rs) {
  runloop_check_settings(rs);
  slow_ckpt_ms = rs->slow_ckpt_ms, slow_log_ms = rs->slow_log_ms;
  ckpt_set_pause_hook(slow_ckpt_ms > 0 ? pause_ckpt : NULL);
  trainlog_set_pause_hook(slow_log_ms > 0 ? pause_log : NULL);
  if (dist_rank() == 0) {
    amd_mkdirs(rs->run);
    runlock_take(rs->run); /* before anything is read or written: one job per folder */
    amd_at_fatal(runlock_release);
    char log_path[4200], path[4200];
    snprintf(log_path, sizeof log_path, "%s/log.h5", rs->run);
    int has_log = amd_file_exists(log_path);
    if (!has_log) snprintf(log_path, sizeof log_path, "%s/log.h5.bak", rs->run), has_log = amd_file_exists(log_path);
    long first;
    int has_ckpt = ckpt_list(rs->run, &first, 1) > 0; /* any, damaged or not */
    if (has_ckpt) snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", rs->run, first);
    if (!rs->resume && (has_ckpt || has_log))
      amd_usage_error("run folder '%s' already holds a run (%s): pass resume=1 to continue it, or choose another run=",
                      rs->run, has_log ? log_path : path);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

void runloop_append_all_ranks(TrainLog *table, const double *rows, long nrows, int ncols) {
  double *all;
  long total = dist_gather_f64(rows, nrows * ncols, &all);
  for (long i = 0; i < total / ncols; i++) trainlog_append(table, all + (size_t)ncols * i);
  free(all);
}

/* --- the loop's state ---------------------------------------------------------------------------- */
typedef struct {
  const RunSettings *rs;
  const RunTask *task;
  CkptState st;
  char *config_text; /* of the command's keys: in every file the run writes */
  char *resume_events; /* the changes resume.allow let through, a line each, for /events */
  TrainLog log, extra, timing, eval; /* eval: the /eval rows (task.eval) */
  Guard guard;
  long last_ckpt;   /* step of the newest checkpoint this process wrote or loaded (-1: none) */
  long steps_acc;   /* steps in the current log interval */
  long eta_step;    /* the step the ETA's pace is measured from */
  double t_start, t_last, t_eta;
  double time_base; /* the training clock at t_start: the time of the checkpoint loaded (0 fresh), less
                     * the wall time since t_start at a rollback (time = time_base + now - t_start) */
  int nan_done, signal_done;
  long first_step;                    /* the step this process started from */
  double losses[GUARD_MAX_LOSSES];    /* of the last step the guard accepted */
  int have_losses;
} Loop;

static void format_hms(double seconds, char *buf, size_t n) {
  long e = (long)(seconds + 0.5);
  snprintf(buf, n, "%ld:%02ld:%02ld", e / 3600, (e / 60) % 60, e % 60);
}

/* Rank 0: what this run did, and where its log and newest checkpoint are. */
static void summary(const Loop *L, int status) {
  const RunSettings *rs = L->rs;
  const RunTask *t = L->task;
  double wall = amd_time() - L->t_start;
  long steps = L->st.step - L->first_step;
  char hms[32], losses[256] = "", ckpt[4200] = "none";
  format_hms(wall, hms, sizeof hms);
  for (int i = 0; i < t->nlosses && L->have_losses; i++)
    snprintf(losses + strlen(losses), sizeof losses - strlen(losses), "%s%s %.6g", i ? ", " : "", t->loss_names[i],
             L->losses[i]);
  if (L->last_ckpt >= 0) snprintf(ckpt, sizeof ckpt, "%s/ckpt_%08ld.h5", rs->run, L->last_ckpt);
  amd_log("%s: %s of %s, steps %ld to %ld of %d (%ld this run) in %s (%.1f s), %.0f samples/s\n"
          "  last step's losses: %s\n  log %s/log.h5, last checkpoint %s\n",
          status == 0 ? "done" : status == AMD_EXIT_REQUEUE ? "stopped (resume=1 continues)" : "diverged", t->what,
          rs->run, L->first_step, L->st.step, rs->steps, steps, hms, wall,
          wall > 0 ? (double)steps * (double)t->samples_per_step / wall : 0.0, L->have_losses ? losses : "none",
          rs->run, ckpt);
  if (t->summary) t->summary(t->ctx, wall);
}

static void save(Loop *L) {
  const RunTask *t = L->task;
  double t0 = amd_time();
  snprintf(L->st.data_fingerprint, sizeof L->st.data_fingerprint, "%s", t->data_fingerprint ? t->data_fingerprint : "");
  snprintf(L->st.teacher_fingerprint, sizeof L->st.teacher_fingerprint, "%s",
           t->teacher_fingerprint ? t->teacher_fingerprint : "");
  model_ckpt_save(L->rs->run, &L->st, t->nets, t->nnets, L->config_text, t->data_path, L->rs->ckpt_keep);
  timing_add_io(amd_time() - t0);
  amd_log("checkpoint %s/ckpt_%08ld.h5\n", L->rs->run, L->st.step);
  L->last_ckpt = L->st.step;
}

static void flush_all(Loop *L) {
  trainlog_flush(&L->log);
  if (L->task->extra_table) trainlog_flush(&L->extra);
  trainlog_flush(&L->timing);
  trainlog_flush(&L->eval);
}

static int eval_on(const RunTask *t) { return t->eval && t->eval_every > 0; }

/* The held-out evaluation after `step` (task.eval) under a watchdog window of its own; returns its
 * seconds, which the caller keeps out of samples/s and the ETA. */
static double evaluate(Loop *L, long step) {
  runctl_watchdog_arm(L->rs->watchdog_s, step, "the evaluation after step");
  double t0 = amd_time();
  L->task->eval(L->task->ctx, step, &L->eval);
  return amd_time() - t0;
}

/* The parameters an EMA averages, from the model's stored range (all of it below ZeRO stage 3). */
static const float *stored_range(const Model *m, const Ema *e) { return model_stored(m, e->begin, e->n); }

/* The initial state: the task's parameters, no optimizer moments, EMAs equal to the parameters. */
static void reset(Loop *L) {
  const RunTask *t = L->task;
  L->st = (CkptState){.seed = (uint64_t)L->rs->seed, .student_steps = t->student_steps};
  for (int i = 0; i < t->nnets; i++) {
    AdamW *o = t->nets[i].opt;
    if (o) ops->fill(o->m, 0.0f, o->n), ops->fill(o->v, 0.0f, o->n);
  }
  t->reset(t->ctx, &L->st);
  for (int i = 0; i < t->nnets; i++)
    if (t->nets[i].ema) ema_copy_from_part(t->nets[i].ema, stored_range(t->nets[i].model, t->nets[i].ema));
}

/* After the update of `step`: the EMA of every net that keeps one (core/ema.h). */
static void update_emas(const Loop *L, long step) {
  const RunTask *t = L->task;
  EmaConfig ec = {L->rs->ema_decay, L->rs->ema_power};
  for (int i = 0; i < t->nnets; i++)
    if (t->nets[i].ema)
      ema_update_part(t->nets[i].ema, stored_range(t->nets[i].model, t->nets[i].ema), ema_decay(&ec, step));
}

/* The state a run starts from: the resume checkpoint, or the initial state. */
static long load_start(Loop *L) {
  const RunSettings *rs = L->rs;
  const RunTask *t = L->task;
  char path[4200];
  long resume_step = runloop_resume_point(rs, path, sizeof path);
  if (resume_step < 0) {
    if (rs->resume) amd_log("resume=1 but '%s' holds no checkpoint: starting a new run\n", rs->run);
    reset(L);
    return -1;
  }
  L->resume_events = resume_check(path, rs->allow, t->keys, t->config, t->data_path, t->data_fingerprint,
                                  t->teacher_path, t->teacher_fingerprint);
  model_ckpt_load(path, &L->st, t->nets, t->nnets);
  if (L->st.seed != (uint64_t)rs->seed)
    amd_usage_error("resume: checkpoint '%s' was made with seed %llu but seed = %d", path,
                    (unsigned long long)L->st.seed, rs->seed);
  CHECK(L->st.fake_updates == L->st.step * t->fake_updates_per_step,
        "resume: checkpoint '%s' has %ld fake updates for %ld steps, expected %ld per step", path, L->st.fake_updates,
        L->st.step, t->fake_updates_per_step);
  amd_log("resuming from %s (step %ld)\n", path, L->st.step);
  return resume_step;
}

static void open_log(Loop *L, long resume_step) {
  const RunTask *t = L->task;
  char log_path[4200];
  snprintf(log_path, sizeof log_path, "%s/log.h5", L->rs->run);
  long keep = resume_step >= 0 ? L->st.step : -1;
  if (resume_step >= 0 && dist_rank() == 0) trainlog_recover(log_path); /* a lost log.h5 comes back from its copy */
  if (resume_step < 0 || !amd_file_exists(log_path)) trainlog_create(log_path, L->config_text);
  trainlog_open(&L->log, log_path, "train", t->cols, t->ncols, keep);
  if (t->extra_table) trainlog_open(&L->extra, log_path, t->extra_table, t->extra_cols, t->nextra, keep);
  trainlog_open(&L->timing, log_path, "timing", timing_cols, TIMING_NCOLS, keep);
  if (eval_on(t)) trainlog_open(&L->eval, log_path, "eval", t->eval_cols, t->neval, keep);
  else if (resume_step >= 0) trainlog_drop_beyond(log_path, "eval", keep); /* eval.every switched off */
  if (t->nmemory > 0) { /* this start's bytes per rank: a resume may run at another rank count or stage */
    double row[TRAINLOG_MAX_COLS];
    memcpy(row, t->memory_row, sizeof(double) * (size_t)t->nmemory);
    row[0] = (double)L->st.step;
    TrainLog memory;
    trainlog_open(&memory, log_path, "memory", t->memory_cols, t->nmemory, keep);
    trainlog_append(&memory, row);
    trainlog_close(&memory);
  }
  if (resume_step >= 0) {
    if (passed_over[0]) trainlog_event(&L->log, L->st.step, passed_over);
    for (char *line = L->resume_events, *end; line && (end = strchr(line, '\n')); line = end + 1) {
      *end = '\0';
      amd_log("%s\n", line);
      trainlog_event(&L->log, L->st.step, line);
    }
    char msg[128];
    snprintf(msg, sizeof msg, "resume from step %ld at %d ranks", L->st.step, dist_size());
    trainlog_event(&L->log, L->st.step, msg);
  }
}

static void restart_interval(Loop *L) {
  L->steps_acc = 0, L->eta_step = L->st.step;
  L->t_last = L->t_eta = amd_time();
}

/* After the guard found a divergence at `step`: rolls back (returns 0) or gives up (returns 1). */
static int roll_back(Loop *L, long step, const char *why) {
  const RunTask *t = L->task;
  char target[4200];
  int have = newest_good(L->rs->run, target, sizeof target, &L->log, step) >= 0;
  if (guard_rollback(&L->guard, &L->log, step, t->what, why, have ? target : NULL) != 0) return 1;
  if (have) {
    model_ckpt_load(target, &L->st, t->nets, t->nnets);
  } else {
    reset(L);
  }
  L->time_base = L->st.time - (amd_time() - L->t_start); /* the clock goes on from the target's time */
  L->st.rollbacks = L->guard.rollbacks;
  t->set_lr_scale(t->ctx, guard_lr_scale(&L->guard));
  trainlog_rewind(&L->log, L->st.step);
  if (t->extra_table) trainlog_rewind(&L->extra, L->st.step);
  trainlog_rewind(&L->timing, L->st.step);
  if (eval_on(t)) trainlog_rewind(&L->eval, L->st.step);
  save(L); /* the rollback target again, now counting this rollback: a resume keeps the backoff */
  restart_interval(L);
  return 0;
}

/* A stop signal at the boundary before `step`: the log, a checkpoint, exit AMD_EXIT_REQUEUE. */
static void stop(Loop *L, int sig, long step) {
  runctl_note_stop(&L->log, sig, step);
  if (L->task->extra_table) trainlog_flush(&L->extra);
  trainlog_flush(&L->timing);
  trainlog_flush(&L->eval);
  if (L->last_ckpt != step) save(L);
}

/* One step; returns 0 to go on, or an exit status. */
static int one_step(Loop *L) {
  const RunSettings *rs = L->rs;
  const RunTask *t = L->task;
  long step = L->st.step;
  runctl_watchdog_arm(rs->watchdog_s, step + 1, "step");
  if (step == rs->signal_step && dist_rank() == dist_size() - 1 && !L->signal_done) L->signal_done = 1, raise(SIGUSR1);
  int sig = runctl_stop_agreed();
  if (sig) {
    stop(L, sig, step);
    return AMD_EXIT_REQUEUE;
  }
  if (step == rs->exit_step) amd_fatal("fault.exit_step: simulated crash at step %ld", step);
  RunClock clk = {.inject_nan = step == rs->nan_step && !L->nan_done, .samples_per_s = NAN, .eta = NAN};
  if (clk.inject_nan) L->nan_done = 1;
  double losses[GUARD_MAX_LOSSES];
  int failed = t->step(t->ctx, step, &clk, losses);
  char why[512];
  if (guard_check(&L->guard, losses, t->loss_names, t->nlosses, !failed, why, sizeof why))
    return roll_back(L, step, why) ? AMD_EXIT_DIVERGED : 0;
  memcpy(L->losses, losses, sizeof L->losses);
  L->have_losses = 1;
  if (t->apply) t->apply(t->ctx, step);
  update_emas(L, step);

  CkptState *st = &L->st;
  st->step = step + 1;
  st->fake_updates = st->step * t->fake_updates_per_step;
  st->student_steps = t->student_steps;
  st->rollbacks = L->guard.rollbacks;
  st->data_cursor = st->step * t->samples_per_step;
  double now = amd_time();
  clk.interval_steps = ++L->steps_acc;
  clk.log_now = st->step % rs->log_every == 0 || st->step == rs->steps;
  clk.ckpt_now = st->step % rs->ckpt_every == 0 || st->step == rs->steps;
  clk.elapsed = st->time = L->time_base + (now - L->t_start);
  if (clk.log_now) {
    clk.samples_per_s = (double)L->steps_acc * (double)t->samples_per_step / (now - L->t_last + 1e-12);
    clk.eta = (now - L->t_eta) / (double)(st->step - L->eta_step) * (double)(rs->steps - st->step);
    format_hms(clk.eta, clk.eta_hms, sizeof clk.eta_hms);
    format_hms(clk.elapsed, clk.elapsed_hms, sizeof clk.elapsed_hms);
  }
  double row[TRAINLOG_MAX_COLS] = {(double)st->step};
  t->row(t->ctx, step, &clk, row);
  trainlog_append(&L->log, row);
  if (t->extra_rows) t->extra_rows(t->ctx, st->step, &L->extra);
  if (eval_on(t) && (st->step % t->eval_every == 0 || st->step == rs->steps)) {
    double spent = evaluate(L, st->step); /* not training: kept out of samples/s and the ETA */
    L->t_last += spent, L->t_eta += spent, now += spent;
  }
  if (clk.log_now) {
    trainlog_flush(&L->log);
    if (t->extra_table) trainlog_flush(&L->extra);
    trainlog_flush(&L->eval);
    timing_log(&L->timing, st->step);
    trainlog_flush(&L->timing);
    t->status(t->ctx, st->step, &clk, row);
    L->steps_acc = 0, L->t_last = now;
  }
  if (clk.ckpt_now) {
    flush_all(L); /* the log holds every row up to a checkpoint: a resumed run's log has no gap */
    save(L);
  }
  if (t->snapshot && t->snapshot_every > 0 && st->step % t->snapshot_every == 0) {
    double t0 = amd_time();
    t->snapshot(t->ctx, st->step);
    double spent = amd_time() - t0; /* not training: kept out of samples/s and the ETA */
    L->t_last += spent, L->t_eta += spent;
  }
  return 0;
}

int runloop_run(const RunSettings *rs, const RunTask *t) {
  CHECK(t->ncols <= TRAINLOG_MAX_COLS && t->nmemory <= TRAINLOG_MAX_COLS && t->nlosses <= GUARD_MAX_LOSSES,
        "run loop: %d columns, %d memory columns, %d losses", t->ncols, t->nmemory, t->nlosses);
  runctl_watchdog_arm(rs->watchdog_s, -1, "the start of the run (its checkpoint, its log)");
  Loop *L = callocCheck(1, sizeof *L);
  L->rs = rs, L->task = t, L->config_text = cfg_to_text(t->keys, t->config);
  long resume_step = load_start(L);
  L->last_ckpt = resume_step >= 0 ? L->st.step : -1;
  open_log(L, resume_step);
  guard_init(&L->guard, rs->guard_spike, rs->guard_window, rs->guard_max_rollbacks, rs->guard_lr_factor,
             L->st.rollbacks);
  t->set_lr_scale(t->ctx, guard_lr_scale(&L->guard));
  if (eval_on(t) && resume_step < 0) evaluate(L, 0); /* where training starts from */
  if (L->guard.rollbacks > 0)
    amd_log("learning rates x %g after %ld rollbacks (guard.lr_factor %g)\n", guard_lr_scale(&L->guard),
            L->guard.rollbacks, rs->guard_lr_factor);

  L->t_start = L->t_last = L->t_eta = amd_time();
  L->time_base = L->st.time;
  L->eta_step = L->first_step = L->st.step;
  int status = 0;
  timing_start();
  while (L->st.step < rs->steps && status == 0) status = one_step(L);
  trainlog_close(&L->log);
  if (t->extra_table) trainlog_close(&L->extra);
  trainlog_close(&L->timing);
  trainlog_close(&L->eval);
  summary(L, status);
  runctl_watchdog_arm(rs->watchdog_s, L->st.step, "the end of the run after step"); /* armed until the process exits */
  MPI_Barrier(MPI_COMM_WORLD); /* every rank is done with the folder */
  amd_at_fatal(NULL);
  runlock_release();
  free(L->config_text), free(L->resume_events);
  free(L);
  return status;
}
