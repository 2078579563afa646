/* test_text.c: the text-mode dit (issue 20; docs/DESIGN.md section 5.2: the caption encoder of
 * src/text_encoder.h, c = temb(t) + Linear(pooled caption), a cross-attention layer in every block)
 * on the CPU backend: finite-difference gradients of every tensor (text.*, every block's xattn.*,
 * cond.text.*: every entry of a tensor of up to GRAD_ENTRIES, that many spread over a larger one) and
 * of every entry of x; that backward adds; the frozen backward (the same dx, no
 * parameter gradient); the inference forward (the same output bit for bit); padding (what a padded
 * token's embedding holds changes nothing, bit for bit, and its gradient is exactly 0); the empty
 * caption (finite, and untouched by every text.* tensor); the untrained model's zero output;
 * classifier-free guidance with the empty caption as the unconditional branch, and the teacher's
 * caption dropout to it (src/flow.c); the
 * tokenizer's rows (src/caption.h) as the model's input; the config checks; checkpoints (the text
 * attributes stored and read back, the parameters round trip, a caption model refused as a class
 * model and the other way round, another vocabulary refused).
 * Losses are L = sum(out R) + sum(features Rf) for fixed random R, Rf, as in test_dit.c.
 * Not here: the PyTorch golden test (test_dit_golden.c), CUDA conformance (test_cuda.c). */
#include <ftw.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caption.h"
#include "common.h"
#include "flow.h"
#include "h5.h"
#include "model.h"
#include "model_ckpt.h"
#include "ops.h"
#include "philox.h"
#include "test.h"

#define TEST_SEED 20261205u
#include "ckpt_child.h"
#include "gradcheck.h"
#include "model_checks.h"

/* 1x8x8 images in 4x4 patches (4 tokens), width 16, 2 blocks, 2 heads; a vocabulary of 7 (0 the
 * padding), captions of up to 5 tokens, a text encoder of width 8 and 2 blocks */
static const ModelConfig textcfg = {.kind = "dit", .dim = 64, .num_classes = 3, .width = 16, .depth = 2,
                                    .temb_dim = 16, .img_channels = 1, .img_size = 8, .patch = 4, .heads = 2,
                                    .text = 1, .vocab = 7, .text_width = 8, .text_depth = 2, .max_text = 5};

enum { B = 3, LT = 5 };
/* a caption with padding after it, the empty caption, a caption of every position */
static const int caption_ids[B * LT] = {3, 1, 4, 0, 0, 0, 0, 0, 0, 0, 2, 6, 5, 1, 2};

static void free_all(float **bufs, size_t n) {
  for (size_t i = 0; i < n; i++) ops->free(bufs[i]);
}
#define FREE_ALL(...)                                \
  do {                                               \
    float *bufs_[] = {__VA_ARGS__};                  \
    free_all(bufs_, sizeof bufs_ / sizeof bufs_[0]); \
  } while (0)

typedef struct {
  Model *m;
  float *out, *x, *t, *R, *Rf; /* (B, dim), (B, dim), (B), (B, dim), (B, width) */
  int *ids;                    /* (B, LT) backend memory */
} TextCase;

static double text_loss(void *ctx) {
  TextCase *c = ctx;
  c->m->forward(c->m, c->out, c->x, c->t, c->ids, B);
  return dot(c->out, c->R, (long)B * c->m->cfg.dim) + dot(c->m->features(c->m), c->Rf, (long)B * c->m->feat_dim);
}

static long tensor_size(const TensorInfo *ti) {
  return (long)ti->shape[0] * ti->shape[1] * ti->shape[2] * ti->shape[3];
}

static const TensorInfo *find_tensor(const Model *m, const char *name) {
  for (int k = 0; k < m->num_tensors; k++)
    if (strcmp(m->tensors[k].name, name) == 0) return &m->tensors[k];
  return NULL;
}

/* a model with every tensor nonzero (the zero-initialized ones random, so no gate or zero projection
 * hides a gradient) and its inputs */
static TextCase text_case(const ModelConfig *cfg, int max_batch) {
  Model *m = model_create(cfg, max_batch);
  model_init_params(m, 11);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    if (ti->init == INIT_ZERO) fill_uniform(m->params + ti->offset, tensor_size(ti), -0.3, 0.3);
  }
  long n = (long)B * cfg->dim, nf = (long)B * cfg->width;
  TextCase c = {m, alloc_f(n), alloc_f(n), alloc_f(B), alloc_f(n), alloc_f(nf), ops->alloc(sizeof caption_ids)};
  static const float t_values[B] = {0.15f, 0.7f, 0.4f};
  ops->to_device(c.ids, caption_ids, sizeof caption_ids);
  ops->to_device(c.t, t_values, sizeof t_values);
  fill_uniform(c.x, n, -1.5, 1.5);
  fill_uniform(c.R, n, -1, 1);
  fill_uniform(c.Rf, nf, -1, 1);
  return c;
}

