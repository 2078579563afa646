/* cmd_distill.c: `amd distill method=dmd|dmd2|dmdr|amd`: distills a teacher checkpoint into an
 * S-step student (docs/DESIGN.md section 4). The student and the fake teacher start from the
 * teacher's weights with separate AdamW optimizers; the real teacher is frozen. One step
 * (distill_step of src/distill.c) runs `fake_per_gen` fake-teacher updates and one generator
 * update. The /train row holds every loss, gradient norms, reward, forbidden fraction, AMD weight
 * statistics and the DMD direction norms; /advantage holds per-sample records every
 * log.advantage_every steps; checkpoints hold both networks, both optimizers (and the GAN head).
 * The run folder, the log, checkpoints, resume, signals and rollbacks (to the newest checkpoint,
 * or to the teacher's weights when there is none) are the run loop's (src/runloop.h).
 * zero=1 or 2 shards the optimizers over the ranks (mpi/zero.h); zero=3 also the parameters and
 * gradients of every network, the frozen real teacher's included (src/model.h). The real teacher is the teacher
 * checkpoint's EMA weights when it has them (teacher.weights); with ema.decay > 0 the run loop keeps
 * an EMA of the student (core/ema.h), saved as /student_ema. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "captions.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "distill.h"
#include "evalrun.h"
#include "model.h"
#include "model_ckpt.h"
#include "ops.h"
#include "reward.h"
#include "runloop.h"
#include "snapshot.h"
#include "stepdump.h"

typedef struct {
  RunSettings rl; /* run, resume, seed, train.steps, log.every, ckpt.*, guard.*, fault.* */
  char method[CFG_STR_MAX], teacher[CFG_STR_MAX], teacher_weights[CFG_STR_MAX], data[CFG_STR_MAX], device[CFG_STR_MAX];
  char precision[CFG_STR_MAX];
  int threads, cpu_ftz, cuda_graphs, zero, zero_prefetch;
  int S, prompts, K, fake_per_gen;
  double w, t_min, t_max;
  double lambda_reg, lambda_gan, disc_weight, lambda_r, s, lambda_rls, eps;
  char beta_on[CFG_STR_MAX], rls_norm[CFG_STR_MAX];
  double spread_floor;
  int reg_pairs, reg_steps;
  char preference[CFG_STR_MAX], reward_ckpt[CFG_STR_MAX];
  double bandwidth;
  double lr_student, lr_fake, lr_min_ratio, beta1, beta2, adam_eps, weight_decay, grad_clip;
  char schedule[CFG_STR_MAX];
  int warmup;
  int adv_every;
  int sample_every;
  EvalSettings ev; /* eval.*: held-out metrics of the student while it trains */
  int dump_step;              /* testing: fault.dump_step, fault.dump */
  char dump[CFG_STR_MAX];
} DistillCmdConfig;

