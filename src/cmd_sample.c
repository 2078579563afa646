/* cmd_sample.c: `amd sample`: draws samples from a trained velocity network (its EMA weights when
 * the checkpoint has them, unless weights=raw; the file's `weights` attribute says which) with the
 * Euler or Heun sampler (N steps, classifier-free guidance, timestep shift) and writes a samples file; for 2-D
 * data also a PNG scatter plot coloured by class over the true mode centres. Ranks split the
 * samples; noise is keyed by the global sample index, so the file is the same at any rank count.
 * For images, png= writes a grid with a row per class (the first png.cols samples of each).
 * A caption model (text mode) samples the captions of prompt= or prompts= (a file, one a line),
 * tokenized by caption_encode, sample i caption i mod their count; its samples file records each
 * sample's caption (/captions/text, /captions/tokens) and its index as the label.
 * noise=eval draws the fixed noise set on which a run of the same seed evaluates (src/evalrun.h), so
 * the samples behind a row of its log's /eval table can be drawn from the checkpoint of that step. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model_ckpt.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "evalrun.h"
#include "caption.h"
#include "h5.h"
#include "model.h"
#include "sampling.h"

typedef struct {
  char ckpt[CFG_STR_MAX], net[CFG_STR_MAX], weights[CFG_STR_MAX], out[CFG_STR_MAX], sampler[CFG_STR_MAX];
  char png[CFG_STR_MAX], prompt[CFG_STR_MAX], prompts[CFG_STR_MAX];
  char data[CFG_STR_MAX], device[CFG_STR_MAX], precision[CFG_STR_MAX], noise[CFG_STR_MAX];
  int n, cls, steps, seed, batch, threads, png_cols;
  double cfg, shift, plot_range;
} SampleConfig;

#define K(name, type, field, def, lo, hi, choices, help) {name, type, offsetof(SampleConfig, field), def, lo, hi, choices, help}
static const cfg_key sample_keys[] = {
    K("ckpt", CFG_PATH, ckpt, "", 0, 0, NULL, "checkpoint file, or a run folder (its newest checkpoint); required"),
    K("net", CFG_STR, net, "auto", 0, 0, NULL, "network to sample; auto: student if the checkpoint has one, else teacher"),
    K("weights", CFG_CHOICE, weights, "auto", 0, 0, "auto|ema|raw",
      "ema: the network's EMA weights (/<net>_ema); raw: its last iterate; auto: ema when the checkpoint has them"),
    K("out", CFG_STR, out, "samples.h5", 0, 0, NULL, "samples file to write"),
    K("n", CFG_INT, n, "4096", 1, 100000000, NULL, "number of samples"),
    K("prompt", CFG_STR, prompt, "", 0, 0, NULL,
      "caption model (text mode): the caption of every sample, e.g. \"a bag to the left of a sneaker\""),
    K("prompts", CFG_PATH, prompts, "", 0, 0, NULL,
      "caption model: a text file of captions, one a line (blank lines skipped); sample i gets caption i mod their count"),
    K("class", CFG_INT, cls, "-1", -1, 1000000, NULL, "class of every sample; -1 = classes in turn (mixed)"),
    K("sampler", CFG_CHOICE, sampler, "auto", 0, 0, "auto|euler|heun|generator",
      "euler, heun: ODE integrators; generator: the few-step student's own sampler; auto: generator for a student, else euler"),
    K("steps", CFG_INT, steps, "0", 0, 100000, NULL, "integration steps N; 0: 50 for euler/heun, the student's own S for generator"),
    K("cfg", CFG_FLOAT, cfg, "1.0", 0, 100, NULL, "classifier-free guidance scale w (1 = conditional only)"),
    K("shift", CFG_FLOAT, shift, "1.0", 0.01, 100, NULL, "timestep shift (>1 spends more steps at high noise)"),
    K("seed", CFG_INT, seed, "0", 0, 2147483647, NULL, "Philox seed of the starting noise"),
    K("noise", CFG_CHOICE, noise, "sample", 0, 0, "sample|eval",
      "sample: noise keyed by seed; eval: the held-out noise set a run of this seed evaluates on (eval.every), "
      "to draw the samples of its /eval rows"),
    K("batch", CFG_INT, batch, "0", 0, 1 << 20, NULL,
      "samples per forward pass on each rank; 0: 1024 for vectors, 100 for images (a dit keeps its activations)"),
    K("png", CFG_STR, png, "", 0, 0, NULL, "also write a picture here: 2-D data a scatter plot, images a grid (a row per class)"),
    K("png.cols", CFG_INT, png_cols, "10", 1, 1000, NULL, "images: samples per class in the grid"),
    K("plot.range", CFG_FLOAT, plot_range, "1.2", 1e-3, 1e6, NULL, "scatter plot shows [-range, range]^2"),
    K("data", CFG_PATH, data, "", 0, 0, NULL, "dataset for the plot's mode centres; default: the checkpoint's"),
    K("device", CFG_CHOICE, device, "auto", 0, 0, "auto|cpu|cuda", "backend"),
    K("precision", CFG_CHOICE, precision, "fp32", 0, 0, "fp32|tf32|bf16",
      "GEMM precision: fp32; tf32 (CUDA tensor cores); bf16 (CUDA tensor cores, CPU AMX tiles)"),
    K("threads", CFG_INT, threads, "0", 0, 1024, NULL, "OpenMP threads per rank; 0 = node cores / ranks"),
    CFG_END};
#undef K

/* The captions of a caption model's samples: each prompt's text and token ids. */
#define SAMPLE_MAX_PROMPTS 4096
typedef struct {
  int n;
  char **text;  /* (n) */
  int *tokens;  /* (n, CAPTION_MAX_TOKENS) */
} Prompts;

