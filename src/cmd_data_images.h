/* cmd_data_images.h: the image kinds of `amd data` (cmd_data_images.c); cmd_data.c dispatches to
 * them. Each takes what follows the kind name and returns the exit status, like a command.
 * Return convention: the exit status (0 on success); errors stop the program with theirs. */
#pragma once

int data_fmnist(int argc, char **argv);
int data_import(int argc, char **argv);