static void free_case(TextCase *c) {
  FREE_ALL(c->out, c->x, c->t, c->R, c->Rf);
  ops->free(c->ids);
  model_free(c->m);
}

/* the layout: text.*, cond.text.* and each block's xattn.*, and no class table */
static void test_text_layout(void) {
  Model *m = model_create(&textcfg, 2);
  int text = 0, xattn = 0, cond = 0;
  for (int k = 0; k < m->num_tensors; k++) {
    const char *name = m->tensors[k].name;
    text += strncmp(name, "text.", 5) == 0, cond += strncmp(name, "cond.text.", 10) == 0;
    xattn += strncmp(name, "block", 5) == 0 && strstr(name, ".xattn.") != NULL;
  }
  /* text.emb, then per encoder block the layer's 6 and fc1, fc2 (4) */
  EXPECT(text == 1 + textcfg.text_depth * 10, "%d text.* tensors", text);
  EXPECT(xattn == 6 * textcfg.depth && cond == 2, "%d block xattn tensors, %d cond.text tensors", xattn, cond);
  EXPECT(!find_tensor(m, "class.emb"), "a text-mode dit has a class table");
  const TensorInfo *emb = find_tensor(m, "text.emb"), *kv = find_tensor(m, "block1.xattn.kv.w");
  EXPECT(emb && emb->shape[0] == 7 && emb->shape[1] == 8 && emb->init == INIT_NORMAL, "text.emb shape or init");
  EXPECT(kv && kv->shape[0] == 32 && kv->shape[1] == 8, "block1.xattn.kv.w is not (2 width, text_width)");
  /* a fresh model outputs exactly 0 (adaLN-Zero), captions or not */
  model_init_params(m, 3);
  TextCase c = {m, alloc_f(2L * 64), alloc_f(2L * 64), alloc_f(2), NULL, NULL, ops->alloc(sizeof(int) * 2 * LT)};
  ops->to_device(c.ids, caption_ids, sizeof(int) * 2 * LT);
  fill_uniform(c.x, 2L * 64, -1, 1);
  m->forward(m, c.out, c.x, c.t, c.ids, 2);
  float *out = host_copy(c.out, 2L * 64);
  int nonzero = 0;
  for (int i = 0; i < 2 * 64; i++) nonzero += out[i] != 0.0f;
  EXPECT(nonzero == 0, "an untrained text-mode dit has %d nonzero outputs", nonzero);
  free(out);
  FREE_ALL(c.out, c.x, c.t);
  ops->free(c.ids);
  model_free(m);
}

/* at most this many entries of each tensor against central differences (check_grad_spread): every
 * entry of all would take minutes, most of make test's budget */
#define GRAD_ENTRIES 12

/* every tensor (GRAD_ENTRIES entries of the larger ones) and every entry of x against central
 * differences; then backward adds, and the frozen backward */
static void check_text_grad(const ModelConfig *cfg) {
  TextCase c = text_case(cfg, B + 1); /* B below max_batch catches code that sizes by max_batch */
  Model *m = c.m;
  long n = (long)B * cfg->dim;
  float *dx = alloc_f(n);
  model_zero_grad(m);
  text_loss(&c);
  m->backward(m, dx, c.R, c.Rf, B);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    check_grad_spread(ti->name, m->params + ti->offset, m->grads + ti->offset, tensor_size(ti), GRAD_ENTRIES,
                      text_loss, &c);
  }
  check_grad("d/dx", c.x, dx, n, text_loss, &c);

  check_backward_adds_and_frozen("text dit", m, dx, n, c.R, c.Rf, B, text_loss, &c);
  ops->free(dx);
  free_case(&c);
}

static void test_text_grad(void) { check_text_grad(&textcfg); }

/* no encoder blocks (the embedding, positions and final LayerNorm only), one DiT block, 4 heads
 * (of width 2 in the encoder), another vocabulary */
static void test_text_grad_shapes(void) {
  ModelConfig c = textcfg;
  c.text_depth = 0, c.depth = 1, c.heads = 4, c.vocab = 9, c.max_text = LT;
  check_text_grad(&c);
}

