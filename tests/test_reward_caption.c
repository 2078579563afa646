/* test_reward_caption.c: the caption reward (src/reward_caption.c) and the GenEval-like score's
 * per-canvas pieces (src/metrics_caption.c):
 *  - S(c), the cell assignments that hold a caption, has the size counting says for each category
 *    (single 4, two 12, counting C(4, n), position 4);
 *  - exp(R) equals the probability summed by brute force over all 11^4 assignments (caption_holds
 *    on each) for every caption of the grammar, and a closed form per category written here by hand;
 *  - dR/dlogits against central differences, and its rows sum to 0 (softmax invariance);
 *  - dR/dx through a tiny random cell classifier on 16 x 16 canvases against central differences of
 *    the whole path (patchify, classifier, R), and cells outside a sample do not move its reward;
 *  - canvas_cells equals the patchify op; caption_cells_hold on hand-set logits; held_out_pairs
 *    parsing and its errors; a 10-class or wrongly sized classifier is refused naming the problem.
 * Not here: training cell classifiers or amd eval end to end (scenario_caption.sh). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "caption.h"
#include "classifier.h"
#include "common.h"
#include "metrics_caption.h"
#include "model.h"
#include "ops.h"
#include "reward_caption.h"
#include "test.h"

#define TEST_SEED 20261205u
#include "gradcheck.h"

/* every caption of the grammar: returns their count into all[] */
static int every_caption(Caption *all) {
  int n = 0;
  for (int a = 0; a < CAPTION_CLASSES; a++) {
    all[n++] = (Caption){CAPTION_SINGLE, a, -1, 1, -1};
    for (int k = 2; k <= CAPTION_MAX_ITEMS; k++) all[n++] = (Caption){CAPTION_COUNTING, a, -1, k, -1};
    for (int b = 0; b < CAPTION_CLASSES; b++) {
      if (b == a) continue;
      all[n++] = (Caption){CAPTION_TWO, a, b, 2, -1};
      for (int r = 0; r < CAPTION_RELATIONS; r++) all[n++] = (Caption){CAPTION_POSITION, a, b, 2, r};
    }
  }
  return n;
}

static void softmax_cells(const float *z, double p[CAPTION_CELLS][CAPTION_OUTCOMES]) {
  for (int j = 0; j < CAPTION_CELLS; j++) {
    double mx = -INFINITY, s = 0;
    for (int k = 0; k < CAPTION_OUTCOMES; k++) mx = fmax(mx, z[j * CAPTION_OUTCOMES + k]);
    for (int k = 0; k < CAPTION_OUTCOMES; k++) s += exp(z[j * CAPTION_OUTCOMES + k] - mx);
    for (int k = 0; k < CAPTION_OUTCOMES; k++) p[j][k] = exp(z[j * CAPTION_OUTCOMES + k] - mx) / s;
  }
}

static void test_assignment_counts(void) {
  static Caption all[1000];
  int n = every_caption(all);
  EXPECT(n == 490, "%d captions, expected 10 single, 30 counting, 90 two, 360 position", n);
  int binom[5] = {0, 4, 6, 4, 1};
  for (int i = 0; i < n; i++) {
    CaptionAssignments s;
    caption_assignments(&all[i], &s);
    int want = all[i].category == CAPTION_SINGLE ? 4 : all[i].category == CAPTION_TWO ? 12
             : all[i].category == CAPTION_COUNTING ? binom[all[i].count] : 4;
    EXPECT(s.n == want, "caption %d (category %d, count %d): %d assignments, expected %d", i, all[i].category,
           all[i].count, s.n, want);
    caption_assignments_free(&s);
  }
}

