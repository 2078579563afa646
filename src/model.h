/* model.h: what every network looks like to training, sampling, checkpoints and distillation.
 * A model owns one flat parameter buffer and one gradient buffer of the same layout (backend
 * memory); `tensors` names the views into it. forward caches what backward needs for the batch it
 * was last called with. Methods never look past this interface, so they drive an `mlp` or a `dit`
 * the same way. A ModelKind, looked up by name in the registry, says what a kind reads and builds;
 * each tensor says how it is initialized (InitKind).
 * ZeRO stage 3 (model_create_sharded, docs/DESIGN.md section 7.2): the model stores only its range
 * [p_begin, p_end) of the flat vector (this rank's zero_shard) in params and grads. Its tensors are
 * grouped into units (model_begin_unit: contiguous ranges in forward order); forward and backward
 * bracket each unit with model_unit_enter / model_unit_leave, which all-gather the unit into one of
 * two reusable buffers (prefetching the next unit) and, after a backward, reduce-scatter its
 * gradient into this rank's range of grads. Below stage 3 the model stores everything, its units
 * are never gathered, enter and leave do nothing, and model_param is m->params + off.
 * Not here: the architectures (mlp.c, dit.c, head.c), checkpoints (io/ckpt.h), the gather and
 * reduction of a unit (model_shard.c).
 * Return convention: model_kind_find and model_kind_at return NULL when there is no such
 * kind; every other error stops the program (amd_fatal) and functions return void or their result. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_TENSORS 256
#define MODEL_MAX_UNITS MODEL_MAX_TENSORS
#define MODEL_NAME_MAX 48

/* How model_init_params fills a tensor; every tensor names one where its model declares it. */
typedef enum {
  INIT_UNSET = 0, /* never valid: model_add_tensor refuses it, so no tensor keeps a default */
  INIT_ZERO,      /* all zero: biases, and the adaLN-Zero modulation and output weights of the dit */
  INIT_NORMAL,    /* N(0, 1) as torch.nn.Embedding: the class and conditioning tables */
  INIT_FAN_IN,    /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = size / shape[0], as torch.nn.Linear */
} InitKind;

typedef struct {
  char name[MODEL_NAME_MAX];
  long offset; /* into the flat buffer, in floats */
  int ndim;
  int shape[4];
  InitKind init;
} TensorInfo;

/* Architecture hyperparameters; stored with every checkpoint so a model can be rebuilt from it. */
typedef struct {
  char kind[16];    /* a registered ModelKind's name: "mlp", "dit", "classifier" (dit blocks, logits
                       out: the reward and evaluator networks; out is (B, num_classes), t and labels
                       ignored), or "head" (a linear scorer on features, dim = feature width) */
  int dim;          /* elements per sample (2 for toy 2-D data; img_channels img_size^2 for dit) */
  int num_classes;  /* the null class for guidance is row num_classes of the class table */
  int width;        /* hidden width (dit: token width) */
  int depth;        /* residual blocks (dit: transformer blocks) */
  int temb_dim;     /* sinusoidal timestep features */
  /* dit only (0 for the other kinds): square images (img_channels, img_size, img_size) cut into
   * patch x patch tokens; heads attention heads */
  int img_channels, img_size, patch, heads;
  /* dit only: text 1 conditions on captions instead of class labels (docs/DESIGN.md section 5.2):
   * a text encoder of text_depth blocks of width text_width (heads heads) over token ids below vocab,
   * captions padded to max_text tokens; all 0 in class mode (and in checkpoints written before) */
  int text, vocab, text_width, text_depth, max_text;
} ModelConfig;

/* ints per sample of a model's `labels` argument: 1 (a class label) in class mode, max_text in text
 * mode (a caption's token ids, 0 for padding: labels is then (B, max_text), row-major) */
static inline int model_label_ints(const ModelConfig *c) { return c->text ? c->max_text : 1; }

typedef struct Model Model;
typedef struct ModelShard ModelShard; /* model_shard.c: stage 3's gathered buffers and requests */

