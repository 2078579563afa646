/* caption.h: the text prompts of amd's captioned canvases (docs/DESIGN.md section 13): a fixed
 * vocabulary, the tokenizer (text <-> token ids), the grammar of the four GenEval-like categories
 * (one object, two objects, counting, position), and the layout a caption implies on the canvas, a
 * 2 x 2 grid of cells numbered row * 2 + column (0 top left, 1 top right, 2 bottom left, 3 bottom
 * right).
 * Not here: drawing captions for a dataset or the held-out combinations (src/cmd_data_compose.c),
 * the file layout (io/captions.c), encoding tokens into vectors (the text encoder).
 * Return convention: caption_encode, caption_parse and caption_set_check return 0 (encode: the
 * token count), or -1 with the reason in err (the caller decides whether it is fatal); the rest
 * cannot fail. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "captions.h"

#define CAPTION_MAX_TOKENS 8 /* the longest caption: "a tshirt to the left of a pullover" */
#define CAPTION_MAX_ITEMS 4  /* items on a canvas: one per cell */
#define CAPTION_CLASSES 10   /* the Fashion-MNIST classes, in their label order */
#define CAPTION_GRID 2       /* cells per side of the canvas */
#define CAPTION_CELLS (CAPTION_GRID * CAPTION_GRID)
/* What a cell shows, as a cell classifier reads it (amd data cells, the caption reward and the
 * GenEval-like score): one of the classes 0 .. CAPTION_CLASSES - 1, or CAPTION_EMPTY (background). */
#define CAPTION_EMPTY CAPTION_CLASSES
#define CAPTION_OUTCOMES (CAPTION_CLASSES + 1)

/* The one special token: padding after the last word. The empty caption (classifier-free
 * guidance's unconditional prompt) is padding throughout, so its key padding mask (token != 0) is all
 * zeros, which cross-attention reads as no text (docs/DESIGN.md sections 2.2 and 5.2). */
enum { CAPTION_PAD = 0 };

typedef enum { CAPTION_SINGLE, CAPTION_TWO, CAPTION_COUNTING, CAPTION_POSITION, CAPTION_CATEGORIES } CaptionCategory;
/* position: where the first named item sits relative to the second */
typedef enum { CAPTION_LEFT_OF, CAPTION_RIGHT_OF, CAPTION_ABOVE, CAPTION_BELOW, CAPTION_RELATIONS } CaptionRelation;

/* What a caption says. single "a bag": a; two "a bag and a sandal": a, b; counting "three shirts":
 * a, count; position "a coat to the left of a dress": a, b, relation. */
typedef struct {
  int category; /* CaptionCategory */
  int a, b;     /* the named classes; b = -1 unless two or position */
  int count;    /* items on the canvas: 1 single, 2 two and position, 2..4 counting */
  int relation; /* CaptionRelation for position; -1 otherwise */
} Caption;

int caption_vocab_size(void);
/* The word of token id (0 <= id < caption_vocab_size()): "<pad>", "a", "and", ... */
const char *caption_word(int id);
/* "single", "two", "counting", "position"; caption_category_find: its inverse, -1 if none. */
const char *caption_category_name(int category);
int caption_category_find(const char *name);
/* The noun of a class, singular ("boot") or plural ("boots"); caption_class_find: the class of a
 * singular noun, -1 if none. */
const char *caption_noun(int cls, int plural);
int caption_class_find(const char *noun);

/* Text to token ids: lower-cased, split at whitespace, each word looked up; the rest of ids
 * (CAPTION_MAX_TOKENS entries) is CAPTION_PAD. Blank text is the empty caption: 0 tokens, all
 * padding. An unknown word, or more than CAPTION_MAX_TOKENS words, is an error naming the word and
 * its position. Returns the number of tokens before the padding, or -1. */
int caption_encode(const char *text, int ids[CAPTION_MAX_TOKENS], char *err, size_t err_size);
/* Token ids to text, words joined by one space, padding dropped; the empty caption is "". */
void caption_decode(const int ids[CAPTION_MAX_TOKENS], char *out, size_t size);
/* The caption's text in the grammar ("a bag above a boot"). */
void caption_text(const Caption *c, char *out, size_t size);
/* Token ids to what they say, by the grammar; an error names the first word that does not fit
 * and what was expected there. */
int caption_parse(const int ids[CAPTION_MAX_TOKENS], Caption *c, char *err, size_t err_size);

/* A layout the caption implies, drawn from the random word w: item k (0 the first named) gets class
 * cls[k] and cell cell[k]; entries from c->count on are -1. Single, two and counting items take
 * distinct cells of a random arrangement; position puts the first item left of, right of, above or
 * below the second in a random row or column. */
void caption_place(const Caption *c, uint32_t w, int cls[CAPTION_MAX_ITEMS], int cell[CAPTION_MAX_ITEMS]);
/* Whether n items (class, cell) on a canvas show what the caption says: exactly the named items, as
 * many as it says, in the named relation (position compares cell columns or rows). The check a
 * GenEval-like score makes of the items found on a canvas. */
int caption_holds(const Caption *c, const int *cls, const int *cell, int n);
/* The items of a canvas whose cell j shows outcome[j] (a class or CAPTION_EMPTY): the non-empty
 * cells in cell order into cls[] and cell[]; returns their count (the n of caption_holds). */
int caption_items_of_cells(const int outcome[CAPTION_CELLS], int cls[CAPTION_CELLS], int cell[CAPTION_CELLS]);

/* A captioned dataset (io/captions.h) checked against this grammar: its vocabulary is this amd's,
 * word for word; and every canvas's tokens parse, decode to its text, have its category, and its
 * layout holds the caption (caption_holds). The first disagreement, naming the canvas, goes to err. */
int caption_set_check(const CaptionSet *s, char *err, size_t err_size);
