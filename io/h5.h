/* h5.h: checked HDF5 helpers and the rules every amd file follows.
 * Each file carries the attributes `format` ("amd-dataset", "amd-checkpoint", "amd-log",
 * "amd-samples", "amd-eval", the testing "amd-step-dump"), `format_version`, `created_by` and `config`, and the provenance record
 * of io/provenance.h (h5_create writes it); every dataset the writers here create carries the
 * `units` and `description` io/schema.c gives it (an undescribed one is fatal). h5_open refuses a missing,
 * unreadable, foreign, wrong-kind or newer file with a message that says which. Every HDF5 call is
 * checked; the library's own error stack printing is turned off so our messages stay readable.
 * Not here: the layout of any particular kind of file.
 * Return convention: h5_attr_exists and h5_exists are predicates (1 when present); every other
 * function stops the program with an error naming the file and object when HDF5 fails (a file
 * that cannot be read as asked is the user's input: amd_input_error, without a source line). */
#pragma once
#include <hdf5.h>

#include "schema.h"

#define AMD_FORMAT_VERSION 1

/* Creates (truncating) `path` and writes the standard attributes. */
hid_t h5_create(const char *path, const char *format, const char *config_text);
/* The same, called by every rank: the file is opened by all of them through MPI-IO, so every call
 * that changes its structure (groups, datasets, attributes) must be made by all ranks alike, and
 * raw data is written by hyperslab (h5_write_f32_slab). */
hid_t h5_create_parallel(const char *path, const char *format, const char *config_text);
/* Before a command writes `path` (config key `key`): a usage error unless the path is free or holds
 * an amd file of `format`, which may be replaced. So out= naming a checkpoint, a dataset, a folder or
 * a foreign file never replaces it. */
void h5_check_replaceable(const char *path, const char *format, const char *key);
/* Opens an amd file read-only (rw = 0) or read-write; format NULL accepts any amd kind.
 * The kind found is copied to kind_out (may be NULL, size >= 32). */
hid_t h5_open(const char *path, const char *format, int rw, char *kind_out);
void h5_close(hid_t file);
/* A file access list with file locking off, so a reader (h5py, HDFView) never blocks the job. */
hid_t h5_fapl(void);

void h5_attr_write_str(hid_t obj, const char *name, const char *value);
void h5_attr_write_i64(hid_t obj, const char *name, long long value);
void h5_attr_write_f64(hid_t obj, const char *name, double value);
int h5_attr_exists(hid_t obj, const char *name);
char *h5_attr_read_str(hid_t obj, const char *name); /* caller frees */
long long h5_attr_read_i64(hid_t obj, const char *name);
double h5_attr_read_f64(hid_t obj, const char *name);

/* Whole datasets, contiguous. dims has `rank` entries. */
void h5_write_f32(hid_t loc, const char *name, const float *data, int rank, const hsize_t *dims);
void h5_write_i32(hid_t loc, const char *name, const int *data, int rank, const hsize_t *dims);
void h5_write_f64(hid_t loc, const char *name, const double *data, int rank, const hsize_t *dims);
/* Reads a dataset of the given rank into a new buffer (caller frees), converting to the requested
 * type; dims_out receives the shape. Fatal if it is missing or has another rank. */
float *h5_read_f32(hid_t loc, const char *name, int rank, hsize_t *dims_out);
int *h5_read_i32(hid_t loc, const char *name, int rank, hsize_t *dims_out);
double *h5_read_f64(hid_t loc, const char *name, int rank, hsize_t *dims_out);
/* A 1-D dataset of n variable-length UTF-8 strings (schema type text); the reader returns n new
 * strings in a new array (caller frees each and the array). */
void h5_write_strings(hid_t loc, const char *name, const char *const *strings, hsize_t n);
char **h5_read_strings(hid_t loc, const char *name, hsize_t *n_out);
/* 1-D datasets by range. write: every rank of a parallel file calls it; it creates the dataset of
 * `total` values (file type file_type) and writes this rank's values [begin, begin + count) from
 * data (count may be 0) as one collective transfer. read: values [begin, begin + count) of a 1-D
 * dataset into out; h5_len_1d: its length (fatal if missing or not 1-D). */
void h5_write_slab(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, hsize_t total,
                   hsize_t begin, hsize_t count);
hsize_t h5_len_1d(hid_t loc, const char *name);
void h5_read_f32_range(hid_t loc, const char *name, hsize_t begin, hsize_t count, float *out);
int h5_exists(hid_t loc, const char *path);
hid_t h5_group_create(hid_t loc, const char *name);
hid_t h5_group_open(hid_t loc, const char *name);
/* The io/schema.c entry of dataset `name` about to be created in loc (a file or group), found by
 * the file's kind and the dataset's path; fatal when the schema does not describe it. */
const SchemaEntry *h5_schema(hid_t loc, const char *name);
/* Attaches an entry's `units` and `description` attributes to a dataset. */
void h5_describe(hid_t dset, const SchemaEntry *e);
/* Why a write, flush or close of the file at path failed, for messages (errno is cleared before
 * the call): the system's reason (no space, file too large, ...) when it set one, else what the disk
 * and the file-size limit (ulimit -f) say, else "HDF5 error". Returns buf or a static string. */
const char *h5_write_failure(const char *path, char *buf, size_t n);
/* Path of the file an object lives in, for messages. */
const char *h5_filename(hid_t obj, char *buf, size_t n);

/* Checks an HDF5 return value (negative means failure) and names the object in the message. */
#define h5Check(expr, ...)                    \
  do {                                        \
    if ((expr) < 0) amd_fatal(__VA_ARGS__);   \
  } while (0)
