/* h5.c: checked HDF5 helpers. */
#include "h5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "common.h"
#include "provenance.h"

static void h5_quiet(void) {
  static int done = 0;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

hid_t h5_fapl(void) {
  h5_quiet();
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  h5Check(fapl, "HDF5: cannot create a file access property list");
  h5Check(H5Pset_file_locking(fapl, 0, 1), "HDF5: cannot turn file locking off");
  return fapl;
}

const char *h5_write_failure(const char *path, char *buf, size_t n) {
  if (errno == ENOSPC || errno == EFBIG || errno == EDQUOT || errno == EIO || errno == EROFS) return strerror(errno);
  /* MPI-IO does not keep errno: look at the disk and the limit */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  struct statvfs fs;
  struct rlimit lim;
  if (statvfs(slash ? dir : ".", &fs) == 0 && (double)fs.f_bavail * (double)fs.f_frsize < 64.0 * 1024 * 1024)
    snprintf(buf, n, "the disk is full: %.0f bytes free", (double)fs.f_bavail * (double)fs.f_frsize);
  else if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
    snprintf(buf, n, "a file-size limit (ulimit -f) of %.0f bytes is in force", (double)lim.rlim_cur);
  else
    snprintf(buf, n, "HDF5 error");
  return buf;
}

const char *h5_filename(hid_t obj, char *buf, size_t n) {
  if (H5Fget_name(obj, buf, n) < 0) snprintf(buf, n, "?");
  return buf;
}

static hid_t create_with(const char *path, const char *format, const char *config_text, hid_t fapl, int parallel) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) amd_fatal("cannot create HDF5 file '%s': %s", path, errno ? strerror(errno) : "HDF5 error");
  h5_attr_write_str(f, "format", format);
  h5_attr_write_i64(f, "format_version", AMD_FORMAT_VERSION);
  h5_attr_write_str(f, "created_by", "amd " AMD_VERSION);
  h5_attr_write_str(f, "config", config_text ? config_text : "");
  if (parallel) provenance_share();
  for (int i = 0; i < provenance_size(); i++) {
    const ProvenanceAttr *a = provenance_at(i);
    if (a->is_int) h5_attr_write_i64(f, a->key, a->i);
    else h5_attr_write_str(f, a->key, a->s);
  }
  return f;
}

hid_t h5_create(const char *path, const char *format, const char *config_text) {
  return create_with(path, format, config_text, h5_fapl(), 0);
}

hid_t h5_create_parallel(const char *path, const char *format, const char *config_text) {
  hid_t fapl = h5_fapl();
  h5Check(H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL), "HDF5: cannot select the MPI-IO driver");
  /* metadata written once, collectively, instead of by every rank */
  h5Check(H5Pset_coll_metadata_write(fapl, 1), "HDF5: cannot request collective metadata writes");
  return create_with(path, format, config_text, fapl, 1);
}

hid_t h5_open(const char *path, const char *format, int rw, char *kind_out) {
  struct stat st;
  if (stat(path, &st) != 0) amd_input_error("file '%s' does not exist", path);
  if (!S_ISREG(st.st_mode)) amd_input_error("'%s' is not a regular file", path);
  hid_t fapl = h5_fapl();
  htri_t is = H5Fis_hdf5(path);
  if (is <= 0) {
    H5Pclose(fapl);
    amd_input_error("'%s' is not an HDF5 file, or it is truncated or damaged (%lld bytes)", path, (long long)st.st_size);
  }
  hid_t f = H5Fopen(path, rw ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) amd_input_error("cannot open HDF5 file '%s' (truncated or damaged?)", path);
  if (!h5_attr_exists(f, "format"))
    amd_input_error("'%s' is an HDF5 file but not an amd file (no 'format' attribute)", path);
  char *kind = h5_attr_read_str(f, "format");
  if (format && strcmp(kind, format) != 0)
    amd_input_error("'%s' is an %s file, expected %s", path, kind, format);
  if (strncmp(kind, "amd-", 4) != 0) amd_input_error("'%s' has format '%s', which is not an amd file", path, kind);
  long long v = h5_attr_exists(f, "format_version") ? h5_attr_read_i64(f, "format_version") : -1;
  if (v > AMD_FORMAT_VERSION)
    amd_input_error("'%s' has format_version %lld, newer than this amd (%s) reads (%d): use a newer amd",
              path, v, AMD_VERSION, AMD_FORMAT_VERSION);
  if (v < 1) amd_input_error("'%s' has an invalid format_version %lld", path, v);
  if (kind_out) snprintf(kind_out, 32, "%s", kind);
  free(kind);
  return f;
}

