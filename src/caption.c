/* caption.c: the vocabulary, tokenizer, grammar and layouts of caption.h, and the check of a
 * captioned dataset against them. The vocabulary is a fixed table, so a token id means the same word
 * in every file and model; a new word goes at its end. */
#include "caption.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Token ids: padding, the function words, the number words, then each class's singular and plural
 * noun (class k: CAPTION_NOUN0 + 2 k and + 2 k + 1). */
enum {
  TOK_A = 1, TOK_AND, TOK_ONE, TOK_TWO, TOK_THREE, TOK_FOUR, TOK_TO, TOK_THE, TOK_LEFT, TOK_RIGHT, TOK_OF, TOK_ABOVE,
  TOK_BELOW, CAPTION_NOUN0
};

static const char *const vocab[] = {
    "<pad>", "a", "and", "one", "two", "three", "four", "to", "the", "left", "right", "of", "above", "below",
    /* the Fashion-MNIST classes in label order: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal,
     * Shirt, Sneaker, Bag, Ankle boot */
    "tshirt", "tshirts", "trouser", "trousers", "pullover", "pullovers", "dress", "dresses", "coat", "coats",
    "sandal", "sandals", "shirt", "shirts", "sneaker", "sneakers", "bag", "bags", "boot", "boots"};
#define VOCAB_SIZE ((int)(sizeof vocab / sizeof vocab[0]))
_Static_assert(VOCAB_SIZE == CAPTION_NOUN0 + 2 * CAPTION_CLASSES, "a singular and a plural noun per class");

static const char *const categories[CAPTION_CATEGORIES] = {"single", "two", "counting", "position"};

int caption_vocab_size(void) { return VOCAB_SIZE; }
const char *caption_word(int id) { return id >= 0 && id < VOCAB_SIZE ? vocab[id] : "<out of vocabulary>"; }
const char *caption_category_name(int category) {
  return category >= 0 && category < CAPTION_CATEGORIES ? categories[category] : "<no category>";
}

int caption_category_find(const char *name) {
  for (int k = 0; k < CAPTION_CATEGORIES; k++)
    if (strcmp(name, categories[k]) == 0) return k;
  return -1;
}

const char *caption_noun(int cls, int plural) { return vocab[CAPTION_NOUN0 + 2 * cls + (plural != 0)]; }

int caption_class_find(const char *noun) {
  for (int k = 0; k < CAPTION_CLASSES; k++)
    if (strcmp(noun, caption_noun(k, 0)) == 0) return k;
  return -1;
}

static int word_id(const char *w) {
  for (int id = TOK_A; id < VOCAB_SIZE; id++) /* padding is not a word a user types */
    if (strcmp(w, vocab[id]) == 0) return id;
  return -1;
}

int caption_encode(const char *text, int ids[CAPTION_MAX_TOKENS], char *err, size_t err_size) {
  for (int i = 0; i < CAPTION_MAX_TOKENS; i++) ids[i] = CAPTION_PAD;
  int n = 0;
  const char *p = text;
  for (;;) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (!*p) break;
    char word[64];
    size_t len = 0;
    const char *start = p;
    while (*p && !isspace((unsigned char)*p)) {
      if (len + 1 < sizeof word) word[len++] = (char)tolower((unsigned char)*p);
      p++;
    }
    word[len] = '\0';
    if (n == CAPTION_MAX_TOKENS) {
      snprintf(err, err_size, "caption \"%s\" has more than %d words (word %d is '%.*s')", text, CAPTION_MAX_TOKENS,
               n + 1, (int)(p - start), start);
      return -1;
    }
    int id = word_id(word);
    if (id < 0) {
      snprintf(err, err_size, "unknown word '%.*s' (word %d of caption \"%s\"); the vocabulary: a, and, one .. four, "
               "to the left of, to the right of, above, below, and the nouns tshirt, trouser, pullover, dress, coat, "
               "sandal, shirt, sneaker, bag, boot (plural with s, dresses)",
               (int)(p - start), start, n + 1, text);
      return -1;
    }
    ids[n++] = id;
  }
  return n;
}

