/* zero_stats.h: what a run's networks cost under ZeRO, for the log (docs/DESIGN.md section 7.2.1).
 * Per step: the bytes rank 0 sent and received in each network's ZeRO collectives (the gradient
 * reduce-scatter and all-gathers of stages 0 to 2, the unit gathers and reduce-scatters of stage 3)
 * and the seconds it spent inside them: the /train columns comm_bytes (every network), one
 * comm_bytes_<net> per network when a run has several, and comm_s. Once per start of a run: each
 * network's bytes per rank of parameters, gradients, moments, EMA and gathered buffers, the
 * /memory row. At the end: the averages per step, and how much of the non-blocking gathers' time
 * hid behind compute. Not here: the counting itself (mpi/dist.c, into each ZeroOpt's and each
 * stage-3 model's DistTraffic), the log file (io/trainlog.h), when rows are written (src/runloop.h).
 * Return convention: nothing here fails; functions return void. */
#pragma once
#include "dist.h"
#include "model.h"
#include "zero.h"

#define ZERO_STATS_MAX_NETS 4
/* step, ranks, zero, then five columns a network */
#define ZERO_STATS_MEMORY_COLS (3 + 5 * ZERO_STATS_MAX_NETS)

/* A network as the log sees it. */
typedef struct {
  const char *name;   /* in its column names: teacher, classifier, student, fake, disc, real */
  const Model *model; /* NULL: not in this run (the GAN head of dmd): its columns hold 0 */
  const ZeroOpt *zo;  /* its optimizer; NULL for a frozen network */
  int ema;            /* it keeps an EMA of its weights (over its moments' range) */
} ZeroNet;

typedef struct {
  int nnets;
  ZeroNet nets[ZERO_STATS_MAX_NETS];
  DistTraffic at_step[ZERO_STATS_MAX_NETS]; /* each network's totals when the current step began */
  DistTraffic run;                          /* every network, over the steps of this run */
  long steps;                               /* steps of this run */
  char memory_names[ZERO_STATS_MEMORY_COLS][48];
  const char *memory_cols[ZERO_STATS_MEMORY_COLS]; /* the /memory table's columns, "step" first */
  int nmemory;
  double memory_row[ZERO_STATS_MEMORY_COLS]; /* its row (the run loop fills in the step) */
} ZeroStats;

/* Takes the run's networks (at most ZERO_STATS_MAX_NETS) and fills the /memory columns and row. */
void zero_stats_init(ZeroStats *s, const ZeroNet *nets, int nnets, int stage);
/* Marks the start of a step (before its first collective). */
void zero_stats_step_begin(ZeroStats *s);
/* After the step's update: its /train values into out, in the order of the columns: comm_bytes,
 * then comm_bytes_<net> for each network when there are several, then comm_s. Returns how many. */
int zero_stats_step_end(ZeroStats *s, double *out);
/* Rank 0 prints the averages per step of this run (wall: its seconds, for the share). */
void zero_stats_summary(const ZeroStats *s, double wall);
