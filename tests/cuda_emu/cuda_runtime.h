/* cuda_runtime.h of the CUDA emulator (tests/cuda_emu/): the part of the CUDA runtime and of the
 * device language that the cuda/ .cu files use, implemented on the CPU so the unmodified kernels run in CI,
 * which has no GPU. `make CUDA_EMU=1` puts this directory first on the include path and compiles the
 * .cu files as C++ after tests/cuda_emu/launch_rewrite.py has turned each `k<<<g, b, s, st>>>(args)`
 * into cuda_emu_launch("k", g, b, s, st, [=] { k(args); }).
 * The execution model (emu_runtime.cpp): a launch runs its blocks one after another; the threads of a
 * block are fibers, switched only at __syncthreads, __syncwarp and warp shuffles, which therefore have their real
 * meaning (a thread that reads shared memory before the barrier that orders it sees stale data, a
 * barrier that not every live thread reaches is reported as a deadlock, a full-mask shuffle with an
 * exited lane is reported). Device memory is guarded: each allocation ends at an inaccessible page
 * (out-of-bounds kernel accesses fault and are named), and is inaccessible to host code outside
 * kernels, copies and cuBLAS calls (host code that touches a device pointer is named).
 * Stream order is emulated as CUDA defines it: kernels, device-to-device and pinned-memory copies,
 * memsets and cuBLAS products are queued and run only when the host synchronizes (a stream or device
 * synchronization, a copy into pageable host memory, cudaFree), so host code that reads a result
 * before waiting for it, or rewrites a pinned buffer a queued copy has not read yet, gets what a GPU
 * could give it. Copies from pageable host memory read their source when called, as CUDA's do.
 * Not emulated: races between threads of one launch, the device's libm (host libm gives the
 * last-bit differences), timing. It is a check of the kernels' logic and of the host's ordering,
 * not a substitute for a GPU run. */
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <functional>

/* ---- the device language ---------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void cuda_emu_syncthreads(void);
/* lane's value exchanged through the warp: every live lane of the warp must call it */
uint64_t cuda_emu_shfl_xor(unsigned mask, uint64_t bits, int lane_mask);
/* the warp's barrier: every live lane of the warp must reach it (full mask only), as a shuffle */
void cuda_emu_syncwarp(unsigned mask);
#define __syncthreads() cuda_emu_syncthreads()
static inline void __syncwarp(unsigned mask = 0xffffffffu) { cuda_emu_syncwarp(mask); }

template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = cuda_emu_shfl_xor(mask, bits, lane_mask);
  T out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
static inline unsigned __float_as_uint(float x) {
  unsigned u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static inline float __uint_as_float(unsigned u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}
using std::isfinite;

/* ---- the runtime API -------------------------------------------------------------------------- */
typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
} cudaError_t;

typedef enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
} cudaMemcpyKind;

typedef struct cuda_emu_stream *cudaStream_t;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
};

const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMallocHost(void **ptr, size_t bytes); /* pinned: copies from or to it are asynchronous */

/* Stream capture and graphs: between cudaStreamBeginCapture and cudaStreamEndCapture the stream's
 * work (launches, cuBLAS products, device and pinned copies, memsets) is recorded, not queued; a
 * launch of the instantiated graph queues the recorded work again, in order, with the arguments it
 * was recorded with. During a capture a host wait, a copy from or into pageable memory, cudaMalloc
 * and cudaFree fail with cudaErrorStreamCaptureUnsupported and invalidate the capture (its end
 * then fails with cudaErrorStreamCaptureInvalidated), as in CUDA's global capture mode. */
typedef enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
} cudaStreamCaptureMode;
typedef struct cuda_emu_graph *cudaGraph_t;
typedef struct cuda_emu_graph_exec *cudaGraphExec_t;
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaFreeHost(void *ptr);
template <typename T> static inline cudaError_t cudaMalloc(T **ptr, size_t bytes) {
  return cudaMalloc((void **)ptr, bytes);
}
template <typename T> static inline cudaError_t cudaMallocHost(T **ptr, size_t bytes) {
  return cudaMallocHost((void **)ptr, bytes);
}

/* ---- launches --------------------------------------------------------------------------------- */
/* Checks the configuration (a bad one sets the error cudaGetLastError returns and queues nothing),
 * then queues the launch: every thread runs body() with threadIdx, blockIdx, blockDim and gridDim
 * set. The body holds the kernel's arguments by value, as a launch does. */
void cuda_emu_launch(const char *kernel, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                     std::function<void()> body);
