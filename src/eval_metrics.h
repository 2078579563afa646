/* eval_metrics.h: the metrics of `amd eval` (docs/DESIGN.md section 9) over samples in memory, so
 * that `amd eval` and the evaluation while training (eval.every, src/evalrun.h) compute them with
 * the same code and give the same numbers for the same samples:
 *   toy 2-D data  toy_metrics (src/metrics.h) against the data points of the classes the samples
 *                 ask for (the sliced W1 reference, at most max_ref of them)
 *   images        Frechet distance and k-NN precision/recall in evaluator features against a
 *                 reference set of images, and the evaluator's class accuracy (prompt adherence);
 *                 the evaluator and the reference's features are loaded and computed once
 *                 (ImageReference), so a run that evaluates many times pays for them once.
 * Host-side, one process (rank 0 of the callers); no MPI.
 * Not here: reading samples files or writing eval files (cmd_eval.c), drawing samples (sampling.h).
 * Return convention: a mismatched evaluator is a usage error; every other failure stops the program
 * (amd_fatal); functions return void or their result. */
#pragma once
#include <stdint.h>

#include "classifier.h"
#include "dataset.h"
#include "metrics.h"

/* amd eval's defaults, which the evaluation while training uses too */
#define EVAL_SW_PROJECTIONS 128 /* sw.projections: directions of the sliced W1 */
#define EVAL_SW_MAX_REF 20000   /* sw.max_ref: data points in the sliced W1's reference */
#define EVAL_PR_K 5             /* pr.k: k of the k-NN precision and recall */
#define EVAL_BATCH 200          /* batch: the evaluator's batch */
#define EVAL_STR_(x) #x
#define EVAL_STR(x) EVAL_STR_(x) /* a default as config text */

/* The reference of the toy metrics' sliced W1: the points of data (in file order) whose class is
 * among labels[0..n), at most max_ref of them; returns how many, into *ref (caller frees; NULL
 * when none). */
long eval_toy_reference(const Dataset *data, const int *labels, long n, long max_ref, float **ref);

/* An evaluator classifier with the features and statistics of a reference set of images. */
typedef struct {
  Classifier *ev;
  int feat_dim, num_classes;
  long n;              /* reference images */
  float *feat;         /* (n, feat_dim) their evaluator features */
  double *mu, *cov;    /* (feat_dim), (feat_dim, feat_dim) their mean and covariance */
  double accuracy;     /* the evaluator's accuracy on them */
} ImageReference;

/* Loads the evaluator checkpoint `evaluator` (a file or run folder; `key` names the config key for
 * messages) to run in batches of `batch` and runs it over the reference images ref (at least 2). An
 * evaluator of another image size or class count than ref is a usage error naming `what` ("the
 * samples"). */
ImageReference *image_reference_create(const char *evaluator, const char *key, int batch, const Dataset *ref,
                                       const char *what);
void image_reference_free(ImageReference *r);

typedef struct {
  double fd, precision, recall, accuracy;
} ImageMetrics;

/* The metrics of the samples x (n, dim) generated for labels (n), n >= 2: FD against the whole
 * reference, precision and recall (k = pr_k) between the first pr_max samples and the first
 * pr_max reference images, and the share of samples the evaluator assigns to their label. */
void image_metrics(ImageMetrics *m, const ImageReference *r, const float *x, const int *labels, long n, int pr_k,
                   long pr_max);
