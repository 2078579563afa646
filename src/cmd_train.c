/* cmd_train.c: `amd train`: trains one network as an MPI data-parallel job.
 *   task=teacher    the velocity network (mlp for vectors, dit for images) by rectified flow with
 *                   label dropout (docs/DESIGN.md section 3); model.text=1: a dit conditioned on the
 *                   dataset's captions (token ids per sample, caption dropout; section 5.2)
 *   task=reward     an image classifier (log p(c | x): the reward of DMDR and AMD)
 *   task=evaluator  another classifier, trained apart (other seed and size), used only by metrics
 * One step (train_step, then train_apply): each rank takes its contiguous share of the global batch
 * (prompts split by rank), draws t, noise and label dropout keyed by the global sample index,
 * backpropagates the loss with gradients pre-divided by the global batch; gradients are summed over
 * ranks; the run loop's guard checks the loss and the global gradient norm, then AdamW updates the
 * parameters (clipped; with zero=1 or 2 each rank updates its shard of the flat vector and the
 * parameters are all-gathered: mpi/zero.h; with zero=3 each rank stores only its shard and the
 * network gathers each block as it runs: src/model.h). Classifiers also measure their test accuracy at every
 * checkpoint. With ema.decay > 0 the run loop keeps an EMA of the weights (core/ema.h; each rank
 * its shard under ZeRO), saved as /teacher_ema (or /classifier_ema). The run folder, the log,
 * checkpoints, resume, signals and rollbacks are the run loop's (src/runloop.h). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "batches.h"
#include "captions.h"
#include "classifier.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "evalrun.h"
#include "flow.h"
#include "model.h"
#include "model_ckpt.h"
#include "ops.h"
#include "optim.h"
#include "runloop.h"
#include "snapshot.h"
#include "zero.h"
#include "zero_stats.h"

typedef struct {
  RunSettings rl; /* run, resume, seed, train.steps, log.every, ckpt.*, guard.*, fault.* */
  char task[CFG_STR_MAX], data[CFG_STR_MAX], test_data[CFG_STR_MAX], device[CFG_STR_MAX], precision[CFG_STR_MAX];
  int threads, cpu_ftz, cuda_graphs, zero, zero_prefetch;
  char model_kind[CFG_STR_MAX];
  int width, depth, temb_dim, patch, heads;
  int text, text_width, text_depth, vocab, max_text;
  int batch;
  double lr, lr_min;
  char schedule[CFG_STR_MAX];
  int warmup;
  double beta1, beta2, adam_eps, weight_decay, grad_clip;
  double p_uncond;
  char t_dist[CFG_STR_MAX];
  double t_mean, t_std;
  int sample_every, sample_steps;
  EvalSettings ev; /* eval.*: held-out metrics while training (teacher) */
} TrainConfig;

