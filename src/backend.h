/* backend.h: choosing the backend (device = auto | cpu | cuda), its precision (fp32 | tf32 | bf16)
 * and the thread count; the op tables
 * themselves are the interface of core/ops.h. */
#pragma once

#include "ops.h"

extern const amd_ops ops_cpu; /* ops_cuda (cuda/ops_cuda.h) exists in `make CUDA=1` builds */
/* The same CPU backend compiled for AVX2 and for AVX-512 (src/ops_cpu.c): the same results bit for
 * bit, wider vectors. Each runs only on a processor that has its instructions (avx2, avx512f). */
extern const amd_ops ops_cpu_avx2, ops_cpu_avx512;
/* The CPU instruction sets with a table of their own, narrowest first: "baseline" (x86-64-v2,
 * ops_cpu), "avx2", "avx512". */
#define CPU_ISA_COUNT 3
extern const char *const cpu_isa_names[CPU_ISA_COUNT];
/* The table of instruction set i (0 .. CPU_ISA_COUNT - 1), or NULL where this processor lacks it
 * (or i is out of range). */
const amd_ops *ops_cpu_isa(int i);
/* The instruction set's name of CPU table t, or NULL when t is not one of them. */
const char *ops_cpu_isa_name(const amd_ops *t);
/* The CPU table for this processor: the widest it has, or the one AMD_CPU_ISA=baseline|avx2|avx512
 * in the environment names (auto or unset: the widest; one the processor lacks, or another value,
 * is a usage error; so is the older AMD_CPU_AVX2, which names its replacement). device=cpu and a
 * fallback of device=auto install this one. */
const amd_ops *ops_cpu_best(void);

/* device: "cpu", "cuda" or "auto" (CUDA when built and a GPU is present, else the CPU). With CUDA,
 * each rank takes device (node-local rank) mod (devices on the node). `cuda` without a usable
 * device is a usage error naming the reason, never a silent fallback. */
void ops_select(const char *device);
/* The precision of the GEMMs of the table ops_select installed: "fp32", "tf32" or "bf16" (the
 * `precision` setting; anything else is a usage error naming the key). tf32 needs the CUDA
 * backend: the CPU's refuses it (usage error); its bf16 is src/gemm_bf16.h's. AMD_TF32=1 in the environment makes fp32
 * tf32 on CUDA. Returns the precision in force. */
const char *backend_set_precision(const char *precision);
const char *backend_precision(void); /* the precision in force: "fp32" until set */
/* CUDA graphs for ops->graph_run bodies (the cuda.graphs setting) on or off; the CUDA backend only
 * (the CPU runs every body as it comes), and not while AMD_PROFILE=1 times each op to its end,
 * which waits inside the body (said in the log). */
void backend_set_graphs(int on);
/* Subnormal floats flushed to zero (x86 FTZ and DAZ) on this thread and the OpenMP pool's, or
 * kept (IEEE gradual underflow); the cpu.ftz setting, recorded in the provenance. Returns whether
 * flushing is in force (0 on a CPU without MXCSR, said in the log). backend_ftz: whether the
 * calling thread flushes. */
int backend_set_ftz(int on);
int backend_ftz(void);
/* ops_select, backend_set_precision, the OpenMP/OpenBLAS thread count (threads <= 0: this
 * node's cores divided among its ranks) and backend_set_ftz(1); returns the thread count used. */
int backend_init(const char *device, const char *precision, int threads);
/* The name of the first op of core/ops_list.h that table t leaves NULL, or NULL when it has them
 * all. */
const char *ops_missing(const amd_ops *t);
/* Stops the program (amd_fatal, naming the backend and the op) when t lacks an op; ops_select and
 * backend_init check every table they install, so a half-filled table never runs. */
void ops_check(const amd_ops *t);
