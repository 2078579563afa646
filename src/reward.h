/* reward.h: the rewards of the distillation methods (docs/DESIGN.md section 4.8, "Rewards"). A
 * Reward is what distillation sees: R(x, c) of a batch in backend memory and its input gradient, from one of
 *   toy         the analytic reward below (toy 2-D data)
 *   classifier  log p(c | x) of a trained reward network (images; src/classifier.h)
 *   caption     log P(the canvas holds caption c) of a cell classifier (captioned canvases;
 *               src/reward_caption.h); labels are then the captions' token ids
 * The toy reward: 
 *   R(x, c) = log sum_{k in modes(c)} p_k w_k N(x; mu_k, (b sigma)^2 I)
 * the log-density of the class-c mixture, each mode's weight scaled by a preference p_k (a run can
 * ask for a subset of modes: p = 1 for wanted modes, small for the rest) and the kernel widened by
 * the bandwidth b (1: the exact density). Its gradient in x is what DMDR adds to the generator.
 * Evaluated on the host: toy batches are tiny.
 * Return convention: errors stop the program (amd_fatal); functions return void or their result,
 * the predicate reward_reads_host 1 for true. */
#pragma once

#include "classifier.h"
#include "reward_caption.h"
#include "toy2d.h"

typedef struct {
  const Mixture *mix;
  double preference[1024]; /* p_k per mode */
  double bandwidth;        /* b */
} ToyReward;

/* pref_text: "" (all 1) or a comma-separated list of one value per mode. */
void reward_toy_init(ToyReward *r, const Mixture *mix, const char *pref_text, double bandwidth);
/* r (B) = R(x_i, c_i); grad (B, 2) = dR/dx when not NULL. x (B, 2) host. */
void reward_toy(const ToyReward *r, double *reward, float *grad, const float *x, const int *labels, int B);

typedef struct {
  ToyReward toy;          /* when cls is NULL */
  Classifier *cls;        /* owned; a class reward's network, or the caption reward's cell classifier */
  CaptionReward *caption; /* owned, when the data are captioned canvases (reading cls) */
  const Mixture *mix;     /* toy data: the true mixture (the off-manifold statistic); NULL for images */
  float *grad_h;          /* the toy gradient's host scratch (grad_n floats), grown on demand */
  long grad_n;
} Reward;

void reward_init_toy(Reward *r, const Mixture *mix, const char *pref_text, double bandwidth);
/* the net "classifier" of a checkpoint (file or run folder) as R(x, c) = log p(c | x) */
void reward_init_classifier(Reward *r, const char *ckpt, int max_batch);
/* The reward of a distillation on `data` (the file data_path), initialized in r: the toy reward
 * (pref_text, bandwidth) when the data holds a mixture; the caption reward when it holds captions
 * (ckpt must be a cell classifier: 11 classes of one cell); else the classifier of checkpoint ckpt
 * (batches up to max_batch; it must fit the data). With neither, NULL, unless needed_by names the
 * method that needs a reward: then a usage error. The errors name the config key at fault. */
Reward *reward_select(Reward *r, const Dataset *data, const char *data_path, const char *ckpt, const char *pref_text,
                      double bandwidth, int max_batch, const char *needed_by);
/* The same for prompts of label_ints ints per sample (model_label_ints of the teacher): the caption
 * reward reads token rows, so on captioned data a class teacher's prompts (label_ints 1) are a
 * usage error once the checkpoint is found to be a cell classifier. reward_select is this with 1. */
Reward *reward_select_for(Reward *r, const Dataset *data, const char *data_path, const char *ckpt, const char *pref_text,
                          double bandwidth, int max_batch, int label_ints, const char *needed_by);
/* 1 when reward_eval reads the samples' host copy (the toy reward); a classifier reads the device's */
int reward_reads_host(const Reward *r);
/* ints per sample of reward_eval's labels: CAPTION_MAX_TOKENS for the caption reward (token
 * rows), else 1 (a class); reward_select_for has checked them against the caller's. */
int reward_label_ints(const Reward *r);
/* reward (B, host) of the samples x (B, dim) and, when grad is not NULL, dR/dx into grad (B, dim).
 * x and grad are backend memory; x_host is x's host copy where reward_reads_host, else unused.
 * labels (host): a class per sample, or for the caption reward (B, CAPTION_MAX_TOKENS) token ids
 * (a caption model's model_label_ints rows). */
void reward_eval(Reward *r, double *reward, float *grad, const float *x, const float *x_host, const int *labels, int B);
void reward_free(Reward *r);
