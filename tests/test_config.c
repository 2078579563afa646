/* test_config.c: tests config.c on a small table holding one key of every type.
 * Covers defaults, file-then-command-line precedence, sections, comments, the cfg_to_text round
 * trip, help and table output, every user error (each in a forked child through expect_fatal), and
 * for resume checks: CFG_PATH values made absolute and cfg_diff against an earlier config text.
 * Not here: any real command's keys. */
#include <stddef.h>
#include <stdlib.h>

#include "common.h"
#include "config.h"
#include "test.h"

typedef struct {
  int steps;
  double lr;
  double beta;
  int ema;
  char name[CFG_STR_MAX];
  char method[CFG_STR_MAX];
} toy_cfg;

static const cfg_key toy_keys[] = {
    {"train.steps", CFG_INT, offsetof(toy_cfg, steps), "100", 1, 1000000, NULL, "optimizer steps"},
    {"optim.lr", CFG_FLOAT, offsetof(toy_cfg, lr), "0.001", 0, 10, NULL, "learning rate"},
    {"optim.beta", CFG_FLOAT, offsetof(toy_cfg, beta), "0.9", 0, 1, NULL, "Adam beta1"},
    {"ema.enabled", CFG_BOOL, offsetof(toy_cfg, ema), "yes", 0, 0, NULL, "keep an EMA of the weights"},
    {"run.name", CFG_STR, offsetof(toy_cfg, name), "toy", 0, 0, NULL, "run directory name"},
    {"sample.method", CFG_CHOICE, offsetof(toy_cfg, method), "heun", 0, 0, "euler|heun", "sampler"},
    CFG_END,
};

/* Writes text to a fresh file under /tmp; path needs room for the template. */
static void write_temp(const char *text, char *path) {
  strcpy(path, "/tmp/test_config_XXXXXX.cfg");
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0, "cannot create a temporary file");
  size_t n = strlen(text);
  CHECK(write(fd, text, n) == (ssize_t)n, "cannot write %s", path);
  close(fd);
}

/* Runs fn(arg) in a child with file descriptor fd (1 or 2) captured into buf; returns its exit
 * status, or -1 when it did not exit normally. expect_fatal cannot see stdout or a zero exit. */
static int run_child(void (*fn)(void *), void *arg, int fd, char *buf, size_t size) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], fd);
    fn(arg);
    fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], buf + n, size - 1 - n)) > 0) n += (size_t)r;
  buf[n] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_defaults(void) {
  toy_cfg c;
  memset(&c, 0xab, sizeof c);
  cfg_defaults(toy_keys, &c);
  EXPECT(c.steps == 100, "steps %d", c.steps);
  EXPECT(c.lr == 0.001, "lr %.17g", c.lr);
  EXPECT(c.beta == 0.9, "beta %.17g", c.beta);
  EXPECT(c.ema == 1, "ema %d", c.ema);
  EXPECT(strcmp(c.name, "toy") == 0, "name '%s'", c.name);
  EXPECT(strcmp(c.method, "heun") == 0, "method '%s'", c.method);
}

