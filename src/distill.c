/* distill.c: one distillation step of DMD, DMD2, DMDR or AMD (docs/DESIGN.md section 4).
 * Method differences are a handful of switches on one path:
 *   dmd   loss_dm (+ lambda_reg regression to teacher ODE pairs); fake_per_gen = 1 by default
 *   dmd2  loss_dm + lambda_gan softplus(-D(x_t)); fake loss + disc_weight discriminator loss
 *   dmdr  dmd2 - lambda_r R(x, c) with the reward's input gradient
 *   amd   dmd2 with H_i = beta_i DM + alpha_i CA and fake-loss weights exp(-lambda_rls A_i)
 *         (amd.beta_on, amd.rls_norm and amd.spread_floor pick the variants of section 4.7)
 * Every draw is keyed by (seed, stream, key, global sample index): generator updates use key
 * 2 step, fake updates 2 (step fake_per_gen + f) + 1, so no two updates share numbers.
 * A prompt is a class label, or for a caption teacher (text mode) a caption of the training data:
 * labels are then rows of L = max_text token ids (model_label_ints), the unconditional rows the
 * empty caption (all padding), and every labels buffer below is (rows, L); L = 1 is the class case. */
#include "distill.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caption.h"
#include "common.h"
#include "dist.h"
#include "ops.h"
#include "philox.h"
#include "stepdump.h"
#include "zero.h"

#define REG_KEY 0x7FFFFFF0u /* generator key of the regression pairs' noise */

/* Columns of dmd_grad's per-sample statistics, a (B, DMD_NSTATS) block (core/ops.h): the loss, the
 * normalizer n, ||d_c - x||, ||d_f - x||, ||d_c - d_u|| and the cosine between d_c - x and d_f - x. */
enum { DMD_STAT_LOSS, DMD_STAT_NORM, DMD_STAT_DC_X, DMD_STAT_DF_X, DMD_STAT_DC_DU, DMD_STAT_COS, DMD_NSTATS };

/* The layout of Distill.stats: STATS_LEN rows of B floats, then a SumSq. A generator update writes
 * dmd_grad's statistics (DMD_NSTATS rows), the generator's GAN loss and the regression loss; a fake
 * update the flow loss and the discriminator's loss on real and on generated samples. */
enum {
  ST_DMD = 0, ST_GAN_G = ST_DMD + DMD_NSTATS, ST_REG, STATS_LEN, /* generator update */
  ST_FLOW = 0, ST_DISC_REAL, ST_DISC_FAKE, ST_FAKE_ROWS          /* fake update */
};
_Static_assert(ST_FAKE_ROWS <= STATS_LEN, "a fake update's rows fit in Distill.stats");
_Static_assert(STATS_LEN % 2 == 0, "STATS_LEN B floats are a multiple of 8 bytes: the SumSq is aligned");
_Static_assert(ST_DISC_FAKE == ST_DISC_REAL + 1, "fake_update sums the two discriminator rows as one");

/* The gradients' local sums of squares of one update (zero_reduce_grads_begin): the network being
 * trained (the student, or the fake teacher) and the GAN head. */
typedef struct {
  double net, disc;
} SumSq;
static size_t stats_bytes(int B) { return sizeof(float) * STATS_LEN * (size_t)B + sizeof(SumSq); }

/* Sums over the global batch, each reduced over ranks in one call as the array of its fields
 * (ALLREDUCE_SUM_FIELDS): doubles only, checked by a static assert next to each. A fake update's
 * flow loss and discriminator loss: */
typedef struct {
  double loss_flow, loss_disc;
} FakeSums;
_Static_assert(sizeof(FakeSums) == 2 * sizeof(double), "FakeSums is reduced as an array of doubles");
/* A generator update's: per-sample terms (forbidden: samples with a negative advantage; off_manifold:
 * beyond 3 sigma of every mode; the last four from dmd_grad), then the GAN and regression losses. */
typedef struct {
  double loss_dm, reward, reward_sq, forbidden, off_manifold;
  double alpha, alpha_sq, beta, beta_sq, fake_weight;
  double norm_dc_x, norm_df_x, norm_dc_du, cos_real_fake;
  double loss_gan, loss_reg;
} GenSums;
_Static_assert(sizeof(GenSums) == 16 * sizeof(double), "GenSums is reduced as an array of doubles");
#define ALLREDUCE_SUM_FIELDS(s) dist_allreduce_sum_f64v((double *)(s), (long)(sizeof *(s) / sizeof(double)))

