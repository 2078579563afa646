/* metrics_caption.h: the GenEval-like score of captioned canvases (docs/DESIGN.md section 9.1): an
 * evaluator cell classifier (11 classes of one cell: amd data cells, then amd train task=evaluator)
 * reads each cell of a canvas by its argmax (a class, or empty); the canvas passes when the items
 * so read hold its caption (caption_holds: exactly the named items, the count, the relation). The
 * score is the share of canvases that pass, per category (single, two, counting, position),
 * overall, and split into seen and held-out combinations (a two-object or position caption naming a
 * pair of the data's held_out_pairs). FD and k-NN precision/recall compare the canvases with a
 * reference set in the evaluator's features, a canvas's being its cells' features concatenated.
 * The evaluator and the reference's features are loaded and computed once (CaptionReference), so
 * `amd eval` and an evaluation while training can share them. Host-side, one process; no MPI.
 * Not here: reading samples files or writing eval files (cmd_eval.c), the caption reward
 * (reward_caption.h).
 * Return convention: a mismatched evaluator or reference is a usage error; a caption that does not
 * parse stops the program naming the canvas; functions return void or their result. */
#pragma once

#include "caption.h"
#include "captions.h"
#include "classifier.h"
#include "dataset.h"

/* The cells of n canvases x (n, side^2, one channel) into cells (CAPTION_CELLS n, (side /
 * CAPTION_GRID)^2): canvas i's cell j (row * CAPTION_GRID + column) is row CAPTION_CELLS i + j. */
void canvas_cells(float *cells, const float *x, long n, int side);
/* The outcome of each cell by the argmax of its logits (CAPTION_CELLS rows of CAPTION_OUTCOMES),
 * and whether the items so read hold the caption. */
int caption_cells_hold(const float *logits, const Caption *c);
/* held_out_pairs text ("coat+sneaker,dress+sandal", singular nouns) into held[a][b] = held[b][a] =
 * 1; 0, or -1 with the bad entry named in err. */
int caption_held_pairs(const char *text, unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES], char *err, size_t size);
/* Whether a caption names a held-out pair (only two-object and position captions name pairs). */
int caption_is_held_out(const Caption *c, const unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES]);

/* Passing canvases out of those counted, per category and over all, seen and held out. */
typedef struct {
  long n[CAPTION_CATEGORIES], pass[CAPTION_CATEGORIES];
  long n_all, pass_all, n_seen, pass_seen, n_held, pass_held;
} CaptionScore;

void caption_score_add(CaptionScore *s, const Caption *c, int held_out, int pass);
/* pass / n as a share; NaN when n is 0 (no such canvas: the table says so rather than 0) */
double caption_share(long pass, long n);

/* An evaluator cell classifier with the cell features of a reference set of canvases. */
typedef struct {
  Classifier *ev;
  int side, feat_dim;  /* canvas side; a canvas's features: CAPTION_CELLS x the evaluator's */
  long n;              /* reference canvases */
  float *feat;         /* (n, feat_dim) */
  double *mu, *cov;    /* their mean and covariance */
  unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES]; /* the reference's held-out pairs */
  CaptionScore of_data; /* the evaluator's score of the reference canvases with their own captions */
} CaptionReference;

/* Loads the evaluator checkpoint (`key` names the config key for messages; batch: canvases per
 * call) and runs it over the reference canvases ref (at least 2) with their captions caps. An
 * evaluator that is not an 11-class cell classifier of ref's canvases is a usage error. */
CaptionReference *caption_reference_create(const char *evaluator, const char *key, int batch, const Dataset *ref,
                                           const CaptionSet *caps);
void caption_reference_free(CaptionReference *r);

typedef struct {
  CaptionScore score;
  double fd, precision, recall;
} CaptionMetrics;

/* The metrics of canvases x (n, side^2), n >= 2, generated for the captions tokens (n,
 * CAPTION_MAX_TOKENS): the score; FD against the whole reference; precision and recall (k = pr_k)
 * between the first pr_max canvases and the first pr_max reference canvases. */
void caption_metrics(CaptionMetrics *m, const CaptionReference *r, const float *x, const int *tokens, long n, int pr_k,
                     long pr_max);
