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
/* Rank 0 prints every key and its value as an aligned table. */
void cfg_print_table(const cfg_key *keys, const void *src, const char *title);
