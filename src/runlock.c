/* runlock.c: the lock of a run folder (runlock.h). */
#include "runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static char held[4200]; /* the lock file this process holds ("" when none) */

typedef struct {
  char host[256], job[64];
  long pid;
} Owner;

static void this_owner(Owner *o) {
  memset(o, 0, sizeof *o);
  if (gethostname(o->host, sizeof o->host - 1) != 0) snprintf(o->host, sizeof o->host, "unknown");
  const char *job = getenv("SLURM_JOB_ID");
  snprintf(o->job, sizeof o->job, "%s", job && *job ? job : "-");
  o->pid = (long)getpid();
}

/* The owner written in a lock file; 0 when it cannot be read (being written, or damaged). */
static int read_owner(const char *path, Owner *o) {
  memset(o, 0, sizeof *o);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = fscanf(f, "host %255s pid %ld job %63s", o->host, &o->pid, o->job);
  fclose(f);
  return n == 3;
}

/* Whether the lock's owner is gone: its process on this host has ended, or it is an earlier run
 * of this Slurm job (requeued, perhaps on another node). */
static int stale(const Owner *lock, const Owner *me) {
  if (strcmp(lock->job, "-") != 0 && strcmp(lock->job, me->job) == 0 && lock->pid != me->pid) return 1;
  return strcmp(lock->host, me->host) == 0 && kill((pid_t)lock->pid, 0) != 0 && errno == ESRCH;
}

void runlock_take(const char *run_dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/amd.lock", run_dir);
  Owner me;
  this_owner(&me);
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      char text[512];
      int n = snprintf(text, sizeof text, "host %s pid %ld job %s\n", me.host, me.pid, me.job);
      if (write(fd, text, (size_t)n) != n || close(fd) != 0) {
        unlink(path);
        amd_fatal("cannot write the lock file '%s': %s", path, strerror(errno));
      }
      snprintf(held, sizeof held, "%s", path);
      return;
    }
    if (errno != EEXIST) amd_fatal("cannot create the lock file '%s': %s", path, strerror(errno));
    Owner lock;
    if (!read_owner(path, &lock))
      amd_usage_error("run folder '%s' is locked by '%s', which cannot be read; if no job uses the folder, "
                      "remove that file", run_dir, path);
    char job[96] = "";
    if (strcmp(lock.job, "-") != 0) snprintf(job, sizeof job, ", Slurm job %s", lock.job);
    if (!stale(&lock, &me))
      amd_usage_error("run folder '%s' is in use by process %ld on host %s%s (lock file '%s'): wait for it to end, "
                      "or choose another run=; remove the lock file only if that process is gone",
                      run_dir, lock.pid, lock.host, job, path);
    amd_log("run folder %s: removing the stale lock of process %ld on host %s%s, which has ended\n", run_dir, lock.pid,
            lock.host, job);
    if (unlink(path) != 0 && errno != ENOENT) amd_fatal("cannot remove the stale lock '%s': %s", path, strerror(errno));
  }
  amd_usage_error("run folder '%s': another process took the lock '%s' as this one removed a stale one", run_dir, path);
}

void runlock_release(void) {
  if (!held[0]) return;
  unlink(held);
  held[0] = '\0';
}
