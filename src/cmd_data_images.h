/* cmd_data_images.h: the image kinds of `amd data` (cmd_data_images.c; compose in
 * cmd_data_compose.c); cmd_data.c dispatches to them. Each takes what follows the kind name and returns the exit status, like a command.
 * Return convention: the exit status (0 on success); errors stop the program with theirs. */
#pragma once

int data_fmnist(int argc, char **argv);
int data_import(int argc, char **argv);
int data_compose(int argc, char **argv);
int data_cells(int argc, char **argv); /* cmd_data_cells.c */

/* Fashion-MNIST's class names in label order, comma-separated (a dataset's class_names). */
extern const char fmnist_class_names[];
