/* h5table.c: any amd file read as tables of named columns (h5table.h). */
#include "h5table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5.h"

static void *reallocCheck(void *p, size_t bytes) {
  void *q = realloc(p, bytes);
  CHECK(q, "out of memory (%zu bytes)", bytes);
  return q;
}

typedef herr_t (*ReadFn)(hid_t obj, hid_t mem_type, void *buf);
static herr_t read_dataset(hid_t d, hid_t t, void *buf) { return H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
static herr_t read_attribute(hid_t a, hid_t t, void *buf) { return H5Aread(a, t, buf); }

/* The memory type a value of file type `ft` is read as, and its kind; -1 for types not read. */
static hid_t native_of(hid_t ft, H5ValueKind *kind) {
  H5T_class_t c = H5Tget_class(ft);
  if (c == H5T_INTEGER && H5Tget_sign(ft) == H5T_SGN_NONE && H5Tget_size(ft) == 8)
    return *kind = H5V_UINT, H5Tcopy(H5T_NATIVE_ULLONG);
  if (c == H5T_INTEGER) return *kind = H5V_INT, H5Tcopy(H5T_NATIVE_LLONG);
  if (c == H5T_FLOAT) return *kind = H5Tget_size(ft) <= 4 ? H5V_F32 : H5V_F64, H5Tcopy(H5T_NATIVE_DOUBLE);
  if (c != H5T_STRING) return -1;
  *kind = H5V_STR;
  hid_t s = H5Tcopy(H5T_C_S1);
  if (H5Tis_variable_str(ft) > 0) {
    H5Tset_size(s, H5T_VARIABLE);
  } else { /* one byte more, null-terminated: every string ends inside its slot */
    H5Tset_size(s, H5Tget_size(ft) + 1);
    H5Tset_strpad(s, H5T_STR_NULLTERM);
  }
  H5Tset_cset(s, H5Tget_cset(ft));
  return s;
}

/* Reads `count` elements of `per` values each, read as rt (the value type `vt`, or a compound of
 * one member of it); returns the count x per values flat, as long long, double or char *. */
static void *read_flat(hid_t obj, ReadFn rd, hid_t rt, hid_t vt, H5ValueKind kind, long count, long per,
                       const char *what) {
  long total = count * per;
  int var = kind == H5V_STR && H5Tis_variable_str(vt) > 0;
  size_t el = kind == H5V_STR ? (var ? sizeof(char *) : H5Tget_size(vt)) : 8;
  char *buf = callocCheck((size_t)(total ? total : 1), el);
  if (rd(obj, rt, buf) < 0) amd_fatal("cannot read %s", what);
  if (kind != H5V_STR) return buf;
  char **s = mallocCheck(sizeof(char *) * (size_t)(total ? total : 1));
  for (long i = 0; i < total; i++) {
    const char *v = var ? ((char **)buf)[i] : buf + (size_t)i * el;
    s[i] = strdup(v ? v : "");
    CHECK(s[i], "out of memory reading %s", what);
  }
  if (var && count > 0) {
    hsize_t n = (hsize_t)count;
    hid_t space = H5Screate_simple(1, &n, NULL);
    H5Dvlen_reclaim(rt, space, H5P_DEFAULT, buf);
    H5Sclose(space);
  }
  free(buf);
  return s;
}

static void values_free(H5Values *v) {
  if (v->s)
    for (long i = 0; i < v->n; i++) free(v->s[i]);
  free(v->i), free(v->d), free(v->s);
}

/* Column j of k interleaved ones (k = 1: the flat values themselves, taken over). */
static H5Values column_of(void *flat, H5ValueKind kind, long n, long k, long j, const char *name) {
  H5Values v = {.kind = kind, .n = n};
  snprintf(v.name, sizeof v.name, "%s", name);
  size_t el = kind == H5V_INT || kind == H5V_UINT ? sizeof(long long) : kind == H5V_STR ? sizeof(char *) : sizeof(double);
  char *col = k == 1 ? flat : mallocCheck(el * (size_t)(n ? n : 1));
  if (k > 1)
    for (long r = 0; r < n; r++) memcpy(col + el * (size_t)r, (char *)flat + el * (size_t)(r * k + j), el);
  if (kind == H5V_INT || kind == H5V_UINT) v.i = (long long *)col;
  else if (kind == H5V_STR) v.s = (char **)col;
  else v.d = (double *)col;
  return v;
}

static void push(H5Values **list, int *n, H5Values v) {
  *list = reallocCheck(*list, sizeof(H5Values) * (size_t)(*n + 1));
  (*list)[(*n)++] = v;
}

/* Appends the columns of `count` rows x `per` values (flat) named base, or base_0 .. base_<per-1>. */
static void push_columns(H5Values **list, int *n, void *flat, H5ValueKind kind, long count, long per,
                         const char *base) {
  for (long j = 0; j < per; j++) {
    char name[256];
    if (per == 1) snprintf(name, sizeof name, "%s", base);
    else snprintf(name, sizeof name, "%.200s_%ld", base, j);
    push(list, n, column_of(flat, kind, count, per, j, name));
  }
  if (per > 1) {
    if (kind == H5V_STR)
      for (long i = 0; i < count * per; i++) free(((char **)flat)[i]);
    free(flat);
  }
}

/* The columns of a compound dataset: a member at a time, read through a compound of that member
 * alone (HDF5 matches members by name). Returns 0, or -1 when a member's type is not read. */
static int compound_columns(hid_t d, hid_t ft, long count, const char *prefix, H5Values **list, int *n,
                            const char *what) {
  int nm = H5Tget_nmembers(ft);
  for (int m = 0; m < nm; m++) {
    char *mname = H5Tget_member_name(ft, (unsigned)m);
    hid_t mt = H5Tget_member_type(ft, (unsigned)m);
    int array = H5Tget_class(mt) == H5T_ARRAY;
    hid_t base = array ? H5Tget_super(mt) : H5Tcopy(mt);
    long per = 1;
    hsize_t adims[H5S_MAX_RANK];
    int ar = array ? H5Tget_array_ndims(mt) : 0;
    if (array) H5Tget_array_dims2(mt, adims);
    for (int i = 0; i < ar; i++) per *= (long)adims[i];
    H5ValueKind kind;
    hid_t vt = native_of(base, &kind);
    int ok = vt >= 0;
    if (ok) {
      hid_t et = array ? H5Tarray_create2(vt, (unsigned)ar, adims) : H5Tcopy(vt);
      hid_t rt = H5Tcreate(H5T_COMPOUND, H5Tget_size(et));
      H5Tinsert(rt, mname, 0, et);
      char name[256];
      snprintf(name, sizeof name, "%s%s%.200s", prefix ? prefix : "", prefix ? "." : "", mname);
      push_columns(list, n, read_flat(d, read_dataset, rt, vt, kind, count, per, what), kind, count, per, name);
      H5Tclose(rt), H5Tclose(et), H5Tclose(vt);
    }
    H5Tclose(base), H5Tclose(mt);
    H5free_memory(mname);
    if (!ok) return -1;
  }
  return 0;
}

/* Adds dataset `name` of group g to t: its columns (prefix their names with the dataset's when
 * the table holds others) and its attributes. Returns 0, or -1 when its type is not read. */
static int add_dataset(hid_t g, const char *name, int alone, H5Table *t, const char *what) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  h5Check(d, "cannot open %s", what);
  hid_t ft = H5Dget_type(d), space = H5Dget_space(d);
  hsize_t dims[H5S_MAX_RANK];
  int rank = H5Sget_simple_extent_dims(space, dims, NULL);
  long count = rank > 0 ? (long)dims[0] : 1, per = 1;
  for (int i = 1; i < rank; i++) per *= (long)dims[i];
  int status = 0;
  if (H5Tget_class(ft) == H5T_COMPOUND) {
    status = compound_columns(d, ft, count * per, alone ? NULL : name, &t->cols, &t->ncols, what);
  } else {
    H5ValueKind kind;
    hid_t vt = native_of(ft, &kind);
    if (vt >= 0) {
      push_columns(&t->cols, &t->ncols, read_flat(d, read_dataset, vt, vt, kind, count, per, what), kind, count, per,
                   name);
      H5Tclose(vt);
    } else {
      status = -1;
    }
  }
  if (status == 0) {
    H5AttrSet a;
    h5table_read_attrs(d, &a);
    snprintf(a.name, sizeof a.name, "%s", name);
    if (a.n) {
      t->attrs = reallocCheck(t->attrs, sizeof(H5AttrSet) * (size_t)(t->nattrs + 1));
      t->attrs[t->nattrs++] = a;
    } else {
      h5table_free_attrs(&a);
    }
  }
  H5Sclose(space), H5Tclose(ft), H5Dclose(d);
  return status;
}

