/* runctl.c: stop signals, the divergence guard's policy and the testing pauses (runctl.h). */
#include "runctl.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"

static volatile sig_atomic_t pending_signal;

static void on_stop_signal(int sig) { pending_signal = sig; }

/* The stop signals, weakest first: ranks agree on the strongest any of them received. SIGUSR1 asks
 * for a requeue (jobs/slurm_lib.sh), the others for a stop that stays stopped. */
static const int stop_signals[] = {SIGUSR1, SIGHUP, SIGINT, SIGTERM};
enum { NSTOP = sizeof stop_signals / sizeof stop_signals[0] };

void runctl_install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* file and MPI calls go on; the flag is looked at between steps */
  for (int i = 0; i < NSTOP; i++)
    CHECK(sigaction(stop_signals[i], &sa, NULL) == 0, "cannot install the %s handler: %s",
          runctl_signal_name(stop_signals[i]), strerror(errno));
}

int runctl_stop_agreed(void) {
  int rank = 0, sig = pending_signal;
  for (int i = 0; i < NSTOP; i++)
    if (stop_signals[i] == sig) rank = i + 1;
  rank = dist_allreduce_max_int(rank);
  return rank ? stop_signals[rank - 1] : 0;
}

const char *runctl_signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP"
                                                                                                            : "a signal";
}

void runctl_note_stop(TrainLog *log, int sig, long step) {
  /* what follows the exit: jobs/slurm_lib.sh requeues after SIGUSR1 only (a SIGTERM means scancel, the
   * time limit or preemption, whose job should stay ended; SIGINT and SIGHUP come from a terminal) */
  int requeue = sig == SIGUSR1;
  char msg[200];
  snprintf(msg, sizeof msg, "stop: %s at step %ld; checkpoint and exit %d (%s)", runctl_signal_name(sig), step,
           AMD_EXIT_REQUEUE, requeue ? "the jobs/ scripts requeue the job" : "not requeued: continue with resume=1");
  trainlog_event(log, step, msg);
  amd_log("%s received: stopping at step %ld with a checkpoint, exit status %d (%s)\n", runctl_signal_name(sig), step,
          AMD_EXIT_REQUEUE,
          requeue ? "the jobs/ scripts requeue the job, which resumes; by hand: resume=1" : "continue with resume=1");
}

/* --- the watchdog: a timer per step; its signal handler may only use async-signal-safe calls ---- */
static double wd_seconds;
static volatile sig_atomic_t wd_rank, wd_size;
static volatile long wd_step;
static const char *volatile wd_what;

static void put_str(char *buf, size_t *at, size_t n, const char *s) {
  while (*s && *at + 1 < n) buf[(*at)++] = *s++;
}

static void put_long(char *buf, size_t *at, size_t n, long v) {
  char digits[24];
  int k = 0;
  unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
  do digits[k++] = (char)('0' + u % 10); while ((u /= 10) > 0);
  if (v < 0) digits[k++] = '-';
  while (k > 0 && *at + 1 < n) buf[(*at)++] = digits[--k];
}

/* A stop (SIGSTOP, SIGTSTP: a Slurm `scontrol suspend`, a user pausing the job) and a SIGCONT: the
 * timer counts wall time, stopped time included, so at the continue it restarts with the whole
 * watchdog.seconds: a suspended job is not a hung one. The timer that ran out during the stop has a
 * SIGALRM pending, which the kernel delivers before SIGCONT (the lower number) while SIGCONT, in its
 * mask, waits: on_watchdog sees it pending (or, the other order, the flag on_continue set) and
 * restarts the timer instead of ending the rank. alarm() is async-signal-safe and sets the same
 * ITIMER_REAL as setitimer on Linux (whole seconds, rounded up). A continue within a healthy step
 * can give a later hang at most one period more. A rank stopped on its own never gets a SIGCONT, so
 * the others' timers still end the job. */
static volatile sig_atomic_t wd_rearm_s;   /* watchdog.seconds rounded up; 0: the watchdog is off */
static volatile sig_atomic_t wd_continued; /* a SIGCONT came since the timer was armed */

static void on_continue(int sig) {
  (void)sig;
  wd_continued = 1;
  if (wd_rearm_s > 0) alarm((unsigned)wd_rearm_s);
}

static void on_watchdog(int sig) {
  (void)sig;
  sigset_t pending;
  if (wd_continued || (sigpending(&pending) == 0 && sigismember(&pending, SIGCONT) == 1)) {
    wd_continued = 0;
    if (wd_rearm_s > 0) alarm((unsigned)wd_rearm_s);
    return;
  }
  char msg[640];
  size_t at = 0, n = sizeof msg;
  const char *coll = dist_current_collective();
  put_str(msg, &at, n, "amd: error: watchdog: rank ");
  put_long(msg, &at, n, wd_rank);
  put_str(msg, &at, n, " has spent more than ");
  put_long(msg, &at, n, (long)wd_seconds);
  put_str(msg, &at, n, " s (watchdog.seconds) on ");
  put_str(msg, &at, n, wd_what);
  if (wd_step >= 0) put_str(msg, &at, n, " "), put_long(msg, &at, n, wd_step);
  if (coll) {
    put_str(msg, &at, n, ", waiting in ");
    put_str(msg, &at, n, coll);
    put_str(msg, &at, n, " for ");
    if (wd_size == 2) put_str(msg, &at, n, "rank "), put_long(msg, &at, n, 1 - wd_rank);
    else put_str(msg, &at, n, "another rank");
    put_str(msg, &at, n, ", which is stopped, hung or far slower");
  } else {
    put_str(msg, &at, n, ": this rank, or another it waits for inside a checkpoint or log write, is stopped, hung or "
                         "far slower");
  }
  put_str(msg, &at, n, ". Ending this rank (exit 1), so that the launcher ends the others; resume=1 continues from the "
                       "newest checkpoint\n");
  ssize_t unused = write(2, msg, at);
  (void)unused;
  _exit(AMD_EXIT_ERROR);
}