void h5_close(hid_t file) {
  char name[1024];
  h5_filename(file, name, sizeof name);
  char why[128];
  errno = 0;
  h5Check(H5Fclose(file), "HDF5: closing '%s' failed (%s)", name, h5_write_failure(name, why, sizeof why));
}

static void attr_write(hid_t obj, const char *name, hid_t type, const void *value) {
  char fn[1024];
  if (H5Aexists(obj, name) > 0) h5Check(H5Adelete(obj, name), "HDF5: cannot replace attribute '%s'", name);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) amd_fatal("HDF5: cannot create attribute '%s' in '%s'", name, h5_filename(obj, fn, sizeof fn));
  h5Check(H5Awrite(a, type, value), "HDF5: cannot write attribute '%s' in '%s'", name, h5_filename(obj, fn, sizeof fn));
  H5Aclose(a);
  H5Sclose(space);
}

void h5_attr_write_str(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  attr_write(obj, name, t, &value);
  H5Tclose(t);
}
void h5_attr_write_i64(hid_t obj, const char *name, long long value) { attr_write(obj, name, H5T_NATIVE_LLONG, &value); }
void h5_attr_write_f64(hid_t obj, const char *name, double value) { attr_write(obj, name, H5T_NATIVE_DOUBLE, &value); }

int h5_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

static hid_t attr_open(hid_t obj, const char *name) {
  char fn[1024];
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) amd_input_error("'%s': attribute '%s' is missing", h5_filename(obj, fn, sizeof fn), name);
  return a;
}

char *h5_attr_read_str(hid_t obj, const char *name) {
  char fn[1024];
  hid_t a = attr_open(obj, name);
  hid_t t = H5Aget_type(a);
  if (H5Tget_class(t) != H5T_STRING) amd_input_error("'%s': attribute '%s' is not a string", h5_filename(obj, fn, sizeof fn), name);
  char *out;
  if (H5Tis_variable_str(t) > 0) {
    char *v = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    h5Check(H5Aread(a, mt, &v), "'%s': cannot read attribute '%s'", h5_filename(obj, fn, sizeof fn), name);
    out = strdup(v ? v : "");
    hid_t space = H5Aget_space(a);
    H5Dvlen_reclaim(mt, space, H5P_DEFAULT, &v);
    H5Sclose(space);
    H5Tclose(mt);
  } else {
    size_t n = H5Tget_size(t);
    out = callocCheck(n + 1, 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n + 1);
    H5Tset_cset(mt, H5Tget_cset(t));
    h5Check(H5Aread(a, mt, out), "'%s': cannot read attribute '%s'", h5_filename(obj, fn, sizeof fn), name);
    H5Tclose(mt);
  }
  H5Tclose(t);
  H5Aclose(a);
  return out;
}

long long h5_attr_read_i64(hid_t obj, const char *name) {
  char fn[1024];
  long long v = 0;
  hid_t a = attr_open(obj, name);
  h5Check(H5Aread(a, H5T_NATIVE_LLONG, &v), "'%s': attribute '%s' is not an integer", h5_filename(obj, fn, sizeof fn), name);
  H5Aclose(a);
  return v;
}