/* The first dimension of a dataset (1 for a scalar). */
static long rows_of(hid_t g, const char *name) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  h5Check(d, "cannot open dataset '%s'", name);
  hid_t space = H5Dget_space(d);
  hsize_t dims[H5S_MAX_RANK];
  int rank = H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space), H5Dclose(d);
  return rank > 0 ? (long)dims[0] : 1;
}

typedef struct {
  char (*names)[256];
  int *is_group;
  haddr_t *addr;
  int n;
} Members;

static herr_t collect(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info;
  Members *m = op;
  H5O_info_t oi;
  if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
  if (oi.type != H5O_TYPE_GROUP && oi.type != H5O_TYPE_DATASET) return 0;
  m->names = reallocCheck(m->names, sizeof *m->names * (size_t)(m->n + 1));
  m->is_group = reallocCheck(m->is_group, sizeof(int) * (size_t)(m->n + 1));
  m->addr = reallocCheck(m->addr, sizeof(haddr_t) * (size_t)(m->n + 1));
  snprintf(m->names[m->n], sizeof m->names[0], "%s", name);
  m->addr[m->n] = oi.addr;
  m->is_group[m->n++] = oi.type == H5O_TYPE_GROUP;
  return 0;
}

static void move_to(Members *m, int from, int to) {
  char name[256];
  int g = m->is_group[from];
  haddr_t a = m->addr[from];
  memcpy(name, m->names[from], sizeof name);
  memmove(m->names + to + 1, m->names + to, sizeof *m->names * (size_t)(from - to));
  memmove(m->is_group + to + 1, m->is_group + to, sizeof(int) * (size_t)(from - to));
  memmove(m->addr + to + 1, m->addr + to, sizeof(haddr_t) * (size_t)(from - to));
  memcpy(m->names[to], name, sizeof name), m->is_group[to] = g, m->addr[to] = a;
}

