/* test_caption.c: src/caption.c, the text prompts of captioned canvases: the vocabulary (every
 * word distinct, nouns per class), the tokenizer (round trips of every caption the grammar makes,
 * case and spacing, the empty caption, padding), its errors (an unknown word named with its
 * position, too many words), the grammar (every generated caption parses back to itself; malformed
 * token sequences are refused naming the word), and the layouts (every placement holds its caption,
 * every arrangement of cells is reached, a wrong layout is refused); then the file's caption groups
 * (io/captions.c): a round trip, caption_set_check on it, and damaged sets that captions_read or
 * caption_set_check refuse naming the canvas, each in a forked child through expect_fatal. Files go
 * to a scratch folder /tmp/amd_test_caption_XXXXXX, removed when every case passed.
 * Not here: composing canvases (scenario_compose.sh drives amd data compose). */
#include <ftw.h>
#include <stdint.h>
#include <string.h>

#include "caption.h"
#include "captions.h"
#include "common.h"
#include "dataset.h"
#include "h5.h"
#include "test.h"

static char scratch[64];

static void test_vocabulary(void) {
  int v = caption_vocab_size();
  EXPECT(v == 34, "vocabulary of %d words, expected 34 (padding, 13 words, 20 nouns)", v);
  EXPECT(strcmp(caption_word(CAPTION_PAD), "<pad>") == 0 && strcmp(caption_word(1), "a") == 0,
         "token 0 is %s, token 1 %s", caption_word(0), caption_word(1));
  for (int i = 0; i < v; i++)
    for (int j = 0; j < i; j++) EXPECT(strcmp(caption_word(i), caption_word(j)) != 0, "words %d and %d are both '%s'", j, i, caption_word(i));
  for (int k = 0; k < CAPTION_CLASSES; k++) {
    EXPECT(caption_class_find(caption_noun(k, 0)) == k, "class %d: '%s'", k, caption_noun(k, 0));
    EXPECT(caption_class_find(caption_noun(k, 1)) == -1, "a plural '%s' is not a singular noun", caption_noun(k, 1));
  }
  EXPECT(strcmp(caption_noun(9, 0), "boot") == 0 && strcmp(caption_noun(3, 1), "dresses") == 0, "boot, dresses");
  for (int k = 0; k < CAPTION_CATEGORIES; k++)
    EXPECT(caption_category_find(caption_category_name(k)) == k, "category %d", k);
  EXPECT(caption_category_find("colour") == -1, "unknown category");
}

/* Every caption the grammar makes: categories x classes x (second class | count | relation). */
static int all_captions(Caption *out) {
  int n = 0;
  for (int a = 0; a < CAPTION_CLASSES; a++) {
    out[n++] = (Caption){CAPTION_SINGLE, a, -1, 1, -1};
    for (int k = 2; k <= 4; k++) out[n++] = (Caption){CAPTION_COUNTING, a, -1, k, -1};
    for (int b = 0; b < CAPTION_CLASSES; b++) {
      if (b == a) continue;
      out[n++] = (Caption){CAPTION_TWO, a, b, 2, -1};
      for (int r = 0; r < CAPTION_RELATIONS; r++) out[n++] = (Caption){CAPTION_POSITION, a, b, 2, r};
    }
  }
  return n;
}

static int same_caption(const Caption *x, const Caption *y) {
  return x->category == y->category && x->a == y->a && x->b == y->b && x->count == y->count &&
         x->relation == y->relation;
}

static void test_round_trip(void) {
  static Caption caps[1000];
  int n = all_captions(caps), used[64] = {0};
  EXPECT(n == 10 * 4 + 90 * 5, "%d captions", n);
  for (int i = 0; i < n; i++) {
    char text[128], back[128], err[512];
    int ids[CAPTION_MAX_TOKENS];
    caption_text(&caps[i], text, sizeof text);
    int len = caption_encode(text, ids, err, sizeof err);
    EXPECT(len > 0, "'%s': %s", text, err);
    if (len <= 0) continue;
    for (int j = len; j < CAPTION_MAX_TOKENS; j++) EXPECT(ids[j] == CAPTION_PAD, "'%s': token %d not padding", text, j);
    for (int j = 0; j < len; j++) used[ids[j]] = 1;
    caption_decode(ids, back, sizeof back);
    EXPECT(strcmp(text, back) == 0, "'%s' decodes to '%s'", text, back);
    Caption c;
    EXPECT(caption_parse(ids, &c, err, sizeof err) == 0, "'%s' does not parse: %s", text, err);
    EXPECT(same_caption(&c, &caps[i]), "'%s' parses to category %d (%d, %d, count %d, relation %d)", text, c.category,
           c.a, c.b, c.count, c.relation);
  }
  /* every word but "one" (which the parser accepts for "a") appears in some generated caption */
  for (int id = 1; id < caption_vocab_size(); id++)
    if (strcmp(caption_word(id), "one") != 0) EXPECT(used[id], "word '%s' is never generated", caption_word(id));
  const char *longest = "a tshirt to the left of a pullover";
  int ids[CAPTION_MAX_TOKENS];
  char err[512];
  EXPECT(caption_encode(longest, ids, err, sizeof err) == CAPTION_MAX_TOKENS, "the longest caption fills the tokens");
}

