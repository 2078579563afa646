/* cmd_export.c: `amd export FILE.h5 --csv|--json [GROUP] [out=PATH]`: the tables of any amd file as
 * CSV or JSON, for pandas, spreadsheets and plotting tools (what a table is: io/h5table.h).
 *   CSV   one table: a header row of column names, then a row per entry. Strings are quoted by
 *         RFC 4180 (fields holding a comma, a double quote, CR or LF are quoted, quotes doubled);
 *         lines end with LF. NaN is an empty field (pandas.read_csv and spreadsheets read it as
 *         missing), infinities "inf" and "-inf". The table is the group's own (its datasets of
 *         one length), or the only table at GROUP; GROUP defaults to a log's /train, an eval
 *         file's /eval (its one-row metrics), another file's root (a dataset's x and labels).
 *   JSON  {"file", "format", "attributes": {root attributes}, "tables": {path: {"columns": [...],
 *         "rows": [[...], ...], "attributes": {"": group's, column: dataset's}}}}: every table at
 *         GROUP (the whole file without one). NaN and infinities are null (JSON has neither).
 * Numbers are printed so that they read back exactly: float64 with %.17g, float32 with %.9g,
 * integers as integers. The output goes to stdout, or to out=PATH through PATH.tmp and a rename,
 * so an error never leaves a partial file there. Everything is read before anything is written.
 * Not here: reading the file (io/h5table.h), what the tables mean (docs/DESIGN.md section 6). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "dist.h"
#include "h5.h"
#include "h5table.h"
#include "trainlog.h"

static const char *export_usage =
    "usage: amd export FILE.h5 --csv|--json [GROUP] [out=PATH]\n"
    "  writes the tables of an amd file (log, checkpoint, dataset, samples, eval) as CSV or JSON\n"
    "  GROUP: a group or dataset path (e.g. /train, /events, /eval/mode_mass); CSV writes one table,\n"
    "         the group's own (default: a log's /train, an eval file's /eval, else /); JSON writes\n"
    "         every table of GROUP (default: the whole file) and the root attributes\n"
    "  CSV: NaN is an empty field, infinities inf/-inf; JSON: NaN and infinities are null\n"
    "  out=PATH writes there (through PATH.tmp and a rename) instead of stdout\n";

/* --- values -------------------------------------------------------------------------------------- */
static void put_number(FILE *o, const H5Values *v, long r, int json) {
  if (v->kind == H5V_INT || v->kind == H5V_UINT) {
    if (v->kind == H5V_UINT) fprintf(o, "%llu", (unsigned long long)v->i[r]);
    else fprintf(o, "%lld", v->i[r]);
    return;
  }
  double x = v->d[r];
  if (isnan(x)) fputs(json ? "null" : "", o);
  else if (isinf(x)) fputs(json ? "null" : x > 0 ? "inf" : "-inf", o);
  else fprintf(o, v->kind == H5V_F32 ? "%.9g" : "%.17g", x);
}

static void put_csv_text(FILE *o, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, o);
    return;
  }
  fputc('"', o);
  for (; *s; s++) {
    if (*s == '"') fputc('"', o);
    fputc(*s, o);
  }
  fputc('"', o);
}

static void put_json_text(FILE *o, const char *s) {
  fputc('"', o);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(o, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", o);
    else if (*p == '\t') fputs("\\t", o);
    else if (*p == '\r') fputs("\\r", o);
    else if (*p < 0x20) fprintf(o, "\\u%04x", *p);
    else fputc(*p, o);
  }
  fputc('"', o);
}

static void put_value(FILE *o, const H5Values *v, long r, int json) {
  if (r >= v->n) fputs(json ? "null" : "", o);
  else if (v->kind != H5V_STR) put_number(o, v, r, json);
  else if (json) put_json_text(o, v->s[r]);
  else put_csv_text(o, v->s[r]);
}

