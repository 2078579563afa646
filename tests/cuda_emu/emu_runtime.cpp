/* emu_runtime.cpp: the CUDA emulator's runtime (see cuda_runtime.h here for what it is for and what
 * it does not emulate): guarded device memory, the launch scheduler with fibers for the threads of
 * a block, the runtime calls the cuda/ .cu files make, and the cuBLAS reference of cublas_v2.h.
 * A fault the emulator detects (out-of-bounds device access, host code touching device memory, a
 * barrier deadlock) is printed as "cuda emulator: ..." with the kernel's name, then the process
 * aborts, as a real kernel fault ends a CUDA context.
 * Environment: CUDA_EMU_DEVICES (default 1) is the device count it reports, 0 for "no device";
 * CUDA_EMU_STATS=FILE writes the counts of calls (cudaMalloc, launches, copies by direction, cuBLAS
 * products, host waits for queued work, then launches per kernel as "launch.<kernel>") and the
 * device cudaSetDevice chose to FILE at exit (%r in FILE becomes the MPI rank), one "name count"
 * per line, so a test can tell what a step costs. */
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#include <unistd.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cublas_v2.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

static const char *current_kernel = "host code"; /* or the kernel or call running */
static bool in_kernel;

__attribute__((noreturn, format(printf, 1, 2))) static void emu_fault(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (in_kernel)
    fprintf(stderr, "cuda emulator: %s (kernel %s, block (%u,%u,%u), thread (%u,%u,%u))\n", msg, current_kernel,
            blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
  else
    fprintf(stderr, "cuda emulator: %s (in %s)\n", msg, current_kernel);
  void *frames[32];
  int n = backtrace(frames, 32);
  backtrace_symbols_fd(frames, n, 2);
  abort();
}

/* ---- call counts (CUDA_EMU_STATS) --------------------------------------------------------------- */
static struct {
  unsigned long long malloc, free, launch, h2d, d2h, d2d, memset, gemm, host_wait;
} stats;
static std::map<std::string, unsigned long long> launches_by_kernel;
static unsigned long long graphs_live, graph_launches; /* graphs and instantiated graphs held; graph launches */

static int bound_device = -1;

static void write_live(FILE *f); /* at the end of this file, where every kind of object is declared */

static void write_stats(void) {
  const char *pattern = getenv("CUDA_EMU_STATS"), *rank = getenv("OMPI_COMM_WORLD_RANK");
  if (!pattern || !*pattern) return;
  char path[4096];
  const char *r = strstr(pattern, "%r"); /* %r: this MPI rank, for one file per rank */
  if (r)
    snprintf(path, sizeof path, "%.*s%s%s", (int)(r - pattern), pattern, rank ? rank : "0", r + 2);
  else
    snprintf(path, sizeof path, "%s", pattern);
  FILE *f = fopen(path, "w");
  if (!f) return;
  fprintf(f, "device %d\n", bound_device);
  fprintf(f, "cudaMalloc %llu\ncudaFree %llu\nlaunch %llu\nmemcpy_h2d %llu\nmemcpy_d2h %llu\nmemcpy_d2d %llu\n"
             "memset %llu\ngemm %llu\nhost_wait %llu\n",
          stats.malloc, stats.free, stats.launch, stats.h2d, stats.d2h, stats.d2d, stats.memset, stats.gemm,
          stats.host_wait);
  fprintf(f, "graph_launch %llu\n", graph_launches);
  write_live(f);
  for (const auto &k : launches_by_kernel) fprintf(f, "launch.%s %llu\n", k.first.c_str(), k.second);
  fclose(f);
}

/* ---- guarded device memory ---------------------------------------------------------------------
 * An allocation is its own mapping: a guard page, the data pages with the data flush against the
 * end (rounded up to 4 bytes), a guard page. The data pages are PROT_NONE except inside a device
 * section (a kernel, a copy, a memset, a cuBLAS call): there the first touch of an allocation faults
 * into on_segv, which opens it until the section ends. */
struct Alloc {
  char *map;        /* the whole mapping */
  size_t map_bytes; /* including both guard pages */
  char *data;       /* what cudaMalloc returned */
  size_t bytes;
  bool open;
};
static std::map<uintptr_t, Alloc> allocs; /* by map address */
/* freed allocations, by map address: their pages are given back but the addresses stay reserved
 * and inaccessible, so a later allocation never reuses them and a use after cudaFree (a kernel or
 * a graph that kept the pointer) faults and is named */
static std::map<uintptr_t, size_t> freed;
static std::vector<Alloc *> opened;
static bool in_device;
static size_t page;

static Alloc *alloc_at(const void *p) { /* the allocation whose mapping holds p, or NULL */
  uintptr_t a = (uintptr_t)p;
  auto it = allocs.upper_bound(a);
  if (it == allocs.begin()) return NULL;
  --it;
  Alloc *al = &it->second;
  return a < (uintptr_t)al->map + al->map_bytes ? al : NULL;
}

static char *data_pages(Alloc *a) { return a->map + page; }
static size_t data_pages_bytes(Alloc *a) { return a->map_bytes - 2 * page; }

static void open_alloc(Alloc *a) {
  if (a->open) return;
  if (mprotect(data_pages(a), data_pages_bytes(a), PROT_READ | PROT_WRITE) != 0) emu_fault("mprotect failed");
  a->open = true;
  opened.push_back(a);
}

static void begin_device(const char *what) {
  current_kernel = what;
  in_device = true;
}

static void end_device(void) {
  for (Alloc *a : opened) {
    if (mprotect(data_pages(a), data_pages_bytes(a), PROT_NONE) != 0) emu_fault("mprotect failed");
    a->open = false;
  }
  opened.clear();
  in_device = false;
  current_kernel = "host code";
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  Alloc *a = alloc_at(si->si_addr);
  if (!a) {
    uintptr_t p = (uintptr_t)si->si_addr;
    auto f = freed.upper_bound(p);
    if (f != freed.begin() && p < (--f)->first + f->second)
      emu_fault("device memory used after its cudaFree (an allocation of %llu bytes with its guard pages)",
                (unsigned long long)f->second);
    /* not device memory: an ordinary crash */
    signal(sig, SIG_DFL);
    return;
  }
  char *p = (char *)si->si_addr;
  unsigned long long bytes = a->bytes;
  if (p >= a->data + a->bytes)
    emu_fault("out-of-bounds device access %llu bytes past the end of a %llu-byte allocation",
              (unsigned long long)(p - (a->data + a->bytes)), bytes);
  if (p < a->data)
    emu_fault("out-of-bounds device access %llu bytes before the start of a %llu-byte allocation",
              (unsigned long long)(a->data - p), bytes);
  if (!in_device)
    emu_fault("host code touched device memory (byte %llu of a %llu-byte cudaMalloc allocation): a device pointer "
              "dereferenced on the host",
              (unsigned long long)(p - a->data), bytes);
  open_alloc(a);
}

static void memory_init(void) {
  if (page) return;
  page = (size_t)sysconf(_SC_PAGESIZE);
  atexit(write_stats);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, NULL);
}

