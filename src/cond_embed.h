/* cond_embed.h: the conditioning embedding that the velocity networks (mlp, dit) share:
 *   cond = Linear(SiLU(Linear(sinusoidal(1000 t)))) + class_emb[label]      (B, width)
 * label num_classes is the null class of classifier-free guidance. With num_classes 0 there is no
 * class table (cemb -1) and cond is the time embedding alone (a text-mode dit adds its pooled caption). Tensors time.fc1.{w,b},
 * time.fc2.{w,b} (fan-in weights, zero biases) and class.emb (normal), registered in that order
 * where the model calls create.
 * Return convention: nothing here fails but allocation, which stops the program. */
#pragma once
#include "model.h"

typedef struct {
  long t1w, t1b, t2w, t2b, cemb; /* parameter offsets */
  int width, temb_dim;
  int *labels;                         /* (B) of the last forward */
  float *tfeat;                        /* (B, temb_dim) */
  float *tpre, *tact, *emb, *dtact, *dtpre; /* (B, width) */
} CondEmbed;

/* registers the tensors in m and allocates buffers for m->max_batch rows */
void cond_embed_create(CondEmbed *e, Model *m, int width, int temb_dim, int num_classes);
void cond_embed_free(CondEmbed *e);
/* cond (B, width) from t (B) and labels (B; ignored, and may be NULL, without a class table) */
void cond_embed_forward(CondEmbed *e, float *cond, const Model *m, const float *t, const int *labels, int B);
/* adds the parameter gradients for d loss / d cond; nothing when m is frozen */
void cond_embed_backward(CondEmbed *e, Model *m, const float *dcond, int B);