struct Distill {
  DistillConfig c;
  Model *real, *fake, *student, *disc;
  ZeroOpt *opt_student, *opt_fake, *opt_disc;
  AdamWConfig base_student, base_fake; /* as configured; c.opt_* are scaled after rollbacks */
  Generator *gen;
  FlowBatch *fb;
  const Dataset *data;
  Reward *reward;
  int P_local, B, D, GB; /* local prompts, local batch, sample size, global batch */
  long p0;              /* first global prompt of this rank */
  int L;                /* ints per label: 1, or a caption's max_text token ids */
  /* backend memory */
  int *labels2;         /* (2B, L) [c; null] */
  int *labels_real;     /* (B, L) */
  float *x, *e, *xt2, *t2, *vtmp, *vreal, *dreal, *vfake, *dfake, *dx, *dxt, *alpha, *beta, *fw;
  float *omt, *logits, *dlogit, *dfeat, *xr, *rgrad;
  /* each update's per-sample results and sums of squares, left on the device until the update
   * reads them all back at once (one wait); layout above. sumsq points into stats. */
  float *stats;
  SumSq *sumsq;
  float *reg_target;    /* (B, D) */
  /* host */
  int *labels_h, *labels_real_h; /* (2B, L), (B, L) */
  int *prompt_h;        /* (B) each sample's prompt: its class, or its caption's index in the data */
  float *t_h, *x_h, *alpha_h, *beta_h, *fw_h, *stats_h, *omt_h;
  SumSq *sumsq_h;       /* points into stats_h */
  double *r_h, *A_h;
  float *reg_x;         /* (reg_pairs, D) teacher ODE endpoints, host */
  int *reg_labels;      /* (reg_pairs, L) */
  AdvantageRecords rec;
  StepDump *dump;       /* testing: this step's dump (fault.dump_step), else NULL */
  void *real_graph;     /* the real teacher's evaluation as a CUDA graph (ops->graph_run) */
};

static const char *const method_names[METHOD_COUNT] = {"dmd", "dmd2", "dmdr", "amd"};

/* The frozen real teacher's denoised estimates dreal (2B, D) at [x_t; x_t], [t; t] with labels
 * [c; null] (the guided pair), from the first halves of xt2 and t2: a graph_run body, its argument
 * the Distill pointer (the buffers and B are fixed for a run). */
static void real_teacher_denoise(const void *arg) {
  const Distill *d = *(Distill *const *)arg;
  int B = d->B, D = d->D;
  ops->copy(d->xt2 + (size_t)B * D, d->xt2, sizeof(float) * (size_t)B * D);
  ops->copy(d->t2 + B, d->t2, sizeof(float) * (size_t)B);
  d->real->forward(d->real, d->vreal, d->xt2, d->t2, d->labels2, 2 * B);
  ops->flow_denoise(d->dreal, d->xt2, d->vreal, d->t2, 2 * B, D);
}

const char *method_name(Method m) {
  CHECK((unsigned)m < METHOD_COUNT, "method_name: %d is not a method", (int)m);
  return method_names[m];
}

int method_from_name(const char *name, Method *out) {
  for (int m = 0; m < METHOD_COUNT; m++)
    if (strcmp(name, method_names[m]) == 0) {
      *out = (Method)m;
      return 0;
    }
  return 1;
}

void amd_advantages(double *A, const double *r, int n, int K, double eps, double std_floor) {
  CHECK(K >= 1 && n % K == 0, "advantages: %d samples do not form groups of %d", n, K);
  for (int g = 0; g + K <= n; g += K) {
    double mean = 0, var = 0;
    for (int i = 0; i < K; i++) mean += r[g + i];
    mean /= K;
    for (int i = 0; i < K; i++) var += (r[g + i] - mean) * (r[g + i] - mean);
    double sd = sqrt(var / K);
    if (sd < std_floor) sd = std_floor;
    for (int i = 0; i < K; i++) {
      double a = (r[g + i] - mean) / (sd + eps);
      A[g + i] = a < -1 ? -1 : a > 1 ? 1 : a;
    }
  }
}

void amd_weights(float *alpha, float *beta, float *fake_weight, const double *A, int n, double s, double lambda_rls) {
  for (int i = 0; i < n; i++) {
    if (alpha) alpha[i] = (float)(1.0 + s * A[i]);
    if (beta) beta[i] = (float)(1.0 - s * A[i]);
    if (fake_weight) fake_weight[i] = (float)exp(-lambda_rls * A[i]);
  }
}

void amd_weights_mean1(float *fake_weight, const double *A, int n, int K, double lambda_rls) {
  CHECK(K >= 1 && n % K == 0, "sharpening weights: %d samples do not form groups of %d", n, K);
  for (int g = 0; g + K <= n; g += K) {
    double mean = 0;
    for (int i = 0; i < K; i++) mean += exp(-lambda_rls * A[g + i]);
    mean /= K;
    for (int i = 0; i < K; i++) fake_weight[g + i] = (float)(exp(-lambda_rls * A[g + i]) / mean);
  }
}

static int uses_gan(const Distill *d) { return d->c.method != METHOD_DMD && d->c.lambda_gan > 0 && d->disc; }

long distill_prompt_index(uint64_t seed, uint32_t key, long p, long choices) {
  uint32_t w[4];
  rng_u32x4(seed, RNG_PROMPT, key, (uint32_t)p, 0, w);
  return (long)(w[0] % (uint32_t)choices);
}

/* the label row (L ints) of prompt index i: the class i, or caption i's token ids */
static void prompt_row(const Distill *d, int *row, long i) {
  if (d->c.captions) memcpy(row, d->c.captions + (size_t)i * d->L, sizeof(int) * (size_t)d->L);
  else row[0] = (int)i;
}

/* labels of the local batch for one update: prompt p's class or caption is keyed by (key, p); its K
 * members share it. The second half, the teacher's unconditional rows: the null class, or the empty
 * caption. */
