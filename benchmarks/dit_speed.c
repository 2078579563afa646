/* dit_speed.c: training speed of the `dit` model on a backend, against that backend's sgemm
 * ceiling. (a) sgemm GFLOP/s on square matrices and on every GEMM shape one DiT training step
 * calls (OpenBLAS on the CPU, cuBLAS on a GPU); (b) the time of one training step as `amd train`
 * takes it (zero grads, rectified-flow loss forward + backward, gradient norm, AdamW), its GEMM
 * FLOPs counted from the shapes and by the op profiler, and the fractions of the ceilings reached.
 * AMD_PROFILE=1 adds the per-op table of the timed steps (stderr, on exit; on a GPU each op is
 * timed to its completion) and each GEMM shape's GFLOP/s in the step against its ceiling
 * (AMD_PROFILE=cpu: by thread CPU time, the clock for one thread on a shared machine; at one
 * thread the ceilings of (a) are always timed by thread CPU time). The last line is `RESULT key=value ...` for scripts; its PyTorch
 * counterpart is dit_speed_torch.py, and dit_speed.sh runs both.
 *   build/benchmarks/dit_speed [img=28 channels=1 patch=4 width=256 depth=6 heads=4 temb=256
 *                               classes=10 batch=64 warmup=2 steps=10 threads=CORES ceiling=1 device=cpu
 *                               precision=fp32 graphs=0 sample=0 gemm_only=0]
 * sample=1 adds (c): images per second of sampling with this model at `batch` images per call: the
 * teacher's Euler sampler with guidance 2 (two evaluations per step) at 50 and 4 steps, and a
 * student's 1, 2 and 4 unguided evaluations (the cost of generator_run at S steps).
 * device=cuda needs the `make CUDA=1` build (build-cuda/benchmarks/dit_speed); so does precision=tf32
 * (the `precision` setting of amd train: the GEMMs' tensor-core modes, which the ceilings of (a) are
 * then measured in). precision=bf16 runs on both: on the CPU the ceilings of (a) are those of its own
 * bf16 products (src/gemm_bf16.h, AMX tiles where the processor has them) through ops->gemm.
 * graphs=1 replays the step's flow loss forward and backward as a CUDA graph (the cuda.graphs
 * setting).
 * The first warmup step always runs (it counts the FLOPs); ceiling=0 skips part (a).
 * gemm_only=1 (CPU) adds (d): the same steps with only their GEMMs run (gemm_only_table), their
 * time against the step's and the ceilings': the floor that no fusion of the other ops goes below.
 * Not here: MPI (one process). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "common.h"
#include "flow.h"
#include "gemm_bf16.h"
#include "model.h"
#include "ops.h"
#include "ops_profile.h"
#include "optim.h"

typedef struct {
  int img, channels, patch, width, depth, heads, temb, classes, batch, warmup, steps, threads, ceiling, sample, graphs,
      gemm_only;
  const char *device, *precision;
} Args;

static void parse_args(Args *a, int argc, char **argv) {
  struct { const char *key; int *v; } keys[] = {
      {"img", &a->img},         {"channels", &a->channels}, {"patch", &a->patch},     {"width", &a->width},
      {"depth", &a->depth},     {"heads", &a->heads},       {"temb", &a->temb},       {"classes", &a->classes},
      {"batch", &a->batch},     {"warmup", &a->warmup},     {"steps", &a->steps},     {"threads", &a->threads},
      {"ceiling", &a->ceiling}, {"sample", &a->sample},   {"graphs", &a->graphs},     {"gemm_only", &a->gemm_only},
  };
  for (int i = 1; i < argc; i++) {
    const char *eq = strchr(argv[i], '=');
    int found = 0;
    if (strncmp(argv[i], "device=", 7) == 0) {
      a->device = argv[i] + 7;
      continue;
    }
    if (strncmp(argv[i], "precision=", 10) == 0) {
      a->precision = argv[i] + 10;
      continue;
    }
    for (size_t k = 0; eq && k < sizeof keys / sizeof keys[0]; k++)
      if (strlen(keys[k].key) == (size_t)(eq - argv[i]) && strncmp(argv[i], keys[k].key, (size_t)(eq - argv[i])) == 0)
        *keys[k].v = atoi(eq + 1), found = 1;
    if (!found) amd_usage_error("dit_speed: unknown argument '%s' (see the comment at the top of dit_speed.c)", argv[i]);
  }
  CHECK(a->steps >= 1 && a->warmup >= 0 && a->batch >= 1, "dit_speed: need steps >= 1, warmup >= 0, batch >= 1");
}

/* ---- the GEMMs of one training step ---------------------------------------------------------- */

