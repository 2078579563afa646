/* mlp.c: the `mlp` velocity network for vector data (toy 2-D mixtures).
 *   cond = Linear(SiLU(Linear(sinusoidal(t)))) + class_emb[c]       (class num_classes = null)
 *   h_0  = Linear(x) + cond
 *   h_l+1 = h_l + Linear(SiLU(Linear(SiLU(h_l))))                   l = 0 .. depth-1
 *   v    = Linear(SiLU(h_depth))
 * Its features (for a GAN head) are SiLU(h_depth), (B, width).
 * Time enters as 1000 t so the sinusoids resolve the [0, 1] interval as in DDPM-style embeddings. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cond_embed.h"
#include "layers.h"
#include "model.h"
#include "ops.h"

typedef struct {
  /* parameter offsets into the flat buffer */
  long inw, inb, outw, outb;
  CondEmbed ce; /* time and class conditioning */
  long *w1, *b1, *w2, *b2; /* per block */
  /* activations for the last forward, each (B, width) unless noted */
  float *x;     /* (B, dim) input, kept for backward */
  float *cond;
  float *h;    /* (depth + 1, B, width) residual stream */
  float *a1, *z1, *a2; /* (depth, B, width) */
  float *hf;   /* SiLU(h_depth) */
  /* gradient scratch */
  float *dh, *dz, *da;
  int B;
} Mlp;

/* Units (model.h): 0 the conditioning and the input layer, 1 + l block l, depth + 1 the output. */
#define P(off) model_param(m, off)
#define G(off) model_grad(m, off)

static void mlp_forward(Model *m, float *out, const float *x, const float *t, const int *labels, int B) {
  Mlp *a = m->impl;
  const ModelConfig *c = &m->cfg;
  int H = c->width, D = c->dim;
  long BH = (long)B * H;
  CHECK(B <= m->max_batch, "mlp forward: batch %d exceeds the model's max batch %d", B, m->max_batch);
  a->B = B;
  ops->copy(a->x, x, sizeof(float) * (size_t)B * D);
  model_unit_enter(m, 0, MODEL_FORWARD);
  cond_embed_forward(&a->ce, a->cond, m, t, labels, B);
  linear_forward(a->h, x, P(a->inw), P(a->inb), B, D, H);
  model_unit_leave(m, 0);
  ops->axpy(a->h, 1.0f, a->cond, BH);
  for (int l = 0; l < c->depth; l++) {
    model_unit_enter(m, 1 + l, MODEL_FORWARD);
    float *h = a->h + l * BH, *hn = h + BH;
    float *a1 = a->a1 + l * BH, *z1 = a->z1 + l * BH, *a2 = a->a2 + l * BH;
    ops->silu_forward(a1, h, BH);
    linear_forward(z1, a1, P(a->w1[l]), P(a->b1[l]), B, H, H);
    ops->silu_forward(a2, z1, BH);
    linear_forward(hn, a2, P(a->w2[l]), P(a->b2[l]), B, H, H);
    model_unit_leave(m, 1 + l);
    ops->axpy(hn, 1.0f, h, BH);
  }
  ops->silu_forward(a->hf, a->h + c->depth * BH, BH);
  model_unit_enter(m, c->depth + 1, MODEL_FORWARD);
  linear_forward(out, a->hf, P(a->outw), P(a->outb), B, H, D);
  model_unit_leave(m, c->depth + 1);
}

static const float *mlp_features(const Model *m) { return ((const Mlp *)m->impl)->hf; }

