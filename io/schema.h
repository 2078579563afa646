/* schema.h: the vocabulary of amd's files: for every dataset of every file kind (docs/DESIGN.md
 * section 6) its type, units and a one-line description. The writers (io/h5.c's h5_write_* and
 * h5_write_slab, io/trainlog.c's log columns) look each dataset up by its file's kind and its path
 * and attach `units` and `description` attributes, so every file explains itself to h5py, pandas or
 * HDFView. A dataset the table does not describe is a fatal error when it is written: a new column
 * cannot be added undescribed. Units follow UDUNITS spelling ("s", "samples/s"); "1" is a plain
 * number (a ratio, a loss, a coordinate) and "count" an integer count.
 * Not here: the layout of a file (which datasets it holds), or writing them.
 * The lookup by a file's kind and path and the attributes are io/h5.c's (h5_schema, h5_describe).
 * Return convention: schema_find returns NULL for an undescribed dataset. */
#pragma once
#include <hdf5.h>

typedef enum {
  SCHEMA_FLOAT,  /* float32 or float64 */
  SCHEMA_INT,    /* int32 or int64; logs and eval files store counts as int64 */
  SCHEMA_TEXT,   /* variable-length UTF-8 strings */
  SCHEMA_RECORD, /* compound rows (a checkpoint's tensor layout) */
} SchemaType;

typedef struct {
  const char *kinds;       /* file kinds, "amd-log" or "amd-dataset|amd-samples"; "*": every kind */
  const char *path;        /* the dataset's path; "*" stands for one path component (a network) */
  SchemaType type;
  const char *units;
  const char *description;
} SchemaEntry;

/* The entry of dataset `path` ("/train/loss") in a file of kind `kind`, or NULL. */
const SchemaEntry *schema_find(const char *kind, const char *path);
/* The type class of a file type as the schema names it (a float, an int, text or a record). */
SchemaType schema_type_of(hid_t file_type);
/* The entry's type name, for messages ("float", "int", "text", "record"). */
const char *schema_type_name(SchemaType t);
