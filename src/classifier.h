/* classifier.h: the image classifiers (docs/DESIGN.md section 5): the reward network
 * R(x, c) = log p(c | x) that DMDR and AMD score samples with, and the separately trained evaluator whose features and
 * predictions the image metrics use. Both are `classifier` models (dit blocks, logits out) saved
 * as the net "classifier" by `amd train task=reward|evaluator`.
 * A Classifier wraps a loaded network with its batch buffers; inputs and outputs are host arrays
 * (batches are split into chunks of max_batch) except where a function says backend memory.
 * Not here: the training loop (cmd_train.c).
 * Return convention: errors (a missing, foreign or mismatched checkpoint) stop the program;
 * functions return void or their result. */
#pragma once

#include "dataset.h"
#include "model.h"

typedef struct {
  Model *m;
  int max_batch, num_classes, dim, feat_dim;
  float *x, *logits, *dlogits, *dx;   /* backend memory */
  float *logits_h, *dlogits_h;        /* host (max_batch, num_classes) */
} Classifier;

/* Loads net "classifier" of a checkpoint (file or run folder); fatal if it has none. flags: those of
 * model_create_flags, MODEL_INFERENCE for a classifier that never computes an input gradient (an
 * evaluator: less memory), 0 for one that does (the reward of a distillation). */
Classifier *classifier_load(const char *ckpt, int max_batch, int flags);
/* A classifier around an existing model (training uses this on the model it trains). */
Classifier *classifier_wrap(Model *m);
void classifier_free(Classifier *c);
/* logits (n, K) and, when feat is not NULL, features (n, feat_dim) of x (n, dim); host arrays */
void classifier_run(Classifier *c, float *logits, float *feat, const float *x, long n);
/* log p(c_i | x_i) into logp (n); when grad is not NULL, its input gradient d log p / dx (n, dim) */
void classifier_log_prob(Classifier *c, double *logp, float *grad, const float *x, const int *labels, long n);
/* The same for one batch (B <= max_batch) whose x and grad (B, dim) are backend memory, so the
 * samples and the gradient stay on the device: the only wait is for the logits. */
void classifier_log_prob_backend(Classifier *c, double *logp, float *grad, const float *x, const int *labels, int B);

/* The two halves of an input gradient for any function of the logits (the caption reward's):
 * classifier_logits_backend runs B <= max_batch samples x (backend memory) and returns their logits
 * (B, K) on the host (c->logits_h, valid until the next call); classifier_input_grad_backend, right
 * after it on the same x, writes grad (B, dim, backend memory) = sum_k dlogits[i][k] dz_ik / dx_i
 * for host dlogits (B, K). The parameters get no gradient. */
const float *classifier_logits_backend(Classifier *c, const float *x, int B);
void classifier_input_grad_backend(Classifier *c, float *grad, const float *dlogits, int B);

/* One forward/backward of the softmax cross-entropy on B samples x (backend memory) with host
 * labels; gradients are added to the model's, divided by global_batch. Returns the loss sum and
 * the number of correct predictions in *correct (may be NULL). */
double classifier_train_batch(Classifier *c, const float *x, const int *labels, int B, long global_batch, int *correct);
/* correct argmax predictions among n host samples */
long classifier_count_correct(Classifier *c, const float *x, const int *labels, long n);
/* Collective: the share of a dataset's samples classified right, the samples split across ranks. */
double classifier_test_accuracy(Classifier *c, const Dataset *test);

/* Host softmax cross-entropy of one row of K logits: returns -log softmax(z)_label and, when dz is
 * not NULL, writes scale (softmax(z) - onehot(label)) into dz. */
double cross_entropy_row(const float *z, int K, int label, float *dz, float scale);
/* index of the largest of K logits */
int argmax_row(const float *z, int K);