/* C (M, N) = op(A) op(B) with op(A) (M, K), `batch` times, `count` times per step */
typedef struct {
  const char *what;
  int tA, tB, M, N, K, batch, count;
  double gflops; /* measured ceiling of this shape */
} Shape;

#define MAX_SHAPES 64
typedef struct {
  Shape s[MAX_SHAPES];
  int n;
} Shapes;

static void add_shape(Shapes *l, const char *what, int tA, int tB, int M, int N, int K, int batch, int count) {
  for (int i = 0; i < l->n; i++) {
    Shape *s = &l->s[i];
    if (s->tA == tA && s->tB == tB && s->M == M && s->N == N && s->K == K && s->batch == batch) {
      s->count += count;
      return;
    }
  }
  CHECK(l->n < MAX_SHAPES, "dit_speed: more than %d GEMM shapes", MAX_SHAPES);
  l->s[l->n++] = (Shape){what, tA, tB, M, N, K, batch, count, 0};
}

/* layers.c: forward gemm(0, 1, B, O, I); backward dinp gemm(0, 0, B, I, O), dW gemm(1, 0, O, I, B) */
static void add_linear(Shapes *l, const char *what, int B, int in, int out, int count, int dinp) {
  add_shape(l, what, 0, 1, B, out, in, 1, count);
  if (dinp) add_shape(l, what, 0, 0, B, in, out, 1, count);
  add_shape(l, what, 1, 0, out, in, B, 1, count);
}

/* Every GEMM of dit_forward + dit_backward (output gradient only, as flow_train_batch calls it). */
static void dit_step_shapes(Shapes *l, const ModelConfig *c, int B) {
  int C = c->width, L = c->depth, NH = c->heads, hs = C / NH, g = c->img_size / c->patch, T = g * g, BT = B * T;
  int P = c->patch * c->patch * c->img_channels, n = B * NH;
  add_linear(l, "patch", BT, P, C, 1, 0);
  add_linear(l, "time.fc1", B, c->temb_dim, C, 1, 0);
  add_linear(l, "time.fc2", B, C, C, 1, 1);
  add_linear(l, "ada", B, C, 6 * C, L, 1);
  add_linear(l, "qkv", BT, C, 3 * C, L, 1);
  add_linear(l, "proj", BT, C, C, L, 1);
  add_linear(l, "fc1", BT, C, 4 * C, L, 1);
  add_linear(l, "fc2", BT, 4 * C, C, L, 1);
  add_shape(l, "att q k^T", 0, 1, T, T, hs, n, 2 * L); /* and dy v^T */
  add_shape(l, "att p v", 0, 0, T, hs, T, n, 2 * L);   /* and datt k */
  add_shape(l, "att p^T dy", 1, 0, T, hs, T, n, 2 * L); /* and datt^T q */
  add_shape(l, "token mean", 0, 0, 1, C, T, B, 1);
  add_linear(l, "final.ada", B, C, 2 * C, 1, 1);
  add_linear(l, "final.out", BT, C, P, 1, 1);
}

static double shape_flops(const Shape *s) { return 2.0 * s->M * s->N * s->K * s->batch; }

/* The clock of the CPU ceilings: the wall clock, or at one thread this thread's CPU time, which
 * OpenBLAS's single-threaded sgemm runs on entirely and which a wait for a shared core does not
 * add to (so the best call is the shape's speed even on a busy machine). */
