/* ops_cuda.h: the CUDA backend as C code sees it (src/backend.c, tests/test_cuda.c). Plain C types
 * only, so C files include it without the CUDA headers; built into `make CUDA=1` builds, which
 * define AMD_CUDA. The op table itself is the interface of core/ops.h.
 * Not here: kernels (the .cu files beside this one) and device selection policy (src/backend.c).
 * Return convention: cuda_device_count returns a count (0 with the reason in why) and
 * cuda_tf32 is a predicate; every other CUDA or cuBLAS error stops the program. */
#pragma once
#include <stddef.h>

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const amd_ops ops_cuda;

/* Number of CUDA devices this process can use; 0 when there is none, with the reason (the CUDA
 * runtime's error string) written to why. Starts nothing beyond the runtime's own query. */
int cuda_device_count(char *why, size_t why_len);
/* Binds this process to `device`: sets it current, creates the stream every op runs on and the
 * cuBLAS handle, reads AMD_TF32 (see cuda_set_tf32). Fatal on failure. A second call with the same
 * device does nothing. */
void cuda_backend_init(int device);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" of the bound device */
void cuda_device_describe(char *out, size_t out_len);
/* TF32 tensor-core GEMMs (about 10 mantissa bits in the products) on or off; off by default so the
 * CUDA backend matches the CPU to float32 rounding. AMD_TF32=1 in the environment turns it on. */
void cuda_set_tf32(int on);
int cuda_tf32(void);

#ifdef __cplusplus
}
#endif
