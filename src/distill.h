/* distill.h: the distillation methods on one code path (docs/DESIGN.md section 4): DMD, DMD2, DMDR
 * and AMD.
 * Networks: the real teacher (frozen), the fake teacher (learns the student's distribution by flow
 * matching) and the student (an S-step generator), both trainable ones starting from the teacher;
 * DMD2, DMDR and AMD add a GAN head on the fake teacher's features. One distillation step is
 * `fake_per_gen` fake-teacher updates followed by one generator update. The global batch is
 * P prompts x K group members; ranks split the prompts, so a group never spans ranks.
 * Return convention: distill_step and method_from_name return 0 on success, nonzero on failure;
 * every other error stops the program (amd_fatal). Not here: the command line, logging and
 * checkpoints (cmd_distill.c). */
#pragma once
#include <stdint.h>

#include "dataset.h"
#include "flow.h"
#include "generator.h"
#include "model.h"
#include "optim.h"
#include "reward.h"
#include "stepdump.h"
#include "zero_stats.h"

typedef enum { METHOD_DMD, METHOD_DMD2, METHOD_DMDR, METHOD_AMD, METHOD_COUNT } Method;
/* Every method_name in Method's order, as a cfg_key choices string (config.h). */
#define METHOD_CHOICES "dmd|dmd2|dmdr|amd"

/* AMD's variants (docs/DESIGN.md section 4.7): where beta acts, on the whole distribution-matching
 * term (Eq. 10) or only on the fake teacher's repulsion; and whether the Repulsive Landscape
 * Sharpening weights are raw or normalized to mean 1 over each group. Choices strings in order. */
typedef enum { AMD_BETA_ON_DM, AMD_BETA_ON_FAKE } AmdBetaOn;
#define AMD_BETA_ON_CHOICES "dm|fake"
typedef enum { AMD_RLS_RAW, AMD_RLS_MEAN1 } AmdRlsNorm;
#define AMD_RLS_NORM_CHOICES "raw|mean1"

typedef struct {
  Method method;
  int S;               /* student steps */
  double w;            /* guidance scale of the real teacher */
  double t_min, t_max; /* t range of the distribution-matching loss */
  int fake_per_gen;    /* fake-teacher updates per generator update */
  double lambda_reg, lambda_gan, lambda_r, disc_weight;
  double s, lambda_rls, eps; /* AMD: sensitivity, repulsive sharpening, advantage epsilon */
  AmdBetaOn beta_on;         /* AMD: where beta acts */
  AmdRlsNorm rls_norm;       /* AMD: raw or group-normalized sharpening weights */
  double spread_floor;       /* f: a group's reward std counts as at least f x the global batch's */
  int prompts, K;      /* global batch = prompts x K */
  int reg_pairs, reg_steps; /* DMD regression: teacher ODE pairs and their Euler steps */
  uint64_t seed;
  AdamWConfig opt_student, opt_fake;
  int zero;            /* ZeRO stage of the student's, fake teacher's and GAN head's optimizers */
  /* A caption teacher (text mode): the training data's captions, (num_captions, max_text) token ids
   * (the caller's; the data's n rows), which the prompts are drawn from. NULL: class labels. */
  const int *captions;
  long num_captions;
} DistillConfig;

/* Per-step measurements; means over the global batch. */
typedef struct {
  double loss_dm, loss_fake, loss_gan_g, loss_gan_d, loss_reg, loss_reward;
  double grad_norm_student, grad_norm_fake;
  double reward_mean, reward_std, forbidden_frac, off_manifold_frac;
  double alpha_mean, alpha_std, beta_mean, beta_std, fw_mean, fw_min, fw_max;
  double norm_dc_x, norm_df_x, norm_dc_du, cos_real_fake;
  int k_sim;
} DistillStats;

/* Per-sample records of the generator batch (this rank's share), for /advantage. prompt: the class
 * label, or for a caption teacher the caption's index in the data. */
typedef struct {
  int n;
  int *prompt, *group;
  double *reward, *advantage, *alpha, *beta, *fake_weight;
} AdvantageRecords;

typedef struct Distill Distill;

/* reward may be NULL (dmd, dmd2 on data without one): rewards, advantages and AMD weights are 0, 0, 1 */
Distill *distill_create(const DistillConfig *c, Model *real, Model *fake, Model *student, Model *disc,
                        const Dataset *data, Reward *reward);
