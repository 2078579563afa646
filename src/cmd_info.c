/* cmd_info.c: `amd info FILE.h5|RUN`: says what any amd file holds (dataset, samples, checkpoint, log,
 * eval, a step dump) without the user reaching for h5dump. On a run folder, its summary: the lock holder, the
 * log's tables with their row counts and last step, the checkpoints with their steps (each
 * validated: a damaged one says why), and what resume=1 would continue from. On a log, a run summary: last step, last and mean
 * losses, samples/s, elapsed time, every rank's compute / communication / I/O seconds (/timing),
 * the last held-out metrics (/eval) and the events (resume, stop signals, divergence and rollbacks) with their steps. Unknown or
 * damaged files get the same clear errors as every reader. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caption.h"
#include "captions.h"
#include "ckpt.h"
#include "commands.h"
#include "common.h"
#include "dataset.h"
#include "dist.h"
#include "h5.h"
#include "stepdump.h"
#include "trainlog.h"

/* A root attribute as text ("" when absent: files of an older amd carry no provenance). */
static void root_attr(hid_t f, const char *name, char *out, size_t n) {
  out[0] = '\0';
  if (!h5_attr_exists(f, name)) return;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = H5Aget_type(a);
  int is_int = H5Tget_class(t) == H5T_INTEGER;
  H5Tclose(t);
  H5Aclose(a);
  if (is_int) {
    snprintf(out, n, "%lld", h5_attr_read_i64(f, name));
  } else {
    char *v = h5_attr_read_str(f, name);
    snprintf(out, n, "%s", v);
    free(v);
  }
}

static herr_t print_input(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
  (void)info, (void)op;
  char v[4200];
  if (strncmp(name, "input.", 6) != 0) return 0;
  root_attr(loc, name, v, sizeof v);
  printf("  input %s: %s\n", name + 6, v);
  return 0;
}

/* Where the file comes from (docs/DESIGN.md section 6.1). */
static void print_provenance(hid_t f) {
  char commit[256], host[256], ranks[32], threads[32], backend[64], device[256], job[64], ajob[64], task[64], restart[64];
  root_attr(f, "commit", commit, sizeof commit);
  if (!commit[0]) return;
  root_attr(f, "host", host, sizeof host), root_attr(f, "ranks", ranks, sizeof ranks);
  root_attr(f, "threads", threads, sizeof threads), root_attr(f, "backend", backend, sizeof backend);
  root_attr(f, "device", device, sizeof device), root_attr(f, "slurm_job_id", job, sizeof job);
  root_attr(f, "slurm_array_job_id", ajob, sizeof ajob), root_attr(f, "slurm_array_task_id", task, sizeof task);
  root_attr(f, "slurm_restart_count", restart, sizeof restart);
  printf("  commit %s on host %s: %s rank%s x %s thread%s, backend %s (%s)\n", commit, host, ranks,
         strcmp(ranks, "1") ? "s" : "", threads, strcmp(threads, "1") ? "s" : "", backend, device);
  if (job[0]) {
    printf("  Slurm job %s", job);
    if (ajob[0]) printf(" (array job %s, task %s)", ajob, task);
    printf(", restart count %s\n", restart[0] ? restart : "0");
  }
  h5Check(H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_input, NULL), "cannot list the file's attributes");
}

static void print_common(hid_t f, const char *path, const char *kind) {
  char *by = h5_attr_read_str(f, "created_by");
  printf("%s: %s, format_version %lld, created by %s\n", path, kind, h5_attr_read_i64(f, "format_version"), by);
  free(by);
  print_provenance(f);
}

/* A captioned dataset (amd data compose): its captions by category, the held-out pairs, the first
 * captions; checked against this amd's grammar first (caption_set_check). */
static void info_captions(const char *path, CaptionSet *s) {
  char err[512];
  if (caption_set_check(s, err, sizeof err) != 0) amd_input_error("'%s': %s", path, err);
  long per[CAPTION_CATEGORIES] = {0}, held = 0;
  for (long i = 0; i < s->n; i++) per[s->category[i]]++, held += s->held_out[i];
  printf("  captions: %ld (%s split): %ld single, %ld two, %ld counting, %ld position; %ld name a held-out pair (%s)\n"
         "  vocabulary: %d words, %d tokens a caption; layout: %d x %d cells of %d px, every caption parses and its "
         "layout holds it\n", s->n, s->split, per[0], per[1], per[2], per[3], held,
         s->held_out_pairs[0] ? s->held_out_pairs : "none held out", s->vocab_size, s->max_tokens, s->grid, s->grid,
         s->cell_size);
  for (long i = 0; i < s->n && i < 4; i++) printf("    %ld: %s\n", i, s->text[i]);
  captions_free(s);
}

