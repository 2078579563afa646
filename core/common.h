/* common.h: error checking, allocation and small helpers shared by every file.
 * Every failure goes through amd_fatal_at, which ends the whole job (MPI_Abort when more than one
 * rank runs) so no rank is left waiting in a collective. An internal error (amd_fatal, CHECK) names
 * the source file and line; a user's mistake (amd_usage_error: a setting, exit 2; amd_input_error:
 * an input file that cannot be right, exit 1) names only the problem, and the rank when several run.
 * Not here: anything about models, files or parallelism beyond "stop everything, loudly".
 * Return convention (the project's; docs/DESIGN.md section 2.3): a function that can fail
 * without stopping the program returns 0 on success and nonzero on failure (NULL for a lookup that
 * finds nothing); a predicate returns 1 for true (amd_file_exists here); any other failure stops
 * the program through amd_fatal or amd_usage_error, defined here. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AMD_VERSION "0.1.0"

/* Exit statuses a wrapper script can tell apart:
 *   1 error (a message says what), 2 bad configuration or command line,
 *   3 training diverged (NaN/Inf or a loss spike) and the divergence guard's rollbacks are used up,
 *   75 stopped by a signal (SIGUSR1, SIGTERM, SIGINT, SIGHUP) after writing a checkpoint: continue
 *      with resume=1 (EX_TEMPFAIL of sysexits.h; jobs/slurm_lib.sh requeues the job after SIGUSR1). */
enum { AMD_EXIT_ERROR = 1, AMD_EXIT_USAGE = 2, AMD_EXIT_DIVERGED = 3, AMD_EXIT_REQUEUE = 75 };

/* file NULL: a user's mistake, reported without a source location. */
void amd_fatal_at(const char *file, int line, int status, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
/* A function amd_fatal_at calls once, before the program ends (releasing a lock, say); NULL: none. */
void amd_at_fatal(void (*hook)(void));
#define amd_fatal(...) amd_fatal_at(__FILE__, __LINE__, AMD_EXIT_ERROR, __VA_ARGS__)
#define amd_usage_error(...) amd_fatal_at(NULL, 0, AMD_EXIT_USAGE, __VA_ARGS__)
#define amd_input_error(...) amd_fatal_at(NULL, 0, AMD_EXIT_ERROR, __VA_ARGS__)

/* Usage: CHECK(cond, "message %d", x): aborts with the message when cond is false. */
#define CHECK(cond, ...) do { if (!(cond)) amd_fatal(__VA_ARGS__); } while (0)

void *amd_malloc_at(size_t bytes, const char *file, int line);
void *amd_calloc_at(size_t n, size_t size, const char *file, int line);
#define mallocCheck(bytes) amd_malloc_at((bytes), __FILE__, __LINE__)
#define callocCheck(n, size) amd_calloc_at((n), (size), __FILE__, __LINE__)

FILE *amd_fopen_at(const char *path, const char *mode, const char *file, int line);
#define fopenCheck(path, mode) amd_fopen_at((path), (mode), __FILE__, __LINE__)

/* The rank of this process (0 before MPI_Init), used to prefix messages. */
int amd_rank(void);
/* Prints on rank 0 only. */
void amd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

double amd_time(void); /* monotonic wall-clock seconds */

/* Creates a directory and its parents; fatal on failure. */
void amd_mkdirs(const char *path);
/* Creates the directory that will hold file_path, if any. */
void amd_mkdirs_parent(const char *file_path);
int amd_file_exists(const char *path);

/* a x b for a size made of settings (a, b >= 0): a usage error naming `what` (the keys, e.g.
 * "2 x train.prompts x amd.K, the real teacher's batch") when it exceeds `limit` (INT_MAX for a
 * count held in an int), before the product is used anywhere. */
long amd_mul_checked(long a, long b, long limit, const char *what);

static inline int amd_min_i(int a, int b) { return a < b ? a : b; }
static inline int amd_max_i(int a, int b) { return a > b ? a : b; }
