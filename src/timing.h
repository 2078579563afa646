/* timing.h: per-rank time accounting for the log's /timing table (docs/DESIGN.md section 6). Each
 * rank reads communication seconds (measured around every MPI collective by mpi/dist.c) and I/O
 * seconds (log flushes, counted by io/trainlog.c, and checkpoint writes, timed by the run loop);
 * compute is the rest of the wall time since the previous row. Every log interval the training loops call timing_log:
 * rank 0 gathers each rank's seconds of the interval and appends rows (step, rank, compute, comm,
 * io) to /timing, so a slow rank, a communication-bound step or a slow file system shows.
 * Not here: throughput (samples/s is a /train column) or profiling of single ops.
 * Return convention: nothing here fails but an MPI call, which stops the program. */
#pragma once

#include "trainlog.h"

/* The /timing table's columns, for trainlog_open. */
extern const char *const timing_cols[5];
enum { TIMING_NCOLS = 5 };

/* Starts an interval now (the loop's start), forgetting what was accumulated before. */
void timing_start(void);
/* Adds I/O seconds spent outside the log (checkpoint writes) to the interval. */
void timing_add_io(double seconds);
/* This rank's seconds since the previous call (or timing_start): compute, comm, io; starts the next
 * interval. */
void timing_take(double out[3]);
/* Collective: gathers every rank's timing_take() to rank 0 and appends one /timing row per rank. */
void timing_log(TrainLog *table, long step);
