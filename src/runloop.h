/* runloop.h: the run loop shared by `amd train` and `amd distill` (docs/DESIGN.md section 8).
 * The loop owns what every run has: the run folder (a fresh run refuses a folder that holds a run;
 * resume=1 continues from its newest complete checkpoint), the log file and its tables (/train,
 * /timing, the /events rows, /eval, /memory, and any table of the command's), the stop signals (SIGUSR1, SIGTERM,
 * SIGINT, SIGHUP: checkpoint and exit AMD_EXIT_REQUEUE), the watchdog (watchdog.seconds), the
 * divergence guard and its rollbacks (to the newest checkpoint, or to the initial state, with the
 * learning rates scaled), the cadence of log rows,
 * status lines and checkpoints, the checkpoints themselves (src/model_ckpt.h), and the testing
 * `fault.*` keys. The command owns its config, its models and its step, and hands the loop a
 * RunTask: the networks a checkpoint holds and callbacks for its step, its initial state, its
 * learning rates, its log row and its status line.
 * One step of the loop: stop signal? -> task.step (losses, gradients) -> guard -> task.apply (the
 * optimizer) -> the EMA of each net that keeps one (ema.*) -> the state's counters -> task.row (the
 * /train row) -> task.extra_rows -> every eval_every steps task.eval (the /eval rows) -> every
 * log.every steps a flush, a /timing row and task.status -> every ckpt.every steps a checkpoint ->
 * every snapshot_every steps task.snapshot.
 * Return convention: runloop_run returns the command's exit status (0, AMD_EXIT_REQUEUE or
 * AMD_EXIT_DIVERGED); every other failure stops the program with an error naming its cause. */
#pragma once

#include "config.h"
#include "model_ckpt.h"
#include "runctl.h"
#include "trainlog.h"

/* The settings every run has. A command's config struct embeds one as its member `rl`; its key
 * table names them through RUNLOOP_RUN_KEYS (run, resume, seed), its own train.steps and log.every
 * keys, and RUNLOOP_KEYS (ckpt.*, guard.*, fault.*), which ends it. */
typedef struct {
  char run[CFG_STR_MAX];
  char allow[CFG_STR_MAX]; /* resume.allow: keys a resume may change (src/resume_check.h) */
  int resume, seed, steps;
  int log_every, ckpt_every, ckpt_keep;
  double guard_spike, guard_lr_factor;
  double watchdog_s; /* seconds a step may take (0: no watchdog) */
  double ema_decay, ema_power; /* the EMA of the weights (core/ema.h; ema.decay 0: none) */
  int guard_window, guard_max_rollbacks;
  int nan_step, exit_step, signal_step, slow_ckpt_ms, slow_log_ms; /* testing: fault injection */
} RunSettings;

/* The keys run, resume, resume.allow, device, precision, seed, threads, cpu.ftz, cuda.graphs, zero and zero.prefetch, in
 * this order, through the command's K(name, type, field, ...) macro over a struct with members rl (RunSettings),
 * device, precision, threads, cpu_ftz, cuda_graphs, zero and zero_prefetch: every run has them; run_default is the run folder's
 * default, zero_max the highest ZeRO stage the command supports, zero_help names the networks the
 * stage shards. */
