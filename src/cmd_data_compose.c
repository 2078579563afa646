/* cmd_data_compose.c: `amd data compose`: captioned canvases from Fashion-MNIST items, the data of
 * text-prompted training (docs/DESIGN.md section 13). Each canvas is a 2 x 2 grid of item-sized
 * cells (56 x 56 for 28 x 28 items) holding 1 to 4 items of the split's own images, with a caption of
 * one of the four GenEval-like categories (src/caption.h) and the layout it implies. Chosen class
 * pairs are held out: the train split never names them, the test split names them in a set share
 * of its two-object and position captions, flagged, so a model's generalization can be measured.
 * Every canvas is a pure function of (seed, split, canvas index) through Philox (RNG_COMPOSE), so
 * OpenMP threads compose them in any order and the file is the same at any thread count.
 * Not here: the grammar and tokenizer (caption.c), the file's caption groups (io/captions.c). */
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caption.h"
#include "captions.h"
#include "cmd_data_images.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "h5.h"
#include "idx.h"
#include "philox.h"
#include "png.h"
#include "provenance.h"

typedef struct {
  char dir[CFG_STR_MAX], out_train[CFG_STR_MAX], out_test[CFG_STR_MAX], mix[CFG_STR_MAX], holdout[CFG_STR_MAX];
  char png[CFG_STR_MAX];
  int n_train, n_test, seed, threads, png_n;
  double test_holdout;
} ComposeConfig;

static const cfg_key compose_keys[] = {
    {"out_train", CFG_STR, offsetof(ComposeConfig, out_train), "data/compose_train.h5", 0, 0, NULL,
     "dataset file of the train canvases (train items, no held-out pair)"},
    {"out_test", CFG_STR, offsetof(ComposeConfig, out_test), "data/compose_test.h5", 0, 0, NULL,
     "dataset file of the test canvases (test items; held-out pairs flagged)"},
    {"dir", CFG_STR, offsetof(ComposeConfig, dir), "/usr/share/datasets/fashion-mnist", 0, 0, NULL,
     "folder of the four gzipped Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)"},
    {"n_train", CFG_INT, offsetof(ComposeConfig, n_train), "20000", 1, 1000000, NULL, "train canvases"},
    {"n_test", CFG_INT, offsetof(ComposeConfig, n_test), "4000", 1, 1000000, NULL, "test canvases"},
    {"seed", CFG_INT, offsetof(ComposeConfig, seed), "0", 0, 2147483647, NULL, "Philox seed of the composition"},
    {"mix", CFG_STR, offsetof(ComposeConfig, mix), "single:1,two:1,counting:1,position:1", 0, 0, NULL,
     "caption categories and their weights, name[:weight],...; a category left out is not drawn"},
    {"holdout", CFG_STR, offsetof(ComposeConfig, holdout), "coat+sneaker,dress+sandal,bag+shirt", 0, 0, NULL,
     "class pairs (singular nouns; noun+* every pair with the noun) never named together in the train split's "
     "two-object and position captions; empty: none"},
    {"test_holdout", CFG_FLOAT, offsetof(ComposeConfig, test_holdout), "0.5", 0, 1, NULL,
     "share of the test split's two-object and position captions that name a held-out pair"},
    {"png", CFG_STR, offsetof(ComposeConfig, png), "", 0, 0, NULL,
     "also write a preview grid of the first png.n train canvases here (their captions go to the log)"},
    {"png.n", CFG_INT, offsetof(ComposeConfig, png_n), "16", 1, 256, NULL, "canvases in the preview grid"},
    {"threads", CFG_INT, offsetof(ComposeConfig, threads), "0", 0, 1024, NULL, "OpenMP threads; 0 = OpenMP's default"},
    CFG_END};

enum { SPLIT_TRAIN, SPLIT_TEST };
#define MAX_PAIRS (CAPTION_CLASSES * (CAPTION_CLASSES - 1)) /* ordered pairs of two classes */

/* What to draw: the category weights (cumulative, ending at 1) and the ordered class pairs of
 * two-object and position captions, seen (allowed in train) and held out. */
