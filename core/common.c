/* common.c: the fatal-error path, checked allocation and small utilities. */
#include "common.h"

#include <errno.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int amd_rank(void) {
  int init = 0, fin = 0, rank = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

static void (*fatal_hook)(void);

void amd_at_fatal(void (*hook)(void)) { fatal_hook = hook; }

void amd_fatal_at(const char *file, int line, int status, const char *fmt, ...) {
  char msg[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int init = 0, fin = 0, size = 1;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Comm_size(MPI_COMM_WORLD, &size);
  fflush(stdout);
  if (file) fprintf(stderr, "amd: error: %s\n  (rank %d, %s:%d)\n", msg, amd_rank(), file, line);
  else if (size > 1) fprintf(stderr, "amd: error: %s\n  (rank %d)\n", msg, amd_rank());
  else fprintf(stderr, "amd: error: %s\n", msg);
  fflush(stderr);
  void (*hook)(void) = fatal_hook;
  fatal_hook = NULL; /* once: a failure inside the hook ends the program without it */
  if (hook) hook();
  MPI_Finalized(&fin);
  /* Several ranks: take every rank down. One rank: end here, without MPI_Finalize or exit()'s
   * handlers: both make HDF5 close the files still open, and closing one that cannot be flushed (a
   * full disk, a file-size limit) crashes inside MPI_Finalize (SIGSEGV in H5F__close_cb). Nothing
   * needs that close: a checkpoint is published by its rename only once whole, and the log is kept
   * whole by its two copies (docs/DESIGN.md sections 6.3, 6.4). The exit status is ours either way,
   * also under mpirun. */
  if (init && !fin && size > 1) MPI_Abort(MPI_COMM_WORLD, status);
  _exit(status);
}

long amd_mul_checked(long a, long b, long limit, const char *what) {
  if (a < 0 || b < 0) amd_fatal("amd_mul_checked: negative factor %ld or %ld of %s", a, b, what);
  if (a != 0 && b > limit / a)
    amd_usage_error("%s is too large: %ld x %ld exceeds %ld; choose smaller values", what, a, b, limit);
  return a * b;
}

void *amd_malloc_at(size_t bytes, const char *file, int line) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) amd_fatal_at(file, line, AMD_EXIT_ERROR, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *amd_calloc_at(size_t n, size_t size, const char *file, int line) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) amd_fatal_at(file, line, AMD_EXIT_ERROR, "out of memory allocating %zu x %zu bytes", n, size);
  return p;
}

FILE *amd_fopen_at(const char *path, const char *mode, const char *file, int line) {
  FILE *f = fopen(path, mode);
  if (!f) amd_fatal_at(file, line, AMD_EXIT_ERROR, "cannot open '%s' (mode %s): %s", path, mode, strerror(errno));
  return f;
}

void amd_log(const char *fmt, ...) {
  if (amd_rank() != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

double amd_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int amd_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

void amd_mkdirs(const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  CHECK(n > 0 && n < sizeof buf, "directory path '%s' is empty or too long", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      amd_fatal("cannot create directory '%s': %s", buf, strerror(errno));
    buf[i] = c;
  }
}

void amd_mkdirs_parent(const char *file_path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", file_path);
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf) return;
  *slash = '\0';
  amd_mkdirs(buf);
}
