/* ckpt.h: checkpoint files (DESIGN section 6). One file per saved step, run_dir/ckpt_<step>.h5,
 * holding for each network /<net>/params, /<net>/adam_m, /<net>/adam_v as 1-D global vectors, the
 * tensor layout /<net>/layout and the architecture as attributes of /<net>; and the training
 * position as attributes of the root (step, seed, data_cursor, rng counters). Every rank opens the
 * file through MPI-IO and writes its shard (zero_shard) of each vector as a hyperslab in one
 * collective transfer; the file is written under a .tmp name and renamed by rank 0 once every rank
 * has closed it and it is synced, so a crash at any moment leaves the previous checkpoint whole.
 * The vectors are global, so any rank count and ZeRO stage loads them: each rank reads the whole
 * parameter vector and the range of the moments its AdamW covers. Not here: which networks a
 * command saves. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"

typedef struct {
  const char *name; /* "teacher", "student", "fake", ... */
  Model *model;
  AdamW *opt;       /* NULL: parameters only; else the moments of the range it covers (all, or a
                       ZeRO shard that contains this rank's zero_shard) */
} CkptNet;

typedef struct {
  long step;        /* optimizer steps completed */
  uint64_t seed;
  long data_cursor; /* global samples consumed */
  long counters[4]; /* method-specific: distillation stores [fake updates, student steps S] */
  char teacher[1024]; /* distillation: the teacher checkpoint the run started from ("" otherwise) */
} CkptState;

/* Called by every rank (collective); every rank returns after the file is complete. Keeps the
 * newest `keep` files. */
void ckpt_save(const char *run_dir, const CkptState *st, const CkptNet *nets, int nnets,
               const char *config_text, const char *data_path, int keep);
/* Newest complete checkpoint in run_dir: returns its step and fills path, or -1 when none. */
long ckpt_latest(const char *run_dir, char *path, size_t n);
/* A checkpoint named by the user: a file as given, or a run folder's newest checkpoint (fatal when
 * the folder holds none). */
void ckpt_resolve(const char *file_or_run, char *path, size_t n);
/* Loads every listed net (architecture and layout must match) and the state: the parameters whole,
 * the moments of the range each opt covers. A net whose opt is NULL loads parameters only. Needs no
 * other rank (and no MPI). */
void ckpt_load(const char *path, CkptState *st, const CkptNet *nets, int nnets);
/* Whether the checkpoint holds a network of that name. */
int ckpt_has_net(const char *path, const char *net);
/* Architecture of one net, to build the model before loading. */
void ckpt_read_model_config(const char *path, const char *net, ModelConfig *cfg);
/* Stops with a usage error when run_dir already holds a checkpoint or the given log file: a fresh
 * run never overwrites another; resume=1 continues it. */
void ckpt_refuse_existing_run(const char *run_dir, const char *log_path);
/* A string attribute of the checkpoint's root ("" when absent), e.g. "data" (the dataset the run
 * was trained on) or "teacher"; caller frees. */
char *ckpt_read_attr(const char *path, const char *name);
