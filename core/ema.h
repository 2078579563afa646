/* ema.h: an exponential moving average of a network's flat parameter vector (docs/DESIGN.md
 * section 2.6): after each optimizer update, ema = decay ema + (1 - decay) params. Like the AdamW
 * moments (optim.h), an Ema holds one range of the vector: all of it, or this rank's ZeRO shard
 * (mpi/zero.h, which also gathers the shards back into a whole vector).
 * The decay follows k-diffusion's EMAWarmup: decay(step) = min(ema.decay, 1 - (1 + step)^-power),
 * step being the number of updates before this one: the first update copies the parameters, and the
 * average spans about 1/(1 - decay) = (1 + step)^power recent updates, a window that grows with the
 * run until the cap's 1/(1 - ema.decay) (power 3/4 reaches 0.999 at 10K steps; power 1 is the plain
 * mean of every update so far); power 0 means no warm-up (the cap from the first update).
 * Not here: when the run loop updates it (src/runloop.c), checkpoints (src/model_ckpt.h).
 * Return convention: nothing fails but allocation, which stops the program. */
#pragma once

typedef struct {
  double decay; /* the cap; 0: no EMA */
  double power; /* warm-up power; 0: none */
} EmaConfig;

/* The average of the range [begin, begin + n) of a flat vector. */
typedef struct {
  long begin, n;
  float *w; /* (n) backend memory */
} Ema;

Ema *ema_create_range(long begin, long n);
void ema_free(Ema *e);
/* The decay of the update that follows `step` earlier updates (0-based step of the update). */
double ema_decay(const EmaConfig *c, long step);
/* e = decay e + (1 - decay) params[begin, begin + n) (params: a full-length vector, backend memory);
 * decay 0 copies. */
void ema_update(Ema *e, const float *params, double decay);
/* e = params[begin, begin + n): the start of a run, or a checkpoint without an EMA. */
void ema_copy_from(Ema *e, const float *params);
/* ema_update and ema_copy_from with part holding the range alone (n values, value begin first):
 * a network that stores only its ZeRO shard (stage 3). */
void ema_update_part(Ema *e, const float *part, double decay);
void ema_copy_from_part(Ema *e, const float *part);
/* Rank 0 prints the bytes the EMA of network `net` takes on it (its shard under ZeRO). */
void ema_log_memory(const Ema *e, const char *net);
