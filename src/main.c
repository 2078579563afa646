/* main.c: the `amd` program: MPI setup and the subcommand table. Start reading here; each command
 * lives in src/cmd_<name>.c and names the pieces it uses. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "config.h"
#include "dist.h"
#include "origin.h"
#include "runctl.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} commands[] = {
    {"data", cmd_data, "write a dataset file (toy2d, fmnist, import, compose, cells)"},
    {"train", cmd_train, "train a network (task=teacher: rectified-flow teacher)"},
    {"distill", cmd_distill, "distill a teacher into an S-step student (method=dmd|dmd2|dmdr|amd)"},
    {"sample", cmd_sample, "sample a trained network (Euler or Heun, N steps, CFG) to a samples file"},
    {"eval", cmd_eval, "metrics of a samples file against its dataset"},
    {"info", cmd_info, "summarize any amd file (dataset, checkpoint, log, samples, eval) or run folder"},
    {"export", cmd_export, "write the tables of any amd file as CSV or JSON (for pandas, spreadsheets)"},
};

static void usage(FILE *out) {
  fprintf(out, "amd %s: adaptive matching distillation of diffusion models (MPI + OpenMP + HDF5)\n\n"
               "usage: amd <command> [FILE.cfg] [key=value ...]   (amd <command> --help lists the keys)\n\n",
          AMD_VERSION);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  /* beyond a file-size limit (ulimit -f) a write fails (EFBIG) and is reported naming the file,
   * instead of SIGXFSZ killing the process */
  signal(SIGXFSZ, SIG_IGN);
  /* the training loops stop cleanly on SIGUSR1, SIGTERM, SIGINT and SIGHUP (runctl.h); the handlers
   * go in before MPI starts, so a signal during start-up is not lost. Other commands keep the default
   * actions. */
  if (argc > 1 && (strcmp(argv[1], "train") == 0 || strcmp(argv[1], "distill") == 0)) runctl_install_signals();
  dist_init(&argc, &argv);
  origin_init(); /* the provenance every file written carries (io/provenance.h) */
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    if (dist_rank() == 0) usage(argc < 2 ? stderr : stdout);
    dist_finalize();
    return argc < 2 ? AMD_EXIT_USAGE : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    if (dist_rank() == 0) printf("amd %s\n", AMD_VERSION);
    dist_finalize();
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(argv[1], commands[i].name) == 0) {
      int status = commands[i].run(argc - 2, argv + 2);
      dist_finalize();
      return status;
    }
  }
  const char *names[sizeof commands / sizeof commands[0]];
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) names[i] = commands[i].name;
  const char *hint = cfg_nearest(argv[1], names, (int)(sizeof names / sizeof names[0]));
  if (hint) amd_usage_error("unknown command '%s'; did you mean '%s'? (amd --help lists the commands)", argv[1], hint);
  if (dist_rank() == 0) usage(stderr);
  amd_usage_error("unknown command '%s'", argv[1]);
}
