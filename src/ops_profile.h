/* ops_profile.h: a per-op profiler. Enabling it swaps the global `ops` table for one that times
 * every call (wall clock) and counts calls, seconds and, for gemm and gemm_batched, FLOPs
 * (2 M N K batch) per op name, then calls the real op. Any command can be profiled: AMD_PROFILE=1
 * in the environment makes backend_init enable it and print the table on exit (rank 0, stderr).
 * Times are exact for the CPU backend, whose ops return when done; a GPU backend would need a
 * synchronize in the wrapper. Not here: per-call traces, shapes, or anything about models.
 * Return convention: ops_profile_enable returns 1, or 0 when the profiler was on already;
 * nothing else here fails. */
#pragma once
#include <stdio.h>

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
