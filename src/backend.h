/* backend.h: choosing the backend (device = auto | cpu | cuda) and the thread count; the op tables
 * themselves are the interface of core/ops.h. */
#pragma once

#include "ops.h"

extern const amd_ops ops_cpu; /* ops_cuda (cuda/ops_cuda.h) exists in `make CUDA=1` builds */

/* device: "cpu", "cuda" or "auto" (CUDA when built and a GPU is present, else the CPU). With CUDA,
 * each rank takes device (node-local rank) mod (devices on the node). `cuda` without a usable
 * device is a usage error naming the reason, never a silent fallback. */
void ops_select(const char *device);
/* ops_select plus the OpenMP/OpenBLAS thread count (threads <= 0: this node's cores divided among
 * its ranks); returns the thread count used. */
int backend_init(const char *device, int threads);
/* The name of the first op of core/ops_list.h that table t leaves NULL, or NULL when it has them
 * all. */
const char *ops_missing(const amd_ops *t);
/* Stops the program (amd_fatal, naming the backend and the op) when t lacks an op; ops_select and
 * backend_init check every table they install, so a half-filled table never runs. */
void ops_check(const amd_ops *t);
