/* config.c: typed `key = value` settings from defaults, a config file and key=value arguments.
 * Every value is parsed against the command's cfg_key table and written straight into its struct
 * field; every user mistake is a usage error (exit 2) that names the key, the value, what is
 * allowed and where the value came from. Not here: any command's keys, or what they mean. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common.h"

/* Room for any formatted value: a string field, or a double at 17 significant digits. */
#define VALUE_MAX CFG_VALUE_MAX

static const cfg_key *find_key(const cfg_key *keys, const char *key) {
  for (const cfg_key *k = keys; k->key; k++)
    if (strcmp(k->key, key) == 0) return k;
  return NULL;
}

static void range_text(const cfg_key *k, char *buf, size_t size) {
  /* 10 digits print every int bound exactly and keep float bounds like 0.1 short. */
  snprintf(buf, size, "[%.10g, %.10g]", k->lo, k->hi);
}

/* The allowed values, as help and error messages show them. */
static void type_text(const cfg_key *k, char *buf, size_t size) {
  char range[96];
  range_text(k, range, sizeof range);
  switch (k->type) {
    case CFG_INT: snprintf(buf, size, "int %s", range); break;
    case CFG_FLOAT: snprintf(buf, size, "float %s", range); break;
    case CFG_BOOL: snprintf(buf, size, "bool"); break;
    case CFG_STR: snprintf(buf, size, "string"); break;
    case CFG_CHOICE: snprintf(buf, size, "%s", k->choices); break;
    case CFG_PATH: snprintf(buf, size, "path"); break;
    default: amd_fatal("config key '%s' has unknown type %d", k->key, (int)k->type);
  }
}

/* The problems of one command line or config file: every bad key and value is collected, then
 * reported in one usage error, each on its own line (report). */
typedef struct {
  char *text; /* "\n  "-separated messages */
  size_t len, cap;
  int count;
} Problems;

/* At most this many are listed; a pasted file of junk would bury the first ones. */
#define PROBLEMS_SHOWN 20

static int problem(Problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int problem(Problems *p, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->count++ >= PROBLEMS_SHOWN) return 1;
  size_t need = p->len + strlen(msg) + 4;
  if (need > p->cap) {
    size_t cap = need * 2;
    char *bigger = realloc(p->text, cap);
    CHECK(bigger, "out of memory collecting config errors");
    p->text = bigger, p->cap = cap;
  }
  p->len += (size_t)sprintf(p->text + p->len, "%s%s", p->count > 1 ? "\n  " : "", msg);
  return 1;
}

/* Stops with every problem collected (a usage error), or returns when there is none. */
static void report(Problems *p) {
  if (p->count == 0) return;
  char msg[8000], more[64] = "";
  if (p->count > PROBLEMS_SHOWN) snprintf(more, sizeof more, "\n  ... and %d more", p->count - PROBLEMS_SHOWN);
  if (p->count == 1) snprintf(msg, sizeof msg, "%s", p->text);
  else snprintf(msg, sizeof msg, "%d problems in the settings:\n  %s%s", p->count, p->text, more);
  free(p->text);
  amd_usage_error("%s", msg);
}

static int bad_value(Problems *p, const cfg_key *k, const char *value, const char *origin, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad_value(Problems *p, const cfg_key *k, const char *value, const char *origin, const char *fmt, ...) {
  char why[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  /* A pasted megabyte of junk would bury the reason; its start is enough to recognise it. */
  size_t len = strlen(value);
  int shown = len > 80 ? 60 : (int)len;
  return problem(p, "config key '%s' = '%.*s%s' (%s): %s", k->key, shown, value, len > 80 ? "..." : "", origin, why);
}

/* Levenshtein distance, to suggest the key the user probably meant. */
static size_t edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  size_t *prev = mallocCheck((m + 1) * sizeof *prev), *cur = mallocCheck((m + 1) * sizeof *cur);
  for (size_t j = 0; j <= m; j++) prev[j] = j;
  for (size_t i = 1; i <= n; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    size_t *t = prev;
    prev = cur;
    cur = t;
  }
  size_t d = prev[m];
  free(prev);
  free(cur);
  return d;
}

const char *cfg_nearest(const char *word, const char *const *names, int n) {
  const char *best = NULL;
  size_t best_d = 3;
  for (int i = 0; i < n; i++) {
    size_t d = edit_distance(word, names[i]);
    if (d < best_d) best = names[i], best_d = d;
  }
  return best;
}

static const char *last_part(const char *key) {
  const char *dot = strrchr(key, '.');
  return dot ? dot + 1 : key;
}

/* A typo (edit distance <= 2) is the likeliest mistake; failing that, the right name under the
 * wrong section ("lr" or "train.lr" for "optim.lr"). */
static const char *suggest_key(const cfg_key *keys, const char *key) {
  const char *best = NULL;
  size_t best_d = 3;
  for (const cfg_key *k = keys; k->key; k++) {
    size_t d = edit_distance(key, k->key);
    if (d < best_d) {
      best = k->key;
      best_d = d;
    }
  }
  if (best) return best;
  for (const cfg_key *k = keys; k->key; k++)
    if (strcmp(last_part(k->key), last_part(key)) == 0) return k->key;
  return NULL;
}

static int starts_or_ends_with_space(const char *s) {
  size_t n = strlen(s);
  return n > 0 && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]));
}