static void test_case_and_spacing(void) {
  int a[CAPTION_MAX_TOKENS], b[CAPTION_MAX_TOKENS];
  char err[512], text[128];
  EXPECT(caption_encode("a bag above a boot", a, err, sizeof err) == 5, "%s", err);
  EXPECT(caption_encode("  A  Bag\tABOVE a\nboot ", b, err, sizeof err) == 5, "%s", err);
  EXPECT(memcmp(a, b, sizeof a) == 0, "case and whitespace do not change the tokens");
  EXPECT(caption_encode("   ", a, err, sizeof err) == 0, "blank text is the empty caption: no tokens");
  for (int j = 0; j < CAPTION_MAX_TOKENS; j++) EXPECT(a[j] == CAPTION_PAD, "the empty caption: token %d is %d", j, a[j]);
  EXPECT(caption_encode("", b, err, sizeof err) == 0 && memcmp(a, b, sizeof a) == 0, "'' is the empty caption");
  caption_decode(a, text, sizeof text);
  EXPECT(text[0] == '\0', "the empty caption decodes to '%s'", text);
  Caption c;
  EXPECT(caption_encode("one coat", a, err, sizeof err) == 2 && caption_parse(a, &c, err, sizeof err) == 0 &&
             c.category == CAPTION_SINGLE && c.a == 4,
         "'one coat' is a single coat: %s", err);
}

static void test_encode_errors(void) {
  int ids[CAPTION_MAX_TOKENS];
  char err[512];
  EXPECT(caption_encode("a bag left of a hat", ids, err, sizeof err) == -1, "'hat' is no word");
  EXPECT(strstr(err, "unknown word 'hat' (word 6 of caption \"a bag left of a hat\")"), "message: %s", err);
  EXPECT(caption_encode("A Red bag", ids, err, sizeof err) == -1 && strstr(err, "unknown word 'Red' (word 2"),
         "the word as typed: %s", err);
  EXPECT(caption_encode("<pad> bag", ids, err, sizeof err) == -1 && strstr(err, "unknown word '<pad>' (word 1"),
         "the specials are not words: %s", err);
  EXPECT(caption_encode("a bag and a boot and a coat and", ids, err, sizeof err) == -1, "9 words");
  EXPECT(strstr(err, "more than 8 words (word 9 is 'and')"), "message: %s", err);
}

static void expect_parse_error(const char *text, const char *needle) {
  int ids[CAPTION_MAX_TOKENS];
  char err[512];
  Caption c;
  EXPECT(caption_encode(text, ids, err, sizeof err) >= 0, "'%s': %s", text, err);
  int rc = caption_parse(ids, &c, err, sizeof err);
  EXPECT(rc == -1, "'%s' parses", text);
  if (rc == -1) EXPECT(strstr(err, needle), "'%s': message '%s' lacks '%s'", text, err, needle);
}

static void test_grammar_errors(void) {
  expect_parse_error("bag", "word 1 ('bag'): expected 'a' or 'one'");
  expect_parse_error("a bags", "word 2 ('bags'): expected a singular noun");
  expect_parse_error("three bag", "word 2 ('bag'): expected a plural noun");
  expect_parse_error("a bag a boot", "word 3 ('a'): expected 'and', 'to', 'above', 'below' or the end");
  expect_parse_error("a bag to left of a boot", "word 4 ('left'): expected 'the'");
  expect_parse_error("a bag to the left a boot", "word 6 ('a'): expected 'of'");
  expect_parse_error("a bag and", "the caption ends after 3 words: expected 'a' or 'one' next");
  expect_parse_error("two boots and a bag", "word 3 ('and'): expected the end of the caption");
  expect_parse_error("", "the empty caption names no items");
  int ids[CAPTION_MAX_TOKENS] = {1, 30, 0, 5, 0, 0, 0, 0}; /* "a bag", then "two" after padding */
  char err[512];
  Caption c;
  EXPECT(caption_parse(ids, &c, err, sizeof err) == -1 && strstr(err, "token 4 is 5, not a word here"),
         "a word after padding: %s", err);
  int bad[CAPTION_MAX_TOKENS] = {1, 99, 0, 0, 0, 0, 0, 0};
  EXPECT(caption_parse(bad, &c, err, sizeof err) == -1 && strstr(err, "token 2 is 99"), "an id past the vocabulary: %s",
         err);
}

