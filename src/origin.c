/* origin.c: what the provenance record holds, found at start-up (origin.h). */
#include "origin.h"

#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "provenance.h"

/* The config keys that name an input file or folder besides the CFG_PATH ones (amd data's inputs are
 * plain strings). Outputs (out, png, run) are not inputs. */
static const char *const input_keys[] = {"data", "test_data", "teacher", "ckpt", "samples", "evaluator",
                                         "reward", "reward.ckpt", "dir", "in", "labels"};

static void env(const char *attr, const char *var) {
  const char *v = getenv(var);
  provenance_set_str(attr, v ? v : "");
}

void origin_init(void) {
  provenance_set_str("commit", amd_commit);
  char host[256] = "";
  if (gethostname(host, sizeof host) != 0) host[0] = '\0';
  host[sizeof host - 1] = '\0';
  provenance_set_str("host", host);
  env("slurm_job_id", "SLURM_JOB_ID");
  env("slurm_array_job_id", "SLURM_ARRAY_JOB_ID");
  env("slurm_array_task_id", "SLURM_ARRAY_TASK_ID");
  env("slurm_restart_count", "SLURM_RESTART_COUNT");
  provenance_set_i64("ranks", dist_size());
  provenance_set_i64("threads", omp_get_max_threads());
  provenance_set_str("backend", "none");
  provenance_set_str("device", "none");
  cfg_set_parsed_hook(origin_inputs);
}

/* The CPU's model name from /proc/cpuinfo, or "cpu". */
static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "cpu");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) != 0 || !colon) continue;
    colon += 1 + (colon[1] == ' ');
    colon[strcspn(colon, "\n")] = '\0';
    snprintf(out, n, "%s", colon);
    break;
  }
  fclose(f);
}

void origin_backend(const char *backend, const char *device, const char *precision, int threads) {
  char cpu[256];
  if (!device) cpu_model(cpu, sizeof cpu), device = cpu;
  provenance_set_str("backend", backend);
  provenance_set_str("device", device);
  provenance_set_str("precision", precision);
  provenance_set_i64("threads", threads);
}

static void input(const char *key, const char *value) {
  char attr[128], abs[PATH_MAX];
  snprintf(attr, sizeof attr, "input.%s", key);
  provenance_set_str(attr, realpath(value, abs) ? abs : value); /* a missing one fails later, by name */
}

void origin_inputs(const cfg_key *keys, const void *cfg, const char *config_file) {
  if (config_file) input("config", config_file);
  for (const cfg_key *k = keys; k->key; k++) {
    if (k->type != CFG_STR && k->type != CFG_PATH) continue;
    int is_input = k->type == CFG_PATH; /* every path key is an input (src/config.h) */
    for (size_t i = 0; !is_input && i < sizeof input_keys / sizeof input_keys[0]; i++)
      is_input = strcmp(k->key, input_keys[i]) == 0;
    const char *value = (const char *)cfg + k->offset;
    if (is_input && value[0]) input(k->key, value);
  }
}