typedef struct {
  double cum[CAPTION_CATEGORIES];
  int seen[MAX_PAIRS][2], held[MAX_PAIRS][2];
  int n_seen, n_held;
  int is_held[CAPTION_CLASSES][CAPTION_CLASSES];
  char held_text[2048]; /* the held-out pairs in class order, "dress+sandal,coat+sneaker" */
  double test_holdout;
  uint64_t seed;
} ComposePlan;

/* One split of the source: its images and, per class, the indices of its images. */
typedef struct {
  uint8_t *px; /* (n, h, w) */
  long n;
  int h, w;
  long *of_class[CAPTION_CLASSES];
  long count[CAPTION_CLASSES];
} Source;

/* mix=: "name[:weight],..." into normalized cumulative weights. */
static void parse_mix(const char *text, ComposePlan *p) {
  double w[CAPTION_CATEGORIES] = {0};
  int given[CAPTION_CATEGORIES] = {0};
  char buf[CFG_STR_MAX];
  snprintf(buf, sizeof buf, "%s", text);
  for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(item, ':');
    if (colon) *colon = '\0';
    int k = caption_category_find(item);
    if (k < 0)
      amd_usage_error("config key 'mix': unknown category '%s' (the categories: single, two, counting, position)", item);
    if (given[k]) amd_usage_error("config key 'mix': category '%s' is given twice", item);
    given[k] = 1;
    w[k] = 1;
    if (colon) {
      char *end;
      w[k] = strtod(colon + 1, &end);
      if (end == colon + 1 || *end || !isfinite(w[k]) || w[k] < 0)
        amd_usage_error("config key 'mix': the weight of '%s' is '%s', not a number >= 0", item, colon + 1);
    }
  }
  double sum = 0;
  for (int k = 0; k < CAPTION_CATEGORIES; k++) sum += w[k];
  if (!(sum > 0)) amd_usage_error("config key 'mix' ('%s'): the weights sum to 0; give a category a positive weight", text);
  double acc = 0;
  for (int k = 0; k < CAPTION_CATEGORIES; k++) acc += w[k], p->cum[k] = acc / sum;
  p->cum[CAPTION_CATEGORIES - 1] = 1.0;
}

/* holdout=: "noun+noun,..." (noun+* for every pair with the noun) into the held-out unordered
 * pairs, then the seen and held ordered lists. */
static void parse_holdout(const char *text, ComposePlan *p) {
  char buf[CFG_STR_MAX];
  snprintf(buf, sizeof buf, "%s", text);
  for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *plus = strchr(item, '+');
    if (!plus) amd_usage_error("config key 'holdout': '%s' is not a pair noun+noun (e.g. coat+sneaker, or bag+*)", item);
    *plus = '\0';
    int every = strcmp(plus + 1, "*") == 0;
    int a = caption_class_find(item), b = every ? 0 : caption_class_find(plus + 1);
    for (int i = 0; i < 2; i++)
      if ((i ? b : a) < 0)
        amd_usage_error("config key 'holdout': unknown noun '%s' (the singular nouns: tshirt, trouser, pullover, dress, "
                        "coat, sandal, shirt, sneaker, bag, boot)", i ? plus + 1 : item);
    if (a == b && !every) amd_usage_error("config key 'holdout': '%s+%s' pairs a class with itself", item, plus + 1);
    if (!every && p->is_held[a][b]) amd_usage_error("config key 'holdout': the pair %s+%s is given twice", item, plus + 1);
    for (int k = every ? 0 : b; k <= (every ? CAPTION_CLASSES - 1 : b); k++)
      if (k != a) p->is_held[a][k] = p->is_held[k][a] = 1;
  }
  size_t off = 0;
  p->held_text[0] = '\0';
  for (int a = 0; a < CAPTION_CLASSES; a++)
    for (int b = a + 1; b < CAPTION_CLASSES; b++)
      if (p->is_held[a][b] && off < sizeof p->held_text)
        off += (size_t)snprintf(p->held_text + off, sizeof p->held_text - off, "%s%s+%s", off ? "," : "",
                                caption_noun(a, 0), caption_noun(b, 0));
  for (int a = 0; a < CAPTION_CLASSES; a++)
    for (int b = 0; b < CAPTION_CLASSES; b++) {
      if (a == b) continue;
      int *pair = p->is_held[a][b] ? p->held[p->n_held++] : p->seen[p->n_seen++];
      pair[0] = a, pair[1] = b;
    }
}

