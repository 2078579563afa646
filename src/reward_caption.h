/* reward_caption.h: the caption reward of text-prompted distillation (docs/DESIGN.md section 4.8):
 * how well a canvas shows its caption, read by a cell classifier (an 11-class classifier of one
 * cell, trained by `amd train task=reward` on the cells of `amd data cells`).
 * The classifier reads the canvas's CAPTION_CELLS cells independently: cell j shows outcome k (a
 * class, or CAPTION_EMPTY) with p_j(k) = softmax(z_j)_k. The reward is the log-probability that the
 * canvas, so read, holds the caption:
 *   R(x, c) = log sum_{A in S(c)} prod_j p_j(A_j),   S(c) = {A : caption_holds(c, items of A)}
 * exact, over the assignments A of outcomes to the cells (11^4 of them, enumerated once per
 * distinct caption and cached: S(c) is small, 1 to 12 assignments). Its logit gradient is
 *   dR/dz_jk = sum_A w_A (1[A_j = k] - p_j(k)) = q_j(k) - p_j(k),   w_A = prod_j p_j(A_j) / e^R
 * (q_j: the posterior of cell j's outcome given that the canvas holds c), and the classifier's
 * backward carries it into the cells and, through unpatchify, the canvas.
 * Not here: choosing a reward for a run (reward.h), the GenEval-like score (metrics_caption.h).
 * Return convention: a caption that does not parse stops the program (amd_fatal, naming the
 * sample); functions return void or their result. */
#pragma once

#include "caption.h"
#include "classifier.h"

/* S(c): the assignments of outcomes to the cells that hold a caption */
typedef struct {
  int n;
  unsigned char (*a)[CAPTION_CELLS];
} CaptionAssignments;

/* S(c) into s (s->a allocated; caption_assignments_free releases it) */
void caption_assignments(const Caption *c, CaptionAssignments *s);
void caption_assignments_free(CaptionAssignments *s);

/* log P(the cells hold s) of the logits (CAPTION_CELLS rows of CAPTION_OUTCOMES), and when dlogits
 * is not NULL its gradient dR/dz into dlogits (same shape). -inf when no assignment has mass. */
double caption_log_prob(const float *logits, const CaptionAssignments *s, float *dlogits);

typedef struct {
  Classifier *cls;        /* borrowed: the cell classifier, max_batch >= CAPTION_CELLS x max_batch */
  int max_batch;          /* canvases per call */
  int side, cell;         /* canvas and cell side in pixels (side = CAPTION_GRID cell) */
  float *cells, *dcells;  /* backend (CAPTION_CELLS max_batch, cell^2): the crops and their gradient */
  float *dlogits_h;       /* host (CAPTION_CELLS max_batch, CAPTION_OUTCOMES) */
  CaptionAssignments **cache; /* S(c) per caption key, built on first use */
  const CaptionAssignments **of_sample; /* (max_batch) S(c_i) of the batch being scored */
} CaptionReward;

/* The caption reward on canvases of side x side pixels, read by cls; a classifier that is not an
 * 11-class one of a single cell (side / CAPTION_GRID squared pixels) is a usage error naming `what`
 * (the checkpoint). */
CaptionReward *caption_reward_create(Classifier *cls, int side, int max_batch, const char *what);
/* reward (B, host) = R(x_i, c_i) of the canvases x (B, side^2, backend memory) with the captions
 * tokens (B, CAPTION_MAX_TOKENS, host); when grad is not NULL, dR/dx into grad (B, side^2, backend). */
void caption_reward_eval(CaptionReward *r, double *reward, float *grad, const float *x, const int *tokens, int B);
void caption_reward_free(CaptionReward *r);
