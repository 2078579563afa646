/* snapshot.h: pictures of a network while it trains (the key sample.every of `amd train
 * task=teacher` and `amd distill`; docs/DESIGN.md section 8): every N steps rank 0 draws a fixed set
 * of samples with the current weights (a teacher: Euler with a few steps, no guidance; a student:
 * its own S-step generator) and writes <run>/samples_<step>.png: for images a grid with a row per
 * class (the first 10 classes, 8 samples each; a caption model: a row per caption), for 2-D toy data a scatter plot of 2048 points over
 * the mode centres. The noise and the labels (classes in turn) are the same at every step, so the
 * pictures of a run show the same samples moving.
 * The training does not change: the draws are keyed by a Philox key of their own (the run's seed
 * with SNAPSHOT_KEY in its upper word, which no training seed has), the buffers are the snapshot's
 * own, and the network's parameters are only read (its activations are overwritten, which the next
 * step recomputes).
 * Return convention: snapshot_create stops with a usage error on data it cannot picture; every
 * other failure stops the program (amd_fatal). */
#pragma once
#include <stdint.h>

#include "dataset.h"
#include "model.h"

#define SNAPSHOT_KEY 0x736e6170ULL /* "snap" */

typedef struct Snapshot Snapshot;

/* A usage error naming config key `key` unless the data can be pictured (images or 2-D points):
 * call it before the run folder is touched. */
void snapshot_check(const Dataset *data, const char *key);
/* Every rank calls it (snapshot_check first); rank 0 gets the snapshot, the others NULL.
 * sampler: "euler" (a velocity network, `steps` Euler steps) or "generator" (a student of `steps`
 * steps). key names the config key, for messages. */
Snapshot *snapshot_create(Model *model, const char *sampler, int steps, const Dataset *data, const char *run,
                          uint64_t seed, const char *key);
/* A caption model (text mode): the grid's rows become the first (up to 10) distinct captions of the
 * data, tokens (n, len) token ids and text (n) their words, 8 samples each; rank 0 logs them once.
 * Both stay the caller's for the snapshot's life. A no-op on NULL. */
void snapshot_use_captions(Snapshot *s, const int *tokens, char *const *text, long n, int len);
/* Writes <run>/samples_<step>.png (a no-op on NULL). */
void snapshot_take(Snapshot *s, long step);
void snapshot_free(Snapshot *s);