/* The parse_* functions store the value and return 0, or record a problem and return 1. */
static int parse_int(Problems *p, const cfg_key *k, const char *value, const char *origin, int *out) {
  char range[96];
  range_text(k, range, sizeof range);
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  /* strtol skips leading spaces and stops at junk; the whole text must be the number. */
  if (end == value || *end != '\0' || isspace((unsigned char)value[0]))
    return bad_value(p, k, value, origin, "not an integer; expected a whole number in %s", range);
  if (errno == ERANGE || v < INT_MIN || v > INT_MAX || (double)v < k->lo || (double)v > k->hi)
    return bad_value(p, k, value, origin, "out of range %s", range);
  *out = (int)v;
  return 0;
}

static int parse_float(Problems *p, const cfg_key *k, const char *value, const char *origin, double *out) {
  char range[96];
  range_text(k, range, sizeof range);
  char *end;
  double v = strtod(value, &end);
  if (end == value || *end != '\0' || isspace((unsigned char)value[0]))
    return bad_value(p, k, value, origin, "not a number; expected a number in %s", range);
  /* strtod accepts "nan" and "inf", and overflows to inf: none of them is a setting. */
  if (!isfinite(v)) return bad_value(p, k, value, origin, "not a finite number; expected a number in %s", range);
  if (v < k->lo || v > k->hi) return bad_value(p, k, value, origin, "out of range %s", range);
  *out = v;
  return 0;
}

static int parse_bool(Problems *p, const cfg_key *k, const char *value, const char *origin, int *out) {
  static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
      *out = strcasecmp(value, yes[i]) == 0;
      return 0;
    }
  }
  return bad_value(p, k, value, origin, "not a bool; expected true/false, yes/no, on/off or 1/0");
}

static int is_choice(const char *choices, const char *value) {
  size_t n = strlen(value);
  for (const char *c = choices; c;) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (len == n && strncmp(c, value, n) == 0) return 1;
    c = bar ? bar + 1 : NULL;
  }
  return 0;
}

static int set_text(Problems *p, const cfg_key *k, char *field, const char *value, const char *origin) {
  size_t len = strlen(value);
  if (len >= CFG_STR_MAX)
    return bad_value(p, k, value, origin, "too long (%zu characters; at most %d)", len, CFG_STR_MAX - 1);
  if (k->type == CFG_CHOICE && !is_choice(k->choices, value))
    return bad_value(p, k, value, origin, "not one of %s", k->choices);
  /* cfg_to_text must reparse to the same struct, and a config file line cannot hold these. */
  for (const char *c = value; *c; c++)
    if (*c == '#' || (iscntrl((unsigned char)*c) && *c != '\t'))
      return bad_value(p, k, value, origin, "a string may not contain '#' or control characters");
  if (starts_or_ends_with_space(value))
    return bad_value(p, k, value, origin, "a string may not start or end with a space");
  char abs[CFG_STR_MAX];
  if (k->type == CFG_PATH && value[0]) {
    if (cfg_absolute_path(value, abs, sizeof abs) != 0)
      return bad_value(p, k, value, origin,
                       "too long once made absolute (at most %d characters) or no working directory", CFG_STR_MAX - 1);
    if (strchr(abs, '#'))
      return bad_value(p, k, value, origin, "made absolute it holds '#' ('%s'): a config line cannot", abs);
    value = abs, len = strlen(abs);
  }
  /* Zero the tail so two structs holding the same settings compare equal byte for byte. */
  memset(field, 0, CFG_STR_MAX);
  memcpy(field, value, len);
  return 0;
}