/* The pass a unit is entered for: a forward only reads it; a backward also accumulates its
 * gradient (unless the model is frozen) and reduces it on leave. */
typedef enum { MODEL_FORWARD, MODEL_BACKWARD } ModelPass;

/* A model kind: what the code asks of one, an entry of the registry in model.c. Its name is what
 * ModelConfig.kind and checkpoints store (attribute "kind" of each network group). */
typedef struct {
  const char *name;
  Model *(*create)(Model *m); /* registers the tensors, allocates, sets the methods (cfg checked) */
  int hidden;     /* 1: reads num_classes, width and depth; 0: a linear map of dim alone ("head") */
  int temb;       /* 1: conditioned on t and labels, reads temb_dim */
  int images;     /* 1: reads square images: img_channels, img_size, patch, heads (needs image data) */
  int classifier; /* 1: logits out (B, num_classes), t and labels ignored */
  int default_depth, default_temb_dim; /* what training uses when its config leaves them unset */
} ModelKind;

/* The registered kind named name; NULL when there is none. */
const ModelKind *model_kind_find(const char *name);
/* The same, but an unknown name is fatal with the known kinds listed. */
const ModelKind *model_kind_get(const char *name);
/* The i-th registered kind in registry order, i from 0; NULL past the last. */
const ModelKind *model_kind_at(int i);

struct Model {
  ModelConfig cfg;
  const ModelKind *kind; /* the registry entry of cfg.kind */
  long num_params;
  long p_begin, p_end; /* the range of the flat vector params and grads store: [0, num_params) below
                          ZeRO stage 3, this rank's zero_shard at stage 3 */
  float *params; /* (p_end - p_begin) backend memory: values p_begin.. of the flat vector */
  float *grads;  /* (p_end - p_begin) backend memory, same range */
  int num_tensors;
  TensorInfo tensors[MODEL_MAX_TENSORS];
  int num_units;                         /* at least 1 */
  long unit_begin[MODEL_MAX_UNITS + 1];  /* unit u is [unit_begin[u], unit_begin[u + 1]) */
  ModelShard *shard;                     /* stage 3's state; NULL below stage 3 */
  int max_batch;
  /* 1: backward computes only the gradients into dx and dfeat, no parameter gradient (a network
   * that only passes gradients through: the reward classifier in distillation, the fake teacher
   * and the GAN head in the generator's GAN term) */
  int frozen;
  /* 1: forward keeps no activations for a backward, which is then an error (a network whose backward
   * never runs: the real teacher in distillation); the dit reuses one set of buffers for all blocks.
   * A model created with MODEL_INFERENCE has only those buffers: it is 1 for good (a forward with it
   * 0 is an error); one created without may set it and clear it again */
  int inference;
  void *impl;
  /* out (B, dim) = v_theta(x (B, dim), t (B), labels (B, model_label_ints)); B <= max_batch. In
   * text mode labels holds each sample's caption as token ids below vocab, 0 for padding (an empty
   * caption is all 0: classifier-free guidance's unconditional branch) */
  void (*forward)(Model *m, float *out, const float *x, const float *t, const int *labels, int B);
  /* adds d loss / d params into grads, and d loss / d x into dx when dx is not NULL. dout (B, dim)
   * is the gradient at the output and dfeat (B, feat_dim) at the features; either may be NULL. */
  void (*backward)(Model *m, float *dx, const float *dout, const float *dfeat, int B);
  /* (B, feat_dim) pooled hidden features of the last forward (what a GAN head reads) */
  const float *(*features)(const Model *m);
  int feat_dim;
  void (*free_impl)(Model *m);
};

/* Builds a model of cfg->kind (fatal when unknown) with zeroed parameters and room for batches up to max_batch. */
Model *model_create(const ModelConfig *cfg, int max_batch);
/* The same at ZeRO stage 3: this rank stores its zero_shard of the parameters and gradient, and
 * gathers units per pass (collective: every rank builds the same model and runs the same passes). */
