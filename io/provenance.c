/* provenance.c: the provenance record and its root attributes (provenance.h). */
#include "provenance.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MAX_ENTRIES 48

static ProvenanceAttr record[MAX_ENTRIES];
static int nrecord;

static ProvenanceAttr *slot(const char *key) {
  for (int k = 0; k < nrecord; k++)
    if (strcmp(record[k].key, key) == 0) return &record[k];
  CHECK(nrecord < MAX_ENTRIES, "provenance: more than %d attributes (at '%s')", MAX_ENTRIES, key);
  ProvenanceAttr *e = &record[nrecord++];
  snprintf(e->key, sizeof e->key, "%s", key);
  return e;
}

void provenance_set_str(const char *key, const char *value) {
  ProvenanceAttr *e = slot(key);
  e->is_int = 0;
  snprintf(e->s, sizeof e->s, "%s", value ? value : "");
}

void provenance_set_i64(const char *key, long long value) {
  ProvenanceAttr *e = slot(key);
  e->is_int = 1, e->i = value;
}

int provenance_size(void) { return nrecord; }

const ProvenanceAttr *provenance_at(int i) { return &record[i]; }

void provenance_share(void) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return;
  CHECK(MPI_Bcast(&nrecord, 1, MPI_INT, 0, MPI_COMM_WORLD) == MPI_SUCCESS &&
            MPI_Bcast(record, (int)(sizeof(ProvenanceAttr) * (size_t)nrecord), MPI_BYTE, 0, MPI_COMM_WORLD) == MPI_SUCCESS,
        "provenance: cannot broadcast rank 0's record");
}
