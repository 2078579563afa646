/* evalrun.c: held-out metrics while a network trains (evalrun.h). */
#include "evalrun.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caption.h"
#include "captions.h"
#include "common.h"
#include "dist.h"
#include "eval_metrics.h"
#include "metrics_caption.h"
#include "ops.h"
#include "sampling.h"
#include "zero.h"

enum { TOY_N = 4096, IMAGE_N = 1000, MIN_IMAGES = 10 };
enum { TOY_BATCH = 1024, IMAGE_BATCH = 100 }; /* amd sample's batch=0: the same batches, the same numbers */

static const char *const toy_cols[] = {"step", "weights", "samples", "nfe", "coverage", "modes_covered",
                                       "off_manifold", "mass_error", "wrong_class", "sliced_w1", "log_density",
                                       "seconds"};
static const char *const image_cols[] = {"step", "weights", "samples", "nfe", "fd", "precision", "recall",
                                         "accuracy", "seconds"};
/* a caption model's: metrics_caption's score (amd eval's geneval_* names) and canvas metrics */
static const char *const caption_cols[] = {"step", "weights", "samples", "nfe", "geneval_overall", "geneval_single",
                                           "geneval_two", "geneval_counting", "geneval_position", "geneval_seen",
                                           "geneval_heldout", "fd", "precision", "recall", "seconds"};
enum { NTOY = sizeof toy_cols / sizeof toy_cols[0], NIMAGE = sizeof image_cols / sizeof image_cols[0],
       NCAPTION = sizeof caption_cols / sizeof caption_cols[0] };

struct EvalRun {
  int images, text, D, every, steps;
  char sampler[16], evaluator[CFG_STR_MAX], ref_path[4200]; /* for evalrun_print */
  uint64_t run_seed;
  long n, i0, local;   /* all samples; this rank's share [i0, i0 + local) */
  uint64_t seed;       /* evalrun_noise_seed of the run's */
  Model *net;          /* the evaluation's own copy of the network */
  SampleDraw *draw;
  float *x;            /* host (local, D) this rank's samples */
  int *labels;         /* host (local): the class, or for a caption model the caption's index */
  long M;              /* a caption model: its prompts, the first M captions of the reference */
  int *tokens;         /* (M, CAPTION_MAX_TOKENS) their token ids, on every rank */
  int *model_labels;   /* host (local, CAPTION_MAX_TOKENS): each sample's caption's tokens */
  /* rank 0 */
  const Dataset *ref;  /* the data compared with: the run's or own_ref */
  Dataset own_ref;     /* eval.data, when given */
  float *toy_ref;      /* toy: the sliced W1's reference points (nref, 2) */
  long nref;
  ImageReference *img; /* images: the evaluator and the reference's features */
  CaptionSet caps;     /* a caption model: the reference's captions */
  CaptionReference *cap; /* the evaluator cell classifier and the reference's features */
};

/* The reference of eval.data (rank 0): a dataset of the network's shape and, for toy data, of the
 * run's mixture. */
static void read_reference(EvalRun *e, const EvalSettings *es, const ModelConfig *mc, const char *data_path) {
  dataset_read(es->data, "amd-dataset", &e->own_ref);
  char what[160];
  snprintf(what, sizeof what, "the network evaluated (%s, dim %d)", mc->kind, mc->dim);
  dataset_check_fits(&e->own_ref, "eval.data", es->data, mc->dim, e->text ? e->own_ref.num_classes : mc->num_classes,
                     what);
  if (!e->images) dataset_check_same_target(&e->own_ref, "eval.data", es->data, data_path, "the run");
  e->ref = &e->own_ref;
}

/* A caption model's reference (rank 0): its captions, in the model's vocabulary, and the evaluator
 * cell classifier's features of its canvases. */
