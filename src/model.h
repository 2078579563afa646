/* model.h: what every network looks like to training, sampling, checkpoints and distillation.
 * A model owns one flat parameter buffer and one gradient buffer of the same layout (backend
 * memory); `tensors` names the views into it. forward caches what backward needs for the batch it
 * was last called with. Methods never look past this interface, so they drive an `mlp` or, later,
 * a `dit` the same way. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_TENSORS 256
#define MODEL_NAME_MAX 48

typedef struct {
  char name[MODEL_NAME_MAX];
  long offset; /* into the flat buffer, in floats */
  int ndim;
  int shape[4];
} TensorInfo;

/* Architecture hyperparameters; stored with every checkpoint so a model can be rebuilt from it. */
typedef struct {
  char kind[16];    /* "mlp", "dit", "classifier" (dit blocks, logits out: the reward and evaluator
                       networks; out is (B, num_classes), t and labels ignored), or "head" (a linear
                       scorer on features, dim = feature width) */
  int dim;          /* elements per sample (2 for toy 2-D data; img_channels img_size^2 for dit) */
  int num_classes;  /* the null class for guidance is row num_classes of the class table */
  int width;        /* hidden width (dit: token width) */
  int depth;        /* residual blocks (dit: transformer blocks) */
  int temb_dim;     /* sinusoidal timestep features */
  /* dit only (0 for the other kinds): square images (img_channels, img_size, img_size) cut into
   * patch x patch tokens; heads attention heads */
  int img_channels, img_size, patch, heads;
} ModelConfig;

typedef struct Model Model;
struct Model {
  ModelConfig cfg;
  long num_params;
  float *params; /* (num_params) backend memory */
  float *grads;  /* (num_params) backend memory, same layout */
  int num_tensors;
  TensorInfo tensors[MODEL_MAX_TENSORS];
  int max_batch;
  /* 1: backward computes only the gradients into dx and dfeat, no parameter gradient (a network
   * that only passes gradients through: the reward classifier in distillation, the fake teacher
   * and the GAN head in the generator's GAN term) */
  int frozen;
  void *impl;
  /* out (B, dim) = v_theta(x (B, dim), t (B), labels (B)); B <= max_batch */
  void (*forward)(Model *m, float *out, const float *x, const float *t, const int *labels, int B);
  /* adds d loss / d params into grads, and d loss / d x into dx when dx is not NULL. dout (B, dim)
   * is the gradient at the output and dfeat (B, feat_dim) at the features; either may be NULL. */
  void (*backward)(Model *m, float *dx, const float *dout, const float *dfeat, int B);
  /* (B, feat_dim) pooled hidden features of the last forward (what a GAN head reads) */
  const float *(*features)(const Model *m);
  int feat_dim;
  void (*free_impl)(Model *m);
};

/* Builds a model of cfg->kind with zeroed parameters and room for batches up to max_batch. */
Model *model_create(const ModelConfig *cfg, int max_batch);
void model_free(Model *m);
/* Fills parameters from the Philox stream RNG_INIT keyed by seed (host-side, then uploaded). */
void model_init_params(Model *m, uint64_t seed);
void model_zero_grad(Model *m);
/* where a backward adds the gradient of the tensor at offset off: NULL when the model is frozen */
static inline float *model_grad(const Model *m, long off) { return m->frozen ? NULL : m->grads + off; }
/* Registers a tensor in the layout; returns its offset. Used by model builders. */
long model_add_tensor(Model *m, const char *name, int ndim, const int *shape);
/* Checks cfg values and that the kind exists; fatal with the field named otherwise. */
void model_config_check(const ModelConfig *cfg);