void caption_decode(const int ids[CAPTION_MAX_TOKENS], char *out, size_t size) {
  size_t off = 0;
  if (size) out[0] = '\0';
  for (int i = 0; i < CAPTION_MAX_TOKENS; i++) {
    if (ids[i] == CAPTION_PAD) continue;
    int w = snprintf(out + off, size - off, "%s%s", off ? " " : "", caption_word(ids[i]));
    if (w < 0 || (size_t)w >= size - off) return;
    off += (size_t)w;
  }
}

static const char *const relation_text[CAPTION_RELATIONS] = {"to the left of", "to the right of", "above", "below"};
static const char *const number_text[] = {"", "one", "two", "three", "four"};

void caption_text(const Caption *c, char *out, size_t size) {
  switch (c->category) {
    case CAPTION_SINGLE: snprintf(out, size, "a %s", caption_noun(c->a, 0)); break;
    case CAPTION_TWO: snprintf(out, size, "a %s and a %s", caption_noun(c->a, 0), caption_noun(c->b, 0)); break;
    case CAPTION_COUNTING: snprintf(out, size, "%s %s", number_text[c->count], caption_noun(c->a, 1)); break;
    default:
      snprintf(out, size, "a %s %s a %s", caption_noun(c->a, 0), relation_text[c->relation], caption_noun(c->b, 0));
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* the grammar:
 *   caption  := object | object "and" object | number plural | object relation object
 *   object   := ("a" | "one") singular
 *   number   := "two" | "three" | "four"
 *   relation := "to the left of" | "to the right of" | "above" | "below"                           */

typedef struct {
  const int *ids;
  int pos, n;
  char *err;
  size_t err_size;
} Parser;

static int noun_class(int id, int plural) {
  return id >= CAPTION_NOUN0 && id < VOCAB_SIZE && (id - CAPTION_NOUN0) % 2 == plural ? (id - CAPTION_NOUN0) / 2 : -1;
}

/* The error "word k ('w'): expected <what>" (or "the caption ends" past its last word). */
static int expected(Parser *p, const char *what) {
  if (p->pos < p->n)
    snprintf(p->err, p->err_size, "word %d ('%s'): expected %s", p->pos + 1, caption_word(p->ids[p->pos]), what);
  else
    snprintf(p->err, p->err_size, "the caption ends after %d words: expected %s next", p->n, what);
  return -1;
}

static int take(Parser *p, int id) {
  if (p->pos < p->n && p->ids[p->pos] == id) return p->pos++, 1;
  return 0;
}

/* object := ("a" | "one") singular; returns its class or -1 */
static int object(Parser *p) {
  if (!take(p, TOK_A) && !take(p, TOK_ONE)) return expected(p, "'a' or 'one'");
  int cls = p->pos < p->n ? noun_class(p->ids[p->pos], 0) : -1;
  if (cls < 0) return expected(p, "a singular noun (bag, boot, coat, ...)");
  p->pos++;
  return cls;
}

int caption_parse(const int ids[CAPTION_MAX_TOKENS], Caption *c, char *err, size_t err_size) {
  Parser p = {ids, 0, 0, err, err_size};
  while (p.n < CAPTION_MAX_TOKENS && ids[p.n] != CAPTION_PAD) p.n++;
  for (int i = 0; i < CAPTION_MAX_TOKENS; i++) {
    int ok = i < p.n ? ids[i] > CAPTION_PAD && ids[i] < VOCAB_SIZE : ids[i] == CAPTION_PAD;
    if (!ok) {
      snprintf(err, err_size, "token %d is %d, not a word here (0 pads the end, and only padding follows it; words "
               "are 1 .. %d)", i + 1, ids[i], VOCAB_SIZE - 1);
      return -1;
    }
  }
  if (p.n == 0) {
    snprintf(err, err_size, "the empty caption names no items");
    return -1;
  }
  c->b = -1, c->relation = -1, c->count = 1;
  if (p.n > 0 && ids[0] >= TOK_TWO && ids[0] <= TOK_FOUR) {
    c->category = CAPTION_COUNTING;
    c->count = 2 + ids[0] - TOK_TWO;
    p.pos = 1;
    c->a = p.pos < p.n ? noun_class(ids[p.pos], 1) : -1;
    if (c->a < 0) return expected(&p, "a plural noun (bags, boots, coats, ...)");
    p.pos++;
  } else {
    if ((c->a = object(&p)) < 0) return -1;
    c->category = CAPTION_SINGLE;
    if (p.pos < p.n) {
      if (take(&p, TOK_AND)) c->category = CAPTION_TWO;
      else if (take(&p, TOK_ABOVE)) c->relation = CAPTION_ABOVE;
      else if (take(&p, TOK_BELOW)) c->relation = CAPTION_BELOW;
      else if (take(&p, TOK_TO)) {
        if (!take(&p, TOK_THE)) return expected(&p, "'the' (to the left of, to the right of)");
        if (take(&p, TOK_LEFT)) c->relation = CAPTION_LEFT_OF;
        else if (take(&p, TOK_RIGHT)) c->relation = CAPTION_RIGHT_OF;
        else return expected(&p, "'left' or 'right'");
        if (!take(&p, TOK_OF)) return expected(&p, "'of'");
      } else {
        return expected(&p, "'and', 'to', 'above', 'below' or the end");
      }
      if (c->category != CAPTION_TWO) c->category = CAPTION_POSITION;
      if ((c->b = object(&p)) < 0) return -1;
      c->count = 2;
    }
  }
  if (p.pos < p.n) return expected(&p, "the end of the caption");
  return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* layouts */

void caption_place(const Caption *c, uint32_t w, int cls[CAPTION_MAX_ITEMS], int cell[CAPTION_MAX_ITEMS]) {
  for (int k = 0; k < CAPTION_MAX_ITEMS; k++) cls[k] = cell[k] = -1;
  if (c->category == CAPTION_POSITION) {
    int line = (int)(w % CAPTION_GRID); /* the row (left/right) or column (above/below) both share */
    int first_low = c->relation == CAPTION_LEFT_OF || c->relation == CAPTION_ABOVE; /* first item at index 0 */
    int horizontal = c->relation == CAPTION_LEFT_OF || c->relation == CAPTION_RIGHT_OF;
    for (int k = 0; k < 2; k++) {
      int along = (k == 0) == first_low ? 0 : 1;
      cls[k] = k ? c->b : c->a;
      cell[k] = horizontal ? line * CAPTION_GRID + along : along * CAPTION_GRID + line;
    }
    return;
  }
  /* a uniformly drawn arrangement of the cells (Fisher-Yates on the digits of w in a mixed radix) */
  int perm[CAPTION_CELLS];
  for (int k = 0; k < CAPTION_CELLS; k++) perm[k] = k;
  for (int k = CAPTION_CELLS - 1; k > 0; k--) {
    int j = (int)(w % (uint32_t)(k + 1));
    w /= (uint32_t)(k + 1);
    int t = perm[k];
    perm[k] = perm[j], perm[j] = t;
  }
  for (int k = 0; k < c->count; k++) {
    cls[k] = c->category == CAPTION_TWO && k == 1 ? c->b : c->a;
    cell[k] = perm[k];
  }
}

int caption_holds(const Caption *c, const int *cls, const int *cell, int n) {
  if (n != c->count) return 0;
  for (int k = 0; k < n; k++)
    if (cell[k] < 0 || cell[k] >= CAPTION_CELLS) return 0;
  for (int k = 0; k < n; k++) /* one item per cell */
    for (int j = 0; j < k; j++)
      if (cell[j] == cell[k]) return 0;
  if (c->category == CAPTION_SINGLE || c->category == CAPTION_COUNTING) {
    for (int k = 0; k < n; k++)
      if (cls[k] != c->a) return 0;
    return 1;
  }
  /* two items of classes a and b in either order; position: the a that stands in the relation */
  for (int ia = 0; ia < 2; ia++) {
    int ib = 1 - ia;
    if (cls[ia] != c->a || cls[ib] != c->b) continue;
    if (c->category == CAPTION_TWO) return 1;
    int ra = cell[ia] / CAPTION_GRID, ca = cell[ia] % CAPTION_GRID;
    int rb = cell[ib] / CAPTION_GRID, cb = cell[ib] % CAPTION_GRID;
    if ((c->relation == CAPTION_LEFT_OF && ca < cb) || (c->relation == CAPTION_RIGHT_OF && ca > cb) ||
        (c->relation == CAPTION_ABOVE && ra < rb) || (c->relation == CAPTION_BELOW && ra > rb))
      return 1;
  }
  return 0;
}

int caption_items_of_cells(const int outcome[CAPTION_CELLS], int cls[CAPTION_CELLS], int cell[CAPTION_CELLS]) {
  int n = 0;
  for (int j = 0; j < CAPTION_CELLS; j++)
    if (outcome[j] != CAPTION_EMPTY) cls[n] = outcome[j], cell[n++] = j;
  return n;
}

int caption_set_check(const CaptionSet *s, char *err, size_t err_size) {
  if (s->vocab_size != VOCAB_SIZE || s->max_tokens != CAPTION_MAX_TOKENS || s->max_items != CAPTION_MAX_ITEMS ||
      s->grid != CAPTION_GRID) {
    snprintf(err, err_size, "its vocabulary of %d words, %d tokens, %d items and %d x %d cells are not this amd's "
             "(%d, %d, %d, %d x %d)", s->vocab_size, s->max_tokens, s->max_items, s->grid, s->grid, VOCAB_SIZE,
             CAPTION_MAX_TOKENS, CAPTION_MAX_ITEMS, CAPTION_GRID, CAPTION_GRID);
    return -1;
  }
  for (int v = 0; v < VOCAB_SIZE; v++)
    if (strcmp(s->vocab[v], vocab[v]) != 0) {
      snprintf(err, err_size, "token %d is '%s' in its vocabulary but '%s' in this amd's", v, s->vocab[v], vocab[v]);
      return -1;
    }
  int held[CAPTION_CLASSES][CAPTION_CLASSES] = {{0}};
  char pairs[sizeof s->held_out_pairs];
  snprintf(pairs, sizeof pairs, "%s", s->held_out_pairs);
  for (char *save = NULL, *item = strtok_r(pairs, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    char *plus = strchr(item, '+');
    int a = -1, b = -1;
    if (plus) *plus = '\0', a = caption_class_find(item), b = caption_class_find(plus + 1);
    if (a < 0 || b < 0) {
      snprintf(err, err_size, "held_out_pairs names '%s%s%s', not a pair of singular nouns", item, plus ? "+" : "",
               plus ? plus + 1 : "");
      return -1;
    }
    held[a][b] = held[b][a] = 1;
  }
  for (long i = 0; i < s->n; i++) {
    const int *ids = s->tokens + i * CAPTION_MAX_TOKENS;
    const int *cls = s->item_class + i * CAPTION_MAX_ITEMS, *cell = s->item_cell + i * CAPTION_MAX_ITEMS;
    char why[256], text[128];
    Caption c;
    if (caption_parse(ids, &c, why, sizeof why) != 0) {
      snprintf(err, err_size, "canvas %ld: the caption's tokens do not parse: %s", i, why);
      return -1;
    }
    caption_decode(ids, text, sizeof text);
    if (strcmp(text, s->text[i]) != 0) {
      snprintf(err, err_size, "canvas %ld: the tokens say \"%s\" but the text says \"%s\"", i, text, s->text[i]);
      return -1;
    }
    if (c.category != s->category[i]) {
      snprintf(err, err_size, "canvas %ld: \"%s\" is a %s caption, but its category says %s", i, text,
               caption_category_name(c.category), caption_category_name(s->category[i]));
      return -1;
    }
    int n = 0;
    while (n < CAPTION_MAX_ITEMS && cls[n] >= 0) n++;
    if (!caption_holds(&c, cls, cell, n)) {
      snprintf(err, err_size, "canvas %ld: its layout (%d items) does not show \"%s\"", i, n, text);
      return -1;
    }
    int names_held = c.b >= 0 && held[c.a][c.b];
    if (s->held_out[i] != names_held) {
      snprintf(err, err_size, "canvas %ld: \"%s\" names %s held-out pair (%s), but its held_out flag is %d", i, text,
               names_held ? "a" : "no", s->held_out_pairs[0] ? s->held_out_pairs : "none", s->held_out[i]);
      return -1;
    }
    if (names_held && strcmp(s->split, "train") == 0) {
      snprintf(err, err_size, "canvas %ld of the train split: \"%s\" names a held-out pair (%s)", i, text,
               s->held_out_pairs);
      return -1;
    }
  }
  return 0;
}
