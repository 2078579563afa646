/* test_caption.c: src/caption.c, the text prompts of captioned canvases: the vocabulary (every
 * word distinct, nouns per class), the tokenizer (round trips of every caption the grammar makes,
 * case and spacing, the empty caption, padding), its errors (an unknown word named with its
 * position, too many words), the grammar (every generated caption parses back to itself; malformed
 * token sequences are refused naming the word), and the layouts (every placement holds its caption,
 * every arrangement of cells is reached, a wrong layout is refused).
 * Not here: composing canvases or the file (scenario_compose.sh drives amd data compose). */
#include <stdint.h>
#include <string.h>

#include "caption.h"
#include "common.h"
#include "test.h"

static void test_vocabulary(void) {
  int v = caption_vocab_size();
  EXPECT(v == 35, "vocabulary of %d words, expected 35 (2 specials, 13 words, 20 nouns)", v);
  EXPECT(strcmp(caption_word(CAPTION_PAD), "<pad>") == 0 && strcmp(caption_word(CAPTION_EMPTY), "<empty>") == 0,
         "the specials are %s and %s", caption_word(0), caption_word(1));
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
  for (int id = 2; id < caption_vocab_size(); id++)
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
  EXPECT(caption_encode("   ", a, err, sizeof err) == 1 && a[0] == CAPTION_EMPTY && a[1] == CAPTION_PAD,
         "blank text is the empty caption");
  EXPECT(caption_encode("", b, err, sizeof err) == 1 && memcmp(a, b, sizeof a) == 0, "'' is the empty caption");
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
  EXPECT(caption_encode(text, ids, err, sizeof err) > 0, "'%s': %s", text, err);
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
  int ids[CAPTION_MAX_TOKENS] = {2, 31, 0, 5, 0, 0, 0, 0};
  char err[512];
  Caption c;
  EXPECT(caption_parse(ids, &c, err, sizeof err) == -1 && strstr(err, "token 4 is 5, not a word here"),
         "a word after padding: %s", err);
  int bad[CAPTION_MAX_TOKENS] = {2, 99, 0, 0, 0, 0, 0, 0};
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

int main(void) {
  TEST_RUN(test_vocabulary);
  TEST_RUN(test_round_trip);
  TEST_RUN(test_case_and_spacing);
  TEST_RUN(test_encode_errors);
  TEST_RUN(test_grammar_errors);
  TEST_RUN(test_layouts);
  return t_finish();
}