/* floor(u * n) for a uniform u in (0, 1): an index in [0, n) */
static long pick(uint32_t w, long n) {
  long k = (long)(rng_u01(w) * (double)n);
  return k < n ? k : n - 1;
}

/* The caption of canvas i of a split: its category, classes, count and relation; *held when it
 * names a held-out pair. Words w[0..4] decide it. */
static void draw_caption(const ComposePlan *p, int split, const uint32_t *w, Caption *c, int *held) {
  double u = rng_u01(w[0]);
  int cat = 0;
  while (cat < CAPTION_CATEGORIES - 1 && u >= p->cum[cat]) cat++;
  c->category = cat, c->b = -1, c->count = 1, c->relation = -1;
  c->a = (int)pick(w[1], CAPTION_CLASSES);
  *held = 0;
  if (cat == CAPTION_COUNTING) c->count = 2 + (int)pick(w[2], CAPTION_MAX_ITEMS - 1);
  if (cat == CAPTION_TWO || cat == CAPTION_POSITION) {
    int use_held = split == SPLIT_TEST && p->n_held > 0 && rng_u01(w[2]) < p->test_holdout;
    const int *pair = use_held ? p->held[pick(w[3], p->n_held)] : p->seen[pick(w[3], p->n_seen)];
    c->a = pair[0], c->b = pair[1], c->count = 2;
    *held = use_held;
    if (cat == CAPTION_POSITION) c->relation = (int)pick(w[4], CAPTION_RELATIONS);
  }
}

/* Composes canvas i into x (the canvas, (2h, 2w) in [-1, 1]) and its row of the caption set. */
static void compose_canvas(const ComposePlan *p, const Source *src, int split, long i, float *x, CaptionSet *s) {
  uint32_t w[12];
  for (uint32_t b = 0; b < 3; b++) rng_u32x4(p->seed, RNG_COMPOSE, (uint32_t)split, (uint32_t)i, b, w + 4 * b);
  Caption c;
  int held;
  draw_caption(p, split, w, &c, &held);
  int *cls = s->item_class + i * CAPTION_MAX_ITEMS, *cell = s->item_cell + i * CAPTION_MAX_ITEMS;
  int *source = s->item_source + i * CAPTION_MAX_ITEMS;
  caption_place(&c, w[5], cls, cell);
  int W = CAPTION_GRID * src->w;
  for (long j = 0; j < (long)CAPTION_GRID * src->h * W; j++) x[j] = -1.0f; /* black: byte 0 */
  for (int k = 0; k < CAPTION_MAX_ITEMS; k++) {
    source[k] = -1;
    if (cls[k] < 0) continue;
    long img = src->of_class[cls[k]][pick(w[6 + k], src->count[cls[k]])];
    source[k] = (int)img;
    const uint8_t *item = src->px + img * src->h * src->w;
    int r0 = (cell[k] / CAPTION_GRID) * src->h, c0 = (cell[k] % CAPTION_GRID) * src->w;
    for (int r = 0; r < src->h; r++)
      for (int q = 0; q < src->w; q++) x[(long)(r0 + r) * W + c0 + q] = (float)item[r * src->w + q] / 127.5f - 1.0f;
  }
  char text[128], err[512];
  caption_text(&c, text, sizeof text);
  int *tok = s->tokens + i * CAPTION_MAX_TOKENS;
  CHECK(caption_encode(text, tok, err, sizeof err) > 0, "caption of canvas %ld: %s", i, err);
  s->text[i] = strdup(text);
  CHECK(s->text[i], "out of memory");
  s->category[i] = c.category;
  s->held_out[i] = held;
}

