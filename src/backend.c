/* backend.c: picks the op table for `device = auto | cpu | cuda`, the precision of its GEMMs
 * (`precision = fp32 | tf32 | bf16`) and the thread count.
 * In a `make CUDA=1` build (AMD_CUDA) each rank binds to device (node-local rank) mod (devices on
 * its node); `auto` takes CUDA when a device is usable and says so when it falls back to the CPU;
 * `cuda` without a usable device, or in a build without the backend, is a clear usage error, never a
 * silent fallback. tf32 and bf16 are CUDA tensor-core modes (cuda/gemm.cu); the CPU backend has
 * bf16 too (src/gemm_bf16.h: AMX tiles, or the operands rounded where the processor has none) and
 * refuses tf32 rather than ignoring it, so a run's precision is what its config says. The
 * environment's AMD_TF32=1, the older switch, still turns fp32 into tf32 on CUDA. OpenMP threads
 * default to the cores of this node shared among its ranks, so `mpirun -np 2` on two cores does
 * not oversubscribe.
 * AMD_PROFILE=1 in the environment profiles any command: every op call is timed (ops_profile.h)
 * and rank 0 prints the per-op table to stderr when the program exits (AMD_PROFILE=cpu: timed by
 * the calling thread's CPU time; AMD_PROFILE_SHAPES=1 adds the GEMM shapes' table).
 * Every table installed (the CPU's, the CUDA one, the profiling one) is first checked for a NULL
 * op (ops_check), so a table that misses an op stops the program at start-up, naming it.
 * Subnormal floats (below 1.2e-38) are flushed to zero on the CPU (SSE FTZ and DAZ) unless
 * cpu.ftz=false: an x86 core computes with them up to ~170 times slower (OpenBLAS sgemm 0.82
 * against 142 GFLOP/s on this project's 2-core Xeon), and a run that diverges fills its GEMMs with
 * them (benchmarks/RESULTS.md, "Subnormal floats"). */
#include "backend.h"

#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
#define HAVE_MXCSR 1
#endif

#include "common.h"
#include "gemm_bf16.h"
#include "ops.h"
#ifdef AMD_CUDA
#include "ops_cuda.h"
#endif
#include "ops_profile.h"
#include "origin.h"
#include "provenance.h"

/* this rank's index among the ranks of its node, and their count */
static void node_local_rank(int *rank, int *size) {
  MPI_Comm local;
  *rank = 0, *size = 1;
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
    MPI_Comm_rank(local, rank);
    MPI_Comm_size(local, size);
    MPI_Comm_free(&local);
  }
}

static char device_desc[256]; /* the CUDA device chosen, for the provenance record ("" on the CPU) */

static const char *const precision_names[] = {"fp32", "tf32", "bf16"}; /* by CUDA_FP32, _TF32, _BF16 */

static int precision_index(const char *precision) {
  for (int i = 0; i < 3; i++)
    if (strcmp(precision, precision_names[i]) == 0) return i;
  amd_usage_error("config key 'precision' = '%s': expected fp32, tf32 or bf16", precision);
}

#ifdef AMD_CUDA
static int env_tf32(void) {
  const char *v = getenv("AMD_TF32");
  return v && v[0] && strcmp(v, "0") != 0;
}
#endif

#ifdef AMD_CUDA
static const amd_ops *select_cuda(int required) {
  char why[256] = "";
  int count = cuda_device_count(why, sizeof why);
  if (count < 1) {
    if (required) amd_usage_error("device=cuda: no usable CUDA device: %s; use device=cpu or device=auto", why);
    amd_log("device=auto: no usable CUDA device: %s; running on the CPU\n", why);
    return ops_cpu_best();
  }
  int rank, size;
  node_local_rank(&rank, &size);
  cuda_backend_init(rank % count);
  char desc[256];
  cuda_device_describe(desc, sizeof desc);
  snprintf(device_desc, sizeof device_desc, "%s", desc);
  amd_log("backend cuda: rank 0 on device %d of %d on its node (%s)\n", rank % count, count, desc);
  return &ops_cuda;
}
#endif