#define K(name, type, field, def, lo, hi, choices, help) {name, type, offsetof(DistillCmdConfig, field), def, lo, hi, choices, help}
static const cfg_key distill_keys[] = {
    K("method", CFG_CHOICE, method, "amd", 0, 0, METHOD_CHOICES, "distillation method"),
    K("teacher", CFG_PATH, teacher, "", 0, 0, NULL, "teacher checkpoint file or run folder; required"),
    K("teacher.weights", CFG_CHOICE, teacher_weights, "auto", 0, 0, "auto|ema|raw",
      "the teacher's weights: ema its EMA (/teacher_ema), raw its last iterate (/teacher); auto: ema when it has one"),
    K("data", CFG_PATH, data, "", 0, 0, NULL, "dataset (GAN real batches, reward mixture); default: the teacher's"),
    RUNLOOP_RUN_KEYS(K, "runs/distill", 3,
                     "ZeRO stage of student, fake teacher and GAN head: 0 replicated; 1 Adam moments sharded; 2 also "
                     "gradients; 3 also their parameters and gradient buffers, and the real teacher's parameters (each "
                     "block gathered when it runs)"),
    K("student.steps", CFG_INT, S, "1", 1, 8, NULL, "S: generator steps (1, 2 or 4 in the paper)"),
    K("train.steps", CFG_INT, rl.steps, "500", 1, 1000000000, NULL, "distillation steps (one generator update each)"),
    K("train.prompts", CFG_INT, prompts, "64", 1, 1 << 20, NULL, "P: prompts per global batch (split across ranks)"),
    K("amd.K", CFG_INT, K, "4", 1, 1024, NULL, "K: samples per prompt (a group); global batch = P K"),
    K("fake_per_gen", CFG_INT, fake_per_gen, "0", 0, 100, NULL, "fake-teacher updates per generator update; 0 = method default (dmd 1, others 5)"),
    K("guidance", CFG_FLOAT, w, "1.25", 0, 100, NULL, "w: real teacher's guidance scale in d_cfg = d_u + w (d_c - d_u)"),
    K("dmd.t_min", CFG_FLOAT, t_min, "0.02", 0, 1, NULL, "t range of the distribution-matching loss"),
    K("dmd.t_max", CFG_FLOAT, t_max, "0.98", 0, 1, NULL, "t range of the distribution-matching loss"),
    K("dmd.lambda_reg", CFG_FLOAT, lambda_reg, "0", 0, 1e6, NULL, "dmd: weight of the regression to teacher ODE pairs"),
    K("dmd.reg_pairs", CFG_INT, reg_pairs, "1024", 1, 1 << 24, NULL, "dmd: teacher ODE pairs (a multiple of the global batch)"),
    K("dmd.reg_steps", CFG_INT, reg_steps, "50", 1, 10000, NULL, "dmd: Euler steps of the teacher for the pairs"),
    K("gan.lambda", CFG_FLOAT, lambda_gan, "1e-3", 0, 1e6, NULL, "lambda_gan: generator GAN weight (dmd2, dmdr, amd)"),
    K("gan.disc_weight", CFG_FLOAT, disc_weight, "1e-2", 0, 1e6, NULL, "weight of the discriminator loss in the fake update"),
    K("dmdr.lambda_r", CFG_FLOAT, lambda_r, "0.05", 0, 1e6, NULL, "lambda_r: reward weight of dmdr"),
    K("amd.s", CFG_FLOAT, s, "0.5", 0, 1, NULL, "s: Dynamic Score Adaptation sensitivity"),
    K("amd.lambda_rls", CFG_FLOAT, lambda_rls, "1.0", 0, 100, NULL, "lambda_rls: Repulsive Landscape Sharpening strength"),
    K("amd.eps", CFG_FLOAT, eps, "1e-6", 1e-12, 1, NULL, "eps of the advantage's standard deviation"),
    K("amd.beta_on", CFG_CHOICE, beta_on, "dm", 0, 0, AMD_BETA_ON_CHOICES,
      "where beta acts: dm = the whole distribution-matching term (Eq. 10); fake = only the fake teacher's repulsion"),
    K("amd.rls_norm", CFG_CHOICE, rls_norm, "raw", 0, 0, AMD_RLS_NORM_CHOICES,
      "sharpening weights exp(-lambda_rls A): raw, or mean1 = divided by their mean over each group"),
    K("amd.spread_floor", CFG_FLOAT, spread_floor, "0", 0, 100, NULL,
      "f: a group's reward std counts as at least f x the global batch's reward std; 0 = off"),
    K("reward.ckpt", CFG_PATH, reward_ckpt, "", 0, 0, NULL, "images: reward classifier checkpoint (amd train task=reward); needed by dmdr and amd"),
    K("reward.preference", CFG_STR, preference, "", 0, 0, NULL, "per-mode preference p_k, comma-separated; empty = all 1"),
    K("reward.bandwidth", CFG_FLOAT, bandwidth, "1.0", 0.01, 100, NULL, "reward kernel width in units of the mode sigma"),
    K("optim.lr_student", CFG_FLOAT, lr_student, "5e-4", 0, 10, NULL, "student AdamW learning rate"),
    K("optim.lr_fake", CFG_FLOAT, lr_fake, "1e-3", 0, 10, NULL, "fake-teacher (and GAN head) AdamW learning rate"),
    K("optim.warmup", CFG_INT, warmup, "0", 0, 1000000000, NULL, "linear warmup steps of both"),
    K("optim.schedule", CFG_CHOICE, schedule, "constant", 0, 0, "constant|cosine",
      "learning rates after the warmup: constant, or a cosine decay over train.steps to optim.lr_min_ratio x each"),
    K("optim.lr_min_ratio", CFG_FLOAT, lr_min_ratio, "0.1", 0, 1, NULL,
      "cosine: the final learning rates as a share of optim.lr_student and optim.lr_fake"),
    K("optim.beta1", CFG_FLOAT, beta1, "0.9", 0, 0.999999, NULL, "Adam beta1"),
    K("optim.beta2", CFG_FLOAT, beta2, "0.999", 0, 0.999999999, NULL, "Adam beta2"),
    K("optim.eps", CFG_FLOAT, adam_eps, "1e-8", 0, 1, NULL, "Adam epsilon"),
    K("optim.weight_decay", CFG_FLOAT, weight_decay, "0", 0, 1, NULL, "decoupled weight decay"),
    K("optim.grad_clip", CFG_FLOAT, grad_clip, "1.0", 0, 1e9, NULL, "global gradient-norm clip; 0 = off"),
    RUNLOOP_EMA_KEYS(K, "student"),
    K("log.every", CFG_INT, rl.log_every, "50", 1, 1000000000, NULL, "steps between status lines and log flushes"),
    K("log.advantage_every", CFG_INT, adv_every, "10", 0, 1000000000, NULL, "steps between /advantage records; 0 = none"),
    K("sample.every", CFG_INT, sample_every, "0", 0, 1000000000, NULL,
      "steps between pictures of the student's samples, <run>/samples_<step>.png; 0 = none"),
    EVALRUN_KEYS(K),
    RUNLOOP_KEYS(K, "200",
                 "divergence: loss_dm or loss_fake above spike x its mean over the previous guard.window steps; "
                 "0 = only NaN/Inf",
                 "testing: poison the student at this step (once)"),
    K("fault.dump_step", CFG_INT, dump_step, "-1", -1, 1000000000, NULL,
      "testing: write the inputs and per-sample losses of this step to fault.dump (one rank)"),
    K("fault.dump", CFG_STR, dump, "", 0, 0, NULL, "testing: the step dump's file (an amd-step-dump HDF5 file)"),
    CFG_END};