static int ceiling_cpu_clock;
static double ceiling_now(void) {
  if (!ceiling_cpu_clock) return omp_get_wtime();
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of one call of op(A) op(B) (a loop over the batch), raw cblas_sgemm as cpu_gemm calls it. */
static double time_sgemm(int tA, int tB, int M, int N, int K, int batch, double budget) {
  long sa = (long)M * K, sb = (long)K * N, sc = (long)M * N;
  float *A = mallocCheck(sizeof(float) * (size_t)(sa * batch)), *B = mallocCheck(sizeof(float) * (size_t)(sb * batch));
  float *C = mallocCheck(sizeof(float) * (size_t)(sc * batch));
  for (long i = 0; i < sa * batch; i++) A[i] = (float)((i * 7 % 13) - 6) * 0.01f;
  for (long i = 0; i < sb * batch; i++) B[i] = (float)((i * 5 % 11) - 5) * 0.01f;
  int lda = tA ? M : K, ldb = tB ? K : N;
  double best = 1e30, spent = 0;
  for (int rep = 0; rep < 3 || (spent < budget && rep < 1000); rep++) {
    double t0 = ceiling_now();
    for (int i = 0; i < batch; i++)
      cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                  A + i * sa, lda, B + i * sb, ldb, 0.0f, C + i * sc, N);
    double dt = ceiling_now() - t0;
    spent += dt;
    if (rep > 0 && dt < best) best = dt; /* the first call pays for page faults */
  }
  free(A), free(B), free(C);
  return best;
}

/* The same through the backend: ops->gemm, or ops->gemm_batched for a batch (cuBLAS's strided
 * batched GEMM on a GPU), on backend memory, timed to completion. */
static double time_gemm_backend(int tA, int tB, int M, int N, int K, int batch, double budget) {
  long sa = (long)M * K, sb = (long)K * N, sc = (long)M * N;
  float *A = ops->alloc(sizeof(float) * (size_t)(sa * batch)), *B = ops->alloc(sizeof(float) * (size_t)(sb * batch));
  float *C = ops->alloc(sizeof(float) * (size_t)(sc * batch));
  ops->randn(A, 1, (int)(sa * batch), 1, 0, 0, 0);
  ops->randn(B, 1, (int)(sb * batch), 2, 0, 0, 0);
  double best = 1e30, spent = 0;
  for (int rep = 0; rep < 3 || (spent < budget && rep < 1000); rep++) {
    ops->synchronize();
    double t0 = omp_get_wtime();
    if (batch == 1)
      ops->gemm(tA, tB, M, N, K, 1.0f, A, B, 0.0f, C);
    else
      ops->gemm_batched(tA, tB, M, N, K, 1.0f, A, sa, B, sb, 0.0f, C, sc, batch);
    ops->synchronize();
    double dt = omp_get_wtime() - t0;
    spent += dt;
    if (rep > 0 && dt < best) best = dt; /* the first call pays for page faults, cuBLAS's set-up */
  }
  ops->free(A), ops->free(B), ops->free(C);
  return best;
}

/* Under AMD_PROFILE (AMD_PROFILE=cpu at one thread on a shared machine): each GEMM shape's GFLOP/s
 * in the timed steps next to its ceiling from (a), and the time it lost to running below it. The
 * fused linear layers count as their gemm(0, 1) with the pointwise step they fuse in. */
static void gemm_in_step(const Shapes *l, int steps) {
  printf("\nGEMM shapes in the timed steps against their ceilings (profiler's clock):\n  %-24s %-12s %3s %5s %5s %5s "
         "%5s %9s %9s %7s %10s\n", "op", "shape", "op", "M", "N", "K", "batch", "GFLOP/s", "ceiling", "of it", "lost ms/step");
  ProfileShape p;
  double lost = 0;
  for (int i = 0; ops_profile_shape(i, &p); i++) {
    const Shape *s = NULL;
    for (int j = 0; j < l->n && !s; j++)
      if (l->s[j].tA == p.tA && l->s[j].tB == p.tB && l->s[j].M == p.M && l->s[j].N == p.N && l->s[j].K == p.K &&
          l->s[j].batch == p.batch)
        s = &l->s[j];
    double fl = 2.0 * p.M * p.N * p.K * p.batch * p.calls, g = p.seconds > 0 ? fl / p.seconds * 1e-9 : 0;
    double at_ceiling = s ? fl / (s->gflops * 1e9) : p.seconds, ms = (p.seconds - at_ceiling) * 1e3 / steps;
    lost += ms;
    printf("  %-24s %-12s   %c %c %5d %5d %5d %5d %9.1f %9.1f %6.0f%% %10.1f\n", p.op, s ? s->what : "?",
           p.tA ? 'T' : 'N', p.tB ? 'T' : 'N', p.M, p.N, p.K, p.batch, g, s ? s->gflops : 0,
           s ? 100 * g / s->gflops : 0, ms);
  }
  printf("  time these GEMMs lost to running below their ceilings: %.1f ms/step (attention's products are in "
         "attention_forward / attention_backward of the op table)\n", lost);
}