Model *model_create_sharded(const ModelConfig *cfg, int max_batch);
/* Either of them by flags: MODEL_SHARDED is model_create_sharded; MODEL_INFERENCE builds a model
 * that only ever runs inference forwards (m->inference is 1 from the start), with room for one
 * block's activations instead of every block's and no backward scratch: the real teacher of a
 * distillation, a sampler's network, an evaluator (the same outputs, bit for bit, in less memory). */
enum { MODEL_SHARDED = 1, MODEL_INFERENCE = 2 };
Model *model_create_flags(const ModelConfig *cfg, int max_batch, int flags);
void model_free(Model *m);
/* Fills parameters from the Philox stream RNG_INIT keyed by seed (host-side, then uploaded): the
 * stored range only, drawing only the tensors that meet it (the same values as the whole model's). */
void model_init_params(Model *m, uint64_t seed);
void model_zero_grad(Model *m);
/* Values stored (p_end - p_begin). */
static inline long model_stored_n(const Model *m) { return m->p_end - m->p_begin; }
/* The stored values [begin, begin + n) of the flat vector (params, or grads with model_stored_grad);
 * fatal when the model does not store all of them. */
float *model_stored(const Model *m, long begin, long n);
float *model_stored_grad(const Model *m, long begin, long n);
/* Stage 3 (model_shard.c): where the parameter at flat offset off is read while its unit is
 * gathered, and where a backward adds its gradient; fatal when the unit is not gathered. */
float *model_shard_param(const Model *m, long off);
float *model_shard_grad(const Model *m, long off);
/* The parameters of the tensor at offset off, as forward and backward read them. */
static inline float *model_param(const Model *m, long off) {
  return m->shard ? model_shard_param(m, off) : m->params + off;
}
/* where a backward adds the gradient of the tensor at offset off: NULL when the model is frozen */
static inline float *model_grad(const Model *m, long off) {
  return m->frozen ? NULL : m->shard ? model_shard_grad(m, off) : m->grads + off;
}
/* Called by a builder before it registers the tensors of a new unit (a layer group in forward
 * order: mlp and dit call it per block); a model that never calls it is one unit. */
void model_begin_unit(Model *m);
/* Collective at stage 3 (every rank, same order), no-ops below: enter makes unit u's parameters
 * readable (all-gathered, the next unit of the pass prefetched), and for a backward of a trained
 * model zeroes the unit's gradient buffer; leave releases the unit, after a backward reducing its
 * gradient (summed over ranks) into this rank's range of grads. Units are entered one at a time. */
void model_unit_enter(Model *m, int u, ModelPass pass);
void model_unit_leave(Model *m, int u);
/* Stage 3: bytes per rank of the gathered buffers (two units' parameters, one unit's gradient and
 * its reduced part); 0 below stage 3. */
long model_gathered_bytes(const Model *m);
/* Stage 3: what the unit gathers and reductions of this rank moved and waited for so far
 * (mpi/dist.h: DistTraffic); NULL below stage 3. */
struct DistTraffic;
const struct DistTraffic *model_traffic(const Model *m);
/* Stage 3: whether entering a unit starts the gather of the next unit of the pass (on by default;
 * off, each unit is gathered when entered: the zero.prefetch key, to measure what the prefetch
 * hides). Results are the same either way. A no-op below stage 3 and for NULL. */
void model_set_prefetch(Model *m, int on);
/* Registers a tensor in the layout, filled as init says by model_init_params; returns its offset.
 * Used by model builders; fatal on INIT_UNSET or past MODEL_MAX_TENSORS. */
long model_add_tensor(Model *m, const char *name, int ndim, const int *shape, InitKind init);
/* the same for a matrix (rows, cols) and for a vector (n) */
long model_add_matrix(Model *m, const char *name, int rows, int cols, InitKind init);
long model_add_vector(Model *m, const char *name, int n, InitKind init);
/* Checks cfg values and that the kind exists; fatal with the field named otherwise. */
void model_config_check(const ModelConfig *cfg);
