/* philox.h: Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011)
 * and the project's keying scheme. Every random number in amd is a pure function of
 * (seed, stream, step, index, element): no generator state travels between ranks or through
 * checkpoints, so results do not depend on the rank count and resume exactly.
 * Counter words: c0 = index (global sample index), c1 = step, c2 = element block (4 per block),
 * c3 = stream. Key: the 64-bit seed split in two words.
 * Return convention: nothing here can fail; functions return void or their result. */
#pragma once
#include <stdint.h>

/* Streams: one per use, so no two uses ever share a counter. */
enum {
  RNG_INIT = 1,   /* parameter initialization (index = tensor number) */
  RNG_SHUFFLE,    /* data order (index = epoch) */
  RNG_TIME,       /* training timesteps t */
  RNG_NOISE,      /* training noise e */
  RNG_DROP,       /* label dropout for classifier-free guidance */
  RNG_SAMPLE,     /* sampler noise */
  RNG_TOYDATA,    /* toy data generation */
  RNG_METRIC,     /* metric projections and subsets */
  RNG_GEN,        /* generator (student) starting noise */
  RNG_RENOISE,    /* generator re-noising between its steps */
  RNG_PROMPT,     /* distillation prompts (class labels) */
  RNG_SIM,        /* backward simulation: which student step gets the gradient */
  RNG_DMD_T,      /* t of the distribution-matching loss and the GAN */
  RNG_DMD_NOISE,  /* noise of the distribution-matching loss and the GAN */
  RNG_REAL,       /* real data picked for the GAN discriminator */
  RNG_STREAMS_END, /* the tests draw their inputs from this stream, which no use takes */
  /* streams added later sit past it, so its value, and with it every test's inputs, stay */
  RNG_COMPOSE = RNG_STREAMS_END + 1, /* captioned canvases (amd data compose: step = split, index = canvas) */
};

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Four raw words for (seed, stream, step, index, block). */
void rng_u32x4(uint64_t seed, uint32_t stream, uint32_t step, uint32_t index, uint32_t block, uint32_t out[4]);
/* Element j of the uniform (0, 1) sequence for (seed, stream, step, index): 24-bit resolution. */
double rng_uniform(uint64_t seed, uint32_t stream, uint32_t step, uint32_t index, uint32_t j);
/* n standard normals for one (seed, stream, step, index) by Box-Muller on consecutive pairs. */
void rng_normal(float *out, long n, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index);
/* Uniform 32-bit word to (0, 1): (w >> 8 + 0.5) / 2^24, never 0 or 1, so log() is safe. */
static inline double rng_u01(uint32_t w) { return ((double)(w >> 8) + 0.5) * (1.0 / 16777216.0); }