/* what a padded token's row holds never reaches anything: text.emb's row 0 (the padding's
 * embedding) set to large values changes no output, feature or gradient, bit for bit, and its own
 * gradient is exactly 0; and the inference forward gives the same output and features */
static void test_text_padding(void) {
  TextCase c = text_case(&textcfg, B);
  Model *m = c.m;
  long n = (long)B * textcfg.dim, nf = (long)B * textcfg.width, E = textcfg.text_width;
  const TensorInfo *emb = find_tensor(m, "text.emb");
  float *dx = alloc_f(n);
  model_zero_grad(m);
  text_loss(&c);
  m->backward(m, dx, c.R, c.Rf, B);
  float *out1 = host_copy(c.out, n), *feat1 = host_copy(m->features(m), nf);
  float *grads1 = host_copy(m->grads, m->num_params), *dx1 = host_copy(dx, n);
  int zero_row = 1;
  for (long j = 0; j < E; j++) zero_row &= grads1[emb->offset + j] == 0.0f;
  EXPECT(zero_row, "the padding token's embedding has a nonzero gradient");

  for (long j = 0; j < E; j++) m->params[emb->offset + j] = 1000.0f * (float)(j % 3 + 1) * (j & 1 ? -1.0f : 1.0f);
  model_zero_grad(m);
  ops->fill(dx, 0.0f, n);
  text_loss(&c);
  m->backward(m, dx, c.R, c.Rf, B);
  EXPECT(memcmp(c.out, out1, sizeof(float) * (size_t)n) == 0, "the padding's embedding changed the output");
  EXPECT(memcmp(m->features(m), feat1, sizeof(float) * (size_t)nf) == 0, "the padding's embedding changed features");
  EXPECT(memcmp(m->grads, grads1, sizeof(float) * (size_t)m->num_params) == 0,
         "the padding's embedding changed a parameter gradient");
  EXPECT(memcmp(dx, dx1, sizeof(float) * (size_t)n) == 0, "the padding's embedding changed dx");

  m->inference = 1;
  float *out2 = alloc_f(n);
  m->forward(m, out2, c.x, c.t, c.ids, B);
  EXPECT(memcmp(out2, out1, sizeof(float) * (size_t)n) == 0, "the inference forward's output differs");
  EXPECT(memcmp(m->features(m), feat1, sizeof(float) * (size_t)nf) == 0, "the inference forward's features differ");
  m->inference = 0;
  free(out1), free(feat1), free(grads1), free(dx1);
  FREE_ALL(dx, out2);
  free_case(&c);
}

/* the empty caption (sample 1: all padding) is well defined: finite, and no text.* tensor reaches
 * it (its pooled caption is 0 and its cross-attention outputs proj's bias), bit for bit; the other
 * samples do change */
static void test_text_empty_caption(void) {
  TextCase c = text_case(&textcfg, B);
  Model *m = c.m;
  long D = textcfg.dim, n = B * D;
  text_loss(&c);
  float *out1 = host_copy(c.out, n);
  EXPECT(ops->all_finite(c.out, n), "the output with an empty caption is not finite");
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    if (strncmp(ti->name, "text.", 5) == 0) fill_uniform(m->params + ti->offset, tensor_size(ti), -2, 2);
  }
  text_loss(&c);
  EXPECT(memcmp(c.out + D, out1 + D, sizeof(float) * (size_t)D) == 0, "text.* changed the empty caption's output");
  EXPECT(memcmp(c.out, out1, sizeof(float) * (size_t)D) != 0 &&
             memcmp(c.out + 2 * D, out1 + 2 * D, sizeof(float) * (size_t)D) != 0,
         "text.* did not change the captioned samples' outputs");
  free(out1);
  free_case(&c);
}

/* ---- classifier-free guidance ---------------------------------------------------------------- */

/* The sampler's guidance in text mode: the unconditional branch is the empty caption. With w = 2.5
 * its velocity is w v_c + (1 - w) v_u of one forward of the 2B rows [captions; empty captions]
 * (to float rounding: the sampler combines on the backend); without guidance, the conditional
 * forward bit for bit; Euler with guidance counts 2 evaluations per step and stays finite. */