const char *ops_missing(const amd_ops *t) {
#define OP_MISSING(ret, op, params, args, rv) if (!t->op) return #op;
  AMD_OPS(OP_MISSING)
#undef OP_MISSING
  return NULL;
}

void ops_check(const amd_ops *t) {
  const char *op = ops_missing(t);
  if (op)
    amd_fatal("backend %s: its op table has no %s (every op of core/ops_list.h needs an implementation in "
              "each backend)", t->name, op);
}

const char *const cpu_isa_names[CPU_ISA_COUNT] = {"baseline", "avx2", "avx512"};
static const amd_ops *const cpu_isa_tables[CPU_ISA_COUNT] = {&ops_cpu, &ops_cpu_avx2, &ops_cpu_avx512};

const amd_ops *ops_cpu_isa(int i) {
  if (i < 0 || i >= CPU_ISA_COUNT) return NULL;
  __builtin_cpu_init();
  /* __builtin_cpu_supports needs a string literal */
  int present = i == 0 ? 1 : i == 1 ? __builtin_cpu_supports("avx2") : __builtin_cpu_supports("avx512f");
  return present ? cpu_isa_tables[i] : NULL;
}

const char *ops_cpu_isa_name(const amd_ops *t) {
  for (int i = 0; i < CPU_ISA_COUNT; i++)
    if (t == cpu_isa_tables[i]) return cpu_isa_names[i];
  return NULL;
}

const amd_ops *ops_cpu_best(void) {
  if (getenv("AMD_CPU_AVX2"))
    amd_usage_error("AMD_CPU_AVX2 is no longer read: AMD_CPU_ISA=baseline|avx2|avx512 chooses the CPU table "
                    "(AMD_CPU_AVX2=0 is now AMD_CPU_ISA=baseline)");
  const char *env = getenv("AMD_CPU_ISA");
  if (!env || !env[0] || strcmp(env, "auto") == 0) { /* the widest this processor has */
    for (int i = CPU_ISA_COUNT - 1; i > 0; i--)
      if (ops_cpu_isa(i)) return ops_cpu_isa(i);
    return &ops_cpu;
  }
  for (int i = 0; i < CPU_ISA_COUNT; i++) {
    if (strcmp(env, cpu_isa_names[i]) != 0) continue;
    const amd_ops *t = ops_cpu_isa(i);
    if (!t) amd_usage_error("AMD_CPU_ISA=%s: this processor does not have %s; use auto or baseline", env, env);
    return t;
  }
  amd_usage_error("AMD_CPU_ISA='%s': expected auto, baseline, avx2 or avx512", env);
  return NULL;
}

static const amd_ops *choose(const char *device) {
  int is_auto = strcmp(device, "auto") == 0, is_cuda = strcmp(device, "cuda") == 0;
  if (strcmp(device, "cpu") == 0) return ops_cpu_best();
  if (!is_auto && !is_cuda) amd_usage_error("device='%s': expected auto, cpu or cuda", device);
#ifdef AMD_CUDA
  return select_cuda(is_cuda);
#else
  if (is_cuda)
    amd_usage_error("device=cuda: this amd was built without the CUDA backend (build with `make CUDA=1` "
                    "on a machine with the CUDA toolkit), use device=cpu or device=auto");
  return ops_cpu_best();
#endif
}

void ops_select(const char *device) {
  const amd_ops *t = choose(device);
  ops_check(t);
  ops = t;
}

static const char *precision_in_force = "fp32";

const char *backend_precision(void) { return precision_in_force; }

