/* cmd_train.c: `amd train`: trains one network as an MPI data-parallel job.
 *   task=teacher    the velocity network (mlp for vectors, dit for images) by rectified flow with
 *                   label dropout (DESIGN section 3)
 *   task=reward     an image classifier (log p(c | x): the reward of DMDR and AMD)
 *   task=evaluator  another classifier, trained apart (other seed and size), used only by metrics
 * One step: each rank takes its contiguous share of the global batch (prompts split by rank), draws
 * t, noise and label dropout keyed by the global sample index, backpropagates the loss with gradients
 * pre-divided by the global batch; gradients are summed over ranks; the global gradient norm is
 * checked for NaN/Inf, clipped, and AdamW updates the parameters (with zero=1 or 2 each rank updates
 * its shard of the flat vector and the parameters are all-gathered: mpi/zero.h).
 * Rank 0 prints a status line and appends to the HDF5 log every log interval (with every rank's
 * compute / communication / I/O seconds in /timing) and writes a checkpoint every ckpt.every steps
 * (classifiers also measure their test accuracy there); resume=1 continues from the newest
 * checkpoint of the run. Run control (src/runctl.h): SIGTERM or SIGUSR1 stops the run at the next
 * step with a checkpoint and exit status AMD_EXIT_REQUEUE; a divergence rolls back to the newest
 * checkpoint with a lower learning rate, guard.max_rollbacks times at most. */
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ckpt.h"
#include "classifier.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "flow.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "philox.h"
#include "runctl.h"
#include "timing.h"
#include "trainlog.h"
#include "zero.h"

typedef struct {
  char task[CFG_STR_MAX], data[CFG_STR_MAX], test_data[CFG_STR_MAX], run[CFG_STR_MAX], device[CFG_STR_MAX];
  int resume, seed, threads, zero;
  char model_kind[CFG_STR_MAX];
  int width, depth, temb_dim, patch, heads;
  int steps, batch;
  double lr, lr_min;
  char schedule[CFG_STR_MAX];
  int warmup;
  double beta1, beta2, adam_eps, weight_decay, grad_clip;
  double p_uncond;
  char t_dist[CFG_STR_MAX];
  double t_mean, t_std;
  int log_every, ckpt_every, ckpt_keep;
  double guard_spike, guard_lr_factor;
  int guard_window, guard_max_rollbacks;
  int nan_step, exit_step, signal_step, slow_ckpt_ms, slow_log_ms;
} TrainConfig;

#define K(name, type, field, def, lo, hi, choices, help) {name, type, offsetof(TrainConfig, field), def, lo, hi, choices, help}
static const cfg_key train_keys[] = {
    K("task", CFG_CHOICE, task, "teacher", 0, 0, "teacher|reward|evaluator",
      "teacher: rectified-flow velocity network; reward, evaluator: image classifiers"),
    K("data", CFG_STR, data, "", 0, 0, NULL, "dataset file (amd data ...); required"),
    K("test_data", CFG_STR, test_data, "", 0, 0, NULL, "classifiers: held-out split for the test accuracy; required there"),
    K("run", CFG_STR, run, "runs/teacher", 0, 0, NULL, "run folder: log.h5 and ckpt_<step>.h5 go here"),
    K("resume", CFG_BOOL, resume, "false", 0, 0, NULL, "continue from the newest checkpoint in the run folder"),
    K("device", CFG_CHOICE, device, "auto", 0, 0, "auto|cpu|cuda", "backend: auto uses CUDA when present"),
    K("seed", CFG_INT, seed, "0", 0, 2147483647, NULL, "Philox seed of every draw (init, data order, t, noise)"),
    K("threads", CFG_INT, threads, "0", 0, 1024, NULL, "OpenMP threads per rank; 0 = node cores / ranks"),
    K("zero", CFG_INT, zero, "0", 0, 2, NULL,
      "ZeRO stage: 0 replicated optimizer; 1 Adam moments sharded over ranks; 2 also the summed gradient"),
    K("model.kind", CFG_CHOICE, model_kind, "auto", 0, 0, "auto|mlp|dit",
      "teacher architecture; auto: dit for images, mlp for vectors (classifiers are always dit blocks)"),
    K("model.width", CFG_INT, width, "256", 1, 65536, NULL, "hidden width (dit: token width)"),
    K("model.depth", CFG_INT, depth, "-1", -1, 1000, NULL, "residual blocks (dit: transformer blocks); -1: mlp 3, dit 6"),
    K("model.temb_dim", CFG_INT, temb_dim, "0", 0, 4096, NULL, "sinusoidal timestep features (even); 0: mlp 64, dit 256"),
    K("model.patch", CFG_INT, patch, "4", 1, 1024, NULL, "dit: patch size p (tokens are p x p pixels)"),
    K("model.heads", CFG_INT, heads, "4", 1, 1024, NULL, "dit: attention heads (divide the width)"),
    K("train.steps", CFG_INT, steps, "4000", 1, 1000000000, NULL, "optimizer steps in total"),
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
    K("log.every", CFG_INT, log_every, "100", 1, 1000000000, NULL, "steps between status lines and log flushes"),
    K("ckpt.every", CFG_INT, ckpt_every, "1000", 1, 1000000000, NULL, "steps between checkpoints (and at the end)"),
    K("ckpt.keep", CFG_INT, ckpt_keep, "3", 1, 1000000, NULL, "checkpoints kept in the run folder"),
    RUNCTL_KEYS(K, "divergence: a loss above spike x its mean over the previous guard.window steps; 0 = only NaN/Inf",
                "testing: inject a NaN gradient at this step (once)"),
    CFG_END};