static void draw_prompts(Distill *d, uint32_t key) {
  long C = d->c.captions ? d->c.num_captions : d->student->cfg.num_classes;
  int L = d->L;
  for (int p = 0; p < d->P_local; p++) {
    long i = distill_prompt_index(d->c.seed, key, d->p0 + p, C);
    for (int k = 0; k < d->c.K; k++) {
      d->prompt_h[p * d->c.K + k] = (int)i;
      prompt_row(d, d->labels_h + (size_t)(p * d->c.K + k) * L, i);
    }
  }
  int null = d->c.captions ? CAPTION_PAD : (int)C;
  for (size_t i = (size_t)d->B * L; i < 2 * (size_t)d->B * L; i++) d->labels_h[i] = null;
  ops->to_device(d->labels2, d->labels_h, sizeof(int) * 2 * (size_t)d->B * L);
}

static int draw_k(const Distill *d, uint32_t key) {
  uint32_t w[4];
  rng_u32x4(d->c.seed, RNG_SIM, key, 0, 0, w);
  return 1 + (int)(w[0] % (uint32_t)d->c.S);
}

static uint32_t index0(const Distill *d) { return (uint32_t)(d->p0 * d->c.K); }

/* The scale of amd.spread_floor: the population standard deviation of the rewards d->r_h over the
 * global batch (every group, every rank), in two passes (a mean, then squared deviations: rewards
 * such as log-densities sit far from 0). */
static double reward_scale(const Distill *d) {
  double sum = 0, sq = 0;
  for (int i = 0; i < d->B; i++) sum += d->r_h[i];
  dist_allreduce_sum_f64v(&sum, 1);
  double mean = sum / d->GB;
  for (int i = 0; i < d->B; i++) sq += (d->r_h[i] - mean) * (d->r_h[i] - mean);
  dist_allreduce_sum_f64v(&sq, 1);
  return sqrt(sq / d->GB);
}

/* rewards and advantages of the samples now in d->x, and with want_grad dR/dx into d->rgrad. The
 * samples come to the host (d->x_h) only for a reward that reads them there, the toy reward, whose
 * mixture the generator's statistics also use; a classifier scores them on the device. */
static void score_samples(Distill *d, int want_grad) {
  if (d->reward && reward_reads_host(d->reward)) ops->to_host(d->x_h, d->x, sizeof(float) * (size_t)d->B * d->D);
  if (d->reward) {
    reward_eval(d->reward, d->r_h, want_grad ? d->rgrad : NULL, d->x, d->x_h, d->labels_h, d->B);
  } else {
    for (int i = 0; i < d->B; i++) d->r_h[i] = 0;
    if (want_grad) ops->fill(d->rgrad, 0.0f, (long)d->B * d->D);
  }
  double std_floor = d->c.spread_floor > 0 ? d->c.spread_floor * reward_scale(d) : 0; /* 0: no sums over ranks */
  amd_advantages(d->A_h, d->r_h, d->B, d->c.K, d->c.eps, std_floor);
}

/* AMD's sharpening weights W of the advantages d->A_h into d->fw_h: raw or mean 1 per group. */
static void fake_weights(Distill *d, double lambda_rls) {
  if (d->c.rls_norm == AMD_RLS_MEAN1) amd_weights_mean1(d->fw_h, d->A_h, d->B, d->c.K, lambda_rls);
  else amd_weights(NULL, NULL, d->fw_h, d->A_h, d->B, 0.0, lambda_rls);
}

/* x_t = (1 - t) x + t e for t ~ U[t_min, t_max] and e ~ N(0, I) keyed by (key, index) */
static void noise_for_dmd(Distill *d, float *xt, const float *x, uint32_t key) {
  for (int i = 0; i < d->B; i++) {
    double u = rng_uniform(d->c.seed, RNG_DMD_T, key, index0(d) + (uint32_t)i, 0);
    d->t_h[i] = (float)(d->c.t_min + (d->c.t_max - d->c.t_min) * u);
    d->omt_h[i] = 1.0f - d->t_h[i];
  }
  ops->to_device(d->t2, d->t_h, sizeof(float) * (size_t)d->B);
  ops->to_device(d->omt, d->omt_h, sizeof(float) * (size_t)d->B);
  ops->randn(d->e, d->B, d->D, d->c.seed, RNG_DMD_NOISE, key, index0(d));
  ops->flow_interpolate(xt, d->vtmp, x, d->e, d->t2, d->B, d->D);
}

/* --- testing (fault.dump_step): the inputs and per-sample losses of an update into d->dump ------
 * Each helper does nothing without a dump. */

/* a backend array of rows x cols floats (cols 0: a vector) */
static void dump_backend(const Distill *d, const char *name, const float *x, int rows, int cols) {
  if (!d->dump) return;
  size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
  float *h = mallocCheck(sizeof(float) * n);
  ops->to_host(h, x, sizeof(float) * n);
  step_dump_f32(d->dump, name, h, rows, cols);
  free(h);
}

/* the samples of the update: prompts, the student step that made them (its t and input) and the
 * samples, then their rewards, advantages and sharpening weights */
static void dump_samples(const Distill *d) {
  step_dump_i32(d->dump, "labels", d->labels_h, d->B, d->c.captions ? d->L : 0);
  dump_backend(d, "gen_t", d->gen->t, d->B, 0);
  dump_backend(d, "gen_xt", d->gen->xt, d->B, d->D);
  dump_backend(d, "x", d->x, d->B, d->D);
  step_dump_f64(d->dump, "reward", d->r_h, d->B, 0);
  step_dump_f64(d->dump, "advantage", d->A_h, d->B, 0);
  step_dump_f32(d->dump, "fake_weight", d->fw_h, d->B, 0);
}

