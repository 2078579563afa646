/* ckpt.h: checkpoint files (docs/DESIGN.md section 6). One file per saved step,
 * run_dir/ckpt_<step>.h5: the training position as attributes of the root (step, seed, data_cursor,
 * data, data_fingerprint, teacher, teacher_fingerprint, time) and /counters; for each network a group /<net> holding 1-D
 * global vectors (params, adam_m, adam_v), the tensor layout /<net>/layout and the architecture as
 * attributes of /<net>.
 * Every rank opens the file through MPI-IO and writes its part of each vector as a hyperslab in one
 * collective transfer; the file is written under a .tmp name and renamed by rank 0 once every rank
 * has closed it and it is synced, so a crash at any moment leaves the previous checkpoint whole. The
 * vectors are global, so any rank count and ZeRO stage loads them. Every dataset (the vectors,
 * /counters, each layout) carries a `checksum` attribute (uint64; docs/DESIGN.md section 6.3), which
 * ranks compute over their own ranges and add up, and ckpt_validate checks; a checkpoint written
 * before checksums has none and still loads.
 * This layer knows files, not models: it takes host buffers and ranges, and the caller (src/
 * model_ckpt.c) says which networks, which part each rank writes and what their attributes are.
 * Not here: which networks a command saves, when, or which checkpoint a run goes back to.
 * Returns: lookups return -1 (or 0 for has_) when there is nothing; anything else that goes wrong
 * (a missing, truncated or foreign file, a full disk) stops the program with an error naming it. */
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_NAME_MAX 48 /* a layout row's tensor name, with its terminator */

/* The training position a checkpoint records (the root's attributes and /counters). */
typedef struct {
  long step;          /* optimizer steps completed */
  uint64_t seed;
  long data_cursor;   /* global samples consumed */
  long fake_updates;  /* distillation: fake-teacher updates done (step x fake_per_gen) */
  long student_steps; /* distillation: S of the student */
  long rollbacks;     /* divergence rollbacks done by the run so far (src/runctl.h) */
  double time;        /* seconds of training so far, summed over resumes (the log's time column) */
  char teacher[1024]; /* distillation: the teacher checkpoint the run started from ("" otherwise) */
  char data_fingerprint[128]; /* of the dataset the run reads (io/dataset.h; "" in older files) */
  char teacher_fingerprint[64]; /* distillation: ckpt_net_fingerprint of the teacher ("" in older files) */
} CkptState;

/* One row of /<net>/layout: a tensor's name, offset in the flat vector and shape. */
typedef struct {
  char name[CKPT_NAME_MAX];
  long long offset;
  int ndim;
  int shape[4];
} CkptTensor;

/* An integer attribute of a network group (its architecture). */
typedef struct {
  const char *key;
  long long value;
} CkptAttr;

/* --- writing: collective, every rank calls the same functions in the same order ---------------- */
typedef struct {
  char path[4200], tmp[4300], run_dir[4096];
  long step;
  hid_t file, net;
} CkptWriter;

/* Creates run_dir/ckpt_<st->step>.h5.tmp with the state; data_path is the dataset the run reads. */
void ckpt_begin(CkptWriter *w, const char *run_dir, const CkptState *st, const char *config_text,
                const char *data_path);
/* Opens the group of one network: its kind and architecture attributes. */
void ckpt_begin_net(CkptWriter *w, const char *net, const char *kind, const CkptAttr *attrs, int nattrs);
/* The global vector `name` of n values: this rank writes values [begin, begin + count) from host;
 * the ranks' ranges together cover it (the checksum is the sum of theirs). */
void ckpt_write_vector(CkptWriter *w, const char *name, const float *host, long n, long begin, long count);
/* The network's layout; rank 0's rows are written (other ranks may pass theirs, unused). */
void ckpt_write_layout(CkptWriter *w, const CkptTensor *rows, int nrows);
void ckpt_end_net(CkptWriter *w);
/* Completes the file: flush, close, sync, rename into place by rank 0, then keeps the newest `keep`
 * checkpoints of the folder: only files whose step attribute is their name's and at most this
 * step count and are removed (a misnamed copy, an unreadable file or a newer checkpoint is left
 * alone, with a note). Every rank returns after the file is complete. */