/* the allocation holding [p, p + bytes) whole, or NULL */
static Alloc *device_range(const void *p, size_t bytes) {
  Alloc *a = alloc_at(p);
  if (!a || (const char *)p < a->data || (const char *)p + bytes > a->data + a->bytes) return NULL;
  return a;
}

/* ---- errors, devices, streams ------------------------------------------------------------------ */
static cudaError_t last_error = cudaSuccess;
static cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

const char *cudaGetErrorString(cudaError_t err) {
  switch (err) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  case cudaErrorInvalidDevicePointer: return "invalid device pointer";
  case cudaErrorNoDevice: return "no CUDA-capable device is detected";
  case cudaErrorInvalidDevice: return "invalid device ordinal";
  case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
  case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

static int device_count(void) {
  const char *v = getenv("CUDA_EMU_DEVICES");
  return v && *v ? atoi(v) : 1;
}

cudaError_t cudaGetDeviceCount(int *count) {
  *count = device_count();
  if (*count < 1) {
    *count = 0;
    return fail(cudaErrorNoDevice);
  }
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  bound_device = device;
  memory_init();
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "CUDA emulator on the CPU (tests/cuda_emu, not a GPU)");
  prop->totalGlobalMem = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
  return cudaSuccess;
}

struct cuda_emu_stream {}; /* a stream is its address */
static std::vector<cuda_emu_stream *> streams;

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
  *stream = new cuda_emu_stream;
  streams.push_back(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  for (size_t i = 0; i < streams.size(); i++)
    if (streams[i] == stream) {
      streams.erase(streams.begin() + (long)i);
      delete stream;
      return cudaSuccess;
    }
  return fail(cudaErrorInvalidValue);
}