static void info_dataset(const char *path, const char *kind) {
  Dataset d;
  dataset_read(path, kind, &d);
  float lo = INFINITY, hi = -INFINITY;
  for (long i = 0; i < d.n * d.dim; i++) lo = d.x[i] < lo ? d.x[i] : lo, hi = d.x[i] > hi ? d.x[i] : hi;
  printf("  x: %ld samples of shape (", d.n);
  for (int i = 0; i < d.ndim; i++) printf(i ? ", %d" : "%d", d.shape[i]);
  printf("), values in [%.4g, %.4g]\n  classes: %d (%s)\n  source: %s\n", lo, hi, d.num_classes, d.class_names, d.source);
  if (d.has_mixture)
    printf("  mixture: %d modes, sigma %g, %d classes\n", d.mix.num_modes, d.mix.sigma, d.mix.num_classes);
  CaptionSet s;
  if (strcmp(kind, "amd-dataset") == 0 && captions_read(path, d.n, d.num_classes, &s)) info_captions(path, &s);
  dataset_free(&d);
}

static void info_samples(hid_t f) {
  const char *str_attrs[] = {"checkpoint", "net", "data", "data_fingerprint", "sampler"};
  for (size_t i = 0; i < 4; i++) {
    if (!h5_attr_exists(f, str_attrs[i])) continue;
    char *v = h5_attr_read_str(f, str_attrs[i]);
    printf("  %s: %s\n", str_attrs[i], v);
    free(v);
  }
  if (h5_attr_exists(f, "steps"))
    printf("  steps %lld, cfg %g, shift %g, seed %lld, NFE %lld, %.3f s (%.0f samples/s)\n", h5_attr_read_i64(f, "steps"),
           h5_attr_read_f64(f, "cfg"), h5_attr_read_f64(f, "shift"), h5_attr_read_i64(f, "seed"),
           h5_attr_read_i64(f, "nfe"), h5_attr_read_f64(f, "seconds"), h5_attr_read_f64(f, "samples_per_s"));
}

static herr_t print_net(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  H5O_info_t oi;
  if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) return 0;
  hid_t g = h5_group_open(loc, name);
  char *kind = h5_attr_read_str(g, "kind");
  printf("  net '%s': %s, dim %lld, classes %lld, width %lld, depth %lld, %lld parameters%s\n", name, kind,
         h5_attr_read_i64(g, "dim"), h5_attr_read_i64(g, "num_classes"), h5_attr_read_i64(g, "width"),
         h5_attr_read_i64(g, "depth"), h5_attr_read_i64(g, "num_params"),
         h5_exists(g, "adam_m") ? ", with AdamW moments" : "");
  if (h5_attr_exists(g, "img_size") && h5_attr_read_i64(g, "img_size") > 0)
    printf("    images %lld x %lld x %lld, patch %lld, heads %lld\n", h5_attr_read_i64(g, "img_channels"),
           h5_attr_read_i64(g, "img_size"), h5_attr_read_i64(g, "img_size"), h5_attr_read_i64(g, "patch"),
           h5_attr_read_i64(g, "heads"));
  if (h5_attr_exists(g, "text") && h5_attr_read_i64(g, "text"))
    printf("    captions: vocabulary %lld, up to %lld tokens, text encoder width %lld, depth %lld\n",
           h5_attr_read_i64(g, "vocab"), h5_attr_read_i64(g, "max_text"), h5_attr_read_i64(g, "text_width"),
           h5_attr_read_i64(g, "text_depth"));
  free(kind);
  H5Gclose(g);
  return 0;
}

static void info_checkpoint(hid_t f) {
  char *data = h5_attr_read_str(f, "data");
  printf("  step %lld, seed %lld, data cursor %lld, data %s\n", h5_attr_read_i64(f, "step"),
         h5_attr_read_i64(f, "seed"), h5_attr_read_i64(f, "data_cursor"), data);
  free(data);
  static const char *const text_attrs[][2] = {{"data_fingerprint", "data fingerprint"}, {"teacher", "teacher"},
                                               {"teacher_fingerprint", "teacher fingerprint"}};
  for (int i = 0; i < 3; i++) {
    if (!h5_attr_exists(f, text_attrs[i][0])) continue;
    char *v = h5_attr_read_str(f, text_attrs[i][0]);
    printf("  %s: %s\n", text_attrs[i][1], v);
    free(v);
  }
  h5Check(H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_net, NULL), "cannot list the checkpoint's networks");
}