double h5_attr_read_f64(hid_t obj, const char *name) {
  char fn[1024];
  double v = 0;
  hid_t a = attr_open(obj, name);
  h5Check(H5Aread(a, H5T_NATIVE_DOUBLE, &v), "'%s': attribute '%s' is not a number", h5_filename(obj, fn, sizeof fn), name);
  H5Aclose(a);
  return v;
}

const SchemaEntry *h5_schema(hid_t loc, const char *name) {
  char fn[1024], group[512], path[1024];
  h5_filename(loc, fn, sizeof fn);
  hid_t file = H5Iget_file_id(loc);
  h5Check(file, "HDF5: cannot find the file of '%s'", name);
  char *kind = h5_attr_exists(file, "format") ? h5_attr_read_str(file, "format") : strdup("");
  H5Fclose(file);
  if (H5Iget_name(loc, group, sizeof group) < 0) amd_fatal("'%s': cannot name the group of '%s'", fn, name);
  snprintf(path, sizeof path, "%s/%s", strcmp(group, "/") == 0 ? "" : group, name);
  const SchemaEntry *e = schema_find(kind, path);
  if (!e)
    amd_fatal("'%s': dataset '%s' of a %s file is not described in io/schema.c (every dataset needs its units and "
              "description there)", fn, path, kind[0] ? kind : "kindless");
  free(kind);
  return e;
}

void h5_describe(hid_t dset, const SchemaEntry *e) {
  h5_attr_write_str(dset, "units", e->units);
  h5_attr_write_str(dset, "description", e->description);
}

/* The schema's entry of a dataset about to be written with file type `file_type` (io/schema.h):
 * fatal when it is undescribed or of another type. A count written as float64 (an eval file's
 * scalars are doubles) is stored as int64: *file_type changes then. */
static const SchemaEntry *described(hid_t loc, const char *name, hid_t *file_type) {
  char fn[1024];
  const SchemaEntry *e = h5_schema(loc, name);
  SchemaType t = schema_type_of(*file_type);
  if (e->type == SCHEMA_INT && H5Tequal(*file_type, H5T_IEEE_F64LE) > 0) *file_type = H5T_STD_I64LE;
  else if (e->type != t)
    amd_fatal("'%s': dataset '%s' is written as %s, but io/schema.c describes it as %s", h5_filename(loc, fn, sizeof fn),
              name, schema_type_name(t), schema_type_name(e->type));
  return e;
}

static void write_any(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, int rank,
                      const hsize_t *dims) {
  char fn[1024];
  const SchemaEntry *e = described(loc, name, &file_type);
  hid_t space = H5Screate_simple(rank, dims, NULL);
  h5Check(space, "HDF5: cannot make a dataspace for '%s'", name);
  hid_t d = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0) amd_fatal("HDF5: cannot create dataset '%s' in '%s'", name, h5_filename(loc, fn, sizeof fn));
  h5_describe(d, e);
  char why[128];
  errno = 0;
  h5Check(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "HDF5: cannot write dataset '%s' in '%s' (%s)",
          name, h5_filename(loc, fn, sizeof fn), h5_write_failure(fn, why, sizeof why));
  H5Dclose(d);
  H5Sclose(space);
}

void h5_write_f32(hid_t loc, const char *name, const float *data, int rank, const hsize_t *dims) {
  write_any(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, rank, dims);
}
void h5_write_i32(hid_t loc, const char *name, const int *data, int rank, const hsize_t *dims) {
  write_any(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, data, rank, dims);
}
void h5_write_f64(hid_t loc, const char *name, const double *data, int rank, const hsize_t *dims) {
  write_any(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, rank, dims);
}

void h5_write_strings(hid_t loc, const char *name, const char *const *strings, hsize_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  write_any(loc, name, t, t, strings, 1, &n);
  H5Tclose(t);
}

/* Opens dataset `name` of loc, which must exist and have `rank` (at most 8) dimensions; its sizes
 * go to dims and the file's name to fn, for messages. The caller closes the dataset. */
