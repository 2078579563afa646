/* batches.c: the data order and this rank's batch of each step (batches.h). */
#include "batches.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "ops.h"
#include "philox.h"

void batches_init(Batches *b, const Dataset *data, int batch, uint64_t seed) {
  long end;
  memset(b, 0, sizeof *b);
  b->data = data, b->batch = batch, b->seed = seed, b->epoch = -1;
  dist_split(batch, &b->begin, &end);
  b->local = (int)(end - b->begin);
  b->perm = mallocCheck(sizeof(long) * (size_t)data->n);
  b->x_host = mallocCheck(sizeof(float) * (size_t)b->local * data->dim);
  b->x = ops->alloc(sizeof(float) * (size_t)b->local * data->dim);
  b->labels = mallocCheck(sizeof(int) * (size_t)b->local);
  b->label_ints = 1;
}

void batches_use_captions(Batches *b, const int *tokens, int len) {
  free(b->labels);
  b->tokens = tokens, b->label_ints = len;
  b->labels = mallocCheck(sizeof(int) * (size_t)b->local * (size_t)len);
}

/* The data index of sample g of the run. */
static long epoch_index(Batches *b, long g) {
  long n = b->data->n, epoch = g / n;
  if (epoch != b->epoch) {
    for (long i = 0; i < n; i++) b->perm[i] = i;
    for (long i = n - 1; i > 0; i--) {
      uint32_t w[4];
      rng_u32x4(b->seed, RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)i, 0, w);
      uint64_t r = ((uint64_t)w[0] << 32) | w[1];
      long j = (long)(r % (uint64_t)(i + 1));
      long tmp = b->perm[i];
      b->perm[i] = b->perm[j], b->perm[j] = tmp;
    }
    b->epoch = epoch;
  }
  return b->perm[g % n];
}

void batches_get(Batches *b, long step) {
  int dim = b->data->dim;
  for (int i = 0; i < b->local; i++) {
    long idx = epoch_index(b, step * b->batch + b->begin + i);
    memcpy(b->x_host + (size_t)i * dim, b->data->x + (size_t)idx * dim, sizeof(float) * (size_t)dim);
    if (b->tokens)
      memcpy(b->labels + (size_t)i * b->label_ints, b->tokens + (size_t)idx * b->label_ints,
             sizeof(int) * (size_t)b->label_ints);
    else
      b->labels[i] = b->data->labels[idx];
  }
  ops->to_device(b->x, b->x_host, sizeof(float) * (size_t)b->local * dim);
}

void batches_free(Batches *b) {
  free(b->perm), free(b->x_host), free(b->labels);
  ops->free(b->x);
  memset(b, 0, sizeof *b);
}
