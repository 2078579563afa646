/* ops_cuda.h: the CUDA backend as C code sees it (src/backend.c, tests/test_cuda.c). Plain C types
 * only, so C files include it without the CUDA headers; built into `make CUDA=1` builds, which
 * define AMD_CUDA. The op table itself is the interface of core/ops.h.
 * Not here: kernels (the .cu files beside this one) and device selection policy (src/backend.c).
 * Return convention: cuda_device_count returns a count (0 with the reason in why) and
 * cuda_precision the precision in force; every other CUDA or cuBLAS error stops the program. */
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
 * cuBLAS handle, in precision fp32. Fatal on failure. A second call with the same device does
 * nothing. */
void cuda_backend_init(int device);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" of the bound device */
void cuda_device_describe(char *out, size_t out_len);
/* The precision of the GEMMs (cuda/gemm.cu; the `precision` setting, src/backend.c):
 * CUDA_FP32, the default, matches the CPU to float32 rounding; CUDA_TF32 lets cuBLAS round the
 * inputs to TF32 on tensor cores (10 mantissa bits); CUDA_BF16 rounds them to bfloat16 (7
 * mantissa bits) and multiplies on tensor cores with float32 accumulation. Every other op, and
 * every stored tensor, stays float32 in all three. Takes effect for the GEMMs queued after it. */
enum { CUDA_FP32 = 0, CUDA_TF32 = 1, CUDA_BF16 = 2 };
void cuda_set_precision(int precision);
int cuda_precision(void);
/* The fused attention forward and backward (cuda/attention.cu) on (1, the default) or off (0: the
 * unfused sequences of batched GEMMs and softmax; AMD_CUDA_FUSED_ATTENTION=0 in the environment),
 * and whether attention_forward takes it for T tokens of head size hs (on, and its shared memory
 * fits them). */
void cuda_set_fused_attention(int on);
int cuda_fused_attention_applies(int T, int hs);
int cuda_fused_attention_backward_applies(int T, int hs); /* the same for attention_backward */
/* CUDA graphs for graph_run bodies (cuda/graph.cu; the cuda.graphs setting): off (0, the default)
 * or on; cuda_graphs says whether they are in use (not with AMD_CUDA_SYNC=1). cuda_graph_counts:
 * graphs captured and graph launches so far in this process. */
void cuda_set_graphs(int on);
int cuda_graphs(void);
void cuda_graph_counts(long *captured, long *launched);

#ifdef __cplusplus
}
#endif