#define K(name, type, field, def, lo, hi, choices, help) {name, type, offsetof(TrainConfig, field), def, lo, hi, choices, help}
static const cfg_key train_keys[] = {
    K("task", CFG_CHOICE, task, "teacher", 0, 0, "teacher|reward|evaluator",
      "teacher: rectified-flow velocity network; reward, evaluator: image classifiers"),
    K("data", CFG_PATH, data, "", 0, 0, NULL, "dataset file (amd data ...); required"),
    K("test_data", CFG_PATH, test_data, "", 0, 0, NULL, "classifiers: held-out split for the test accuracy; required there"),
    RUNLOOP_RUN_KEYS(K, "runs/teacher", 3,
                     "ZeRO stage: 0 replicated optimizer; 1 Adam moments sharded over ranks; 2 also the summed "
                     "gradient; 3 also the parameters and the gradient buffer (task=teacher; each block gathered "
                     "when it runs)"),
    K("model.kind", CFG_CHOICE, model_kind, "auto", 0, 0, "auto|mlp|dit",
      "teacher architecture; auto: dit for images, mlp for vectors (classifiers are always dit blocks)"),
    K("model.width", CFG_INT, width, "256", 1, 65536, NULL, "hidden width (dit: token width)"),
    K("model.depth", CFG_INT, depth, "-1", -1, 1000, NULL, "residual blocks (dit: transformer blocks); -1: mlp 3, dit 6"),
    K("model.temb_dim", CFG_INT, temb_dim, "0", 0, 4096, NULL, "sinusoidal timestep features (even); 0: mlp 64, dit 256"),
    K("model.patch", CFG_INT, patch, "4", 1, 1024, NULL, "dit: patch size p (tokens are p x p pixels)"),
    K("model.heads", CFG_INT, heads, "4", 1, 1024, NULL, "dit: attention heads (divide the width)"),
    K("model.text", CFG_INT, text, "0", 0, 1, NULL,
      "dit: 1 conditions on the dataset's captions (amd data compose) through a text encoder and "
      "cross-attention; 0 on its class labels"),
    K("model.text_width", CFG_INT, text_width, "0", 0, 65536, NULL, "model.text=1: the text encoder's width; 0: model.width"),
    K("model.text_depth", CFG_INT, text_depth, "2", 0, 1000, NULL, "model.text=1: the text encoder's transformer blocks"),
    K("model.vocab", CFG_INT, vocab, "0", 0, 1 << 20, NULL,
      "model.text=1: token ids below this; 0: the dataset's vocabulary size (another value must equal it)"),
    K("model.max_text", CFG_INT, max_text, "0", 0, 4096, NULL,
      "model.text=1: tokens per caption; 0: the dataset's token width (another value must equal it)"),
    K("train.steps", CFG_INT, rl.steps, "4000", 1, 1000000000, NULL, "optimizer steps in total"),
    K("train.batch", CFG_INT, batch, "256", 1, 1 << 24, NULL, "global batch (split across ranks)"),
    K("optim.lr", CFG_FLOAT, lr, "1e-3", 0, 10, NULL, "peak AdamW learning rate"),
    K("optim.lr_min", CFG_FLOAT, lr_min, "1e-5", 0, 10, NULL, "final learning rate of the cosine schedule"),
    K("optim.schedule", CFG_CHOICE, schedule, "cosine", 0, 0, "constant|cosine", "learning-rate schedule after warmup"),
    K("optim.warmup", CFG_INT, warmup, "100", 0, 1000000000, NULL, "linear warmup steps"),
    K("optim.beta1", CFG_FLOAT, beta1, "0.9", 0, 0.999999, NULL, "Adam beta1"),
    K("optim.beta2", CFG_FLOAT, beta2, "0.999", 0, 0.999999999, NULL, "Adam beta2"),
    K("optim.eps", CFG_FLOAT, adam_eps, "1e-8", 0, 1, NULL, "Adam epsilon"),
    K("optim.weight_decay", CFG_FLOAT, weight_decay, "0", 0, 1, NULL, "decoupled weight decay"),
    K("optim.grad_clip", CFG_FLOAT, grad_clip, "1.0", 0, 1e9, NULL, "global gradient-norm clip; 0 = off"),
    K("flow.p_uncond", CFG_FLOAT, p_uncond, "0.1", 0, 1, NULL, "label dropout probability (for classifier-free guidance)"),
    K("flow.t_dist", CFG_CHOICE, t_dist, "logit_normal", 0, 0, "uniform|logit_normal", "training timestep distribution"),
    K("flow.t_mean", CFG_FLOAT, t_mean, "0", -10, 10, NULL, "logit-normal location"),
    K("flow.t_std", CFG_FLOAT, t_std, "1", 1e-3, 10, NULL, "logit-normal scale"),
    RUNLOOP_EMA_KEYS(K, "network"),
    K("log.every", CFG_INT, rl.log_every, "100", 1, 1000000000, NULL, "steps between status lines and log flushes"),
    K("sample.every", CFG_INT, sample_every, "0", 0, 1000000000, NULL,
      "teacher: steps between pictures of samples, <run>/samples_<step>.png; 0 = none"),
    K("sample.steps", CFG_INT, sample_steps, "16", 1, 1000, NULL, "teacher: Euler steps of those samples"),
    EVALRUN_KEYS(K),
    K("eval.steps", CFG_INT, ev.steps, "50", 1, 100000, NULL, "teacher: Euler steps of the evaluation's samples (no guidance)"),
    RUNLOOP_KEYS(K, "1000",
                 "divergence: a loss above spike x its mean over the previous guard.window steps; 0 = only NaN/Inf",
                 "testing: inject a NaN gradient at this step (once)"),
    CFG_END};
