/* timing.c: per-rank compute / communication / I/O seconds and their /timing rows. */
#include "timing.h"

#include <stdlib.h>

#include "common.h"
#include "dist.h"

const char *const timing_cols[5] = {"step", "rank", "compute", "comm", "io"};

static double t_begin, acc[2];

void timing_start(void) {
  t_begin = amd_time();
  acc[TIMING_COMM] = acc[TIMING_IO] = 0;
}

void timing_add(TimingKind kind, double seconds) { acc[kind] += seconds; }

void timing_take(double out[3]) {
  double now = amd_time(), wall = now - t_begin;
  out[1] = acc[TIMING_COMM], out[2] = acc[TIMING_IO];
  out[0] = wall - out[1] - out[2];
  if (out[0] < 0) out[0] = 0;
  t_begin = now;
  acc[TIMING_COMM] = acc[TIMING_IO] = 0;
}

void timing_log(TrainLog *table, long step) {
  double mine[3];
  timing_take(mine);
  double row[TIMING_NCOLS] = {(double)step, dist_rank(), mine[0], mine[1], mine[2]};
  double *all;
  long total = dist_gather_f64(row, TIMING_NCOLS, &all);
  for (long r = 0; r < total / TIMING_NCOLS; r++) trainlog_append(table, all + (size_t)r * TIMING_NCOLS);
  free(all);
}