void ckpt_commit(CkptWriter *w, int keep);
/* Testing: a function called between the last write and the flush of every checkpoint, so a test
 * can kill the job there (NULL: none). */
void ckpt_set_pause_hook(void (*hook)(void));

/* --- reading: any rank, no MPI ------------------------------------------------------------------ */
/* Opens a checkpoint (fatal unless it is one). */
hid_t ckpt_open(const char *path);
void ckpt_close(hid_t f);
void ckpt_read_state(hid_t f, const char *path, CkptState *st);
/* The kind of a network (caller frees); fatal when the network is missing. */
char *ckpt_net_kind(hid_t f, const char *path, const char *net);
/* An integer attribute of a network; when absent, fatal if `required`, else 0 (fields added
 * later, e.g. the image ones). */
long long ckpt_net_attr(hid_t f, const char *net, const char *key, int required);
/* Values [begin, begin + count) of the network's global vector `name` into host; fatal unless the
 * vector has n values. */
void ckpt_read_vector(hid_t f, const char *path, const char *net, const char *name, long n, long begin, long count,
                      float *host);

/* --- files of a run folder ---------------------------------------------------------------------- */
/* The steps of run_dir's checkpoints (by file name), ascending, at most max; returns their count. */
int ckpt_list(const char *run_dir, long *steps, int max);
/* Whether a checkpoint file can be trusted: 0 when it opens, its step attribute is `step` (the one
 * in its name; step < 0: any step >= 0, for a file named by the user), its counters are counts,
 * every network's vectors have num_params finite values (adam_v none negative) and every dataset
 * that carries a checksum matches it; else nonzero, with the first problem in why. Never fatal.
 * Reads every vector whole: a resume or rollback pays one more read of the checkpoint. */
int ckpt_validate(const char *path, long step, char *why, size_t n);
/* Told of each checkpoint ckpt_newest_good passes over, with the reason. */
typedef void (*CkptPassedOver)(void *ctx, const char *path, const char *why);
/* The newest checkpoint of run_dir that ckpt_validate trusts: its step (and path); -1 when the
 * folder holds none, -2 when each is damaged. Newest by step: a trusted file's step attribute is the
 * one in its name, so a copy named ckpt_99999999.h5 holding step 300 is passed over, not taken.
 * passed (may be NULL) hears of each damaged one passed over, newest first. Any rank, no MPI. */
long ckpt_newest_good(const char *run_dir, char *path, size_t n, CkptPassedOver passed, void *ctx);
/* ckpt_newest_good with a message for each one passed over (rank 0 prints): the step, or -1 when
 * the folder holds no checkpoint that can be trusted. */
long ckpt_latest(const char *run_dir, char *path, size_t n);
/* A checkpoint named by the user: a file as given, or a run folder's newest trusted checkpoint
 * (ckpt_latest: a damaged newer one is passed over with a message). Fatal when the file is damaged
 * (ckpt_validate) or the folder holds none to trust. Any rank, no MPI: this rank reads the files. */
void ckpt_resolve(const char *file_or_run, char *path, size_t n);
/* The same, collective: rank 0 reads the files and broadcasts the path (every rank calls it). */
void ckpt_resolve_shared(const char *file_or_run, char *path, size_t n);
/* Whether the checkpoint file holds a network of that name (1) or not (0). */
int ckpt_has_net(const char *path, const char *net);
/* A string attribute of the checkpoint's root ("" when absent), e.g. "data" (the dataset the run
 * was trained on) or "teacher"; caller frees. */
char *ckpt_read_attr(const char *path, const char *name);
/* The content of network `net` of a checkpoint file, as text: "<num_params> params, checksum <hex>"
 * from the checksum attribute of /<net>/params; "" for a checkpoint written before checksums. A
 * distillation records its teacher's, so a resume can tell a replaced teacher file. */
void ckpt_net_fingerprint(const char *path, const char *net, char *out, size_t n);