static bool valid_stream(cudaStream_t s) {
  if (!s) return true; /* the legacy default stream */
  for (cudaStream_t t : streams)
    if (t == s) return true;
  return false;
}

/* The stream's queued work, run in order when the host synchronizes. One queue: amd uses one stream
 * (the legacy default stream, 0, is the same queue here). */
static std::vector<std::function<void()>> queued;

static void flush(void) {
  stats.host_wait += !queued.empty(); /* a wait with nothing queued costs nothing */
  for (size_t i = 0; i < queued.size(); i++) queued[i]();
  queued.clear();
}

/* the capture in progress (cudaStreamBeginCapture): what enqueue records instead of queueing */
static std::vector<std::function<void()>> *capture;
static bool capture_invalidated;

static void enqueue(std::function<void()> work) {
  if (capture)
    capture->push_back(std::move(work));
  else
    queued.push_back(std::move(work));
}

/* a call CUDA's global capture mode forbids: fails and invalidates the capture */
static bool refused_in_capture(void) {
  if (!capture) return false;
  capture_invalidated = true;
  fail(cudaErrorStreamCaptureUnsupported);
  return true;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidValue);
  if (refused_in_capture()) return cudaErrorStreamCaptureUnsupported;
  flush();
  return cudaSuccess;
}

struct cuda_emu_graph {
  std::vector<std::function<void()>> work;
};
struct cuda_emu_graph_exec {
  std::vector<std::function<void()>> work;
};
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (!stream || !valid_stream(stream) || capture || mode != cudaStreamCaptureModeGlobal)
    return fail(cudaErrorInvalidValue); /* amd captures its own stream, one capture at a time */
  capture = new std::vector<std::function<void()>>;
  capture_invalidated = false;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
  if (!valid_stream(stream) || !capture) return fail(cudaErrorInvalidValue);
  std::vector<std::function<void()>> *work = capture;
  capture = NULL;
  if (capture_invalidated) {
    delete work;
    *graph = NULL;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = new cuda_emu_graph{std::move(*work)};
  delete work;
  graphs_live++;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
  if (!graph || flags) return fail(cudaErrorInvalidValue);
  *exec = new cuda_emu_graph_exec{graph->work};
  graphs_live++;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec || !valid_stream(stream) || capture) return fail(cudaErrorInvalidValue);
  for (const auto &w : exec->work) queued.push_back(w);
  graph_launches++;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (!exec) return fail(cudaErrorInvalidValue);
  delete exec;
  graphs_live--;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (!graph) return fail(cudaErrorInvalidValue);
  delete graph;
  graphs_live--;
  return cudaSuccess;
}

/* pinned host memory (cudaMallocHost): copies from or to it run in stream order */
static std::map<uintptr_t, size_t> pinned;

static bool is_pinned(const void *p, size_t bytes) {
  auto it = pinned.upper_bound((uintptr_t)p);
  if (it == pinned.begin()) return false;
  --it;
  return (uintptr_t)p + bytes <= it->first + it->second;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 4096, bytes ? bytes : 1) != 0) return fail(cudaErrorMemoryAllocation);
  pinned[(uintptr_t)p] = bytes ? bytes : 1;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr) {
  if (!ptr) return cudaSuccess;
  if (!pinned.count((uintptr_t)ptr)) return fail(cudaErrorInvalidValue);
  flush(); /* as cudaFree, it waits for the device */
  pinned.erase((uintptr_t)ptr);
  free(ptr);
  return cudaSuccess;
}