static hid_t open_dataset(hid_t loc, const char *name, int rank, hsize_t *dims, char *fn, size_t fn_size) {
  h5_filename(loc, fn, fn_size);
  if (!h5_exists(loc, name)) amd_input_error("'%s': dataset '%s' is missing", fn, name);
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) amd_input_error("'%s': cannot open dataset '%s'", fn, name);
  hid_t space = H5Dget_space(d);
  int r = H5Sget_simple_extent_ndims(space);
  if (r != rank) amd_input_error("'%s': dataset '%s' has %d dimensions, expected %d", fn, name, r, rank);
  H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  return d;
}

static void *read_any(hid_t loc, const char *name, hid_t mem_type, size_t elem, int rank, hsize_t *dims_out) {
  char fn[1024];
  hsize_t dims[8];
  hid_t d = open_dataset(loc, name, rank, dims, fn, sizeof fn);
  size_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i], dims_out[i] = dims[i];
  void *buf = mallocCheck(n * elem);
  if (n > 0 && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    amd_input_error("'%s': cannot read dataset '%s' (truncated or damaged file, or wrong type)", fn, name);
  H5Dclose(d);
  return buf;
}

void h5_write_slab(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data, hsize_t total,
                   hsize_t begin, hsize_t count) {
  char fn[1024];
  h5_filename(loc, fn, sizeof fn);
  const SchemaEntry *e = described(loc, name, &file_type);
  hid_t fspace = H5Screate_simple(1, &total, NULL);
  hsize_t mdim = count ? count : 1;
  hid_t mspace = H5Screate_simple(1, &mdim, NULL);
  h5Check(fspace, "HDF5: cannot make a dataspace for '%s'", name);
  h5Check(mspace, "HDF5: cannot make a dataspace for '%s'", name);
  if (count) {
    h5Check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &begin, NULL, &count, NULL),
            "HDF5: cannot select values %llu..%llu of '%s'", (unsigned long long)begin,
            (unsigned long long)(begin + count), name);
  } else {
    h5Check(H5Sselect_none(fspace), "HDF5: cannot select nothing of '%s'", name);
    h5Check(H5Sselect_none(mspace), "HDF5: cannot select nothing of '%s'", name);
  }
  hid_t d = H5Dcreate2(loc, name, file_type, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0) amd_fatal("HDF5: cannot create dataset '%s' in '%s'", name, fn);
  h5_describe(d, e);
  hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
  h5Check(xfer, "HDF5: cannot create a transfer property list");
  h5Check(H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE), "HDF5: cannot request a collective transfer");
  char why[128];
  errno = 0;
  h5Check(H5Dwrite(d, mem_type, mspace, fspace, xfer, data), "HDF5: cannot write dataset '%s' in '%s' (%s)", name, fn,
          h5_write_failure(fn, why, sizeof why));
  H5Pclose(xfer);
  H5Dclose(d);
  H5Sclose(mspace);
  H5Sclose(fspace);
}

hsize_t h5_len_1d(hid_t loc, const char *name) {
  char fn[1024];
  hsize_t n = 0;
  H5Dclose(open_dataset(loc, name, 1, &n, fn, sizeof fn));
  return n;
}

void h5_read_f32_range(hid_t loc, const char *name, hsize_t begin, hsize_t count, float *out) {
  char fn[1024];
  hsize_t n = 0;
  hid_t d = open_dataset(loc, name, 1, &n, fn, sizeof fn);
  if (begin + count > n)
    amd_input_error("'%s': dataset '%s' has %llu values, cannot read %llu..%llu", fn, name, (unsigned long long)n,
              (unsigned long long)begin, (unsigned long long)(begin + count));
  if (count == 0) {
    H5Dclose(d);
    return;
  }
  hid_t fspace = H5Dget_space(d), mspace = H5Screate_simple(1, &count, NULL);
  h5Check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &begin, NULL, &count, NULL),
          "'%s': cannot select values %llu..%llu of '%s'", fn, (unsigned long long)begin,
          (unsigned long long)(begin + count), name);
  if (H5Dread(d, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, out) < 0)
    amd_input_error("'%s': cannot read dataset '%s' (truncated or damaged file, or wrong type)", fn, name);
  H5Sclose(mspace);
  H5Sclose(fspace);
  H5Dclose(d);
}