static void test_values(void) {
  toy_cfg c;
  cfg_defaults(toy_keys, &c);
  const char *bools[][2] = {{"TRUE", "1"}, {"off", "0"}, {"Yes", "1"}, {"no", "0"},
                            {"On", "1"},   {"0", "0"},   {"1", "1"},   {"False", "0"}};
  for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
    cfg_set(toy_keys, &c, "ema.enabled", bools[i][0], "test");
    EXPECT(c.ema == atoi(bools[i][1]), "'%s' gave %d", bools[i][0], c.ema);
  }
  /* Bounds are inclusive. */
  cfg_set(toy_keys, &c, "train.steps", "1", "test");
  EXPECT(c.steps == 1, "steps %d", c.steps);
  cfg_set(toy_keys, &c, "train.steps", "1000000", "test");
  EXPECT(c.steps == 1000000, "steps %d", c.steps);
  cfg_set(toy_keys, &c, "optim.lr", "10", "test");
  EXPECT(c.lr == 10, "lr %g", c.lr);
  cfg_set(toy_keys, &c, "optim.lr", "0", "test");
  EXPECT(c.lr == 0, "lr %g", c.lr);
  cfg_set(toy_keys, &c, "optim.lr", "3e-4", "test");
  EXPECT(c.lr == 3e-4, "lr %g", c.lr);
  cfg_set(toy_keys, &c, "sample.method", "euler", "test");
  EXPECT(strcmp(c.method, "euler") == 0, "method '%s'", c.method);
  cfg_set(toy_keys, &c, "run.name", "", "test");
  EXPECT(c.name[0] == '\0', "name '%s'", c.name);
  char longest[CFG_STR_MAX];
  memset(longest, 'x', CFG_STR_MAX - 1);
  longest[CFG_STR_MAX - 1] = '\0';
  cfg_set(toy_keys, &c, "run.name", longest, "test");
  EXPECT(strcmp(c.name, longest) == 0, "a name of %d characters should fit", CFG_STR_MAX - 1);
}

static void test_file_then_overrides(void) {
  char path[64];
  write_temp("train.steps = 200\noptim.lr = 0.01\nrun.name = from-file\n", path);
  char *argv[] = {path, "train.steps=300", "run.name=from cli", "train.steps=400", "optim.beta=0.5"};
  toy_cfg c;
  memset(&c, 0, sizeof c);
  cfg_parse_args(toy_keys, &c, 5, argv, "train", "Trains a toy model.");
  EXPECT(c.steps == 400, "the last override wins: steps %d", c.steps);
  EXPECT(c.lr == 0.01, "the file beats the default: lr %g", c.lr);
  EXPECT(c.beta == 0.5, "beta %g", c.beta);
  EXPECT(strcmp(c.name, "from cli") == 0, "the command line beats the file: name '%s'", c.name);
  EXPECT(strcmp(c.method, "heun") == 0, "untouched keys keep their default: method '%s'", c.method);
  EXPECT(c.ema == 1, "ema %d", c.ema);
  unlink(path);

  /* Without a file the first argument is already an override. */
  char *only[] = {"optim.lr=2", "ema.enabled=off"};
  cfg_parse_args(toy_keys, &c, 2, only, "train", "Trains a toy model.");
  EXPECT(c.lr == 2 && c.ema == 0 && c.steps == 100, "lr %g ema %d steps %d", c.lr, c.ema, c.steps);
  cfg_parse_args(toy_keys, &c, 0, NULL, "train", "Trains a toy model.");
  EXPECT(c.lr == 0.001 && c.ema == 1, "no arguments means defaults: lr %g ema %d", c.lr, c.ema);
}

static void test_sections(void) {
  toy_cfg c;
  cfg_defaults(toy_keys, &c);
  cfg_load_text(toy_keys, &c,
                "run.name = top\n"
                "[optim]\nlr = 0.5\nbeta = 0.25\n"
                "[ train ]\nsteps = 7\n"
                "[sample]\nmethod = euler\n",
                "sections.cfg");
  EXPECT(strcmp(c.name, "top") == 0, "keys before any section are taken whole: '%s'", c.name);
  EXPECT(c.lr == 0.5 && c.beta == 0.25, "lr %g beta %g", c.lr, c.beta);
  EXPECT(c.steps == 7, "steps %d", c.steps);
  EXPECT(strcmp(c.method, "euler") == 0, "method '%s'", c.method);
}