#undef K

/* the /train columns: the teacher's, the classifiers' (two more), then the step's communication */
static const char *const teacher_cols[] = {"step", "loss", "grad_norm", "lr", "samples_per_s", "time",
                                           "comm_bytes", "comm_s"};
static const char *const classifier_cols[] = {"step", "loss", "grad_norm", "lr", "samples_per_s", "time", "accuracy",
                                              "test_accuracy", "comm_bytes", "comm_s"};
enum {
  NCOLS_TEACHER = sizeof teacher_cols / sizeof teacher_cols[0],
  NCOLS = sizeof classifier_cols / sizeof classifier_cols[0]
};

/* The architecture from the keys and the data: teacher mlp or dit, classifiers on dit blocks. */
static void model_config_for(const TrainConfig *c, const Dataset *d, const CaptionSet *caps, int classifier,
                             ModelConfig *mc) {
  int images = d->ndim == 3;
  if (c->text && (classifier || (strcmp(c->model_kind, "auto") != 0 && strcmp(c->model_kind, "dit") != 0)))
    amd_usage_error("config key 'model.text' = 1 is for the teacher's dit (task=teacher, model.kind=dit or auto), not "
                    "%s", classifier ? c->task : c->model_kind);
  const char *kind = classifier ? "classifier" : strcmp(c->model_kind, "auto") != 0 ? c->model_kind : images ? "dit" : "mlp";
  const ModelKind *k = model_kind_get(kind);
  *mc = (ModelConfig){.dim = d->dim, .num_classes = d->num_classes, .width = c->width,
                      .depth = c->depth >= 0 ? c->depth : k->default_depth,
                      .temb_dim = !k->temb ? 0 : c->temb_dim ? c->temb_dim : k->default_temb_dim};
  snprintf(mc->kind, sizeof mc->kind, "%.15s", k->name);
  if (!k->images) return;
  if (!images)
    amd_usage_error("%s needs image data (N, C, H, W); '%s' holds vectors of %d (use model.kind=mlp)",
                    classifier ? "a classifier" : "model.kind=dit", c->data, d->dim);
  if (d->shape[1] != d->shape[2])
    amd_usage_error("dataset '%s': images are %d x %d; the dit needs square images", c->data, d->shape[1], d->shape[2]);
  if (d->shape[1] % c->patch != 0)
    amd_usage_error("config key 'model.patch' = %d does not divide the image size %d", c->patch, d->shape[1]);
  if (c->width % c->heads != 0 || c->width % 4 != 0)
    amd_usage_error("config key 'model.width' = %d must be a multiple of 4 and of model.heads = %d", c->width, c->heads);
  mc->img_channels = d->shape[0], mc->img_size = d->shape[1], mc->patch = c->patch, mc->heads = c->heads;
  if (!c->text) return;
  /* text mode: the vocabulary and the token width are the dataset's (docs/DESIGN.md section 5.2) */
  if (!caps)
    amd_usage_error("config key 'model.text' = 1 needs a captioned dataset (amd data compose); '%s' holds no "
                    "/captions (use model.text=0 for its class labels)", c->data);
  if (c->vocab && c->vocab != caps->vocab_size)
    amd_usage_error("config key 'model.vocab' = %d disagrees with the vocabulary of '%s' (%d words; use 0 to take it)",
                    c->vocab, c->data, caps->vocab_size);
  if (c->max_text && c->max_text != caps->max_tokens)
    amd_usage_error("config key 'model.max_text' = %d disagrees with the captions of '%s' (%d tokens each; use 0 to "
                    "take it)", c->max_text, c->data, caps->max_tokens);
  mc->text = 1, mc->vocab = caps->vocab_size, mc->max_text = caps->max_tokens;
  mc->text_width = c->text_width ? c->text_width : c->width, mc->text_depth = c->text_depth;
  if (mc->text_width % 2 != 0 || mc->text_width % c->heads != 0)
    amd_usage_error("config key 'model.text_width' = %d must be even and a multiple of model.heads = %d",
                    mc->text_width, c->heads);
}

