/* backend.c: picks the op table for `device = auto | cpu | cuda` and the thread count.
 * The CUDA backend is not built yet (issue 6): `device=cuda` is then a clear error, never a
 * silent fallback. OpenMP threads default to the cores of this node shared among its ranks, so
 * `mpirun -np 2` on two cores does not oversubscribe.
 * AMD_PROFILE=1 in the environment profiles any command: every op call is timed (ops_profile.h)
 * and rank 0 prints the per-op table to stderr when the program exits. */
#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "ops.h"
#include "ops_profile.h"

static int node_local_ranks(void) {
  MPI_Comm local;
  int n = 1;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
    MPI_Comm_size(local, &n);
    MPI_Comm_free(&local);
  }
  return n;
}

void ops_select(const char *device) {
  if (strcmp(device, "cpu") == 0 || strcmp(device, "auto") == 0) {
    ops = &ops_cpu;
    return;
  }
  if (strcmp(device, "cuda") == 0)
    amd_usage_error("device=cuda: this amd was built without the CUDA backend (build with `make CUDA=1` "
                    "on a machine with the CUDA toolkit), use device=cpu or device=auto");
  amd_usage_error("device='%s': expected auto, cpu or cuda", device);
}

static int profile_rank = -1; /* the rank, noted while MPI still runs (exit comes after MPI_Finalize) */

static void profile_report_at_exit(void) {
  if (profile_rank == 0) ops_profile_report(stderr);
}

int backend_init(const char *device, int threads) {
  ops_select(device);
  const char *profile = getenv("AMD_PROFILE");
  if (profile && strcmp(profile, "1") == 0 && profile_rank < 0) {
    profile_rank = amd_rank();
    ops_profile_enable();
    atexit(profile_report_at_exit);
  }
  if (threads <= 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    threads = (int)(cores / node_local_ranks());
    if (threads < 1) threads = 1;
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  return threads;
}