#undef K

static const char *const log_cols[] = {"step", "loss", "grad_norm", "lr", "samples_per_s", "time", "accuracy", "test_accuracy"};
enum { NCOLS = sizeof log_cols / sizeof log_cols[0], NCOLS_TEACHER = 6 };

/* Data order: each epoch is a Philox-keyed Fisher-Yates permutation that every rank computes alike,
 * so sample g of the run is the same data point at any rank count and after a resume. */
typedef struct {
  long n, epoch;
  long *perm;
  uint64_t seed;
} EpochOrder;

static long epoch_index(EpochOrder *o, long g) {
  long epoch = g / o->n;
  if (epoch != o->epoch) {
    for (long i = 0; i < o->n; i++) o->perm[i] = i;
    for (long i = o->n - 1; i > 0; i--) {
      uint32_t w[4];
      rng_u32x4(o->seed, RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)i, 0, w);
      uint64_t r = ((uint64_t)w[0] << 32) | w[1];
      long j = (long)(r % (uint64_t)(i + 1));
      long tmp = o->perm[i];
      o->perm[i] = o->perm[j], o->perm[j] = tmp;
    }
    o->epoch = epoch;
  }
  return o->perm[g % o->n];
}

static void format_eta(char *buf, size_t n, double seconds) {
  long s = (long)(seconds + 0.5);
  snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

/* The architecture from the keys and the data: teacher mlp or dit, classifiers on dit blocks. */
static void model_config_for(const TrainConfig *c, const Dataset *d, int classifier, ModelConfig *mc) {
  int images = d->ndim == 3;
  const char *kind = classifier ? "classifier" : strcmp(c->model_kind, "auto") != 0 ? c->model_kind : images ? "dit" : "mlp";
  int dit = strcmp(kind, "mlp") != 0;
  *mc = (ModelConfig){.dim = d->dim, .num_classes = d->num_classes, .width = c->width,
                      .depth = c->depth >= 0 ? c->depth : dit ? 6 : 3, .temb_dim = c->temb_dim ? c->temb_dim : dit ? 256 : 64};
  snprintf(mc->kind, sizeof mc->kind, "%.15s", kind);
  if (!dit) return;
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
  if (classifier) mc->temb_dim = 0;
}

static void save_checkpoint(const TrainConfig *c, const CkptState *st, const CkptNet *nets, const char *config_text) {
  double t0 = amd_time();
  ckpt_save(c->run, st, nets, 1, config_text, c->data, c->ckpt_keep);
  timing_add(TIMING_IO, amd_time() - t0);
  amd_log("checkpoint %s/ckpt_%08ld.h5\n", c->run, st->step);
}

/* test accuracy of a classifier on the held-out split, the samples split across ranks */
static double test_accuracy(Classifier *cls, const Dataset *test) {
  long i0, i1;
  dist_split(test->n, &i0, &i1);
  double right = (double)classifier_count_correct(cls, test->x + (size_t)i0 * test->dim, test->labels + i0, i1 - i0);
  return dist_allreduce_sum_f64(right) / (double)test->n;
}

int cmd_train(int argc, char **argv) {
  TrainConfig c;
  cfg_parse_args(train_keys, &c, argc, argv, "train",
                 "Trains a network: task=teacher (rectified-flow teacher), reward or evaluator (image classifiers).");
  if (!c.data[0]) amd_usage_error("config key 'data' is required: the dataset file to train on (amd data toy2d)");
  runctl_set_fault_pause(RUNCTL_FAULT_CKPT, c.slow_ckpt_ms);
  runctl_set_fault_pause(RUNCTL_FAULT_LOG, c.slow_log_ms);
  int threads = backend_init(c.device, c.threads);
  int rank = dist_rank(), size = dist_size();
  if (c.batch < size)
    amd_usage_error("config key 'train.batch' = %d is smaller than the rank count %d: every rank needs a prompt", c.batch, size);

  int classifier = strcmp(c.task, "teacher") != 0;
  if (classifier && !c.test_data[0])
    amd_usage_error("task=%s needs test_data=: the held-out split its test accuracy is measured on", c.task);
  Dataset data, test = {0};
  dataset_read(c.data, "amd-dataset", &data);
  ModelConfig mc;
  model_config_for(&c, &data, classifier, &mc);
  if (classifier) {
    dataset_read(c.test_data, "amd-dataset", &test);
    if (test.dim != data.dim || test.num_classes != data.num_classes)
      amd_usage_error("test_data '%s' (dim %d, %d classes) does not match data '%s' (dim %d, %d classes)", c.test_data,
                      test.dim, test.num_classes, c.data, data.dim, data.num_classes);
  }

  char log_path[4200];
  snprintf(log_path, sizeof log_path, "%s/log.h5", c.run);
  if (rank == 0) {
    if (!c.resume) ckpt_refuse_existing_run(c.run, log_path);
    amd_mkdirs(c.run);
  }
  MPI_Barrier(MPI_COMM_WORLD);

  long b0, b1;
  dist_split(c.batch, &b0, &b1);
  int local = (int)(b1 - b0);
  Model *model = model_create(&mc, local);
  ZeroOpt *zo = zero_create(model->num_params, c.zero);
  FlowBatch *fb = classifier ? NULL : flow_batch_create(local, mc.dim);
  Classifier *cls = classifier ? classifier_wrap(model) : NULL;
  CkptState st = {.seed = (uint64_t)c.seed};
  CkptNet nets[] = {{classifier ? "classifier" : "teacher", model, zo->opt}};
  char *config_text = cfg_to_text(train_keys, &c);

  char ckpt_path[4200];
  long resume_step = c.resume ? ckpt_latest(c.run, ckpt_path, sizeof ckpt_path) : -1;
  if (resume_step >= 0) {
    ckpt_load(ckpt_path, &st, nets, 1);
    if (st.seed != (uint64_t)c.seed)
      amd_usage_error("resume: checkpoint '%s' was trained with seed %llu but seed = %d", ckpt_path,
                      (unsigned long long)st.seed, c.seed);
    amd_log("resuming from %s (step %ld)\n", ckpt_path, st.step);
  } else {
    if (c.resume) amd_log("resume=1 but '%s' holds no checkpoint: starting a new run\n", c.run);
    model_init_params(model, (uint64_t)c.seed);
  }

  cfg_print_table(train_keys, &c, "amd train");
  amd_log("ranks %d x %d threads, backend %s, model %s: %ld parameters, data %s: %ld samples of %d\n", size,
          threads, ops->name, mc.kind, model->num_params, c.data, data.n, data.dim);
  zero_log_memory(zo, nets[0].name);

  TrainLog log, timing;
  if (resume_step < 0 || !amd_file_exists(log_path)) trainlog_create(log_path, config_text);
  trainlog_open(&log, log_path, "train", log_cols, classifier ? NCOLS : NCOLS_TEACHER, resume_step >= 0 ? st.step : -1);
  trainlog_open(&timing, log_path, "timing", timing_cols, TIMING_NCOLS, resume_step >= 0 ? st.step : -1);
  if (resume_step >= 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "resume from step %ld at %d ranks", st.step, size);
    trainlog_event(&log, st.step, msg);
  }

  Guard guard;
  guard_init(&guard, c.guard_spike, c.guard_window, c.guard_max_rollbacks, c.guard_lr_factor,
             st.counters[RUNCTL_COUNTER_ROLLBACKS]);
  AdamWConfig oc = {.lr = c.lr * guard_lr_scale(&guard), .lr_min = c.lr_min * guard_lr_scale(&guard),
                    .warmup = c.warmup, .cosine = strcmp(c.schedule, "cosine") == 0, .total_steps = c.steps,
                    .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.adam_eps, .weight_decay = c.weight_decay,
                    .grad_clip = c.grad_clip};
  if (guard.rollbacks > 0)
    amd_log("learning rate x %g after %ld rollbacks (guard.lr_factor %g)\n", guard_lr_scale(&guard), guard.rollbacks,
            c.guard_lr_factor);
  FlowConfig fc = {.logit_normal = strcmp(c.t_dist, "logit_normal") == 0, .t_mean = c.t_mean, .t_std = c.t_std,
                   .p_uncond = c.p_uncond};
  EpochOrder order = {.n = data.n, .epoch = -1, .perm = mallocCheck(sizeof(long) * (size_t)data.n), .seed = (uint64_t)c.seed};
  float *xb = mallocCheck(sizeof(float) * (size_t)local * mc.dim);
  float *xb_dev = ops->alloc(sizeof(float) * (size_t)local * mc.dim);
  int *lb = mallocCheck(sizeof(int) * (size_t)local);
  /* what a step reads back, in one copy (one wait for the device): this rank's gradient sum of
   * squares (a double, first for alignment), then the flow loss of each local sample */
  size_t res_bytes = sizeof(double) + sizeof(float) * (size_t)local;
  double *res_dev = ops->alloc(res_bytes), *res_h = mallocCheck(res_bytes);

  double t_start = amd_time(), t_last = t_start, t_eta = t_start, loss_acc = 0, acc_acc = 0, test_acc = NAN;
  long steps_acc = 0, eta_step = st.step, last_ckpt = resume_step >= 0 ? st.step : -1;
  int status = 0, nan_done = 0, signal_done = 0;
  timing_start();
  while (st.step < c.steps) {
    long step = st.step;
    if (step == c.signal_step && rank == size - 1 && !signal_done) signal_done = 1, raise(SIGUSR1);
    int sig = runctl_stop_agreed();
    if (sig) {
      runctl_note_stop(&log, sig, step);
      trainlog_flush(&timing);
      if (last_ckpt != step) save_checkpoint(&c, &st, nets, config_text);
      status = AMD_EXIT_REQUEUE;
      break;
    }
    if (step == c.exit_step) amd_fatal("fault.exit_step: simulated crash at step %ld", step);
    for (int i = 0; i < local; i++) {
      long idx = epoch_index(&order, step * c.batch + b0 + i);
      memcpy(xb + (size_t)i * mc.dim, data.x + (size_t)idx * mc.dim, sizeof(float) * (size_t)mc.dim);
      lb[i] = data.labels[idx];
    }
    ops->to_device(xb_dev, xb, sizeof(float) * (size_t)local * mc.dim);
    model_zero_grad(model);
    double loss_sum = 0, accuracy = NAN;
    if (classifier) {
      int right;
      loss_sum = classifier_train_batch(cls, xb_dev, lb, local, c.batch, &right);
      accuracy = dist_allreduce_sum_f64(right) / c.batch;
    } else {
      flow_train_batch_into((float *)(res_dev + 1), model, fb, xb_dev, lb, NULL, local, (uint32_t)b0, (uint32_t)step,
                            st.seed, &fc, c.batch);
    }
    if (step == c.nan_step && !nan_done) nan_done = 1, ops->fill(model->grads, NAN, 1);
    zero_reduce_grads_begin(zo, model->grads, res_dev);
    ops->to_host(res_h, res_dev, classifier ? sizeof(double) : res_bytes);
    if (!classifier)
      for (int i = 0; i < local; i++) loss_sum += ((const float *)(res_h + 1))[i];
    double grad_norm = zero_reduce_grads_end(zo, model->grads, res_h[0]);
    double loss = dist_allreduce_sum_f64(loss_sum) / c.batch;
    static const char *const guard_names[] = {"loss"};
    char why[512];
    if (guard_check(&guard, &loss, guard_names, 1, isfinite(grad_norm), why, sizeof why)) {
      char target[4200];
      int r = guard_rollback(&guard, &log, c.run, step, "training", why, target, sizeof target);
      if (r < 0) {
        status = AMD_EXIT_DIVERGED;
        break;
      }
      if (r > 0) {
        ckpt_load(target, &st, nets, 1);
      } else { /* no checkpoint yet: the initial state */
        model_init_params(model, (uint64_t)c.seed);
        ops->fill(zo->opt->m, 0.0f, zo->opt->n), ops->fill(zo->opt->v, 0.0f, zo->opt->n);
        st = (CkptState){.seed = (uint64_t)c.seed};
      }
      st.counters[RUNCTL_COUNTER_ROLLBACKS] = guard.rollbacks;
      oc.lr = c.lr * guard_lr_scale(&guard), oc.lr_min = c.lr_min * guard_lr_scale(&guard);
      trainlog_rewind(&log, st.step);
      trainlog_rewind(&timing, st.step);
      /* the rollback target again, now counting this rollback: a resume keeps the backoff */
      save_checkpoint(&c, &st, nets, config_text);
      last_ckpt = st.step;
      loss_acc = 0, acc_acc = 0, steps_acc = 0, eta_step = st.step, t_last = t_eta = amd_time();
      continue;
    }
    zero_update(zo, model->params, model->grads, &oc, step, grad_norm);
    st.step = step + 1;
    st.data_cursor = st.step * (long)c.batch;

    int ckpt_now = st.step % c.ckpt_every == 0 || st.step == c.steps;
    if (classifier && ckpt_now) test_acc = test_accuracy(cls, &test);
    double now = amd_time();
    loss_acc += loss, acc_acc += accuracy, steps_acc++;
    double row[NCOLS] = {(double)st.step, loss, grad_norm, adamw_lr(&oc, step), 0.0, now - t_start, accuracy,
                         ckpt_now ? test_acc : NAN};
    int log_now = st.step % c.log_every == 0 || st.step == c.steps;
    if (log_now) row[4] = (double)steps_acc * c.batch / (now - t_last + 1e-12);
    trainlog_append(&log, row);
    if (log_now) {
      trainlog_flush(&log);
      timing_log(&timing, st.step);
      trainlog_flush(&timing);
      char eta[32];
      format_eta(eta, sizeof eta, (now - t_eta) / (double)(st.step - eta_step) * (double)(c.steps - st.step));
      char acc[64] = "";
      if (classifier) snprintf(acc, sizeof acc, " | accuracy %.4f", acc_acc / steps_acc);
      amd_log("step %6ld/%d | loss %.5f%s | grad %.4f | lr %.2e | %8.0f samples/s | ETA %s\n", st.step, c.steps,
              loss_acc / steps_acc, acc, grad_norm, adamw_lr(&oc, step), row[4], eta);
      loss_acc = 0, acc_acc = 0, steps_acc = 0, t_last = now;
    }
    if (ckpt_now) {
      if (classifier) amd_log("test accuracy %.4f on %ld samples of %s\n", test_acc, test.n, c.test_data);
      trainlog_flush(&log); /* the log holds every row up to a checkpoint: a resumed run's log has no gap */
      trainlog_flush(&timing);
      save_checkpoint(&c, &st, nets, config_text);
      last_ckpt = st.step;
    }
  }
  trainlog_close(&log);
  trainlog_close(&timing);
  if (status == 0) amd_log("done: %s (log %s)\n", c.run, log_path);

  ops->free(xb_dev), ops->free(res_dev);
  free(res_h);
  free(xb), free(lb), free(order.perm), free(config_text);
  if (fb) flow_batch_free(fb);
  zero_free(zo);
  if (cls) classifier_free(cls); /* frees the model too */
  else model_free(model);
  dataset_free(&data);
  if (classifier) dataset_free(&test);
  return status;
}