/* The images and labels files of a split ("train" or "t10k"); a missing one is an error. */
static void source_paths(const ComposeConfig *c, const char *prefix, char *images, char *labels, size_t size) {
  snprintf(images, size, "%s/%s-images-idx3-ubyte.gz", c->dir, prefix);
  snprintf(labels, size, "%s/%s-labels-idx1-ubyte.gz", c->dir, prefix);
  for (int i = 0; i < 2; i++)
    if (!amd_file_exists(i ? labels : images))
      amd_input_error("Fashion-MNIST file '%s' does not exist: install the Debian package dataset-fashion-mnist "
                "(bash jobs/setup.sh), or set dir= to a folder holding the four IDX files", i ? labels : images);
}

static void source_read(const ComposeConfig *c, const char *prefix, Source *src) {
  char images[CFG_STR_MAX + 64], labels[CFG_STR_MAX + 64];
  source_paths(c, prefix, images, labels, sizeof images);
  memset(src, 0, sizeof *src);
  src->px = idx_read_images(images, &src->n, &src->h, &src->w);
  long nl;
  uint8_t *lb = idx_read_labels(labels, &nl);
  if (nl != src->n)
    amd_fatal("'%s' holds %ld labels but '%s' holds %ld images: the counts must match", labels, nl, images, src->n);
  if (src->n > 2147483647L) amd_fatal("'%s' holds more images than an int32 index reaches", images);
  if (src->h != src->w)
    amd_input_error("'%s' holds images of %d x %d pixels: a canvas's cells are square, so its items must be", images,
                    src->h, src->w);
  for (long i = 0; i < nl; i++) {
    if (lb[i] >= CAPTION_CLASSES)
      amd_fatal("'%s': label %d of image %ld is outside [0, %d): not Fashion-MNIST's classes", labels, lb[i], i,
                CAPTION_CLASSES);
    src->count[lb[i]]++;
  }
  for (int k = 0; k < CAPTION_CLASSES; k++) {
    if (!src->count[k]) amd_fatal("'%s' holds no image of class %d (%s): every class needs one", labels, k, caption_noun(k, 0));
    src->of_class[k] = mallocCheck(sizeof(long) * (size_t)src->count[k]);
    src->count[k] = 0;
  }
  for (long i = 0; i < nl; i++) src->of_class[lb[i]][src->count[lb[i]]++] = i;
  free(lb);
}

static void source_free(Source *src) {
  free(src->px);
  for (int k = 0; k < CAPTION_CLASSES; k++) free(src->of_class[k]);
}

/* The first n canvases of a split as a PNG grid, their captions listed in the log. */
static void preview(const char *path, const Dataset *d, const CaptionSet *s, int n) {
  if (n > d->n) n = (int)d->n;
  amd_mkdirs_parent(path);
  png_image_grid(path, d->x, n, 1, d->shape[1], d->shape[2], 4);
  printf("preview %s: %d canvases, 4 a row:\n", path, n);
  for (int i = 0; i < n; i++) printf("  %2d  %s\n", i, s->text[i]);
}

