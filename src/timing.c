/* timing.c: per-rank compute / communication / I/O seconds and their /timing rows. */
#include "timing.h"

#include <stdlib.h>

#include "common.h"
#include "dist.h"

const char *const timing_cols[5] = {"step", "rank", "compute", "comm", "io"};

/* the interval's start: wall time, and the totals of communication and log seconds then */
static double t_begin, comm_begin, log_begin, ckpt_io;

void timing_start(void) {
  t_begin = amd_time();
  comm_begin = dist_comm_seconds(), log_begin = trainlog_io_seconds(), ckpt_io = 0;
}

void timing_add_io(double seconds) { ckpt_io += seconds; }

void timing_take(double out[3]) {
  double now = amd_time(), comm = dist_comm_seconds(), log = trainlog_io_seconds();
  out[1] = comm - comm_begin, out[2] = log - log_begin + ckpt_io;
  out[0] = now - t_begin - out[1] - out[2];
  if (out[0] < 0) out[0] = 0;
  t_begin = now, comm_begin = comm, log_begin = log, ckpt_io = 0;
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
