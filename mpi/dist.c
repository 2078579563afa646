/* dist.c: MPI setup, prompt partition and the data-parallel reductions. Every collective's wall
 * time counts as communication (dist_comm_seconds, which the /timing table of src/timing.h reads),
 * waiting for slower ranks included; the vector collectives of ZeRO also add their bytes and
 * seconds to the caller's DistTraffic (count). Backend buffers (gradients, parameters) reach MPI
 * directly on the CPU backend and with a CUDA-aware MPI; otherwise they go through one host staging
 * buffer, grown to the largest size asked for and kept until dist_finalize. */
#include "dist.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#if defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h> /* Open MPI: MPIX_CUDA_AWARE_SUPPORT, MPIX_Query_cuda_support */
#endif
#endif

static double comm_seconds; /* wall time inside every collective so far (a DistTraffic counts its own) */

/* The collective this rank is inside (an index into collective_names; 0: none), read by the
 * watchdog's signal handler, hence a sig_atomic_t. */
static const char *const collective_names[] = {NULL, "MPI_Reduce_scatter", "MPI_Allgatherv", "MPI_Allreduce",
                                               "MPI_Gather", "MPI_Iallgatherv", "MPI_Wait (MPI_Iallgatherv)"};
enum { IN_NONE, IN_REDUCE_SCATTER, IN_ALLGATHERV, IN_ALLREDUCE, IN_GATHER, IN_IALLGATHERV, IN_WAIT };
static volatile sig_atomic_t in_collective;
#define COLLECTIVE(which, call)   \
  do {                            \
    in_collective = (which);      \
    mpiCheck(call);               \
    in_collective = IN_NONE;      \
  } while (0)

const char *dist_current_collective(void) { return collective_names[in_collective]; }

/* Adds one collective over n floats, this rank's part `mine` of them, to t (dist.h: DistTraffic). */
static void count(DistTraffic *t, int gather, long n, long mine, double seconds) {
  if (!t) return;
  long spread = 4 * mine * (dist_size() - 1), rest = 4 * (n - mine);
  t->sent += gather ? spread : rest;
  t->received += gather ? rest : spread;
  t->seconds += seconds;
}

double dist_comm_seconds(void) { return comm_seconds; }

static float *stage; /* host copy of a device buffer on its way through MPI */
static long stage_n;
static float *stage_part; /* host result of dist_reduce_scatter_part for a device buffer */
static long stage_part_n;

/* 1 when this MPI reads and writes CUDA device memory itself: built CUDA-aware and, asked at run
 * time, so configured. Debian's Open MPI is not, so device buffers are staged there. */
static int mpi_cuda_aware(void) {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return 0;
#endif
}

