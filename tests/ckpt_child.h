/* ckpt_child.h: checkpoints in a unit test's scratch folder. model_ckpt_save ends in MPI_Barrier
 * and the unit tests never initialize MPI themselves (test_h5.c says why), so the save runs in a
 * child that initializes MPI and leaves by _exit.
 * Return convention: ckpt_save_in_child returns 1 when the child saved, 0 otherwise; scratch_make
 * stops the test program (CHECK) when it cannot make the folder. */
#pragma once
#include <ftw.h>
#include <mpi.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "model_ckpt.h"

/* a fresh folder /tmp/amd_test_NAME_XXXXXX into dir (size bytes) */
static inline void scratch_make(char *dir, size_t size, const char *name) {
  snprintf(dir, size, "/tmp/amd_test_%s_XXXXXX", name);
  CHECK(mkdtemp(dir), "cannot create a scratch folder under /tmp");
}

static inline int ckpt_save_in_child(const char *dir, CkptNet *nets, int n) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    MPI_Init(NULL, NULL);
    CkptState st = {.step = 1, .seed = 5};
    model_ckpt_save(dir, &st, nets, n, "", "", 1);
    MPI_Finalize();
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static inline int scratch_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* the folder and everything in it */
static inline void scratch_remove(const char *dir) { nftw(dir, scratch_remove_entry, 16, FTW_DEPTH | FTW_PHYS); }
