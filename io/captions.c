/* captions.c: writing and reading the caption groups of captions.h. */
#include "captions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5.h"

void captions_alloc(CaptionSet *s) {
  size_t n = (size_t)s->n, items = n * (size_t)s->max_items;
  s->vocab = callocCheck((size_t)s->vocab_size, sizeof(char *));
  s->text = callocCheck(n, sizeof(char *));
  s->tokens = callocCheck(n * (size_t)s->max_tokens, sizeof(int));
  s->category = callocCheck(n, sizeof(int));
  s->held_out = callocCheck(n, sizeof(int));
  s->item_class = callocCheck(items, sizeof(int));
  s->item_cell = callocCheck(items, sizeof(int));
  s->item_source = callocCheck(items, sizeof(int));
}

void captions_write(hid_t file, const CaptionSet *s) {
  hsize_t n = (hsize_t)s->n, tok[2] = {n, (hsize_t)s->max_tokens}, items[2] = {n, (hsize_t)s->max_items};
  hid_t g = h5_group_create(file, "captions");
  h5_write_strings(g, "text", (const char *const *)s->text, n);
  h5_write_i32(g, "tokens", s->tokens, 2, tok);
  h5_write_i32(g, "category", s->category, 1, &n);
  h5_write_i32(g, "held_out", s->held_out, 1, &n);
  h5_write_strings(g, "vocab", (const char *const *)s->vocab, (hsize_t)s->vocab_size);
  h5_attr_write_str(g, "categories", s->categories);
  h5_attr_write_str(g, "held_out_pairs", s->held_out_pairs);
  h5_attr_write_str(g, "split", s->split);
  H5Gclose(g);
  g = h5_group_create(file, "layout");
  h5_write_i32(g, "class", s->item_class, 2, items);
  h5_write_i32(g, "cell", s->item_cell, 2, items);
  h5_write_i32(g, "source", s->item_source, 2, items);
  h5_attr_write_i64(g, "grid", s->grid);
  h5_attr_write_i64(g, "cell_size", s->cell_size);
  H5Gclose(g);
}

void captions_write_hook(hid_t file, const void *ctx) { captions_write(file, ctx); }

/* Stops unless the 2-D int dataset `name` of g has n rows (of any width, returned in *width). */
static int *read_rows(hid_t g, const char *path, const char *name, long n, int *width) {
  hsize_t d[2];
  int *v = h5_read_i32(g, name, 2, d);
  if ((long)d[0] != n || d[1] < 1 || d[1] > 64)
    amd_input_error("'%s': %s has shape (%llu, %llu), expected (%ld, 1 .. 64): one row per canvas of /x", path, name,
                    (unsigned long long)d[0], (unsigned long long)d[1], n);
  *width = (int)d[1];
  return v;
}

static int *read_column(hid_t g, const char *path, const char *name, long n) {
  hsize_t d;
  int *v = h5_read_i32(g, name, 1, &d);
  if ((long)d != n)
    amd_input_error("'%s': %s holds %llu entries, expected %ld: one per canvas of /x", path, name,
                    (unsigned long long)d, n);
  return v;
}

/* The checks of captions_read on what was read. */
static void captions_check(const char *path, const CaptionSet *s) {
  for (long i = 0; i < s->n; i++) {
    const int *t = s->tokens + i * s->max_tokens;
    int ended = 0;
    for (int j = 0; j < s->max_tokens; j++) {
      if (t[j] < 0 || t[j] >= s->vocab_size)
        amd_input_error("'%s': /captions/tokens[%ld, %d] = %d is outside the vocabulary [0, %d)", path, i, j, t[j],
                        s->vocab_size);
      if (ended && t[j] != 0)
        amd_input_error("'%s': /captions/tokens[%ld, %d] = %d follows padding: tokens pad only at the end", path, i, j,
                        t[j]);
      ended |= t[j] == 0;
    }
    if (s->category[i] < 0 || s->category[i] >= s->num_categories)
      amd_input_error("'%s': /captions/category[%ld] = %d is outside [0, %d) (categories %s)", path, i, s->category[i],
                      s->num_categories, s->categories);
    if (s->held_out[i] != 0 && s->held_out[i] != 1)
      amd_input_error("'%s': /captions/held_out[%ld] = %d is not 0 or 1", path, i, s->held_out[i]);
    const int *cls = s->item_class + i * s->max_items, *cell = s->item_cell + i * s->max_items;
    const int *src = s->item_source + i * s->max_items;
    int items = 0;
    while (items < s->max_items && cls[items] >= 0) items++;
    if (items == 0) amd_input_error("'%s': canvas %ld has no item in /layout/class", path, i);
    for (int k = 0; k < s->max_items; k++) {
      int here = k < items;
      if (here ? cls[k] >= s->num_classes : cls[k] != -1)
        amd_input_error("'%s': /layout/class[%ld, %d] = %d: expected a class in [0, %d) before the first -1 and -1 after",
                        path, i, k, cls[k], s->num_classes);
      if (here ? cell[k] < 0 || cell[k] >= s->grid * s->grid : cell[k] != -1)
        amd_input_error("'%s': /layout/cell[%ld, %d] = %d: expected a cell in [0, %d) for each item and -1 after", path,
                        i, k, cell[k], s->grid * s->grid);
      if (here ? src[k] < 0 : src[k] != -1)
        amd_input_error("'%s': /layout/source[%ld, %d] = %d: expected an image index >= 0 for each item and -1 after",
                        path, i, k, src[k]);
      for (int j = 0; here && j < k; j++)
        if (cell[j] == cell[k])
          amd_input_error("'%s': /layout/cell[%ld]: items %d and %d share cell %d", path, i, j, k, cell[k]);
    }
  }
}

