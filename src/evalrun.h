/* evalrun.h: held-out metrics while a network trains (the eval.* keys of `amd train task=teacher`
 * and `amd distill`; docs/DESIGN.md sections 6 and 8). At step 0 of a fresh run, every eval.every
 * steps and at the last step, the ranks draw the eval.n samples of a fixed noise set with the
 * current weights, each rank its share (a teacher: eval.steps Euler steps, no guidance; a student:
 * its own S-step generator), rank 0 gathers them and computes the metrics of `amd eval`
 * (src/eval_metrics.h): on 2-D toy data the exact toy metrics, on images the Frechet distance,
 * precision, recall and class accuracy in the features of the evaluator eval.evaluator against the
 * images of eval.data. Each evaluation is a row of the log's /eval table.
 * A caption model's samples (text mode) are scored on captions (metrics_caption.h): the GenEval-like
 * score per category, seen and held out, and FD, precision and recall in the cell features of
 * eval.evaluator (a cell classifier) against eval.data's canvases, whose captions are the prompts.
 * The noise set: sample i asks for class i mod C (a caption model: caption i mod M of eval.data,
 * its first M = min(n, N) captions, the same at every evaluation and rank count), and its noise is keyed by the run's seed with
 * EVAL_KEY in the upper word (evalrun_noise_seed), which no training seed has: the training draws
 * nothing of it, every evaluation of a run sees the same noise, and the samples are those of
 * `amd sample ckpt=<checkpoint of that step> seed=<seed> noise=eval n=<eval.n>` (a caption model:
 * prompts=<a file of those M captions>; in the same batches
 * at the same rank count, so the same numbers).
 * The training does not change: the parameters are copied into the evaluation's own model, whose
 * buffers and draws are its own.
 * Weights: evalrun_measure evaluates any parameter vector of the network's layout: the raw weights
 * (EVAL_WEIGHTS_RAW) and, where a run keeps one, an exponential moving average (EVAL_WEIGHTS_EMA);
 * the /eval column `weights` tells them apart.
 * Return convention: evalrun_create stops with a usage error on settings or data it cannot evaluate;
 * every other failure stops the program (amd_fatal). */
#pragma once
#include <stdint.h>

#include "config.h"
#include "ema.h"
#include "dataset.h"
#include "model.h"
#include "trainlog.h"

#define EVAL_KEY 0x6576616cULL /* "eval" */
#define EVALRUN_MAX_COLS 16

enum { EVAL_WEIGHTS_RAW = 0, EVAL_WEIGHTS_EMA = 1 };

/* The 64-bit Philox seed of the evaluation's noise for a run of seed `seed`. */
static inline uint64_t evalrun_noise_seed(uint64_t seed) { return seed ^ (EVAL_KEY << 32); }

/* The eval.* settings; a command's config struct embeds them as its member `ev`. */
typedef struct {
  int every, n, steps;
  char data[CFG_STR_MAX], evaluator[CFG_STR_MAX];
} EvalSettings;

/* The keys eval.every, eval.n, eval.data and eval.evaluator through the command's K(name, type,
 * field, ...) macro (a teacher adds eval.steps). */
#define EVALRUN_KEYS(K)                                                                                          \
  K("eval.every", CFG_INT, ev.every, "0", 0, 1000000000, NULL,                                                  \
    "steps between held-out evaluations, rows of the log's /eval (also at step 0 and the last step); 0 = none"), \
  K("eval.n", CFG_INT, ev.n, "0", 0, 100000000, NULL,                                                           \
    "samples of each evaluation (a fixed noise set); 0: 4096 for 2-D data, 1000 for images"),                   \
  K("eval.data", CFG_PATH, ev.data, "", 0, 0, NULL,                                                             \
    "dataset the samples are compared with (images: the reference images, e.g. the test split; a caption model: "    \
    "its captions too); default: the run's"), \
  K("eval.evaluator", CFG_PATH, ev.evaluator, "", 0, 0, NULL,                                                   \
    "images: evaluator classifier (amd train task=evaluator; a caption model: a cell classifier) of the metrics; "  \
    "without one, images get no /eval rows")

typedef struct EvalRun EvalRun;

/* Every rank calls it, before the run folder is touched. NULL when es->every is 0, or on images
 * without es->evaluator (a message says so). mc: the network evaluated; sampler "euler" (`steps`
 * Euler steps) or "generator" (a student of `steps` steps); data: the run's dataset at data_path,
 * the reference unless es->data names another; seed: the run's. Rank 0 reads the reference and
 * the evaluator and computes what stays fixed (the reference's features). */
EvalRun *evalrun_create(const EvalSettings *es, const ModelConfig *mc, const char *sampler, int steps,
                        const Dataset *data, const char *data_path, uint64_t seed);
/* Rank 0 prints what the evaluation does (after the command's table of settings); NULL: nothing. */
void evalrun_print(const EvalRun *e);
/* The /eval columns ("step" first) for this run's data; returns their count. */
int evalrun_cols(const EvalRun *e, const char *const **cols);
/* Collective: the metrics of the network with parameters `params` (backend memory, the model's
 * num_params floats) as a row of table (rank 0): step, weights (EVAL_WEIGHTS_*), then the metrics;
 * rank 0 prints them. Non-finite samples give NaN metrics (modes_covered 0) and a message. */
void evalrun_measure(EvalRun *e, const float *params, int weights, long step, TrainLog *table);
/* Collective: the rows of the raw weights of network m, then, when ema is not NULL, of its EMA
 * (each rank's part, its stored range of m at ZeRO stage 3, gathered into the evaluation's own
 * network, which is whole: zero_gather_parts). */
void evalrun_measure_weights(EvalRun *e, const Model *m, const Ema *ema, long step, TrainLog *table);
void evalrun_free(EvalRun *e);