static void compose_split(const ComposeConfig *c, const ComposePlan *p, int split, const char *config_text) {
  double t0 = amd_time();
  const char *name = split == SPLIT_TRAIN ? "train" : "test", *out = split == SPLIT_TRAIN ? c->out_train : c->out_test;
  Source src;
  source_read(c, split == SPLIT_TRAIN ? "train" : "t10k", &src);
  long n = split == SPLIT_TRAIN ? c->n_train : c->n_test;
  Dataset d;
  memset(&d, 0, sizeof d);
  d.n = n, d.ndim = 3, d.shape[0] = 1, d.shape[1] = CAPTION_GRID * src.h, d.shape[2] = CAPTION_GRID * src.w;
  d.dim = d.shape[1] * d.shape[2];
  d.x = mallocCheck(sizeof(float) * (size_t)n * (size_t)d.dim);
  d.labels = mallocCheck(sizeof(int) * (size_t)n);
  d.num_classes = CAPTION_CLASSES;
  snprintf(d.class_names, sizeof d.class_names, "%s", fmnist_class_names);
  snprintf(d.source, sizeof d.source, "fashion-mnist compose %s", name);
  CaptionSet s = {.n = n, .max_tokens = CAPTION_MAX_TOKENS, .max_items = CAPTION_MAX_ITEMS,
                  .vocab_size = caption_vocab_size(), .num_categories = CAPTION_CATEGORIES,
                  .num_classes = CAPTION_CLASSES, .grid = CAPTION_GRID, .cell_size = src.h};
  captions_alloc(&s);
  for (int v = 0; v < s.vocab_size; v++) s.vocab[v] = strdup(caption_word(v));
  for (int k = 0; k < CAPTION_CATEGORIES; k++)
    snprintf(s.categories + strlen(s.categories), sizeof s.categories - strlen(s.categories), "%s%s", k ? "," : "",
             caption_category_name(k));
  snprintf(s.held_out_pairs, sizeof s.held_out_pairs, "%s", p->held_text);
  snprintf(s.split, sizeof s.split, "%s", name);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) compose_canvas(p, &src, split, i, d.x + i * d.dim, &s);
  long per_cat[CAPTION_CATEGORIES] = {0}, held = 0;
  for (long i = 0; i < n; i++) {
    d.labels[i] = s.item_class[i * CAPTION_MAX_ITEMS]; /* the first named item's class */
    per_cat[s.category[i]]++;
    held += s.held_out[i];
  }
  amd_mkdirs_parent(out);
  dataset_write(out, &d, "amd-dataset", config_text, captions_write_hook, &s);
  printf("wrote %s: %ld canvases of %d x %d from the %s items: %ld single, %ld two, %ld counting, %ld position; "
         "%ld name a held-out pair (%.2f s)\n", out, n, d.shape[1], d.shape[2], name, per_cat[0], per_cat[1],
         per_cat[2], per_cat[3], held, amd_time() - t0);
  if (split == SPLIT_TRAIN && c->png[0]) preview(c->png, &d, &s, c->png_n);
  captions_free(&s);
  dataset_free(&d);
  source_free(&src);
}

int data_compose(int argc, char **argv) {
  ComposeConfig c;
  cfg_parse_args(compose_keys, &c, argc, argv, "data compose",
                 "Composes captioned canvases (2 x 2 cells of Fashion-MNIST items) into train and test dataset files.");
  ComposePlan p;
  memset(&p, 0, sizeof p);
  parse_mix(c.mix, &p);
  parse_holdout(c.holdout, &p);
  p.test_holdout = c.test_holdout;
  p.seed = (uint64_t)c.seed;
  if (strcmp(c.out_train, c.out_test) == 0)
    amd_usage_error("config keys 'out_train' and 'out_test' both name '%s': the splits need two files", c.out_train);
  if (p.n_seen == 0 && (p.cum[CAPTION_TWO] > p.cum[CAPTION_SINGLE] || p.cum[CAPTION_POSITION] > p.cum[CAPTION_COUNTING]))
    amd_usage_error("config key 'holdout' holds out every class pair, so the train split can have no two-object or "
                    "position caption: hold out fewer, or leave those categories out of mix=");
  if (c.threads > 0) omp_set_num_threads(c.threads);
  provenance_set_i64("threads", omp_get_max_threads());
  if (dist_rank() == 0) {
    h5_check_replaceable(c.out_train, "amd-dataset", "out_train");
    h5_check_replaceable(c.out_test, "amd-dataset", "out_test");
    char images[CFG_STR_MAX + 64], labels[CFG_STR_MAX + 64];
    source_paths(&c, "train", images, labels, sizeof images); /* both splits' files, before writing either */
    source_paths(&c, "t10k", images, labels, sizeof images);
    char *text = cfg_to_text(compose_keys, &c);
    compose_split(&c, &p, SPLIT_TRAIN, text);
    compose_split(&c, &p, SPLIT_TEST, text);
    free(text);
  }
  return 0;
}