static void test_comments_and_blank_lines(void) {
  toy_cfg c;
  cfg_defaults(toy_keys, &c);
  cfg_load_text(toy_keys, &c,
                "# a whole-line comment\n"
                "\n"
                "   \t \n"
                "run.name =   my run   # a trailing comment\n"
                "optim.lr=0.25#no spaces\r\n"
                "  # indented comment = not a key\n"
                "train.steps = 9",
                "comments.cfg");
  EXPECT(strcmp(c.name, "my run") == 0, "spaces inside a value stay: '%s'", c.name);
  EXPECT(c.lr == 0.25, "lr %g", c.lr);
  EXPECT(c.steps == 9, "a last line without a newline counts: steps %d", c.steps);
}

static void test_round_trip(void) {
  toy_cfg a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  cfg_defaults(toy_keys, &a);
  cfg_set(toy_keys, &a, "optim.lr", "0.1", "test");
  cfg_set(toy_keys, &a, "optim.beta", "0.123456789012345678", "test"); /* needs 17 digits */
  cfg_set(toy_keys, &a, "train.steps", "999999", "test");
  cfg_set(toy_keys, &a, "ema.enabled", "off", "test");
  cfg_set(toy_keys, &a, "run.name", "a b=c\td", "test");
  cfg_set(toy_keys, &a, "sample.method", "euler", "test");
  char *text = cfg_to_text(toy_keys, &a);
  const char *want = "train.steps = 999999\noptim.lr = 0.1\n";
  EXPECT(strncmp(text, want, strlen(want)) == 0, "short decimals stay short, in table order:\n%s", text);
  EXPECT(strstr(text, "ema.enabled = false\n"), "bool as a word:\n%s", text);
  cfg_defaults(toy_keys, &b);
  cfg_load_text(toy_keys, &b, text, "round-trip");
  EXPECT(a.steps == b.steps, "steps %d vs %d", a.steps, b.steps);
  EXPECT(a.lr == b.lr, "lr %.17g vs %.17g", a.lr, b.lr);
  EXPECT(a.beta == b.beta, "beta %.17g vs %.17g", a.beta, b.beta);
  EXPECT(a.ema == b.ema, "ema %d vs %d", a.ema, b.ema);
  EXPECT(strcmp(a.name, b.name) == 0, "name '%s' vs '%s'", a.name, b.name);
  EXPECT(strcmp(a.method, b.method) == 0, "method '%s' vs '%s'", a.method, b.method);
  EXPECT(memcmp(&a, &b, sizeof a) == 0, "the structs differ byte for byte");
  char *again = cfg_to_text(toy_keys, &b);
  EXPECT(strcmp(text, again) == 0, "text changed on the second trip:\n%s\nvs\n%s", text, again);
  free(again);
  free(text);
}

/* cols[i] is a cell on the row of toy_keys[i]; every one must start at the same column. */
static void expect_aligned(const char *out, const char *const *cols) {
  long at = -1;
  for (const cfg_key *k = toy_keys; k->key; k++) {
    const char *row = strstr(out, k->key);
    EXPECT(row, "no row for '%s' in:\n%s", k->key, out);
    if (!row) continue;
    const char *line = row;
    while (line > out && line[-1] != '\n') line--;
    const char *cell = strstr(row, cols[k - toy_keys]);
    EXPECT(cell, "no '%s' in:\n%s", cols[k - toy_keys], out);
    if (!cell) continue;
    if (at < 0) at = cell - line;
    EXPECT(cell - line == at, "'%s' is not aligned in:\n%s", cols[k - toy_keys], out);
  }
}

static void print_help_to_stdout(void *arg) {
  (void)arg;
  cfg_print_help(toy_keys, stdout, "train", "Trains a toy model.");
}

static void test_help(void) {
  char out[8192];
  int status = run_child(print_help_to_stdout, NULL, 1, out, sizeof out);
  EXPECT(status == 0, "status %d", status);
  const char *head = "usage: amd train [FILE.cfg] [key=value ...]\nTrains a toy model.\n";
  EXPECT(strncmp(out, head, strlen(head)) == 0, "help starts:\n%s", out);
  const char *types[] = {"int [1, 1000000]", "float [0, 10]", "float [0, 1]", "bool", "string",
                         "euler|heun"};
  for (int i = 0; i < 6; i++) EXPECT(strstr(out, types[i]), "no '%s' in:\n%s", types[i], out);
  expect_aligned(out, types);
  const char *helps[] = {"optimizer steps", "learning rate", "Adam beta1", "keep an EMA",
                         "run directory name", "sampler"};
  expect_aligned(out, helps);
}