/* ---- the step's GEMMs alone (gemm_only=1, CPU) ------------------------------------------------ */

/* A table that runs only the GEMMs of whatever calls it, in the caller's order and on the caller's
 * buffers: gemm and gemm_batched as they are; each fused linear layer as its one GEMM (x W^T into
 * its output, on OpenBLAS's threads: the ceiling's call) without bias or step; attention as its
 * per-(sample, head) products (scores, then prob v; the backward's four) without the softmax; every
 * other op but memory does nothing (sum_squares and all_finite answer 1). The values are then
 * meaningless and the time is that of the step's GEMMs with their operands where the step leaves
 * them: the floor that no fusion of the other ops goes below. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define NOOP_BODY_(ret)
#define NOOP_BODY_return(ret) return (ret)1;
#define NOOP_OP(ret, op, params, args, rv) static ret noop_##op params { NOOP_BODY_##rv(ret) }
AMD_OPS(NOOP_OP)
#pragma GCC diagnostic pop

static const amd_ops *gemm_only_real; /* the table the GEMMs run on */

static void go_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
  (void)b;
  gemm_only_real->gemm(0, 1, N, O, K, 1.0f, x, W, 0.0f, y);
}
static void go_linear_gelu_forward(float *y, float *dg, float *pre, const float *x, const float *W, const float *b,
                                   int N, int K, int O) {
  (void)dg, (void)b;
  gemm_only_real->gemm(0, 1, N, O, K, 1.0f, x, W, 0.0f, pre ? pre : y); /* pre NULL: z is made in y (ops_list.h) */
}
static void go_linear_residual_forward(float *h_out, float *y, const float *h_in, const float *gate, int ld,
                                       const float *x, const float *W, const float *b, int B, int T, int K, int O) {
  (void)h_out, (void)h_in, (void)gate, (void)ld, (void)b;
  gemm_only_real->gemm(0, 1, B * T, O, K, 1.0f, x, W, 0.0f, y);
}
/* the CPU attention ops' products (src/ops_cpu.c), q, k, v in place in qkv (leading dimension 3C) */
static void go_attention_forward(float *out, float *prob, float *scratch, const float *qkv, int B, int T, int NH,
                                 int hs) {
  (void)scratch;
  long C = (long)NH * hs, tt = (long)T * T;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float *qi = qkv + (long)b * T * 3 * C + (long)h * hs, *ki = qi + C, *vi = qi + 2 * C;
      float *pi = prob + ((long)b * NH + h) * tt;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, qi, (int)(3 * C), ki, (int)(3 * C), 0.0f,
                  pi, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, pi, T, vi, (int)(3 * C), 0.0f,
                  out + (long)b * T * C + (long)h * hs, (int)C);
    }
}
static void go_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *prob,
                                  int B, int T, int NH, int hs) {
  long C = (long)NH * hs, tt = (long)T * T;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      long i = (long)b * NH + h;
      const float *qi = qkv + (long)b * T * 3 * C + (long)h * hs, *ki = qi + C, *vi = qi + 2 * C, *pi = prob + i * tt;
      const float *dy = dout + (long)b * T * C + (long)h * hs;
      float *dp = scratch + i * tt, *dqi = dqkv + (long)b * T * 3 * C + (long)h * hs, *dki = dqi + C, *dvi = dqi + 2 * C;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, (int)C, vi, (int)(3 * C), 0.0f, dp, T);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, pi, T, dy, (int)C, 0.0f, dvi, (int)(3 * C));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, ki, (int)(3 * C), 0.0f, dqi,
                  (int)(3 * C));
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, qi, (int)(3 * C), 0.0f, dki,
                  (int)(3 * C));
    }
}

