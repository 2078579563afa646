/* model.c: the parts of a model that do not depend on its architecture: the registry of model
 * kinds, the tensor layout and its units, the config check, allocation of the stored range and
 * initialization. Not here: the architectures themselves (mlp.c, dit.c, head.c), stage 3's gathers
 * (model_shard.c). */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "ops.h"
#include "philox.h"
#include "zero.h"

void model_shard_create(Model *m); /* model_shard.c */
void model_shard_free(Model *m);

Model *mlp_create(Model *m);  /* mlp.c */
Model *head_create(Model *m); /* head.c */
Model *dit_create(Model *m);  /* dit.c, also the classifier */

/* The registry: one entry per kind, in the order the unknown-kind error lists them. */
static const ModelKind kinds[] = {
    {.name = "mlp", .create = mlp_create, .hidden = 1, .temb = 1, .default_depth = 3, .default_temb_dim = 64},
    {.name = "dit", .create = dit_create, .hidden = 1, .temb = 1, .images = 1, .default_depth = 6,
     .default_temb_dim = 256},
    {.name = "classifier", .create = dit_create, .hidden = 1, .images = 1, .classifier = 1, .default_depth = 6},
    {.name = "head", .create = head_create},
};
#define NUM_KINDS ((int)(sizeof kinds / sizeof kinds[0]))

const ModelKind *model_kind_at(int i) { return i >= 0 && i < NUM_KINDS ? &kinds[i] : NULL; }

const ModelKind *model_kind_find(const char *name) {
  for (int i = 0; i < NUM_KINDS; i++)
    if (strcmp(kinds[i].name, name) == 0) return &kinds[i];
  return NULL;
}

const ModelKind *model_kind_get(const char *name) {
  const ModelKind *k = model_kind_find(name);
  if (k) return k;
  char known[256] = "";
  for (int i = 0; i < NUM_KINDS; i++)
    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", kinds[i].name);
  amd_fatal("model kind '%s' is unknown (this amd has: %s)", name, known);
}

