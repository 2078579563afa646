/* cmd_data_cells.c: `amd data cells`: a captioned dataset (amd data compose) cut into its cells, the
 * training data of the cell classifiers that the caption reward and the GenEval-like score read
 * (docs/DESIGN.md sections 4.8, 9 and 13.5). Canvas i's cell j (row * grid + column) becomes
 * sample 4i + j, its pixels as they are, labelled with the class of the item /layout puts there, or
 * CAPTION_EMPTY (10, "empty") when none does. The output is a plain amd-dataset of (1, cell, cell)
 * images and 11 classes, so `amd train task=reward|evaluator` trains on it unchanged. Rank 0 works.
 * Not here: composing canvases (cmd_data_compose.c), the caption reward (src/reward_caption.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caption.h"
#include "captions.h"
#include "cmd_data_images.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "h5.h"

typedef struct {
  char in[CFG_STR_MAX], out[CFG_STR_MAX];
} CellsConfig;

static const cfg_key cells_keys[] = {
    {"in", CFG_PATH, offsetof(CellsConfig, in), "", 0, 0, NULL, "captioned dataset file (amd data compose); required"},
    {"out", CFG_STR, offsetof(CellsConfig, out), "", 0, 0, NULL, "dataset file of its cells to write; required"},
    CFG_END};

/* The cells of the canvases d (captions s) into cells (n * grid^2 images). */
static void cut_cells(const Dataset *d, const CaptionSet *s, Dataset *cells) {
  int g = s->grid, cs = s->cell_size, W = g * cs, per = g * g;
  memset(cells, 0, sizeof *cells);
  cells->n = d->n * per, cells->ndim = 3, cells->shape[0] = 1, cells->shape[1] = cs, cells->shape[2] = cs;
  cells->dim = cs * cs;
  cells->x = mallocCheck(sizeof(float) * (size_t)cells->n * (size_t)cells->dim);
  cells->labels = mallocCheck(sizeof(int) * (size_t)cells->n);
  cells->num_classes = CAPTION_OUTCOMES;
  snprintf(cells->class_names, sizeof cells->class_names, "%s,empty", fmnist_class_names);
  snprintf(cells->source, sizeof cells->source, "cells of %.100s", d->source);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < d->n; i++) {
    const float *x = d->x + i * d->dim;
    for (int j = 0; j < per; j++) {
      float *out = cells->x + (i * per + j) * cells->dim;
      int r0 = (j / g) * cs, c0 = (j % g) * cs;
      for (int r = 0; r < cs; r++) memcpy(out + r * cs, x + (long)(r0 + r) * W + c0, sizeof(float) * (size_t)cs);
      int label = CAPTION_EMPTY;
      for (int k = 0; k < s->max_items; k++)
        if (s->item_cell[i * s->max_items + k] == j) label = s->item_class[i * s->max_items + k];
      cells->labels[i * per + j] = label;
    }
  }
}

int data_cells(int argc, char **argv) {
  CellsConfig c;
  cfg_parse_args(cells_keys, &c, argc, argv, "data cells",
                 "Cuts a captioned dataset into its cells, labelled by class or 'empty' (the cell classifiers' data).");
  if (!c.in[0]) amd_usage_error("config key 'in' is required: a captioned dataset file (amd data compose)");
  if (!c.out[0]) amd_usage_error("config key 'out' is required: the dataset file of the cells to write");
  struct stat si, so; /* the same file by any name (in= is absolute, out= as given) */
  if (strcmp(c.in, c.out) == 0 || (stat(c.in, &si) == 0 && stat(c.out, &so) == 0 && si.st_dev == so.st_dev &&
                                   si.st_ino == so.st_ino))
    amd_usage_error("config keys 'in' and 'out' both name '%s': write the cells elsewhere", c.in);
  if (dist_rank() != 0) return 0;
  h5_check_replaceable(c.out, "amd-dataset", "out");
  Dataset d;
  dataset_read(c.in, "amd-dataset", &d);
  CaptionSet s;
  if (!captions_read(c.in, d.n, d.num_classes, &s))
    amd_usage_error("'%s' has no /captions: amd data cells cuts the canvases of amd data compose", c.in);
  if (s.num_classes != CAPTION_CLASSES || s.grid != CAPTION_GRID)
    amd_input_error("'%s': %d item classes on %d x %d cells, not this amd's %d on %d x %d", c.in, s.num_classes, s.grid,
                    s.grid, CAPTION_CLASSES, CAPTION_GRID, CAPTION_GRID);
  if (d.ndim != 3 || d.shape[0] != 1 || d.shape[1] != s.grid * s.cell_size || d.shape[2] != s.grid * s.cell_size)
    amd_input_error("'%s': canvases of %d x %d x %d, but its /layout says one channel of %d x %d cells of %d pixels "
                    "(%d x %d)", c.in, d.shape[0], d.shape[1], d.shape[2], s.grid, s.grid, s.cell_size,
                    s.grid * s.cell_size, s.grid * s.cell_size);
  Dataset cells;
  cut_cells(&d, &s, &cells);
  long empty = 0;
  for (long i = 0; i < cells.n; i++) empty += cells.labels[i] == CAPTION_EMPTY;
  char *text = cfg_to_text(cells_keys, &c);
  amd_mkdirs_parent(c.out);
  dataset_write(c.out, &cells, "amd-dataset", text, NULL, NULL);
  printf("wrote %s: %ld cells of %d x %d from the %ld canvases of %s (%ld empty), %d classes\n", c.out, cells.n,
         cells.shape[1], cells.shape[2], d.n, c.in, empty, cells.num_classes);
  free(text);
  captions_free(&s);
  dataset_free(&cells);
  dataset_free(&d);
  return 0;
}