/* The GEMM-only table over `real` (the CPU table in use) */
static amd_ops gemm_only_table(const amd_ops *real) {
#define NOOP_MEMBER(ret, op, params, args, rv) .op = noop_##op,
  amd_ops t = {AMD_OPS(NOOP_MEMBER)};
#undef NOOP_MEMBER
  gemm_only_real = real;
  t.name = "gemm_only", t.host_memory = real->host_memory;
  t.alloc = real->alloc, t.free = real->free, t.to_device = real->to_device, t.to_host = real->to_host;
  t.copy = real->copy, t.synchronize = real->synchronize, t.graph_run = real->graph_run, t.graph_free = real->graph_free;
  t.gemm = real->gemm, t.gemm_batched = real->gemm_batched;
  t.linear_forward = go_linear_forward, t.linear_gelu_forward = go_linear_gelu_forward;
  t.linear_residual_forward = go_linear_residual_forward;
  t.attention_forward = go_attention_forward, t.attention_backward = go_attention_backward;
  return t;
}

/* ---- the training step, as cmd_train takes it on one rank ----------------------------------- */

typedef struct {
  Model *m;
  AdamW *opt;
  FlowBatch *fb;
  AdamWConfig oc;
  FlowConfig fc;
  float *x0; /* (B, dim) backend memory: the same images every step */
  int *labels;
  int B;
  long step;
} Trainer;

static void train_step(Trainer *t) {
  Model *m = t->m;
  model_zero_grad(m);
  flow_train_batch(m, t->fb, t->x0, t->labels, NULL, t->B, 0, (uint32_t)t->step, 1, &t->fc, t->B);
  double grad_norm = sqrt(ops->sum_squares(m->grads, m->num_params));
  adamw_update(t->opt, m->params, m->grads, &t->oc, t->step, grad_norm);
  ops->synchronize(); /* a GPU step ends when its last kernel does */
  t->step++;
}

/* (c) images/s of sampling: the sampler of `amd sample` on noise, best of 3 calls; a model of its
 * own, with room for the 2B rows of a guided step (the weights do not change the time) */
static void sampling_speed(const ModelConfig *mc, int B, int classes) {
  Model *m = model_create(mc, 2 * B);
  model_init_params(m, 1);
  static const struct { const char *what; double cfg; int steps; } cases[] = {
      {"teacher, 50 Euler steps, guidance 2", 2.0, 50}, {"teacher, 4 Euler steps, guidance 2", 2.0, 4},
      {"student, 1 step", 1.0, 1}, {"student, 2 steps", 1.0, 2}, {"student, 4 steps", 1.0, 4}};
  Sampler *s = sampler_create(m, 2.0, B);
  float *x = ops->alloc(sizeof(float) * (size_t)B * m->cfg.dim);
  int *labels = mallocCheck(sizeof(int) * (size_t)B);
  for (int i = 0; i < B; i++) labels[i] = i % classes;
  double grid[51];
  printf("\nsampling, %d images per call (best of 3 calls):\n", B);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    s->cfg = cases[c].cfg;
    flow_time_grid(grid, cases[c].steps, 1.0);
    double best = 1e30;
    int nfe = 0;
    for (int rep = 0; rep < 3; rep++) {
      ops->randn(x, B, m->cfg.dim, 5, 0, (uint32_t)rep, 0);
      ops->synchronize();
      double t0 = omp_get_wtime();
      nfe = sample_euler(s, x, labels, B, grid, cases[c].steps);
      ops->synchronize();
      double dt = omp_get_wtime() - t0;
      if (dt < best) best = dt;
    }
    printf("  %-36s NFE %3d: %10.1f images/s\n", cases[c].what, nfe, B / best);
    printf("RESULT_SAMPLE what=\"%s\" nfe=%d batch=%d images_s=%.2f\n", cases[c].what, nfe, B, B / best);
  }
  free(labels);
  ops->free(x);
  sampler_free(s);
  model_free(m);
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* gemm_only=1: the same steps on the GEMM-only table (after everything else: the model's values are
 * meaningless afterwards), timed as the real ones; printed beside the step and the ceilings */