static void prompts_add(Prompts *p, const char *text, const char *where) {
  if (p->n == SAMPLE_MAX_PROMPTS) amd_usage_error("%s: more than %d captions", where, SAMPLE_MAX_PROMPTS);
  char err[256];
  int *ids = p->tokens + (size_t)p->n * CAPTION_MAX_TOKENS;
  if (caption_encode(text, ids, err, sizeof err) < 0) amd_usage_error("%s: %s", where, err);
  char words[CFG_STR_MAX];
  caption_decode(ids, words, sizeof words); /* lower case, one space between words */
  p->text[p->n++] = strdup(words);
}

/* prompt= or prompts=: the captions, tokenized (an unknown word is an error naming it). */
static void prompts_read(const SampleConfig *c, Prompts *p) {
  p->text = mallocCheck(sizeof(char *) * SAMPLE_MAX_PROMPTS);
  p->tokens = mallocCheck(sizeof(int) * SAMPLE_MAX_PROMPTS * CAPTION_MAX_TOKENS);
  p->n = 0;
  if (c->prompt[0]) {
    prompts_add(p, c->prompt, "config key 'prompt'");
    return;
  }
  FILE *f = fopen(c->prompts, "r");
  if (!f) amd_usage_error("config key 'prompts' = '%s': cannot open it", c->prompts);
  char line[1024], where[CFG_STR_MAX + 64];
  for (int no = 1; fgets(line, sizeof line, f); no++) {
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f))
      amd_usage_error("prompts file '%s' line %d: longer than %d characters", c->prompts, no, (int)sizeof line - 2);
    if (strspn(line, " \t\r\n") == len) continue;
    snprintf(where, sizeof where, "prompts file '%s' line %d", c->prompts, no);
    prompts_add(p, line, where);
  }
  fclose(f);
  if (p->n == 0) amd_usage_error("prompts file '%s' holds no caption (one a line)", c->prompts);
}

static void prompts_free(Prompts *p) {
  for (int i = 0; i < p->n; i++) free(p->text[i]);
  free(p->text), free(p->tokens);
}

typedef struct {
  const SampleConfig *c;
  const Prompts *prompts; /* a caption model's; NULL for a class model */
  long n;                 /* samples */
  const int *labels;      /* (n): each sample's prompt index */
  const char *ckpt_path, *data_path, *data_fingerprint;
  const char *weights; /* "ema" or "raw": the weights sampled */
  int nfe;
  double seconds;
} SampleInfo;