/* testing keys (fault.*) are listed last, under their own heading, wherever the table has them */
static const cfg_key fault_keys[] = {
    {"fault.nan_step", CFG_INT, offsetof(toy_cfg, steps), "-1", -1, 10, NULL, "testing: a NaN"},
    {"optim.lr", CFG_FLOAT, offsetof(toy_cfg, lr), "0.001", 0, 10, NULL, "learning rate"},
    CFG_END,
};

static void print_fault_help(void *arg) {
  (void)arg;
  cfg_print_help(fault_keys, stdout, "train", "");
}

static void test_help_testing_keys(void) {
  char out[8192];
  EXPECT(run_child(print_fault_help, NULL, 1, out, sizeof out) == 0, "status");
  const char *lr = strstr(out, "optim.lr"), *head = strstr(out, "testing keys"), *nan = strstr(out, "fault.nan_step");
  EXPECT(lr && head && nan && lr < head && head < nan, "optim.lr, then the heading, then fault.nan_step:\n%s", out);
  EXPECT(cfg_is_testing_key("fault.exit_step") && !cfg_is_testing_key("faults") && !cfg_is_testing_key("optim.lr"),
         "cfg_is_testing_key");
}

static void parse_help(void *arg) {
  char *argv[] = {"train.steps=5", arg};
  toy_cfg c;
  cfg_parse_args(toy_keys, &c, 2, argv, "train", "Trains a toy model.");
  printf("cfg_parse_args returned after %s\n", (char *)arg);
}

static void test_help_flag_exits_zero(void) {
  char *flags[] = {"--help", "-h"};
  for (int i = 0; i < 2; i++) {
    char out[8192];
    int status = run_child(parse_help, flags[i], 1, out, sizeof out);
    EXPECT(status == 0, "%s: status %d", flags[i], status);
    EXPECT(strstr(out, "usage: amd train") && !strstr(out, "returned"), "%s printed:\n%s", flags[i], out);
  }
}

static void print_table(void *arg) {
  (void)arg;
  toy_cfg c;
  cfg_defaults(toy_keys, &c);
  cfg_set(toy_keys, &c, "run.name", "", "test");
  cfg_print_table(toy_keys, &c, "train settings:");
}

static void test_print_table(void) {
  char out[8192];
  int status = run_child(print_table, NULL, 1, out, sizeof out);
  EXPECT(status == 0, "status %d", status);
  const char *head = "train settings:\n  train.steps  ";
  EXPECT(strncmp(out, head, strlen(head)) == 0, "table starts:\n%s", out);
  const char *values[] = {"100", "0.001", "0.9", "true", "\"\"", "heun"};
  expect_aligned(out, values);
}

/* --- errors: each runs in a child that must die naming the problem ---------------------------- */

typedef struct {
  const char *key, *value;
} kv;

static void set_one(void *arg) {
  const kv *a = arg;
  toy_cfg c;
  cfg_defaults(toy_keys, &c);
  cfg_set(toy_keys, &c, a->key, a->value, "test.cfg:3");
}

/* The key, the value, what is allowed and the origin, in the order a user reads them. */
static void expect_bad_value(const char *key, const char *value, const char *why) {
  kv a = {key, value};
  char msg[512];
  snprintf(msg, sizeof msg, "config key '%s' = '%s' (test.cfg:3): %s", key, value, why);
  EXPECT(expect_fatal(set_one, &a, msg), "setting %s to '%s'", key, value);
}

