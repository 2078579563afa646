/* cmd_data.c: `amd data <kind>`: the kind dispatch, and `amd data toy2d`, which writes the
 * class-conditional 2-D Gaussian mixture as a dataset file, with the mixture itself stored so
 * metrics can use the exact density. Rank 0 writes. The image kinds (fmnist, import) live in
 * cmd_data_images.c, the captioned canvases (compose) in cmd_data_compose.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_data_images.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "h5.h"
#include "dist.h"
#include "toy2d.h"

typedef struct {
  char out[CFG_STR_MAX];
  int n, modes, classes, seed;
  char layout[CFG_STR_MAX];
  double radius, sigma;
} ToyConfig;

static const cfg_key toy_keys[] = {
    {"out", CFG_STR, offsetof(ToyConfig, out), "data/toy.h5", 0, 0, NULL, "dataset file to write"},
    {"n", CFG_INT, offsetof(ToyConfig, n), "50000", 1, 100000000, NULL, "number of samples"},
    {"modes", CFG_INT, offsetof(ToyConfig, modes), "8", 1, 1024, NULL, "number of Gaussian modes"},
    {"classes", CFG_INT, offsetof(ToyConfig, classes), "4", 1, 1024, NULL,
     "number of classes; class k owns the modes m with m mod classes = k"},
    {"layout", CFG_CHOICE, offsetof(ToyConfig, layout), "ring", 0, 0, "ring|grid", "where the modes sit"},
    {"radius", CFG_FLOAT, offsetof(ToyConfig, radius), "0.7", 1e-3, 1.0, NULL,
     "ring radius, or half the grid's side (data stay in [-1, 1])"},
    {"sigma", CFG_FLOAT, offsetof(ToyConfig, sigma), "0.05", 1e-4, 1.0, NULL, "standard deviation of every mode"},
    {"seed", CFG_INT, offsetof(ToyConfig, seed), "0", 0, 2147483647, NULL, "Philox seed of the draw"},
    CFG_END};

static int data_toy2d(int argc, char **argv) {
  ToyConfig c;
  cfg_parse_args(toy_keys, &c, argc, argv, "data toy2d", "Writes a class-conditional 2-D Gaussian mixture dataset.");
  if (c.classes > c.modes)
    amd_usage_error("config keys 'classes' (%d) and 'modes' (%d): classes must not exceed modes, every class owns at "
                    "least one mode", c.classes, c.modes);
  if (dist_rank() == 0) {
    h5_check_replaceable(c.out, "amd-dataset", "out");
    Dataset d;
    memset(&d, 0, sizeof d);
    mixture_make(&d.mix, c.layout, c.modes, c.classes, c.radius, c.sigma);
    d.has_mixture = 1;
    d.n = c.n, d.ndim = 1, d.shape[0] = 2, d.dim = 2, d.num_classes = c.classes;
    d.x = mallocCheck(sizeof(float) * 2 * (size_t)c.n);
    d.labels = mallocCheck(sizeof(int) * (size_t)c.n);
    mixture_sample(&d.mix, (uint64_t)c.seed, c.n, d.x, d.labels);
    snprintf(d.source, sizeof d.source, "toy2d %.64s", c.layout);
    size_t off = 0;
    for (int k = 0; k < c.classes && off + 16 < sizeof d.class_names; k++)
      off += (size_t)snprintf(d.class_names + off, sizeof d.class_names - off, k ? ",class%d" : "class%d", k);
    char *text = cfg_to_text(toy_keys, &c);
    amd_mkdirs_parent(c.out);
    dataset_write(c.out, &d, "amd-dataset", text, NULL, NULL);
    printf("wrote %s: %d samples, %d modes (%s), %d classes, sigma %g\n", c.out, c.n, c.modes, c.layout,
           c.classes, c.sigma);
    free(text);
    dataset_free(&d);
  }
  return 0;
}

int cmd_data(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    if (dist_rank() == 0)
      printf("usage: amd data <kind> [key=value ...]   (amd data <kind> --help lists its keys)\n"
             "  kinds:\n"
             "    toy2d    class-conditional 2-D Gaussian mixture\n"
             "    fmnist   Fashion-MNIST from the Debian package dataset-fashion-mnist (train and test files)\n"
             "    import   a user's IDX images (plain or gzipped, optional IDX labels) or HDF5 image array\n"
             "    compose  captioned canvases of 1-4 Fashion-MNIST items (text prompts, GenEval-like categories)\n"
             "    cells    the cells of captioned canvases, labelled by class or empty (the cell classifiers' data)\n");
    return argc < 1 ? AMD_EXIT_USAGE : 0;
  }
  if (strcmp(argv[0], "toy2d") == 0) return data_toy2d(argc - 1, argv + 1);
  if (strcmp(argv[0], "fmnist") == 0) return data_fmnist(argc - 1, argv + 1);
  if (strcmp(argv[0], "import") == 0) return data_import(argc - 1, argv + 1);
  if (strcmp(argv[0], "compose") == 0) return data_compose(argc - 1, argv + 1);
  if (strcmp(argv[0], "cells") == 0) return data_cells(argc - 1, argv + 1);
  static const char *const kinds[] = {"toy2d", "fmnist", "import", "compose", "cells"};
  const char *hint = cfg_nearest(argv[0], kinds, 5);
  if (hint)
    amd_usage_error("unknown dataset kind '%s'; did you mean '%s'? (this amd has: toy2d, fmnist, import, compose, cells)",
                    argv[0], hint);
  amd_usage_error("unknown dataset kind '%s' (this amd has: toy2d, fmnist, import, compose, cells)", argv[0]);
}