#undef K

static const char *const train_cols[] = {
    "step", "loss_dm", "loss_fake", "loss_gan_g", "loss_gan_d", "loss_reg", "loss_reward", "grad_norm_student",
    "grad_norm_fake", "lr_student", "lr_fake", "reward_mean", "reward_std", "forbidden_frac", "off_manifold_frac",
    "alpha_mean", "alpha_std", "beta_mean", "beta_std", "fake_weight_mean", "fake_weight_min", "fake_weight_max",
    "norm_dc_x", "norm_df_x", "norm_dc_du", "cos_real_fake", "k_sim", "samples_per_s", "time",
    /* the step's communication (src/zero_stats.h): every network, then each, then seconds */
    "comm_bytes", "comm_bytes_student", "comm_bytes_fake", "comm_bytes_disc", "comm_bytes_real", "comm_s"};
enum { NTRAIN = sizeof train_cols / sizeof train_cols[0], NCOMM = 6 };
static const char *const adv_cols[] = {DISTILL_ADVANTAGE_COLS};

/* An unknown name is a usage error (the key table's choices reject one first; never a fallback). */
static Method parse_method(const char *s) {
  Method m;
  if (method_from_name(s, &m)) amd_usage_error("config key 'method' = '%s' is not one of %s", s, METHOD_CHOICES);
  return m;
}

/* The network of the teacher checkpoint that the real teacher (and so the start of the student and
 * the fake teacher) is read from (teacher.weights): its EMA, /teacher_ema, or /teacher. */
