/* emu_selftest.cu: checks of the CUDA emulator itself (tests/cuda_emu), written as CUDA and built
 * through the same launch rewrite as cuda/. `emu_selftest ok` checks the semantics the backend's
 * kernels rely on and prints PASS/FAIL lines: the barrier orders shared-memory writes before reads
 * (and leaving it out is visible), the xor shuffle, 2-D thread indices, a column-major cuBLAS
 * product against numbers worked by hand, the configuration and copy-kind errors, stream order (a
 * pinned source is read when the queued copy runs, a pageable one when it is queued; a copy into
 * pinned memory lands only at the synchronization). The other modes
 * each commit one fault the emulator must stop with a message naming it (tests/scenario_cuda_emu.sh
 * runs them): oob, host_access, deadlock, shfl_exited, gemm_ld, use_after_free. Stream capture:
 * a captured launch runs at each graph launch with its captured arguments, and a host wait inside
 * a capture fails and invalidates it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

static int failures;
static void expect(int ok, const char *what) {
  printf("%s emu_%s\n", ok ? "PASS" : "FAIL", what);
  failures += !ok;
}

#define N 256

/* out[t] = what thread t + 1 wrote, read after (ordered) or without (racy) a barrier */
__global__ void neighbour_kernel(int *out, int ordered) {
  __shared__ int sh[N];
  unsigned t = threadIdx.x;
  sh[t] = (int)(t + 1000 * blockIdx.x);
  if (ordered) __syncthreads();
  out[blockIdx.x * N + t] = sh[(t + 1) % N];
}

__global__ void lane_sum_kernel(int *out) {
  int v = (int)(threadIdx.x % 32);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}

__global__ void index_kernel(int *out) {
  out[(blockIdx.x * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x] =
      (int)(blockIdx.x * 10000 + threadIdx.y * 100 + threadIdx.x);
}

__global__ void write_kernel(float *x, long n) {
  for (long i = threadIdx.x; i < n; i += blockDim.x) x[i] = 1.0f;
}

__global__ void add_one_kernel(float *x, long n) {
  for (long i = threadIdx.x; i < n; i += blockDim.x) x[i] += 1.0f;
}

__global__ void deadlock_kernel(float *x) {
  float v = x[threadIdx.x];
  if (threadIdx.x % 32 < 16)
    __syncthreads();
  else
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  x[threadIdx.x] = v;
}

__global__ void shfl_exited_kernel(float *x) {
  if (threadIdx.x % 32 == 5) return;
  x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
}

static void *dev_alloc(size_t bytes) {
  void *p = NULL;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    fprintf(stderr, "cudaMalloc failed\n");
    exit(1);
  }
  return p;
}

static void to_host(void *dst, const void *src, size_t bytes) {
  if (cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, 0) != cudaSuccess) {
    fprintf(stderr, "cudaMemcpyAsync failed\n");
    exit(1);
  }
}

