/* runlock.h: the lock of a run folder (docs/DESIGN.md section 8.2). Two jobs writing one run folder
 * (a second `amd train run=X resume=1` while the first still runs, or a resume that starts before
 * the ranks of a stopped job have finished writing) would interleave their logs and checkpoints, so
 * the rank-0 process of `amd train` and `amd distill` holds <run>/amd.lock while it writes: a file
 * made with O_EXCL holding its host, process id and Slurm job id. A lock is stale, and is removed
 * with a message, when its process is gone (same host, no such pid) or it belongs to an earlier
 * run of this same Slurm job (a requeue); any other lock is held and refused with a message naming
 * its owner. The lock goes when the run ends, also through amd_fatal; a kill -9 leaves a stale one.
 * Not here: what the folder holds (src/runloop.c). Return convention: runlock_take stops the program
 * with a usage error when the folder is locked; nothing else fails. */
#pragma once

/* Rank 0: takes the lock of the run folder run_dir (which must exist). */
void runlock_take(const char *run_dir);
/* Gives the lock back (nothing when this process holds none). */
void runlock_release(void);