static void test_error_unknown_key(void) {
  kv typo = {"optim.lrr", "1"}, section = {"train.lr", "1"}, bare = {"lr", "1"}, far = {"zzz.qqqqq", "1"};
  EXPECT(expect_fatal(set_one, &typo, "unknown config key 'optim.lrr' (test.cfg:3)"), "typo");
  EXPECT(expect_fatal(set_one, &typo, "did you mean 'optim.lr'?"), "typo suggestion");
  EXPECT(expect_fatal(set_one, &section, "did you mean 'optim.lr'?"), "wrong section");
  EXPECT(expect_fatal(set_one, &bare, "did you mean 'optim.lr'?"), "no section");
  char err[4096];
  int status = run_child(set_one, &far, 2, err, sizeof err);
  EXPECT(status == AMD_EXIT_USAGE, "status %d", status);
  EXPECT(strstr(err, "'zzz.qqqqq'") && !strstr(err, "did you mean"), "no close key to suggest:\n%s", err);
}

static void test_error_bad_int(void) {
  const char *bad[] = {"12abc", "", "1.5", "1e3", " 5", "5 ", "0x10", "ten"};
  for (int i = 0; i < 8; i++)
    expect_bad_value("train.steps", bad[i], "not an integer; expected a whole number in [1, 1000000]");
}

static void test_error_int_out_of_range(void) {
  expect_bad_value("train.steps", "0", "out of range [1, 1000000]");
  expect_bad_value("train.steps", "1000001", "out of range [1, 1000000]");
  expect_bad_value("train.steps", "-5", "out of range [1, 1000000]");
  expect_bad_value("train.steps", "99999999999999999999999", "out of range [1, 1000000]");
}

static void test_error_float_not_finite(void) {
  const char *bad[] = {"nan", "NaN", "inf", "-inf", "1e999"};
  for (int i = 0; i < 5; i++)
    expect_bad_value("optim.lr", bad[i], "not a finite number; expected a number in [0, 10]");
  expect_bad_value("optim.lr", "0.1x", "not a number; expected a number in [0, 10]");
  expect_bad_value("optim.lr", "", "not a number; expected a number in [0, 10]");
}

static void test_error_float_out_of_range(void) {
  expect_bad_value("optim.lr", "-1", "out of range [0, 10]");
  expect_bad_value("optim.lr", "10.000001", "out of range [0, 10]");
  expect_bad_value("optim.beta", "1.5", "out of range [0, 1]");
}

static void parse_args(void *arg) {
  toy_cfg c;
  cfg_parse_args(toy_keys, &c, 2, arg, "train", "Trains a toy model.");
}

static void test_error_command_line(void) {
  char *range[] = {"train.steps=5", "optim.lr=-1"};
  EXPECT(expect_fatal(parse_args, range, "config key 'optim.lr' = '-1' (command line): out of range [0, 10]"),
         "a bad override names the command line");
  char *loose[] = {"train.steps=5", "x"};
  EXPECT(expect_fatal(parse_args, loose, "expected key=value, got 'x'"), "a later argument without '='");
  char *option[] = {"--verbose", "train.steps=5"};
  EXPECT(expect_fatal(parse_args, option, "unknown option '--verbose'"), "an unknown option");
  char *nokey[] = {"train.steps=5", "=5"};
  EXPECT(expect_fatal(parse_args, nokey, "got '=5' (no key)"), "an argument with no key");
  char err[4096];
  int status = run_child(parse_args, range, 2, err, sizeof err);
  EXPECT(status == AMD_EXIT_USAGE, "a bad setting is a usage error: status %d", status);
}

static void test_error_bad_bool(void) {
  expect_bad_value("ema.enabled", "maybe", "not a bool; expected true/false, yes/no, on/off or 1/0");
  expect_bad_value("ema.enabled", "2", "not a bool; expected true/false, yes/no, on/off or 1/0");
}