static void gemm_only_steps(Trainer *tr, const Args *a, int threads, double ideal_s, double step_ms,
                            double step_flops) {
  CHECK(ops->host_memory, "dit_speed: gemm_only=1 needs the CPU backend");
  const amd_ops *real = ops;
  amd_ops t = gemm_only_table(real);
  ops = &t;
  /* the first step's GEMM FLOPs through the profiler, which counts them by the calls the step makes
   * (a step that skipped its GEMMs would count 0); not under AMD_PROFILE, whose table printed at exit
   * covers the real steps */
  int count = !getenv("AMD_PROFILE") && ops_profile_enable();
  if (count) ops_profile_reset();
  train_step(tr);
  double flops = count ? ops_profile_gemm_flops() : 0;
  if (count) ops_profile_disable(), ops_profile_reset();
  for (int i = 1; i < amd_max_i(a->warmup, 1); i++) train_step(tr);
  double *ms = mallocCheck(sizeof(double) * (size_t)a->steps), cpu0 = cpu_seconds();
  for (int i = 0; i < a->steps; i++) {
    double t0 = omp_get_wtime();
    train_step(tr);
    ms[i] = (omp_get_wtime() - t0) * 1e3;
  }
  double cpu_ms = (cpu_seconds() - cpu0) * 1e3 / a->steps;
  ops = real;
  qsort(ms, (size_t)a->steps, sizeof ms[0], cmp_double);
  double med = a->steps % 2 ? ms[a->steps / 2] : 0.5 * (ms[a->steps / 2 - 1] + ms[a->steps / 2]);
  printf("\nthe step's GEMMs alone (gemm_only=1: its GEMMs in its order on its buffers, every other op skipped), %d "
         "timed after %d:\n  ms/step median %.1f, min %.1f; CPU time %.1f ms/step; the full step %.1f ms\n", a->steps,
         amd_max_i(a->warmup, 1), med, ms[0], cpu_ms, step_ms);
  if (count)
    printf("  GEMM FLOPs/step: %.3f GFLOP counted by the profiler, %.3f GFLOP in the full step%s\n", flops * 1e-9,
           step_flops * 1e-9, fabs(flops - step_flops) <= 1e-9 * step_flops ? " (equal)" : " (DIFFER)");
  if (ideal_s > 0)
    printf("  the GEMMs at their shapes' ceilings %.1f ms = %.1f%% of the GEMMs alone; a step at %.1f ms (1.2 x the "
           "ceilings) leaves %.1f ms for everything else, which takes %.1f ms in this step\n", ideal_s * 1e3,
           100 * ideal_s * 1e3 / med, 1.2 * ideal_s * 1e3, 1.2 * ideal_s * 1e3 - med, step_ms - med);
  printf("RESULT gemm_only=1 threads=%d ms_step=%.2f ms_step_min=%.2f cpu_ms_step=%.2f step_ms=%.2f ideal_gemm_ms=%.2f\n",
         threads, med, ms[0], cpu_ms, step_ms, ideal_s * 1e3);
  free(ms);
}

