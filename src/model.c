/* model.c: the parts of a model that do not depend on its architecture: the tensor layout,
 * allocation, initialization and the builder table. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "philox.h"

Model *mlp_create(Model *m);  /* mlp.c */
Model *head_create(Model *m); /* head.c */
Model *dit_create(Model *m);  /* dit.c */

long model_add_tensor(Model *m, const char *name, int ndim, const int *shape) {
  CHECK(m->num_tensors < MODEL_MAX_TENSORS, "model has more than %d tensors", MODEL_MAX_TENSORS);
  TensorInfo *t = &m->tensors[m->num_tensors++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->offset = m->num_params;
  t->ndim = ndim;
  long n = 1;
  for (int i = 0; i < 4; i++) {
    t->shape[i] = i < ndim ? shape[i] : 1;
    n *= t->shape[i];
  }
  m->num_params += n;
  return t->offset;
}

void model_config_check(const ModelConfig *c) {
  int head = strcmp(c->kind, "head") == 0, cls = strcmp(c->kind, "classifier") == 0;
  int dit = strcmp(c->kind, "dit") == 0 || cls;
  CHECK(strcmp(c->kind, "mlp") == 0 || head || dit,
        "model kind '%s' is unknown (this amd has: mlp, dit, classifier, head)", c->kind);
  CHECK(c->dim >= 1 && c->dim <= 1 << 20, "model dim %d out of range [1, 2^20]", c->dim);
  if (head) return;
  CHECK(c->num_classes >= 1 && c->num_classes <= 100000, "model num_classes %d out of range", c->num_classes);
  CHECK(c->width >= 1 && c->width <= 65536, "model width %d out of range [1, 65536]", c->width);
  CHECK(c->depth >= 0 && c->depth <= 1000, "model depth %d out of range [0, 1000]", c->depth);
  CHECK(cls || (c->temb_dim >= 2 && c->temb_dim % 2 == 0 && c->temb_dim <= 4096),
        "model temb_dim %d must be even and in [2, 4096]", c->temb_dim);
  if (!dit) return;
  CHECK(c->img_channels >= 1 && c->img_channels <= 64, "model img_channels %d out of range [1, 64]", c->img_channels);
  CHECK(c->patch >= 1 && c->img_size >= c->patch && c->img_size % c->patch == 0,
        "model img_size %d must be a positive multiple of patch %d", c->img_size, c->patch);
  CHECK((long)c->img_channels * c->img_size * c->img_size == c->dim,
        "model dim %d must equal img_channels %d x img_size %d^2", c->dim, c->img_channels, c->img_size);
  CHECK(c->heads >= 1 && c->width % c->heads == 0, "model width %d must be a multiple of heads %d", c->width, c->heads);
  CHECK(c->width % 4 == 0, "model width %d must be a multiple of 4 (2-D sin-cos positions)", c->width);
}

Model *model_create(const ModelConfig *cfg, int max_batch) {
  model_config_check(cfg);
  CHECK(max_batch >= 1, "model batch %d must be at least 1", max_batch);
  Model *m = callocCheck(1, sizeof *m);
  m->cfg = *cfg;
  m->max_batch = max_batch;
  if (strcmp(cfg->kind, "head") == 0) head_create(m);
  else if (strcmp(cfg->kind, "dit") == 0 || strcmp(cfg->kind, "classifier") == 0) dit_create(m);
  else mlp_create(m);
  return m;
}

void model_free(Model *m) {
  if (!m) return;
  if (m->free_impl) m->free_impl(m);
  ops->free(m->params);
  ops->free(m->grads);
  free(m);
}

void model_zero_grad(Model *m) { ops->fill(m->grads, 0.0f, m->num_params); }

/* Weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in torch.nn.Linear, biases (".b") zero, tables
 * ("...emb") N(0, 1) as in torch.nn.Embedding, and weights named "....zero.w" zero (adaLN-Zero:
 * the DiT modulation and output layers start at zero, so every block starts as the identity).
 * Each tensor draws from its own Philox index, so adding a tensor does not shift the others. */
void model_init_params(Model *m, uint64_t seed) {
  float *host = mallocCheck(sizeof(float) * (size_t)m->num_params);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *t = &m->tensors[k];
    long n = (long)t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
    float *p = host + t->offset;
    size_t len = strlen(t->name);
    int is_bias = len >= 2 && strcmp(t->name + len - 2, ".b") == 0;
    int is_emb = len >= 3 && strcmp(t->name + len - 3, "emb") == 0;
    int is_zero = len >= 7 && strcmp(t->name + len - 7, ".zero.w") == 0;
    if (is_bias || is_zero) {
      memset(p, 0, sizeof(float) * (size_t)n);
    } else if (is_emb) {
      rng_normal(p, n, seed, RNG_INIT, 0, (uint32_t)k);
    } else {
      long fan_in = n / t->shape[0];
      double bound = 1.0 / sqrt((double)fan_in);
      for (long i = 0; i < n; i++)
        p[i] = (float)((2.0 * rng_uniform(seed, RNG_INIT, 0, (uint32_t)k, (uint32_t)i) - 1.0) * bound);
    }
  }
  ops->to_device(m->params, host, sizeof(float) * (size_t)m->num_params);
  free(host);
}
