/* runctl.h: run control for the run loop (src/runloop.h) of `amd train` and `amd distill`.
 *  - Stop signals. SIGUSR1 (what the jobs/ scripts ask Slurm to send before a time limit), SIGTERM
 *    (scancel, the time limit, preemption), SIGINT (Ctrl-C) and SIGHUP (a closed terminal) only set a
 *    flag, in an async-signal-safe handler. At every step boundary runctl_stop_agreed() takes the
 *    strongest flag over ranks (MPI_Allreduce), so ranks that got a signal at different moments stop
 *    at the same step: the loop flushes the log, writes a checkpoint and returns AMD_EXIT_REQUEUE;
 *    the jobs/ sbatch scripts requeue the job after SIGUSR1 only.
 *  - The watchdog (watchdog.seconds): a timer armed at every step; a step that outlasts it (a rank
 *    waiting in a collective for a stopped or hung one) ends the rank with exit 1 and a message.
 *  - The divergence guard. A non-finite loss or gradient, or (guard.spike > 0) a loss above
 *    spike x the mean of the previous guard.window losses, is a divergence; every rank agrees on
 *    it (MPI_Allreduce). The loop then rolls back to the newest complete checkpoint (the initial
 *    state when there is none) with its learning rates multiplied by guard.lr_factor, up to
 *    guard.max_rollbacks times per run; one more gives up with AMD_EXIT_DIVERGED. The rollback
 *    count travels in checkpoints (CkptState.rollbacks), so a resumed run keeps the backed-off
 *    learning rate: scale = lr_factor ^ rollbacks.
 * Not here: which checkpoint a rollback goes to, or reloading it (src/runloop.c).
 * Return convention: guard_check is a predicate (1: diverged); guard_rollback returns 0 when it
 * rolled back and nonzero when it gave up. */
#pragma once
#include <stddef.h>

#include "trainlog.h"

void runctl_install_signals(void);
/* Collective, at a step boundary: the strongest stop signal any rank received (SIGTERM, then SIGINT,
 * SIGHUP, SIGUSR1), or 0. */
int runctl_stop_agreed(void);
/* Records the stop in the log's /events and says what happens next (rank 0). */
void runctl_note_stop(TrainLog *log, int sig, long step);
const char *runctl_signal_name(int sig);
/* (Re)starts the watchdog: unless it is armed again (or off, seconds = 0) within `seconds`, the rank
 * ends with exit 1 (no MPI_Abort: it may be stuck inside MPI) and a message naming the rank, `what`
 * and `step` (e.g. "step", 41; step < 0: none), and the collective it waits in (dist_current_collective) with the
 * rank it waits for when that is known (2 ranks); the launcher then ends the other ranks. */
void runctl_watchdog_arm(double seconds, long step, const char *what);

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
/* After guard_check reported a divergence at `step`: either gives up (returns nonzero after logging
 * the event and printing the error: the command returns AMD_EXIT_DIVERGED), or counts a rollback,
 * logs it, forgets the loss window and returns 0: the caller goes back to `target`, the newest
 * complete checkpoint (NULL: none, the initial state). what: "training" or "distillation", for
 * messages. Rank 0 prints; every rank calls it. */
int guard_rollback(Guard *g, TrainLog *log, long step, const char *what, const char *why, const char *target);