static herr_t print_column(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  hsize_t n;
  double *v = h5_read_f64(loc, name, 1, &n);
  double lo = INFINITY, hi = -INFINITY;
  for (hsize_t i = 0; i < n; i++) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
  if (n) printf("    %-16s last %-12.6g min %-12.6g max %.6g\n", name, v[n - 1], lo, hi);
  free(v);
  return 0;
}

static herr_t print_loss(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  if (strncmp(name, "loss", 4) != 0) return 0;
  hsize_t n;
  double *v = h5_read_f64(loc, name, 1, &n);
  double all = 0, recent = 0;
  hsize_t r0 = n - (n + 9) / 10; /* the last 10% of the rows */
  for (hsize_t i = 0; i < n; i++) all += v[i], recent += i >= r0 ? v[i] : 0;
  if (n) printf("    %-14s last %-12.6g mean %-12.6g mean of the last %llu rows %.6g\n", name, v[n - 1], all / n,
                (unsigned long long)(n - r0), recent / (double)(n - r0));
  free(v);
  return 0;
}

/* Summary of /train: steps, losses, throughput and training time (the time column runs on over
 * resumes; in a log of an older amd it restarted at each resume, so restarts add up segments). */
static void log_summary(hid_t g) {
  hsize_t n = 0;
  double *steps = h5_read_f64(g, "step", 1, &n);
  printf("  %llu rows", (unsigned long long)n);
  if (n) printf(", last step %.0f (first %.0f)", steps[n - 1], steps[0]);
  printf("\n");
  free(steps);
  if (!n) return;
  if (h5_exists(g, "time")) {
    double *t = h5_read_f64(g, "time", 1, &n);
    double elapsed = 0;
    int segments = 1;
    for (hsize_t i = 1; i < n; i++)
      if (t[i] < t[i - 1]) elapsed += t[i - 1], segments++;
    elapsed += t[n - 1];
    if (segments == 1) printf("  elapsed %.3f s of training steps\n", elapsed);
    else printf("  elapsed %.3f s of training steps in %d segments (a log of an older amd: its time restarted at "
                "each resume)\n", elapsed, segments);
    free(t);
  }
  if (h5_exists(g, "samples_per_s")) {
    double *r = h5_read_f64(g, "samples_per_s", 1, &n), sum = 0;
    long k = 0;
    for (hsize_t i = 0; i < n; i++)
      if (r[i] > 0) sum += r[i], k++;
    if (k) printf("  rate %.1f samples/s (mean over %ld log intervals), last %.1f\n", sum / k, k, r[n - 1]);
    free(r);
  }
  printf("  losses:\n");
  h5Check(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_loss, NULL), "cannot list the log columns");
}

/* /timing: every rank's seconds summed over the log intervals. */
static void log_timing(hid_t f) {
  if (!h5_exists(f, "timing/rank")) return;
  hid_t g = h5_group_open(f, "timing");
  hsize_t n;
  double *rank = h5_read_f64(g, "rank", 1, &n), *c = h5_read_f64(g, "compute", 1, &n);
  double *m = h5_read_f64(g, "comm", 1, &n), *io = h5_read_f64(g, "io", 1, &n), *st = h5_read_f64(g, "step", 1, &n);
  int ranks = 0;
  for (hsize_t i = 0; i < n; i++) ranks = amd_max_i(ranks, (int)rank[i] + 1);
  printf("  /timing: %llu rows, %d rank%s, up to step %.0f (seconds summed over the log intervals):\n",
         (unsigned long long)n, ranks, ranks == 1 ? "" : "s", n ? st[n - 1] : 0.0);
  for (int r = 0; r < ranks; r++) {
    double sc = 0, sm = 0, si = 0;
    for (hsize_t i = 0; i < n; i++)
      if ((int)rank[i] == r) sc += c[i], sm += m[i], si += io[i];
    double tot = sc + sm + si + 1e-300;
    printf("    rank %-3d compute %10.3f s (%4.1f%%)   comm %10.3f s (%4.1f%%)   io %10.3f s (%4.1f%%)\n", r, sc,
           100 * sc / tot, sm, 100 * sm / tot, si, 100 * si / tot);
  }
  free(rank), free(c), free(m), free(io), free(st);
  H5Gclose(g);
}