static void check_semantics(void) {
  int *d = (int *)dev_alloc(sizeof(int) * 4 * N), h[4 * N];
  neighbour_kernel<<<4, N, 0, 0>>>(d, 1);
  to_host(h, d, sizeof h);
  int ok = 1;
  for (int b = 0; b < 4; b++)
    for (int t = 0; t < N; t++) ok &= h[b * N + t] == (t + 1) % N + 1000 * b;
  expect(ok, "barrier_orders_shared_memory");
  neighbour_kernel<<<4, N, 0, 0>>>(d, 0);
  to_host(h, d, sizeof h);
  int stale = 0;
  for (int b = 1; b < 4; b++)
    for (int t = 0; t < N; t++) stale += h[b * N + t] != (t + 1) % N + 1000 * b;
  expect(stale > 0, "missing_barrier_reads_stale_shared_memory");

  lane_sum_kernel<<<1, 64, 0, 0>>>(d);
  to_host(h, d, sizeof(int) * 64);
  ok = 1;
  for (int t = 0; t < 64; t++) ok &= h[t] == 496; /* 0 + 1 + ... + 31 in every lane */
  expect(ok, "xor_shuffle_butterfly_sum");

  index_kernel<<<3, dim3(8, 4), 0, 0>>>(d);
  to_host(h, d, sizeof(int) * 96);
  ok = 1;
  for (int b = 0; b < 3; b++)
    for (int y = 0; y < 4; y++)
      for (int x = 0; x < 8; x++) ok &= h[(b * 4 + y) * 8 + x] == b * 10000 + y * 100 + x;
  expect(ok, "two_dimensional_thread_indices");

  /* column-major: A (2x3) = [1 2 3; 4 5 6] stored by columns, B (3x2) = [1 0; 0 1; 1 1];
   * A B = [4 5; 10 11], C = 2 A B + 1 C with C = ones: [9 11; 21 23], stored by columns */
  float ha[6] = {1, 4, 2, 5, 3, 6}, hb[6] = {1, 0, 1, 0, 1, 1}, hc[4] = {1, 1, 1, 1};
  float *a = (float *)dev_alloc(sizeof ha), *b = (float *)dev_alloc(sizeof hb), *c = (float *)dev_alloc(sizeof hc);
  cudaMemcpyAsync(a, ha, sizeof ha, cudaMemcpyHostToDevice, 0);
  cudaMemcpyAsync(b, hb, sizeof hb, cudaMemcpyHostToDevice, 0);
  cudaMemcpyAsync(c, hc, sizeof hc, cudaMemcpyHostToDevice, 0);
  cublasHandle_t blas;
  cublasCreate(&blas);
  float alpha = 2, beta = 1;
  cublasStatus_t st = cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, a, 2, b, 3, &beta, c, 2);
  to_host(hc, c, sizeof hc);
  expect(st == CUBLAS_STATUS_SUCCESS && hc[0] == 9 && hc[1] == 21 && hc[2] == 11 && hc[3] == 23,
         "cublas_sgemm_column_major");
  /* A^T as stored (3x2, lda 3) transposed back gives the same product */
  float hat[6] = {1, 2, 3, 4, 5, 6}, hc2[4] = {0, 0, 0, 0};
  cudaMemcpyAsync(a, hat, sizeof hat, cudaMemcpyHostToDevice, 0);
  beta = 0;
  st = cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 3, &alpha, a, 3, b, 3, &beta, c, 2);
  to_host(hc2, c, sizeof hc2);
  expect(st == CUBLAS_STATUS_SUCCESS && hc2[0] == 8 && hc2[1] == 20 && hc2[2] == 10 && hc2[3] == 22,
         "cublas_sgemm_transposed_operand");
  expect(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, a, 1, b, 3, &beta, c, 2) ==
             CUBLAS_STATUS_INVALID_VALUE,
         "cublas_rejects_short_leading_dimension");
  /* bf16 operands (upper halves of float32s), float32 C: A (1x2) = [1 + 2^-7, 3], B (2x1) =
   * [1, 2^-8]; A B = 1 + 2^-7 + 3 2^-8 = 1.01953125, exact in float32 */
  uint16_t hab[4] = {0x3F81, 0x4040, 0x3F80, 0x3B80};
  uint16_t *ab = (uint16_t *)dev_alloc(sizeof hab);
  cudaMemcpyAsync(ab, hab, sizeof hab, cudaMemcpyHostToDevice, 0);
  float one = 1;
  st = cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &one, ab, CUDA_R_16BF, 1, ab + 2, CUDA_R_16BF, 2, &beta,
                    c, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  to_host(hc2, c, sizeof(float));
  expect(st == CUBLAS_STATUS_SUCCESS && hc2[0] == 1.01953125f, "cublas_gemm_ex_bf16_operands");
  expect(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &one, ab, CUDA_R_16F, 1, ab + 2, CUDA_R_16F, 2, &beta,
                      c, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
         "cublas_gemm_ex_other_types_not_supported");
  cudaFree(ab);

  cudaGetLastError();
  write_kernel<<<1, 2048, 0, 0>>>(c, 4);
  expect(cudaGetLastError() == cudaErrorInvalidConfiguration, "launch_of_2048_threads_is_invalid_configuration");
  expect(cudaGetLastError() == cudaSuccess, "launch_error_is_cleared_by_reading_it");
  expect(cudaMemcpyAsync(hc, ha, sizeof hc, cudaMemcpyHostToDevice, 0) == cudaErrorInvalidValue,
         "host_to_device_into_host_memory_is_invalid_value");
  expect(cudaMemcpyAsync(c, a, 4 * sizeof(float) + 4, cudaMemcpyDeviceToDevice, 0) == cudaErrorInvalidValue,
         "copy_past_an_allocation_is_invalid_value");
  expect(cudaFree(c + 1) == cudaErrorInvalidDevicePointer, "free_of_an_interior_pointer_is_invalid");
  cudaFree(a), cudaFree(b), cudaFree(c), cudaFree(d);
}