static void test_layouts(void) {
  static Caption caps[1000];
  int n = all_captions(caps);
  int arrangements[CAPTION_CELLS][CAPTION_CELLS] = {{0}}; /* [item][cell] hits of 4-item layouts */
  for (int i = 0; i < n; i++)
    for (uint32_t w = 0; w < 48; w++) {
      int cls[CAPTION_MAX_ITEMS], cell[CAPTION_MAX_ITEMS];
      uint32_t word = w * 2654435761u;
      caption_place(&caps[i], word, cls, cell);
      int items = 0;
      while (items < CAPTION_MAX_ITEMS && cls[items] >= 0) items++;
      char text[128];
      caption_text(&caps[i], text, sizeof text);
      EXPECT(items == caps[i].count, "'%s': %d items placed", text, items);
      for (int k = items; k < CAPTION_MAX_ITEMS; k++) EXPECT(cls[k] == -1 && cell[k] == -1, "'%s': padding", text);
      EXPECT(caption_holds(&caps[i], cls, cell, items), "'%s' (w %u): the placement does not hold it", text, word);
      if (caps[i].count == 4)
        for (int k = 0; k < 4; k++) arrangements[k][cell[k]]++;
      if (caps[i].category == CAPTION_POSITION && items == 2) { /* the mirrored layout breaks the relation */
        int swapped[2] = {cell[1], cell[0]};
        EXPECT(!caption_holds(&caps[i], cls, swapped, 2), "'%s' holds with its items swapped", text);
      }
    }
  for (int k = 0; k < 4; k++)
    for (int c = 0; c < 4; c++) EXPECT(arrangements[k][c] > 0, "item %d never lands in cell %d", k, c);
  Caption two = {CAPTION_TWO, 8, 5, 2, -1}; /* a bag and a sandal */
  int cls[2] = {5, 8}, cell[2] = {3, 0}, same[2] = {1, 1};
  EXPECT(caption_holds(&two, cls, cell, 2), "two objects in either order");
  EXPECT(!caption_holds(&two, cls, same, 2), "two items in one cell");
  EXPECT(!caption_holds(&two, cls, cell, 1), "one item short");
  int wrong[2] = {5, 7};
  EXPECT(!caption_holds(&two, wrong, cell, 2), "a sneaker for the bag");
  Caption three = {CAPTION_COUNTING, 6, -1, 3, -1};
  int shirts[4] = {6, 6, 6, 6}, cells[4] = {0, 1, 2, 3};
  EXPECT(caption_holds(&three, shirts, cells, 3) && !caption_holds(&three, shirts, cells, 4), "three shirts, not four");
}

/* ---------------------------------------------------------------------------------------------- */
/* the file's caption groups */

enum { SET_N = 6 };
static const Caption set_caps[SET_N] = {
    {CAPTION_SINGLE, 8, -1, 1, -1},     {CAPTION_TWO, 4, 7, 2, -1},           {CAPTION_COUNTING, 6, -1, 4, -1},
    {CAPTION_POSITION, 4, 3, 2, CAPTION_ABOVE}, {CAPTION_POSITION, 7, 4, 2, CAPTION_RIGHT_OF}, {CAPTION_TWO, 0, 9, 2, -1}};

/* A test split of six canvases holding coat+sneaker out (canvases 1 and 4 name it). */
static void make_set(CaptionSet *s) {
  memset(s, 0, sizeof *s);
  s->n = SET_N, s->max_tokens = CAPTION_MAX_TOKENS, s->max_items = CAPTION_MAX_ITEMS, s->vocab_size = caption_vocab_size();
  s->num_categories = CAPTION_CATEGORIES, s->num_classes = CAPTION_CLASSES, s->grid = CAPTION_GRID, s->cell_size = 28;
  captions_alloc(s);
  for (int v = 0; v < s->vocab_size; v++) s->vocab[v] = strdup(caption_word(v));
  for (int i = 0; i < SET_N; i++) {
    char text[128], err[512];
    caption_text(&set_caps[i], text, sizeof text);
    s->text[i] = strdup(text);
    CHECK(caption_encode(text, s->tokens + i * CAPTION_MAX_TOKENS, err, sizeof err) > 0, "%s", err);
    s->category[i] = set_caps[i].category;
    s->held_out[i] = i == 1 || i == 4;
    int *cls = s->item_class + i * CAPTION_MAX_ITEMS, *cell = s->item_cell + i * CAPTION_MAX_ITEMS;
    caption_place(&set_caps[i], (uint32_t)(7 * i + 3), cls, cell);
    for (int k = 0; k < CAPTION_MAX_ITEMS; k++) s->item_source[i * CAPTION_MAX_ITEMS + k] = cls[k] >= 0 ? 100 * i + k : -1;
  }
  snprintf(s->categories, sizeof s->categories, "single,two,counting,position");
  snprintf(s->held_out_pairs, sizeof s->held_out_pairs, "coat+sneaker");
  snprintf(s->split, sizeof s->split, "test");
}

