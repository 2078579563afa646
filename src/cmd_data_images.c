/* cmd_data_images.c: `amd data fmnist` and `amd data import`: image datasets as dataset files,
 * /x float32 (N, C, H, W) in [-1, 1] and /labels int32 (N). fmnist reads the four gzipped IDX files
 * of the Debian package dataset-fashion-mnist; import reads a user's IDX images (with an optional
 * IDX labels file) or an HDF5 array (N, C, H, W) of uint8 pixels or of floats already in [-1, 1].
 * Rank 0 does the work; OpenMP threads scale the pixels.
 * Not here: IDX parsing (io/idx.c) or the dataset file layout (io/dataset.c). */
#include "cmd_data_images.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "h5.h"
#include "idx.h"

#define IMG_MAX_CHANNELS 64
#define IMG_MAX_CLASSES 100000

/* x = p / 127.5 - 1 maps the bytes 0..255 onto [-1, 1] exactly at both ends. */
static void pixels_to_unit(float *x, const uint8_t *px, long n, long per_image) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++)
    for (long j = 0; j < per_image; j++) x[i * per_image + j] = (float)px[i * per_image + j] / 127.5f - 1.0f;
}

/* An image dataset of n samples (c, h, w) with x and labels allocated, labels all 0. */
static void dataset_images(Dataset *d, long n, int c, int h, int w) {
  memset(d, 0, sizeof *d);
  d->n = n, d->ndim = 3, d->shape[0] = c, d->shape[1] = h, d->shape[2] = w, d->dim = c * h * w;
  d->x = mallocCheck(sizeof(float) * (size_t)n * (size_t)d->dim);
  d->labels = callocCheck((size_t)n, sizeof(int));
}

/* Checks the labels read from `path` and sets num_classes: `classes` when > 0 (labels must lie
 * below it), else the largest label + 1. class_names NULL names them class0, class1, ... */
static void labels_finish(Dataset *d, const char *path, int classes, const char *class_names) {
  int top = 0;
  for (long i = 0; i < d->n; i++) {
    int l = d->labels[i];
    if (l < 0) amd_fatal("'%s': label %d of image %ld is negative", path, l, i);
    if (classes > 0 && l >= classes)
      amd_fatal("'%s': label %d of image %ld is outside [0, %d) (classes = %d)", path, l, i, classes, classes);
    if (l >= IMG_MAX_CLASSES)
      amd_fatal("'%s': label %d of image %ld is beyond the limit of %d classes", path, l, i, IMG_MAX_CLASSES);
    top = amd_max_i(top, l);
  }
  d->num_classes = classes > 0 ? classes : top + 1;
  if (class_names) {
    snprintf(d->class_names, sizeof d->class_names, "%s", class_names);
    return;
  }
  size_t off = 0;
  for (int k = 0; k < d->num_classes && off + 16 < sizeof d->class_names; k++)
    off += (size_t)snprintf(d->class_names + off, sizeof d->class_names - off, k ? ",class%d" : "class%d", k);
}

/* IDX images (N, H, W) and optional IDX labels (labels NULL or "") into (N, 1, H, W). */
static void idx_to_dataset(Dataset *d, const char *images, const char *labels, int classes, const char *class_names) {
  long n, nl = 0;
  int h, w;
  uint8_t *px = idx_read_images(images, &n, &h, &w);
  uint8_t *lb = NULL;
  int has_labels = labels && labels[0];
  if (has_labels) {
    lb = idx_read_labels(labels, &nl);
    if (nl != n) {
      free(px), free(lb);
      amd_fatal("'%s' holds %ld labels but '%s' holds %ld images: the counts must match", labels, nl, images, n);
    }
  }
  dataset_images(d, n, 1, h, w);
  pixels_to_unit(d->x, px, n, (long)h * w);
  for (long i = 0; i < nl; i++) d->labels[i] = lb[i];
  free(px);
  free(lb);
  labels_finish(d, has_labels ? labels : images, classes, class_names);
}

static void dataset_save(Dataset *d, const char *out, const char *config_text, const char *from, double t0) {
  amd_mkdirs_parent(out);
  dataset_write(out, d, "amd-dataset", config_text, NULL, NULL);
  printf("wrote %s: %ld images of (%d, %d, %d), %d classes, from %s (%.2f s)\n", out, d->n, d->shape[0],
         d->shape[1], d->shape[2], d->num_classes, from, amd_time() - t0);
}