int cfg_absolute_path(const char *path, char *out, size_t n) {
  char joined[2 * 4096 + 2], cwd[4096];
  if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
  else if (getcwd(cwd, sizeof cwd)) snprintf(joined, sizeof joined, "%s/%s", cwd, path);
  else return 1;
  /* "." and empty parts dropped, ".." takes the part before it away, as os.path.abspath does */
  size_t len = 0;
  char *save = NULL;
  for (char *part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    if (strcmp(part, ".") == 0) continue;
    if (strcmp(part, "..") == 0) {
      while (len > 0 && out[--len] != '/') {
      }
      continue;
    }
    size_t m = strlen(part);
    if (len + 1 + m + 1 > n) return 1;
    out[len++] = '/';
    memcpy(out + len, part, m);
    len += m;
  }
  if (len == 0) {
    if (n < 2) return 1;
    out[len++] = '/';
  }
  out[len] = '\0';
  return 0;
}

/* Sets one key, or records why not. */
static void set_key(Problems *p, const cfg_key *keys, void *dst, const char *key, const char *value,
                    const char *origin) {
  const cfg_key *k = find_key(keys, key);
  if (!k) {
    const char *hint = suggest_key(keys, key);
    if (hint) problem(p, "unknown config key '%s' (%s); did you mean '%s'?", key, origin, hint);
    else problem(p, "unknown config key '%s' (%s); --help lists every key", key, origin);
    return;
  }
  char *field = (char *)dst + k->offset;
  switch (k->type) {
    case CFG_INT: parse_int(p, k, value, origin, (int *)field); break;
    case CFG_FLOAT: parse_float(p, k, value, origin, (double *)field); break;
    case CFG_BOOL: parse_bool(p, k, value, origin, (int *)field); break;
    case CFG_STR:
    case CFG_CHOICE:
    case CFG_PATH: set_text(p, k, field, value, origin); break;
    default: amd_fatal("config key '%s' has unknown type %d", k->key, (int)k->type);
  }
}

void cfg_set(const cfg_key *keys, void *dst, const char *key, const char *value, const char *origin) {
  Problems p = {0};
  set_key(&p, keys, dst, key, value, origin);
  report(&p);
}

void cfg_defaults(const cfg_key *keys, void *dst) {
  for (const cfg_key *k = keys; k->key; k++) {
    /* Mistakes in a table are the programmer's; catch them the first time the table is used. */
    CHECK(k->def, "config key '%s' has no default", k->key);
    CHECK(find_key(keys, k->key) == k, "config table lists key '%s' twice", k->key);
    CHECK(k->type != CFG_CHOICE || k->choices, "config key '%s' is a choice with no choices", k->key);
    cfg_set(keys, dst, k->key, k->def, "default");
  }
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  return s;
}

static void load_text(Problems *p, const cfg_key *keys, void *dst, const char *text, const char *origin) {
  size_t n = strlen(text);
  char *buf = mallocCheck(n + 1);
  memcpy(buf, text, n + 1);
  char *key = mallocCheck(n + 2); /* section + '.' + key never exceeds the text itself */
  size_t where_size = strlen(origin) + 24;
  char *where = mallocCheck(where_size);
  const char *section = NULL; /* points into buf, which outlives the loop */
  int lineno = 0;
  for (char *line = buf, *next; line; line = next) {
    lineno++;
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *s = trim(line);
    if (*s == '\0') continue;
    snprintf(where, where_size, "%s:%d", origin, lineno);
    if (*s == '[') {
      size_t len = strlen(s);
      if (s[len - 1] != ']') {
        problem(p, "%s: section line '%s' has no closing ']'", where, s);
        continue;
      }
      s[len - 1] = '\0';
      char *name = trim(s + 1);
      if (*name == '\0') problem(p, "%s: empty section name '[]'", where);
      else section = name;
      continue;
    }
    char *eq = strchr(s, '=');
    if (!eq) {
      problem(p, "%s: expected 'key = value' or '[section]', got '%s'", where, s);
      continue;
    }
    *eq = '\0';
    char *name = trim(s), *value = trim(eq + 1);
    if (*name == '\0') {
      problem(p, "%s: no key before '=' (value '%s')", where, value);
      continue;
    }
    if (section) snprintf(key, n + 2, "%s.%s", section, name);
    else snprintf(key, n + 2, "%s", name);
    set_key(p, keys, dst, key, value, where);
  }
  free(where);
  free(key);
  free(buf);
}

void cfg_load_text(const cfg_key *keys, void *dst, const char *text, const char *origin) {
  Problems p = {0};
  load_text(&p, keys, dst, text, origin);
  report(&p);
}