/* What a training step works with: the network, its optimizer, the data and this rank's buffers. */
typedef struct {
  const TrainConfig *c;
  int classifier;
  Model *model;
  ZeroOpt *zo;
  Classifier *cls;            /* classifiers: the model, wrapped */
  FlowBatch *fb;              /* teacher: the flow loss's buffers */
  const Dataset *test;
  Batches batches;            /* this rank's share of each step's batch */
  AdamWConfig oc;
  FlowConfig fc;
  /* what a step reads back, in one copy (one wait for the device): this rank's gradient sum of
   * squares (a double, first for alignment), then the flow loss of each local sample */
  size_t res_bytes;
  double *res_dev, *res_h;
  double loss, accuracy, grad_norm, test_acc; /* of the last step */
  double loss_acc, acc_acc;   /* sums over the log interval */
  Snapshot *snap;             /* teacher, sample.every: rank 0's pictures */
  Ema *ema;                   /* the EMA of the weights (NULL: ema.decay = 0); whole: zero_gather_parts */
  EvalRun *eval;              /* teacher, eval.every: held-out metrics */
  ZeroStats stats;            /* communication per step, memory per rank (the log's comm_* and /memory) */
} Train;

static void train_reset(void *ctx, CkptState *st) {
  (void)st; /* a training checkpoint holds nothing of the task's */
  model_init_params(((Train *)ctx)->model, (uint64_t)((Train *)ctx)->c->rl.seed);
}

static void train_set_lr_scale(void *ctx, double scale) {
  Train *T = ctx;
  T->oc.lr = T->c->lr * scale, T->oc.lr_min = T->c->lr_min * scale;
}

static int train_step(void *ctx, long step, const RunClock *clk, double *losses) {
  Train *T = ctx;
  const TrainConfig *c = T->c;
  Batches *b = &T->batches;
  int local = b->local;
  zero_stats_step_begin(&T->stats);
  batches_get(b, step);
  model_zero_grad(T->model);
  double loss_sum = 0;
  T->accuracy = NAN;
  if (T->classifier) {
    int right;
    loss_sum = classifier_train_batch(T->cls, b->x, b->labels, local, c->batch, &right);
    T->accuracy = dist_allreduce_sum_f64(right) / c->batch;
  } else {
    flow_train_batch_into((float *)(T->res_dev + 1), T->model, T->fb, b->x, b->labels, NULL, local, (uint32_t)b->begin,
                          (uint32_t)step, (uint64_t)c->rl.seed, &T->fc, c->batch);
  }
  if (clk->inject_nan && model_stored_n(T->model) > 0) ops->fill(T->model->grads, NAN, 1);
  zero_reduce_grads_begin(T->zo, T->model->grads, T->res_dev);
  ops->to_host(T->res_h, T->res_dev, T->classifier ? sizeof(double) : T->res_bytes);
  if (!T->classifier)
    for (int i = 0; i < local; i++) loss_sum += ((const float *)(T->res_h + 1))[i];
  T->grad_norm = zero_reduce_grads_end(T->zo, T->model->grads, T->res_h[0]);
  T->loss = losses[0] = dist_allreduce_sum_f64(loss_sum) / c->batch;
  return !isfinite(T->grad_norm);
}

static void train_apply(void *ctx, long step) {
  Train *T = ctx;
  zero_update(T->zo, T->model->params, T->model->grads, &T->oc, step, T->grad_norm);
}

static void train_row(void *ctx, long step, const RunClock *clk, double *row) {
  Train *T = ctx;
  if (T->classifier && clk->ckpt_now) {
    T->test_acc = classifier_test_accuracy(T->cls, T->test);
    amd_log("test accuracy %.4f on %ld samples of %s\n", T->test_acc, T->test->n, T->c->test_data);
  }
  if (clk->interval_steps == 1) T->loss_acc = T->acc_acc = 0;
  T->loss_acc += T->loss, T->acc_acc += T->accuracy;
  double r[NCOLS] = {row[0], T->loss, T->grad_norm, adamw_lr(&T->oc, step), clk->samples_per_s, clk->elapsed,
                     T->accuracy, clk->ckpt_now ? T->test_acc : NAN};
  int n = T->classifier ? NCOLS - 2 : NCOLS_TEACHER - 2;
  memcpy(row, r, sizeof(double) * (size_t)n);
  zero_stats_step_end(&T->stats, row + n);
}