static char set_path[4200];

static void write_set(const CaptionSet *s) {
  hid_t f = h5_create(set_path, "amd-dataset", "");
  captions_write(f, s);
  h5_close(f);
}

static void read_set(void *arg) {
  CaptionSet r;
  (void)arg;
  captions_read(set_path, SET_N, CAPTION_CLASSES, &r);
  captions_free(&r);
}

static void check_set(void *arg) {
  CaptionSet r;
  char err[512];
  (void)arg;
  captions_read(set_path, SET_N, CAPTION_CLASSES, &r);
  if (caption_set_check(&r, err, sizeof err) != 0) amd_input_error("%s", err);
  captions_free(&r);
}

static void test_file_round_trip(void) {
  CaptionSet s, r;
  make_set(&s);
  snprintf(set_path, sizeof set_path, "%s/set.h5", scratch);
  write_set(&s);
  EXPECT(captions_read(set_path, SET_N, CAPTION_CLASSES, &r) == 1, "no captions read");
  EXPECT(r.max_tokens == CAPTION_MAX_TOKENS && r.max_items == CAPTION_MAX_ITEMS && r.vocab_size == s.vocab_size &&
             r.num_categories == 4 && r.grid == 2 && r.cell_size == 28,
         "sizes %d %d %d %d %d %d", r.max_tokens, r.max_items, r.vocab_size, r.num_categories, r.grid, r.cell_size);
  size_t items = sizeof(int) * SET_N * CAPTION_MAX_ITEMS;
  EXPECT(memcmp(r.tokens, s.tokens, sizeof(int) * SET_N * CAPTION_MAX_TOKENS) == 0, "tokens");
  EXPECT(memcmp(r.item_class, s.item_class, items) == 0 && memcmp(r.item_cell, s.item_cell, items) == 0 &&
             memcmp(r.item_source, s.item_source, items) == 0,
         "layout");
  EXPECT(memcmp(r.category, s.category, sizeof(int) * SET_N) == 0 && memcmp(r.held_out, s.held_out, sizeof(int) * SET_N) == 0,
         "categories and flags");
  for (int i = 0; i < SET_N; i++) EXPECT(strcmp(r.text[i], s.text[i]) == 0, "text %d: '%s'", i, r.text[i]);
  for (int v = 0; v < s.vocab_size; v++) EXPECT(strcmp(r.vocab[v], s.vocab[v]) == 0, "word %d", v);
  EXPECT(strcmp(r.held_out_pairs, "coat+sneaker") == 0 && strcmp(r.split, "test") == 0, "attributes");
  char err[512] = "";
  EXPECT(caption_set_check(&r, err, sizeof err) == 0, "the set fails its check: %s", err);
  captions_free(&r);
  captions_free(&s);
}