/* P(c) by hand: the named items in the cells the caption allows, every other cell empty */
static double closed_form(const Caption *c, double p[CAPTION_CELLS][CAPTION_OUTCOMES]) {
  const int E = CAPTION_EMPTY;
  double total = 0;
  if (c->category == CAPTION_SINGLE || c->category == CAPTION_COUNTING) {
    for (int mask = 0; mask < 1 << CAPTION_CELLS; mask++) { /* the cells holding the items */
      if (__builtin_popcount((unsigned)mask) != c->count) continue;
      double t = 1;
      for (int j = 0; j < CAPTION_CELLS; j++) t *= (mask >> j & 1) ? p[j][c->a] : p[j][E];
      total += t;
    }
    return total;
  }
  for (int ja = 0; ja < CAPTION_CELLS; ja++)
    for (int jb = 0; jb < CAPTION_CELLS; jb++) {
      if (ja == jb) continue;
      int ra = ja / 2, ca = ja % 2, rb = jb / 2, cb = jb % 2;
      int ok = c->category == CAPTION_TWO || (c->relation == CAPTION_LEFT_OF && ca < cb) ||
               (c->relation == CAPTION_RIGHT_OF && ca > cb) || (c->relation == CAPTION_ABOVE && ra < rb) ||
               (c->relation == CAPTION_BELOW && ra > rb);
      if (!ok) continue;
      double t = p[ja][c->a] * p[jb][c->b];
      for (int j = 0; j < CAPTION_CELLS; j++)
        if (j != ja && j != jb) t *= p[j][E];
      total += t;
    }
  return total;
}

static void test_probability(void) {
  static Caption all[1000];
  int n = every_caption(all);
  float z[CAPTION_CELLS * CAPTION_OUTCOMES];
  for (int i = 0; i < n; i++) {
    fill_uniform(z, CAPTION_CELLS * CAPTION_OUTCOMES, -3, 3);
    /* favour the caption's items a little, so P is not vanishingly small for all of them */
    if (i % 2) for (int j = 0; j < CAPTION_CELLS; j++) z[j * CAPTION_OUTCOMES + all[i].a] += 2;
    double p[CAPTION_CELLS][CAPTION_OUTCOMES];
    softmax_cells(z, p);
    double brute = 0;
    for (int code = 0; code < 14641; code++) {
      int outcome[CAPTION_CELLS], cls[CAPTION_CELLS], cell[CAPTION_CELLS];
      double t = 1;
      for (int j = 0, r = code; j < CAPTION_CELLS; j++, r /= CAPTION_OUTCOMES) outcome[j] = r % CAPTION_OUTCOMES, t *= p[j][outcome[j]];
      int k = caption_items_of_cells(outcome, cls, cell);
      if (caption_holds(&all[i], cls, cell, k)) brute += t;
    }
    CaptionAssignments s;
    caption_assignments(&all[i], &s);
    double R = caption_log_prob(z, &s, NULL);
    EXPECT_CLOSE(exp(R), brute, 1e-12, 1e-9, "P(c) against the brute-force sum");
    EXPECT_CLOSE(exp(R), closed_form(&all[i], p), 1e-12, 1e-9, "P(c) against the closed form");
    caption_assignments_free(&s);
  }
  /* extreme logits: log space keeps R finite where P underflows a double */
  Caption c = {CAPTION_COUNTING, 3, -1, 4, -1};
  for (int i = 0; i < CAPTION_CELLS * CAPTION_OUTCOMES; i++) z[i] = (i % CAPTION_OUTCOMES == 3) ? -400.0f : 0.0f;
  CaptionAssignments s;
  caption_assignments(&c, &s);
  double R = caption_log_prob(z, &s, NULL);
  EXPECT_CLOSE(R, 4 * (-400.0 - log(10.0 + exp(-400.0))), 1e-6, 1e-9, "R of four unlikely dresses");
  caption_assignments_free(&s);
}

typedef struct {
  float *z;
  const CaptionAssignments *s;
} LogitCtx;

static double logit_loss(void *ctx) {
  LogitCtx *c = ctx;
  return caption_log_prob(c->z, c->s, NULL);
}