/* ---- memory calls ------------------------------------------------------------------------------ */
cudaError_t cudaMalloc(void **ptr, size_t bytes) {
  memory_init();
  if (refused_in_capture()) return cudaErrorStreamCaptureUnsupported;
  size_t data = (bytes + 3) & ~(size_t)3, pages = (data + page - 1) / page * page;
  if (pages == 0) pages = page;
  size_t total = pages + 2 * page;
  char *m = (char *)mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  Alloc a = {m, total, m + page + pages - data, bytes, false};
  allocs[(uintptr_t)m] = a;
  stats.malloc++;
  /* what a fresh cudaMalloc holds is unspecified: NaN bytes, so code that reads before it writes shows */
  begin_device("cudaMalloc");
  memset(a.data, 0xff, data);
  end_device();
  *ptr = a.data;
  return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
  if (!ptr) return cudaSuccess;
  Alloc *a = alloc_at(ptr);
  if (!a || a->data != ptr) return fail(cudaErrorInvalidDevicePointer);
  if (refused_in_capture()) return cudaErrorStreamCaptureUnsupported;
  flush(); /* cudaFree waits for the device */
  /* the pages go back to the system, the range stays reserved and inaccessible */
  if (mmap(a->map, a->map_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
    emu_fault("mmap failed while freeing");
  freed[(uintptr_t)a->map] = a->map_bytes;
  stats.free++;
  allocs.erase((uintptr_t)a->map);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidValue);
  if (!bytes) return cudaSuccess;
  if (!device_range(ptr, bytes)) return fail(cudaErrorInvalidValue);
  stats.memset++;
  enqueue([=] {
    begin_device("cudaMemsetAsync");
    memset(ptr, value, bytes);
    end_device();
  });
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!valid_stream(stream)) return fail(cudaErrorInvalidValue);
  if (!bytes) return cudaSuccess;
  bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  /* each side must be what the kind says: a whole device range, or memory outside every allocation */
  if (dst_dev ? !device_range(dst, bytes) : alloc_at(dst) != NULL) return fail(cudaErrorInvalidValue);
  if (src_dev ? !device_range(src, bytes) : alloc_at(src) != NULL) return fail(cudaErrorInvalidValue);
  if (((kind == cudaMemcpyHostToDevice && !is_pinned(src, bytes)) ||
       (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, bytes))) &&
      refused_in_capture())
    return cudaErrorStreamCaptureUnsupported; /* pageable memory cannot be part of a graph */
  (kind == cudaMemcpyHostToDevice ? stats.h2d : kind == cudaMemcpyDeviceToHost ? stats.d2h : stats.d2d)++;
  if (kind == cudaMemcpyHostToDevice && !is_pinned(src, bytes)) {
    /* pageable source: read now, as CUDA stages it before returning */
    std::vector<char> staged((const char *)src, (const char *)src + bytes);
    enqueue([=, staged = std::move(staged)] {
      begin_device("cudaMemcpyAsync (host to device)");
      memcpy(dst, staged.data(), bytes);
      end_device();
    });
    return cudaSuccess;
  }
  enqueue([=] {
    begin_device("cudaMemcpyAsync");
    memmove(dst, src, bytes);
    end_device();
  });
  /* into pageable memory: returns once the copy (and so all earlier work) is done */
  if (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, bytes)) flush();
  return cudaSuccess;
}

/* ---- launches ----------------------------------------------------------------------------------
 * Fibers: one per thread of the block, run in thread order until each has finished or waits at a
 * barrier; then a warp whose live lanes all wait at a shuffle, or else a block whose live threads
 * all wait at __syncthreads, is released. Nothing releasable while threads wait is a deadlock. */
enum { MAX_THREADS = 1024, STACK_BYTES = 64 * 1024 };
enum FiberState { RUNNABLE, AT_SYNC, AT_SHFL, DONE };

/* Switching between the scheduler and a fiber. On x86-64 a few instructions that save the
 * callee-saved registers on the old stack and restore them from the new one (swapcontext would
 * also make a system call for the signal mask at every switch, most of the emulator's time);
 * elsewhere, ucontext. */
#if defined(__x86_64__)
struct Context {
  void *sp;
};
extern "C" void cuda_emu_switch(void **save_sp, void *next_sp);
asm(".text\n"
    ".globl cuda_emu_switch\n"
    ".type cuda_emu_switch, @function\n"
    "cuda_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size cuda_emu_switch, .-cuda_emu_switch\n");
static void switch_to(Context *from, Context *to) { cuda_emu_switch(&from->sp, to->sp); }
/* a fresh fiber's stack: six zero registers, then entry as the return address, with the
 * alignment a call would leave (rsp = 8 mod 16 at entry) */
static void context_init(Context *c, char *stack, size_t bytes, void (*entry)(void)) {
  uintptr_t top = ((uintptr_t)stack + bytes) & ~(uintptr_t)15;
  void **sp = (void **)top;
  *--sp = NULL;            /* entry's return address: it never returns */
  *--sp = (void *)entry;   /* where the first switch's ret goes */
  for (int i = 0; i < 6; i++) *--sp = NULL;
  c->sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
static void switch_to(Context *from, Context *to) { swapcontext(&from->uc, &to->uc); }
static void context_init(Context *c, char *stack, size_t bytes, void (*entry)(void)) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = bytes;
  c->uc.uc_link = NULL;
  makecontext(&c->uc, entry, 0);
}
#endif

