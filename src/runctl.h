/* runctl.h: run control shared by the training loops of `amd train` and `amd distill`.
 *  - Stop signals. SIGTERM and SIGUSR1 (what Slurm sends before a time limit with --signal, and
 *    SIGTERM on scancel or preemption) only set a flag, in an async-signal-safe handler. At every
 *    step boundary runctl_stop_agreed() takes the largest flag over ranks (MPI_Allreduce), so ranks
 *    that got the signal at different moments stop at the same step: the loop flushes the log,
 *    writes a checkpoint and returns AMD_EXIT_REQUEUE, which the jobs/ sbatch scripts turn into a requeue.
 *  - The divergence guard. A non-finite loss or gradient, or (guard.spike > 0) a loss above
 *    spike x the mean of the previous guard.window losses, is a divergence; every rank agrees on
 *    it (MPI_Allreduce). The loop then rolls back to the newest complete checkpoint (the initial
 *    state when there is none) with its learning rates multiplied by guard.lr_factor, up to
 *    guard.max_rollbacks times per run; one more gives up with AMD_EXIT_DIVERGED. The rollback
 *    count travels in checkpoints (CkptState.counters[RUNCTL_COUNTER_ROLLBACKS]), so a resumed run
 *    keeps the backed-off learning rate: scale = lr_factor ^ rollbacks.
 *  - Testing hooks: pauses inside the checkpoint and log write windows (fault.slow_ckpt_ms,
 *    fault.slow_log_ms), so a test can kill -9 the job exactly there.
 * Not here: what a checkpoint holds (io/ckpt.c) or how a command reloads its networks. */
#pragma once
#include <stddef.h>

#include "trainlog.h"

/* CkptState.counters slot holding the rollbacks a run has done (slots 0 and 1: distillation). */
enum { RUNCTL_COUNTER_ROLLBACKS = 2 };

void runctl_install_signals(void);
/* Collective, at a step boundary: the signal any rank received (SIGTERM wins over SIGUSR1), or 0. */
int runctl_stop_agreed(void);
/* Records the stop in the log's /events and says what happens next (rank 0). */
void runctl_note_stop(TrainLog *log, int sig, long step);
const char *runctl_signal_name(int sig);

typedef enum { RUNCTL_FAULT_CKPT, RUNCTL_FAULT_LOG } RunctlFault;
/* Testing: sleep ms milliseconds at every runctl_fault_pause(where) from now on (0: never). */
void runctl_set_fault_pause(RunctlFault where, int ms);
void runctl_fault_pause(RunctlFault where);
int runctl_fault_armed(RunctlFault where);

#define GUARD_MAX_LOSSES 4
#define GUARD_MAX_WINDOW 1000

typedef struct {
  double spike, lr_factor; /* spike 0: only non-finite values count */
  int window, max_rollbacks;
  long rollbacks;          /* done so far in this run, resumes included */
  int nlosses, filled, head;
  double hist[GUARD_MAX_LOSSES][GUARD_MAX_WINDOW]; /* recent healthy losses, a ring per loss */
} Guard;

void guard_init(Guard *g, double spike, int window, int max_rollbacks, double lr_factor, long rollbacks_done);
/* Collective, once per step: whether any rank sees a divergence in the n losses (named by names)
 * or in `finite` = 0 (a non-finite gradient norm, say). Healthy losses join the running window.
 * why receives the reason for messages. */
int guard_check(Guard *g, const double *losses, const char *const *names, int n, int finite, char *why, size_t why_n);
/* The learning-rate multiplier after the rollbacks so far: lr_factor ^ rollbacks. */
double guard_lr_scale(const Guard *g);
/* After guard_check reported a divergence at `step`: either gives up (returns -1 after logging the
 * event and printing the error: the command returns AMD_EXIT_DIVERGED), or counts a rollback,
 * logs it, forgets the loss window and names the target: the newest complete checkpoint of
 * run_dir in path (returns 1), or none (returns 0: the caller restarts from the initial state).
 * what: "training" or "distillation", for messages. Collective. */
int guard_rollback(Guard *g, TrainLog *log, const char *run_dir, long step, const char *what, const char *why,
                   char *path, size_t path_n);

/* The guard.* and fault.* config keys, shared by `amd train` and `amd distill`: expands to their
 * table entries through the command's K(name, type, field, ...) macro (the config struct has the
 * fields guard_spike, guard_window, guard_max_rollbacks, guard_lr_factor, nan_step, exit_step,
 * signal_step, slow_ckpt_ms, slow_log_ms). spike_help and nan_help name what the command watches. */
#define RUNCTL_KEYS(K, spike_help, nan_help)                                                                      \
  K("guard.spike", CFG_FLOAT, guard_spike, "0", 0, 1e9, NULL, spike_help),                                       \
  K("guard.window", CFG_INT, guard_window, "20", 1, GUARD_MAX_WINDOW, NULL, "steps in the running mean of guard.spike"), \
  K("guard.max_rollbacks", CFG_INT, guard_max_rollbacks, "3", 0, 1000000, NULL,                                    \
    "on divergence, roll back to the newest checkpoint this many times per run, then exit 3; 0 = exit 3 at once"),  \
  K("guard.lr_factor", CFG_FLOAT, guard_lr_factor, "0.5", 1e-6, 1, NULL, "learning-rate multiplier at each rollback"), \
  K("fault.nan_step", CFG_INT, nan_step, "-1", -1, 1000000000, NULL, nan_help),                                   \
  K("fault.exit_step", CFG_INT, exit_step, "-1", -1, 1000000000, NULL, "testing: die at this step as a crash would"), \
  K("fault.signal_step", CFG_INT, signal_step, "-1", -1, 1000000000, NULL,                                         \
    "testing: the last rank sends itself SIGUSR1 before this step"),                                               \
  K("fault.slow_ckpt_ms", CFG_INT, slow_ckpt_ms, "0", 0, 3600000, NULL, "testing: pause inside every checkpoint write"), \
  K("fault.slow_log_ms", CFG_INT, slow_log_ms, "0", 0, 3600000, NULL, "testing: pause inside every log flush")