static void test_logit_gradient(void) {
  Caption cs[] = {{CAPTION_SINGLE, 8, -1, 1, -1}, {CAPTION_TWO, 4, 7, 2, -1}, {CAPTION_COUNTING, 1, -1, 3, -1},
                  {CAPTION_POSITION, 0, 9, 2, CAPTION_ABOVE}, {CAPTION_POSITION, 5, 2, 2, CAPTION_RIGHT_OF}};
  for (int i = 0; i < 5; i++) {
    float z[CAPTION_CELLS * CAPTION_OUTCOMES], dz[CAPTION_CELLS * CAPTION_OUTCOMES];
    fill_uniform(z, CAPTION_CELLS * CAPTION_OUTCOMES, -2, 2);
    CaptionAssignments s;
    caption_assignments(&cs[i], &s);
    caption_log_prob(z, &s, dz);
    LogitCtx ctx = {z, &s};
    check_grad("dR/dlogits", z, dz, CAPTION_CELLS * CAPTION_OUTCOMES, logit_loss, &ctx);
    for (int j = 0; j < CAPTION_CELLS; j++) {
      double sum = 0, mag = 0;
      for (int k = 0; k < CAPTION_OUTCOMES; k++) sum += dz[j * CAPTION_OUTCOMES + k], mag += fabs(dz[j * CAPTION_OUTCOMES + k]);
      EXPECT(fabs(sum) < 1e-6 && mag > 1e-4, "cell %d: gradient row sums to %g (|.| %g), expected 0 and not all 0", j,
             sum, mag);
    }
    caption_assignments_free(&s);
  }
}

/* a tiny cell classifier of 8 x 8 cells (16 x 16 canvases), random parameters U(-0.2, 0.2) */
#define SIDE 16
#define CELL 8
static Classifier *tiny_classifier(int classes, int cell, int max_batch) {
  ModelConfig mc = {.kind = "classifier", .dim = cell * cell, .num_classes = classes, .width = 16, .depth = 1,
                    .img_channels = 1, .img_size = cell, .patch = 4, .heads = 2};
  Model *m = model_create(&mc, max_batch);
  float *h = mallocCheck(sizeof(float) * (size_t)m->num_params);
  fill_uniform(h, m->num_params, -0.2, 0.2);
  ops->to_device(m->params, h, sizeof(float) * (size_t)m->num_params);
  free(h);
  return classifier_wrap(m);
}

typedef struct {
  CaptionReward *r;
  float *x_h, *x;
  const int *tokens;
  int B, sample;
} CanvasCtx;

static double canvas_loss(void *ctx) {
  CanvasCtx *c = ctx;
  double R[4];
  ops->to_device(c->x, c->x_h, sizeof(float) * (size_t)c->B * SIDE * SIDE);
  caption_reward_eval(c->r, R, NULL, c->x, c->tokens, c->B);
  double sum = 0;
  for (int i = 0; i < c->B; i++) sum += R[i];
  return sum;
}