static void train_summary(void *ctx, double wall) { zero_stats_summary(&((Train *)ctx)->stats, wall); }

static void train_snapshot(void *ctx, long step) { snapshot_take(((Train *)ctx)->snap, step); }

/* The raw weights, then the EMA's when the run keeps one. */
static void train_eval(void *ctx, long step, TrainLog *table) {
  Train *T = ctx;
  evalrun_measure_weights(T->eval, T->model, T->ema, step, table);
}

static void train_status(void *ctx, long step, const RunClock *clk, const double *row) {
  Train *T = ctx;
  char acc[64] = "";
  double n = (double)clk->interval_steps;
  if (T->classifier) snprintf(acc, sizeof acc, ", accuracy %.4f", T->acc_acc / n);
  amd_log("step %6ld/%d | avg %ld: loss %.5f%s | last: grad %.4f, lr %.2e | %8.0f samples/s | elapsed %s | ETA %s\n",
          step, T->c->rl.steps, clk->interval_steps, T->loss_acc / n, acc, row[2], row[3], row[4], clk->elapsed_hms,
          clk->eta_hms);
}

int cmd_train(int argc, char **argv) {
  TrainConfig c;
  cfg_parse_args(train_keys, &c, argc, argv, "train",
                 "Trains a network: task=teacher (rectified-flow teacher), reward or evaluator (image classifiers).");
  if (!c.data[0]) amd_usage_error("config key 'data' is required: the dataset file to train on (amd data toy2d)");
  runloop_check_settings(&c.rl);
  Train T = {.c = &c, .classifier = strcmp(c.task, "teacher") != 0, .test_acc = NAN};
  int threads = backend_init(c.device, c.precision, c.threads);
  backend_set_ftz(c.cpu_ftz);
  backend_set_graphs(c.cuda_graphs);
  runloop_check_split("train.batch", c.batch);
  if (T.classifier && !c.test_data[0])
    amd_usage_error("task=%s needs test_data=: the held-out split its test accuracy is measured on", c.task);
  Dataset data, test = {0};
  dataset_read(c.data, "amd-dataset", &data);
  CaptionSet caps = {0};
  int captioned = captions_read(c.data, data.n, data.num_classes, &caps);
  ModelConfig mc;
  model_config_for(&c, &data, captioned ? &caps : NULL, T.classifier, &mc);
  if (captioned && !mc.text)
    amd_log("'%s' is captioned; model.text=0 trains on its class labels (/labels: the first named item's class)\n",
            c.data);
  if (T.classifier) dataset_read_split(c.test_data, &test, "test_data", &data, c.data);
  if (T.classifier && c.sample_every > 0)
    amd_usage_error("config key 'sample.every' = %d: pictures of samples are for task=teacher, not %s", c.sample_every,
                    c.task);
  if (c.sample_every > 0) snapshot_check(&data, "sample.every");
  if (c.zero == 3 && T.classifier)
    amd_usage_error("config key 'zero' = 3 is for task=teacher in this version, not %s (use zero=2)", c.task);
  if (c.zero == 3 && c.sample_every > 0)
    amd_usage_error("config key 'sample.every' = %d needs the whole network on rank 0, which zero=3 does not keep "
                    "(use eval.every, or zero=2)", c.sample_every);
  if (T.classifier && c.ev.every > 0)
    amd_usage_error("config key 'eval.every' = %d: held-out sample metrics are for task=teacher, not %s (a classifier "
                    "logs its test accuracy at every checkpoint)", c.ev.every, c.task);
  T.eval = evalrun_create(&c.ev, &mc, "euler", c.ev.steps, &data, c.data, (uint64_t)c.rl.seed);
  runloop_prepare(&c.rl);

  batches_init(&T.batches, &data, c.batch, (uint64_t)c.rl.seed);
  if (mc.text) batches_use_captions(&T.batches, caps.tokens, mc.max_text);
  int local = T.batches.local;
  T.test = &test;
  T.model = c.zero == 3 ? model_create_sharded(&mc, local) : model_create(&mc, local);
  T.zo = zero_create(T.model->num_params, c.zero);
  model_set_prefetch(T.model, c.zero_prefetch);
  T.fb = T.classifier ? NULL : flow_batch_create(local, mc.dim, model_label_ints(&mc));
  T.cls = T.classifier ? classifier_wrap(T.model) : NULL;
  T.oc = (AdamWConfig){.lr = c.lr, .lr_min = c.lr_min, .warmup = c.warmup, .cosine = strcmp(c.schedule, "cosine") == 0,
                       .total_steps = c.rl.steps, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.adam_eps,
                       .weight_decay = c.weight_decay, .grad_clip = c.grad_clip};
  T.fc = (FlowConfig){.logit_normal = strcmp(c.t_dist, "logit_normal") == 0, .t_mean = c.t_mean, .t_std = c.t_std,
                      .p_uncond = c.p_uncond};
  if (c.sample_every > 0)
    T.snap = snapshot_create(T.model, "euler", c.sample_steps, &data, c.rl.run, (uint64_t)c.rl.seed, "sample.every");
  if (mc.text) snapshot_use_captions(T.snap, caps.tokens, caps.text, caps.n, mc.max_text);
  T.res_bytes = sizeof(double) + sizeof(float) * (size_t)local;
  T.res_dev = ops->alloc(T.res_bytes), T.res_h = mallocCheck(T.res_bytes);
  cfg_print_table(train_keys, &c, "amd train");
  amd_log("ranks %d x %d threads, backend %s, model %s: %ld parameters, data %s: %ld samples of %d\n", dist_size(),
          threads, ops->name, mc.kind, T.model->num_params, c.data, data.n, data.dim);
  zero_log_memory(T.zo, T.classifier ? "classifier" : "teacher", model_gathered_bytes(T.model));
  amd_log("zero=%d: a step moves %ld bytes (sent plus received by rank 0; the cost model, DESIGN.md 7.2.1)\n",
          c.zero, zero_step_bytes(T.zo));
  evalrun_print(T.eval);

  T.ema = c.rl.ema_decay > 0 ? ema_create_range(T.zo->opt->begin, T.zo->opt->n) : NULL;
  if (T.ema) ema_log_memory(T.ema, T.classifier ? "classifier" : "teacher");
  ZeroNet znet = {T.classifier ? "classifier" : "teacher", T.model, T.zo, T.ema != NULL};
  zero_stats_init(&T.stats, &znet, 1, c.zero);
  CkptNet nets[] = {{T.classifier ? "classifier" : "teacher", T.model, T.zo->opt, T.ema}};
  char fingerprint[DATASET_FINGERPRINT_MAX];
  dataset_fingerprint(&data, fingerprint, sizeof fingerprint);
  static const char *const loss_names[] = {"loss"};
  RunTask task = {.what = "training", .data_path = c.data, .data_fingerprint = fingerprint, .keys = train_keys,
                  .config = &c, .nets = nets, .nnets = 1,
                  .samples_per_step = c.batch, .cols = T.classifier ? classifier_cols : teacher_cols,
                  .ncols = T.classifier ? NCOLS : NCOLS_TEACHER,
                  .loss_names = loss_names, .nlosses = 1, .ctx = &T, .reset = train_reset,
                  .set_lr_scale = train_set_lr_scale, .step = train_step, .apply = train_apply, .row = train_row,
                  .status = train_status, .snapshot_every = c.sample_every, .snapshot = train_snapshot,
                  .eval_every = T.eval ? c.ev.every : 0, .eval = train_eval, .memory_cols = T.stats.memory_cols,
                  .nmemory = T.stats.nmemory, .memory_row = T.stats.memory_row, .summary = train_summary};
  if (T.eval) task.neval = evalrun_cols(T.eval, &task.eval_cols);
  int status = runloop_run(&c.rl, &task);

  snapshot_free(T.snap);
  evalrun_free(T.eval);
  ops->free(T.res_dev), free(T.res_h), batches_free(&T.batches);
  if (T.fb) flow_batch_free(T.fb);
  zero_free(T.zo);
  ema_free(T.ema);
  if (T.cls) classifier_free(T.cls); /* frees the model too */
  else model_free(T.model);
  if (captioned) captions_free(&caps);
  dataset_free(&data);
  if (T.classifier) dataset_free(&test);
  return status;
}