float *h5_read_f32(hid_t loc, const char *name, int rank, hsize_t *dims_out) {
  return read_any(loc, name, H5T_NATIVE_FLOAT, sizeof(float), rank, dims_out);
}
int *h5_read_i32(hid_t loc, const char *name, int rank, hsize_t *dims_out) {
  return read_any(loc, name, H5T_NATIVE_INT, sizeof(int), rank, dims_out);
}
double *h5_read_f64(hid_t loc, const char *name, int rank, hsize_t *dims_out) {
  return read_any(loc, name, H5T_NATIVE_DOUBLE, sizeof(double), rank, dims_out);
}

char **h5_read_strings(hid_t loc, const char *name, hsize_t *n_out) {
  char fn[1024];
  hsize_t n;
  hid_t d = open_dataset(loc, name, 1, &n, fn, sizeof fn);
  hid_t ft = H5Dget_type(d);
  int is_var = H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0;
  H5Tclose(ft);
  if (!is_var) amd_input_error("'%s': dataset '%s' is not a list of variable-length strings", fn, name);
  hid_t mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, H5T_VARIABLE);
  H5Tset_cset(mt, H5T_CSET_UTF8);
  char **raw = callocCheck(n ? n : 1, sizeof(char *)), **out = callocCheck(n ? n : 1, sizeof(char *));
  if (n > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
    amd_input_error("'%s': cannot read dataset '%s' (truncated or damaged file)", fn, name);
  for (hsize_t i = 0; i < n; i++) {
    out[i] = strdup(raw[i] ? raw[i] : "");
    CHECK(out[i], "out of memory reading '%s' of '%s'", name, fn);
  }
  if (n > 0) {
    hid_t space = H5Dget_space(d);
    H5Dvlen_reclaim(mt, space, H5P_DEFAULT, raw);
    H5Sclose(space);
  }
  free(raw);
  H5Tclose(mt);
  H5Dclose(d);
  *n_out = n;
  return out;
}

int h5_exists(hid_t loc, const char *path) {
  /* H5Lexists needs every intermediate group to exist: walk the path one link at a time */
  char buf[512];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
      if (c == '\0') return 1;
      *p = c;
    }
  }
}

hid_t h5_group_create(hid_t loc, const char *name) {
  char fn[1024];
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) amd_fatal("HDF5: cannot create group '%s' in '%s'", name, h5_filename(loc, fn, sizeof fn));
  return g;
}

hid_t h5_group_open(hid_t loc, const char *name) {
  char fn[1024];
  if (!h5_exists(loc, name)) amd_input_error("'%s': group '%s' is missing", h5_filename(loc, fn, sizeof fn), name);
  hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
  if (g < 0) amd_input_error("'%s': cannot open group '%s'", h5_filename(loc, fn, sizeof fn), name);
  return g;
}

void h5_check_replaceable(const char *path, const char *format, const char *key) {
  struct stat st;
  if (stat(path, &st) != 0) return;
  if (!S_ISREG(st.st_mode)) amd_usage_error("%s='%s' is a folder or not a regular file: name a file", key, path);
  char kind[64] = "";
  hid_t fapl = h5_fapl();
  hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
  H5Pclose(fapl);
  if (f >= 0 && H5Aexists(f, "format") > 0) {
    char *k = h5_attr_read_str(f, "format");
    snprintf(kind, sizeof kind, "%s", k);
    free(k);
  }
  if (f >= 0) H5Fclose(f);
  if (strcmp(kind, format) != 0)
    amd_usage_error("%s='%s' exists and is %s%s%s: writing there would replace it; choose another %s=", key, path,
                    kind[0] ? "an " : "not an amd file", kind, kind[0] ? " file, not an output of this command" : "",
                    key);
}