/* Writes the set with one change, then expects fn to stop naming `needle`. */
#define DAMAGED(fn, needle, ...)                                                          \
  do {                                                                                   \
    CaptionSet d_;                                                                       \
    make_set(&d_);                                                                       \
    CaptionSet *s = &d_;                                                                 \
    __VA_ARGS__;                                                                         \
    write_set(s);                                                                        \
    EXPECT(expect_fatal(fn, NULL, needle), "%s: no error naming '%s'", #__VA_ARGS__, needle); \
    captions_free(&d_);                                                                  \
  } while (0)

static void test_file_damaged(void) {
  snprintf(set_path, sizeof set_path, "%s/damaged.h5", scratch);
  DAMAGED(read_set, "/captions/tokens[0, 3] = 5 follows padding", s->tokens[3] = 5);
  DAMAGED(read_set, "/captions/tokens[2, 0] = 34 is outside the vocabulary", s->tokens[16] = 34);
  DAMAGED(read_set, "/captions/category[1] = 4 is outside [0, 4)", s->category[1] = 4);
  DAMAGED(read_set, "/captions/held_out[0] = 2 is not 0 or 1", s->held_out[0] = 2);
  DAMAGED(read_set, "/layout/class[0, 0] = 10: expected a class in [0, 10)", s->item_class[0] = 10);
  DAMAGED(read_set, "/layout/cell[2, 3] = 4: expected a cell in [0, 4)", s->item_cell[11] = 4);
  DAMAGED(read_set, "/layout/cell[2]: items 0 and 1 share cell", s->item_cell[9] = s->item_cell[8]);
  DAMAGED(read_set, "/layout/source[0, 1] = 7: expected", s->item_source[1] = 7);
  DAMAGED(read_set, "canvas 0 has no item", s->item_class[0] = -1);
  DAMAGED(check_set, "canvas 3: its layout (2 items) does not show \"a coat above a dress\"",
          int t = s->item_cell[12]; s->item_cell[12] = s->item_cell[13], s->item_cell[13] = t);
  DAMAGED(check_set, "canvas 2: the tokens say \"four shirts\" but the text says \"three shirts\"",
          free(s->text[2]); s->text[2] = strdup("three shirts"));
  DAMAGED(check_set, "canvas 1: \"a coat and a sneaker\" is a two caption, but its category says position",
          s->category[1] = CAPTION_POSITION);
  DAMAGED(check_set, "canvas 5: \"a tshirt and a boot\" names no held-out pair", s->held_out[5] = 1);
  DAMAGED(check_set, "canvas 1 of the train split: \"a coat and a sneaker\" names a held-out pair",
          snprintf(s->split, sizeof s->split, "train"));
  DAMAGED(check_set, "token 14 is 'top' in its vocabulary but 'tshirt' in this amd's",
          free(s->vocab[14]); s->vocab[14] = strdup("top"));
  DAMAGED(check_set, "held_out_pairs names 'coat+hat'", snprintf(s->held_out_pairs, sizeof s->held_out_pairs, "coat+hat"));
}

/* A captioned dataset's fingerprint follows its tokens: files equal in /x and /labels but one
 * token apart differ, and from the same file without captions. */
static void test_fingerprint_follows_tokens(void) {
  Dataset d;
  memset(&d, 0, sizeof d);
  d.n = SET_N, d.ndim = 3, d.shape[0] = 1, d.shape[1] = 4, d.shape[2] = 4, d.dim = 16, d.num_classes = CAPTION_CLASSES;
  d.x = callocCheck(SET_N * 16, sizeof(float));
  d.labels = callocCheck(SET_N, sizeof(int));
  for (int i = 0; i < SET_N * 16; i++) d.x[i] = (float)(i % 7) / 7.0f;
  char path[4200], fp[3][DATASET_FINGERPRINT_MAX];
  CaptionSet s;
  make_set(&s);
  for (int k = 0; k < 3; k++) {
    snprintf(path, sizeof path, "%s/fp%d.h5", scratch, k);
    if (k == 1) s.tokens[1] = 32; /* "a boot", not "a bag" */
    dataset_write(path, &d, "amd-dataset", "", k < 2 ? captions_write_hook : NULL, &s);
    Dataset r;
    dataset_read(path, "amd-dataset", &r);
    dataset_fingerprint(&r, fp[k], sizeof fp[k]);
    dataset_free(&r);
  }
  EXPECT(strcmp(fp[0], fp[1]) != 0, "one token changed, the fingerprint did not: %s", fp[0]);
  EXPECT(strcmp(fp[0], fp[2]) != 0, "the captions add nothing to the fingerprint: %s", fp[0]);
  EXPECT(strstr(fp[0], "6 samples of 1x4x4, 10 classes, checksum ") == fp[0], "%s", fp[0]);
  captions_free(&s);
  dataset_free(&d);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

int main(void) {
  snprintf(scratch, sizeof scratch, "/tmp/amd_test_caption_XXXXXX");
  CHECK(mkdtemp(scratch), "cannot create a scratch folder under /tmp");
  TEST_RUN(test_vocabulary);
  TEST_RUN(test_round_trip);
  TEST_RUN(test_case_and_spacing);
  TEST_RUN(test_encode_errors);
  TEST_RUN(test_grammar_errors);
  TEST_RUN(test_layouts);
  TEST_RUN(test_file_round_trip);
  TEST_RUN(test_file_damaged);
  TEST_RUN(test_fingerprint_follows_tokens);
  if (t_failed == 0) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  else printf("  files kept in %s\n", scratch);
  return t_finish();
}
