/* provenance.c: the provenance record and its root attributes (provenance.h). */
#include "provenance.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "h5.h"

#define MAX_ENTRIES 48

typedef struct {
  char key[64];
  int is_int;
  long long i;
  char s[4096];
} Entry;

static Entry record[MAX_ENTRIES];
static int nrecord;

static Entry *slot(const char *key) {
  for (int k = 0; k < nrecord; k++)
    if (strcmp(record[k].key, key) == 0) return &record[k];
  CHECK(nrecord < MAX_ENTRIES, "provenance: more than %d attributes (at '%s')", MAX_ENTRIES, key);
  Entry *e = &record[nrecord++];
  snprintf(e->key, sizeof e->key, "%s", key);
  return e;
}

void provenance_set_str(const char *key, const char *value) {
  Entry *e = slot(key);
  e->is_int = 0;
  snprintf(e->s, sizeof e->s, "%s", value ? value : "");
}

void provenance_set_i64(const char *key, long long value) {
  Entry *e = slot(key);
  e->is_int = 1, e->i = value;
}

void provenance_write(hid_t file, int parallel) {
  if (parallel) {
    int init = 0;
    MPI_Initialized(&init);
    if (init) {
      /* rank 0's record becomes every rank's: the attributes of a parallel file must agree */
      CHECK(MPI_Bcast(&nrecord, 1, MPI_INT, 0, MPI_COMM_WORLD) == MPI_SUCCESS &&
                MPI_Bcast(record, (int)(sizeof(Entry) * (size_t)nrecord), MPI_BYTE, 0, MPI_COMM_WORLD) == MPI_SUCCESS,
            "provenance: cannot broadcast rank 0's record");
    }
  }
  for (int k = 0; k < nrecord; k++) {
    if (record[k].is_int) h5_attr_write_i64(file, record[k].key, record[k].i);
    else h5_attr_write_str(file, record[k].key, record[k].s);
  }
}
