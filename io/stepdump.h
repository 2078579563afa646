/* stepdump.h: the testing dump of one distillation step (fault.dump_step, fault.dump; docs/DESIGN.md
 * section 8.7): an HDF5 file of kind "amd-step-dump" holding, per update of the step, the numbers
 * it drew and the per-sample losses it computed, so that a second implementation
 * (benchmarks/distill_torch.py --check) recomputes the step from the same inputs. Every dataset is
 * described in io/schema.c. One process writes it (a testing key: one rank).
 * Not here: which numbers a step dumps (src/distill.c) or what they mean.
 * Return convention: errors stop the program; every function accepts a NULL dump and then does
 * nothing, so a caller needs no test of its own. */
#pragma once

typedef struct StepDump StepDump;

#define STEP_DUMP_FORMAT "amd-step-dump"

/* Creates (replacing an earlier dump, never another kind of file: config key `key`) the file. */
StepDump *step_dump_create(const char *path, const char *config_text, const char *key);
void step_dump_attr_str(StepDump *s, const char *name, const char *value);
void step_dump_attr_i64(StepDump *s, const char *name, long long value);
/* Later datasets go into the group /name (created here), until the next call. */
void step_dump_group(StepDump *s, const char *name);
/* Host arrays of rows x cols values (cols 0: a vector of rows) into the current group. */
void step_dump_f32(StepDump *s, const char *name, const float *x, int rows, int cols);
void step_dump_f64(StepDump *s, const char *name, const double *x, int rows, int cols);
void step_dump_i32(StepDump *s, const char *name, const int *x, int rows, int cols);
void step_dump_close(StepDump *s);