static void test_error_bad_choice(void) {
  expect_bad_value("sample.method", "rk4", "not one of euler|heun");
  expect_bad_value("sample.method", "Euler", "not one of euler|heun");
  expect_bad_value("sample.method", "eule", "not one of euler|heun");
  expect_bad_value("sample.method", "", "not one of euler|heun");
}

static void test_error_bad_string(void) {
  char longer[CFG_STR_MAX + 1];
  memset(longer, 'y', CFG_STR_MAX);
  longer[CFG_STR_MAX] = '\0';
  kv a = {"run.name", longer};
  EXPECT(expect_fatal(set_one, &a, "config key 'run.name' = 'yyyyyyyyyy"), "the value's start is shown");
  EXPECT(expect_fatal(set_one, &a, "...' (test.cfg:3): too long (256 characters; at most 255)"), "too long");
  expect_bad_value("run.name", "a#b", "a string may not contain '#' or control characters");
  expect_bad_value("run.name", "a\nb", "a string may not contain '#' or control characters");
  expect_bad_value("run.name", " a", "a string may not start or end with a space");
}

typedef struct {
  const char *text, *needle;
} text_case;

static void load_text(void *arg) {
  toy_cfg c;
  cfg_defaults(toy_keys, &c);
  cfg_load_text(toy_keys, &c, arg, "run.cfg");
}