/* The members of a group in the order they were written: by creation order where the file tracks
 * it, else by the address of their headers in the file (an amd file writes a group's objects one
 * after the other); a "step" dataset first. */
static void members_of(hid_t g, Members *m, const char *what) {
  memset(m, 0, sizeof *m);
  hid_t cpl = H5Gget_create_plist(g);
  unsigned flags = 0;
  H5Pget_link_creation_order(cpl, &flags);
  H5Pclose(cpl);
  H5_index_t index = flags & H5P_CRT_ORDER_TRACKED ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  h5Check(H5Literate(g, index, H5_ITER_INC, NULL, collect, m), "cannot list %s", what);
  if (index == H5_INDEX_NAME) /* insertion sort by address: stable, so equal ones keep name order */
    for (int i = 1; i < m->n; i++) {
      int j = i;
      while (j > 0 && m->addr[j - 1] > m->addr[i]) j--;
      if (j < i) move_to(m, i, j);
    }
  for (int i = 1; i < m->n; i++)
    if (!m->is_group[i] && strcmp(m->names[i], "step") == 0) move_to(m, i, 0);
}

typedef struct {
  H5Table *t;
  int n;
  char file[1024];
} Tables;

static H5Table *new_table(Tables *ts, const char *path) {
  ts->t = reallocCheck(ts->t, sizeof(H5Table) * (size_t)(ts->n + 1));
  H5Table *t = &ts->t[ts->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->path, sizeof t->path, "%s", path);
  return t;
}

static void note_skipped(H5Table *t, const char *name) {
  size_t used = strlen(t->skipped);
  snprintf(t->skipped + used, sizeof t->skipped - used, "%s%s", used ? ", " : "", name);
}

static void join(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
}

/* The tables of group `path` and the groups below it. */
static void read_group(hid_t file, const char *path, Tables *ts) {
  char what[2600];
  snprintf(what, sizeof what, "group '%s' of '%s'", path, ts->file);
  hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
  h5Check(g, "cannot open %s", what);
  Members m;
  members_of(g, &m, what);
  /* the length most of the datasets share (the first such in order on a tie) */
  long *rows = mallocCheck(sizeof(long) * (size_t)(m.n ? m.n : 1)), common = -1;
  int ncommon = 0, ndatasets = 0;
  for (int i = 0; i < m.n; i++) rows[i] = m.is_group[i] ? -1 : rows_of(g, m.names[i]), ndatasets += !m.is_group[i];
  for (int i = 0; i < m.n; i++) {
    int k = 0;
    for (int j = 0; j < m.n; j++) k += rows[i] >= 0 && rows[j] == rows[i];
    if (k > ncommon) ncommon = k, common = rows[i];
  }
  char dpath[1500];
  if (ncommon > 1 || ndatasets == 1) { /* those datasets make the group's table */
    H5Table *t = new_table(ts, path);
    t->nrows = common;
    H5AttrSet a;
    h5table_read_attrs(g, &a);
    if (a.n && strcmp(path, "/") != 0) { /* the root's attributes are the file's, reported apart */
      t->attrs = mallocCheck(sizeof(H5AttrSet));
      t->attrs[t->nattrs++] = a;
    } else {
      h5table_free_attrs(&a);
    }
    for (int i = 0; i < m.n; i++) {
      if (rows[i] != common) continue;
      join(dpath, sizeof dpath, path, m.names[i]);
      snprintf(what, sizeof what, "dataset '%s' of '%s'", dpath, ts->file);
      if (add_dataset(g, m.names[i], ncommon == 1, t, what) != 0) note_skipped(t, dpath);
    }
    if (!t->ncols && !t->skipped[0]) ts->n--; /* nothing was read */
  } else {
    common = -2; /* none: every dataset is a table of its own */
  }
  for (int i = 0; i < m.n; i++) { /* the others: a table each */
    if (m.is_group[i] || rows[i] == common) continue;
    join(dpath, sizeof dpath, path, m.names[i]);
    snprintf(what, sizeof what, "dataset '%s' of '%s'", dpath, ts->file);
    H5Table *t = new_table(ts, dpath);
    t->nrows = rows[i];
    if (add_dataset(g, m.names[i], 1, t, what) != 0) note_skipped(t, dpath);
  }
  free(rows);
  for (int i = 0; i < m.n; i++) {
    if (!m.is_group[i]) continue;
    join(dpath, sizeof dpath, path, m.names[i]);
    read_group(file, dpath, ts);
  }
  free(m.names), free(m.is_group), free(m.addr);
  H5Gclose(g);
}

