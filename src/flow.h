/* flow.h: rectified flow (docs/DESIGN.md section 3): the training loss of a velocity network and the
 * samplers that integrate dx/dt = v from t = 1 (noise) to t = 0 (data).
 *   x_t = (1 - t) x0 + t e,  v target = e - x0,  loss = E || v_theta(x_t, t, c) - (e - x0) ||^2
 *   v_cfg = v(x, t, null) + w (v(x, t, c) - v(x, t, null))
 * All draws are keyed by (seed, step, global sample index), never by rank.
 * Return convention: errors stop the program (amd_fatal); functions return void or their result. */
#pragma once
#include <stdint.h>

#include "model.h"

typedef struct {
  int logit_normal;   /* 0: t ~ U(0, 1); 1: t = sigmoid(mean + std z) */
  double t_mean, t_std;
  double p_uncond;    /* label dropout to the null class (text mode: the empty caption), for
                         classifier-free guidance */
} FlowConfig;

/* Device work buffers for a local batch of up to max_batch samples. */
typedef struct {
  int max_batch, dim;
  int label_ints;     /* ints per sample of labels: model_label_ints of the model it trains */
  float *e, *t, *xt, *v, *pred, *dpred, *loss; /* backend memory */
  int *labels;
  float *t_host, *loss_host;
  int *labels_host;
  void *graph; /* the step's device part as a CUDA graph (ops->graph_run; cuda.graphs=1) */
} FlowBatch;

FlowBatch *flow_batch_create(int max_batch, int dim, int label_ints);
void flow_batch_free(FlowBatch *b);

/* t for one global sample index at one step. */
double flow_sample_t(const FlowConfig *fc, uint64_t seed, uint32_t step, uint32_t index);

/* One forward/backward of the flow-matching loss on B local samples x0 (backend memory, (B, dim))
 * with labels (host, (B, label_ints): class labels, or captions in text mode), whose global indices
 * start at index0; `step` keys the draws. Per-sample loss
 * weights (backend memory, (B)) may be NULL. Gradients are added to m->grads already divided by
 * global_batch, so summing over ranks gives the global mean. Returns the sum of the B unweighted
 * per-sample losses. */
double flow_train_batch(Model *m, FlowBatch *b, const float *x0, const int *labels, const float *weights, int B,
                        uint32_t index0, uint32_t step, uint64_t seed, const FlowConfig *fc, long global_batch);
/* The same without reading anything back (no wait for the device): the B unweighted per-sample
 * losses are left in loss (backend memory, (B)) for the caller to read with its other results.
 * Everything after the host's draws and their copy to the device (interpolation, forward, loss,
 * backward) is one ops->graph_run body: a CUDA graph with cuda.graphs=1, unless the model gathers
 * its parameters over MPI (ZeRO stage 3). */
void flow_train_batch_into(float *loss, Model *m, FlowBatch *b, const float *x0, const int *labels,
                           const float *weights, int B, uint32_t index0, uint32_t step, uint64_t seed,
                           const FlowConfig *fc, long global_batch);

/* The time grid t_0 = 1 > ... > t_N = 0 with timestep shift (shift > 1 spends more steps at high
 * noise): t = shift s / (1 + (shift - 1) s), s = 1 - i / N. grid has N + 1 entries. */
void flow_time_grid(double *grid, int N, double shift);

/* A velocity model with classifier-free guidance and its work buffers. */
typedef struct {
  Model *model;
  double cfg;      /* guidance scale w; 1 means one conditional evaluation per step */
  int null_class;   /* the unconditional branch's label: class num_classes, or in text mode token 0 in
                      every position (the empty caption) */
  int label_ints;   /* ints per sample of labels: model_label_ints (1, or max_text in text mode) */
  int max_batch;   /* samples per call; the model needs 2 max_batch when cfg != 1 */
  float *xin, *tin, *vout, *v1, *v2, *xp, *h;
  int *lin;
  float *t_host, *h_host;
  int *lin_host;
} Sampler;

Sampler *sampler_create(Model *model, double cfg, int max_batch);
void sampler_free(Sampler *s);
/* v (B, dim) = guided velocity at (x, t) for labels (host; (B, label_ints): class labels, or captions
 * of token ids in text mode). With cfg != 1 the model runs once on 2B rows, the labels then the
 * null class (text mode: the empty caption), and v = v_u + w (v_c - v_u). */
void sampler_velocity(Sampler *s, float *v, const float *x, double t, const int *labels, int B);
/* Euler (Song et al. 2021, probability-flow ODE; rectified-flow form): x <- x + (t_{i+1} - t_i) v.
 * x holds the noise on entry and the sample on return (backend memory). Returns NFE per sample. */
int sample_euler(Sampler *s, float *x, const int *labels, int B, const double *grid, int N); /* labels as sampler_velocity's */
/* Heun (Karras et al. 2022, Algorithm 1 without churn): trapezoidal correction on every step
 * whose end is not t = 0. */
int sample_heun(Sampler *s, float *x, const int *labels, int B, const double *grid, int N);
