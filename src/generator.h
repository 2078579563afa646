/* generator.h: the few-step student (docs/DESIGN.md section 4). With S steps on the grid
 * t_k = 1 - (k - 1) / S, k = 1..S:  x0_k = D_theta(x_{t_k}, t_k, c) = x_{t_k} - t_k v_theta(...),
 * then x_{t_{k+1}} = (1 - t_{k+1}) x0_k + t_{k+1} e_k with fresh noise e_k. Training uses backward
 * simulation (DMD2): run k - 1 steps without gradient and the k-th with it; generator_backward then
 * takes dL/dx0_k into the student's gradients. Inference runs all S steps.
 * Draws: the starting noise is keyed (seed, RNG_GEN, key, index), the re-noising of step j by
 * (seed, RNG_RENOISE, key * 8 + j, index), so a batch is the same at any rank count.
 * Return convention: errors stop the program (amd_fatal); functions return void or their result. */
#pragma once
#include <stdint.h>

#include "model.h"

#define GENERATOR_MAX_STEPS 8

typedef struct {
  Model *model;
  int S;
  double grid[GENERATOR_MAX_STEPS];
  int max_batch;
  float *xt, *v, *t, *noise; /* backend memory */
  float *t_host;
  double t_last; /* t of the last step run, for backward */
} Generator;

Generator *generator_create(Model *model, int S, int max_batch);
void generator_free(Generator *g);
/* x (B, dim) = output of step k (1 <= k <= S); labels (backend memory, (B, model_label_ints)). */
void generator_run(Generator *g, float *x, const int *labels, int B, int k, uint64_t seed, uint32_t key, uint32_t index0);
/* Adds the gradient of a loss whose gradient at the last step's output is dx into model->grads. */
void generator_backward(Generator *g, const float *dx, int B);