static void test_text_guidance(void) {
  enum { D = 64 };
  const float w = 2.5f, tval = 0.6f;
  TextCase c = text_case(&textcfg, 2 * B);
  Model *m = c.m;
  Sampler *s = sampler_create(m, w, B), *plain = sampler_create(m, 1.0, B);
  float *v = alloc_f(B * D), *xin = alloc_f(2 * B * D), *tin = alloc_f(2 * B), *vout = alloc_f(2 * B * D);
  int *ids = ops->alloc(sizeof(int) * 2 * B * LT); /* [captions; empty captions] (zero-filled) */
  ops->to_device(ids, caption_ids, sizeof caption_ids);
  ops->copy(xin, c.x, sizeof(float) * B * D), ops->copy(xin + B * D, c.x, sizeof(float) * B * D);
  ops->fill(tin, tval, 2 * B);
  m->forward(m, vout, xin, tin, ids, 2 * B);
  float *ref = host_copy(vout, 2 * B * D);
  sampler_velocity(s, v, c.x, tval, caption_ids, B);
  float *got = host_copy(v, B * D);
  int bad = 0, moved = 0;
  for (int i = 0; i < B * D; i++) {
    double want = (double)w * ref[i] + (1.0 - w) * ref[B * D + i];
    bad += fabs(got[i] - want) > 1e-6 + 1e-5 * fabs(want);
    moved += got[i] != ref[i];
  }
  EXPECT(bad == 0, "%d of %d guided velocities are not w v_c + (1 - w) v(empty caption)", bad, B * D);
  EXPECT(moved > B * D / 2, "guidance changed only %d of %d velocities", moved, B * D);
  sampler_velocity(plain, v, c.x, tval, caption_ids, B);
  m->forward(m, vout, c.x, tin, ids, B);
  EXPECT(memcmp(v, vout, sizeof(float) * B * D) == 0, "the unguided velocity is not the conditional forward");
  double grid[3];
  flow_time_grid(grid, 2, 1.0);
  int nfe = sample_euler(s, c.x, caption_ids, B, grid, 2);
  EXPECT(nfe == 4, "guided Euler over 2 steps reports %d evaluations", nfe);
  EXPECT(ops->all_finite(c.x, B * D), "guided samples are not finite");
  free(ref), free(got);
  FREE_ALL(v, xin, tin, vout);
  ops->free(ids);
  sampler_free(s), sampler_free(plain);
  free_case(&c);
}

/* The teacher's loss in text mode (src/flow.c): caption dropout (p_uncond) replaces a whole caption
 * by the empty one: with p_uncond 1 the loss and every gradient are those of empty captions, bit
 * for bit; with 0.5 each row is its caption or all padding as RNG_DROP says; a flow batch made for
 * class labels is refused for a caption model. */
static FlowBatch *t_fb;
static Model *t_model;
static void train_with_class_batch(void *arg) {
  float *x0 = arg;
  FlowConfig fc = {0};
  flow_train_batch(t_model, t_fb, x0, caption_ids, NULL, 1, 0, 0, 7, &fc, 1);
}

static void test_text_flow_dropout(void) {
  enum { D = 64 };
  TextCase c = text_case(&textcfg, B);
  Model *m = c.m;
  FlowBatch *fb = flow_batch_create(B, D, LT);
  static const int empty[B * LT] = {0};
  FlowConfig all = {.p_uncond = 1.0}, none = {.p_uncond = 0.0}, half = {.p_uncond = 0.5};
  model_zero_grad(m);
  double l1 = flow_train_batch(m, fb, c.x, caption_ids, NULL, B, 0, 3, 7, &all, B);
  float *g1 = host_copy(m->grads, m->num_params);
  model_zero_grad(m);
  double l2 = flow_train_batch(m, fb, c.x, empty, NULL, B, 0, 3, 7, &none, B);
  EXPECT(l1 == l2, "loss with every caption dropped %.9g, with empty captions %.9g", l1, l2);
  EXPECT(memcmp(g1, m->grads, sizeof(float) * (size_t)m->num_params) == 0,
         "gradients with every caption dropped differ from those of empty captions");
  model_zero_grad(m);
  double l3 = flow_train_batch(m, fb, c.x, caption_ids, NULL, B, 0, 3, 7, &half, B);
  EXPECT(isfinite(l3), "loss %g", l3);
  for (int i = 0; i < B; i++) {
    int drop = rng_uniform(7, RNG_DROP, 3, (uint32_t)i, 0) < 0.5, same = 1;
    for (int j = 0; j < LT; j++) same &= fb->labels_host[i * LT + j] == (drop ? 0 : caption_ids[i * LT + j]);
    EXPECT(same, "sample %d: its row is not %s", i, drop ? "the empty caption" : "its caption");
  }
  t_fb = flow_batch_create(B, D, 1), t_model = m;
  EXPECT(expect_fatal(train_with_class_batch, c.x, "ints per label"), "a class-label flow batch trained a caption model");
  flow_batch_free(t_fb), flow_batch_free(fb);
  free(g1);
  free_case(&c);
}

