/* trainlog.h: the training log file (docs/DESIGN.md section 6): tables of extendable 1-D datasets,
 * /<table>/<column>, column "step" first, each with the type, units and description io/schema.c
 * gives it (counts int64, measurements float64; rows are doubles in memory, converted when
 * written): /train holds one row per optimizer step, /advantage one
 * row per sample on the steps that record them, /timing one row per rank every log interval;
 * /events holds (step, message) rows. Rows are buffered in memory and appended every log interval
 * by opening the file, extending, writing and closing it again, so between flushes the file is
 * closed and whole: h5py, pandas or HDFView can read it while the job runs (open with
 * locking=False while a flush may be in progress). Rank 0 alone writes.
 * Kill-safety: the log is kept in two copies, log.h5 and log.h5.bak, changed one after the other,
 * each inside a marker file <copy>.dirty; a kill -9 during a flush leaves one copy marked and the
 * other whole, and trainlog_recover (called by trainlog_open, so on every resume) rebuilds the
 * marked one. A reader that finds log.h5.dirty reads log.h5.bak (trainlog_whole_copy).
 * Not here: what the tables hold (the commands and src/runloop.c), when rows are written.
 * Every function stops the program with an error naming the file when it fails. */
#pragma once
#include <stddef.h>

#define TRAINLOG_MAX_COLS 64

typedef struct {
  char path[4096];
  char table[48];
  int ncols;
  char cols[TRAINLOG_MAX_COLS][48];
  double *buf; /* (cap, ncols) pending rows */
  long nbuf, cap;
} TrainLog;

/* Creates the log file with its /events table (rank 0; a no-op elsewhere). */
void trainlog_create(const char *path, const char *config_text);
/* Opens table `table` of an existing log: creates its columns when absent, or, for a resumed run
 * (resume_step >= 0), drops rows whose step is beyond resume_step (they were logged after the
 * checkpoint the run resumes from). On ranks other than 0 every call is a no-op. */
void trainlog_open(TrainLog *l, const char *path, const char *table, const char *const *cols, int ncols,
                   long resume_step);
void trainlog_append(TrainLog *l, const double *row);
void trainlog_flush(TrainLog *l);
void trainlog_close(TrainLog *l);
/* Records an event (e.g. "nan", "resume") as a row of /events: step and a text message. */
void trainlog_event(TrainLog *l, long step, const char *message);
/* Drops every row of the table whose step is beyond `step`, buffered or written (a rollback). */
void trainlog_rewind(TrainLog *l, long step);
/* Drops the rows of table `table` whose step is beyond `step`, when the log has the table: a resumed
 * run that no longer writes it (the /eval rows of a run resumed without eval.every) still drops what
 * was logged after its checkpoint. Rank 0; a no-op elsewhere. */
void trainlog_drop_beyond(const char *path, const char *table, long step);
/* Rebuilds a copy of the log that a kill left marked incomplete, or that is missing, from the other
 * one (a missing log.h5 comes back from a whole log.h5.bak; fatal when that copy is marked too). */
void trainlog_recover(const char *path);
/* The path of a whole copy of the log for reading: path itself, or its .bak while path is marked
 * incomplete (buf receives it then). */
const char *trainlog_whole_copy(const char *path, char *buf, size_t n);
/* Seconds this process has spent writing logs so far (the I/O column of /timing counts them). */
double trainlog_io_seconds(void);
/* Testing: a function called inside every flush, between the first column written and the next,
 * so a test can kill the job while the file is inconsistent (NULL: none). */
void trainlog_set_pause_hook(void (*hook)(void));
