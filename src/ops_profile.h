/* ops_profile.h: a per-op profiler. Enabling it swaps the global `ops` table for one that times
 * every call (wall clock) and counts calls, seconds and, for gemm and gemm_batched, FLOPs
 * (2 M N K batch) per op name, then calls the real op. Any command can be profiled: AMD_PROFILE=1
 * in the environment makes backend_init enable it and print the table on exit (rank 0, stderr).
 * Times are exact for the CPU backend, whose ops return when done; a GPU backend would need a
 * synchronize in the wrapper. Not here: per-call traces, shapes, or anything about models.
 * AMD_PROFILE=cpu does the same with each op timed by the calling thread's CPU time (right at one
 * thread on a shared machine); AMD_PROFILE_SHAPES=1 adds a table of the GEMM shapes with their
 * GFLOP/s in the run.
 * Return convention: ops_profile_enable returns 1, or 0 when the profiler was on already;
 * nothing else here fails. */
#pragma once
#include <stdio.h>

/* One GEMM shape the profiled ops ran since the last reset: gemm, gemm_batched, and the fused
 * linear layers (linear_forward, linear_gelu_forward, linear_residual_forward) as the
 * gemm(0, 1, rows, O, K) inside them, their pointwise steps included in the seconds. */
typedef struct {
  const char *op;
  int tA, tB, M, N, K, batch;
  long calls;
  double seconds;
} ProfileShape;

/* Wraps the current `ops` table (call after ops_select). Returns 1, or 0 when it was already
 * enabled (then it does nothing), so a caller that enables it for a while knows whether to disable. */
int ops_profile_enable(void);
/* Puts the wrapped table back; the counters are kept. */
void ops_profile_disable(void);
/* Zeroes every counter (e.g. after warmup steps). */
void ops_profile_reset(void);
/* Calls of the op named op since the last reset (0 for one never called). */
long ops_profile_calls(const char *op);
/* FLOPs counted by the GEMM ops since the last reset. */
double ops_profile_gemm_flops(void);
/* The table, sorted by time: op, calls, seconds, % of the profiled total, GFLOP/s for GEMMs. */
void ops_profile_report(FILE *f);
/* Times each op by the calling thread's CPU time (1) or the wall clock (0, the default). At one
 * thread every op runs on the calling thread, so its CPU time is the op's work even when the
 * process waits for a shared core; at more threads it misses the other threads' work.
 * AMD_PROFILE=cpu in the environment sets it. */
void ops_profile_set_cpu_clock(int on);
/* Shape i (0, 1, ... in order of first call) into *out: 1, or 0 past the last. */
int ops_profile_shape(int i, ProfileShape *out);
/* The shapes as a table: op, transposes, M, N, K, batch, calls, seconds, GFLOP/s in the step. */
void ops_profile_report_shapes(FILE *f);