void runctl_watchdog_arm(double seconds, long step, const char *what) {
  static int installed;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGCONT);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "cannot install the watchdog's SIGALRM handler: %s", strerror(errno));
    sa.sa_handler = on_continue;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGALRM);
    sa.sa_flags = SA_RESTART; /* the calls a stop interrupted go on */
    CHECK(sigaction(SIGCONT, &sa, NULL) == 0, "cannot install the watchdog's SIGCONT handler: %s", strerror(errno));
    wd_rank = dist_rank(), wd_size = dist_size();
    installed = 1;
  }
  wd_rearm_s = 0; /* no restart from a handler while the values change */
  wd_seconds = seconds, wd_step = step, wd_what = what;
  struct itimerval t;
  memset(&t, 0, sizeof t); /* seconds 0: disarmed */
  t.it_value.tv_sec = (time_t)seconds;
  t.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
  CHECK(setitimer(ITIMER_REAL, &t, NULL) == 0, "cannot set the watchdog's timer: %s", strerror(errno));
  wd_continued = 0;
  wd_rearm_s = seconds > 0 ? (sig_atomic_t)ceil(seconds) : 0;
}

void guard_init(Guard *g, double spike, int window, int max_rollbacks, double lr_factor, long rollbacks_done) {
  memset(g, 0, sizeof *g);
  CHECK(window >= 1 && window <= GUARD_MAX_WINDOW, "guard: window %d outside [1, %d]", window, GUARD_MAX_WINDOW);
  g->spike = spike, g->window = window, g->max_rollbacks = max_rollbacks, g->lr_factor = lr_factor;
  g->rollbacks = rollbacks_done;
}

int guard_check(Guard *g, const double *losses, const char *const *names, int n, int finite, char *why, size_t why_n) {
  CHECK(n >= 1 && n <= GUARD_MAX_LOSSES && (g->nlosses == 0 || g->nlosses == n), "guard: %d losses", n);
  g->nlosses = n;
  int diverged = 0;
  for (int i = 0; i < n && !diverged; i++) {
    if (!isfinite(losses[i])) {
      diverged = 1;
      snprintf(why, why_n, "%s %s", names[i], isnan(losses[i]) ? "NaN" : losses[i] > 0 ? "+Inf" : "-Inf");
    } else if (g->spike > 0 && g->filled == g->window) {
      double mean = 0;
      for (int k = 0; k < g->window; k++) mean += g->hist[i][k];
      mean /= g->window;
      if (mean > 0 && losses[i] > g->spike * mean) {
        diverged = 1;
        snprintf(why, why_n, "%s %g above %g x its mean %g over the previous %d steps", names[i], losses[i], g->spike,
                 mean, g->window);
      }
    }
  }
  if (!diverged && !finite) diverged = 1, snprintf(why, why_n, "non-finite gradient");
  /* the losses are global sums, so ranks agree already; the reduction makes sure of it */
  if (dist_allreduce_max_int(diverged)) {
    if (!diverged) snprintf(why, why_n, "another rank saw a divergence");
    return 1;
  }
  for (int i = 0; i < n; i++) g->hist[i][g->head] = losses[i];
  g->head = (g->head + 1) % g->window;
  if (g->filled < g->window) g->filled++;
  return 0;
}

double guard_lr_scale(const Guard *g) { return pow(g->lr_factor, (double)g->rollbacks); }

int guard_rollback(Guard *g, TrainLog *log, long step, const char *what, const char *why, const char *target) {
  char msg[768];
  if (g->rollbacks >= g->max_rollbacks) {
    snprintf(msg, sizeof msg, "diverged: %s; giving up after %ld rollbacks (guard.max_rollbacks = %d)", why,
             g->rollbacks, g->max_rollbacks);
    trainlog_event(log, step, msg);
    if (dist_rank() == 0) {
      fflush(stdout);
      fprintf(stderr, "amd: error: %s diverged at step %ld: %s; nothing was saved from this step (rollbacks used: "
                      "%ld, guard.max_rollbacks = %d). Newest checkpoint: %s. Lower the learning rate(s) or tighten "
                      "optim.grad_clip, then resume=1 with resume.allow= naming the keys changed\n",
              what, step, why, g->rollbacks, g->max_rollbacks, target ? target : "none");
      fflush(stderr);
    }
    return 1;
  }
  g->rollbacks++;
  g->filled = g->head = 0;
  const char *to = target ? target : "the initial state (no checkpoint yet)";
  snprintf(msg, sizeof msg, "diverged: %s; rollback %ld of %d to %s, learning rates x %g", why, g->rollbacks,
           g->max_rollbacks, to, guard_lr_scale(g));
  trainlog_event(log, step, msg);
  amd_log("%s diverged at step %ld: %s\n  rollback %ld of %d to %s; learning rates now x %g\n", what, step, why,
          g->rollbacks, g->max_rollbacks, to, guard_lr_scale(g));
  return 0;
}