/* The whole file, or NULL (a problem recorded) when it cannot be opened. */
static char *read_all(Problems *p, const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    problem(p, "config file '%s': cannot open '%s': %s", path, path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = mallocCheck(cap);
  for (;;) {
    n += fread(buf + n, 1, cap - 1 - n, f);
    if (n < cap - 1) break;
    char *bigger = realloc(buf, cap * 2);
    CHECK(bigger, "out of memory reading '%s' (%zu bytes so far)", path, n);
    buf = bigger;
    cap *= 2;
  }
  CHECK(!ferror(f), "cannot read '%s'", path);
  fclose(f);
  buf[n] = '\0';
  *size = n;
  return buf;
}

static void load_file(Problems *p, const cfg_key *keys, void *dst, const char *path) {
  size_t size;
  char *text = read_all(p, path, &size);
  if (!text) return;
  /* A NUL would silently end the text early: this is not a config file. */
  if (strlen(text) != size) problem(p, "config file '%s' contains a NUL byte; is it text?", path);
  else load_text(p, keys, dst, text, path);
  free(text);
}

static void (*parsed_hook)(const cfg_key *keys, const void *cfg, const char *config_file);

void cfg_set_parsed_hook(void (*hook)(const cfg_key *keys, const void *cfg, const char *config_file)) {
  parsed_hook = hook;
}

void cfg_load_file(const cfg_key *keys, void *dst, const char *path) {
  Problems p = {0};
  load_file(&p, keys, dst, path);
  report(&p);
}

static int is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

void cfg_parse_args(const cfg_key *keys, void *dst, int argc, char **argv, const char *command,
                    const char *summary) {
  for (int i = 0; i < argc; i++) {
    if (!is_help(argv[i])) continue;
    if (amd_rank() == 0) cfg_print_help(keys, stdout, command, summary);
    fflush(stdout);
    /* Asking for help is a success; leave MPI cleanly so mpirun does not report a failure. */
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Finalize();
    exit(0);
  }
  /* Every mistake of the file and the arguments is reported at once (report), each on its line. */
  Problems p = {0};
  int first = argc > 0 && !strchr(argv[0], '=') && argv[0][0] != '-';
  cfg_defaults(keys, dst);
  if (first) load_file(&p, keys, dst, argv[0]);
  for (int i = first; i < argc; i++) {
    if (argv[i][0] == '-') {
      problem(&p, "unknown option '%s'; settings are key=value (amd %s --help lists them)", argv[i], command);
      continue;
    }
    if (!strchr(argv[i], '=')) {
      problem(&p, "expected key=value, got '%s' (only the first argument may be a config file)", argv[i]);
      continue;
    }
    if (argv[i][0] == '=') {
      problem(&p, "expected key=value, got '%s' (no key)", argv[i]);
      continue;
    }
    const char *eq = strchr(argv[i], '=');
    size_t len = (size_t)(eq - argv[i]);
    char *key = mallocCheck(len + 1);
    memcpy(key, argv[i], len);
    key[len] = '\0';
    set_key(&p, keys, dst, key, eq + 1, "command line");
    free(key);
  }
  report(&p);
  if (parsed_hook) parsed_hook(keys, dst, first ? argv[0] : NULL);
}

/* The value as a config file line holds it: ints in decimal, bools as words, doubles in the fewest
 * digits (at least 9) that read back to the same double. */
static void format_value(const cfg_key *k, const void *src, char *buf, size_t size) {
  const char *field = (const char *)src + k->offset;
  switch (k->type) {
    case CFG_INT: snprintf(buf, size, "%d", *(const int *)field); break;
    case CFG_FLOAT: {
      double v = *(const double *)field;
      for (int prec = 9; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
      }
      break;
    }
    case CFG_BOOL: snprintf(buf, size, "%s", *(const int *)field ? "true" : "false"); break;
    case CFG_STR:
    case CFG_CHOICE:
    case CFG_PATH: snprintf(buf, size, "%.*s", (int)strnlen(field, CFG_STR_MAX - 1), field); break;
    default: amd_fatal("config key '%s' has unknown type %d", k->key, (int)k->type);
  }
}

/* An empty string would be an invisible column in a table. */
static const char *shown(const char *s) { return *s ? s : "\"\""; }

void cfg_print_help(const cfg_key *keys, FILE *out, const char *command, const char *summary) {
  fprintf(out, "usage: amd %s [FILE.cfg] [key=value ...]\n", command);
  if (summary && *summary) fprintf(out, "%s\n", summary);
  fprintf(out, "\nsettings: defaults, then FILE.cfg (`key = value` lines, `[section]` prefixes), "
               "then key=value arguments; later ones win.\n");
  char type[512];
  int wkey = 3, wtype = 4, wdef = 7;
  for (const cfg_key *k = keys; k->key; k++) {
    type_text(k, type, sizeof type);
    wkey = amd_max_i(wkey, (int)strlen(k->key));
    wtype = amd_max_i(wtype, (int)strlen(type));
    wdef = amd_max_i(wdef, (int)strlen(shown(k->def)));
  }
  fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wkey, "key", wtype, "type", wdef, "default", "meaning");
  for (int testing = 0; testing < 2; testing++) {
    int heading = 0;
    for (const cfg_key *k = keys; k->key; k++) {
      if (cfg_is_testing_key(k->key) != testing) continue;
      if (testing && !heading++)
        fprintf(out, "\ntesting keys (fault injection for the test suite; never needed in a real run):\n");
      type_text(k, type, sizeof type);
      fprintf(out, "  %-*s  %-*s  %-*s  %s\n", wkey, k->key, wtype, type, wdef, shown(k->def),
              k->help ? k->help : "");
    }
  }
}