/* /eval: its rows and, for each kind of weights, the metrics of the last evaluation. */
static void log_eval(hid_t f) {
  if (!h5_exists(f, "eval/step")) return;
  static const char *const shown[] = {"samples", "nfe", "off_manifold", "coverage", "mass_error", "wrong_class",
                                      "sliced_w1", "log_density", "fd", "precision", "recall", "accuracy", "seconds"};
  hid_t g = h5_group_open(f, "eval");
  hsize_t n;
  double *st = h5_read_f64(g, "step", 1, &n), *w = h5_read_f64(g, "weights", 1, &n);
  printf("  /eval: %llu held-out evaluations", (unsigned long long)n);
  if (n) printf(" from step %.0f to %.0f", st[0], st[n - 1]);
  printf(" (amd export <log> --csv /eval)\n");
  for (int kind = 0; kind <= 1; kind++) {
    long last = -1;
    for (hsize_t i = 0; i < n; i++)
      if ((int)w[i] == kind) last = (long)i;
    if (last < 0) continue;
    printf("    last, %s weights (step %.0f):", kind ? "EMA" : "raw", st[last]);
    for (size_t c = 0; c < sizeof shown / sizeof shown[0]; c++) {
      if (!h5_exists(g, shown[c])) continue;
      double *v = h5_read_f64(g, shown[c], 1, &n);
      printf(" %s %.5g", shown[c], v[last]);
      free(v);
    }
    printf("\n");
  }
  free(st), free(w);
  H5Gclose(g);
}

static void info_log(hid_t f) {
  hid_t g = h5_group_open(f, "train");
  log_summary(g);
  printf("  columns of /train:\n");
  h5Check(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_column, NULL), "cannot list the log columns");
  H5Gclose(g);
  log_timing(f);
  log_eval(f);
  if (h5_exists(f, "advantage/step")) {
    hid_t a = h5_group_open(f, "advantage");
    hsize_t na;
    double *as = h5_read_f64(a, "step", 1, &na);
    printf("  /advantage: %llu per-sample records", (unsigned long long)na);
    if (na) printf(" from step %.0f to %.0f", as[0], as[na - 1]);
    printf("\n");
    free(as);
    H5Gclose(a);
  }
  if (h5_exists(f, "events/step")) {
    hid_t e = h5_group_open(f, "events");
    hsize_t ne;
    double *es = h5_read_f64(e, "step", 1, &ne);
    printf("  %llu event%s\n", (unsigned long long)ne, ne == 1 ? "" : "s");
    if (ne) {
      hid_t d = H5Dopen2(e, "message", H5P_DEFAULT);
      char **msg = callocCheck(ne, sizeof(char *));
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      h5Check(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, msg), "cannot read the log's events");
      for (hsize_t i = 0; i < ne; i++) printf("    step %.0f: %s\n", es[i], msg[i] ? msg[i] : "");
      hid_t space = H5Dget_space(d);
      H5Dvlen_reclaim(t, space, H5P_DEFAULT, msg);
      H5Sclose(space);
      H5Tclose(t);
      H5Dclose(d);
      free(msg);
    }
    free(es);
    H5Gclose(e);
  }
}

static herr_t print_scalar(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  hsize_t n;
  double *v = h5_read_f64(loc, name, 1, &n);
  if (n == 1) printf("  %-16s %.6g\n", name, v[0]);
  else printf("  %-16s %llu values\n", name, (unsigned long long)n);
  free(v);
  return 0;
}

static herr_t print_table_rows(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)info, (void)op;
  char step[300];
  snprintf(step, sizeof step, "%s/step", name);
  if (!h5_exists(loc, step)) return 0;
  hid_t g = h5_group_open(loc, name);
  hsize_t n = h5_len_1d(g, "step");
  printf("    /%-10s %llu rows", name, (unsigned long long)n);
  if (n) {
    double *v = h5_read_f64(g, "step", 1, &n);
    printf(", steps %.0f to %.0f", v[0], v[n - 1]);
    free(v);
  }
  printf("\n");
  H5Gclose(g);
  return 0;
}

static herr_t print_group_name(hid_t loc, const char *name, const H5L_info_t *info, void *op) {
  (void)loc, (void)info, (void)op;
  printf(" /%s", name);
  return 0;
}