static void write_sample_attrs(hid_t f, const void *ctx) {
  const SampleInfo *s = ctx;
  h5_attr_write_str(f, "checkpoint", s->ckpt_path);
  h5_attr_write_str(f, "net", s->c->net);
  h5_attr_write_str(f, "weights", s->weights);
  h5_attr_write_str(f, "data", s->data_path);
  if (s->data_fingerprint[0]) h5_attr_write_str(f, "data_fingerprint", s->data_fingerprint);
  h5_attr_write_str(f, "sampler", s->c->sampler);
  h5_attr_write_i64(f, "steps", s->c->steps);
  h5_attr_write_f64(f, "cfg", s->c->cfg);
  h5_attr_write_f64(f, "shift", s->c->shift);
  h5_attr_write_i64(f, "seed", s->c->seed);
  h5_attr_write_i64(f, "nfe", s->nfe);
  h5_attr_write_f64(f, "seconds", s->seconds);
  h5_attr_write_f64(f, "samples_per_s", s->seconds > 0 ? (double)s->c->n / s->seconds : 0.0);
  if (!s->prompts) return;
  /* a caption model's samples: /captions/text (n) and /captions/tokens (n, L) of each sample's
   * caption (its label is the caption's index among the prompts), /captions/vocab (V) */
  const Prompts *p = s->prompts;
  const char **text = mallocCheck(sizeof(char *) * (size_t)(s->n ? s->n : 1));
  int *tokens = mallocCheck(sizeof(int) * (size_t)(s->n ? s->n : 1) * CAPTION_MAX_TOKENS);
  for (long i = 0; i < s->n; i++) {
    text[i] = p->text[s->labels[i]];
    memcpy(tokens + i * CAPTION_MAX_TOKENS, p->tokens + (size_t)s->labels[i] * CAPTION_MAX_TOKENS,
           sizeof(int) * CAPTION_MAX_TOKENS);
  }
  int V = caption_vocab_size();
  const char **vocab = mallocCheck(sizeof(char *) * (size_t)V);
  for (int i = 0; i < V; i++) vocab[i] = caption_word(i);
  hid_t g = h5_group_create(f, "captions");
  hsize_t n = (hsize_t)s->n, tok[2] = {n, CAPTION_MAX_TOKENS};
  h5_write_strings(g, "text", text, n);
  h5_write_i32(g, "tokens", tokens, 2, tok);
  h5_write_strings(g, "vocab", vocab, (hsize_t)V);
  H5Gclose(g);
  free(text), free(tokens), free(vocab);
}

/* The network of the checkpoint whose parameters are sampled (weights=): /<net>_ema or /<net>
 * itself, written into buf. A net named with its _ema suffix is sampled as named. */
static const char *weights_net(const SampleConfig *c, const char *path, char *buf, size_t n) {
  snprintf(buf, n, "%s" EMA_SUFFIX, c->net);
  int has_ema = ckpt_has_net(path, buf);
  if (strcmp(c->weights, "ema") == 0 && !has_ema)
    amd_usage_error("config key 'weights' = ema: '%s' holds no EMA weights of '%s' (/%s: written before them, or "
                    "with ema.decay=0); pass weights=raw or auto", path, c->net, buf);
  if (strcmp(c->weights, "raw") == 0 || !has_ema) snprintf(buf, n, "%s", c->net);
  return buf;
}

/* A network the samplers can integrate: a velocity network conditioned on t and the class (a
 * teacher, a student, a fake teacher), not a classifier or the GAN head. */
static int can_sample(const ModelConfig *mc) {
  const ModelKind *k = model_kind_find(mc->kind);
  return k && k->temb && !k->classifier;
}