int captions_read(const char *path, long n, int num_classes, CaptionSet *s) {
  memset(s, 0, sizeof *s);
  hid_t f = h5_open(path, "amd-dataset", 0, NULL);
  if (!h5_exists(f, "captions")) {
    h5_close(f);
    return 0;
  }
  s->n = n, s->num_classes = num_classes;
  hid_t g = h5_group_open(f, "captions");
  hsize_t nt, nv;
  s->text = h5_read_strings(g, "text", &nt);
  if ((long)nt != n) amd_input_error("'%s': /captions/text holds %llu captions, expected %ld", path, (unsigned long long)nt, n);
  s->tokens = read_rows(g, path, "/captions/tokens", n, &s->max_tokens);
  s->category = read_column(g, path, "/captions/category", n);
  s->held_out = read_column(g, path, "/captions/held_out", n);
  s->vocab = h5_read_strings(g, "vocab", &nv);
  s->vocab_size = (int)nv;
  if (nv < 2 || nv > 100000) amd_input_error("'%s': /captions/vocab holds %llu words", path, (unsigned long long)nv);
  char *a = h5_attr_read_str(g, "categories");
  snprintf(s->categories, sizeof s->categories, "%s", a);
  free(a);
  s->num_categories = 1;
  for (const char *p = s->categories; *p; p++) s->num_categories += *p == ',';
  a = h5_attr_read_str(g, "held_out_pairs");
  snprintf(s->held_out_pairs, sizeof s->held_out_pairs, "%s", a);
  free(a);
  a = h5_attr_read_str(g, "split");
  snprintf(s->split, sizeof s->split, "%s", a);
  free(a);
  H5Gclose(g);
  g = h5_group_open(f, "layout");
  int w[3];
  s->item_class = read_rows(g, path, "/layout/class", n, &w[0]);
  s->item_cell = read_rows(g, path, "/layout/cell", n, &w[1]);
  s->item_source = read_rows(g, path, "/layout/source", n, &w[2]);
  if (w[1] != w[0] || w[2] != w[0])
    amd_input_error("'%s': /layout/class, cell and source are %d, %d and %d items wide: they must agree", path, w[0],
                    w[1], w[2]);
  s->max_items = w[0];
  s->grid = (int)h5_attr_read_i64(g, "grid");
  s->cell_size = (int)h5_attr_read_i64(g, "cell_size");
  if (s->grid < 1 || s->grid > 16 || s->cell_size < 1)
    amd_input_error("'%s': /layout has grid %d and cell_size %d: expected 1 .. 16 cells a side of at least 1 pixel",
                    path, s->grid, s->cell_size);
  H5Gclose(g);
  h5_close(f);
  captions_check(path, s);
  return 1;
}

static void free_strings(char **s, long n) {
  for (long i = 0; s && i < n; i++) free(s[i]);
  free(s);
}

void captions_free(CaptionSet *s) {
  free_strings(s->vocab, s->vocab_size);
  free_strings(s->text, s->n);
  free(s->tokens);
  free(s->category);
  free(s->held_out);
  free(s->item_class);
  free(s->item_cell);
  free(s->item_source);
  memset(s, 0, sizeof *s);
}
