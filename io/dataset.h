/* dataset.h: dataset and samples files (docs/DESIGN.md section 6): /x float32 (N, D) or (N, C, H, W),
 * /labels int32 (N), attributes num_classes, class_names, source; a toy dataset also stores its
 * mixture under /mixture (means, weights, mode_class, sigma) so metrics use the exact density.
 * Samples files have the same layout with format "amd-samples" plus what made them.
 * Every value read is checked: a file no writer of ours could have made (a bit flip, a hand edit)
 * is an error naming the file, the dataset and the index, never a run that trains on it.
 * Every function stops the program with an error naming the file when it fails, but
 * dataset_read_mixture, which returns 0 when the file holds no mixture (1 when it does). */
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Toy points lie within this many sigma beyond the farthest mode of their mixture: a Gaussian draw
 * beyond 50 sigma has probability below 1e-500, while a bit flip in a float's exponent moves a point
 * by a factor of 2 or more (x = 0.7 becomes 2.8, 179 or 3e9). Without a mixture, and for the
 * mixture's means, |x| <= DATASET_TOY_MAX_ABS: amd data toy2d keeps every mode inside [-1, 1], and
 * the flow's noise is N(0, 1). */
#define DATASET_TOY_SIGMAS 50.0
#define DATASET_TOY_MAX_ABS 1e4

/* The class-conditional 2-D Gaussian mixture a toy dataset stores (src/toy2d.h draws from it). */
typedef struct {
  int dim;         /* 2 */
  int num_modes;
  int num_classes;
  double sigma;    /* std of every mode */
  float *means;    /* (num_modes, dim) */
  float *weights;  /* (num_modes) within-class mixture weights: each class's weights sum to 1 */
  int *mode_class; /* (num_modes) the class owning each mode */
} Mixture;

/* Frees the arrays of a mixture (made by mixture_make or read by dataset_read_mixture). */
void mixture_free(Mixture *m);

typedef struct {
  long n;
  int ndim;     /* per-sample rank: 1 for vectors, 3 for images (C, H, W) */
  int shape[3]; /* per-sample shape */
  int dim;      /* elements per sample */
  int num_classes;
  float *x;     /* (n, dim) host */
  int *labels;  /* (n) */
  char source[128];
  char class_names[1024]; /* comma-separated */
  int has_mixture;
  Mixture mix;
  uint64_t checksum; /* of what dataset_read loaded: shape, classes, /x and /labels (and a captioned
                        dataset's /captions/tokens) */
} Dataset;

/* Room for a fingerprint: "<n> samples of <shape>, <k> classes, checksum <16 hex digits>". */
#define DATASET_FINGERPRINT_MAX 128

/* Writes `path` through "<path>.tmp" and a rename, so a crash leaves no half file. `format` is
 * "amd-dataset" or "amd-samples"; extra(file, ctx), when given, adds attributes before closing. */
void dataset_write(const char *path, const Dataset *d, const char *format, const char *config_text,
                   void (*extra)(hid_t file, const void *ctx), const void *ctx);
/* Reads and checks a file of the given format: shapes agree, labels in range, x finite; in a
 * dataset also x in range (images in [-1, 1], toy points by DATASET_TOY_SIGMAS) and the mixture a
 * density (finite means, sigma > 0, weights >= 0 summing to 1 per class). */
void dataset_read(const char *path, const char *format, Dataset *d);
/* The check of every command that pairs a dataset with a network or samples: the dataset d at
 * path, given by config key `key`, must have their sample size and classes (`what` names them,
 * e.g. "the teacher 'runs/t1/ckpt_00000300.h5'"); a usage error otherwise. */
void dataset_check_fits(const Dataset *d, const char *key, const char *path, int dim, int num_classes,
                        const char *what);
/* A toy dataset d given by `key` must be the mixture of trained_path, the dataset `what` (the
 * teacher, the samples' model) was trained on, when that file exists and holds one: the same modes,
 * classes, means, weights and sigma; a usage error otherwise. */
void dataset_check_same_target(const Dataset *d, const char *key, const char *path, const char *trained_path,
                               const char *what);
/* Reads another split of `like` (the file like_path): the dataset at path, given by config key
 * `key`, which must have the same sample size and classes (a usage error otherwise). */
void dataset_read_split(const char *path, Dataset *d, const char *key, const Dataset *like, const char *like_path);
void dataset_free(Dataset *d);
/* The content fingerprint of a loaded dataset, as checkpoints and samples files record it (root
 * attribute data_fingerprint): it follows the values, not the file's name, date or layout. */
void dataset_fingerprint(const Dataset *d, char *out, size_t n);
/* Whether the fingerprint `now` differs from `recorded`: 0 when the same; else 1, with what
 * differs in why ("holds 2000 samples of 2, 2 classes, not 4000 samples ..." or "the same shape
 * and classes but other values (checksum a, not b)"). */
int dataset_fingerprint_differs(const char *now, const char *recorded, char *why, size_t n);
/* The dataset the file owner_path (of format owner_format: a checkpoint or a samples file) records
 * in its root attributes `data` and `data_fingerprint`, read into d: the path as recorded (absolute
 * since the fingerprint came in; an older relative one is looked up from the working directory, as
 * before). A missing file, or one whose content is not the recorded fingerprint, is a usage error
 * naming both files and what differs, and that `hint` (e.g. "pass data= to use another") is the
 * way out. Returns the path (caller frees); "" with d untouched when owner_path records none. */
char *dataset_read_recorded(const char *owner_path, const char *owner_format, Dataset *d, const char *hint);
/* Reads only the mixture of a toy dataset; returns 0 when the file has none. */
int dataset_read_mixture(hid_t file, Mixture *m);