int cmd_sample(int argc, char **argv) {
  SampleConfig c;
  cfg_parse_args(sample_keys, &c, argc, argv, "sample", "Samples a trained network to a samples file.");
  if (!c.ckpt[0]) amd_usage_error("config key 'ckpt' is required: a checkpoint file or run folder");
  h5_check_replaceable(c.out, "amd-samples", "out");
  backend_init(c.device, c.precision, c.threads);
  char ckpt_path[4200];
  ckpt_resolve_shared(c.ckpt, ckpt_path, sizeof ckpt_path);

  if (strcmp(c.net, "auto") == 0) snprintf(c.net, sizeof c.net, "%s", ckpt_has_net(ckpt_path, "student") ? "student" : "teacher");
  if (strcmp(c.sampler, "auto") == 0) snprintf(c.sampler, sizeof c.sampler, "%s", strcmp(c.net, "student") == 0 ? "generator" : "euler");
  ModelConfig mc;
  model_ckpt_config(ckpt_path, c.net, &mc);
  if (!can_sample(&mc)) {
    char nets[128] = "";
    static const char *const candidates[] = {"student", "teacher", "fake"};
    for (int i = 0; i < 3; i++) {
      ModelConfig other;
      if (!ckpt_has_net(ckpt_path, candidates[i])) continue;
      model_ckpt_config(ckpt_path, candidates[i], &other);
      if (can_sample(&other)) strcat(strcat(nets, nets[0] ? ", " : ""), candidates[i]);
    }
    amd_usage_error("config key 'net' = '%s': in '%s' it is a %s network (%s), not a velocity network a sampler can "
                    "integrate; the networks of this checkpoint that can be sampled: %s", c.net, ckpt_path, mc.kind,
                    strcmp(mc.kind, "head") == 0 ? "the GAN discriminator's head" : "a classifier", nets[0] ? nets : "none");
  }
  Prompts prompts = {0};
  if (mc.text) {
    if (!c.prompt[0] == !c.prompts[0])
      amd_usage_error("'%s': net '%s' is conditioned on captions (text mode): give %s", ckpt_path, c.net,
                      c.prompt[0] ? "prompt= or prompts=, not both" : "prompt=\"a bag above a boot\" or prompts=FILE");
    if (c.cls >= 0)
      amd_usage_error("config key 'class' = %d: net '%s' of '%s' is conditioned on captions; use prompt= or prompts=",
                      c.cls, c.net, ckpt_path);
    if (mc.vocab != caption_vocab_size() || mc.max_text != CAPTION_MAX_TOKENS)
      amd_usage_error("'%s': net '%s' reads %d token ids below %d, not amd's captions (%d below %d)", ckpt_path, c.net,
                      mc.max_text, mc.vocab, CAPTION_MAX_TOKENS, caption_vocab_size());
    prompts_read(&c, &prompts);
  } else if (c.prompt[0] || c.prompts[0]) {
    amd_usage_error("config key '%s': net '%s' of '%s' is conditioned on class labels, not captions (use class=)",
                    c.prompt[0] ? "prompt" : "prompts", c.net, ckpt_path);
  }
  if (c.cls >= mc.num_classes)
    amd_usage_error("config key 'class' = %d: the model has %d classes (0..%d, or -1 for mixed)", c.cls,
                    mc.num_classes, mc.num_classes - 1);
  int generator = strcmp(c.sampler, "generator") == 0;
  if (generator && c.cfg != 1.0)
    amd_usage_error("config key 'cfg' = %g: a distilled student samples without guidance (its teacher's guidance is "
                    "built in); leave cfg = 1 with sampler=generator", c.cfg);
  if (c.png[0] && mc.img_size == 0 && mc.dim != 2)
    amd_usage_error("config key 'png': png= draws 2-D data or images; net '%s' makes vectors of %d", c.net, mc.dim);
  if (c.batch == 0) c.batch = mc.img_size > 0 ? 100 : 1024;
  int per_call = c.batch < c.n ? c.batch : c.n;
  Model *model = model_create_flags(&mc, c.cfg != 1.0 ? 2 * per_call : per_call, MODEL_INFERENCE);
  char load_name[CFG_STR_MAX + 8];
  CkptState st;
  CkptNet net = {weights_net(&c, ckpt_path, load_name, sizeof load_name), model, NULL, NULL};
  model_ckpt_load(ckpt_path, &st, &net, 1);
  size_t len = strlen(net.name), suffix = strlen(EMA_SUFFIX);
  const char *weights = len > suffix && strcmp(net.name + len - suffix, EMA_SUFFIX) == 0 ? "ema" : "raw";
  if (c.steps == 0) c.steps = !generator ? 50 : st.student_steps > 0 ? (int)st.student_steps : 1;
  /* the checkpoint's dataset (checked by content when the scatter plot draws its mode centres), or data= */
  char *data_path = c.data[0] ? strdup(c.data) : ckpt_read_attr(ckpt_path, "data");
  char *fingerprint = c.data[0] ? strdup("") : ckpt_read_attr(ckpt_path, "data_fingerprint");
  Dataset plot_data = {0};
  int have_mix = 0;
  if (c.png[0] && mc.img_size == 0 && data_path[0]) {
    if (!c.data[0]) {
      free(data_path);
      data_path = dataset_read_recorded(ckpt_path, "amd-checkpoint", &plot_data,
                                        "pass data= to plot over another dataset, or leave out png=");
    } else {
      dataset_read(data_path, "amd-dataset", &plot_data);
    }
    have_mix = plot_data.has_mixture;
  }
  char data_abs[CFG_STR_MAX + 4200];
  if (data_path[0] && cfg_absolute_path(data_path, data_abs, sizeof data_abs) == 0) {
    free(data_path);
    data_path = strdup(data_abs);
  }

  long i0, i1;
  dist_split(c.n, &i0, &i1);
  long local = i1 - i0;
  int D = mc.dim;
  float *x_host = mallocCheck(sizeof(float) * (size_t)(local ? local : 1) * D);
  int *labels = mallocCheck(sizeof(int) * (size_t)(local ? local : 1));
  /* a caption model: labels are the prompts' indices, the model reads their token ids */
  for (long i = 0; i < local; i++)
    labels[i] = mc.text ? (int)((i0 + i) % prompts.n) : c.cls >= 0 ? c.cls : (int)((i0 + i) % mc.num_classes);
  int *model_labels = labels;
  if (mc.text) {
    model_labels = mallocCheck(sizeof(int) * (size_t)(local ? local : 1) * CAPTION_MAX_TOKENS);
    for (long i = 0; i < local; i++)
      memcpy(model_labels + i * CAPTION_MAX_TOKENS, prompts.tokens + (size_t)labels[i] * CAPTION_MAX_TOKENS,
             sizeof(int) * CAPTION_MAX_TOKENS);
  }

  SampleDraw *draw = sample_draw_create(model, c.sampler, c.steps, c.cfg, c.shift, per_call);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = amd_time();
  uint64_t seed = strcmp(c.noise, "eval") == 0 ? evalrun_noise_seed((uint64_t)c.seed) : (uint64_t)c.seed;
  int nfe = sample_draw(draw, x_host, model_labels, local, seed, i0);
  MPI_Barrier(MPI_COMM_WORLD);
  double seconds = amd_time() - t0;
  MPI_Bcast(&nfe, 1, MPI_INT, 0, MPI_COMM_WORLD);

  float *all_x;
  int *all_labels;
  long total = dist_gather_rows(x_host, labels, local, D, &all_x, &all_labels);
  if (dist_rank() == 0) {
    long bad = 0;
    for (long i = 0; i < total * D; i++) bad += !isfinite(all_x[i]);
    CHECK(bad == 0, "sampling produced %ld non-finite values: the checkpoint '%s' is damaged or diverged", bad, ckpt_path);
    Dataset out = {.n = total, .ndim = 1, .shape = {D}, .dim = D, .num_classes = mc.text ? prompts.n : mc.num_classes,
                   .x = all_x, .labels = all_labels};
    /* a caption model's classes are its prompts (png=: a row each), named by them when they fit */
    for (int i = 0, at = 0; mc.text && i < prompts.n; i++) {
      int len = (int)strlen(prompts.text[i]) + (i > 0);
      if (at + len >= (int)sizeof out.class_names) {
        out.class_names[0] = '\0';
        break;
      }
      at += snprintf(out.class_names + at, sizeof out.class_names - (size_t)at, "%s%s", i ? "," : "", prompts.text[i]);
    }
    if (mc.img_size > 0) out.ndim = 3, out.shape[0] = mc.img_channels, out.shape[1] = out.shape[2] = mc.img_size;
    snprintf(out.source, sizeof out.source, "amd sample %.16s %d steps", c.sampler, c.steps);
    SampleInfo info = {&c, mc.text ? &prompts : NULL, total, all_labels, ckpt_path, data_path, fingerprint, weights, nfe, seconds};
    char *text = cfg_to_text(sample_keys, &c);
    amd_mkdirs_parent(c.out);
    dataset_write(c.out, &out, "amd-samples", text, write_sample_attrs, &info);
    free(text);
    printf("wrote %s: %ld samples, %s %d steps, cfg %g, NFE %d, %.3f s (%.0f samples/s), %s weights of /%s\n", c.out,
           total, c.sampler, c.steps, c.cfg, nfe, seconds, total / (seconds + 1e-12), weights, net.name);
    if (c.png[0]) {
      samples_png(c.png, &out, c.png_cols, have_mix ? &plot_data.mix : NULL, c.plot_range);
      printf("wrote %s\n", c.png);
    }
    free(all_x), free(all_labels);
  }
  if (model_labels != labels) free(model_labels);
  if (mc.text) prompts_free(&prompts);
  free(x_host), free(labels), free(data_path), free(fingerprint);
  if (plot_data.x) dataset_free(&plot_data);
  sample_draw_free(draw);
  model_free(model);
  return 0;
}
