/* ops_cuda.cu: the CUDA backend's op table (the interface of core/ops.h, the semantics of
 * src/ops_cpu.c), its memory ops, and binding a process to one device. Every op runs in order on one
 * stream; copies to the host wait for it, so the host sees what every earlier op wrote. Copies to
 * the device do not wait (see cuda_to_device), so the host keeps queueing work while they run.
 * The op families live beside this file: gemm.cu (cuBLAS), elementwise.cu, transformer.cu and
 * reduce.cu (reductions, AdamW, Philox, per-sample losses).
 * graph_run is graph.cu's (CUDA graphs of fixed op sequences on this stream).
 * Not here: which device a rank uses (src/backend.c), any second stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"
#include "ops_cuda.h"

cudaStream_t cuda_stream;
cublasHandle_t cuda_cublas;
int cuda_debug_sync;
static int bound_device = -1;

/* Pinned staging for host-to-device copies: each small copy's source is copied here at once (the
 * caller may reuse its buffer), and the device reads it in stream order. Space is handed out
 * front to back and reused only after a host wait, when the device has read all of it. */
static char *staging;
static size_t staging_bytes, staging_used;

void cuda_stream_wait(void) {
  cuda_capture_check("a wait for the device (synchronize, to_host or a full staging buffer)");
  cudaCheck(cudaStreamSynchronize(cuda_stream));
  staging_used = 0;
}

static int env_on(const char *name) {
  const char *v = getenv(name);
  return v && v[0] && strcmp(v, "0") != 0;
}

extern "C" int cuda_device_count(char *why, size_t why_len) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    snprintf(why, why_len, "%s (cudaGetDeviceCount: error %d)", cudaGetErrorString(err), (int)err);
    cudaGetLastError(); /* clear it: the CPU backend runs on in this process */
    return 0;
  }
  if (count < 1) snprintf(why, why_len, "cudaGetDeviceCount found no device");
  return count;
}

/* At exit: what cuda_backend_init made, given back, so that a leak checker (compute-sanitizer
 * --leak-check full, the emulator's live count) sees only what the program itself forgot. Errors are
 * ignored: after a fatal CUDA error the context may be gone, and an exit handler must not exit. */
static void cuda_backend_release(void) {
  if (bound_device < 0) return;
  cudaStreamSynchronize(cuda_stream);
  cuda_reduce_release();
  cuda_gemm_release();
  cudaFreeHost(staging);
  cublasDestroy(cuda_cublas);
  cudaStreamDestroy(cuda_stream);
  staging = NULL, bound_device = -1;
  cudaGetLastError();
}

extern "C" void cuda_backend_init(int device) {
  if (bound_device >= 0) {
    CHECK(device == bound_device, "CUDA backend already bound to device %d, asked for device %d", bound_device, device);
    return;
  }
  cudaCheck(cudaSetDevice(device));
  cudaCheck(cudaStreamCreate(&cuda_stream));
  cublasCheck(cublasCreate(&cuda_cublas));
  cublasCheck(cublasSetStream(cuda_cublas, cuda_stream));
  cuda_debug_sync = env_on("AMD_CUDA_SYNC");
  const char *sb = getenv("AMD_CUDA_STAGING");
  char *end = NULL;
  long kib = sb && *sb ? strtol(sb, &end, 10) : 8192;
  CHECK(kib >= 4 && kib <= (1L << 22) && (!end || *end == '\0'),
        "AMD_CUDA_STAGING=%s: expected the staging size in KiB, 4 to 4194304", sb);
  staging_bytes = (size_t)kib << 10;
  cudaCheck(cudaMallocHost(&staging, staging_bytes));
  bound_device = device;
  cuda_set_precision(CUDA_FP32);
  const char *fa = getenv("AMD_CUDA_FUSED_ATTENTION");
  cuda_set_fused_attention(!fa || !*fa || strcmp(fa, "0") != 0);
  cuda_reduce_init();
  atexit(cuda_backend_release);
}

extern "C" void cuda_device_describe(char *out, size_t out_len) {
  cudaDeviceProp p;
  cudaCheck(cudaGetDeviceProperties(&p, bound_device));
  snprintf(out, out_len, "%s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor, (double)p.totalGlobalMem / (1 << 30));
}

void *cuda_alloc(size_t bytes) {
  cuda_capture_check("alloc");
  void *p = NULL;
  size_t n = bytes ? bytes : 1;
  cudaError_t err = cudaMalloc(&p, n);
  if (err != cudaSuccess)
    amd_fatal("out of GPU memory allocating %zu bytes: %s (error %d)", bytes, cudaGetErrorString(err), (int)err);
  cudaCheck(cudaMemsetAsync(p, 0, n, cuda_stream));
  return p;
}

void cuda_free(void *p) {
  cuda_capture_check("free");
  if (p) cudaCheck(cudaFree(p));
}

/* Host buffers are pageable and reused by the caller right away. A copy of up to a quarter of the
 * staging buffer (a batch, per-sample t, labels, weights) goes through staging and returns without
 * waiting; when staging is full, the host waits for the stream first. A larger one (parameters at
 * load) is copied from the caller's buffer and waited for. */
void cuda_to_device(void *dst, const void *src, size_t bytes) {
  cuda_capture_check("to_device"); /* a graph would replay the copy from a stale staging slot */
  if (!bytes) return;
  if (bytes > staging_bytes / 4) {
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream));
    cuda_stream_wait();
    return;
  }
  if (staging_used + bytes > staging_bytes) cuda_stream_wait();
  char *slot = staging + staging_used;
  memcpy(slot, src, bytes);
  cudaCheck(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, cuda_stream));
  staging_used += (bytes + 255) & ~(size_t)255;
}

void cuda_to_host(void *dst, const void *src, size_t bytes) {
  cuda_capture_check("to_host");
  if (!bytes) return;
  cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream));
  cuda_stream_wait();
}

void cuda_copy(void *dst, const void *src, size_t bytes) {
  if (!bytes) return;
  cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream));
}

void cuda_synchronize(void) { cuda_stream_wait(); }

/* Filled member by member from the op list: C++ before C++20 has no designated initializers, and
 * positional ones would silently shift if the struct gained a member. */
static amd_ops cuda_table(void) {
  amd_ops t;
  memset(&t, 0, sizeof t);
  t.name = "cuda";
  t.attention_heads_scratch = 1; /* transformer.cu's unfused attention, where the fused kernels do not fit */
#define CUDA_ENTRY(ret, op, params, args, rv) t.op = cuda_##op;
  AMD_OPS(CUDA_ENTRY)
#undef CUDA_ENTRY
  return t;
}

const amd_ops ops_cuda = cuda_table();
