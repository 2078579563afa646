/* h5table.h: any amd file read as tables of named columns, for `amd export` (src/cmd_export.c).
 * The datasets of a group that share the first dimension most of them have make the group's table
 * (a log's /train, /timing, /events, /advantage; a dataset file's root: x and labels; an eval
 * file's one-row metrics in /eval; a checkpoint's /teacher: params, adam_m, adam_v); every other
 * dataset is a table of its own, named by its path (/eval/mode_mass, /teacher/layout).
 * Every dataset of rank 1 or more gives one column per element of a row: a 1-D dataset `loss` the
 * column "loss", a 2-D (N, K) dataset `x` the columns "x_0" .. "x_<K-1>" (higher ranks are read as
 * (N, rest)); a scalar dataset is one row; a compound dataset a column per member ("name", or
 * "layout.name" beside other datasets; array members numbered like 2-D columns). Integer datasets
 * are read as int64, float32 and float64 ones as double (float32 remembered, for printing), fixed
 * and variable-length strings as strings. Attributes (of the root, a table's group and each
 * dataset) are read the same way. Datasets of other types (enum, reference, opaque) are listed in
 * `skipped`, not read.
 * Not here: printing (src/cmd_export.c), the meaning of any table.
 * Return convention: h5table_read returns the number of tables, or -1 when `path` names nothing in
 * the file; HDF5 failures stop the program with an error naming the file. */
#pragma once
#include <hdf5.h>

typedef enum { H5V_INT, H5V_UINT, H5V_F64, H5V_F32, H5V_STR } H5ValueKind;

/* n values of one kind: a column, or an attribute (scalar: one value that is not an array). */
typedef struct {
  char name[256];
  H5ValueKind kind;
  long n;
  int scalar;
  long long *i; /* H5V_INT, H5V_UINT (the unsigned 64-bit values' bits, e.g. a checksum) */
  double *d;    /* H5V_F64, H5V_F32 (the float32 values, exactly) */
  char **s;     /* H5V_STR, never NULL entries */
} H5Values;

/* The attributes of one object. */
typedef struct {
  char name[256]; /* the dataset's name within its table's group; "" for the group itself */
  int n;
  H5Values *v;
} H5AttrSet;

typedef struct {
  char path[1024]; /* "/train", "/" or, for a table of one dataset, its path "/teacher/params" */
  long nrows;
  int ncols;
  H5Values *cols;
  int nattrs;
  H5AttrSet *attrs; /* of the group (name "") and of each dataset, where they have any */
  char skipped[1024]; /* datasets not read, comma-separated */
} H5Table;

/* The tables at `path` ("/" or "" for the whole file; a group: it and the groups below it; a
 * dataset: a table of it alone), in the order they were written (creation order where the file
 * tracks it, else the order of their headers in the file; a column "step" first). *tables receives a new array (h5table_free). */
int h5table_read(hid_t file, const char *path, H5Table **tables);
void h5table_free(H5Table *tables, int n);
/* The attributes of an object (the root: file). */
void h5table_read_attrs(hid_t obj, H5AttrSet *out);
void h5table_free_attrs(H5AttrSet *a);