/* --- CSV ------------------------------------------------------------------------------------------ */
static void write_csv(FILE *o, const H5Table *t) {
  for (int c = 0; c < t->ncols; c++) {
    if (c) fputc(',', o);
    put_csv_text(o, t->cols[c].name);
  }
  fputc('\n', o);
  for (long r = 0; r < t->nrows; r++) {
    for (int c = 0; c < t->ncols; c++) {
      if (c) fputc(',', o);
      put_value(o, &t->cols[c], r, 0);
    }
    fputc('\n', o);
  }
}

/* --- JSON ----------------------------------------------------------------------------------------- */
static void write_json_attrs(FILE *o, const H5AttrSet *a) {
  fputc('{', o);
  for (int i = 0; i < a->n; i++) {
    const H5Values *v = &a->v[i];
    fputs(i ? ", " : "", o);
    put_json_text(o, v->name);
    fputs(": ", o);
    if (!v->scalar) fputc('[', o);
    for (long r = 0; r < v->n; r++) {
      if (r) fputs(", ", o);
      put_value(o, v, r, 1);
    }
    if (!v->scalar) fputc(']', o);
  }
  fputc('}', o);
}

static void write_json_table(FILE *o, const H5Table *t) {
  fputs("{\"columns\": [", o);
  for (int c = 0; c < t->ncols; c++) {
    fputs(c ? ", " : "", o);
    put_json_text(o, t->cols[c].name);
  }
  fputs("],\n   \"rows\": [", o);
  for (long r = 0; r < t->nrows; r++) {
    fputs(r ? ",\n     [" : "\n     [", o);
    for (int c = 0; c < t->ncols; c++) {
      fputs(c ? ", " : "", o);
      put_value(o, &t->cols[c], r, 1);
    }
    fputc(']', o);
  }
  fputc(']', o);
  if (t->nattrs) {
    fputs(",\n   \"attributes\": {", o);
    for (int i = 0; i < t->nattrs; i++) {
      fputs(i ? ", " : "", o);
      put_json_text(o, t->attrs[i].name);
      fputs(": ", o);
      write_json_attrs(o, &t->attrs[i]);
    }
    fputc('}', o);
  }
  if (t->skipped[0]) {
    fputs(",\n   \"skipped\": ", o);
    put_json_text(o, t->skipped);
  }
  fputc('}', o);
}

static void write_json(FILE *o, const char *path, const char *kind, const H5AttrSet *root, const H5Table *t, int n) {
  fputs("{\"file\": ", o);
  put_json_text(o, path);
  fputs(",\n \"format\": ", o);
  put_json_text(o, kind);
  fputs(",\n \"attributes\": ", o);
  write_json_attrs(o, root);
  fputs(",\n \"tables\": {", o);
  for (int k = 0; k < n; k++) {
    fputs(k ? ",\n  " : "\n  ", o);
    put_json_text(o, t[k].path);
    fputs(": ", o);
    write_json_table(o, &t[k]);
  }
  fputs("}}\n", o);
}

/* --- the command ---------------------------------------------------------------------------------- */
typedef struct {
  char list[4096];
} Groups;

static herr_t add_group(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info;
  Groups *g = op;
  H5O_info_t oi;
  if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 && oi.type == H5O_TYPE_GROUP) {
    size_t used = strlen(g->list);
    snprintf(g->list + used, sizeof g->list - used, ", /%s", name);
  }
  return 0;
}

/* "/, /train, /timing, ..." : the groups of the file, for messages. */
static void list_groups(hid_t f, Groups *g) {
  snprintf(g->list, sizeof g->list, "/");
  h5Check(H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, add_group, g), "cannot list the groups of the file");
}

static void table_list(const H5Table *t, int n, char *out, size_t size) {
  out[0] = '\0';
  for (int k = 0; k < n; k++) {
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s%s", k ? ", " : "", t[k].path);
  }
}