/* the t and noise of the last noise_for_dmd as <what>_t and <what>_noise */
static void dump_noising(const Distill *d, const char *what) {
  if (!d->dump) return;
  char name[64];
  snprintf(name, sizeof name, "%s_t", what);
  step_dump_f32(d->dump, name, d->t_h, d->B, 0);
  snprintf(name, sizeof name, "%s_noise", what);
  dump_backend(d, name, d->e, d->B, d->D);
}

void distill_set_dump(Distill *d, StepDump *dump) { d->dump = dump; }

/* sum of n floats of host memory */
static double sum_f(const float *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i];
  return s;
}

/* GAN term through the fake teacher's last forward: loss sum_i softplus(sign * D_i) * weight / GB.
 * Without dxt (the discriminator's update) adds the parameter gradients of the disc head and, via
 * the features, of the fake teacher; with dxt (the generator's update) only d loss / d x_t, into
 * dxt. The B unweighted per-sample losses go to loss (backend memory): nothing waits here. */
static void gan_term(Distill *d, float sign, double weight, float *dxt, float *loss) {
  int B = d->B;
  d->disc->forward(d->disc, d->logits, d->fake->features(d->fake), NULL, NULL, B);
  ops->softplus_forward_backward(loss, d->dlogit, d->logits, sign, (float)(weight / d->GB), B);
  ops->fill(d->dfeat, 0.0f, (long)B * d->fake->feat_dim);
  /* the generator's term (dxt given) only passes gradients through the head and the fake teacher */
  d->disc->frozen = d->fake->frozen = dxt != NULL;
  d->disc->backward(d->disc, d->dfeat, d->dlogit, NULL, B);
  if (dxt) ops->fill(dxt, 0.0f, (long)B * d->D);
  d->fake->backward(d->fake, dxt, NULL, d->dfeat, B);
  d->disc->frozen = d->fake->frozen = 0;
}

/* all of d->stats to the host: the update's one wait for the device */
static void read_stats(Distill *d) { ops->to_host(d->stats_h, d->stats, stats_bytes(d->B)); }

/* The second half of a network's optimizer step (zero_reduce_grads_begin came before read_stats):
 * the global gradient norm into *norm_out, then AdamW. Returns 0, or nonzero when the norm is not
 * finite: then the update is skipped (the network and its optimizer are left as they were). */
static int finish_update(Model *m, ZeroOpt *opt, const AdamWConfig *oc, long step, double local_sumsq,
                         double *norm_out) {
  double norm = zero_reduce_grads_end(opt, m->grads, local_sumsq);
  *norm_out = norm;
  if (!isfinite(norm)) return 1;
  zero_update(opt, m->params, m->grads, oc, step, norm);
  return 0;
}

/* One fake-teacher update (and its discriminator) on fresh, detached student samples. Returns 0,
 * or nonzero when a gradient norm (then that network's update was skipped) or a loss was not finite. */