#define RUNLOOP_RUN_KEYS(K, run_default, zero_max, zero_help)                                                            \
  K("run", CFG_STR, rl.run, run_default, 0, 0, NULL, "run folder: log.h5 and ckpt_<step>.h5 go here"),             \
  K("resume", CFG_BOOL, rl.resume, "false", 0, 0, NULL, "continue from the newest checkpoint in the run folder"),  \
  K("resume.allow", CFG_STR, rl.allow, "", 0, 0, NULL,                                                              \
    "keys a resume may change although they change the run, comma-separated (e.g. train.steps,optim.lr)"),          \
  K("device", CFG_CHOICE, device, "auto", 0, 0, "auto|cpu|cuda", "backend: auto uses CUDA when present"),         \
  K("precision", CFG_CHOICE, precision, "fp32", 0, 0, "fp32|tf32|bf16",                                           \
    "GEMM precision: fp32; tf32 (CUDA tensor cores); bf16: bf16 operands, fp32 accumulation, everything else "   \
    "fp32 (CUDA tensor cores, CPU AMX tiles)"),                                                                   \
  K("seed", CFG_INT, rl.seed, "0", 0, 2147483647, NULL, "Philox seed of every draw (init, data order, t, noise)"),  \
  K("threads", CFG_INT, threads, "0", 0, 1024, NULL, "OpenMP threads per rank; 0 = node cores / ranks"),          \
  K("cpu.ftz", CFG_BOOL, cpu_ftz, "true", 0, 0, NULL,                                                            \
    "flush subnormal floats (below 1.2e-38) to zero on the CPU (x86 FTZ and DAZ): a core computes with them up to " \
    "~170x slower, and a diverging run fills its GEMMs with them; false keeps IEEE gradual underflow"),           \
  K("cuda.graphs", CFG_BOOL, cuda_graphs, "false", 0, 0, NULL,                                                    \
    "CUDA: replay each step's fixed device work (the flow loss's forward and backward, the real teacher's "       \
    "evaluation) as a captured CUDA graph; same results; ignored on the CPU"),                                   \
  K("zero", CFG_INT, zero, "0", 0, zero_max, NULL, zero_help),                                                  \
  K("zero.prefetch", CFG_BOOL, zero_prefetch, "true", 0, 0, NULL,                                                 \
    "zero=3: start the gather of the next block while one computes; false gathers each when it runs (to measure " \
    "what the prefetch hides; same results)")

/* The ema.decay and ema.power keys through the command's K(name, type, field, ...) macro over a
 * struct whose RunSettings member is `rl`; `nets` names the networks averaged. The defaults: a cap
 * of 0.999 (an average over the last ~1000 updates once warmed up) with k-diffusion's warm-up power
 * 3/4, which reaches the cap at 10K steps, so that a short run (a few hundred steps) averages a
 * window that grows with it instead of being held back by its first weights. */
#define RUNLOOP_EMA_KEYS(K, nets)                                                                                 \
  K("ema.decay", CFG_FLOAT, rl.ema_decay, "0.999", 0, 0.999999999, NULL,                                          \
    "cap of the decay of the EMA of the " nets "'s weights, kept in checkpoints as /<net>_ema and sampled by "   \
    "default; 0 = no EMA"),                                                                                       \
  K("ema.power", CFG_FLOAT, rl.ema_power, "0.75", 0, 10, NULL,                                                    \
    "EMA warm-up: decay = min(ema.decay, 1 - (1 + step)^-power), so the average spans ~(1 + step)^power updates; " \
    "0 = the cap from the first update")

/* The ckpt.every, ckpt.keep, guard.*, watchdog.seconds and fault.* config keys, in this order, through the command's
 * K(name, type, field, ...) macro over a struct whose RunSettings member is `rl`. every_default
 * is ckpt.every's default; spike_help and nan_help name what the command watches. The fault.* keys are for the
 * test suite: `--help` lists them apart (src/config.h). */
