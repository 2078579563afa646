/* provenance.h: where a file comes from, written at the root of every amd file (docs/DESIGN.md
 * section 6.1): the commit the binary was built from, the host, the Slurm job, array task and
 * restart count, the rank and thread counts, the backend and device, and the absolute paths of the
 * inputs. A process-wide record: src/ fills it at start-up (src/origin.c) and h5_create and
 * h5_create_parallel write it (io/h5.c), so no command writes it itself. A parallel file takes rank
 * 0's record (every rank must write the same attributes): provenance_share broadcasts it.
 * Not here: finding the values (the environment, the backend, the config): io/ cannot see them;
 * writing them (io/h5.c).
 * Return convention: the setters fail only when the record is full (fatal). */
#pragma once

typedef struct {
  char key[64]; /* the root attribute's name */
  int is_int;   /* 1: the value is i, else s */
  long long i;
  char s[4096];
} ProvenanceAttr;

/* Sets (or replaces) a string or integer root attribute of every file created from now on. */
void provenance_set_str(const char *key, const char *value);
void provenance_set_i64(const char *key, long long value);
/* The record: its size and its attributes in the order they were first set. */
int provenance_size(void);
const ProvenanceAttr *provenance_at(int i);
/* Collective when MPI runs: rank 0's record becomes every rank's (a parallel file's attributes
 * must agree); without MPI nothing happens. */
void provenance_share(void);