struct Fiber {
  Context ctx;
  FiberState state;
  unsigned shfl_count;
};
static Fiber fibers[MAX_THREADS];
static char *stacks;
static Context scheduler;
static unsigned cur, nthreads;

static uint64_t shfl_slot[2][MAX_THREADS];
static const std::function<void()> *cur_body;

/* a fiber's whole life: the thread's body, then back to the scheduler for good */
static void fiber_main(void) {
  (*cur_body)();
  fibers[cur].state = DONE;
  switch_to(&fibers[cur].ctx, &scheduler);
  abort(); /* a finished fiber is never resumed */
}

static void wait_at(FiberState why) {
  fibers[cur].state = why;
  switch_to(&fibers[cur].ctx, &scheduler);
}

void cuda_emu_syncthreads(void) { wait_at(AT_SYNC); }

uint64_t cuda_emu_shfl_xor(unsigned mask, uint64_t bits, int lane_mask) {
  if (mask != 0xffffffffu) emu_fault("only full-mask shuffles are emulated, got mask %x", mask);
  Fiber *f = &fibers[cur];
  unsigned t = cur, parity = f->shfl_count++ & 1;
  shfl_slot[parity][t] = bits;
  wait_at(AT_SHFL);
  unsigned src = (t & ~31u) | ((t & 31u) ^ (unsigned)(lane_mask & 31));
  if (src >= nthreads) emu_fault("shuffle reads lane %u, beyond the block's %u threads", src, nthreads);
  return shfl_slot[parity][src];
}

void cuda_emu_syncwarp(unsigned mask) {
  if (mask != 0xffffffffu) emu_fault("only full-mask __syncwarp is emulated, got mask %x", mask);
  wait_at(AT_SHFL);
}

static void set_thread(unsigned t) {
  threadIdx.x = t % blockDim.x;
  threadIdx.y = t / blockDim.x % blockDim.y;
  threadIdx.z = t / (blockDim.x * blockDim.y);
}

static void run_block_fibers(void) {
  if (!stacks) {
    stacks = (char *)mmap(NULL, (size_t)MAX_THREADS * STACK_BYTES, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stacks == MAP_FAILED) emu_fault("cannot map fiber stacks");
  }
  for (unsigned t = 0; t < nthreads; t++) {
    Fiber *f = &fibers[t];
    context_init(&f->ctx, stacks + (size_t)t * STACK_BYTES, STACK_BYTES, fiber_main);
    f->state = RUNNABLE;
    f->shfl_count = 0;
  }
  for (;;) {
    for (unsigned t = 0; t < nthreads; t++)
      if (fibers[t].state == RUNNABLE) {
        cur = t;
        set_thread(t);
        switch_to(&scheduler, &fibers[t].ctx);
      }
    bool released = false;
    unsigned live = 0, at_sync = 0;
    for (unsigned w = 0; w < nthreads; w += 32) {
      unsigned end = w + 32 < nthreads ? w + 32 : nthreads, wlive = 0, wshfl = 0;
      for (unsigned t = w; t < end; t++) {
        wlive += fibers[t].state != DONE;
        wshfl += fibers[t].state == AT_SHFL;
        at_sync += fibers[t].state == AT_SYNC;
      }
      live += wlive;
      if (wshfl && wshfl == wlive) {
        if (wlive != end - w) {
          set_thread(w);
          emu_fault("full-mask shuffle in warp %u after %u of its lanes exited", w / 32, end - w - wlive);
        }
        for (unsigned t = w; t < end; t++) fibers[t].state = RUNNABLE;
        released = true;
      }
    }
    if (released) continue;
    if (live == 0) return;
    if (at_sync == live) {
      for (unsigned t = 0; t < nthreads; t++)
        if (fibers[t].state == AT_SYNC) fibers[t].state = RUNNABLE;
      continue;
    }
    emu_fault("deadlock: %u live threads, %u of them at __syncthreads, the rest at a shuffle their warp "
              "does not reach",
              live, at_sync);
  }
}

