/* provenance.h: where a file comes from, written at the root of every amd file (docs/DESIGN.md
 * section 6.1): the commit the binary was built from, the host, the Slurm job, array task and
 * restart count, the rank and thread counts, the backend and device, and the absolute paths of the
 * inputs. A process-wide record: src/ fills it at start-up (src/origin.c) and h5_create and
 * h5_create_parallel write it, so no command writes it itself. A parallel file takes rank 0's
 * record (every rank must write the same attributes), broadcast when the file is created.
 * Not here: finding the values (the environment, the backend, the config): io/ cannot see them.
 * Return convention: setters ignore nothing and fail only when the record is full (fatal). */
#pragma once
#include <hdf5.h>

/* Sets (or replaces) a string or integer root attribute of every file created from now on. */
void provenance_set_str(const char *key, const char *value);
void provenance_set_i64(const char *key, long long value);
/* Writes the record's attributes to the root of a new file; parallel: every rank calls it and rank
 * 0's record is used (a collective broadcast first). */
void provenance_write(hid_t file, int parallel);
