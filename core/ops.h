/* ops.h: the backend op interface. Models, losses and optimizers call only these, so the same model
 * file runs on the CPU backend (src/ops_cpu.c: OpenBLAS + OpenMP) and the CUDA backend (cuda/:
 * cuBLAS + kernels, `make CUDA=1`). Pointers passed to ops are backend memory from ops->alloc; ids
 * and per-sample vectors too: host code reads or writes them only through to_host / to_device.
 * Ops may run asynchronously (CUDA: in order on one stream); to_host, to_device and the reductions
 * return only when their data is there. Conventions: row-major; "backward" ops ADD into their
 * outputs (gradients accumulate), so callers zero gradient buffers once per step, except the
 * backward ops marked "overwrite": the transformer's per-token ones (gelu, modulate, gated residual,
 * softmax, head split and merge), whose outputs each backward writes exactly once, so that a
 * zeroing pass (and on a GPU a launch) before each is saved. Shapes are given in comments as
 * (rows, cols).
 * The ops themselves, each with its documentation, are listed once in core/ops_list.h, in two
 * groups: the general tensor ops (AMD_OPS_KERNELS: memory, GEMM, layers, elementwise, reductions,
 * AdamW, Philox), which know nothing of models or methods, and a named group of fused ops
 * (AMD_OPS_FUSED: the flow losses' interpolation and MSE, the GAN logistic loss, the DMD / AMD
 * generator gradient, denoising and the Euler step), each the formula of a loss, method or sampler
 * computed in one pass, kept in the backend for speed.
 * Not here: which model runs, or when a method calls its fused ops (src/flow.c,
 * src/distill.c, src/generator.c).
 * Return convention: ops do not fail, but alloc, which stops the program when it cannot;
 * all_finite is a predicate (1: every value finite); sum_squares returns its sum. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "ops_list.h"

/* one member per op: a pointer to the backend's function */
#define AMD_OP_MEMBER(ret, op, params, args, rv) ret (*op) params;

typedef struct amd_ops {
  const char *name;
  int host_memory; /* 1: backend memory is host memory (the CPU backend), so MPI may use it directly */
  int attention_heads_scratch; /* 1: attention_forward and _backward may split the heads into their scratch (the
                                * CUDA backend's unfused path), so src/attention.h's sizes count q, k, v there */
  AMD_OPS_KERNELS(AMD_OP_MEMBER)
  AMD_OPS_FUSED(AMD_OP_MEMBER)
} amd_ops;

/* The backend in use; set once at start-up (src/backend.h) before any model is built. */
extern const amd_ops *ops;