int main(int argc, char **argv) {
  Args a = {28, 1, 4, 256, 6, 4, 256, 10, 64, 2, 10, (int)sysconf(_SC_NPROCESSORS_ONLN), 1, 0, 0, 0, "cpu", "fp32"};
  parse_args(&a, argc, argv);
  /* host_memory, not the table's address: the profiling table (AMD_PROFILE=1) wraps either backend */
  int threads = backend_init(a.device, a.precision, a.threads), gpu = !ops->host_memory;
  backend_set_graphs(a.graphs);
  /* the CPU's precision=bf16 products are amd's own (src/gemm_bf16.h): their ceilings through the backend */
  int own = !gpu && strcmp(backend_precision(), "bf16") == 0;
  const char *blas = gpu ? "cuBLAS" : own ? (gemm_bf16_amx() ? "AMX bf16" : "bf16-rounded OpenBLAS") : "OpenBLAS";
  const char *dev = gpu ? "cuda" : "cpu";
  double (*time_gemm)(int, int, int, int, int, int, double) = gpu || own ? time_gemm_backend : time_sgemm;
  ceiling_cpu_clock = !gpu && threads == 1;
  double load[3] = {0, 0, 0};
  CHECK(getloadavg(load, 3) == 3, "getloadavg failed");
  printf("dit_speed: %d threads (OpenMP %d, OpenBLAS %d), load average %.2f %.2f %.2f%s%s\n", threads,
         omp_get_max_threads(), openblas_get_num_threads(), load[0], load[1], load[2], gpu ? "" : ", CPU table ",
         gpu ? "" : ops_cpu_isa_name(ops_cpu_best()));

  ModelConfig mc = {.kind = "dit", .dim = a.channels * a.img * a.img, .num_classes = a.classes, .width = a.width,
                    .depth = a.depth, .temb_dim = a.temb, .img_channels = a.channels, .img_size = a.img,
                    .patch = a.patch, .heads = a.heads};
  Shapes shapes = {.n = 0};
  dit_step_shapes(&shapes, &mc, a.batch);
  double shape_total = 0;
  for (int i = 0; i < shapes.n; i++) shape_total += shape_flops(&shapes.s[i]) * shapes.s[i].count;

  /* (a) the sgemm ceiling */
  double peak = 0, ideal_s = 0;
  if (a.ceiling) {
    printf("\nGEMM ceiling (%s, best call, %s):\n  %-12s %5s %5s %5s %5s %5s %6s %9s\n", blas,
           ceiling_cpu_clock ? "thread CPU time" : "wall clock", "shape", "op", "M", "N",
           "K", "batch", "/step", "GFLOP/s");
    int sq_cpu[] = {512, 1024, 2048}, sq_gpu[] = {2048, 4096, 8192}, *sq = gpu ? sq_gpu : sq_cpu;
    for (int i = 0; i < 3; i++) {
      double g = 2.0 * sq[i] * sq[i] * sq[i] / time_gemm(0, 0, sq[i], sq[i], sq[i], 1, 1.0) * 1e-9;
      if (g > peak) peak = g;
      printf("  %-12s %5s %5d %5d %5d %5d %6s %9.1f\n", "square", "N N", sq[i], sq[i], sq[i], 1, "-", g);
    }
    for (int i = 0; i < shapes.n; i++) {
      Shape *s = &shapes.s[i];
      s->gflops = shape_flops(s) / time_gemm(s->tA, s->tB, s->M, s->N, s->K, s->batch, 0.3) * 1e-9;
      ideal_s += shape_flops(s) * s->count / (s->gflops * 1e9);
      printf("  %-12s   %c %c %5d %5d %5d %5d %6d %9.1f\n", s->what, s->tA ? 'T' : 'N', s->tB ? 'T' : 'N', s->M,
             s->N, s->K, s->batch, s->count, s->gflops);
    }
    printf("  peak %.1f GFLOP/s; this step's GEMMs at each shape's ceiling: %.1f ms (%.1f GFLOP/s)\n", peak,
           ideal_s * 1e3, shape_total / ideal_s * 1e-9);
  }

  /* (b) the training step */
  Model *m = model_create(&mc, a.batch);
  model_init_params(m, 1);
  Trainer tr = {.m = m, .opt = adamw_create(m->num_params), .fb = flow_batch_create(a.batch, mc.dim, model_label_ints(&mc)), .B = a.batch,
                .oc = {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .grad_clip = 1.0},
                .fc = {.logit_normal = 1, .t_mean = 0, .t_std = 1, .p_uncond = 0.1}};
  tr.x0 = ops->alloc(sizeof(float) * (size_t)a.batch * mc.dim);
  ops->randn(tr.x0, a.batch, mc.dim, 7, 0, 0, 0);
  tr.labels = mallocCheck(sizeof(int) * (size_t)a.batch);
  for (int i = 0; i < a.batch; i++) tr.labels[i] = i % a.classes;
  printf("\nmodel dit: img %dx%dx%d, patch %d (%d tokens), width %d, depth %d, heads %d, temb %d, classes %d, "
         "batch %d\nnum_params %ld\n", a.img, a.img, a.channels, a.patch, (a.img / a.patch) * (a.img / a.patch),
         a.width, a.depth, a.heads, a.temb, a.classes, a.batch, m->num_params);

  /* one step under the profiler counts its GEMM FLOPs exactly */
  int counting = ops_profile_enable();
  ops_profile_reset();
  train_step(&tr);
  double counted = ops_profile_gemm_flops();
  if (counting) ops_profile_disable();

  for (int i = 1; i < a.warmup; i++) train_step(&tr);
  ops_profile_reset(); /* AMD_PROFILE=1: the table printed on exit covers the timed steps */
  double *ms = mallocCheck(sizeof(double) * (size_t)a.steps), total = 0, cpu0 = cpu_seconds();
  for (int i = 0; i < a.steps; i++) {
    double t0 = omp_get_wtime();
    train_step(&tr);
    ms[i] = (omp_get_wtime() - t0) * 1e3;
    total += ms[i];
  }
  ops_profile_disable(); /* the table covers the timed steps only */
  /* CPU time per step (on one thread, the measure least disturbed by other jobs), and CPU over wall
   * time x threads: near 1 when nothing else took our cores (waiting OpenMP threads spin, so their
   * idle waits count as busy) */
  double cpu_ms = (cpu_seconds() - cpu0) * 1e3 / a.steps, busy = cpu_ms / (total / a.steps * threads);
  qsort(ms, (size_t)a.steps, sizeof ms[0], cmp_double);
  double checksum = ops->sum_squares(m->params, m->num_params); /* equal across builds = same numerics */
  double med = a.steps % 2 ? ms[a.steps / 2] : 0.5 * (ms[a.steps / 2 - 1] + ms[a.steps / 2]);
  double gflops = counted / (med * 1e-3) * 1e-9;
  CHECK(getloadavg(load, 3) == 3, "getloadavg failed");
  printf("training step (zero grads, flow loss forward + backward, grad norm, AdamW), %d timed after %d warmup:\n"
         "  ms/step median %.1f, min %.1f, mean %.1f; %.1f images/s\n", a.steps, a.warmup, med, ms[0],
         total / a.steps, a.batch / (med * 1e-3));
  printf("  GEMM FLOPs/step: %.3f GFLOP counted by the profiler, %.3f GFLOP from the shape table%s\n", counted * 1e-9,
         shape_total * 1e-9, fabs(counted - shape_total) <= 1e-9 * counted ? " (equal)" : " (DIFFER)");
  printf("  achieved %.1f GFLOP/s", gflops);
  if (a.ceiling)
    printf(" = %.1f%% of the %s GEMM peak %.1f; GEMMs alone at their shapes' ceilings would take %.1f ms (%.1f%% of "
           "the step; %.1f%% of its CPU time)", 100 * gflops / peak, blas, peak, ideal_s * 1e3, 100 * ideal_s * 1e3 / med,
           100 * ideal_s * 1e3 / (cpu_ms / threads));
  printf("\n  CPU time %.1f ms/step; sum of squared parameters after %ld steps: %.17g\n  load average after: "
         "%.2f %.2f %.2f; CPU busy %.2f of %d threads\n", cpu_ms, tr.step, checksum, load[0], load[1], load[2], busy,
         threads);
  printf("RESULT impl=c device=%s precision=%s graphs=%d threads=%d batch=%d params=%ld ms_step=%.2f ms_step_min=%.2f images_s=%.2f cpu_ms_step=%.2f "
         "cpu_busy=%.3f gflop_step=%.4f gflop_step_shapes=%.4f gflop_s=%.2f sgemm_peak_gflop_s=%.2f frac_peak=%.4f "
         "ideal_gemm_ms=%.2f frac_ideal_gemm=%.4f frac_ideal_gemm_cpu=%.4f param_sumsq=%.17g load1=%.2f\n",
         dev, backend_precision(), a.graphs, threads, a.batch, m->num_params, med, ms[0], a.batch / (med * 1e-3), cpu_ms, busy, counted * 1e-9,
         shape_total * 1e-9, gflops, peak, peak > 0 ? gflops / peak : 0, ideal_s * 1e3, ideal_s * 1e3 / med,
         ideal_s * 1e3 / (cpu_ms / threads), checksum, load[0]);
  if (!counting && a.ceiling) gemm_in_step(&shapes, a.steps);
  fflush(stdout);
  if (a.sample) sampling_speed(&mc, a.batch, a.classes);
  if (a.gemm_only) gemm_only_steps(&tr, &a, threads, a.ceiling ? ideal_s : 0, med, counted);

  free(ms), free(tr.labels);
  ops->free(tr.x0);
  flow_batch_free(tr.fb);
  adamw_free(tr.opt);
  model_free(m);
  return 0;
}