int cmd_export(int argc, char **argv) {
  const char *file = NULL, *group = NULL, *out = NULL;
  int csv = 0, json = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      if (dist_rank() == 0) fputs(export_usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--csv") == 0) csv = 1;
    else if (strcmp(argv[i], "--json") == 0) json = 1;
    else if (strncmp(argv[i], "out=", 4) == 0) out = argv[i] + 4;
    else if (argv[i][0] == '-' && argv[i][1]) amd_usage_error("export: unknown option '%s' (--csv or --json)", argv[i]);
    else if (!file) file = argv[i];
    else if (!group) group = argv[i];
    else amd_usage_error("export: one file and at most one group, but also got '%s'", argv[i]);
  }
  if (!file) {
    if (dist_rank() == 0) fputs(export_usage, stderr);
    amd_usage_error("export: no file given");
  }
  if (csv == json)
    amd_usage_error("export: pass exactly one of --csv and --json (got %s)", csv ? "both" : "neither");
  if (out && !out[0]) amd_usage_error("export: out= needs a path");
  if (dist_rank() != 0) return 0;

  char whole[4200], kind[32];
  const char *path = trainlog_whole_copy(file, whole, sizeof whole);
  if (path != file) fprintf(stderr, "%s is marked incomplete (the job was killed while writing it): reading %s\n", file, path);
  hid_t f = h5_open(path, NULL, 0, kind);
  const char *at = group                              ? group
                   : !csv                              ? "/"
                   : strcmp(kind, "amd-log") == 0      ? "/train"
                   : strcmp(kind, "amd-eval") == 0     ? "/eval"
                                                       : "/";
  H5Table *t = NULL;
  int n = h5table_read(f, at, &t);
  if (n < 0) {
    Groups g;
    list_groups(f, &g);
    amd_usage_error("export: '%s' has no group or dataset '%s'; its groups: %s", file, at, g.list);
  }
  char names[4096];
  table_list(t, n, names, sizeof names);
  if (n == 0) amd_usage_error("export: '%s' of '%s' holds no datasets", at, file);
  int pick = 0; /* CSV: the table of the group itself, or the only one */
  if (csv && n > 1) {
    char want[1024];
    snprintf(want, sizeof want, "%s%s", at[0] == '/' ? "" : "/", at);
    for (size_t len = strlen(want); len > 1 && want[len - 1] == '/';) want[--len] = '\0';
    while (pick < n && strcmp(t[pick].path, want) != 0) pick++;
    if (pick == n)
      amd_usage_error("export: '%s' of '%s' holds %d tables and CSV writes one: name one of %s", at, file, n, names);
    fprintf(stderr, "export: table %s (CSV writes one; '%s' holds %s)\n", want, file, names);
  }
  for (int k = 0; k < n; k++)
    if (t[k].skipped[0]) fprintf(stderr, "export: skipped %s (a type that has no CSV or JSON form)\n", t[k].skipped);
  H5AttrSet root;
  h5table_read_attrs(f, &root);
  h5_close(f);

  char tmp[4200];
  FILE *o = stdout;
  if (out) {
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    amd_mkdirs_parent(out);
    o = fopen(tmp, "w");
    if (!o) amd_fatal("export: cannot write '%s': %s", tmp, strerror(errno));
  }
  if (csv) write_csv(o, &t[pick]);
  else write_json(o, path, kind, &root, t, n);
  if (out) {
    int bad = ferror(o) | (fclose(o) != 0);
    if (bad || rename(tmp, out) != 0) {
      int e = errno;
      remove(tmp);
      amd_fatal("export: cannot write '%s': %s", out, strerror(e));
    }
    fprintf(stderr, "wrote %s\n", out);
  } else if (fflush(stdout) != 0 || ferror(stdout)) {
    amd_fatal("export: cannot write to stdout: %s", strerror(errno));
  }
  h5table_free_attrs(&root);
  h5table_free(t, n);
  return 0;
}