int h5table_read(hid_t file, const char *path, H5Table **tables) {
  Tables ts = {0};
  h5_filename(file, ts.file, sizeof ts.file);
  char p[1024];
  snprintf(p, sizeof p, "%s%s", path[0] == '/' ? "" : "/", path);
  size_t len = strlen(p);
  while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
  H5O_info_t oi;
  if (strcmp(p, "/") != 0) {
    /* every link on the way must exist before the object is asked for */
    for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
      if (s) *s = '\0';
      int exists = H5Lexists(file, p, H5P_DEFAULT) > 0;
      if (s) *s = '/';
      if (!exists) return -1;
      if (!s) break;
    }
  }
  h5Check(H5Oget_info_by_name2(file, p, &oi, H5O_INFO_BASIC, H5P_DEFAULT), "cannot open '%s' of '%s'", p, ts.file);
  if (oi.type == H5O_TYPE_GROUP) {
    read_group(file, p, &ts);
  } else if (oi.type == H5O_TYPE_DATASET) {
    char dir[1024], *slash = strrchr(p, '/');
    snprintf(dir, sizeof dir, "%.*s", slash == p ? 1 : (int)(slash - p), p);
    hid_t g = H5Gopen2(file, dir, H5P_DEFAULT);
    h5Check(g, "cannot open group '%s' of '%s'", dir, ts.file);
    H5Table *t = new_table(&ts, p);
    t->nrows = rows_of(g, slash + 1);
    char what[1200];
    snprintf(what, sizeof what, "dataset '%s' of '%s'", p, ts.file);
    if (add_dataset(g, slash + 1, 1, t, what) != 0) note_skipped(t, p);
    H5Gclose(g);
  } else {
    return -1;
  }
  *tables = ts.t;
  return ts.n;
}

void h5table_free(H5Table *tables, int n) {
  for (int k = 0; k < n; k++) {
    H5Table *t = &tables[k];
    for (int i = 0; i < t->ncols; i++) values_free(&t->cols[i]);
    for (int i = 0; i < t->nattrs; i++) h5table_free_attrs(&t->attrs[i]);
    free(t->cols), free(t->attrs);
  }
  free(tables);
}

static herr_t read_attr(hid_t obj, const char *name, const H5A_info_t *info, void *op) {
  (void)info;
  H5AttrSet *set = op;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), space = H5Aget_space(a);
  hssize_t count = H5Sget_simple_extent_npoints(space);
  H5ValueKind kind;
  hid_t vt = native_of(ft, &kind);
  if (vt >= 0 && count >= 0) {
    char what[600];
    snprintf(what, sizeof what, "attribute '%s'", name);
    H5Values v = {0};
    v = column_of(read_flat(a, read_attribute, vt, vt, kind, (long)count, 1, what), kind, (long)count, 1, 0, name);
    v.scalar = H5Sget_simple_extent_type(space) == H5S_SCALAR;
    push(&set->v, &set->n, v);
    H5Tclose(vt);
  }
  H5Sclose(space), H5Tclose(ft), H5Aclose(a);
  return 0;
}

void h5table_read_attrs(hid_t obj, H5AttrSet *out) {
  memset(out, 0, sizeof *out);
  h5Check(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, NULL, read_attr, out), "cannot read the attributes");
}

void h5table_free_attrs(H5AttrSet *a) {
  for (int i = 0; i < a->n; i++) values_free(&a->v[i]);
  free(a->v);
  a->v = NULL, a->n = 0;
}