static int fake_update(Distill *d, long u, DistillStats *o) {
  uint32_t key = 2u * (uint32_t)u + 1u;
  if (d->dump) {
    char group[32];
    snprintf(group, sizeof group, "fake%ld", u % d->c.fake_per_gen);
    step_dump_group(d->dump, group);
  }
  draw_prompts(d, key);
  generator_run(d->gen, d->x, d->labels2, d->B, draw_k(d, key), d->c.seed, key, index0(d));
  if (d->c.method == METHOD_AMD) {
    score_samples(d, 0);
    fake_weights(d, d->c.lambda_rls);
  } else {
    for (int i = 0; i < d->B; i++) d->r_h[i] = d->A_h[i] = 0, d->fw_h[i] = 1.0f;
  }
  dump_samples(d);
  ops->to_device(d->fw, d->fw_h, sizeof(float) * (size_t)d->B);
  model_zero_grad(d->fake);
  FlowConfig fc = {.logit_normal = 0, .p_uncond = 0.0};
  int B = d->B;
  flow_train_batch_into(d->stats + ST_FLOW * B, d->fake, d->fb, d->x, d->labels_h, d->fw, B, index0(d), key,
                        d->c.seed, &fc, d->GB);
  if (d->dump) {
    step_dump_f32(d->dump, "flow_t", d->fb->t_host, B, 0);
    dump_backend(d, "flow_noise", d->fb->e, B, d->D);
  }
  if (uses_gan(d)) {
    model_zero_grad(d->disc);
    /* real: data points picked by (key, index), noised like the generator's samples */
    for (int i = 0; i < d->B; i++) {
      uint32_t w[4];
      rng_u32x4(d->c.seed, RNG_REAL, key, index0(d) + (uint32_t)i, 0, w);
      long idx = (long)(w[0] % (uint32_t)d->data->n);
      memcpy(d->x_h + (size_t)i * d->D, d->data->x + (size_t)idx * d->D, sizeof(float) * (size_t)d->D);
      if (d->c.captions) prompt_row(d, d->labels_real_h + (size_t)i * d->L, idx); /* its own caption */
      else d->labels_real_h[i] = d->data->labels[idx];
    }
    ops->to_device(d->xr, d->x_h, sizeof(float) * (size_t)d->B * d->D);
    ops->to_device(d->labels_real, d->labels_real_h, sizeof(int) * (size_t)d->B * d->L);
    noise_for_dmd(d, d->xt2, d->xr, key);
    step_dump_i32(d->dump, "disc_real_labels", d->labels_real_h, B, d->c.captions ? d->L : 0);
    step_dump_f32(d->dump, "disc_real_x", d->x_h, B, d->D);
    dump_noising(d, "disc_real");
    d->fake->forward(d->fake, d->vfake, d->xt2, d->t2, d->labels_real, d->B);
    gan_term(d, -1.0f, d->c.disc_weight, NULL, d->stats + ST_DISC_REAL * B);
    noise_for_dmd(d, d->xt2, d->x, key | 0x80000000u);
    dump_noising(d, "disc_gen");
    d->fake->forward(d->fake, d->vfake, d->xt2, d->t2, d->labels2, d->B);
    gan_term(d, +1.0f, d->c.disc_weight, NULL, d->stats + ST_DISC_FAKE * B);
  }
  zero_reduce_grads_begin(d->opt_fake, d->fake->grads, &d->sumsq->net);
  if (uses_gan(d)) zero_reduce_grads_begin(d->opt_disc, d->disc->grads, &d->sumsq->disc);
  read_stats(d);
  step_dump_f32(d->dump, "loss_flow", d->stats_h + ST_FLOW * B, B, 0);
  if (uses_gan(d)) {
    step_dump_f32(d->dump, "loss_disc_real", d->stats_h + ST_DISC_REAL * B, B, 0);
    step_dump_f32(d->dump, "loss_disc_gen", d->stats_h + ST_DISC_FAKE * B, B, 0);
  }
  FakeSums sums = {.loss_flow = sum_f(d->stats_h + ST_FLOW * B, B), .loss_disc = 0};
  if (uses_gan(d)) sums.loss_disc = d->c.disc_weight * sum_f(d->stats_h + ST_DISC_REAL * B, 2 * B);
  ALLREDUCE_SUM_FIELDS(&sums);
  o->loss_fake += sums.loss_flow / d->GB;
  o->loss_gan_d += sums.loss_disc / d->GB;
  double norm;
  if (finish_update(d->fake, d->opt_fake, &d->c.opt_fake, u, d->sumsq_h->net, &norm)) return 1;
  o->grad_norm_fake = norm;
  step_dump_f64(d->dump, "grad_norm", &norm, 1, 0);
  if (uses_gan(d) && finish_update(d->disc, d->opt_disc, &d->c.opt_fake, u, d->sumsq_h->disc, &norm)) return 1;
  if (uses_gan(d)) step_dump_f64(d->dump, "grad_norm_disc", &norm, 1, 0);
  return !isfinite(sums.loss_flow) || !isfinite(sums.loss_disc);
}

/* DMD's regression to the teacher's ODE endpoints: lambda_reg mean ||G(e) - x*||^2 on the first
 * student step, pairs picked by (step, global index). Adds into the student's gradients; the
 * per-sample losses stay in the ST_REG row of d->stats. */
static void regression_term(Distill *d, long step) {
  long blocks = d->c.reg_pairs / d->GB;
  long base = (step % blocks) * d->GB + index0(d);
  size_t L = (size_t)d->L;
  memcpy(d->labels_h, d->reg_labels + (size_t)base * L, sizeof(int) * (size_t)d->B * L);
  ops->to_device(d->labels2, d->labels_h, sizeof(int) * (size_t)d->B * L);
  ops->to_device(d->reg_target, d->reg_x + (size_t)base * d->D, sizeof(float) * (size_t)d->B * d->D);
  generator_run(d->gen, d->x, d->labels2, d->B, 1, d->c.seed, REG_KEY, (uint32_t)base);
  ops->mse_forward_backward(d->stats + ST_REG * d->B, d->dx, d->x, d->reg_target, NULL, d->B, d->D,
                            (float)(d->c.lambda_reg / d->GB));
  generator_backward(d->gen, d->dx, d->B);
}

/* One generator update. Returns 0, or nonzero when the student's gradient norm (then its update was
 * skipped) or a loss was not finite. */