int cfg_is_testing_key(const char *key) { return strncmp(key, CFG_TESTING_PREFIX, strlen(CFG_TESTING_PREFIX)) == 0; }

char *cfg_to_text(const cfg_key *keys, const void *src) {
  char value[VALUE_MAX];
  size_t total = 1;
  for (const cfg_key *k = keys; k->key; k++) {
    format_value(k, src, value, sizeof value);
    total += strlen(k->key) + strlen(value) + 4; /* " = " and '\n' */
  }
  char *text = mallocCheck(total), *p = text;
  *p = '\0';
  for (const cfg_key *k = keys; k->key; k++) {
    format_value(k, src, value, sizeof value);
    p += sprintf(p, "%s = %s\n", k->key, value);
  }
  return text;
}

/* The value `key = ` holds in a config text (the rest of its line), or NULL when absent. */
static const char *text_value(const char *text, const char *key, char *buf, size_t n) {
  size_t klen = strlen(key);
  for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (strncmp(line, key, klen) != 0 || strncmp(line + klen, " = ", 3) != 0) continue;
    const char *v = line + klen + 3, *end = strchr(v, '\n');
    size_t len = end ? (size_t)(end - v) : strlen(v);
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), v);
    return buf;
  }
  return NULL;
}

/* Whether `was` (a config text's value) reads as the value of k in src. Never fatal: a value
 * that no longer parses (its range changed since) is simply different. */
static int same_value(const cfg_key *k, const void *src, const char *was) {
  const char *field = (const char *)src + k->offset;
  char *end, abs[CFG_STR_MAX];
  switch (k->type) {
    case CFG_INT: {
      long v = strtol(was, &end, 10);
      return end != was && *end == '\0' && v == *(const int *)field;
    }
    case CFG_FLOAT: {
      double v = strtod(was, &end);
      return end != was && *end == '\0' && v == *(const double *)field;
    }
    case CFG_BOOL: {
      static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
      for (int i = 0; i < 4; i++)
        if (strcasecmp(was, yes[i]) == 0 || strcasecmp(was, no[i]) == 0)
          return (strcasecmp(was, yes[i]) == 0) == (*(const int *)field != 0);
      return 0;
    }
    case CFG_PATH:
      if (was[0] && cfg_absolute_path(was, abs, sizeof abs) == 0) was = abs;
      return strcmp(was, field) == 0;
    default: return strcmp(was, field) == 0;
  }
}

int cfg_diff(const cfg_key *keys, const void *src, const char *text, CfgChange *out, int max) {
  int n = 0;
  char was[VALUE_MAX];
  for (const cfg_key *k = keys; k->key; k++) {
    if (!text_value(text, k->key, was, sizeof was)) snprintf(was, sizeof was, "%s", k->def);
    if (same_value(k, src, was)) continue;
    if (n < max) {
      out[n].key = k->key;
      snprintf(out[n].was, sizeof out[n].was, "%s", shown(was));
      format_value(k, src, out[n].now, sizeof out[n].now);
      if (!out[n].now[0]) snprintf(out[n].now, sizeof out[n].now, "%s", shown(""));
    }
    n++;
  }
  return n;
}

void cfg_print_table(const cfg_key *keys, const void *src, const char *title) {
  if (amd_rank() != 0) return;
  int w = 0;
  for (const cfg_key *k = keys; k->key; k++) w = amd_max_i(w, (int)strlen(k->key));
  amd_log("%s\n", title);
  char value[VALUE_MAX];
  for (const cfg_key *k = keys; k->key; k++) {
    format_value(k, src, value, sizeof value);
    amd_log("  %-*s  %s\n", w, k->key, shown(value));
  }
}
