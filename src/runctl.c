/* runctl.c: stop signals, the divergence guard's policy and the testing pauses (runctl.h). */
#include "runctl.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "dist.h"

static volatile sig_atomic_t pending_signal;

static void on_stop_signal(int sig) { pending_signal = sig; }

void runctl_install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* file and MPI calls go on; the flag is looked at between steps */
  CHECK(sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0,
        "cannot install the SIGTERM/SIGUSR1 handlers: %s", strerror(errno));
}

int runctl_stop_agreed(void) { return dist_allreduce_max_int((int)pending_signal); }

const char *runctl_signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}

void runctl_note_stop(TrainLog *log, int sig, long step) {
  char msg[160];
  snprintf(msg, sizeof msg, "stop: %s at step %ld; checkpoint and exit %d (requeue)", runctl_signal_name(sig), step,
           AMD_EXIT_REQUEUE);
  trainlog_event(log, step, msg);
  amd_log("%s received: stopping at step %ld with a checkpoint, exit status %d (requeue, then resume=1)\n",
          runctl_signal_name(sig), step, AMD_EXIT_REQUEUE);
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