void dist_init(int *argc, char ***argv) {
  int provided = 0;
  mpiCheck(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  /* errors come back as codes, so mpiCheck can name the failing call */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

void dist_finalize(void) {
  free(stage);
  stage = NULL, stage_n = 0;
  free(stage_part);
  stage_part = NULL, stage_part_n = 0;
  MPI_Finalize();
}

int dist_rank(void) {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int dist_size(void) {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

void dist_split(long n, long *begin, long *end) {
  long r = dist_rank(), p = dist_size();
  *begin = n * r / p;
  *end = n * (r + 1) / p;
}

/* The host copy of a backend buffer that MPI reads and writes: the buffer itself on the CPU backend
 * or with a CUDA-aware MPI, else the staging buffer. */
static float *host_view(float *x, long n, int copy_in) {
  if (ops->host_memory || mpi_cuda_aware()) {
    ops->synchronize(); /* every op that writes x has finished before MPI reads it */
    return x;
  }
  if (n > stage_n) {
    free(stage);
    stage = mallocCheck(sizeof(float) * (size_t)(n ? n : 1));
    stage_n = n;
  }
  if (copy_in) ops->to_host(stage, x, sizeof(float) * (size_t)n);
  return stage;
}

void dist_reduce_scatter_f32(float *x, long n, const int *counts, const int *displs, DistTraffic *t) {
  if (dist_size() == 1) return;
  double t0 = amd_time();
  int r = dist_rank();
  float *h = host_view(x, n, 1);
  /* in place: the input is all of h, the result lands at its start */
  COLLECTIVE(IN_REDUCE_SCATTER, MPI_Reduce_scatter(MPI_IN_PLACE, h, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
  memmove(h + displs[r], h, sizeof(float) * (size_t)counts[r]);
  if (h != x) {
    ops->to_device(x + displs[r], h + displs[r], sizeof(float) * (size_t)counts[r]);
  }
  double dt = amd_time() - t0;
  comm_seconds += dt;
  count(t, 0, n, counts[r], dt);
}

void dist_allgather_f32(float *x, long n, const int *counts, const int *displs, DistTraffic *t) {
  if (dist_size() == 1) return;
  double t0 = amd_time();
  int r = dist_rank();
  float *h = host_view(x, n, 0);
  if (h != x) ops->to_host(h + displs[r], x + displs[r], sizeof(float) * (size_t)counts[r]);
  COLLECTIVE(IN_ALLGATHERV, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, h, counts, displs, MPI_FLOAT, MPI_COMM_WORLD));
  if (h != x) {
    ops->to_device(x, h, sizeof(float) * (size_t)n);
  }
  double dt = amd_time() - t0;
  comm_seconds += dt;
  count(t, 1, n, counts[r], dt);
}

/* A host buffer of at least n floats in *buf (of *cap floats so far). */
static float *grow(float **buf, long *cap, long n) {
  if (n > *cap) {
    free(*buf);
    *buf = mallocCheck(sizeof(float) * (size_t)(n ? n : 1));
    *cap = n;
  }
  return *buf;
}

void dist_gather_start(DistGather *g, const float *part, float *out, long n, const int *counts, const int *displs,
                       DistTraffic *t) {
  CHECK(!g->active, "dist_gather_start: the previous gather of this buffer was not waited for");
  double t0 = amd_time();
  int r = dist_rank();
  float *h = out;
  if (ops->host_memory || mpi_cuda_aware()) {
    ops->synchronize(); /* every op that writes part has finished before MPI reads it */
  } else {
    h = grow(&g->host, &g->host_n, n);
    ops->to_host(h + displs[r], part, sizeof(float) * (size_t)counts[r]);
  }
  if (h == out) { /* this rank's part goes in place first: the send side is MPI_IN_PLACE */
    ops->copy(out + displs[r], part, sizeof(float) * (size_t)counts[r]);
    ops->synchronize();
  }
  g->out = out, g->n = n, g->active = 1, g->traffic = t, g->started = t0;
  COLLECTIVE(IN_IALLGATHERV, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, h, counts, displs, MPI_FLOAT,
                                             MPI_COMM_WORLD, &g->req));
  double dt = amd_time() - t0;
  comm_seconds += dt;
  count(t, 1, n, counts[r], dt);
}

void dist_gather_wait(DistGather *g) {
  if (!g->active) return;
  double t0 = amd_time();
  COLLECTIVE(IN_WAIT, MPI_Wait(&g->req, MPI_STATUS_IGNORE));
  if (!(ops->host_memory || mpi_cuda_aware())) ops->to_device(g->out, g->host, sizeof(float) * (size_t)g->n);
  g->active = 0;
  double t1 = amd_time();
  comm_seconds += t1 - t0;
  DistTraffic *t = g->traffic;
  if (t) t->seconds += t1 - t0, t->gather_wait += t1 - t0, t->gather_span += t1 - g->started;
}

void dist_gather_free(DistGather *g) {
  dist_gather_wait(g);
  free(g->host);
  g->host = NULL, g->host_n = 0;
}

void dist_reduce_scatter_part(const float *x, float *out, long n, const int *counts, DistTraffic *t) {
  double t0 = amd_time();
  int r = dist_rank();
  if (ops->host_memory || mpi_cuda_aware()) {
    ops->synchronize();
    COLLECTIVE(IN_REDUCE_SCATTER, MPI_Reduce_scatter(x, out, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
  } else {
    float *h = host_view((float *)x, n, 1); /* the staging buffer: n floats in, this rank's part out */
    float *part = grow(&stage_part, &stage_part_n, counts[r]);
    COLLECTIVE(IN_REDUCE_SCATTER, MPI_Reduce_scatter(h, part, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    ops->to_device(out, part, sizeof(float) * (size_t)counts[r]);
  }
  double dt = amd_time() - t0;
  comm_seconds += dt;
  count(t, 0, n, counts[r], dt);
}

double dist_allreduce_sum_f64(double x) {
  double t0 = amd_time();
  COLLECTIVE(IN_ALLREDUCE, MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
  comm_seconds += amd_time() - t0;
  return x;
}

void dist_allreduce_sum_f64v(double *x, long n) {
  double t0 = amd_time();
  COLLECTIVE(IN_ALLREDUCE, MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
  comm_seconds += amd_time() - t0;
}

int dist_allreduce_max_int(int x) {
  if (dist_size() == 1) return x;
  double t0 = amd_time();
  COLLECTIVE(IN_ALLREDUCE, MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  comm_seconds += amd_time() - t0;
  return x;
}

long dist_gather_rows(const float *x, const int *labels, long count, int row_len, float **x_out, int **labels_out) {
  double t0 = amd_time();
  int size = dist_size(), rank = dist_rank(), c = (int)count;
  int *counts = callocCheck((size_t)size, sizeof(int)), *displs = callocCheck((size_t)size, sizeof(int));
  COLLECTIVE(IN_GATHER, MPI_Gather(&c, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
  long total = 0;
  for (int r = 0; r < size; r++) displs[r] = (int)total, total += counts[r];
  *x_out = NULL, *labels_out = NULL;
  if (rank == 0) {
    *x_out = mallocCheck(sizeof(float) * (size_t)(total * row_len));
    *labels_out = mallocCheck(sizeof(int) * (size_t)total);
  }
  COLLECTIVE(IN_GATHER, MPI_Gatherv(labels, c, MPI_INT, *labels_out, counts, displs, MPI_INT, 0, MPI_COMM_WORLD));
  for (int r = 0; r < size; r++) counts[r] *= row_len, displs[r] *= row_len;
  COLLECTIVE(IN_GATHER, MPI_Gatherv(x, c * row_len, MPI_FLOAT, *x_out, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD));
  free(counts);
  free(displs);
  comm_seconds += amd_time() - t0;
  return rank == 0 ? total : 0;
}

long dist_gather_f64(const double *x, long n, double **out) {
  double t0 = amd_time();
  int size = dist_size(), rank = dist_rank(), c = (int)n;
  int *counts = callocCheck((size_t)size, sizeof(int)), *displs = callocCheck((size_t)size, sizeof(int));
  COLLECTIVE(IN_GATHER, MPI_Gather(&c, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
  long total = 0;
  for (int r = 0; r < size; r++) displs[r] = (int)total, total += counts[r];
  *out = rank == 0 ? mallocCheck(sizeof(double) * (size_t)(total ? total : 1)) : NULL;
  COLLECTIVE(IN_GATHER, MPI_Gatherv(x, c, MPI_DOUBLE, *out, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD));
  free(counts);
  free(displs);
  comm_seconds += amd_time() - t0;
  return rank == 0 ? total : 0;
}
