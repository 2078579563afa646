/* dist.h: the rank layout and data-parallel communication. MPI is always linked; a run without
 * mpirun is a one-rank job. The float vectors of reduce_scatter and allgather are backend memory (a
 * CUDA device buffer goes through a host staging buffer unless MPI is CUDA-aware); every other
 * buffer here is host memory. Not here: which rank owns which shard of a network and the optimizer
 * step over it (zero.h).
 * Return convention: an MPI error stops the program (mpiCheck); functions return void or their
 * result. */
#pragma once
#include <mpi.h>

#define mpiCheck(expr)                                                          \
  do {                                                                          \
    int mpi_rc_ = (expr);                                                       \
    if (mpi_rc_ != MPI_SUCCESS) {                                               \
      char mpi_msg_[MPI_MAX_ERROR_STRING];                                      \
      int mpi_len_ = 0;                                                         \
      MPI_Error_string(mpi_rc_, mpi_msg_, &mpi_len_);                           \
      amd_fatal("MPI call %s failed: %s", #expr, mpi_msg_);                     \
    }                                                                           \
  } while (0)

void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* This rank's contiguous share [begin, end) of n items (prompts), as even as possible. */
void dist_split(long n, long *begin, long *end);
/* What the collectives of one owner (a network's ZeroOpt, a stage-3 network's units) moved and
 * waited for on this rank. Bytes are the payload, counted as if each rank exchanged its part
 * directly with every other rank: in an all-gather of parts counts[q] over n floats this rank sends
 * its part to the p - 1 others (4 counts[r] (p - 1) bytes out) and receives the rest (4 (n -
 * counts[r]) in); a reduce-scatter is the reverse (4 (n - counts[r]) out, 4 counts[r] (p - 1) in).
 * With equal parts either is 4n (p - 1) / p each way, the bandwidth term of the usual cost model;
 * what the MPI library's algorithm puts on the wire may differ. Seconds are wall time inside the
 * calls (staging copies and waiting for slower ranks included). The functions below add into the
 * DistTraffic they are given (NULL: not counted). */
typedef struct DistTraffic {
  long sent, received;  /* bytes */
  double seconds;       /* inside the calls, a non-blocking gather's start and wait included */
  double gather_wait;   /* of seconds: inside dist_gather_wait */
  double gather_span;   /* non-blocking gathers: from the start of dist_gather_start to the end of its wait */
} DistTraffic;

/* The two halves of an allreduce over a vector x (n floats, backend memory) cut into one shard per
 * rank, shard r being x[displs[r], displs[r] + counts[r]). reduce_scatter: afterwards this rank's
 * shard holds the sum over ranks of that range (the rest of x is left undefined). allgather:
 * afterwards every rank holds every rank's shard. Both stage through the host for a device buffer. */
void dist_reduce_scatter_f32(float *x, long n, const int *counts, const int *displs, DistTraffic *t);
void dist_allgather_f32(float *x, long n, const int *counts, const int *displs, DistTraffic *t);
/* ZeRO stage 3's collectives over one unit of a network (src/model.h): a vector of n floats of
 * which rank r holds the part at displs[r], counts[r] values long (counts may be 0).
 * dist_gather_start begins a non-blocking all-gather (MPI_Iallgatherv) of every rank's part into
 * out (n floats, backend memory), part being this rank's counts[rank] values (backend memory, not
 * inside out); dist_gather_wait completes it (out is not to be read before). A DistGather holds
 * the request and, for device buffers, its host staging; one gather at a time per DistGather.
 * dist_reduce_scatter_part sums x (n floats, backend memory) over ranks and writes this rank's part
 * of the sum into out (counts[rank] floats, backend memory), blocking; the parts follow each other
 * in rank order, so the counts place them. Device buffers stage through host buffers kept until
 * dist_finalize (a DistGather's until dist_gather_free). */
typedef struct {
  MPI_Request req;
  int active;
  DistTraffic *traffic; /* of the gather in flight (NULL: not counted) */
  double started;       /* when it was started (amd_time) */
  float *out;         /* where a staged gather lands on wait */
  long n;
  float *host;        /* staging for device buffers (NULL on the CPU backend) */
  long host_n;
} DistGather;
void dist_gather_start(DistGather *g, const float *part, float *out, long n, const int *counts, const int *displs,
                       DistTraffic *t);
void dist_gather_wait(DistGather *g);
void dist_gather_free(DistGather *g);
void dist_reduce_scatter_part(const float *x, float *out, long n, const int *counts, DistTraffic *t);
/* In-place sums over ranks. */
double dist_allreduce_sum_f64(double x);
void dist_allreduce_sum_f64v(double *x, long n);
/* The largest x over ranks (flags every rank must agree on). */
int dist_allreduce_max_int(int x);
/* The MPI collective of the functions above this rank is inside now (e.g. "MPI_Allreduce"), or
 * NULL: async-signal-safe, for the watchdog's message (src/runctl.h). */
const char *dist_current_collective(void);
/* Seconds this process has spent inside the collectives above so far, waiting included. */
double dist_comm_seconds(void);
/* Gathers each rank's n doubles to rank 0 in rank order; returns the total there (0 elsewhere) and
 * a new buffer in *out on rank 0 (caller frees). */
long dist_gather_f64(const double *x, long n, double **out);
/* Gathers each rank's rows (count x row_len floats and ints) to rank 0, in rank order. Returns the
 * total row count on rank 0 (0 elsewhere); out buffers are allocated on rank 0 (caller frees). */
long dist_gather_rows(const float *x, const int *labels, long count, int row_len, float **x_out, int **labels_out);
