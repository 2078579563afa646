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
#include <time.h>

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
static int cpu_clock;       /* 1: thread CPU time instead of wall clock (ops_profile_set_cpu_clock) */

/* The GEMM shapes seen (ops_profile.h): one entry per (op, transposes, M, N, K, batch). */
#define MAX_SHAPES 128
static ProfileShape shapes[MAX_SHAPES];
static int num_shapes, shapes_dropped;

static void record_shape(const char *op, int tA, int tB, long M, long N, long K, long batch, double seconds) {
  int i = 0;
  while (i < num_shapes && !(strcmp(shapes[i].op, op) == 0 && shapes[i].tA == tA && shapes[i].tB == tB && shapes[i].M == M &&
                             shapes[i].N == N && shapes[i].K == K && shapes[i].batch == batch))
    i++;
  if (i == num_shapes) {
    if (num_shapes == MAX_SHAPES) {
      shapes_dropped++;
      return;
    }
    shapes[num_shapes++] = (ProfileShape){op, tA, tB, (int)M, (int)N, (int)K, (int)batch, 0, 0};
  }
  shapes[i].calls++;
  shapes[i].seconds += seconds;
}

/* now, in seconds: the wall clock, or this thread's CPU time (which a process waiting for a shared
 * core does not accrue; the right clock at one thread, where every op runs on the calling thread) */
static double now(void) {
  if (!cpu_clock) return omp_get_wtime();
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
/* The shape an op call records (ops_profile_shape): the GEMMs' own, and the fused linear layers'
 * as the gemm(0, 1, rows, O, K) they run; SHAPE_<op> starts with a comma, as FLOPS_. */
#define SHAPE_gemm , record_shape("gemm", transA, transB, M, N, K, 1, dt_)
#define SHAPE_gemm_batched , record_shape("gemm_batched", transA, transB, M, N, K, batch, dt_)
#define SHAPE_linear_forward , record_shape("linear_forward", 0, 1, N, O, K, 1, dt_)
#define SHAPE_linear_gelu_forward , record_shape("linear_gelu_forward", 0, 1, N, O, K, 1, dt_)
#define SHAPE_linear_residual_forward , record_shape("linear_residual_forward", 0, 1, (long)B * T, O, K, 1, dt_)
#define OP_SHAPE(op) SECOND_ARG(SHAPE_##op, (void)0, ~)
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
    double t0_ = now();                                     \
    RESULT_##rv(ret) real->op args;                         \
    real->synchronize();                                    \
    double dt_ = now() - t0_;                               \
    record(&st_, dt_, OP_FLOPS(op));                        \
    OP_SHAPE(op);                                           \
    rv RESULT_VALUE_##rv;                                   \
  }
AMD_OPS(PROFILE_WRAPPER)

#define PROFILE_ENTRY(ret, op, params, args, rv) .op = p_##op,
/* host_memory and attention_heads_scratch are the wrapped table's, set when enabled */
static amd_ops profiled = {.name = "profiled", AMD_OPS(PROFILE_ENTRY)};

int ops_profile_enable(void) {
  if (real) return 0;
  real = ops;
  profiled.host_memory = real->host_memory;
  profiled.attention_heads_scratch = real->attention_heads_scratch;
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
  num_shapes = 0, shapes_dropped = 0;
}

void ops_profile_set_cpu_clock(int on) { cpu_clock = on; }

int ops_profile_shape(int i, ProfileShape *out) {
  if (i < 0 || i >= num_shapes) return 0;
  *out = shapes[i];
  return 1;
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
  if (cpu_clock) fprintf(f, "  (times are the calling thread's CPU time, AMD_PROFILE=cpu)\n");
}

void ops_profile_report_shapes(FILE *f) {
  if (num_shapes == 0) return;
  fprintf(f, "GEMM shapes (the fused linear layers as their gemm(0, 1), pointwise step included):\n");
  fprintf(f, "  %-24s %2s %2s %6s %6s %6s %5s %7s %9s %9s\n", "op", "tA", "tB", "M", "N", "K", "batch", "calls",
          "seconds", "GFLOP/s");
  for (int i = 0; i < num_shapes; i++) {
    const ProfileShape *s = &shapes[i];
    double fl = 2.0 * s->M * s->N * s->K * s->batch * s->calls;
    fprintf(f, "  %-24s %2d %2d %6d %6d %6d %5d %7ld %9.4f %9.1f\n", s->op, s->tA, s->tB, s->M, s->N, s->K,
            s->batch, s->calls, s->seconds, s->seconds > 0 ? fl / s->seconds * 1e-9 : 0);
  }
  if (shapes_dropped) fprintf(f, "  (%d calls of further shapes not listed: more than %d shapes)\n", shapes_dropped, MAX_SHAPES);
}
