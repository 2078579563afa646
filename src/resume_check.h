/* resume_check.h: what a resume may change (docs/DESIGN.md section 8.8). A resumed run must go on
 * as the run its checkpoint recorded: the new configuration is compared key by key with the
 * checkpoint's config text, and the dataset it reads with the checkpoint's data_fingerprint. Keys
 * that cannot change the trajectory (where and on what it runs, how often it logs and checkpoints,
 * the divergence guard's triggers, the testing fault.* keys: resume_free_key, one list) may change
 * freely; a change of any other key, or other data, is refused with every changed key and its old
 * and new value, unless resume.allow= names the key ("data" also allows other content in the same
 * file). Not here: which checkpoint a run resumes from (src/runloop.h), the architecture check on
 * load (src/model_ckpt.h).
 * Return convention: a refusal stops the program with a usage error (exit 2). */
#pragma once
#include "config.h"

/* 1 when a change of this key cannot alter a run's trajectory, so a resume may change it. */
int resume_free_key(const char *key);
/* Compares checkpoint ckpt_path's config text, data_fingerprint and teacher_fingerprint with the
 * present keys and config, with data_fingerprint (of data_path) and with teacher_fingerprint (of
 * teacher_path, distillation: io/ckpt.h ckpt_net_fingerprint; NULL: not compared; "teacher" in
 * resume.allow lets another teacher content through). allow: resume.allow's
 * value, comma-separated keys of the table. Returns the allowed changes, one line each,
 * "resume: <key> <old> -> <new> (resume.allow)", for the log's /events (caller frees; "" when
 * none); refuses every other change. Needs no MPI: every rank comes to the same answer. */
char *resume_check(const char *ckpt_path, const char *allow, const cfg_key *keys, const void *config,
                   const char *data_path, const char *data_fingerprint, const char *teacher_path,
                   const char *teacher_fingerprint);
