/* ops_profile.c: the profiling op table. Each wrapper times one call of the real op with
 * omp_get_wtime, between two synchronize calls: on a GPU each op is timed from the end of the one
 * before to its own completion (the launch overlap is lost; that is the price of per-kernel times),
 * on the CPU synchronize does nothing. Ops are called from the host thread only (their OpenMP is
 * inside them), so the counters need no locking. The wrappers and their table are generated from
 * the op list (core/ops_list.h), so every op is profiled. Not here: the printing policy (backend.c). */
#include "ops_profile.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct {
  const char *name;
  int listed; /* in op_stats[] */
  long calls;
  double seconds, flops;
} OpStat;

#define COUNT_OP(ret, op, params, args, rv) +1
enum { MAX_OPS = 0 AMD_OPS(COUNT_OP) };
static OpStat *op_stats[MAX_OPS]; /* each op's counters, in order of first call */
static int num_stats;
static const amd_ops *real; /* the table being wrapped; NULL while disabled */

static void record(OpStat *s, double seconds, double flops) {
  if (!s->listed && num_stats < MAX_OPS) op_stats[num_stats++] = s, s->listed = 1;
  s->calls++;
  s->seconds += seconds;
  s->flops += flops;
}

/* FLOPs an op call counts: 2 M N K per product for the GEMMs (read from the wrapper's parameters),
 * and for the fused ops built around GEMMs (the linear layers, attention) their products' FLOPs,
 * so that their whole time, the pointwise steps fused in included, counts as GEMM time;
 * 0 for every op without a FLOPS_<op> line. FLOPS_<op> starts with a comma, which makes the
 * expression the second of OP_FLOPS's arguments. */
#define FLOPS_gemm , 2.0 * M * N * K
#define FLOPS_gemm_batched , 2.0 * M * N * K * batch
#define FLOPS_linear_forward , 2.0 * N * K * O
#define FLOPS_linear_gelu_forward , 2.0 * N * K * O
#define FLOPS_linear_residual_forward , 2.0 * B * T * K * O
#define FLOPS_attention_forward , 4.0 * B * NH * T * T * hs  /* scores and values */
#define FLOPS_attention_backward , 8.0 * B * NH * T * T * hs /* four products */
#define FLOPS_cross_attention_forward , 4.0 * B * NH * N * M * hs  /* scores and values */
#define FLOPS_cross_attention_backward , 8.0 * B * NH * N * M * hs /* four products */
#define OP_FLOPS(op) SECOND_ARG(FLOPS_##op, 0, ~)
#define SECOND_ARG(...) SECOND_ARG_(__VA_ARGS__)
#define SECOND_ARG_(a, b, ...) b

/* An op's result, kept across the timing when it returns one (rv is `return`; see ops_list.h). */
#define RESULT_(ret)
#define RESULT_return(ret) ret result_ =
#define RESULT_VALUE_
#define RESULT_VALUE_return result_

/* Ops that run other ops (graph_run runs its body's, each timed by its own wrapper) count their
 * calls but no time, so that no time is counted twice. NESTS_<op> starts with a comma, as FLOPS_. */
#define NESTS_graph_run , 1
#define OP_NESTS(op) SECOND_ARG(NESTS_##op, 0, ~)
/* the call, then return (its value, for an op that returns one) */
#define RETURN_CALL_(call) \
  {                        \
    call;                  \
    return;                \
  }
#define RETURN_CALL_return(call) return call;

/* p_<op>: the real op, timed, its time (and FLOPs) added to the op's counters. */
#define PROFILE_WRAPPER(ret, op, params, args, rv)          \
  static ret p_##op params {                                \
    static OpStat st_ = {#op, 0, 0, 0, 0};                  \
    if (OP_NESTS(op)) {                                     \
      record(&st_, 0, 0);                                   \
      RETURN_CALL_##rv(real->op args)                       \
    }                                                       \
    real->synchronize();                                    \
    double t0_ = omp_get_wtime();                           \
    RESULT_##rv(ret) real->op args;                         \
    real->synchronize();                                    \
    record(&st_, omp_get_wtime() - t0_, OP_FLOPS(op));      \
    rv RESULT_VALUE_##rv;                                   \
  }
AMD_OPS(PROFILE_WRAPPER)

#define PROFILE_ENTRY(ret, op, params, args, rv) .op = p_##op,
/* host_memory is the wrapped table's, set when enabled */
static amd_ops profiled = {.name = "profiled", AMD_OPS(PROFILE_ENTRY)};

int ops_profile_enable(void) {
  if (real) return 0;
  real = ops;
  profiled.host_memory = real->host_memory;
  ops = &profiled;
  return 1;
}

void ops_profile_disable(void) {
  if (!real) return;
  ops = real;
  real = NULL;
}

void ops_profile_reset(void) {
  for (int i = 0; i < num_stats; i++) op_stats[i]->calls = 0, op_stats[i]->seconds = 0, op_stats[i]->flops = 0;
}

long ops_profile_calls(const char *op) {
  for (int i = 0; i < num_stats; i++)
    if (strcmp(op_stats[i]->name, op) == 0) return op_stats[i]->calls;
  return 0;
}

double ops_profile_gemm_flops(void) {
  double f = 0;
  for (int i = 0; i < num_stats; i++) f += op_stats[i]->flops;
  return f;
}

static int by_time_desc(const void *a, const void *b) {
  double x = (*(OpStat *const *)a)->seconds, y = (*(OpStat *const *)b)->seconds;
  return (x < y) - (x > y);
}

void ops_profile_report(FILE *f) {
  OpStat *sorted[MAX_OPS];
  double total = 0, flops = 0, gemm_s = 0;
  int n = 0;
  for (int i = 0; i < num_stats; i++) {
    if (op_stats[i]->calls == 0) continue;
    sorted[n++] = op_stats[i];
    total += op_stats[i]->seconds;
    if (op_stats[i]->flops > 0) flops += op_stats[i]->flops, gemm_s += op_stats[i]->seconds;
  }
  qsort(sorted, (size_t)n, sizeof sorted[0], by_time_desc);
  fprintf(f, "op profile (%s backend): %.3f s in ops\n", real ? real->name : ops->name, total);
  fprintf(f, "  %-24s %9s %10s %7s %9s\n", "op", "calls", "seconds", "%", "GFLOP/s");
  for (int i = 0; i < n; i++) {
    const OpStat *s = sorted[i];
    fprintf(f, "  %-24s %9ld %10.4f %6.1f%%", s->name, s->calls, s->seconds, total > 0 ? 100 * s->seconds / total : 0);
    if (s->flops > 0 && s->seconds > 0) fprintf(f, " %9.1f", s->flops / s->seconds * 1e-9);
    fprintf(f, "\n");
  }
  if (gemm_s > 0)
    fprintf(f, "  GEMMs: %.3f GFLOP in %.3f s (%.1f GFLOP/s), %.1f%% of op time\n", flops * 1e-9, gemm_s,
            flops / gemm_s * 1e-9, total > 0 ? 100 * gemm_s / total : 0);
}