#define RUNLOOP_KEYS(K, every_default, spike_help, nan_help)                                                      \
  K("ckpt.every", CFG_INT, rl.ckpt_every, every_default, 1, 1000000000, NULL, "steps between checkpoints (and at the end)"), \
  K("ckpt.keep", CFG_INT, rl.ckpt_keep, "3", 1, 1000000, NULL, "checkpoints kept in the run folder"),             \
  K("guard.spike", CFG_FLOAT, rl.guard_spike, "0", 0, 1e9, NULL, spike_help),                                    \
  K("guard.window", CFG_INT, rl.guard_window, "20", 1, GUARD_MAX_WINDOW, NULL, "steps in the running mean of guard.spike"), \
  K("guard.max_rollbacks", CFG_INT, rl.guard_max_rollbacks, "3", 0, 1000000, NULL,                                 \
    "on divergence, roll back to the newest checkpoint this many times per run, then exit 3; 0 = exit 3 at once"),  \
  K("guard.lr_factor", CFG_FLOAT, rl.guard_lr_factor, "0.5", 1e-6, 1, NULL, "learning-rate multiplier at each rollback"), \
  K("watchdog.seconds", CFG_FLOAT, rl.watchdog_s, "600", 0, 1e7, NULL,                                            \
    "a step (checkpoint included) that takes longer ends the rank with an error, so a stopped or hung rank never leaves the others waiting; 0 = off"), \
  K("fault.nan_step", CFG_INT, rl.nan_step, "-1", -1, 1000000000, NULL, nan_help),                                \
  K("fault.exit_step", CFG_INT, rl.exit_step, "-1", -1, 1000000000, NULL, "testing: die at this step as a crash would"), \
  K("fault.signal_step", CFG_INT, rl.signal_step, "-1", -1, 1000000000, NULL,                                      \
    "testing: the last rank sends itself SIGUSR1 before this step"),                                               \
  K("fault.slow_ckpt_ms", CFG_INT, rl.slow_ckpt_ms, "0", 0, 3600000, NULL, "testing: pause inside every checkpoint write"), \
  K("fault.slow_log_ms", CFG_INT, rl.slow_log_ms, "0", 0, 3600000, NULL, "testing: pause inside every log flush")

/* What the loop tells the step and the row about the moment. */
typedef struct {
  int inject_nan; /* testing (fault.nan_step): this step poisons what the command's nan_help says */
  int log_now;    /* this step ends a log interval: a flush, a status line */
  long interval_steps;  /* steps of the log interval so far, this one included (row, status) */
  int ckpt_now;   /* this step ends with a checkpoint */
  double samples_per_s; /* over the log interval (log_now only; else NaN: no rate) */
  double elapsed;       /* seconds of training: the checkpoint's time (resume, rollback) + since loaded */
  double eta;           /* seconds to the last step at the interval's pace (log_now only; else NaN) */
  char eta_hms[32];     /* the same as h:mm:ss */
  char elapsed_hms[32]; /* elapsed as h:mm:ss (log_now only) */
} RunClock;