static const char *teacher_net(const DistillCmdConfig *c, const char *path) {
  int has_ema = ckpt_has_net(path, "teacher" EMA_SUFFIX);
  if (strcmp(c->teacher_weights, "ema") == 0 && !has_ema)
    amd_usage_error("config key 'teacher.weights' = ema: the teacher '%s' holds no EMA weights (/teacher" EMA_SUFFIX
                    ": trained before them, or with ema.decay=0); pass teacher.weights=raw or auto", path);
  return strcmp(c->teacher_weights, "raw") != 0 && has_ema ? "teacher" EMA_SUFFIX : "teacher";
}

/* What a distillation step works with. */
typedef struct {
  const DistillCmdConfig *c;
  Distill *d;
  Model *student;
  const char *teacher_path;
  const char *real_net;     /* the teacher checkpoint's net the real teacher is */
  const char *reward_path;  /* the reward classifier's checkpoint file, or "" */
  double *adv_rows;   /* this rank's /advantage rows of a step */
  DistillStats o;     /* of the last step */
  Snapshot *snap;     /* sample.every: rank 0's pictures */
  Ema *ema;           /* the student's EMA (NULL: ema.decay = 0); whole: zero_gather_parts */
  EvalRun *eval;      /* eval.every: held-out metrics of the student */
  double dm_acc, fake_acc, reward_acc; /* sums over the log interval, for the status line */
  ZeroStats stats;    /* communication per step, memory per rank (the log's comm_* and /memory) */
} DistillRun;

/* The start of a distillation: student and fake teacher are the teacher, the GAN head is freshly
 * drawn (the run loop zeroes the optimizer moments). Also the target of a rollback when no
 * checkpoint exists yet. */
static void distill_reset(void *ctx, CkptState *st) {
  DistillRun *R = ctx;
  distill_initial_state(R->d);
  snprintf(st->teacher, sizeof st->teacher, "%.1023s", R->teacher_path);
}

static void distill_set_lr_scale(void *ctx, double scale) { distill_scale_lr(((DistillRun *)ctx)->d, scale); }

/* Testing (fault.dump_step): the dump of step `step`, with what a reader needs to rebuild the networks
 * around it: the real teacher's checkpoint and net, the reward's checkpoint, the run's config. */
static StepDump *dump_begin(const DistillRun *R, long step) {
  char *text = cfg_to_text(distill_keys, R->c);
  StepDump *dump = step_dump_create(R->c->dump, text, "fault.dump");
  free(text);
  step_dump_attr_i64(dump, "step", step);
  step_dump_attr_str(dump, "teacher", R->teacher_path);
  step_dump_attr_str(dump, "teacher_net", R->real_net);
  step_dump_attr_str(dump, "reward", R->reward_path);
  return dump;
}

static int distill_run_step(void *ctx, long step, const RunClock *clk, double *losses) {
  DistillRun *R = ctx;
  if (clk->inject_nan && model_stored_n(R->student) > 0) ops->fill(R->student->params, NAN, 1);
  zero_stats_step_begin(&R->stats);
  StepDump *dump = step == R->c->dump_step ? dump_begin(R, step) : NULL;
  distill_set_dump(R->d, dump);
  int failed = distill_step(R->d, step, &R->o);
  distill_set_dump(R->d, NULL);
  step_dump_close(dump);
  losses[0] = R->o.loss_dm, losses[1] = R->o.loss_fake;
  return failed;
}

static void distill_row(void *ctx, long step, const RunClock *clk, double *row) {
  DistillRun *R = ctx;
  const DistillStats *o = &R->o;
  double lr_student, lr_fake;
  distill_lr(R->d, step, &lr_student, &lr_fake);
  double r[NTRAIN - NCOMM] = {row[0], o->loss_dm, o->loss_fake, o->loss_gan_g, o->loss_gan_d, o->loss_reg,
                              o->loss_reward,
                      o->grad_norm_student, o->grad_norm_fake, lr_student, lr_fake, o->reward_mean, o->reward_std,
                      o->forbidden_frac, o->off_manifold_frac, o->alpha_mean, o->alpha_std, o->beta_mean, o->beta_std,
                      o->fw_mean, o->fw_min, o->fw_max, o->norm_dc_x, o->norm_df_x, o->norm_dc_du, o->cos_real_fake,
                      o->k_sim, clk->samples_per_s, clk->elapsed};
  memcpy(row, r, sizeof r);
  zero_stats_step_end(&R->stats, row + (NTRAIN - NCOMM));
  if (clk->interval_steps == 1) R->dm_acc = R->fake_acc = R->reward_acc = 0;
  R->dm_acc += o->loss_dm, R->fake_acc += o->loss_fake, R->reward_acc += o->reward_mean;
}

