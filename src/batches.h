/* batches.h: the training batches of `amd train`. The data order is one Philox-keyed Fisher-Yates
 * permutation per epoch (stream RNG_SHUFFLE, keyed by the epoch and the position), which every rank
 * computes alike, so sample g of the run is the same data point at any rank count and after a
 * resume. Step s takes samples s B .. s B + B - 1 of the global batch B; this rank its contiguous
 * share of them (prompts split by rank, dist_split), copied to backend memory.
 * Not here: what a step does with them. Every function stops the program when it fails. */
#pragma once
#include <stdint.h>

#include "dataset.h"

typedef struct {
  const Dataset *data;
  int batch, local; /* the global batch, and this rank's share of it, from `begin` */
  long begin;
  long epoch;       /* of the permutation in perm (-1: none yet) */
  long *perm;       /* (data->n) */
  uint64_t seed;
  float *x_host;    /* (local, dim) */
  float *x;         /* (local, dim) backend memory: this rank's samples of the step */
  int *labels;      /* (local, label_ints) host: their labels, or their captions' token ids */
  const int *tokens; /* text mode: the dataset's captions (n, label_ints), token ids; NULL: class labels */
  int label_ints;   /* ints per sample of labels: 1, or the caption length in text mode */
} Batches;

void batches_init(Batches *b, const Dataset *data, int batch, uint64_t seed);
/* Text mode: each sample's label becomes its caption, `len` token ids of tokens (n, len), which
 * stay the caller's. */
void batches_use_captions(Batches *b, const int *tokens, int len);
/* Fills x and labels with this rank's samples of step `step`. */
void batches_get(Batches *b, long step);
void batches_free(Batches *b);
