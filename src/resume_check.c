/* resume_check.c: what a resume may change (resume_check.h). */
#include "resume_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "common.h"
#include "dataset.h"

/* The keys a resume may change: they say where the run goes (run, resume, resume.allow), on what
 * it runs (device, threads, cpu.ftz, zero, zero.prefetch, cuda.graphs: the same run, up to float rounding; not
 * precision, whose bf16 or tf32 products change it by more), how often it logs or
 * checkpoints, and when the guard calls a step a divergence (not what a rollback then does:
 * guard.lr_factor scales the learning rate of every step after one, so it is not free). The
 * testing keys fault.* are free too (cfg_is_testing_key). Every other key changes the run. */
static const char *const free_keys[] = {
    "run",         "resume",     "resume.allow",                            /* where the run goes */
    "device",      "threads",    "cpu.ftz", "zero", "zero.prefetch", "cuda.graphs", /* on what it runs */
    "log.every",   "log.advantage_every", "ckpt.every", "ckpt.keep",        /* what it records, how often */
    "guard.spike", "guard.window",        "guard.max_rollbacks",            /* when a step is a divergence */
    "sample.every", "sample.steps",                                         /* its pictures (own Philox key) */
    "eval.every",  "eval.n",     "eval.steps", "eval.data", "eval.evaluator", /* its held-out metrics (own key) */
    "watchdog.seconds",                                                     /* when a hung rank ends the job */
    NULL};

int resume_free_key(const char *key) {
  if (cfg_is_testing_key(key)) return 1;
  for (int i = 0; free_keys[i]; i++)
    if (strcmp(free_keys[i], key) == 0) return 1;
  return 0;
}

/* Whether the comma-separated list names key. */
static int listed(const char *list, const char *key) {
  size_t n = strlen(key);
  for (const char *p = list; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && strncmp(p, key, n) == 0) return 1;
    p = comma ? comma + 1 : NULL;
  }
  return 0;
}

/* Every name in resume.allow must be a key of the command: a typo would allow nothing. */
static void check_allow(const char *allow, const cfg_key *keys) {
  for (const char *p = allow; p && *p;) {
    const char *comma = strchr(p, ',');
    int len = (int)(comma ? (size_t)(comma - p) : strlen(p));
    int known = 0;
    for (const cfg_key *k = keys; k->key && !known; k++)
      known = (int)strlen(k->key) == len && strncmp(k->key, p, (size_t)len) == 0;
    if (!known)
      amd_usage_error("config key 'resume.allow' = '%s': '%.*s' is not a key of this command (a comma-separated list of "
                      "keys, e.g. resume.allow=train.steps,optim.lr)", allow, len, p);
    p = comma ? comma + 1 : NULL;
  }
}

/* Appends s to a growing text of *len characters. */
static void add_text(char **text, size_t *len, const char *s) {
  size_t n = strlen(s);
  char *t = realloc(*text, *len + n + 1);
  CHECK(t, "out of memory");
  memcpy(t + *len, s, n + 1);
  *text = t, *len += n;
}
static void add_line(char **text, size_t *len, const char *line) {
  add_text(text, len, line);
  add_text(text, len, "\n");
}

/* The texts resume_check grows: allowed changes (events), refused ones, and the keys to allow. */
typedef struct {
  char **events;
  size_t *nevents;
  char **refused;
  size_t *nrefused;
  char **names;
  size_t *nnames;
} Texts;

/* The content of an input (key `key`, a `what` at path) against the checkpoint's attribute
 * `attr`: an event when resume.allow names the key, else a refused change. Not compared when
 * either side has no fingerprint (an older file, or now NULL). */
static void compare_content(Texts *t, const char *ckpt_path, const char *allow, const char *key, const char *what,
                            const char *path, const char *now, const char *attr) {
  char *recorded = ckpt_read_attr(ckpt_path, attr);
  char why[512], line[5200];
  int differs = now && now[0] && recorded[0] && strcmp(now, recorded) != 0;
  if (differs && strcmp(key, "data") == 0) dataset_fingerprint_differs(now, recorded, why, sizeof why);
  else if (differs) snprintf(why, sizeof why, "it holds %s; recorded: %s", now, recorded);
  if (differs) {
    if (listed(allow, key)) {
      snprintf(line, sizeof line, "resume: %s '%s': %s (resume.allow)", key, path, why);
      add_line(t->events, t->nevents, line);
    } else {
      snprintf(line, sizeof line, "  the %s '%s' is not the one the checkpoint records: %s", what, path, why);
      add_line(t->refused, t->nrefused, line);
      if (!listed(*t->names, key)) {
        if (*t->nnames) add_text(t->names, t->nnames, ",");
        add_text(t->names, t->nnames, key);
      }
    }
  }
  free(recorded);
}

char *resume_check(const char *ckpt_path, const char *allow, const cfg_key *keys, const void *config,
                   const char *data_path, const char *data_fingerprint, const char *teacher_path,
                   const char *teacher_fingerprint) {
  check_allow(allow, keys);
  char *events = callocCheck(1, 1), *refused = callocCheck(1, 1), *names = callocCheck(1, 1);
  size_t nevents = 0, nrefused = 0, nnames = 0;
  char line[2 * CFG_VALUE_MAX + 600];
  char *text = ckpt_read_attr(ckpt_path, "config");
  enum { MAX_CHANGES = 256 };
  CfgChange *ch = mallocCheck(sizeof *ch * MAX_CHANGES);
  int n = text[0] ? cfg_diff(keys, config, text, ch, MAX_CHANGES) : 0;
  for (int i = 0; i < n && i < MAX_CHANGES; i++) {
    if (resume_free_key(ch[i].key)) continue;
    if (listed(allow, ch[i].key)) {
      snprintf(line, sizeof line, "resume: %s %s -> %s (resume.allow)", ch[i].key, ch[i].was, ch[i].now);
      add_line(&events, &nevents, line);
    } else {
      snprintf(line, sizeof line, "  %s: %s -> %s", ch[i].key, ch[i].was, ch[i].now);
      add_line(&refused, &nrefused, line);
      if (nnames) add_text(&names, &nnames, ",");
      add_text(&names, &nnames, ch[i].key);
    }
  }
  Texts t = {&events, &nevents, &refused, &nrefused, &names, &nnames};
  compare_content(&t, ckpt_path, allow, "data", "dataset", data_path, data_fingerprint, "data_fingerprint");
  compare_content(&t, ckpt_path, allow, "teacher", "teacher checkpoint", teacher_path, teacher_fingerprint,
                  "teacher_fingerprint");
  if (nrefused)
    amd_usage_error("resume=1: these settings differ from the run that checkpoint '%s' records, and would change it:\n%s"
                    "Resume with the run's own settings, pass resume.allow=%s to change them on purpose (the log's "
                    "/events records it), or start a new run=",
                    ckpt_path, refused, names);
  free(ch), free(text), free(refused), free(names);
  return events;
}