/* ---- the tokenizer's captions ---------------------------------------------------------------- */

/* what `amd data compose` stores reaches the model as it is: token rows of CAPTION_MAX_TOKENS from
 * caption_encode, vocab caption_vocab_size(); blank text is the empty caption, whose output equals
 * that of an all-zero row written here bit for bit, and a caption's output moves with its words */
static void test_text_tokenizer_captions(void) {
  static const char *const texts[3] = {"a bag to the left of a sneaker", "", "three shirts"};
  ModelConfig cfg = textcfg;
  cfg.vocab = caption_vocab_size(), cfg.max_text = CAPTION_MAX_TOKENS;
  Model *m = model_create(&cfg, B);
  model_init_params(m, 4);
  for (int k = 0; k < m->num_tensors; k++) { /* the zero-init tensors too: every path live */
    const TensorInfo *ti = &m->tensors[k];
    if (ti->init == INIT_ZERO) fill_uniform(m->params + ti->offset, tensor_size(ti), -0.3, 0.3);
  }
  int ids_h[B * CAPTION_MAX_TOKENS], zero_h[B * CAPTION_MAX_TOKENS] = {0};
  char err[256];
  for (int b = 0; b < B; b++) {
    int n = caption_encode(texts[b], ids_h + b * CAPTION_MAX_TOKENS, err, sizeof err);
    EXPECT(n >= 0, "caption_encode('%s'): %s", texts[b], err);
  }
  EXPECT(caption_encode("a bag to the left of a sneaker", ids_h, err, sizeof err) == 8 && ids_h[7] != 0,
         "the longest caption does not fill the row");
  long n = (long)B * cfg.dim;
  float *x = alloc_f(n), *t = alloc_f(B), *out = alloc_f(n), *out0 = alloc_f(n);
  int *ids = ops->alloc(sizeof ids_h), *zero = ops->alloc(sizeof zero_h);
  fill_uniform(x, n, -1, 1), fill_uniform(t, B, 0, 1);
  ops->to_device(ids, ids_h, sizeof ids_h), ops->to_device(zero, zero_h, sizeof zero_h);
  m->forward(m, out, x, t, ids, B);
  m->forward(m, out0, x, t, zero, B);
  long D = cfg.dim;
  EXPECT(ops->all_finite(out, n), "outputs of tokenized captions are not finite");
  EXPECT(memcmp(out + D, out0 + D, sizeof(float) * (size_t)D) == 0, "blank text is not the empty caption");
  EXPECT(memcmp(out, out0, sizeof(float) * (size_t)D) != 0 &&
             memcmp(out + 2 * D, out0 + 2 * D, sizeof(float) * (size_t)D) != 0,
         "a caption's output equals the empty caption's");
  FREE_ALL(x, t, out, out0);
  ops->free(ids), ops->free(zero);
  model_free(m);
}

/* ---- config ---------------------------------------------------------------------------------- */

static ModelConfig t_bad;
static void create_bad(void *arg) {
  (void)arg;
  model_create(&t_bad, 2);
}

static void test_text_config(void) {
  struct {
    const char *why, *needle;
    ModelConfig c;
  } cases[] = {
      {"vocab 1", "vocab", textcfg}, {"odd text_width", "text_width", textcfg}, {"max_text 0", "max_text", textcfg},
      {"a classifier with text", "'dit' kind only", textcfg}, {"text fields in class mode", "text mode", textcfg},
      {"text 2", "model text 2", textcfg},
  };
  cases[0].c.vocab = 1;
  cases[1].c.text_width = 7;
  cases[2].c.max_text = 0;
  snprintf(cases[3].c.kind, sizeof cases[3].c.kind, "classifier");
  cases[4].c.text = 0;
  cases[5].c.text = 2;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    t_bad = cases[i].c;
    EXPECT(expect_fatal(create_bad, NULL, cases[i].needle), "%s was not refused naming '%s'", cases[i].why,
           cases[i].needle);
  }
  ModelConfig ok = textcfg;
  ok.text_depth = 0;
  Model *m = model_create(&ok, 1);
  EXPECT(model_label_ints(&m->cfg) == LT, "model_label_ints %d", model_label_ints(&m->cfg));
  model_free(m);
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static char t_scratch[64], t_ckpt[4200];