/* ---------------------------------------------------------------------------------------------- */
/* amd data fmnist */

typedef struct {
  char dir[CFG_STR_MAX], out_train[CFG_STR_MAX], out_test[CFG_STR_MAX];
} FmnistConfig;

static const cfg_key fmnist_keys[] = {
    {"out_train", CFG_STR, offsetof(FmnistConfig, out_train), "data/fmnist_train.h5", 0, 0, NULL,
     "dataset file for the 60000 training images"},
    {"out_test", CFG_STR, offsetof(FmnistConfig, out_test), "data/fmnist_test.h5", 0, 0, NULL,
     "dataset file for the 10000 test images"},
    {"dir", CFG_STR, offsetof(FmnistConfig, dir), "/usr/share/datasets/fashion-mnist", 0, 0, NULL,
     "folder of the four gzipped IDX files (Debian package dataset-fashion-mnist)"},
    CFG_END};

const char fmnist_class_names[] = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot";

/* One split: prefix "train" or "t10k" names the files, split the source attribute. */
static void fmnist_split(const FmnistConfig *c, const char *prefix, const char *split, const char *out,
                         const char *config_text) {
  double t0 = amd_time();
  char images[CFG_STR_MAX + 64], labels[CFG_STR_MAX + 64];
  snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", c->dir, prefix);
  snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", c->dir, prefix);
  for (int i = 0; i < 2; i++)
    if (!amd_file_exists(i ? labels : images))
      amd_fatal("Fashion-MNIST file '%s' does not exist: install the Debian package dataset-fashion-mnist "
                "(bash jobs/setup.sh), or set dir= to a folder holding the four IDX files",
                i ? labels : images);
  Dataset d;
  idx_to_dataset(&d, images, labels, 10, fmnist_class_names);
  snprintf(d.source, sizeof d.source, "fashion-mnist %s", split);
  dataset_save(&d, out, config_text, c->dir, t0);
  dataset_free(&d);
}

int data_fmnist(int argc, char **argv) {
  FmnistConfig c;
  cfg_parse_args(fmnist_keys, &c, argc, argv, "data fmnist",
                 "Converts Fashion-MNIST (60000 train, 10000 test, 28 x 28, 10 classes) into two dataset files.");
  if (dist_rank() == 0) {
    char *text = cfg_to_text(fmnist_keys, &c);
    fmnist_split(&c, "train", "train", c.out_train, text);
    fmnist_split(&c, "t10k", "test", c.out_test, text);
    free(text);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* amd data import */

typedef struct {
  char in[CFG_STR_MAX], out[CFG_STR_MAX], labels[CFG_STR_MAX];
  char dataset[CFG_STR_MAX], labels_dataset[CFG_STR_MAX], name[CFG_STR_MAX];
  int classes;
} ImportConfig;

static const cfg_key import_keys[] = {
    {"in", CFG_STR, offsetof(ImportConfig, in), "", 0, 0, NULL,
     "images to import: an IDX file (idx3 of unsigned bytes, plain or gzipped) or an HDF5 file (.h5)"},
    {"out", CFG_STR, offsetof(ImportConfig, out), "", 0, 0, NULL, "dataset file to write"},
    {"labels", CFG_STR, offsetof(ImportConfig, labels), "", 0, 0, NULL,
     "IDX input: an IDX labels file (idx1); without one every label is 0"},
    {"dataset", CFG_STR, offsetof(ImportConfig, dataset), "/images", 0, 0, NULL,
     "HDF5 input: the (N, C, H, W) array, uint8 0..255 or floats in [-1, 1]"},
    {"labels_dataset", CFG_STR, offsetof(ImportConfig, labels_dataset), "", 0, 0, NULL,
     "HDF5 input: the (N) integer labels; without them every label is 0"},
    {"classes", CFG_INT, offsetof(ImportConfig, classes), "0", 0, IMG_MAX_CLASSES, NULL,
     "number of classes (labels must lie below it); 0: the largest label + 1"},
    {"name", CFG_STR, offsetof(ImportConfig, name), "", 0, 0, NULL,
     "the dataset's source attribute; empty: 'import <in>'"},
    CFG_END};

/* An HDF5 file by its name or its signature; anything else is read as IDX. */
static int is_hdf5_file(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot && (strcmp(dot, ".h5") == 0 || strcmp(dot, ".hdf5") == 0 || strcmp(dot, ".he5") == 0)) return 1;
  unsigned char sig[8] = {0};
  FILE *f = fopenCheck(path, "rb");
  size_t got = fread(sig, 1, sizeof sig, f);
  fclose(f);
  return got == 8 && memcmp(sig, "\211HDF\r\n\032\n", 8) == 0;
}

static hid_t h5_dataset_open(hid_t f, const char *path, const char *name, const char *key) {
  if (!name[0] || !h5_exists(f, name))
    amd_fatal("'%s' has no dataset '%s': name the array with %s=", path, name, key);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) amd_fatal("'%s': '%s' is not a dataset (a group?): name the array with %s=", path, name, key);
  return d;
}