static void caption_reference(EvalRun *e, const EvalSettings *es, const ModelConfig *mc) {
  if (!captions_read(e->ref_path, e->ref->n, e->ref->num_classes, &e->caps))
    amd_usage_error("config key 'eval.data': '%s' holds no /captions; the held-out metrics of a caption model compare "
                    "its canvases with a captioned split (amd data compose: its out_test)", e->ref_path);
  int same = e->caps.vocab_size == mc->vocab && e->caps.max_tokens == mc->max_text &&
             mc->vocab == caption_vocab_size() && mc->max_text == CAPTION_MAX_TOKENS;
  int word = 0; /* the first token id whose word is not amd's */
  while (same && word < e->caps.vocab_size && strcmp(e->caps.vocab[word], caption_word(word)) == 0) word++;
  if (!same || word < e->caps.vocab_size) {
    char which[160] = "";
    if (same) snprintf(which, sizeof which, "; its token %d is '%.40s', amd's '%s'", word, e->caps.vocab[word],
                       caption_word(word));
    amd_usage_error("config key 'eval.data': the captions of '%s' (%d words, %d tokens each%s) are not in the "
                    "vocabulary of the network evaluated (%d words, %d tokens each, amd's captions): use a split of amd "
                    "data compose", e->ref_path, e->caps.vocab_size, e->caps.max_tokens, which, mc->vocab, mc->max_text);
  }
  if (e->ref->n < MIN_IMAGES)
    amd_usage_error("config key 'eval.data': '%s' holds %ld canvases; caption metrics need at least %d", e->ref_path,
                    e->ref->n, MIN_IMAGES);
  e->cap = caption_reference_create(es->evaluator, "eval.evaluator", EVAL_BATCH, e->ref, &e->caps);
}

/* A caption model's prompts: sample i takes caption i mod M of the reference, M = min(n, its N),
 * read by rank 0 and sent to every rank. */
static void caption_prompts(EvalRun *e) {
  if (dist_rank() == 0) e->M = e->n < e->caps.n ? e->n : e->caps.n;
  mpiCheck(MPI_Bcast(&e->M, 1, MPI_LONG, 0, MPI_COMM_WORLD));
  e->tokens = mallocCheck(sizeof(int) * (size_t)e->M * CAPTION_MAX_TOKENS);
  if (dist_rank() == 0) memcpy(e->tokens, e->caps.tokens, sizeof(int) * (size_t)e->M * CAPTION_MAX_TOKENS);
  mpiCheck(MPI_Bcast(e->tokens, (int)(e->M * CAPTION_MAX_TOKENS), MPI_INT, 0, MPI_COMM_WORLD));
  e->model_labels = mallocCheck(sizeof(int) * (size_t)(e->local ? e->local : 1) * CAPTION_MAX_TOKENS);
  for (long i = 0; i < e->local; i++) {
    e->labels[i] = (int)((e->i0 + i) % e->M);
    memcpy(e->model_labels + i * CAPTION_MAX_TOKENS, e->tokens + (size_t)e->labels[i] * CAPTION_MAX_TOKENS,
           sizeof(int) * CAPTION_MAX_TOKENS);
  }
}

EvalRun *evalrun_create(const EvalSettings *es, const ModelConfig *mc, const char *sampler, int steps,
                        const Dataset *data, const char *data_path, uint64_t seed) {
  if (es->every <= 0) return NULL;
  int images = data->ndim == 3;
  if (!images && !(data->dim == 2 && data->has_mixture))
    amd_usage_error("config key 'eval.every' = %d: held-out metrics need images or 2-D toy data with its mixture "
                    "(amd data toy2d); '%s' holds vectors of %d%s", es->every, data_path, data->dim,
                    data->dim == 2 ? " without a /mixture" : "");
  if (mc->text && !images)
    amd_usage_error("config key 'eval.every' = %d: a caption model's held-out metrics need canvases; '%s' holds "
                    "vectors of %d", es->every, data_path, data->dim);
  if (!images && es->evaluator[0])
    amd_usage_error("config key 'eval.evaluator': toy 2-D data is measured exactly from its mixture; an evaluator is "
                    "for images (leave eval.evaluator empty)");
  long n = es->n > 0 ? es->n : images ? IMAGE_N : TOY_N;
  if (images && n < MIN_IMAGES)
    amd_usage_error("config key 'eval.n' = %ld: image metrics need at least %d samples", n, MIN_IMAGES);
  if (images && !es->evaluator[0]) {
    amd_log("eval.every = %d: %s metrics need an evaluator (eval.evaluator=<run of amd train task=evaluator%s>); "
            "none given, so this run writes no /eval rows\n", es->every, mc->text ? "caption" : "image",
            mc->text ? " on the cells of captioned canvases (amd data cells)" : "");
    return NULL;
  }
  EvalRun *e = callocCheck(1, sizeof *e);
  e->images = images, e->text = mc->text, e->D = mc->dim, e->n = n, e->seed = evalrun_noise_seed(seed);
  e->every = es->every, e->steps = steps, e->run_seed = seed;
  snprintf(e->sampler, sizeof e->sampler, "%s", sampler);
  snprintf(e->evaluator, sizeof e->evaluator, "%s", es->evaluator);
  snprintf(e->ref_path, sizeof e->ref_path, "%s", es->data[0] ? es->data : data_path);
  long i1;
  dist_split(n, &e->i0, &i1);
  e->local = i1 - e->i0;
  e->x = mallocCheck(sizeof(float) * (size_t)(e->local ? e->local : 1) * e->D);
  e->labels = mallocCheck(sizeof(int) * (size_t)(e->local ? e->local : 1));
  for (long i = 0; i < e->local; i++) e->labels[i] = (int)((e->i0 + i) % mc->num_classes);
  int per_call = (int)(n < (images ? IMAGE_BATCH : TOY_BATCH) ? n : images ? IMAGE_BATCH : TOY_BATCH);
  e->net = model_create_flags(mc, per_call, MODEL_INFERENCE);
  e->draw = sample_draw_create(e->net, sampler, steps, 1.0, 1.0, per_call);
  if (dist_rank() == 0) {
    e->ref = data;
    if (es->data[0]) read_reference(e, es, mc, data_path);
    if (e->text) caption_reference(e, es, mc);
  }
  if (e->text) caption_prompts(e);
  if (dist_rank() != 0 || e->text) return e;

  if (images) {
    if (e->ref->n < MIN_IMAGES)
      amd_usage_error("config key 'eval.data': '%s' holds %ld images; image metrics need at least %d",
                      es->data[0] ? es->data : data_path, e->ref->n, MIN_IMAGES);
    e->img = image_reference_create(es->evaluator, "eval.evaluator", EVAL_BATCH, e->ref, "the network evaluated");
  } else {
    int *all = mallocCheck(sizeof(int) * (size_t)n);
    for (long i = 0; i < n; i++) all[i] = (int)(i % mc->num_classes);
    e->nref = eval_toy_reference(e->ref, all, n, EVAL_SW_MAX_REF, &e->toy_ref);
    free(all);
  }
  return e;
}