static void test_canvas_gradient(void) {
  enum { B = 3 };
  const char *text[B] = {"a bag to the left of a sneaker", "three shirts", "a coat and a dress"};
  int tokens[B * CAPTION_MAX_TOKENS];
  char err[256];
  for (int i = 0; i < B; i++) EXPECT(caption_encode(text[i], tokens + i * CAPTION_MAX_TOKENS, err, sizeof err) > 0, "%s", err);
  Classifier *cls = tiny_classifier(CAPTION_OUTCOMES, CELL, CAPTION_CELLS * B);
  CaptionReward *r = caption_reward_create(cls, SIDE, B, "the tiny classifier");
  long n = (long)B * SIDE * SIDE;
  float *x_h = mallocCheck(sizeof(float) * (size_t)n), *x = alloc_f(n), *grad = alloc_f(n);
  fill_uniform(x_h, n, -1, 1);
  ops->to_device(x, x_h, sizeof(float) * (size_t)n);
  double R[B];
  caption_reward_eval(r, R, grad, x, tokens, B);
  float *grad_h = host_copy(grad, n);
  for (int i = 0; i < B; i++) EXPECT(isfinite(R[i]) && R[i] < 0, "R[%d] = %g: a log-probability", i, R[i]);
  CanvasCtx ctx = {r, x_h, x, tokens, B, 0};
  check_grad_spread("dR/dx through the cell classifier", x_h, grad_h, n, 96, canvas_loss, &ctx);
  /* every cell of every canvas gets gradient: the cells are pasted back where they came from */
  for (int i = 0; i < B; i++)
    for (int j = 0; j < CAPTION_CELLS; j++) {
      double mag = 0;
      for (int q = 0; q < CELL; q++)
        for (int w = 0; w < CELL; w++)
          mag += fabs(grad_h[(size_t)i * SIDE * SIDE + (size_t)((j / 2) * CELL + q) * SIDE + (j % 2) * CELL + w]);
      EXPECT(mag > 1e-6, "canvas %d cell %d: no gradient", i, j);
    }
  /* canvas 1's reward does not move when canvas 0 changes (batch independence) */
  double R2[B];
  for (long k = 0; k < SIDE * SIDE; k++) x_h[k] = -x_h[k];
  ops->to_device(x, x_h, sizeof(float) * (size_t)n);
  caption_reward_eval(r, R2, NULL, x, tokens, B);
  EXPECT(R2[0] != R[0] && R2[1] == R[1] && R2[2] == R[2], "changing canvas 0 moved another's reward: %g %g, %g %g",
         R[1], R2[1], R[2], R2[2]);
  free(x_h), free(grad_h);
  ops->free(x), ops->free(grad);
  caption_reward_free(r);
  classifier_free(cls);
}

static void cells_equal_patchify(void) {
  enum { N = 3 };
  long n = (long)N * SIDE * SIDE;
  float *x = mallocCheck(sizeof(float) * (size_t)n), *a = mallocCheck(sizeof(float) * (size_t)n);
  float *xd = alloc_f(n), *bd = alloc_f(n);
  fill_uniform(x, n, -1, 1);
  canvas_cells(a, x, N, SIDE);
  ops->to_device(xd, x, sizeof(float) * (size_t)n);
  ops->patchify(bd, xd, N, 1, SIDE, SIDE, CELL);
  float *b = host_copy(bd, n);
  EXPECT(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "canvas_cells differs from patchify");
  /* cell 1 of canvas 2 is the top right: row 0, columns CELL .. 2 CELL - 1 */
  EXPECT(a[(2 * CAPTION_CELLS + 1) * CELL * CELL + 3] == x[2 * SIDE * SIDE + CELL + 3], "top right cell");
  free(x), free(a), free(b);
  ops->free(xd), ops->free(bd);
}

