/* graph.cu: the graph_run op on CUDA graphs. A body of ops with no host copy, wait or allocation
 * (core/ops_list.h) is run eagerly the first time it is seen with its argument bytes (so that
 * anything it allocates on first use, the bf16 operand scratch, cuBLAS's workspace, exists before
 * a capture), captured into a graph the second time (cudaStreamBeginCapture on the one stream, in
 * global mode: an unsafe call anywhere in the process fails the capture) and launched, and only
 * launched afterwards: one launch per step instead of one per op, and no host work per op. New
 * argument bytes (another batch size, other buffers) capture again.
 * While a capture runs, an op that would copy to or from the host, wait for the device or
 * allocate is a bug in the body, and cuda_capture_check stops the program naming it (ops_cuda.cu,
 * gemm.cu call it): a graph would replay such a copy from a stale staging slot, or fail.
 * Graphs are off unless cuda_set_graphs(1) (the cuda.graphs setting); they stay off with
 * AMD_CUDA_SYNC=1, whose per-launch wait cannot be captured. Counts of captures and launches are
 * kept for tests (cuda_graph_counts).
 * Not here: graph updates in place (cudaGraphExecUpdate), several streams. */
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"
#include "ops_cuda.h"

typedef struct {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  unsigned char *arg; /* the argument bytes the graph was made for */
  size_t arg_bytes;
  long runs; /* with these argument bytes */
} CudaGraph;

static int graphs_on;
static const char *capturing; /* the body's op list while a capture runs: "graph_run" */
static long captures, launches;

extern "C" void cuda_set_graphs(int on) { graphs_on = on != 0; }
extern "C" int cuda_graphs(void) { return graphs_on && !cuda_debug_sync; }
extern "C" void cuda_graph_counts(long *captured, long *launched) { *captured = captures, *launched = launches; }

void cuda_capture_check(const char *what) {
  if (capturing)
    amd_fatal("%s inside a CUDA graph capture (cuda.graphs=1): a graph_run body must not copy to or from the "
              "host, wait for the device or allocate; run that part outside the body, or set cuda.graphs=0",
              what);
}

static void graph_release(CudaGraph *g) {
  if (g->exec) cudaCheck(cudaGraphExecDestroy(g->exec));
  if (g->graph) cudaCheck(cudaGraphDestroy(g->graph));
  g->exec = NULL, g->graph = NULL;
}

void cuda_graph_run(void **handle, void (*body)(const void *arg), const void *arg, size_t arg_bytes) {
  if (!cuda_graphs()) {
    body(arg);
    return;
  }
  CudaGraph *g = (CudaGraph *)*handle;
  if (!g) *handle = g = (CudaGraph *)callocCheck(1, sizeof *g);
  if (g->arg_bytes != arg_bytes || memcmp(g->arg, arg, arg_bytes) != 0) {
    graph_release(g);
    free(g->arg);
    g->arg = (unsigned char *)mallocCheck(arg_bytes ? arg_bytes : 1);
    memcpy(g->arg, arg, arg_bytes);
    g->arg_bytes = arg_bytes, g->runs = 0;
  }
  if (g->runs++ == 0) { /* warm-up: first-use allocations happen outside the capture */
    body(arg);
    return;
  }
  if (!g->exec) {
    cudaCheck(cudaStreamBeginCapture(cuda_stream, cudaStreamCaptureModeGlobal));
    capturing = "graph_run";
    body(arg);
    capturing = NULL;
    cudaCheck(cudaStreamEndCapture(cuda_stream, &g->graph));
    cudaCheck(cudaGraphInstantiate(&g->exec, g->graph, 0));
    captures++;
  }
  cudaCheck(cudaGraphLaunch(g->exec, cuda_stream));
  launches++;
}

void cuda_graph_free(void *handle) {
  CudaGraph *g = (CudaGraph *)handle;
  if (!g) return;
  graph_release(g);
  free(g->arg);
  free(g);
}