static void mlp_backward(Model *m, float *dx, const float *dout, const float *dfeat, int B) {
  Mlp *a = m->impl;
  const ModelConfig *c = &m->cfg;
  int H = c->width, D = c->dim;
  long BH = (long)B * H;
  CHECK(B == a->B, "mlp backward: batch %d differs from the forward batch %d", B, a->B);
  /* dh holds d loss / d h_l as l walks down; the GEMMs with beta 0 (linear_backward_overwrite)
   * need no zeroed buffer, silu_backward adds into one */
  model_unit_enter(m, c->depth + 1, MODEL_BACKWARD);
  if (dout) linear_backward_overwrite(a->dz, G(a->outw), G(a->outb), dout, a->hf, P(a->outw), B, H, D);
  else ops->fill(a->dz, 0.0f, BH);
  model_unit_leave(m, c->depth + 1);
  if (dfeat) ops->axpy(a->dz, 1.0f, dfeat, BH);
  ops->fill(a->dh, 0.0f, BH);
  ops->silu_backward(a->dh, a->dz, a->h + c->depth * BH, BH);
  for (int l = c->depth - 1; l >= 0; l--) {
    float *h = a->h + l * BH, *a1 = a->a1 + l * BH, *z1 = a->z1 + l * BH, *a2 = a->a2 + l * BH;
    model_unit_enter(m, 1 + l, MODEL_BACKWARD);
    linear_backward_overwrite(a->da, G(a->w2[l]), G(a->b2[l]), a->dh, a2, P(a->w2[l]), B, H, H);
    ops->fill(a->dz, 0.0f, BH);
    ops->silu_backward(a->dz, a->da, z1, BH);
    linear_backward_overwrite(a->da, G(a->w1[l]), G(a->b1[l]), a->dz, a1, P(a->w1[l]), B, H, H);
    model_unit_leave(m, 1 + l);
    ops->silu_backward(a->dh, a->da, h, BH); /* the residual path keeps dh itself */
  }
  model_unit_enter(m, 0, MODEL_BACKWARD);
  linear_backward(dx, G(a->inw), G(a->inb), a->dh, a->x, P(a->inw), B, D, H);
  cond_embed_backward(&a->ce, m, a->dh, B); /* d cond = d h_0 */
  model_unit_leave(m, 0);
}

static void mlp_free(Model *m) {
  Mlp *a = m->impl;
  float *bufs[] = {a->x, a->cond, a->h, a->a1, a->z1, a->a2, a->hf, a->dh, a->dz, a->da};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  cond_embed_free(&a->ce);
  free(a->w1), free(a->w2), free(a->b1), free(a->b2);
  free(a);
}

Model *mlp_create(Model *m) {
  const ModelConfig *c = &m->cfg;
  int H = c->width, D = c->dim, L = c->depth, B = m->max_batch;
  Mlp *a = callocCheck(1, sizeof *a);
  a->w1 = callocCheck((size_t)L + 1, sizeof(long));
  a->b1 = callocCheck((size_t)L + 1, sizeof(long));
  a->w2 = callocCheck((size_t)L + 1, sizeof(long));
  a->b2 = callocCheck((size_t)L + 1, sizeof(long));
  cond_embed_create(&a->ce, m, H, c->temb_dim, c->num_classes);
  a->inw = model_add_matrix(m, "in.w", H, D, INIT_FAN_IN);
  a->inb = model_add_vector(m, "in.b", H, INIT_ZERO);
  for (int l = 0; l < L; l++) {
    char name[MODEL_NAME_MAX];
    model_begin_unit(m);
    snprintf(name, sizeof name, "block%d.fc1.w", l), a->w1[l] = model_add_matrix(m, name, H, H, INIT_FAN_IN);
    snprintf(name, sizeof name, "block%d.fc1.b", l), a->b1[l] = model_add_vector(m, name, H, INIT_ZERO);
    snprintf(name, sizeof name, "block%d.fc2.w", l), a->w2[l] = model_add_matrix(m, name, H, H, INIT_FAN_IN);
    snprintf(name, sizeof name, "block%d.fc2.b", l), a->b2[l] = model_add_vector(m, name, H, INIT_ZERO);
  }
  model_begin_unit(m);
  a->outw = model_add_matrix(m, "out.w", D, H, INIT_FAN_IN);
  a->outb = model_add_vector(m, "out.b", D, INIT_ZERO);

  size_t f = sizeof(float), BH = (size_t)B * H;
  a->x = ops->alloc(f * (size_t)B * D);
  a->cond = ops->alloc(f * BH);
  a->h = ops->alloc(f * BH * (size_t)(L + 1));
  a->a1 = ops->alloc(f * BH * (size_t)(L ? L : 1));
  a->z1 = ops->alloc(f * BH * (size_t)(L ? L : 1));
  a->a2 = ops->alloc(f * BH * (size_t)(L ? L : 1));
  a->hf = ops->alloc(f * BH);
  a->dh = ops->alloc(f * BH), a->dz = ops->alloc(f * BH), a->da = ops->alloc(f * BH);
  m->impl = a;
  m->forward = mlp_forward;
  m->backward = mlp_backward;
  m->features = mlp_features;
  m->feat_dim = H;
  m->free_impl = mlp_free;
  return m;
}