long model_add_tensor(Model *m, const char *name, int ndim, const int *shape, InitKind init) {
  CHECK(m->num_tensors < MODEL_MAX_TENSORS, "model has more than %d tensors", MODEL_MAX_TENSORS);
  CHECK(init != INIT_UNSET, "model tensor '%s' has no init kind", name);
  TensorInfo *t = &m->tensors[m->num_tensors++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->offset = m->num_params;
  t->ndim = ndim;
  t->init = init;
  long n = 1;
  for (int i = 0; i < 4; i++) {
    t->shape[i] = i < ndim ? shape[i] : 1;
    n *= t->shape[i];
  }
  m->num_params += n;
  return t->offset;
}

long model_add_matrix(Model *m, const char *name, int rows, int cols, InitKind init) {
  return model_add_tensor(m, name, 2, (int[]){rows, cols}, init);
}

long model_add_vector(Model *m, const char *name, int n, InitKind init) {
  return model_add_tensor(m, name, 1, (int[]){n}, init);
}

void model_config_check(const ModelConfig *c) {
  const ModelKind *k = model_kind_get(c->kind);
  CHECK(c->dim >= 1 && c->dim <= 1 << 20, "model dim %d out of range [1, 2^20]", c->dim);
  CHECK(!c->text || (k->temb && k->images), "model text=1 is for the 'dit' kind only, not '%s'", c->kind);
  if (!k->hidden) return;
  CHECK(c->num_classes >= 1 && c->num_classes <= 100000, "model num_classes %d out of range", c->num_classes);
  CHECK(c->width >= 1 && c->width <= 65536, "model width %d out of range [1, 65536]", c->width);
  CHECK(c->depth >= 0 && c->depth <= 1000, "model depth %d out of range [0, 1000]", c->depth);
  CHECK(!k->temb || (c->temb_dim >= 2 && c->temb_dim % 2 == 0 && c->temb_dim <= 4096),
        "model temb_dim %d must be even and in [2, 4096]", c->temb_dim);
  if (!k->images) return;
  CHECK(c->img_channels >= 1 && c->img_channels <= 64, "model img_channels %d out of range [1, 64]", c->img_channels);
  CHECK(c->patch >= 1 && c->img_size >= c->patch && c->img_size % c->patch == 0,
        "model img_size %d must be a positive multiple of patch %d", c->img_size, c->patch);
  CHECK((long)c->img_channels * c->img_size * c->img_size == c->dim,
        "model dim %d must equal img_channels %d x img_size %d^2", c->dim, c->img_channels, c->img_size);
  CHECK(c->heads >= 1 && c->width % c->heads == 0, "model width %d must be a multiple of heads %d", c->width, c->heads);
  CHECK(c->width % 4 == 0, "model width %d must be a multiple of 4 (2-D sin-cos positions)", c->width);
  CHECK(c->text == 0 || c->text == 1, "model text %d must be 0 (class labels) or 1 (captions)", c->text);
  if (!c->text) {
    CHECK(!c->vocab && !c->text_width && !c->text_depth && !c->max_text,
          "model vocab, text_width, text_depth and max_text are for text mode (model text=1) only");
    return;
  }
  CHECK(c->vocab >= 2 && c->vocab <= 1 << 20, "model vocab %d out of range [2, 2^20] (id 0 is padding)", c->vocab);
  CHECK(c->text_width >= 2 && c->text_width <= 65536 && c->text_width % 2 == 0 && c->text_width % c->heads == 0,
        "model text_width %d must be even, in [2, 65536] and a multiple of heads %d", c->text_width, c->heads);
  CHECK(c->text_depth >= 0 && c->text_depth <= 1000, "model text_depth %d out of range [0, 1000]", c->text_depth);
  CHECK(c->max_text >= 1 && c->max_text <= 4096, "model max_text %d out of range [1, 4096]", c->max_text);
}

void model_begin_unit(Model *m) {
  if (m->num_params == m->unit_begin[m->num_units - 1]) return; /* the current unit is still empty */
  CHECK(m->num_units < MODEL_MAX_UNITS, "model has more than %d units", MODEL_MAX_UNITS);
  m->unit_begin[m->num_units++] = m->num_params;
}

Model *model_create_flags(const ModelConfig *cfg, int max_batch, int flags) {
  model_config_check(cfg);
  CHECK(max_batch >= 1, "model batch %d must be at least 1", max_batch);
  CHECK(!(flags & ~(MODEL_SHARDED | MODEL_INFERENCE)), "model_create_flags: unknown flags %#x", (unsigned)flags);
  int sharded = (flags & MODEL_SHARDED) != 0;
  Model *m = callocCheck(1, sizeof *m);
  m->cfg = *cfg;
  m->max_batch = max_batch;
  m->inference = (flags & MODEL_INFERENCE) != 0; /* read by the kind's create: how much room to make */
  m->kind = model_kind_get(cfg->kind);
  m->num_units = 1;
  m->kind->create(m);
  if (m->num_units > 1 && m->unit_begin[m->num_units - 1] == m->num_params) m->num_units--; /* empty last unit */
  m->unit_begin[m->num_units] = m->num_params;
  m->p_begin = 0, m->p_end = m->num_params;
  if (sharded) zero_shard(m->num_params, dist_rank(), dist_size(), &m->p_begin, &m->p_end);
  size_t bytes = sizeof(float) * (size_t)(model_stored_n(m) > 0 ? model_stored_n(m) : 1);
  m->params = ops->alloc(bytes);
  m->grads = ops->alloc(bytes);
  if (sharded) model_shard_create(m);
  return m;
}

Model *model_create(const ModelConfig *cfg, int max_batch) { return model_create_flags(cfg, max_batch, 0); }

Model *model_create_sharded(const ModelConfig *cfg, int max_batch) {
  return model_create_flags(cfg, max_batch, MODEL_SHARDED);
}

void model_free(Model *m) {
  if (!m) return;
  if (m->shard) model_shard_free(m);
  if (m->free_impl) m->free_impl(m);
  ops->free(m->params);
  ops->free(m->grads);
  free(m);
}

void model_zero_grad(Model *m) { ops->fill(m->grads, 0.0f, model_stored_n(m)); }

static void check_stored(const Model *m, long begin, long n) {
  CHECK(begin >= m->p_begin && n >= 0 && begin + n <= m->p_end,
        "model: values %ld..%ld of the flat vector asked for, this rank stores %ld..%ld", begin, begin + n, m->p_begin,
        m->p_end);
}

float *model_stored(const Model *m, long begin, long n) {
  check_stored(m, begin, n);
  return m->params + (begin - m->p_begin);
}

float *model_stored_grad(const Model *m, long begin, long n) {
  check_stored(m, begin, n);
  return m->grads + (begin - m->p_begin);
}

/* Tensor k's n values as its InitKind says (model.h) into p (host). Each tensor draws from its own
 * Philox index, its place in the layout, so adding a tensor does not shift the others, and a tensor
 * is drawn alike whether or not the others are. */
static void init_tensor(const TensorInfo *t, int k, long n, uint64_t seed, float *p) {
  switch (t->init) {
    case INIT_ZERO:
      memset(p, 0, sizeof(float) * (size_t)n);
      break;
    case INIT_NORMAL:
      rng_normal(p, n, seed, RNG_INIT, 0, (uint32_t)k);
      break;
    case INIT_FAN_IN: {
      long fan_in = n / t->shape[0];
      double bound = 1.0 / sqrt((double)fan_in);
      for (long i = 0; i < n; i++)
        p[i] = (float)((2.0 * rng_uniform(seed, RNG_INIT, 0, (uint32_t)k, (uint32_t)i) - 1.0) * bound);
      break;
    }
    default:
      amd_fatal("model tensor '%s' has no init kind", t->name);
  }
}

/* Only the tensors that meet the stored range are drawn, those inside it straight into the host
 * copy of the range, one that straddles its edge into a scratch buffer: at ZeRO stage 3 the host
 * holds the shard and at most one tensor more, never the whole vector. */
void model_init_params(Model *m, uint64_t seed) {
  long sn = model_stored_n(m);
  float *host = mallocCheck(sizeof(float) * (size_t)(sn > 0 ? sn : 1)), *scratch = NULL;
  long scratch_n = 0;
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *t = &m->tensors[k];
    long n = (long)t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
    long b = t->offset > m->p_begin ? t->offset : m->p_begin;
    long e = t->offset + n < m->p_end ? t->offset + n : m->p_end;
    if (e <= b) continue; /* not stored on this rank */
    if (b == t->offset && e == t->offset + n) {
      init_tensor(t, k, n, seed, host + (t->offset - m->p_begin));
      continue;
    }
    if (n > scratch_n) {
      free(scratch);
      scratch = mallocCheck(sizeof(float) * (size_t)n);
      scratch_n = n;
    }
    init_tensor(t, k, n, seed, scratch);
    memcpy(host + (b - m->p_begin), scratch + (b - t->offset), sizeof(float) * (size_t)(e - b));
  }
  ops->to_device(m->params, host, sizeof(float) * (size_t)sn);
  free(host), free(scratch);
}
