/* cond_embed.c: the timestep and class conditioning embedding (cond_embed.h). */
#include "cond_embed.h"

#include "layers.h"
#include "ops.h"

void cond_embed_create(CondEmbed *e, Model *m, int width, int temb_dim, int num_classes) {
  int H = width;
  e->width = width, e->temb_dim = temb_dim;
  e->t1w = model_add_matrix(m, "time.fc1.w", H, temb_dim, INIT_FAN_IN);
  e->t1b = model_add_vector(m, "time.fc1.b", H, INIT_ZERO);
  e->t2w = model_add_matrix(m, "time.fc2.w", H, H, INIT_FAN_IN);
  e->t2b = model_add_vector(m, "time.fc2.b", H, INIT_ZERO);
  e->cemb = num_classes > 0 ? model_add_matrix(m, "class.emb", num_classes + 1, H, INIT_NORMAL) : -1;
  size_t f = sizeof(float), BH = (size_t)m->max_batch * H;
  e->labels = ops->alloc(sizeof(int) * (size_t)m->max_batch);
  e->tfeat = ops->alloc(f * (size_t)m->max_batch * temb_dim);
  e->tpre = ops->alloc(f * BH), e->tact = ops->alloc(f * BH), e->emb = ops->alloc(f * BH);
  e->dtact = ops->alloc(f * BH), e->dtpre = ops->alloc(f * BH);
}

void cond_embed_free(CondEmbed *e) {
  float *bufs[] = {e->tfeat, e->tpre, e->tact, e->emb, e->dtact, e->dtpre};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  ops->free(e->labels);
}

void cond_embed_forward(CondEmbed *e, float *cond, const Model *m, const float *t, const int *labels, int B) {
  int H = e->width;
  if (labels) ops->copy(e->labels, labels, sizeof(int) * (size_t)B);
  ops->timestep_embedding(e->tfeat, t, B, e->temb_dim, 1000.0f, 10000.0f);
  linear_forward(e->tpre, e->tfeat, model_param(m, e->t1w), model_param(m, e->t1b), B, e->temb_dim, H);
  ops->silu_forward(e->tact, e->tpre, (long)B * H);
  linear_forward(cond, e->tact, model_param(m, e->t2w), model_param(m, e->t2b), B, H, H);
  if (e->cemb < 0) return; /* time only */
  ops->embedding_forward(e->emb, model_param(m, e->cemb), labels, B, H);
  ops->axpy(cond, 1.0f, e->emb, (long)B * H);
}

void cond_embed_backward(CondEmbed *e, Model *m, const float *dcond, int B) {
  if (m->frozen) return;
  int H = e->width;
  if (e->cemb >= 0) ops->embedding_backward(model_grad(m, e->cemb), dcond, e->labels, B, H);
  linear_backward_overwrite(e->dtact, model_grad(m, e->t2w), model_grad(m, e->t2b), dcond, e->tact,
                            model_param(m, e->t2w), B, H, H);
  ops->fill(e->dtpre, 0.0f, (long)B * H);
  ops->silu_backward(e->dtpre, e->dtact, e->tpre, (long)B * H);
  linear_backward(NULL, model_grad(m, e->t1w), model_grad(m, e->t1b), e->dtpre, e->tfeat, model_param(m, e->t1w), B,
                  e->temb_dim, H);
}
