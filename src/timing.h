/* timing.h: per-rank time accounting for the log's /timing table (DESIGN section 6). Each rank
 * accumulates communication seconds (measured around every MPI collective in mpi/dist.c) and I/O
 * seconds (log flushes in io/trainlog.c, checkpoint writes around ckpt_save); compute is the rest
 * of the wall time since the previous row. Every log interval the training loops call timing_log:
 * rank 0 gathers each rank's seconds of the interval and appends rows (step, rank, compute, comm,
 * io) to /timing, so a slow rank, a communication-bound step or a slow file system shows.
 * Not here: throughput (samples/s is a /train column) or profiling of single ops. */
#pragma once

#include "trainlog.h"

typedef enum { TIMING_COMM, TIMING_IO } TimingKind;

/* The /timing table's columns, for trainlog_open. */
extern const char *const timing_cols[5];
enum { TIMING_NCOLS = 5 };

/* Starts an interval now (the loop's start), forgetting what was accumulated before. */
void timing_start(void);
void timing_add(TimingKind kind, double seconds);
/* This rank's seconds since the previous call (or timing_start): compute, comm, io; starts the next
 * interval. */
void timing_take(double out[3]);
/* Collective: gathers every rank's timing_take() to rank 0 and appends one /timing row per rank. */
void timing_log(TrainLog *table, long step);