/* "(60000, 28, 28)" */
static void shape_text(char *buf, size_t size, int rank, const hsize_t *dims) {
  size_t off = (size_t)snprintf(buf, size, "(");
  for (int i = 0; i < rank && off + 24 < size; i++)
    off += (size_t)snprintf(buf + off, size - off, i ? ", %llu" : "%llu", (unsigned long long)dims[i]);
  snprintf(buf + off, size - off, ")");
}

static void type_text(char *buf, size_t size, hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_INTEGER)
    snprintf(buf, size, "%s %zu-bit integers", H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned" : "signed",
             8 * H5Tget_size(type));
  else if (cls == H5T_FLOAT)
    snprintf(buf, size, "%zu-bit floats", 8 * H5Tget_size(type));
  else
    snprintf(buf, size, "a non-numeric type");
}

/* Reads images (N, C, H, W): uint8 scaled onto [-1, 1], floats checked to lie in it. */
static void h5_images_read(Dataset *d, hid_t f, const char *path, const char *name) {
  hid_t ds = h5_dataset_open(f, path, name, "dataset");
  hid_t space = H5Dget_space(ds);
  h5Check(space, "'%s': cannot read the shape of '%s'", path, name);
  int rank = H5Sget_simple_extent_ndims(space);
  hsize_t dims[H5S_MAX_RANK];
  h5Check(H5Sget_simple_extent_dims(space, dims, NULL), "'%s': cannot read the shape of '%s'", path, name);
  H5Sclose(space);
  char shape[256];
  shape_text(shape, sizeof shape, rank, dims);
  if (rank != 4)
    amd_fatal("'%s': dataset '%s' has shape %s, %d dimensions; expected 4: (N, C, H, W)", path, name, shape, rank);
  if (dims[0] == 0) amd_fatal("'%s': dataset '%s' holds no images: shape %s", path, name, shape);
  if (dims[0] > IDX_MAX_COUNT)
    amd_fatal("'%s': dataset '%s' has shape %s: more than the limit of %ld images", path, name, shape, IDX_MAX_COUNT);
  if (dims[1] < 1 || dims[1] > IMG_MAX_CHANNELS || dims[2] < 1 || dims[2] > IDX_MAX_SIDE || dims[3] < 1 ||
      dims[3] > IDX_MAX_SIDE)
    amd_fatal("'%s': dataset '%s' has shape %s (N, C, H, W): C must lie in [1, %d], H and W in [1, %d]", path, name,
              shape, IMG_MAX_CHANNELS, IDX_MAX_SIDE);
  hid_t type = H5Dget_type(ds);
  h5Check(type, "'%s': cannot read the type of '%s'", path, name);
  char tname[64];
  type_text(tname, sizeof tname, type);
  int is_u8 = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
  int is_float = H5Tget_class(type) == H5T_FLOAT;
  H5Tclose(type);
  if (!is_u8 && !is_float)
    amd_fatal("'%s': dataset '%s' holds %s; expected uint8 pixels (0..255) or floats in [-1, 1]", path, name, tname);

  long n = (long)dims[0];
  dataset_images(d, n, (int)dims[1], (int)dims[2], (int)dims[3]);
  size_t total = (size_t)n * (size_t)d->dim;
  if (is_u8) {
    uint8_t *px = mallocCheck(total);
    h5Check(H5Dread(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, px),
            "'%s': cannot read dataset '%s' (truncated or damaged file?)", path, name);
    pixels_to_unit(d->x, px, n, d->dim);
    free(px);
  } else {
    h5Check(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->x),
            "'%s': cannot read dataset '%s' (truncated or damaged file?)", path, name);
    float lo = INFINITY, hi = -INFINITY;
    long bad = 0;
    const float *x = d->x;
#pragma omp parallel for reduction(min : lo) reduction(max : hi) reduction(+ : bad)
    for (size_t i = 0; i < total; i++) {
      if (!isfinite(x[i])) bad++;
      else lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    }
    CHECK(bad == 0, "'%s': dataset '%s' holds %ld non-finite values (NaN or infinity)", path, name, bad);
    CHECK(lo >= -1.0f && hi <= 1.0f,
          "'%s': dataset '%s' holds floats from min %g to max %g, outside [-1, 1]: scale them into [-1, 1] first, "
          "or store the pixels as uint8 0..255",
          path, name, lo, hi);
  }
  H5Dclose(ds);
}