void evalrun_print(const EvalRun *e) {
  if (!e) return;
  amd_log("eval: every %d steps, %ld samples (%s, %d step%s) of the noise set of amd sample seed=%llu noise=eval",
          e->every, e->n, e->sampler, e->steps, e->steps == 1 ? "" : "s", (unsigned long long)e->run_seed);
  if (dist_rank() != 0) return;
  if (e->text)
    amd_log(", caption i mod %ld of %s, evaluator %s (GenEval-like score %.4f of its canvases)\n", e->M, e->ref_path,
            e->evaluator, caption_share(e->cap->of_data.pass_all, e->cap->of_data.n_all));
  else if (e->images)
    amd_log(", evaluator %s (accuracy %.4f on the %ld reference images of %s)\n", e->evaluator, e->img->accuracy,
            e->ref->n, e->ref_path);
  else
    amd_log(", against the mixture of %s\n", e->ref_path);
}

int evalrun_cols(const EvalRun *e, const char *const **cols) {
  *cols = e->text ? caption_cols : e->images ? image_cols : toy_cols;
  return e->text ? NCAPTION : e->images ? NIMAGE : NTOY;
}

/* Rank 0: the metrics of the gathered samples into row[4..], and the message's text. */
static void metrics_of(EvalRun *e, const float *x, const int *labels, long n, double *row, char *msg, size_t size) {
  if (e->text) { /* the samples' captions: the tokens of their caption indices */
    int *tokens = mallocCheck(sizeof(int) * (size_t)n * CAPTION_MAX_TOKENS);
    for (long i = 0; i < n; i++)
      memcpy(tokens + i * CAPTION_MAX_TOKENS, e->tokens + (size_t)labels[i] * CAPTION_MAX_TOKENS,
             sizeof(int) * CAPTION_MAX_TOKENS);
    CaptionMetrics m;
    caption_metrics(&m, e->cap, x, tokens, n, EVAL_PR_K, e->n);
    free(tokens);
    const CaptionScore *s = &m.score;
    double v[] = {caption_share(s->pass_all, s->n_all), caption_share(s->pass[CAPTION_SINGLE], s->n[CAPTION_SINGLE]),
                  caption_share(s->pass[CAPTION_TWO], s->n[CAPTION_TWO]),
                  caption_share(s->pass[CAPTION_COUNTING], s->n[CAPTION_COUNTING]),
                  caption_share(s->pass[CAPTION_POSITION], s->n[CAPTION_POSITION]),
                  caption_share(s->pass_seen, s->n_seen), caption_share(s->pass_held, s->n_held), m.fd, m.precision,
                  m.recall};
    memcpy(row + 4, v, sizeof v);
    snprintf(msg, size, "GenEval-like %.4f (seen %.4f, held out %.4f), FD %.4g, precision %.4f, recall %.4f", v[0],
             v[5], v[6], m.fd, m.precision, m.recall);
    return;
  }
  if (e->images) {
    ImageMetrics m;
    image_metrics(&m, e->img, x, labels, n, EVAL_PR_K, e->n);
    row[4] = m.fd, row[5] = m.precision, row[6] = m.recall, row[7] = m.accuracy;
    snprintf(msg, size, "FD %.4g, precision %.4f, recall %.4f, accuracy %.4f", m.fd, m.precision, m.recall, m.accuracy);
    return;
  }
  ToyMetrics t;
  toy_metrics(&t, &e->ref->mix, x, labels, n, e->toy_ref, e->nref, EVAL_SW_PROJECTIONS, 0);
  double v[] = {t.coverage, t.modes_covered, t.off_manifold, t.mass_error, t.wrong_class, t.sliced_w1, t.log_density};
  memcpy(row + 4, v, sizeof v);
  snprintf(msg, size, "off-manifold %.4f, coverage %.3f, mass error %.4f, wrong class %.4f, sliced W1 %.5f, "
           "log density %.3f", t.off_manifold, t.coverage, t.mass_error, t.wrong_class, t.sliced_w1, t.log_density);
}