static void test_error_bad_lines(void) {
  text_case cases[] = {
      {"optim.lr = 1\n\nbogus line\n", "run.cfg:3: expected 'key = value' or '[section]', got 'bogus line'"},
      {"# only = a comment\nsteps 5 # = not here\n", "run.cfg:2: expected 'key = value' or '[section]', got 'steps 5'"},
      {"[optim\nlr = 1\n", "run.cfg:1: section line '[optim' has no closing ']'"},
      {"[ ]\n", "run.cfg:1: empty section name"},
      {"  = 5\n", "run.cfg:1: no key before '='"},
      {"[optim]\nlrr = 1\n", "unknown config key 'optim.lrr' (run.cfg:2); did you mean 'optim.lr'?"},
      {"\n\n\noptim.lr = -1\n", "config key 'optim.lr' = '-1' (run.cfg:4): out of range [0, 10]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    EXPECT(expect_fatal(load_text, (void *)cases[i].text, cases[i].needle), "case %zu", i);
}

/* Every problem of a command line and its config file, in one message, a line each (issue 16). */
static void parse_many(void *arg) {
  toy_cfg c;
  char **argv = arg;
  cfg_parse_args(toy_keys, &c, 5, argv, "train", "Trains a toy model.");
}

static void test_error_every_problem(void) {
  char path[64];
  write_temp("optim.lr = 11\nbogus line\n", path);
  char *argv[] = {path, "optim.lrr=1", "train.steps=0", "x", "sample.method=rk4"};
  char err[8192];
  int status = run_child(parse_many, argv, 2, err, sizeof err);
  EXPECT(status == AMD_EXIT_USAGE, "status %d", status);
  char line[160];
  snprintf(line, sizeof line, "\n  config key 'optim.lr' = '11' (%s:1): out of range [0, 10]\n", path);
  EXPECT(strstr(err, "amd: error: 6 problems in the settings:\n"), "a count first:\n%s", err);
  EXPECT(strstr(err, line), "the file's bad value on its own line:\n%s", err);
  snprintf(line, sizeof line, "\n  %s:2: expected 'key = value' or '[section]', got 'bogus line'\n", path);
  EXPECT(strstr(err, line), "the file's bad line:\n%s", err);
  EXPECT(strstr(err, "\n  unknown config key 'optim.lrr' (command line); did you mean 'optim.lr'?\n"), "%s", err);
  EXPECT(strstr(err, "\n  config key 'train.steps' = '0' (command line): out of range [1, 1000000]\n"), "%s", err);
  EXPECT(strstr(err, "\n  expected key=value, got 'x'"), "%s", err);
  EXPECT(strstr(err, "\n  config key 'sample.method' = 'rk4' (command line): not one of euler|heun"), "%s", err);
  EXPECT(!strstr(err, "config.c:"), "a user's mistake names no source line:\n%s", err);
  unlink(path);
  const char *text = "[optim]\nlrr = 1\nbeta = 2\n";
  status = run_child(load_text, (void *)text, 2, err, sizeof err);
  EXPECT(status == AMD_EXIT_USAGE && strstr(err, "2 problems") && strstr(err, "(run.cfg:2)") && strstr(err, "(run.cfg:3)"),
         "both lines of a file: status %d\n%s", status, err);
}

static void test_nearest_name(void) {
  const char *const names[] = {"data", "train", "distill", "sample", "eval", "info"};
  EXPECT(cfg_nearest("trian", names, 6) && strcmp(cfg_nearest("trian", names, 6), "train") == 0, "trian");
  EXPECT(cfg_nearest("distil", names, 6) && strcmp(cfg_nearest("distil", names, 6), "distill") == 0, "distil");
  EXPECT(cfg_nearest("export", names, 6) == NULL, "nothing near 'export'");
}

static void load_file(void *arg) {
  toy_cfg c;
  cfg_load_file(toy_keys, &c, arg);
}

static void test_error_missing_file(void) {
  EXPECT(expect_fatal(load_file, "/nonexistent/dir/run.cfg", "cannot open '/nonexistent/dir/run.cfg'"),
         "cfg_load_file");
  char *argv[] = {"/nonexistent/dir/run.cfg", "train.steps=5"};
  EXPECT(expect_fatal(parse_args, argv, "cannot open '/nonexistent/dir/run.cfg'"), "cfg_parse_args");
  char path[64];
  write_temp("train.steps = 5\noptim.lr = 11\n", path);
  char msg[128];
  snprintf(msg, sizeof msg, "(%s:2): out of range [0, 10]", path);
  EXPECT(expect_fatal(load_file, path, msg), "file errors name path:line");
  unlink(path);
}

/* A table with an input path, for CFG_PATH and cfg_diff. */
typedef struct {
  char data[CFG_STR_MAX], method[CFG_STR_MAX];
  int steps, ema;
  double lr;
} run_cfg;
static const cfg_key run_keys[] = {
    {"data", CFG_PATH, offsetof(run_cfg, data), "", 0, 0, NULL, "dataset file"},
    {"train.steps", CFG_INT, offsetof(run_cfg, steps), "100", 1, 1000000, NULL, "optimizer steps"},
    {"optim.lr", CFG_FLOAT, offsetof(run_cfg, lr), "1e-3", 0, 10, NULL, "learning rate"},
    {"ema.enabled", CFG_BOOL, offsetof(run_cfg, ema), "yes", 0, 0, NULL, "keep an EMA of the weights"},
    {"sample.method", CFG_CHOICE, offsetof(run_cfg, method), "heun", 0, 0, "euler|heun", "sampler"},
    CFG_END,
};

static void test_path_made_absolute(void) {
  char cwd[4096], want[4200], out[64];
  CHECK(getcwd(cwd, sizeof cwd), "getcwd");
  run_cfg c;
  cfg_defaults(run_keys, &c);
  EXPECT(c.data[0] == '\0', "an empty path stays empty, got '%s'", c.data);
  cfg_set(run_keys, &c, "data", "./data/../data//toy.h5", "test");
  snprintf(want, sizeof want, "%s/data/toy.h5", strcmp(cwd, "/") == 0 ? "" : cwd);
  EXPECT(strcmp(c.data, want) == 0, "relative path '%s', want '%s'", c.data, want);
  cfg_set(run_keys, &c, "data", "/a/./b/../toy.h5", "test");
  EXPECT(strcmp(c.data, "/a/toy.h5") == 0, "absolute path '%s'", c.data);
  EXPECT(cfg_absolute_path("/..", out, sizeof out) == 0 && strcmp(out, "/") == 0, "'/..' gave '%s'", out);
  EXPECT(cfg_absolute_path("/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/x", out, sizeof out) != 0,
         "a path longer than the buffer must fail");
  char *text = cfg_to_text(run_keys, &c);
  EXPECT(strstr(text, "data = /a/toy.h5\n") != NULL, "config text: %s", text);
  free(text);
}

static void test_diff(void) {
  run_cfg c;
  cfg_defaults(run_keys, &c);
  cfg_set(run_keys, &c, "data", "toy.h5", "test");
  char *text = cfg_to_text(run_keys, &c);
  CfgChange ch[8];
  EXPECT(cfg_diff(run_keys, &c, text, ch, 8) == 0, "a config equals its own text");
  /* written by an older amd: a relative path, 1e-3 spelled otherwise, a key it did not have */
  const char *old = "data = toy.h5\ntrain.steps = 100\noptim.lr = 0.001\nema.enabled = yes\nremoved.key = 4\n";
  EXPECT(cfg_diff(run_keys, &c, old, ch, 8) == 0, "an older text of the same settings differs in %s",
         cfg_diff(run_keys, &c, old, ch, 8) ? ch[0].key : "-");
  cfg_set(run_keys, &c, "train.steps", "400", "test");
  cfg_set(run_keys, &c, "optim.lr", "5e-3", "test");
  cfg_set(run_keys, &c, "sample.method", "euler", "test");
  int n = cfg_diff(run_keys, &c, text, ch, 8);
  EXPECT(n == 3, "3 changes, got %d", n);
  if (n == 3) {
    EXPECT(strcmp(ch[0].key, "train.steps") == 0 && strcmp(ch[0].was, "100") == 0 && strcmp(ch[0].now, "400") == 0,
           "change 0: %s %s -> %s", ch[0].key, ch[0].was, ch[0].now);
    EXPECT(strcmp(ch[1].key, "optim.lr") == 0 && strcmp(ch[1].was, "0.001") == 0 && strcmp(ch[1].now, "0.005") == 0,
           "change 1: %s %s -> %s", ch[1].key, ch[1].was, ch[1].now);
    EXPECT(strcmp(ch[2].key, "sample.method") == 0, "change 2: %s", ch[2].key);
  }
  EXPECT(cfg_diff(run_keys, &c, text, ch, 1) == 3, "the count goes past max");
  cfg_set(run_keys, &c, "data", "other.h5", "test");
  EXPECT(cfg_diff(run_keys, &c, text, ch, 8) == 4 && strcmp(ch[0].key, "data") == 0, "another data file is a change");
  free(text);
}

int main(void) {
  TEST_RUN(test_defaults);
  TEST_RUN(test_values);
  TEST_RUN(test_file_then_overrides);
  TEST_RUN(test_sections);
  TEST_RUN(test_comments_and_blank_lines);
  TEST_RUN(test_round_trip);
  TEST_RUN(test_help);
  TEST_RUN(test_help_testing_keys);
  TEST_RUN(test_help_flag_exits_zero);
  TEST_RUN(test_print_table);
  TEST_RUN(test_error_unknown_key);
  TEST_RUN(test_error_bad_int);
  TEST_RUN(test_error_int_out_of_range);
  TEST_RUN(test_error_float_not_finite);
  TEST_RUN(test_error_float_out_of_range);
  TEST_RUN(test_error_command_line);
  TEST_RUN(test_error_bad_bool);
  TEST_RUN(test_error_bad_choice);
  TEST_RUN(test_error_bad_string);
  TEST_RUN(test_error_bad_lines);
  TEST_RUN(test_error_missing_file);
  TEST_RUN(test_path_made_absolute);
  TEST_RUN(test_diff);
  TEST_RUN(test_error_every_problem);
  TEST_RUN(test_nearest_name);
  return t_finish();
}
