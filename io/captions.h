/* captions.h: the caption groups of a captioned dataset file (docs/DESIGN.md section 13.3), which
 * `amd data compose` adds to an amd-dataset file beside /x and /labels:
 *   /captions/text      (N) text     each canvas's caption
 *   /captions/tokens    (N, L) int32 its token ids, padded with 0 to L
 *   /captions/category  (N) int32    its category: an index into the attribute `categories`
 *   /captions/held_out  (N) int32    1 when it names a combination held out of the train split
 *   /captions/vocab     (V) text     the vocabulary: the word of each token id
 *   /layout/class       (N, M) int32 class of each item on the canvas, -1 past the last
 *   /layout/cell        (N, M) int32 its cell, row * grid + column, -1 past the last
 *   /layout/source      (N, M) int32 its image's index in the source split, -1 past the last
 * with attributes on /captions: `categories` (comma-separated names), `held_out_pairs` (the held-out
 * class pairs, "coat+sneaker,..."), `split`; on /layout: `grid` (cells per side), `cell_size`
 * (pixels per side of a cell).
 * The file's layout only: io/ knows nothing of the grammar (src/caption.h), so the reader checks
 * what the file alone can say (shapes, ranges, padding) and leaves the words to its caller.
 * Return convention: captions_read returns 0 when the file has no /captions (1 when it has); every
 * failure stops the program with an error naming the file, the dataset and the index. */
#pragma once
#include <hdf5.h>

typedef struct {
  long n;
  int max_tokens;  /* L */
  int max_items;   /* M */
  int vocab_size;  /* V */
  int num_categories;
  int num_classes; /* classes of the items (the dataset's num_classes) */
  int grid, cell_size;
  char **vocab;    /* (V) */
  char **text;     /* (N) */
  int *tokens;     /* (N, L) */
  int *category;   /* (N) */
  int *held_out;   /* (N) */
  int *item_class, *item_cell, *item_source; /* (N, M) */
  char categories[256];
  char held_out_pairs[2048];
  char split[32];
} CaptionSet;

/* Allocates the arrays of s for the sizes set in it (n, max_tokens, max_items, vocab_size); the
 * string arrays start NULL-filled. */
void captions_alloc(CaptionSet *s);
/* Writes the groups into an open amd-dataset file (a dataset_write `extra` hook takes it as ctx). */
void captions_write(hid_t file, const CaptionSet *s);
void captions_write_hook(hid_t file, const void *ctx);
/* Reads and checks the groups of the dataset file `path` of n canvases and num_classes classes:
 * the shapes agree with n, tokens lie in [0, V) with padding only at the end, categories in their
 * list, held_out is 0 or 1, each item's class in [0, num_classes) and cell in [0, grid^2) with -1
 * padding only after the last item, no two items in one cell. */
int captions_read(const char *path, long n, int num_classes, CaptionSet *s);
void captions_free(CaptionSet *s);