static void distill_extra_rows(void *ctx, long step, TrainLog *adv) {
  DistillRun *R = ctx;
  if (R->c->adv_every > 0 && step % R->c->adv_every == 0)
    runloop_append_all_ranks(adv, R->adv_rows, distill_advantage_rows(R->d, step, R->adv_rows), DISTILL_NADV);
}

static void distill_summary(void *ctx, double wall) { zero_stats_summary(&((DistillRun *)ctx)->stats, wall); }

static void distill_snapshot(void *ctx, long step) { snapshot_take(((DistillRun *)ctx)->snap, step); }

/* The student's raw weights, then its EMA's when kept. */
static void distill_eval(void *ctx, long step, TrainLog *table) {
  DistillRun *R = ctx;
  evalrun_measure_weights(R->eval, R->student, R->ema, step, table);
}

static void distill_status(void *ctx, long step, const RunClock *clk, const double *row) {
  DistillRun *R = ctx;
  const DistillStats *o = &R->o;
  (void)row;
  double n = (double)clk->interval_steps;
  char offm[40] = ""; /* only where the data's density is known (toy mixtures), not "nan" on images */
  if (isfinite(o->off_manifold_frac)) snprintf(offm, sizeof offm, "off-manifold %.3f, ", o->off_manifold_frac);
  amd_log("step %6ld/%d | avg %ld: dm %.4f, fake %.4f, reward %.3f | last: forbidden %.2f, %s"
          "grad %.3f/%.3f | %8.0f samples/s | elapsed %s | ETA %s\n", step, R->c->rl.steps, clk->interval_steps,
          R->dm_acc / n, R->fake_acc / n, R->reward_acc / n, o->forbidden_frac, offm,
          o->grad_norm_student, o->grad_norm_fake, clk->samples_per_s, clk->elapsed_hms, clk->eta_hms);
}

/* The captions a caption teacher's prompts are drawn from (docs/DESIGN.md sections 4 and 13): the
 * data's, whose vocabulary and token width must be the teacher's. Returns whether the data holds
 * captions (into caps); a usage error, before anything is written, when a caption teacher's data has
 * none or other ones. A class teacher on captioned canvases distills their class labels (/labels). */
static int read_prompt_captions(const ModelConfig *mc, const char *teacher_path,
                                const Dataset *data, const char *data_path, CaptionSet *caps) {
  int captioned = captions_read(data_path, data->n, data->num_classes, caps);
  if (!mc->text) {
    if (captioned)
      amd_log("'%s' is captioned; the class teacher '%s' distills on its class labels (/labels)\n", data_path,
              teacher_path);
    return captioned;
  }
  if (!captioned)
    amd_usage_error("teacher '%s' is conditioned on captions (text mode): its prompts are the data's captions, and "
                    "data '%s' holds no /captions (a captioned dataset of amd data compose)", teacher_path, data_path);
  if (caps->vocab_size != mc->vocab || caps->max_tokens != mc->max_text)
    amd_usage_error("data '%s': its captions (%d words, %d tokens each) are not the teacher's (%d words, %d tokens "
                    "each: '%s'); distill on the captioned dataset the teacher was trained with", data_path,
                    caps->vocab_size, caps->max_tokens, mc->vocab, mc->max_text, teacher_path);
  return captioned;
}

/* A path read from a file, made absolute (as this run records it) when it fits. */
static void absolute_in_place(char **path) {
  size_t n = strlen(*path) + 4200;
  char *abs = mallocCheck(n);
  if ((*path)[0] && cfg_absolute_path(*path, abs, n) == 0) free(*path), *path = abs;
  else free(abs);
}

