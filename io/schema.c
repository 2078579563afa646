/* schema.c: the table of every dataset amd writes (schema.h). Keep it in step with docs/DESIGN.md
 * section 6: a new dataset or log column gets a row here, or writing it stops the program. */
#include "schema.h"

#include <fnmatch.h>
#include <string.h>

#define DS "amd-dataset"
#define SA "amd-samples"
#define CK "amd-checkpoint"
#define LG "amd-log"
#define EV "amd-eval"
#define SD "amd-step-dump"
#define F SCHEMA_FLOAT
#define I SCHEMA_INT
#define T SCHEMA_TEXT
#define R SCHEMA_RECORD

/* shared by the teacher and the distillation /train tables */
#define RATE "training throughput over the log interval this row ends; NaN on rows inside an interval"
#define TIME "seconds of training up to this row, summed over every resume of the run (from the checkpoint it resumed from)"

static const SchemaEntry table[] = {
    /* datasets and samples (io/dataset.c) */
    {DS, "/x", F, "1", "the data: (N, D) vectors, or (N, C, H, W) images with pixel values scaled to [-1, 1]"},
    {SA, "/x", F, "1", "generated samples, shaped as the data: (N, D) vectors or (N, C, H, W) images in [-1, 1]"},
    {DS "|" SA, "/labels", I, "index", "class of each sample, 0 .. num_classes - 1 (for samples: the class asked for)"},
    {DS, "/mixture/means", F, "1", "centre of each mode of the Gaussian mixture the toy data is drawn from, (modes, 2)"},
    {DS, "/mixture/weights", F, "1", "weight of each mode in the mixture (they sum to 1)"},
    {DS, "/mixture/mode_class", I, "index", "class that owns each mode"},
    /* captioned canvases (io/captions.c, amd data compose) */
    {DS, "/captions/text", T, "text", "the caption of each canvas, in the grammar of docs/DESIGN.md section 13"},
    {DS, "/captions/tokens", I, "index", "token ids of each caption, (N, L): words of /captions/vocab, padded with 0"},
    {DS, "/captions/category", I, "index", "category of each caption: an index into the attribute categories"},
    {DS, "/captions/held_out", I, "1", "1 when the caption names a class pair held out of the train split, else 0"},
    {DS, "/captions/vocab", T, "text", "the vocabulary: the word of each token id (0 padding; the empty caption is all padding)"},
    /* a caption model's samples (amd sample prompt= or prompts=); /labels is then the prompt's index */
    {SA, "/captions/text", T, "text", "the caption each sample was drawn for (prompt= or a line of prompts=)"},
    {SA, "/captions/tokens", I, "index", "token ids of each sample's caption, (N, L): words of /captions/vocab, padded with 0"},
    {SA, "/captions/vocab", T, "text", "the vocabulary: the word of each token id (0 padding)"},
    {DS, "/layout/class", I, "index", "class of each item on the canvas, (N, 4), the first named first; -1 past the last"},
    {DS, "/layout/cell", I, "index", "cell of each item, row * grid + column (0 top left), (N, 4); -1 past the last"},
    {DS, "/layout/source", I, "index", "index of each item's image in the source split's IDX file, (N, 4); -1 past the last"},

    /* checkpoints (io/ckpt.c) */
    {CK, "/counters", F, "count",
     "[0] fake-teacher updates done, [1] S, the student's steps (distillation; 0 for training), [2] divergence "
     "rollbacks so far, [3] reserved (0)"},
    {CK, "/*_ema/params", F, "1",
     "exponential moving average of /<net>/params (ema.decay, ema.power; docs/DESIGN.md section 2.6), laid out as "
     "/<net>_ema/layout says: the weights amd sample and amd distill teacher= use by default"},
    {CK, "/*/params", F, "1", "the network's parameters: one flat vector, each tensor placed as /<net>/layout says"},
    {CK, "/*/adam_m", F, "1", "AdamW first moment of every parameter (running mean of the gradient)"},
    {CK, "/*/adam_v", F, "1", "AdamW second moment of every parameter (running mean of the squared gradient)"},
    {CK, "/*/layout", R, "1", "the tensor table of /<net>/params: name, offset (in values), ndim, shape"},

    /* logs (io/trainlog.c; the columns are named by src/cmd_train.c, src/cmd_distill.c, src/timing.c) */
    {LG, "/events/step", I, "steps", "optimizer steps done when the event happened"},
    {LG, "/events/message", T, "text",
     "what happened: a resume, a stop signal, a divergence, a rollback, a damaged checkpoint passed over"},
    {LG, "/train/step", I, "steps", "optimizer steps done: the step this row ends (1 for the first)"},
    {LG, "/train/loss", F, "1",
     "training loss of the step, mean over the global batch (teacher: flow-matching MSE of the velocity; "
     "classifier: cross-entropy)"},
    {LG, "/train/grad_norm", F, "1", "global L2 norm of the gradient of the step"},
    {LG, "/train/lr", F, "1", "learning rate of the step (cosine schedule, times the rollback backoff)"},
    {LG, "/train/accuracy", F, "1", "classifier: share of the training batch classified right"},
    {LG, "/train/test_accuracy", F, "1", "classifier: share of the test split classified right, at checkpoints; NaN elsewhere"},
    {LG, "/train/loss_dm", F, "1", "distribution-matching loss of the generator (student) update"},
    {LG, "/train/loss_fake", F, "1", "flow-matching loss of the fake teacher, mean over its updates of the step"},
    {LG, "/train/loss_gan_g", F, "1", "GAN loss of the generator (dmd2, dmdr, amd; 0 otherwise)"},
    {LG, "/train/loss_gan_d", F, "1", "GAN loss of the discriminator head (dmd2, dmdr, amd; 0 otherwise)"},
    {LG, "/train/loss_reg", F, "1", "regression loss against teacher ODE pairs, times dmd.lambda_reg (dmd; 0 otherwise)"},
    {LG, "/train/loss_reward", F, "1", "reward term of the generator loss, -lambda_r x mean reward (dmdr; 0 otherwise)"},
    {LG, "/train/grad_norm_student", F, "1", "global L2 norm of the student's gradient"},
    {LG, "/train/grad_norm_fake", F, "1", "global L2 norm of the fake teacher's gradient (its last update of the step)"},
    {LG, "/train/lr_student", F, "1", "learning rate of the student (schedule times the rollback backoff)"},
    {LG, "/train/lr_fake", F, "1", "learning rate of the fake teacher and the GAN head"},
    {LG, "/train/reward_mean", F, "1", "mean reward R(x, c) of the generator batch (toy: log-density; images: log p(c | x))"},
    {LG, "/train/reward_std", F, "1", "standard deviation of the reward over the generator batch"},
    {LG, "/train/forbidden_frac", F, "1", "share of the batch with a negative advantage (likely Forbidden Zone samples)"},
    {LG, "/train/off_manifold_frac", F, "1", "toy: share of the batch beyond 3 sigma of every mode; NaN on images"},
    {LG, "/train/alpha_mean", F, "1", "mean of alpha = 1 + s A, the weight of the teacher's conditional pull (1 unless amd)"},
    {LG, "/train/alpha_std", F, "1", "standard deviation of alpha over the batch"},
    {LG, "/train/beta_mean", F, "1", "mean of beta = 1 - s A, the weight of distribution matching (1 unless amd)"},
    {LG, "/train/beta_std", F, "1", "standard deviation of beta over the batch"},
    {LG, "/train/fake_weight_mean", F, "1", "mean of W = exp(-lambda_rls A), the fake teacher's per-sample loss weight"},
    {LG, "/train/fake_weight_min", F, "1", "smallest fake-teacher loss weight W of the batch"},
    {LG, "/train/fake_weight_max", F, "1", "largest fake-teacher loss weight W of the batch"},
    {LG, "/train/norm_dc_x", F, "1", "mean over the batch of |d_c - x|: the real teacher's denoised output from the sample"},
    {LG, "/train/norm_df_x", F, "1", "mean over the batch of |d_f - x|: the fake teacher's denoised output from the sample"},
    {LG, "/train/norm_dc_du", F, "1", "mean over the batch of |d_c - d_u|: conditional minus unconditional teacher (guidance)"},
    {LG, "/train/cos_real_fake", F, "1", "mean over the batch of the cosine between d_c - x and d_f - x"},
    {LG, "/train/k_sim", I, "steps", "the student step k (1..S) backward simulation trained at this step"},
    {LG, "/train/samples_per_s", F, "samples/s", RATE},
    {LG, "/train/time", F, "s", TIME},
    {LG, "/train/comm_bytes", F, "bytes",
     "bytes rank 0 sent plus received in the step's ZeRO collectives of every network (gradient reduce-scatter and "
     "all-gathers, stage 3's unit gathers and reduce-scatters; payload as a direct exchange would move it, "
     "mpi/dist.h); NaN on rows logged before amd counted them"},
    {LG, "/train/comm_bytes_*", F, "bytes",
     "the same for one network: student, fake (teacher), disc (GAN head), real (teacher)"},
    {LG, "/train/comm_s", F, "s",
     "seconds rank 0 spent inside those collectives in the step (staging and waiting for other ranks included)"},
    {LG, "/memory/step", I, "steps", "optimizer steps done when the run started (0) or resumed: one row per start"},
    {LG, "/memory/ranks", I, "count", "MPI ranks of that start"},
    {LG, "/memory/zero", I, "index", "its ZeRO stage (config key zero)"},
    {LG, "/memory/*_params", I, "bytes",
     "bytes per rank of the network's stored parameters (the largest rank's shard)"},
    {LG, "/memory/*_gradients", I, "bytes", "bytes per rank of its gradient buffer (0 for the frozen real teacher)"},
    {LG, "/memory/*_moments", I, "bytes", "bytes per rank of its AdamW moments, m and v (0 when frozen)"},
    {LG, "/memory/*_ema", I, "bytes", "bytes per rank of the EMA of its weights (0 when it keeps none)"},
    {LG, "/memory/*_gathered", I, "bytes",
     "bytes per rank of its ZeRO stage-3 buffers: two units' gathered weights, a unit's gradient and its reduced part"},
    {LG, "/advantage/step", I, "steps", "optimizer steps done: the step whose generator batch these records are"},
    {LG, "/advantage/prompt", I, "index", "the sample's prompt: the class it was generated for "
                                                  "(a caption teacher: its caption's index in the data)"},
    {LG, "/advantage/group", I, "index", "the sample's group of amd.K samples of one prompt (global index)"},
    {LG, "/advantage/rank", I, "index", "the rank that generated the sample"},
    {LG, "/advantage/reward", F, "1", "the sample's reward R(x, c)"},
    {LG, "/advantage/advantage", F, "1", "group-relative advantage A = clip((r - mean_g r) / (std_g r + eps), -1, 1)"},
    {LG, "/advantage/alpha", F, "1", "alpha = 1 + s A: weight of the teacher's conditional pull (1 unless amd)"},
    {LG, "/advantage/beta", F, "1", "beta = 1 - s A: weight of distribution matching (1 unless amd)"},
    {LG, "/advantage/fake_weight", F, "1", "W = exp(-lambda_rls A): the sample's weight in the fake teacher's loss"},
    {LG, "/timing/step", I, "steps", "optimizer steps done at the end of the log interval"},
    {LG, "/timing/rank", I, "index", "the rank the row is about"},
    {LG, "/timing/compute", F, "s", "seconds of the interval neither in MPI collectives nor writing files"},
    {LG, "/timing/comm", F, "s", "seconds of the interval inside MPI collectives, waiting for slower ranks included"},
    {LG, "/timing/io", F, "s", "seconds of the interval writing the log and checkpoints"},
    {LG, "/eval/step", I, "steps", "optimizer steps done when the network was evaluated (0: before the first step)"},
    {LG, "/eval/weights", I, "index", "the weights evaluated: 0 the raw (trained) parameters, 1 their moving average (EMA)"},
    {LG, "/eval/samples", I, "count", "samples of the evaluation's fixed noise set (eval.n), classes (captions: eval.data's first ones) in turn"},
    {LG, "/eval/nfe", I, "count", "network evaluations per sample (teacher: eval.steps Euler steps; student: its S)"},
    {LG, "/eval/coverage", F, "1", "toy: share of modes holding at least 10% of their target count (as amd eval)"},
    {LG, "/eval/modes_covered", I, "count", "toy: modes holding at least 10% of their target count"},
    {LG, "/eval/off_manifold", F, "1", "toy: share of samples beyond 3 sigma of every mode (the measurable Forbidden Zone)"},
    {LG, "/eval/mass_error", F, "1", "toy: total variation between the modes' masses and their targets, off-manifold mass included"},
    {LG, "/eval/wrong_class", F, "1", "toy: share of on-manifold samples whose nearest mode belongs to another class"},
    {LG, "/eval/sliced_w1", F, "1", "toy: sliced 1-Wasserstein distance between the samples and the data (128 directions)"},
    {LG, "/eval/log_density", F, "1", "toy: mean log p(x | c) of the samples under the true class-conditional mixture"},
    {LG, "/eval/fd", F, "1", "images: Frechet distance between evaluator features of the samples and of eval.data's images (captions: canvases, cell features)"},
    {LG, "/eval/precision", F, "1", "images: k-NN precision, share of samples inside the reference images' feature manifold"},
    {LG, "/eval/recall", F, "1", "images: k-NN recall, share of reference images inside the samples' feature manifold"},
    {LG, "/eval/geneval_overall", F, "1", "captions: share of samples whose cells, read by eval.evaluator, hold their caption (NaN: none)"},
    {LG, "/eval/geneval_single", F, "1", "captions: that share among one-object captions (NaN: none)"},
    {LG, "/eval/geneval_two", F, "1", "captions: that share among two-object captions (NaN: none)"},
    {LG, "/eval/geneval_counting", F, "1", "captions: that share among counting captions (NaN: none)"},
    {LG, "/eval/geneval_position", F, "1", "captions: that share among position captions (NaN: none)"},
    {LG, "/eval/geneval_seen", F, "1", "captions: that share among captions naming no held-out pair (NaN: none)"},
    {LG, "/eval/geneval_heldout", F, "1", "captions: that share among captions naming a held-out pair of eval.data (NaN: none)"},
    {LG, "/eval/accuracy", F, "1", "images: share of samples the evaluator assigns to the class they were generated for"},
    {LG, "/eval/seconds", F, "s", "wall-clock seconds of the evaluation (sampling and metrics), not counted in samples/s"},

    /* eval files (src/cmd_eval.c) */
    {EV, "/eval/n", I, "count", "samples evaluated"},
    {EV, "/eval/coverage", F, "1", "share of modes holding at least 10% of their target count"},
    {EV, "/eval/modes_covered", I, "count", "modes holding at least 10% of their target count"},
    {EV, "/eval/off_manifold", F, "1", "share of samples beyond 3 sigma of every mode (the measurable Forbidden Zone)"},
    {EV, "/eval/mass_error", F, "1", "total variation between the modes' masses and their targets, 0.5 sum |mass - target|"},
    {EV, "/eval/wrong_class", F, "1", "share of on-manifold samples whose nearest mode belongs to another class"},
    {EV, "/eval/sliced_w1", F, "1", "sliced 1-Wasserstein distance between samples and data"},
    {EV, "/eval/log_density", F, "1", "mean log p(x | c) of the samples under the true class-conditional mixture"},
    {EV, "/eval/mode_mass", F, "1", "share of on-manifold samples whose nearest mode is each mode"},
    {EV, "/eval/target_mass", F, "1", "the share each mode should hold, from the samples' labels and the mixture weights"},
    {EV, "/eval/fd", F, "1", "Frechet distance between evaluator features of the samples and of the reference images"},
    {EV, "/eval/precision", F, "1", "k-NN precision: share of samples inside the reference images' feature manifold"},
    {EV, "/eval/recall", F, "1", "k-NN recall: share of reference images inside the samples' feature manifold"},
    {EV, "/eval/accuracy", F, "1", "share of samples the evaluator assigns to the class they were generated for"},
    {EV, "/eval/accuracy_of_data", F, "1", "the same share for the reference images"},
    {EV, "/eval/reward", F, "1", "mean training reward of the samples (with reward=): log p(c | x), or for captions log P(cells hold c)"},
    {EV, "/eval/geneval_overall", F, "1", "captions: share of samples whose cells, read by the evaluator, hold their caption (NaN: none)"},
    {EV, "/eval/geneval_single", F, "1", "captions: that share among one-object captions (NaN: none)"},
    {EV, "/eval/geneval_two", F, "1", "captions: that share among two-object captions (NaN: none)"},
    {EV, "/eval/geneval_counting", F, "1", "captions: that share among counting captions (NaN: none)"},
    {EV, "/eval/geneval_position", F, "1", "captions: that share among position captions (NaN: none)"},
    {EV, "/eval/geneval_seen", F, "1", "captions: that share among captions naming no held-out pair (NaN: none)"},
    {EV, "/eval/geneval_heldout", F, "1", "captions: that share among captions naming a held-out pair of the data (NaN: none)"},
    {EV, "/eval/heldout_samples", I, "count", "captions: samples whose caption names a held-out pair"},
    {EV, "/eval/geneval_of_data", F, "1", "captions: the overall share for the reference canvases with their own captions"},
    {EV, "/eval/samples", I, "count", "samples evaluated"},
    {EV, "/eval/reference", I, "count", "reference images compared with"},
    {EV, "/eval/nfe", I, "count", "network evaluations per sample (from the samples file)"},
    {EV, "/eval/samples_per_s", F, "samples/s", "sampling throughput of amd sample (from the samples file)"},
    /* the testing dump of one distillation step (io/stepdump.h, src/distill.c; fault.dump_step): groups
     * /fake<f> (the step's fake-teacher update f) and /generator (its generator update) */
    {SD, "/*/labels", I, "index", "the class of each sample's prompt (K samples a prompt); a caption teacher: (B, max_text) token ids"},
    {SD, "/*/gen_t", F, "1", "t of the student step that made the samples (the step with gradient in the generator update)"},
    {SD, "/*/gen_xt", F, "1", "the input x_t of that student step, (B, D): the starting noise when S = 1"},
    {SD, "/*/x", F, "1", "the student's samples x = x_t - t v(x_t, t, c), (B, D)"},
    {SD, "/*/reward", F, "1", "R(x, c) of each sample (0 without a reward)"},
    {SD, "/*/advantage", F, "1", "group-relative advantage A of each sample"},
    {SD, "/*/fake_weight", F, "1", "W of each sample: its weight in the fake teacher's flow loss (1 unless amd)"},
    {SD, "/*/alpha", F, "1", "alpha = 1 + s A of each sample (1 unless amd)"},
    {SD, "/*/beta", F, "1", "beta = 1 - s A of each sample (1 unless amd)"},
    {SD, "/*/flow_t", F, "1", "t of the fake teacher's flow loss, per sample"},
    {SD, "/*/flow_noise", F, "1", "noise e of the fake teacher's flow loss, (B, D)"},
    {SD, "/*/loss_flow", F, "1", "unweighted flow loss of each sample, mean over D of (v_fake - (e - x))^2"},
    {SD, "/*/disc_real_x", F, "1", "the data points the discriminator sees as real, (B, D)"},
    {SD, "/*/disc_real_labels", I, "index", "their classes; a caption teacher: their captions, (B, max_text) token ids"},
    {SD, "/*/disc_real_t", F, "1", "t of the real points' noising"},
    {SD, "/*/disc_real_noise", F, "1", "noise of the real points' noising, (B, D)"},
    {SD, "/*/disc_gen_t", F, "1", "t of the generated samples' noising for the discriminator"},
    {SD, "/*/disc_gen_noise", F, "1", "noise of the generated samples' noising for the discriminator, (B, D)"},
    {SD, "/*/loss_disc_real", F, "1", "softplus(-D(x_t)) of each real point, unweighted"},
    {SD, "/*/loss_disc_gen", F, "1", "softplus(D(x_t)) of each generated sample, unweighted"},
    {SD, "/*/dmd_t", F, "1", "t of the distribution-matching loss and the generator's GAN term, per sample"},
    {SD, "/*/dmd_noise", F, "1", "noise of the distribution-matching loss and the generator's GAN term, (B, D)"},
    {SD, "/*/dmd_stats", F, "1",
     "per sample: loss_dm, the normalizer n, |d_c - x|, |d_f - x|, |d_c - d_u| and the cosine of d_c - x and d_f - x, (B, 6)"},
    {SD, "/*/loss_gan", F, "1", "softplus(-D(x_t)) of each sample in the generator's GAN term, unweighted"},
    {SD, "/*/grad_norm", F, "1", "global L2 norm of the update's gradient (fake teacher, or student), before clipping"},
    {SD, "/*/grad_norm_disc", F, "1", "global L2 norm of the GAN head's gradient in a fake update, before clipping"},
};

static int kind_listed(const char *kinds, const char *kind) {
  if (strcmp(kinds, "*") == 0) return 1;
  size_t n = strlen(kind);
  for (const char *p = kinds; p; p = strchr(p, '|')) {
    if (*p == '|') p++;
    if (strncmp(p, kind, n) == 0 && (p[n] == '\0' || p[n] == '|')) return 1;
  }
  return 0;
}

const SchemaEntry *schema_find(const char *kind, const char *path) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (kind_listed(table[i].kinds, kind) && fnmatch(table[i].path, path, FNM_PATHNAME) == 0) return &table[i];
  return NULL;
}

SchemaType schema_type_of(hid_t file_type) {
  switch (H5Tget_class(file_type)) {
    case H5T_INTEGER: return SCHEMA_INT;
    case H5T_STRING: return SCHEMA_TEXT;
    case H5T_COMPOUND: return SCHEMA_RECORD;
    default: return SCHEMA_FLOAT;
  }
}

const char *schema_type_name(SchemaType t) {
  static const char *names[] = {"float", "int", "text", "record"};
  return names[t];
}