void evalrun_measure(EvalRun *e, const float *params, int weights, long step, TrainLog *table) {
  double t0 = amd_time();
  if (params != e->net->params) ops->copy(e->net->params, params, sizeof(float) * (size_t)e->net->num_params);
  int nfe = dist_allreduce_max_int(
      sample_draw(e->draw, e->x, e->text ? e->model_labels : e->labels, e->local, e->seed, e->i0));
  float *x;
  int *labels;
  long n = dist_gather_rows(e->x, e->labels, e->local, e->D, &x, &labels);
  int ncols = e->text ? NCAPTION : e->images ? NIMAGE : NTOY;
  double row[EVALRUN_MAX_COLS];
  char msg[512] = "";
  if (dist_rank() == 0) {
    for (int i = 0; i < ncols; i++) row[i] = NAN;
    row[0] = (double)step, row[1] = weights, row[2] = (double)n, row[3] = nfe;
    long bad = 0;
    for (long i = 0; i < n * e->D; i++) bad += !isfinite(x[i]);
    if (bad) { /* no metric of such samples; a count column holds no NaN */
      snprintf(msg, sizeof msg, "%ld non-finite sample values: metrics NaN", bad);
      if (!e->images) row[5] = 0;
    } else {
      metrics_of(e, x, labels, n, row, msg, sizeof msg);
    }
    row[ncols - 1] = amd_time() - t0;
    free(x), free(labels);
  }
  mpiCheck(MPI_Bcast(row, ncols, MPI_DOUBLE, 0, MPI_COMM_WORLD)); /* every rank leaves together */
  trainlog_append(table, row);
  amd_log("eval step %ld (%s weights): %s (%ld samples, %.1f s)\n", step, weights == EVAL_WEIGHTS_EMA ? "EMA" : "raw",
          msg, e->n, row[ncols - 1]);
}

void evalrun_measure_weights(EvalRun *e, const Model *m, const Ema *ema, long step, TrainLog *table) {
  if (m->shard) { /* stage 3: each rank stores its shard alone */
    zero_gather_parts(m->params, m->p_begin, model_stored_n(m), e->net->num_params, e->net->params);
    evalrun_measure(e, e->net->params, EVAL_WEIGHTS_RAW, step, table);
  } else {
    evalrun_measure(e, m->params, EVAL_WEIGHTS_RAW, step, table);
  }
  if (!ema) return;
  zero_gather_parts(ema->w, ema->begin, ema->n, e->net->num_params, e->net->params);
  evalrun_measure(e, e->net->params, EVAL_WEIGHTS_EMA, step, table);
}

void evalrun_free(EvalRun *e) {
  if (!e) return;
  sample_draw_free(e->draw);
  model_free(e->net);
  free(e->x), free(e->labels), free(e->toy_ref), free(e->tokens), free(e->model_labels);
  image_reference_free(e->img);
  caption_reference_free(e->cap);
  if (e->caps.tokens) captions_free(&e->caps);
  if (e->own_ref.x) dataset_free(&e->own_ref);
  free(e);
}