static int generator_update(Distill *d, long step, DistillStats *o) {
  uint32_t key = 2u * (uint32_t)step;
  int B = d->B, D = d->D;
  model_zero_grad(d->student);
  int regress = d->c.method == METHOD_DMD && d->c.lambda_reg > 0;
  if (regress) regression_term(d, step);
  draw_prompts(d, key);
  o->k_sim = draw_k(d, key);
  generator_run(d->gen, d->x, d->labels2, B, o->k_sim, d->c.seed, key, index0(d));
  score_samples(d, d->c.method == METHOD_DMDR);
  double s = d->c.method == METHOD_AMD ? d->c.s : 0.0;
  double lrls = d->c.method == METHOD_AMD ? d->c.lambda_rls : 0.0;
  amd_weights(d->alpha_h, d->beta_h, NULL, d->A_h, B, s, lrls);
  fake_weights(d, lrls);
  ops->to_device(d->alpha, d->alpha_h, sizeof(float) * (size_t)B);
  ops->to_device(d->beta, d->beta_h, sizeof(float) * (size_t)B);
  step_dump_group(d->dump, "generator");
  dump_samples(d);
  step_dump_f32(d->dump, "alpha", d->alpha_h, B, 0);
  step_dump_f32(d->dump, "beta", d->beta_h, B, 0);

  /* real teacher on [x_t; x_t] with labels [c; null], fake teacher on x_t with c */
  noise_for_dmd(d, d->xt2, d->x, key);
  dump_noising(d, "dmd");
  if (d->real->shard)
    real_teacher_denoise(&d); /* ZeRO stage 3 gathers the teacher over MPI as it runs */
  else
    ops->graph_run(&d->real_graph, real_teacher_denoise, &d, sizeof d);
  d->fake->forward(d->fake, d->vfake, d->xt2, d->t2, d->labels2, B);
  ops->flow_denoise(d->dfake, d->xt2, d->vfake, d->t2, B, D);
  int beta_fake = d->c.method == METHOD_AMD && d->c.beta_on == AMD_BETA_ON_FAKE;
  ops->dmd_grad(d->dx, d->stats, d->x, d->dreal, d->dreal + (size_t)B * D, d->dfake, d->alpha, d->beta,
                (float)d->c.w, 1.0f / (float)d->GB, beta_fake, B, D);
  if (uses_gan(d)) {
    gan_term(d, -1.0f, d->c.lambda_gan, d->dxt, d->stats + ST_GAN_G * B);
    ops->euler_update(d->dx, d->dxt, d->omt, B, D); /* dx += (1 - t) dL/dx_t */
  }
  if (d->c.method == METHOD_DMDR) ops->axpy(d->dx, (float)(-d->c.lambda_r / d->GB), d->rgrad, (long)B * D);
  generator_backward(d->gen, d->dx, B);
  zero_reduce_grads_begin(d->opt_student, d->student->grads, &d->sumsq->net);

  /* statistics, summed over ranks */
  read_stats(d);
  step_dump_f32(d->dump, "dmd_stats", d->stats_h + ST_DMD * B, B, DMD_NSTATS);
  if (uses_gan(d)) step_dump_f32(d->dump, "loss_gan", d->stats_h + ST_GAN_G * B, B, 0);
  GenSums sums = {0};
  const Mixture *m = d->reward ? d->reward->mix : NULL;
  for (int i = 0; i < B; i++) {
    const float *st = d->stats_h + ST_DMD * B + DMD_NSTATS * i;
    double dist = 0;
    if (m) mixture_nearest_mode(m, d->x_h + (size_t)i * D, &dist);
    double r = d->r_h[i], alpha = d->alpha_h[i], beta = d->beta_h[i];
    sums.loss_dm += st[DMD_STAT_LOSS];
    sums.reward += r, sums.reward_sq += r * r;
    sums.forbidden += d->A_h[i] < 0, sums.off_manifold += dist > 3.0;
    sums.alpha += alpha, sums.alpha_sq += alpha * alpha;
    sums.beta += beta, sums.beta_sq += beta * beta;
    sums.fake_weight += d->fw_h[i];
    sums.norm_dc_x += st[DMD_STAT_DC_X], sums.norm_df_x += st[DMD_STAT_DF_X];
    sums.norm_dc_du += st[DMD_STAT_DC_DU], sums.cos_real_fake += st[DMD_STAT_COS];
  }
  if (uses_gan(d)) sums.loss_gan = d->c.lambda_gan * sum_f(d->stats_h + ST_GAN_G * B, B);
  if (regress) sums.loss_reg = d->c.lambda_reg * sum_f(d->stats_h + ST_REG * B, B);
  ALLREDUCE_SUM_FIELDS(&sums);
  double n = d->GB;
  o->loss_dm = sums.loss_dm / n;
  o->reward_mean = sums.reward / n;
  o->reward_std = sqrt(fmax(0.0, sums.reward_sq / n - o->reward_mean * o->reward_mean));
  o->forbidden_frac = sums.forbidden / n;
  o->off_manifold_frac = m ? sums.off_manifold / n : NAN; /* only measurable where the density is known */
  o->alpha_mean = sums.alpha / n, o->alpha_std = sqrt(fmax(0.0, sums.alpha_sq / n - o->alpha_mean * o->alpha_mean));
  o->beta_mean = sums.beta / n, o->beta_std = sqrt(fmax(0.0, sums.beta_sq / n - o->beta_mean * o->beta_mean));
  o->fw_mean = sums.fake_weight / n;
  o->norm_dc_x = sums.norm_dc_x / n, o->norm_df_x = sums.norm_df_x / n;
  o->norm_dc_du = sums.norm_dc_du / n, o->cos_real_fake = sums.cos_real_fake / n;
  o->loss_gan_g = sums.loss_gan / n, o->loss_reg = sums.loss_reg / n;
  o->loss_reward = -d->c.lambda_r * sums.reward / n;
  double mn = INFINITY, mx = -INFINITY;
  for (int i = 0; i < B; i++) mn = fmin(mn, d->fw_h[i]), mx = fmax(mx, d->fw_h[i]);
  MPI_Allreduce(&mn, &o->fw_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&mx, &o->fw_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);

  for (int i = 0; i < B; i++) {
    d->rec.prompt[i] = d->prompt_h[i];
    d->rec.group[i] = (int)(d->p0 + i / d->c.K);
    d->rec.reward[i] = d->r_h[i], d->rec.advantage[i] = d->A_h[i];
    d->rec.alpha[i] = d->alpha_h[i], d->rec.beta[i] = d->beta_h[i], d->rec.fake_weight[i] = d->fw_h[i];
  }
  d->rec.n = B;
  double norm;
  int failed = finish_update(d->student, d->opt_student, &d->c.opt_student, step, d->sumsq_h->net, &norm);
  o->grad_norm_student = norm;
  step_dump_f64(d->dump, "grad_norm", &norm, 1, 0);
  return failed || !isfinite(o->loss_dm) || !isfinite(o->loss_gan_g) || !isfinite(o->loss_reg);
}

