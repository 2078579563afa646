/* zero.h: ZeRO sharding of a network's optimizer over the ranks (docs/DESIGN.md section 7). The flat
 * parameter vector of n floats is cut into one contiguous shard per rank (zero_shard); a ZeroOpt
 * owns the AdamW moments of this rank's shard and does the data-parallel half of an optimizer step:
 *   stage 0  moments of the whole vector on every rank; the summed gradient on every rank
 *   stage 1  moments of the shard only; the summed gradient still on every rank
 *   stage 2  moments of the shard only; the gradient summed over this rank's shard only
 *   stage 3  the network itself stores only the shard of parameters and gradient (src/model.h:
 *            backward reduce-scatters each unit's gradient into it); moments of the shard
 * Stages 1 and 2 update their shard and all-gather the parameters; stage 3 updates its shard and
 * gathers nothing (the network gathers each unit when it runs). Every stage sums the gradient by
 * the same reduce-scatter (stages 0 and 1 then all-gather it: together an allreduce) and takes the
 * global norm from the shards' sums of squares, so all stages give bit-identical parameters at a
 * given rank count (stage 3 too at 2 ranks, where a sum over ranks has one order; at more ranks
 * its per-unit reductions may add in another order). Not here: backward (below stage 3 the
 * gradient buffer stays full-size: backward accumulates the local gradient of every tensor before
 * any reduction), checkpoint files (io/ckpt.c).
 * Each ZeroOpt counts what its collectives move (traffic; src/zero_stats.h logs it per step).
 * Return convention: an MPI error or a bad shard stops the program; functions return void or
 * their result. */
#pragma once
#include "dist.h"
#include "optim.h"

/* Shard boundaries fall on multiples of this many floats (64 bytes), so each shard starts aligned
 * for vector loads on either backend. */
#define ZERO_ALIGN 16

typedef struct {
  int stage;            /* 0, 1, 2 or 3 */
  long n;               /* floats in the flat vector */
  long begin, end;      /* this rank's shard [begin, end) */
  int *counts, *displs; /* every rank's shard, for reduce-scatter and all-gather */
  AdamW *opt;           /* moments of the shard (stage 1, 2) or of the whole vector (stage 0) */
  double *sumsq;        /* backend memory, one double: zero_reduce_grads' sum of squares */
  DistTraffic traffic;  /* what its reduce-scatters and all-gathers of the gradient and the parameters moved */
} ZeroOpt;

/* Shard [begin, end) of rank `rank` out of `size` over a vector of n: contiguous, in rank order,
 * covering [0, n); boundaries are multiples of ZERO_ALIGN (or n), so shards differ by at most
 * 2 ZERO_ALIGN floats and some are empty when n < size ZERO_ALIGN. */
void zero_shard(long n, int rank, int size, long *begin, long *end);
ZeroOpt *zero_create(long n, int stage);
void zero_free(ZeroOpt *z);
/* Sums grads (n floats, backend memory) over ranks: the whole vector at stages 0 and 1, this rank's
 * shard at stage 2 (the rest is then undefined). At stage 3 grads is this rank's shard alone
 * (end - begin floats), already summed: only the norm is taken. Returns the global norm of the summed gradient:
 * NaN or Inf on every rank when any rank's gradient holds one. */
double zero_reduce_grads(ZeroOpt *z, float *grads);
/* zero_reduce_grads in two halves, so that a caller can read this rank's sum of squares back
 * together with its other results (one wait for the device instead of two): _begin sums grads over
 * ranks and leaves the sum of squares of this rank's part in *sumsq (backend memory, one double);
 * _end takes that value, read back by the caller, and returns the global norm. Every rank calls
 * both, in the same order as its other collectives. */
void zero_reduce_grads_begin(ZeroOpt *z, float *grads, double *sumsq);
double zero_reduce_grads_end(ZeroOpt *z, float *grads, double local_sumsq);
/* AdamW (optim.h) on this rank's part, then the parameters all-gathered (stages 1, 2). At stage 3
 * params and grads are this rank's shard alone. */
void zero_update(ZeroOpt *z, float *params, const float *grads, const AdamWConfig *c, long step, double grad_norm);
/* Collective: a vector of n values held in parts into out (n floats, backend memory; e.g. an EMA
 * kept on the range of this rank's moments, z->opt->begin and ->n, gathered into the parameters of
 * a scratch Model to evaluate it while training): a copy when this rank's part [begin, begin +
 * count) is the whole vector, else every rank's part (its zero_shard) all-gathered. Every rank
 * calls it. */
void zero_gather_parts(const float *part, long begin, long count, long n, float *out);
/* Bytes per rank of a network's training state, for the largest shard: what the start-up line
 * prints and the log's /memory table holds (docs/DESIGN.md section 7.2.1). */
typedef struct {
  long params, gradients, moments, ema, gathered;
} ZeroMemory;
/* z's network at its stage: gathered_bytes is what its units take (stage 3, src/model.h; 0 below),
 * ema whether it keeps an EMA of the weights (over the moments' range). */
ZeroMemory zero_memory(const ZeroOpt *z, long gathered_bytes, int ema);
/* The bytes this rank sends plus receives in the ZeRO collectives of one optimizer step with one
 * forward and one backward of z's network (the cost model of docs/DESIGN.md section 7.2.1, in
 * mpi/dist.h's DistTraffic terms): per all-gather or reduce-scatter of the vector 4 (n - s) + 4 s
 * (p - 1) for this rank's shard s; 2 of them at stages 0 and 2, 3 at stages 1 and 3 (stage 3: each
 * unit gathered in the forward and in the backward, then reduce-scattered). 0 at one rank. */
long zero_step_bytes(const ZeroOpt *z);
/* Rank 0 prints what this network's training state takes on each rank (the largest shard):
 * parameters, gradients, moments and the gathered buffers (stage 3: gathered_bytes, what the
 * network's units take, src/model.h; 0 below). */
void zero_log_memory(const ZeroOpt *z, const char *net, long gathered_bytes);