int cmd_distill(int argc, char **argv) {
  DistillCmdConfig c;
  cfg_parse_args(distill_keys, &c, argc, argv, "distill", "Distills a teacher into an S-step student (dmd, dmd2, dmdr, amd).");
  if (!c.teacher[0]) amd_usage_error("config key 'teacher' is required: the teacher checkpoint or run folder");
  runloop_check_settings(&c.rl);
  if (c.dump_step >= 0 && !c.dump[0]) amd_usage_error("config key 'fault.dump_step' needs fault.dump=FILE.h5");
  if (c.dump_step >= 0 && dist_size() > 1) amd_usage_error("config key 'fault.dump_step' runs on one rank only");
  if (c.t_min >= c.t_max) amd_usage_error("config keys 'dmd.t_min' (%g) and 'dmd.t_max' (%g): need t_min < t_max", c.t_min, c.t_max);
  int threads = backend_init(c.device, c.precision, c.threads);
  backend_set_ftz(c.cpu_ftz);
  backend_set_graphs(c.cuda_graphs);
  runloop_check_split("train.prompts", c.prompts);
  Method method = parse_method(c.method);
  int fpg = c.fake_per_gen ? c.fake_per_gen : (method == METHOD_DMD ? 1 : 5);
  /* the real teacher runs the conditional and unconditional pass of every sample in one int batch */
  amd_mul_checked(2L * c.prompts, c.K, INT_MAX, "2 x train.prompts x amd.K (the real teacher's batch)");
  int GB = c.prompts * c.K;
  if (method == METHOD_DMD && c.lambda_reg > 0 && c.reg_pairs % GB != 0)
    amd_usage_error("config key 'dmd.reg_pairs' = %d must be a multiple of the global batch %d (train.prompts x amd.K)", c.reg_pairs, GB);

  char teacher_path[4200];
  ckpt_resolve_shared(c.teacher, teacher_path, sizeof teacher_path);
  char ckpt_path[4200];
  if (runloop_resume_point(&c.rl, ckpt_path, sizeof ckpt_path) >= 0) {
    /* a resumed run keeps the teacher it started from, even if the teacher's folder has moved on */
    char *t = ckpt_read_attr(ckpt_path, "teacher");
    absolute_in_place(&t); /* an older run's may be relative */
    if (t[0] && strcmp(t, teacher_path) != 0) {
      amd_log("resume: distilling from %s, the teacher this run started from (the newest is now %s)\n", t, teacher_path);
      snprintf(teacher_path, sizeof teacher_path, "%s", t);
    }
    free(t);
  }
  char teacher_fingerprint[64]; /* its content: a resume refuses a teacher file replaced since */
  ckpt_net_fingerprint(teacher_path, "teacher", teacher_fingerprint, sizeof teacher_fingerprint);
  ModelConfig mc;
  model_ckpt_config(teacher_path, "teacher", &mc);
  /* the teacher's dataset where its checkpoint says, checked by content; data= names another */
  Dataset data;
  char *data_path = c.data[0] ? strdup(c.data)
                              : dataset_read_recorded(teacher_path, "amd-checkpoint", &data,
                                                      "pass data= to distill on another dataset on purpose");
  if (!data_path[0]) amd_usage_error("teacher '%s' names no dataset: pass data=", teacher_path);
  if (c.data[0]) dataset_read(data_path, "amd-dataset", &data);
  absolute_in_place(&data_path); /* an older teacher's may be relative */
  char fingerprint[DATASET_FINGERPRINT_MAX];
  dataset_fingerprint(&data, fingerprint, sizeof fingerprint);
  char what[4300];
  snprintf(what, sizeof what, "the teacher '%s'", teacher_path);
  dataset_check_fits(&data, "data", data_path, mc.dim, mc.num_classes, what);
  if (c.data[0]) {
    char *trained = ckpt_read_attr(teacher_path, "data");
    dataset_check_same_target(&data, "data", data_path, trained, "the teacher");
    free(trained);
  }
  CaptionSet caps = {0};
  int captioned = read_prompt_captions(&mc, teacher_path, &data, data_path, &caps);

  long p0, p1;
  dist_split(c.prompts, &p0, &p1);
  int B = (int)(p1 - p0) * c.K;
  /* the reward: analytic on toy data, a trained classifier on images, the caption reward (a cell
   * classifier reading token rows) on captioned canvases, none for dmd/dmd2 without one */
  Reward reward_store;
  Reward *reward = reward_select_for(&reward_store, &data, data_path, c.reward_ckpt, c.preference, c.bandwidth, B,
                                     model_label_ints(&mc), method == METHOD_DMDR || method == METHOD_AMD ? c.method : NULL);
  EvalRun *eval = evalrun_create(&c.ev, &mc, "generator", c.S, &data, data_path, (uint64_t)c.rl.seed);
  int shard_flag = c.zero == 3 ? MODEL_SHARDED : 0;
  Model *(*create)(const ModelConfig *, int) = shard_flag ? model_create_sharded : model_create;
  /* the real teacher only runs forward: room for one block's activations (model.h) */
  Model *real = model_create_flags(&mc, 2 * B, shard_flag | MODEL_INFERENCE), *fake = create(&mc, B);
  Model *student = create(&mc, B);
  ModelConfig hc = {.kind = "head", .dim = fake->feat_dim, .num_classes = mc.num_classes};
  int gan = method != METHOD_DMD && c.lambda_gan > 0;
  Model *disc = gan ? create(&hc, B) : NULL;
  Model *sharded[] = {real, fake, student, disc};
  for (int i = 0; i < 4; i++) model_set_prefetch(sharded[i], c.zero_prefetch);
  const char *real_net = teacher_net(&c, teacher_path);
  model_ckpt_load_params(teacher_path, real_net, real);

  /* the fake teacher and the GAN head count their updates, fake_per_gen per step: their schedule spans
   * train.steps x fake_per_gen of them */
  int cosine = strcmp(c.schedule, "cosine") == 0;
  double lr_min_ratio = cosine ? c.lr_min_ratio : 1.0;
  AdamWConfig os = {.lr = c.lr_student, .lr_min = c.lr_student * lr_min_ratio, .warmup = c.warmup, .cosine = cosine,
                    .total_steps = c.rl.steps,
                    .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.adam_eps, .weight_decay = c.weight_decay,
                    .grad_clip = c.grad_clip};
  AdamWConfig of = os;
  of.lr = c.lr_fake, of.lr_min = c.lr_fake * lr_min_ratio;
  of.warmup = (long)c.warmup * fpg, of.total_steps = (long)c.rl.steps * fpg;
  DistillConfig dc = {.method = method, .S = c.S, .w = c.w, .t_min = c.t_min, .t_max = c.t_max, .fake_per_gen = fpg,
                      .lambda_reg = c.lambda_reg, .lambda_gan = c.lambda_gan, .lambda_r = c.lambda_r,
                      .disc_weight = c.disc_weight, .s = c.s, .lambda_rls = c.lambda_rls, .eps = c.eps,
                      .beta_on = strcmp(c.beta_on, "fake") == 0 ? AMD_BETA_ON_FAKE : AMD_BETA_ON_DM,
                      .rls_norm = strcmp(c.rls_norm, "mean1") == 0 ? AMD_RLS_MEAN1 : AMD_RLS_RAW,
                      .spread_floor = c.spread_floor,
                      .prompts = c.prompts, .K = c.K, .reg_pairs = c.reg_pairs, .reg_steps = c.reg_steps,
                      .seed = (uint64_t)c.rl.seed, .opt_student = os, .opt_fake = of, .zero = c.zero,
                      .captions = mc.text ? caps.tokens : NULL, .num_captions = mc.text ? caps.n : 0};
  Distill *d = distill_create(&dc, real, fake, student, disc, &data, reward);

  if (c.sample_every > 0) snapshot_check(&data, "sample.every");
  if (c.zero == 3 && c.sample_every > 0)
    amd_usage_error("config key 'sample.every' = %d needs the whole student on rank 0, which zero=3 does not keep "
                    "(use eval.every, or zero=2)", c.sample_every);
  runloop_prepare(&c.rl);
  char reward_path[4200] = ""; /* the dump records it; only a dump resolves it a second time */
  if (c.dump_step >= 0 && reward && reward->cls) ckpt_resolve(c.reward_ckpt, reward_path, sizeof reward_path);
  DistillRun R = {.c = &c, .d = d, .student = student, .teacher_path = teacher_path, .real_net = real_net,
                  .reward_path = reward_path,
                  .adv_rows = mallocCheck(sizeof(double) * DISTILL_NADV * (size_t)B), .eval = eval};
  if (c.sample_every > 0)
    R.snap = snapshot_create(student, "generator", c.S, &data, c.rl.run, (uint64_t)c.rl.seed, "sample.every");
  if (mc.text) snapshot_use_captions(R.snap, caps.tokens, caps.text, caps.n, mc.max_text);
  const AdamW *os_range = distill_opt_student(d);
  R.ema = c.rl.ema_decay > 0 ? ema_create_range(os_range->begin, os_range->n) : NULL; /* like its moments */
  CkptNet nets[3] = {{"student", student, distill_opt_student(d), R.ema}, {"fake", fake, distill_opt_fake(d), NULL},
                     {"disc", disc, distill_opt_disc(d), NULL}};
  cfg_print_table(distill_keys, &c, "amd distill");
  amd_log("%s: ranks %d x %d threads, backend %s, teacher %s (%ld parameters, %s weights), S = %d, global batch "
          "%d x %d, %d fake updates per generator update\n", method_name(method), dist_size(), threads, ops->name,
          teacher_path, student->num_params, strcmp(real_net, "teacher") == 0 ? "raw" : "EMA", c.S, c.prompts, c.K,
          fpg);
  distill_log_memory(d);
  if (R.ema) ema_log_memory(R.ema, "student");
  ZeroNet znets[ZERO_STATS_MAX_NETS];
  zero_stats_init(&R.stats, znets, distill_zero_nets(d, R.ema != NULL, znets), c.zero);
  evalrun_print(eval);
  static const char *const loss_names[] = {"loss_dm", "loss_fake"};
  RunTask task = {.what = "distillation", .data_path = data_path, .data_fingerprint = fingerprint,
                  .teacher_path = teacher_path, .teacher_fingerprint = teacher_fingerprint, .keys = distill_keys,
                  .config = &c, .nets = nets, .nnets = disc ? 3 : 2, .samples_per_step = GB,
                  .fake_updates_per_step = fpg, .student_steps = c.S,
                  .cols = train_cols, .ncols = NTRAIN, .extra_table = "advantage", .extra_cols = adv_cols,
                  .nextra = DISTILL_NADV, .loss_names = loss_names, .nlosses = 2, .ctx = &R, .reset = distill_reset,
                  .set_lr_scale = distill_set_lr_scale, .step = distill_run_step, .row = distill_row,
                  .extra_rows = distill_extra_rows, .status = distill_status, .snapshot_every = c.sample_every,
                  .snapshot = distill_snapshot, .eval_every = eval ? c.ev.every : 0, .eval = distill_eval,
                  .memory_cols = R.stats.memory_cols, .nmemory = R.stats.nmemory, .memory_row = R.stats.memory_row,
                  .summary = distill_summary};
  if (eval) task.neval = evalrun_cols(eval, &task.eval_cols);
  int status = runloop_run(&c.rl, &task);
  if (status == 0) amd_log("sample the %d-step student with: amd sample ckpt=%s\n", c.S, c.rl.run);
  snapshot_free(R.snap);
  evalrun_free(eval);
  free(data_path), free(R.adv_rows);
  distill_free(d);
  ema_free(R.ema);
  if (reward) reward_free(reward);
  model_free(real), model_free(fake), model_free(student), model_free(disc);
  if (captioned) captions_free(&caps);
  dataset_free(&data);
  return status;
}