/* A step dump (testing: fault.dump_step): its step, the networks it names and its updates. */
static void info_step_dump(hid_t f) {
  char *teacher = h5_attr_read_str(f, "teacher"), *net = h5_attr_read_str(f, "teacher_net");
  char *reward = h5_attr_read_str(f, "reward");
  printf("  distillation step %lld: real teacher /%s of %s, reward %s\n  updates:", h5_attr_read_i64(f, "step"), net,
         teacher, reward[0] ? reward : "none");
  h5Check(H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_group_name, NULL), "cannot list the updates");
  printf("\n");
  free(teacher), free(net), free(reward);
}

/* A run folder: the lock, the log's tables, the checkpoints and the resume point. */
static void info_run(const char *run) {
  char path[4200], whole[4200], line[512] = "";
  long steps[4096], good = -1;
  int k = ckpt_list(run, steps, 4096);
  snprintf(path, sizeof path, "%s/log.h5", run);
  int has_log = amd_file_exists(path);
  if (!has_log && !k) amd_usage_error("'%s' is a folder but holds no run (no log.h5, no checkpoint)", run);
  printf("%s: run folder\n", run);
  snprintf(path, sizeof path, "%s/amd.lock", run);
  FILE *lock = fopen(path, "r");
  if (lock) {
    if (!fgets(line, sizeof line, lock)) line[0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    fclose(lock);
    printf("  locked: %s (a job is writing it; a lock whose process is gone is removed by the next run)\n",
           line[0] ? line : "(being written)");
  } else {
    printf("  not locked (no job is writing it)\n");
  }
  snprintf(path, sizeof path, "%s/log.h5", run);
  if (has_log) {
    const char *log = trainlog_whole_copy(path, whole, sizeof whole);
    printf("  log %s%s:\n", log, log != path ? " (log.h5 is marked incomplete: its whole copy)" : "");
    hid_t f = h5_open(log, "amd-log", 0, NULL);
    h5Check(H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_table_rows, NULL), "cannot list the tables of '%s'", log);
    h5_close(f);
  } else {
    printf("  no log.h5\n");
  }
  printf("  %d checkpoint%s%s\n", k, k == 1 ? "" : "s", k ? ":" : "");
  for (int i = 0; i < k; i++) {
    char why[512];
    snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", run, steps[i]);
    if (ckpt_validate(path, steps[i], why, sizeof why) == 0) {
      printf("    %s  step %ld\n", path, steps[i]);
      good = steps[i];
    } else {
      printf("    %s  damaged: %s\n", path, why);
    }
  }
  if (good >= 0) printf("  resume=1 continues from step %ld\n", good);
  else printf("  resume=1 starts afresh (no checkpoint to continue from)\n");
}

int cmd_info(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    if (dist_rank() == 0) printf("usage: amd info FILE.h5|RUN [...]\n  summarizes amd datasets, samples, checkpoints, logs, eval "
                                 "files and step dumps, and run folders (lock, log tables, checkpoints)\n"
                                 "       amd info FILE.h5 --csv|--json [GROUP]: the same as amd export\n");
    return argc < 1 ? AMD_EXIT_USAGE : 0;
  }
  for (int i = 0; i < argc; i++) /* amd info FILE --csv|--json [GROUP]: the same as amd export */
    if (strcmp(argv[i], "--csv") == 0 || strcmp(argv[i], "--json") == 0) return cmd_export(argc, argv);
  if (dist_rank() != 0) return 0;
  for (int i = 0; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      info_run(argv[i]);
      continue;
    }
    char kind[32], whole[4200];
    const char *path = trainlog_whole_copy(argv[i], whole, sizeof whole);
    if (path != argv[i])
      printf("%s is marked incomplete (the job was killed while writing it; resume repairs it): reading %s\n", argv[i],
             path);
    hid_t f = h5_open(path, NULL, 0, kind);
    print_common(f, path, kind);
    if (strcmp(kind, "amd-dataset") == 0 || strcmp(kind, "amd-samples") == 0) {
      if (strcmp(kind, "amd-samples") == 0) info_samples(f);
      info_dataset(argv[i], kind);
    } else if (strcmp(kind, "amd-checkpoint") == 0) {
      info_checkpoint(f);
    } else if (strcmp(kind, "amd-log") == 0) {
      info_log(f);
    } else if (strcmp(kind, "amd-eval") == 0) {
      hid_t g = h5_group_open(f, "eval");
      h5Check(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_scalar, NULL), "cannot list the eval metrics");
      H5Gclose(g);
    } else if (strcmp(kind, STEP_DUMP_FORMAT) == 0) {
      info_step_dump(f);
    } else {
      amd_input_error("'%s' has format '%s', which this amd does not know", argv[i], kind);
    }
    h5_close(f);
  }
  return 0;
}