static void run_launch(const char *kernel, dim3 grid, dim3 block, const std::function<void()> &body) {
  gridDim = grid, blockDim = block;
  nthreads = block.x * block.y * block.z;
  cur_body = &body;
  begin_device(kernel);
  in_kernel = true;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        blockIdx.x = x, blockIdx.y = y, blockIdx.z = z;
        run_block_fibers();
      }
  in_kernel = false;
  end_device();
}

void cuda_emu_launch(const char *kernel, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                     std::function<void()> body) {
  unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 ||
      threads < 1 || threads > MAX_THREADS || block.x > 1024 || block.y > 1024 || block.z > 64 ||
      shmem > 48 * 1024) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (!valid_stream(stream)) {
    fail(cudaErrorInvalidValue);
    return;
  }
  stats.launch++;
  launches_by_kernel[kernel]++;
  enqueue([=, body = std::move(body)] { run_launch(kernel, grid, block, body); });
}

/* ---- cuBLAS ------------------------------------------------------------------------------------ */
struct cuda_emu_cublas {
  cudaStream_t stream;
  cublasMath_t math;
};

static unsigned long long cublas_handles; /* created and not destroyed */

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
  *handle = new cuda_emu_cublas{NULL, CUBLAS_DEFAULT_MATH};
  cublas_handles++;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  cublas_handles--;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!valid_stream(stream)) return CUBLAS_STATUS_INVALID_VALUE;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
  case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  }
  return "unknown status";
}

/* x rounded to TF32 (nearest, ties to even, 10 mantissa bits kept) */
static float to_tf32(float x) {
  if (!std::isfinite(x)) return x;
  uint32_t u;
  memcpy(&u, &x, 4);
  u += 0xfffu + ((u >> 13) & 1u);
  u &= ~0x1fffu;
  memcpy(&x, &u, 4);
  return x;
}

/* a bfloat16 (the upper 16 bits of a float32) as the float it is */
static float from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, 4);
  return x;
}

/* The operands of a product: float32 (rounded to TF32 in TF32 mode) or bfloat16. */
enum Operand { OPERAND_F32, OPERAND_TF32, OPERAND_BF16 };

/* a column-major (rows, cols) matrix with leading dimension ld spans ld (cols - 1) + rows elements */
static bool matrix_in_device(const void *p, size_t elem, int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return true;
  return device_range(p, elem * ((size_t)ld * (size_t)(cols - 1) + (size_t)rows)) != NULL;
}

static void gemm_run(Operand kind, const char *what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                     float al, const void *A, int lda, long long sA, const void *B, int ldb, long long sB, float be,
                     float *C, int ldc, long long sC, int batch);

/* checks the arguments now, as cuBLAS does, and queues the product */
static cublasStatus_t gemm_batched(cublasHandle_t h, Operand kind, const char *what, cublasOperation_t ta,
                                   cublasOperation_t tb, int m, int n, int k, const float *alpha, const void *A,
                                   int lda, long long sA, const void *B, int ldb, long long sB, const float *beta,
                                   float *C, int ldc, long long sC, int batch) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  int arows = ta == CUBLAS_OP_N ? m : k, acols = ta == CUBLAS_OP_N ? k : m;
  int brows = tb == CUBLAS_OP_N ? k : n, bcols = tb == CUBLAS_OP_N ? n : k;
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (arows > 1 ? arows : 1) || ldb < (brows > 1 ? brows : 1) ||
      ldc < (m > 1 ? m : 1) || (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  current_kernel = what; /* for the faults below; the host's code again once they pass */
  if (alloc_at(alpha) || alloc_at(beta)) emu_fault("cuBLAS alpha or beta is a device pointer in host pointer mode");
  float al = *alpha, be = *beta;
  size_t elem = kind == OPERAND_BF16 ? 2 : 4;
  for (int q = 0; q < batch; q++) {
    const char *Aq = (const char *)A + q * sA * (long long)elem, *Bq = (const char *)B + q * sB * (long long)elem;
    float *Cq = C + q * sC;
    bool reads_ab = k > 0 && al != 0.0f;
    if ((reads_ab && (!matrix_in_device(Aq, elem, arows, acols, lda) || !matrix_in_device(Bq, elem, brows, bcols, ldb))) ||
        !matrix_in_device(Cq, 4, m, n, ldc))
      emu_fault("cuBLAS gemm: matrix %llu of the batch is not inside one device allocation (as its leading "
                "dimension places it)",
                (unsigned long long)q);
  }
  current_kernel = "host code";
  if (kind == OPERAND_F32 && h->math == CUBLAS_TF32_TENSOR_OP_MATH) kind = OPERAND_TF32;
  stats.gemm++;
  enqueue([=] { gemm_run(kind, what, ta, tb, m, n, k, al, A, lda, sA, B, ldb, sB, be, C, ldc, sC, batch); });
  return CUBLAS_STATUS_SUCCESS;
}

