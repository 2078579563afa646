/* model_ckpt.h: networks to and from checkpoint files. A network is saved as its flat parameter
 * vector and, when it trains, its AdamW moments (io/ckpt.h stores them as global vectors), with its
 * architecture (ModelConfig) and tensor layout, so that any rank count and ZeRO stage loads it and
 * `amd sample` rebuilds it from the file alone. Each rank writes its ZeRO shard (mpi/zero.h) of
 * every vector, staged from backend memory one vector at a time.
 * Not here: which networks a command saves or when (src/runloop.h), the file format (io/ckpt.h).
 * Every function stops the program with an error naming the file and the network when it fails. */
#pragma once

#include "ckpt.h"
#include "ema.h"
#include "model.h"
#include "optim.h"

typedef struct {
  const char *name; /* "teacher", "student", "fake", ... */
  Model *model;
  AdamW *opt;       /* NULL: parameters only; else the moments of the range it covers (all, or a
                       ZeRO shard that contains this rank's zero_shard) */
  Ema *ema;         /* NULL: none; else the EMA of the parameters (core/ema.h), of a range as opt's,
                       saved as a network of its own, /<name>_ema (EMA_SUFFIX) */
} CkptNet;

/* The EMA of network /<net> is the network /<net>_ema: the same kind, architecture and layout, its
 * params the average; `amd sample` and `amd distill teacher=` read it as a network. */
#define EMA_SUFFIX "_ema"

/* Collective: writes run_dir/ckpt_<st->step>.h5 holding the nets and keeps the newest `keep`
 * checkpoints. Every rank returns after the file is complete. */
void model_ckpt_save(const char *run_dir, const CkptState *st, const CkptNet *nets, int nnets,
                     const char *config_text, const char *data_path, int keep);
/* Loads every listed net (architecture and layout must match) and the state: the parameters whole,
 * the moments of the range each opt covers, and the EMA of the range each ema covers. A net whose
 * opt is NULL loads parameters only. A checkpoint without /<net>_ema (written before EMA weights, or
 * with ema.decay = 0) starts the EMA from the loaded parameters, with a message. Needs no other
 * rank (and no MPI). */
void model_ckpt_load(const char *path, CkptState *st, const CkptNet *nets, int nnets);
/* The parameters of one net alone into m (a frozen teacher, a reward classifier, a sampler); for
 * its EMA weights name the network <net>_ema. */
void model_ckpt_load_params(const char *path, const char *net, Model *m);
/* Architecture of one net, to build the model before loading. */
void model_ckpt_config(const char *path, const char *net, ModelConfig *cfg);