static void check_stream_order(void) {
  float *d = (float *)dev_alloc(sizeof(float) * 4), *pin = NULL, pageable[4] = {1, 1, 1, 1}, back[4];
  cudaMallocHost(&pin, sizeof(float) * 4);
  for (int i = 0; i < 4; i++) pin[i] = 1;
  cudaMemcpyAsync(d, pin, sizeof back, cudaMemcpyHostToDevice, 0);
  pin[0] = 2; /* before the queued copy has run: a GPU may copy either value; the emulator copies 2 */
  to_host(back, d, sizeof back);
  expect(back[0] == 2, "pinned_source_is_read_when_the_copy_runs");
  cudaMemcpyAsync(d, pageable, sizeof back, cudaMemcpyHostToDevice, 0);
  pageable[0] = 3;
  to_host(back, d, sizeof back);
  expect(back[0] == 1, "pageable_source_is_read_when_queued");
  write_kernel<<<1, 32, 0, 0>>>(d, 4);
  pin[0] = 0;
  cudaMemcpyAsync(pin, d, sizeof back, cudaMemcpyDeviceToHost, 0);
  int before = pin[0] == 0;
  cudaStreamSynchronize(0);
  expect(before && pin[0] == 1.0f, "copy_into_pinned_memory_lands_at_the_synchronization");
  cudaFreeHost(pin);
  cudaFree(d);
}

/* stream capture: the captured launch runs only when the graph is launched, once per launch, with
 * the arguments it was captured with; a host wait inside a capture fails and invalidates it */
static void check_graphs(void) {
  cudaStream_t s;
  cudaStreamCreate(&s);
  float *d = (float *)dev_alloc(sizeof(float) * 4), back[4];
  cudaMemsetAsync(d, 0, sizeof back, s);
  cudaGraph_t g;
  cudaGraphExec_t e;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  long n = 4;
  add_one_kernel<<<1, 32, 0, s>>>(d, n);
  n = 2; /* the launch keeps the value it was captured with */
  cudaStreamEndCapture(s, &g);
  cudaGraphInstantiate(&e, g, 0);
  to_host(back, d, sizeof back);
  expect(back[3] == 0.0f, "capture_runs_nothing");
  cudaGraphLaunch(e, s);
  cudaGraphLaunch(e, s);
  to_host(back, d, sizeof back);
  expect(back[0] == 2.0f && back[3] == 2.0f, "graph_launch_replays_the_capture_with_its_arguments");
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  expect(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported, "host_wait_in_a_capture_is_refused");
  cudaGraph_t bad;
  expect(cudaStreamEndCapture(s, &bad) == cudaErrorStreamCaptureInvalidated, "refused_call_invalidates_the_capture");
  cudaGetLastError();
  cudaGraphExecDestroy(e);
  cudaGraphDestroy(g);
  cudaFree(d);
  cudaStreamDestroy(s);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "ok";
  cudaSetDevice(0);
  float *x = (float *)dev_alloc(sizeof(float) * 100);
  if (!strcmp(mode, "ok")) {
    check_semantics();
    check_stream_order();
    check_graphs();
    return failures ? 1 : 0;
  } else if (!strcmp(mode, "oob")) {
    write_kernel<<<1, 128, 0, 0>>>(x, 101);
  } else if (!strcmp(mode, "host_access")) { /* after a valid cuBLAS call: the fault names host code */
    float one = 1, zero = 0;
    cublasHandle_t blas;
    cublasCreate(&blas);
    cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, x, 1, x, 1, &zero, x + 1, 1);
    printf("%f\n", x[3]);
  } else if (!strcmp(mode, "use_after_free")) { /* a launch that kept a freed pointer */
    float *y = (float *)dev_alloc(sizeof(float) * 100);
    cudaFree(y);
    write_kernel<<<1, 32, 0, 0>>>(y, 100);
  } else if (!strcmp(mode, "deadlock")) {
    deadlock_kernel<<<1, 64, 0, 0>>>(x);
  } else if (!strcmp(mode, "shfl_exited")) {
    shfl_exited_kernel<<<1, 32, 0, 0>>>(x);
  } else if (!strcmp(mode, "gemm_ld")) { /* ld 10 places column 9 of 10 rows past a 100-float buffer */
    float one = 1, zero = 0;
    cublasHandle_t blas;
    cublasCreate(&blas);
    cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 10, 11, 1, &one, x, 10, x, 1, &zero, x, 10);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  cudaStreamSynchronize(0); /* queued work runs here */
  printf("the fault was not detected\n");
  return 0;
}