const char *backend_set_precision(const char *precision) {
  int p = precision_index(precision);
#ifdef AMD_CUDA
  if (ops == &ops_cuda) {
    if (p == 0 && env_tf32()) p = 1;
    cuda_set_precision(p);
    if (p != 0)
      amd_log("backend cuda: precision=%s GEMMs%s\n", precision_names[p],
              strcmp(precision, "fp32") == 0 ? " (AMD_TF32=1 in the environment)" : "");
    return precision_in_force = precision_names[p];
  }
#endif
  if (p == 1)
    amd_usage_error("precision=tf32: the %s backend has no tf32 products (a CUDA tensor-core mode); use "
                    "precision=fp32 or bf16, or device=cuda", ops->name);
  cpu_set_bf16(p == 2);
  if (p == 2) {
    provenance_set_str("cpu.bf16", gemm_bf16_way()); /* the two ways' sums differ in order */
    const char *env = getenv("AMD_CPU_AMX");
    amd_log("backend %s: precision=bf16 GEMMs (%s)\n", ops->name,
            gemm_bf16_amx()                  ? "AMX tiles"
            : env && strcmp(env, "0") == 0 ? "operands rounded to bf16, float32 sgemm: AMD_CPU_AMX=0"
                                             : "operands rounded to bf16, float32 sgemm: no AMX-BF16 on this processor "
                                               "or in its kernel");
  }
  return precision_in_force = precision_names[p];
}

/* MXCSR's FTZ (bit 15: subnormal results become 0) and DAZ (bit 6: subnormal operands read as 0)
 * on the calling thread. */
static void mxcsr_ftz(int on) {
#ifdef HAVE_MXCSR
  unsigned m = _mm_getcsr();
  _mm_setcsr(on ? (m | 0x8040u) : (m & ~0x8040u));
#else
  (void)on;
#endif
}

int backend_set_ftz(int on) {
#ifndef HAVE_MXCSR
  if (on) amd_log("cpu.ftz=1: this CPU has no MXCSR; subnormal floats are kept\n");
  provenance_set_str("cpu.ftz", "false");
  return 0;
#else
  /* On the calling thread and on every thread of the OpenMP pool that OpenBLAS shares; a thread
   * created later copies the creating thread's MXCSR. */
  mxcsr_ftz(on);
#pragma omp parallel
  mxcsr_ftz(on);
  provenance_set_str("cpu.ftz", on ? "true" : "false");
  return on;
#endif
}

int backend_ftz(void) {
#ifdef HAVE_MXCSR
  return (_mm_getcsr() & 0x8040u) == 0x8040u;
#else
  return 0;
#endif
}

static int profile_rank = -1; /* the rank, noted while MPI still runs (exit comes after MPI_Finalize) */

static void profile_report_at_exit(void) {
  if (profile_rank != 0) return;
  ops_profile_report(stderr);
  const char *shapes = getenv("AMD_PROFILE_SHAPES");
  if (shapes && strcmp(shapes, "1") == 0) ops_profile_report_shapes(stderr);
}

int backend_init(const char *device, const char *precision, int threads) {
  ops_select(device);
  const char *backend = ops->name; /* before profiling wraps the table */
  const char *prec = backend_set_precision(precision);
  const char *profile = getenv("AMD_PROFILE");
  if (profile && (strcmp(profile, "1") == 0 || strcmp(profile, "cpu") == 0) && profile_rank < 0) {
    profile_rank = amd_rank();
    ops_profile_enable();
    ops_profile_set_cpu_clock(strcmp(profile, "cpu") == 0);
    ops_check(ops);
    atexit(profile_report_at_exit);
  }
  if (threads <= 0) {
    int rank, size;
    node_local_rank(&rank, &size);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    threads = (int)(cores / size);
    if (threads < 1) threads = 1;
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  origin_backend(backend, device_desc[0] ? device_desc : NULL, prec, threads);
  backend_set_ftz(1);
  return threads;
}

void backend_set_graphs(int on) {
#ifdef AMD_CUDA
  if (!on || ops->host_memory) return;
  if (profile_rank >= 0) {
    amd_log("cuda.graphs=1: off while AMD_PROFILE=1 times every op\n");
    return;
  }
  cuda_set_graphs(1);
  amd_log("backend cuda: cuda.graphs=1, each step's fixed device work replayed as a CUDA graph%s\n",
          cuda_graphs() ? "" : " (not while AMD_CUDA_SYNC=1)");
#else
  (void)on;
#endif
}
