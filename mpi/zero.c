/* zero.c: shard ranges, the reduce-scatter / AdamW-on-the-shard / all-gather step. */
#include "zero.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "dist.h"
#include "ops.h"

void zero_shard(long n, int rank, int size, long *begin, long *end) {
  long units = (n + ZERO_ALIGN - 1) / ZERO_ALIGN;
  long b = units * rank / size * ZERO_ALIGN, e = units * (rank + 1) / size * ZERO_ALIGN;
  *begin = b < n ? b : n;
  *end = e < n ? e : n;
}

ZeroOpt *zero_create(long n, int stage) {
  CHECK(stage >= 0 && stage <= 3, "ZeRO stage %d: expected 0, 1, 2 or 3", stage);
  CHECK(n > 0 && n <= INT_MAX, "ZeRO: %ld parameters do not fit MPI's int counts", n);
  int size = dist_size(), rank = dist_rank();
  ZeroOpt *z = callocCheck(1, sizeof *z);
  z->stage = stage, z->n = n;
  z->counts = callocCheck((size_t)size, sizeof(int));
  z->displs = callocCheck((size_t)size, sizeof(int));
  for (int r = 0; r < size; r++) {
    long b, e;
    zero_shard(n, r, size, &b, &e);
    z->displs[r] = (int)b, z->counts[r] = (int)(e - b);
  }
  z->begin = z->displs[rank], z->end = z->begin + z->counts[rank];
  z->opt = stage == 0 ? adamw_create(n) : adamw_create_range(z->begin, z->end - z->begin);
  z->sumsq = ops->alloc(sizeof(double));
  return z;
}

void zero_free(ZeroOpt *z) {
  if (!z) return;
  adamw_free(z->opt);
  ops->free(z->sumsq);
  free(z->counts), free(z->displs);
  free(z);
}

/* Where grads holds value begin of the vector: a stage-3 network stores its shard alone. */
static long base(const ZeroOpt *z) { return z->stage == 3 ? z->begin : 0; }

void zero_reduce_grads_begin(ZeroOpt *z, float *grads, double *sumsq) {
  if (z->stage < 3) dist_reduce_scatter_f32(grads, z->n, z->counts, z->displs, &z->traffic);
  ops->sum_squares_async(sumsq, grads + (z->begin - base(z)), z->end - z->begin);
}

double zero_reduce_grads_end(ZeroOpt *z, float *grads, double local_sumsq) {
  double sum_sq = dist_allreduce_sum_f64(local_sumsq);
  if (z->stage < 2) dist_allgather_f32(grads, z->n, z->counts, z->displs, &z->traffic);
  return sqrt(sum_sq);
}

double zero_reduce_grads(ZeroOpt *z, float *grads) {
  double local;
  zero_reduce_grads_begin(z, grads, z->sumsq);
  ops->to_host(&local, z->sumsq, sizeof local);
  return zero_reduce_grads_end(z, grads, local);
}

void zero_update(ZeroOpt *z, float *params, const float *grads, const AdamWConfig *c, long step, double grad_norm) {
  if (z->stage == 3) {
    adamw_update_part(z->opt, params, grads, c, step, grad_norm);
    return;
  }
  adamw_update(z->opt, params, grads, c, step, grad_norm);
  if (z->stage > 0) dist_allgather_f32(params, z->n, z->counts, z->displs, &z->traffic);
}

void zero_gather_parts(const float *part, long begin, long count, long n, float *out) {
  int size = dist_size();
  int all = begin == 0 && count == n;
  if (dist_allreduce_max_int(!all)) { /* some rank holds a shard: every rank joins the all-gather */
    long b, en;
    zero_shard(n, dist_rank(), size, &b, &en);
    CHECK(begin == b && count == en - b, "gather: rank %d holds values %ld..%ld, its shard is %ld..%ld", dist_rank(),
          begin, begin + count, b, en);
    int *counts = callocCheck((size_t)size, sizeof(int)), *displs = callocCheck((size_t)size, sizeof(int));
    for (int r = 0; r < size; r++) {
      zero_shard(n, r, size, &b, &en);
      displs[r] = (int)b, counts[r] = (int)(en - b);
    }
    ops->copy(out + begin, part, sizeof(float) * (size_t)count);
    dist_allgather_f32(out, n, counts, displs, NULL);
    free(counts), free(displs);
    return;
  }
  ops->copy(out, part, sizeof(float) * (size_t)n);
}

/* The largest rank's shard, in floats. */
static long largest_shard(const ZeroOpt *z) {
  long shard = 0;
  for (int r = 0; r < dist_size(); r++) shard = z->counts[r] > shard ? z->counts[r] : shard;
  return shard;
}

ZeroMemory zero_memory(const ZeroOpt *z, long gathered_bytes, int ema) {
  long shard = largest_shard(z), f = (long)sizeof(float);
  long moments = z->stage == 0 ? z->n : shard, stored = z->stage == 3 ? shard : z->n;
  return (ZeroMemory){.params = f * stored, .gradients = f * stored, .moments = 2 * f * moments,
                      .ema = ema ? f * moments : 0, .gathered = gathered_bytes};
}

long zero_step_bytes(const ZeroOpt *z) {
  long s = z->end - z->begin, one = 4 * (z->n - s) + 4 * s * (dist_size() - 1);
  return (z->stage == 1 || z->stage == 3 ? 3 : 2) * one;
}

void zero_log_memory(const ZeroOpt *z, const char *net, long gathered_bytes) {
  ZeroMemory b = zero_memory(z, gathered_bytes, 0);
  long moments = z->stage == 0 ? z->n : largest_shard(z);
  amd_log("zero=%d over %d ranks, bytes per rank: %s params %ld, gradients %ld, Adam moments %ld "
          "(%ld of %ld values), gathered buffers %ld\n", z->stage, dist_size(), net, b.params, b.gradients, b.moments,
          moments, z->n, b.gathered);
}