int distill_step(Distill *d, long step, DistillStats *o) {
  memset(o, 0, sizeof *o);
  for (int f = 0; f < d->c.fake_per_gen; f++)
    if (fake_update(d, step * d->c.fake_per_gen + f, o)) return 1;
  o->loss_fake /= d->c.fake_per_gen;
  o->loss_gan_d /= d->c.fake_per_gen;
  return generator_update(d, step, o);
}

void distill_initial_state(Distill *d) {
  long n = model_stored_n(d->real); /* the three store the same range (all of it below ZeRO stage 3) */
  ops->copy(d->student->params, d->real->params, sizeof(float) * (size_t)n);
  ops->copy(d->fake->params, d->real->params, sizeof(float) * (size_t)n);
  if (d->disc) model_init_params(d->disc, d->c.seed);
}

const AdvantageRecords *distill_records(const Distill *d) { return &d->rec; }

int distill_advantage_rows(const Distill *d, long step, double *rows) {
  const AdvantageRecords *r = &d->rec;
  for (int i = 0; i < r->n; i++) {
    double v[DISTILL_NADV] = {(double)step, r->prompt[i], r->group[i], dist_rank(), r->reward[i], r->advantage[i],
                              r->alpha[i], r->beta[i], r->fake_weight[i]};
    memcpy(rows + (size_t)DISTILL_NADV * i, v, sizeof v);
  }
  return r->n;
}
AdamW *distill_opt_student(Distill *d) { return d->opt_student->opt; }
AdamW *distill_opt_fake(Distill *d) { return d->opt_fake->opt; }
AdamW *distill_opt_disc(Distill *d) { return d->opt_disc ? d->opt_disc->opt : NULL; }

void distill_log_memory(const Distill *d) {
  zero_log_memory(d->opt_student, "student", model_gathered_bytes(d->student));
  zero_log_memory(d->opt_fake, "fake", model_gathered_bytes(d->fake));
  if (d->opt_disc) zero_log_memory(d->opt_disc, "disc", model_gathered_bytes(d->disc));
  const Model *r = d->real;
  amd_log("real teacher (frozen), bytes on rank 0: params %ld (%ld of %ld values), gathered buffers %ld\n",
          (long)sizeof(float) * model_stored_n(r), model_stored_n(r), r->num_params, model_gathered_bytes(r));
}

int distill_zero_nets(const Distill *d, int student_ema, ZeroNet out[ZERO_STATS_MAX_NETS]) {
  out[0] = (ZeroNet){"student", d->student, d->opt_student, student_ema};
  out[1] = (ZeroNet){"fake", d->fake, d->opt_fake, 0};
  out[2] = (ZeroNet){"disc", d->disc, d->opt_disc, 0};
  out[3] = (ZeroNet){"real", d->real, NULL, 0};
  return 4;
}

void distill_scale_lr(Distill *d, double scale) {
  AdamWConfig *s = &d->c.opt_student, *f = &d->c.opt_fake;
  s->lr = d->base_student.lr * scale, s->lr_min = d->base_student.lr_min * scale;
  f->lr = d->base_fake.lr * scale, f->lr_min = d->base_fake.lr_min * scale;
}

void distill_lr(const Distill *d, long step, double *lr_student, double *lr_fake) {
  *lr_student = adamw_lr(&d->c.opt_student, step);
  *lr_fake = adamw_lr(&d->c.opt_fake, step * d->c.fake_per_gen);
}

/* Teacher ODE endpoints for DMD's regression: pair n starts from the generator's noise of key
 * REG_KEY and index n, with label n mod C (a caption teacher: caption n mod N of the data), and runs
 * reg_steps Euler steps with guidance w. */
static void make_regression_pairs(Distill *d) {
  int n = d->c.reg_pairs, per = d->B;
  long C = d->c.captions ? d->c.num_captions : d->real->cfg.num_classes;
  d->reg_x = mallocCheck(sizeof(float) * (size_t)n * d->D);
  d->reg_labels = mallocCheck(sizeof(int) * (size_t)n * d->L);
  for (int i = 0; i < n; i++) prompt_row(d, d->reg_labels + (size_t)i * d->L, i % C);
  Sampler *s = sampler_create(d->real, d->c.w, per);
  double *grid = mallocCheck(sizeof(double) * (size_t)(d->c.reg_steps + 1));
  flow_time_grid(grid, d->c.reg_steps, 1.0);
  for (int b = 0; b < n; b += per) {
    int B = n - b < per ? n - b : per;
    ops->randn(d->x, B, d->D, d->c.seed, RNG_GEN, REG_KEY, (uint32_t)b);
    sample_euler(s, d->x, d->reg_labels + (size_t)b * d->L, B, grid, d->c.reg_steps);
    ops->to_host(d->reg_x + (size_t)b * d->D, d->x, sizeof(float) * (size_t)B * d->D);
  }
  free(grid);
  sampler_free(s);
}

