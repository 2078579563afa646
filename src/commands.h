/* commands.h: the subcommands of `amd`; each parses its own configuration from argv (what follows
 * the command name) and returns the process exit status.
 * Return convention: the exit status (0, AMD_EXIT_REQUEUE or AMD_EXIT_DIVERGED); errors stop
 * the program with theirs (amd_fatal: 1, amd_usage_error: 2). */
#pragma once

int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