static void h5_labels_read(Dataset *d, hid_t f, const char *path, const char *name) {
  hid_t ds = h5_dataset_open(f, path, name, "labels_dataset");
  hid_t type = H5Dget_type(ds);
  h5Check(type, "'%s': cannot read the type of '%s'", path, name);
  char tname[64];
  type_text(tname, sizeof tname, type);
  int is_int = H5Tget_class(type) == H5T_INTEGER;
  H5Tclose(type);
  H5Dclose(ds);
  if (!is_int) amd_fatal("'%s': labels dataset '%s' holds %s; expected integers", path, name, tname);
  hsize_t n;
  int *labels = h5_read_i32(f, name, 1, &n);
  if ((long)n != d->n) {
    free(labels);
    amd_fatal("'%s': labels dataset '%s' holds %llu labels but the images number %ld: the counts must match", path,
              name, (unsigned long long)n, d->n);
  }
  memcpy(d->labels, labels, sizeof(int) * (size_t)n);
  free(labels);
}

static void h5_to_dataset(Dataset *d, const ImportConfig *c) {
  hid_t fapl = h5_fapl();
  if (H5Fis_hdf5(c->in) <= 0) {
    H5Pclose(fapl);
    amd_fatal("'%s' is not an HDF5 file, or it is truncated or damaged", c->in);
  }
  hid_t f = H5Fopen(c->in, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) amd_fatal("cannot open HDF5 file '%s' (truncated or damaged?)", c->in);
  h5_images_read(d, f, c->in, c->dataset);
  if (c->labels_dataset[0]) h5_labels_read(d, f, c->in, c->labels_dataset);
  h5_close(f);
  labels_finish(d, c->in, c->classes, NULL);
}

int data_import(int argc, char **argv) {
  ImportConfig c;
  cfg_parse_args(import_keys, &c, argc, argv, "data import",
                 "Imports IDX or HDF5 images (and labels) into a dataset file with x in [-1, 1].");
  if (!c.in[0]) amd_usage_error("config key 'in' is required: an IDX images file or an HDF5 file");
  if (!c.out[0]) amd_usage_error("config key 'out' is required: the dataset file to write");
  if (dist_rank() == 0) {
    double t0 = amd_time();
    if (!amd_file_exists(c.in)) amd_fatal("file '%s' does not exist", c.in);
    int hdf5 = is_hdf5_file(c.in);
    if (hdf5 && c.labels[0])
      amd_usage_error("labels= names an IDX labels file, but '%s' is HDF5: use labels_dataset=", c.in);
    if (!hdf5 && c.labels_dataset[0])
      amd_usage_error("labels_dataset= is for HDF5 input, but '%s' is read as IDX: use labels=", c.in);
    Dataset d;
    if (hdf5)
      h5_to_dataset(&d, &c);
    else
      idx_to_dataset(&d, c.in, c.labels, c.classes, NULL);
    if (c.name[0])
      snprintf(d.source, sizeof d.source, "%.127s", c.name);
    else
      snprintf(d.source, sizeof d.source, "import %.120s", c.in);
    char *text = cfg_to_text(import_keys, &c);
    dataset_save(&d, c.out, text, c.in, t0);
    free(text);
    dataset_free(&d);
  }
  return 0;
}