typedef struct {
  const char *what;   /* "training" or "distillation", for messages */
  const char *data_path; /* recorded in every checkpoint (absolute), with data_fingerprint */
  const char *data_fingerprint; /* of the dataset read (io/dataset.h); a resume checks it */
  const char *teacher_path;        /* distillation: the teacher checkpoint (NULL for training) */
  const char *teacher_fingerprint; /* its ckpt_net_fingerprint, recorded and checked like the data's */
  const cfg_key *keys;   /* the command's key table and config: their text goes into every file */
  const void *config;
  CkptNet *nets;  /* after each accepted step the loop updates the EMA of those that keep one */
  int nnets;
  long samples_per_step;      /* the global batch: data_cursor = step x this */
  long fake_updates_per_step; /* distillation: fake-teacher updates per step (0 for training) */
  long student_steps;         /* distillation: S (0 for training) */
  const char *const *cols;    /* the /train columns, "step" first */
  int ncols;
  const char *extra_table;    /* another per-step table (distillation: "advantage"), or NULL */
  const char *const *extra_cols;
  int nextra;
  const char *const *loss_names; /* the losses the guard watches */
  int nlosses;
  void *ctx;
  /* The initial state (no checkpoint to start or roll back from): the parameters of every net as at
   * the start (the loop zeroes the optimizer moments); st holds the seed and the task may fill its
   * other fields (teacher). */
  void (*reset)(void *ctx, CkptState *st);
  /* Learning rates = configured x scale (guard.lr_factor ^ rollbacks). */
  void (*set_lr_scale)(void *ctx, double scale);
  /* One step's forward, backward and reductions: the guard's losses (global, agreed by all ranks).
   * Returns 0, or nonzero when its gradients or update were non-finite (a divergence). */
  int (*step)(void *ctx, long step, const RunClock *clk, double *losses);
  /* Applies the update the guard accepted (NULL: step applied it already). */
  void (*apply)(void *ctx, long step);
  /* The /train row of the step just completed (row[0] is filled: the step count). Collective. */
  void (*row)(void *ctx, long step, const RunClock *clk, double *row);
  /* Rows of extra_table after a completed step (may add none). Collective. */
  void (*extra_rows)(void *ctx, long step, TrainLog *table);
  /* The status line of a log interval, from the last row. */
  void (*status)(void *ctx, long step, const RunClock *clk, const double *row);
  /* Every snapshot_every steps (0: never), after the step's row and checkpoint: a picture of the
   * model (src/snapshot.h). It must leave the run's state and draws as they were. */
  long snapshot_every;
  void (*snapshot)(void *ctx, long step);
  /* Held-out metrics (src/evalrun.h) as rows of the log's /eval table, columns eval_cols ("step"
   * first): at step 0 of a fresh run, every eval_every steps (0: never) and at the last step, after
   * the step's rows and before its checkpoint (so a resume neither repeats nor misses one), under a
   * watchdog window of their own and kept out of samples/s and the ETA. Collective. It must leave
   * the run's state and draws as they were. */
  long eval_every;
  const char *const *eval_cols;
  int neval;
  void (*eval)(void *ctx, long step, TrainLog *table);
  /* The /memory table (src/zero_stats.h): columns ("step" first) and the row appended once at each
   * start of the run (fresh or resumed), its step filled in by the loop; nmemory 0: none. */
  const char *const *memory_cols;
  int nmemory;
  const double *memory_row;
  /* Lines of the task's own after the summary (NULL: none); wall is this run's seconds. Rank 0. */
  void (*summary)(void *ctx, double wall);
} RunTask;

/* Collective: gathers every rank's nrows rows of ncols values to rank 0, in rank order, and
 * appends them to the table there (a helper for extra_rows). */
void runloop_append_all_ranks(TrainLog *table, const double *rows, long nrows, int ncols);
/* Stops with a usage error when run= cannot name a run folder: empty, the root folder, or an
 * existing file. Commands call it right after parsing, before reading anything; runloop_prepare
 * and runloop_resume_point call it too. */
void runloop_check_settings(const RunSettings *rs);
/* Stops with a usage error when n, the value of config key `key` (the prompts of a global
 * batch), is smaller than the rank count: every rank needs a prompt. */
void runloop_check_split(const char *key, int n);
/* The checkpoint a run with these settings resumes from: the newest complete one that
 * ckpt_validate trusts (damaged newer ones are passed over with a message, and an event once the
 * log is open): its step and path, or -1 when it starts afresh (resume=0, or a folder without
 * checkpoints). Every checkpoint damaged is an error. Collective: rank 0 reads the files; the
 * answer is kept per run folder. */
long runloop_resume_point(const RunSettings *rs, char *path, size_t n);
/* Collective: the folder is checked (an empty run=, the root folder or an existing file is a
 * usage error), made and locked (src/runlock.h: another job holding it is a usage
 * error); a fresh run refuses a folder that holds a run (a checkpoint or a log). Also installs the
 * testing pauses of fault.slow_*. Call before anything is written; runloop_run gives the lock back. */
void runloop_prepare(const RunSettings *rs);
/* Collective: loads the resume checkpoint (a resume refuses settings or data that differ from the
 * checkpoint's unless resume.allow names them: src/resume_check.h) or the initial state, then runs
 * steps until rs->steps, a stop signal or a divergence beyond guard.max_rollbacks; closes the log;
 * rank 0 prints a summary (steps, wall time, samples/s, the last step's losses, the log and the
 * newest checkpoint). Returns 0, AMD_EXIT_REQUEUE or AMD_EXIT_DIVERGED. */
int runloop_run(const RunSettings *rs, const RunTask *task);