static void test_cells_hold(void) {
  cells_equal_patchify();
  float z[CAPTION_CELLS * CAPTION_OUTCOMES];
  int read[CAPTION_CELLS] = {CAPTION_EMPTY, 8, CAPTION_EMPTY, 7}; /* a bag top right, a sneaker bottom right */
  for (int j = 0; j < CAPTION_CELLS; j++)
    for (int k = 0; k < CAPTION_OUTCOMES; k++) z[j * CAPTION_OUTCOMES + k] = k == read[j] ? 1.5f : -0.5f * (float)k;
  struct { const char *text; int holds; } cases[] = {
      {"a bag and a sneaker", 1}, {"a sneaker and a bag", 1}, {"a bag above a sneaker", 1},
      {"a sneaker below a bag", 1}, {"a bag to the left of a sneaker", 0}, {"a bag", 0}, {"two bags", 0},
      {"a bag and a boot", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int tok[CAPTION_MAX_TOKENS];
    Caption c;
    char err[256];
    EXPECT(caption_encode(cases[i].text, tok, err, sizeof err) > 0 && caption_parse(tok, &c, err, sizeof err) == 0, "%s", err);
    EXPECT(caption_cells_hold(z, &c) == cases[i].holds, "'%s' on a bag above a sneaker: %d, expected %d", cases[i].text,
           caption_cells_hold(z, &c), cases[i].holds);
  }
  unsigned char held[CAPTION_CLASSES][CAPTION_CLASSES];
  char err[256];
  EXPECT(caption_held_pairs("dress+sandal,coat+sneaker", held, err, sizeof err) == 0, "%s", err);
  EXPECT(held[3][5] && held[5][3] && held[4][7] && held[7][4] && !held[4][5], "the held pairs");
  Caption two = {CAPTION_TWO, 7, 4, 2, -1}, pos = {CAPTION_POSITION, 5, 3, 2, 0}, cnt = {CAPTION_COUNTING, 4, -1, 2, -1};
  EXPECT(caption_is_held_out(&two, held) && caption_is_held_out(&pos, held) && !caption_is_held_out(&cnt, held),
         "held out: two and position captions naming a pair, never counting");
  EXPECT(caption_held_pairs("", held, err, sizeof err) == 0 && !held[3][5], "no pairs");
  EXPECT(caption_held_pairs("dress+dress", held, err, sizeof err) != 0 && strstr(err, "dress+dress"), "%s", err);
  EXPECT(caption_held_pairs("dress+hat", held, err, sizeof err) != 0 && strstr(err, "dress+hat"), "%s", err);
  EXPECT(caption_held_pairs("dress", held, err, sizeof err) != 0 && strstr(err, "'dress'"), "%s", err);
  CaptionScore sc = {0};
  caption_score_add(&sc, &two, 1, 1);
  caption_score_add(&sc, &cnt, 0, 0);
  caption_score_add(&sc, &cnt, 0, 1);
  EXPECT(sc.n_all == 3 && sc.pass_all == 2 && sc.n_held == 1 && sc.pass_held == 1 && sc.n_seen == 2 && sc.pass_seen == 1 &&
         sc.n[CAPTION_COUNTING] == 2 && sc.pass[CAPTION_COUNTING] == 1 && sc.n[CAPTION_SINGLE] == 0, "the score's counts");
  EXPECT(isnan(caption_share(0, 0)) && caption_share(1, 4) == 0.25, "shares");
}

static void ten_classes(void *arg) {
  (void)arg;
  Classifier *cls = tiny_classifier(10, CELL, CAPTION_CELLS);
  caption_reward_create(cls, SIDE, 1, "reward.ckpt 'ten'");
}
static void wrong_cell(void *arg) {
  (void)arg;
  Classifier *cls = tiny_classifier(CAPTION_OUTCOMES, 2 * CELL, CAPTION_CELLS); /* a whole canvas's size */
  caption_reward_create(cls, SIDE, 1, "reward.ckpt 'whole'");
}
static void bad_caption(void *arg) {
  (void)arg;
  Classifier *cls = tiny_classifier(CAPTION_OUTCOMES, CELL, CAPTION_CELLS);
  CaptionReward *r = caption_reward_create(cls, SIDE, 1, "t");
  float *x = alloc_f(SIDE * SIDE);
  ops->fill(x, 0.0f, SIDE * SIDE);
  int tok[CAPTION_MAX_TOKENS] = {1, 2}; /* "a and" */
  double R;
  caption_reward_eval(r, &R, NULL, x, tok, 1);
}

static void test_errors(void) {
  EXPECT(expect_fatal(ten_classes, NULL, "reward.ckpt 'ten' (10 classes of 64 pixels) is not a cell classifier"),
         "a 10-class classifier");
  EXPECT(expect_fatal(wrong_cell, NULL, "reward.ckpt 'whole' (11 classes of 256 pixels) is not a cell classifier"),
         "a classifier of whole canvases");
  EXPECT(expect_fatal(bad_caption, NULL, "the caption of sample 0"), "a caption that does not parse");
}

int main(void) {
  TEST_RUN(test_assignment_counts);
  TEST_RUN(test_probability);
  TEST_RUN(test_logit_gradient);
  TEST_RUN(test_canvas_gradient);
  TEST_RUN(test_cells_hold);
  TEST_RUN(test_errors);
  return t_finish();
}
