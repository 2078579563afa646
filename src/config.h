/* config.h: `key = value` configuration with command-line overrides, typed and range-checked.
 * Each command describes its settings as a table of cfg_key over its own struct; the parser fills
 * the struct from defaults, then an optional FILE.cfg, then key=value arguments, in that order.
 * Unknown keys (with the nearest key as a suggestion), malformed values and out-of-range values are
 * usage errors naming the key and where it came from; every one of a command line and its config
 * file is reported in one message, a line each. Not here: what any key means to the program.
 * Return convention: errors stop the program (amd_usage_error for a setting, amd_fatal for a table);
 * functions return void or their result. */
#pragma once
#include <stddef.h>
#include <stdio.h>

#define CFG_STR_MAX 256

typedef enum {
  CFG_INT,    /* int field; range [lo, hi] */
  CFG_FLOAT,  /* double field; finite, range [lo, hi] */
  CFG_BOOL,   /* int field, 0 or 1; accepts true/false/yes/no/on/off/1/0 */
  CFG_STR,    /* char[CFG_STR_MAX] field */
  CFG_CHOICE, /* char[CFG_STR_MAX] field; value must be one of `choices`, "a|b|c" */
  CFG_PATH,   /* char[CFG_STR_MAX] field: an input file or folder; a relative path is made absolute
                 (against the working directory) when set, so whatever records it names the same
                 file from any folder */
} cfg_type;

typedef struct {
  const char *key;     /* dotted name, e.g. "optim.lr" */
  cfg_type type;
  size_t offset;       /* offsetof(the command's struct, field) */
  const char *def;     /* default, as text */
  double lo, hi;       /* inclusive range for CFG_INT and CFG_FLOAT */
  const char *choices; /* for CFG_CHOICE */
  const char *help;    /* one line: meaning and unit */
} cfg_key;

/* Tables end with an entry whose key is NULL. */
#define CFG_END {NULL, CFG_INT, 0, NULL, 0, 0, NULL, NULL}

void cfg_defaults(const cfg_key *keys, void *dst);
/* Sets one key from text; `origin` names where it came from ("command line", "run.cfg:12"). */
void cfg_set(const cfg_key *keys, void *dst, const char *key, const char *value, const char *origin);
/* Parses `key = value` lines ('#' starts a comment; blank lines are skipped; a `[section]` line
 * prefixes the keys below it with "section."). */
void cfg_load_text(const cfg_key *keys, void *dst, const char *text, const char *origin);
void cfg_load_file(const cfg_key *keys, void *dst, const char *path);
/* argv holds what follows the command name: an optional FILE.cfg first, then key=value items.
 * --help or -h prints the key table and exits 0. */
void cfg_parse_args(const cfg_key *keys, void *dst, int argc, char **argv, const char *command,
                    const char *summary);
/* A function called at the end of every cfg_parse_args with the table, the parsed struct and the
 * config file (NULL: none); src/origin.c installs one that records the input paths (NULL: none). */
void cfg_set_parsed_hook(void (*hook)(const cfg_key *keys, const void *cfg, const char *config_file));
/* The name of names[0..n) nearest to `word` by edit distance, if at most 2 edits away (a typo);
 * else NULL. For "did you mean" hints of commands and kinds. */
const char *cfg_nearest(const char *word, const char *const *names, int n);
/* Prints the key table; the testing keys come last, under a heading of their own. */
void cfg_print_help(const cfg_key *keys, FILE *out, const char *command, const char *summary);
/* Keys of the "fault." section inject faults for the test suite (src/runloop.h). */
#define CFG_TESTING_PREFIX "fault."
int cfg_is_testing_key(const char *key);
/* The resolved configuration as `key = value` lines, one per key, in table order; caller frees. */
char *cfg_to_text(const cfg_key *keys, const void *src);
/* A path made absolute against the working directory, "." and ".." parts resolved by name (as
 * Python's os.path.abspath; links are not followed); 0, or nonzero when it does not fit in n
 * bytes or the working directory is unknown. */
int cfg_absolute_path(const char *path, char *out, size_t n);

/* One key whose value differs between an earlier configuration and the present one. */
#define CFG_VALUE_MAX (CFG_STR_MAX + 64)
typedef struct {
  const char *key;
  char was[CFG_VALUE_MAX], now[CFG_VALUE_MAX]; /* as config lines hold them ("" shown as "") */
} CfgChange;
/* The keys of the table whose value in src differs from the one in `text` (cfg_to_text of an
 * earlier run, e.g. a checkpoint's config), in table order, at most max into out; returns how
 * many differ. Values compare as their type reads them (1e-3 equals 0.001). A key the text lacks
 * (added to amd since) counts as its default; a relative CFG_PATH in the text (written before
 * paths were made absolute) counts as made absolute now; keys of the text the table lacks are
 * ignored. */
int cfg_diff(const cfg_key *keys, const void *src, const char *text, CfgChange *out, int max);
/* Rank 0 prints every key and its value as an aligned table. */
void cfg_print_table(const cfg_key *keys, const void *src, const char *title);