/* op(X) element (r, c) of a column-major X with leading dimension ld, as the float the product uses */
static inline float op_at(Operand kind, const void *X, cublasOperation_t t, int r, int c, int ld) {
  size_t i = t == CUBLAS_OP_N ? r + (size_t)c * ld : c + (size_t)r * ld;
  if (kind == OPERAND_BF16) return from_bf16(((const uint16_t *)X)[i]);
  float x = ((const float *)X)[i];
  return kind == OPERAND_TF32 ? to_tf32(x) : x;
}

/* sum_l a[l] b[l] over 8 interleaved partial sums (a fixed order, and one the compiler vectorizes) */
static float dot(const float *a, const float *b, int k) {
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int l = 0;
  for (; l + 8 <= k; l += 8)
    for (int u = 0; u < 8; u++) part[u] += a[l + u] * b[l + u];
  for (; l < k; l++) part[l % 8] += a[l] * b[l];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

static void gemm_run(Operand kind, const char *what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                     float al, const void *A, int lda, long long sA, const void *B, int ldb, long long sB, float be,
                     float *C, int ldc, long long sC, int batch) {
  begin_device(what);
  /* op(A) by rows and op(B) by columns, each contiguous in l, as the floats the products use */
  std::vector<float> arows((size_t)m * k), bcols((size_t)n * k);
  size_t elem = kind == OPERAND_BF16 ? 2 : 4;
  for (int q = 0; q < batch; q++) {
    const char *Aq = (const char *)A + q * sA * (long long)elem, *Bq = (const char *)B + q * sB * (long long)elem;
    float *Cq = C + q * sC;
    if (al != 0.0f && k > 0) {
      for (int i = 0; i < m; i++)
        for (int l = 0; l < k; l++) arows[(size_t)i * k + l] = op_at(kind, Aq, ta, i, l, lda);
      for (int j = 0; j < n; j++)
        for (int l = 0; l < k; l++) bcols[(size_t)j * k + l] = op_at(kind, Bq, tb, l, j, ldb);
    }
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        float acc = al != 0.0f ? dot(arows.data() + (size_t)i * k, bcols.data() + (size_t)j * k, k) : 0.0f;
        float *c = &Cq[i + (size_t)j * ldc];
        *c = be == 0.0f ? al * acc : al * acc + be * *c; /* beta = 0: C is not read */
      }
  }
  end_device();
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc) {
  return gemm_batched(handle, OPERAND_F32, "cublasSgemm", transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta,
                      C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb, long long strideB,
                                         const float *beta, float *C, int ldc, long long strideC, int batchCount) {
  return gemm_batched(handle, OPERAND_F32, "cublasSgemm", transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb,
                      strideB, beta, C, ldc, strideC, batchCount);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType_t Atype,
                                          int lda, long long strideA, const void *B, cudaDataType_t Btype, int ldb,
                                          long long strideB, const void *beta, void *C, cudaDataType_t Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo) {
  if (Atype != CUDA_R_16BF || Btype != CUDA_R_16BF || Ctype != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F ||
      (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm_batched(handle, OPERAND_BF16, "cublasGemmEx", transa, transb, m, n, k, (const float *)alpha, A, lda,
                      strideA, B, ldb, strideB, (const float *)beta, (float *)C, ldc, strideC, batchCount);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta,
                                    C, Ctype, ldc, 0, 1, computeType, algo);
}

/* What is still held when the stats are written (at exit, after the program's own exit handlers):
 * device and pinned allocations, streams and cuBLAS handles, the emulator's leak check. */
static void write_live(FILE *f) {
  fprintf(f, "live_device_allocations %zu\nlive_pinned_allocations %zu\nlive_streams %zu\nlive_cublas_handles %llu\n"
             "live_graphs %llu\n",
          allocs.size(), pinned.size(), streams.size(), cublas_handles, graphs_live);
}