static const ModelConfig classcfg = {.kind = "dit", .dim = 64, .num_classes = 3, .width = 16, .depth = 2,
                                     .temb_dim = 16, .img_channels = 1, .img_size = 8, .patch = 4, .heads = 2};

static void load_as(void *arg) {
  const char **what = arg; /* net name, then "class" or "vocab" */
  ModelConfig c = strcmp(what[1], "class") == 0 ? classcfg : textcfg;
  if (strcmp(what[1], "vocab") == 0) c.vocab = 8;
  if (strcmp(what[1], "text") == 0) c = textcfg;
  Model *m = model_create(&c, 2);
  CkptState st;
  CkptNet net = {what[0], m, NULL, NULL};
  model_ckpt_load(t_ckpt, &st, &net, 1);
}

static void test_text_checkpoint(void) {
  scratch_make(t_scratch, sizeof t_scratch, "text");
  Model *d = model_create(&textcfg, 2), *cl = model_create(&classcfg, 2);
  model_init_params(d, 5), model_init_params(cl, 6);
  fill_uniform(d->params, d->num_params, -1, 1); /* no zero tensors: every value must come back */
  CkptNet nets[2] = {{"student", d, NULL, NULL}, {"teacher", cl, NULL, NULL}};
  EXPECT(ckpt_save_in_child(t_scratch, nets, 2), "saving in a child process failed");
  EXPECT(ckpt_latest(t_scratch, t_ckpt, sizeof t_ckpt) == 1, "no checkpoint of step 1 in %s", t_scratch);

  ModelConfig c;
  model_ckpt_config(t_ckpt, "student", &c);
  EXPECT(memcmp(&c, &textcfg, sizeof c) == 0, "text config read back differs (text %d, vocab %d, width %d, depth %d, "
         "max %d)", c.text, c.vocab, c.text_width, c.text_depth, c.max_text);
  model_ckpt_config(t_ckpt, "teacher", &c);
  EXPECT(memcmp(&c, &classcfg, sizeof c) == 0, "class config read back differs (text %d)", c.text);
  /* a class model's group holds no text attribute (its file is as before text mode) */
  hid_t f = h5_open(t_ckpt, "amd-checkpoint", 0, NULL);
  hid_t g = h5_group_open(f, "teacher");
  EXPECT(!h5_attr_exists(g, "text") && !h5_attr_exists(g, "vocab"), "a class-mode net has text attributes");
  H5Gclose(g);
  g = h5_group_open(f, "student");
  EXPECT(h5_attr_exists(g, "max_text") && h5_attr_read_i64(g, "text") == 1, "the text-mode net lacks its attributes");
  H5Gclose(g);
  h5_close(f);

  Model *d2 = model_create(&textcfg, 2);
  CkptState st;
  CkptNet back = {"student", d2, NULL, NULL};
  model_ckpt_load(t_ckpt, &st, &back, 1);
  EXPECT(memcmp(d->params, d2->params, sizeof(float) * (size_t)d->num_params) == 0, "text params differ after load");
  const char *as_class[2] = {"student", "class"}, *as_text[2] = {"teacher", "text"}, *vocab[2] = {"student", "vocab"};
  EXPECT(expect_fatal(load_as, as_class, "caption-conditioned model (text = 1) but this run's model is class"),
         "a text-mode checkpoint loaded as a class-mode model");
  EXPECT(expect_fatal(load_as, as_text, "class-conditioned model (text = 0) but this run's model is caption"),
         "a class-mode checkpoint loaded as a text-mode model");
  EXPECT(expect_fatal(load_as, vocab, "vocab"), "a text-mode checkpoint loaded with another vocabulary");
  model_free(d), model_free(cl), model_free(d2);
  if (t_case_failures == 0) scratch_remove(t_scratch);
}

int main(void) {
  TEST_RUN(test_text_layout);
  TEST_RUN(test_text_config);
  TEST_RUN(test_text_grad);
  TEST_RUN(test_text_grad_shapes);
  TEST_RUN(test_text_padding);
  TEST_RUN(test_text_empty_caption);
  TEST_RUN(test_text_guidance);
  TEST_RUN(test_text_tokenizer_captions);
  TEST_RUN(test_text_flow_dropout);
  TEST_RUN(test_text_checkpoint);
  return t_finish();
}