void distill_free(Distill *d);
/* The Adam moments of each trainable network (of this rank's shard under ZeRO), for checkpoints;
 * NULL for the GAN head of a run without one. */
AdamW *distill_opt_student(Distill *d);
AdamW *distill_opt_fake(Distill *d);
AdamW *distill_opt_disc(Distill *d);
/* Rank 0 prints the per-rank memory of each trainable network's training state. */
void distill_log_memory(const Distill *d);
/* The four networks as the log's communication and memory columns name them, into out: student
 * (student_ema: it keeps an EMA), fake, disc (model NULL without a GAN head) and real (frozen: no
 * optimizer). Returns 4. */
int distill_zero_nets(const Distill *d, int student_ema, ZeroNet out[ZERO_STATS_MAX_NETS]);
/* The learning rates of the student and of the fake teacher (and GAN head): as configured, times
 * scale (the divergence guard's backoff after rollbacks). */
void distill_scale_lr(Distill *d, double scale);
/* The learning rates of step `step`: the student's, and the fake teacher's at its own update count
 * (step x fake_per_gen). */
void distill_lr(const Distill *d, long step, double *lr_student, double *lr_fake);
/* One step `step` (0-based): fake updates then a generator update. Returns 0, or nonzero when a loss
 * or a gradient norm was not finite. The step then ends after the update that saw it (a non-finite
 * norm skipped that network's AdamW step; the updates before it stand) with *out partly filled: the
 * caller must not go on from these weights but roll back to a checkpoint (cmd_distill's guard). */
int distill_step(Distill *d, long step, DistillStats *out);
/* The start of a distillation (and the target of a rollback without a checkpoint): the student and
 * the fake teacher are the real teacher, the GAN head is drawn from the seed. Optimizer moments are
 * the caller's (src/runloop.c zeroes them). */
void distill_initial_state(Distill *d);
const AdvantageRecords *distill_records(const Distill *d);
/* Testing (fault.dump_step): the steps that follow write what each update drew and its per-sample
 * losses into dump (io/stepdump.h; groups /fake<f> and /generator) until it is set back to NULL. */
void distill_set_dump(Distill *d, StepDump *dump);
/* The /advantage table: one row per sample, these columns. */
#define DISTILL_ADVANTAGE_COLS "step", "prompt", "group", "rank", "reward", "advantage", "alpha", "beta", "fake_weight"
enum { DISTILL_NADV = 9 };
/* This rank's records of the last step as /advantage rows of `step` (rows has room for
 * distill_records(d)->n of them); returns their count. */
int distill_advantage_rows(const Distill *d, long step, double *rows);

/* Group-relative advantage (AMD eq.): over consecutive groups of K rewards,
 * A_i = clip((r_i - mean_g) / (max(std_g, std_floor) + eps), -1, 1), std the population standard
 * deviation; std_floor >= 0 is absolute (amd.spread_floor times the batch's reward std: distill.c). */
void amd_advantages(double *A, const double *r, int n, int K, double eps, double std_floor);
/* Dynamic Score Adaptation alpha = 1 + s A, beta = 1 - s A, and Repulsive Landscape Sharpening
 * weight W = exp(-lambda_rls A). Any output may be NULL. */
void amd_weights(float *alpha, float *beta, float *fake_weight, const double *A, int n, double s, double lambda_rls);
/* The sharpening weights of amd.rls_norm=mean1: W_i = exp(-lambda_rls A_i) / mean_g exp(-lambda_rls A_j)
 * over each consecutive group of K, so every group's weights sum to K. */
void amd_weights_mean1(float *fake_weight, const double *A, int n, int K, double lambda_rls);
/* The prompt of global prompt index p in the update of key `key`: a uniform draw of choices (the
 * classes, or a caption teacher's captions), the same at any rank count. */
long distill_prompt_index(uint64_t seed, uint32_t key, long p, long choices);
/* "dmd", "dmd2", "dmdr" or "amd"; fatal for anything but a Method below METHOD_COUNT. */
const char *method_name(Method m);
/* The method whose method_name is `name` into *out: returns 0, or nonzero (*out untouched) when
 * there is none; the caller reports the error, naming METHOD_CHOICES. */
int method_from_name(const char *name, Method *out);
