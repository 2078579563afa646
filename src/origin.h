/* origin.h: fills the provenance record of io/provenance.h, which every file written afterwards
 * carries at its root (docs/DESIGN.md section 6.1): the commit the binary was built from (the
 * Makefile's generated build/gen/commit.c), the host, the Slurm job, array and restart ids, the rank
 * count (origin_init, at start-up); the backend, device, precision and threads (origin_backend, from
 * backend_init); and the absolute path of every input file a command's config names
 * (origin_inputs, which origin_init installs as cfg_parse_args's hook).
 * Not here: writing the attributes (io/h5.c does, through io/provenance.c).
 * Return convention: nothing here fails; a value that cannot be found is recorded as "". */
#pragma once

#include "config.h"

/* The commit of the build: `git describe --always --dirty`, or "unknown" outside git. */
extern const char amd_commit[];

/* After MPI is up: commit, host, Slurm ids, ranks, and the defaults backend "none" (the command
 * runs no network), device "none", threads = OpenMP's default; installs origin_inputs. */
void origin_init(void);
/* The backend chosen ("cpu", "cuda"), its device description (NULL: the CPU's model), the
 * precision of its GEMMs ("fp32", "tf32", "bf16") and the OpenMP threads per rank. */
void origin_backend(const char *backend, const char *device, const char *precision, int threads);
/* Records input.<key> = the absolute path of each non-empty key of the table that names an input
 * file or folder (data, test_data, teacher, ckpt, samples, evaluator, reward, reward.ckpt, and the
 * sources of amd data: dir, in, labels), and input.config = the config file's (NULL: none). */
void origin_inputs(const cfg_key *keys, const void *cfg, const char *config_file);