Distill *distill_create(const DistillConfig *c, Model *real, Model *fake, Model *student, Model *disc,
                        const Dataset *data, Reward *reward) {
  Distill *d = callocCheck(1, sizeof *d);
  d->c = *c;
  d->base_student = c->opt_student, d->base_fake = c->opt_fake;
  d->real = real, d->fake = fake, d->student = student, d->disc = disc;
  real->inference = 1; /* only ever run forward: it keeps no activations (model.h) */
  d->data = data, d->reward = reward;
  long p1;
  dist_split(c->prompts, &d->p0, &p1);
  d->P_local = (int)(p1 - d->p0);
  d->B = d->P_local * c->K;
  d->D = student->cfg.dim;
  d->GB = c->prompts * c->K;
  int B = d->B, D = d->D, H = fake->feat_dim;
  d->L = model_label_ints(&student->cfg);
  CHECK(!c->captions == !student->cfg.text && (!c->captions || c->num_captions >= 1),
        "distill: %s", student->cfg.text ? "a caption model's prompts need the data's captions"
                                         : "a class model takes no captions");
  int L = d->L;
  CHECK(real->max_batch >= 2 * B && fake->max_batch >= B && student->max_batch >= B, "distill: model batches too small");
  d->opt_student = zero_create(student->num_params, c->zero);
  d->opt_fake = zero_create(fake->num_params, c->zero);
  if (disc) d->opt_disc = zero_create(disc->num_params, c->zero);
  d->gen = generator_create(student, c->S, B);
  d->fb = flow_batch_create(B, D, model_label_ints(&fake->cfg));
  size_t bd = sizeof(float) * (size_t)B * D, bs = sizeof(float) * (size_t)B;
  d->labels2 = ops->alloc(sizeof(int) * 2 * (size_t)B * L);
  d->labels_real = ops->alloc(sizeof(int) * (size_t)B * L);
  d->x = ops->alloc(bd), d->e = ops->alloc(bd), d->vtmp = ops->alloc(bd), d->vfake = ops->alloc(bd);
  d->dfake = ops->alloc(bd), d->dx = ops->alloc(bd), d->dxt = ops->alloc(bd), d->xr = ops->alloc(bd);
  d->rgrad = ops->alloc(bd), d->reg_target = ops->alloc(bd);
  d->xt2 = ops->alloc(2 * bd), d->vreal = ops->alloc(2 * bd), d->dreal = ops->alloc(2 * bd);
  d->t2 = ops->alloc(2 * bs), d->stats = ops->alloc(stats_bytes(B));
  d->sumsq = (SumSq *)(d->stats + STATS_LEN * (size_t)B);
  d->alpha = ops->alloc(bs), d->beta = ops->alloc(bs), d->fw = ops->alloc(bs), d->omt = ops->alloc(bs);
  d->logits = ops->alloc(bs), d->dlogit = ops->alloc(bs), d->dfeat = ops->alloc(bs * (size_t)H);
  d->labels_h = mallocCheck(sizeof(int) * 2 * (size_t)B * L);
  d->labels_real_h = mallocCheck(sizeof(int) * (size_t)B * L);
  d->prompt_h = mallocCheck(sizeof(int) * (size_t)B);
  d->t_h = mallocCheck(2 * bs), d->x_h = mallocCheck(bd);
  d->alpha_h = mallocCheck(bs), d->beta_h = mallocCheck(bs), d->fw_h = mallocCheck(bs), d->omt_h = mallocCheck(bs);
  d->stats_h = mallocCheck(stats_bytes(B));
  d->sumsq_h = (SumSq *)(d->stats_h + STATS_LEN * (size_t)B);
  d->r_h = mallocCheck(sizeof(double) * (size_t)B), d->A_h = mallocCheck(sizeof(double) * (size_t)B);
  d->rec.prompt = mallocCheck(sizeof(int) * (size_t)B), d->rec.group = mallocCheck(sizeof(int) * (size_t)B);
  double **recd[] = {&d->rec.reward, &d->rec.advantage, &d->rec.alpha, &d->rec.beta, &d->rec.fake_weight};
  for (size_t i = 0; i < sizeof recd / sizeof recd[0]; i++) *recd[i] = mallocCheck(sizeof(double) * (size_t)B);
  if (c->method == METHOD_DMD && c->lambda_reg > 0) make_regression_pairs(d);
  return d;
}

void distill_free(Distill *d) {
  if (!d) return;
  zero_free(d->opt_student), zero_free(d->opt_fake), zero_free(d->opt_disc);
  generator_free(d->gen);
  flow_batch_free(d->fb);
  ops->graph_free(d->real_graph);
  ops->free(d->labels2), ops->free(d->labels_real);
  float *dev[] = {d->x, d->e, d->vtmp, d->vfake, d->dfake, d->dx, d->dxt, d->xr, d->rgrad, d->reg_target,
                  d->xt2, d->vreal, d->dreal, d->t2, d->stats, d->alpha, d->beta, d->fw, d->omt,
                  d->logits, d->dlogit, d->dfeat};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) ops->free(dev[i]);
  free(d->labels_h), free(d->labels_real_h), free(d->prompt_h), free(d->t_h), free(d->x_h);
  free(d->alpha_h), free(d->beta_h), free(d->fw_h), free(d->omt_h), free(d->stats_h);
  free(d->r_h), free(d->A_h), free(d->reg_x), free(d->reg_labels);
  free(d->rec.prompt), free(d->rec.group), free(d->rec.reward), free(d->rec.advantage);
  free(d->rec.alpha), free(d->rec.beta), free(d->rec.fake_weight);
  free(d);
}
