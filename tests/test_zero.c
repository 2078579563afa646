/* test_zero.c: ZeRO sharding (mpi/zero.c) and the sharded checkpoint (io/ckpt.c) at any rank count.
 * tests/run.sh runs it as one rank; tests/scenario_zero.sh again under mpirun -np 3, where shards
 * are uneven and the sums cross ranks. Checks:
 *  - shard ranges: contiguous, in rank order, covering the vector, aligned, balanced;
 *  - stages 0, 1 and 2 leave bit-identical parameters on every rank after a few steps, the global
 *    gradient norm matches a double-precision reference, and one rank holds exactly adamw_update;
 *  - a NaN in one rank's gradient, in another rank's shard, makes the norm NaN on every rank;
 *  - the EMA of the weights (core/ema.h) kept by each rank on its shard and gathered
 *    (zero_gather_parts) is bit for bit the EMA of the whole vector, at every stage;
 *  - a checkpoint saved with sharded moments and a sharded EMA holds the global vectors (the EMA as
 *    /student_ema), and loads into the whole range (as one rank would) and into the shards of
 *    other rank counts; one without an EMA starts the EMA from its parameters;
 *  - stage 3 (a model storing its shard, gathering each unit, src/model.h): units as the builders
 *    declare them; for an mlp and a dit, forward outputs, dx, gradient norms and parameters after
 *    three optimizer steps equal those of the whole model at stage 0 (bit for bit at 1 and 2 ranks,
 *    where each element's sum over ranks has one order; at 3 ranks within 1e-6 relative for the
 *    norms and 1e-5 absolute for the parameters: a few float32 roundings of the same sum, while a
 *    wrong part or offset moves them by the size of an update, about the learning rate 1e-2); a
 *    frozen sharded model gives dx and leaves its gradient untouched;
 *  - the bytes each rank's ZeRO collectives count (mpi/dist.h: DistTraffic) at every stage equal the
 *    cost model computed from n, p and the unit layout (docs/DESIGN.md section 7.2.1), stage 3
 *    moving 1.5 times stage 2, with the prefetch on or off (same outputs).
 * MPI is initialized for the whole program, so no case forks (see test_h5.c); a read of a released
 * unit, which must stop the program, runs as `test_zero read_after_release` (tests/scenario_zero.sh). */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <math.h>

#include "model_ckpt.h"
#include "common.h"
#include "dist.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "philox.h"
#include "test.h"
#include "zero.h"

static const ModelConfig t_cfg = {.kind = "mlp", .dim = 2, .num_classes = 3, .width = 12, .depth = 1, .temb_dim = 8};
static const AdamWConfig t_oc = {.lr = 1e-2, .lr_min = 1e-2, .warmup = 0, .cosine = 0, .total_steps = 10,
                                 .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .grad_clip = 0.5};

static void test_shard_ranges(void) {
  const long ns[] = {1, 2, 15, 16, 17, 33, 100, 1000, 6146, 125441, (1L << 20) + 3};
  const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 16, 64, 1000};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
    for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
      long n = ns[i], units = (n + ZERO_ALIGN - 1) / ZERO_ALIGN;
      int p = sizes[j];
      long prev_end = 0, lo = n, hi = 0;
      for (int r = 0; r < p; r++) {
        long b, e;
        zero_shard(n, r, p, &b, &e);
        EXPECT(b == prev_end, "n %ld p %d rank %d: begins at %ld, the previous shard ends at %ld", n, p, r, b, prev_end);
        EXPECT(e >= b && e <= n, "n %ld p %d rank %d: [%ld, %ld)", n, p, r, b, e);
        EXPECT(b % ZERO_ALIGN == 0 || b == n, "n %ld p %d rank %d: begin %ld not aligned", n, p, r, b);
        if (units >= p) EXPECT(e > b, "n %ld p %d rank %d: empty shard", n, p, r);
        prev_end = e;
        lo = e - b < lo ? e - b : lo, hi = e - b > hi ? e - b : hi;
      }
      EXPECT(prev_end == n, "n %ld p %d: shards end at %ld", n, p, prev_end);
      if (units >= p) EXPECT(hi - lo < 2 * ZERO_ALIGN, "n %ld p %d: shards of %ld to %ld values", n, p, lo, hi);
    }
}

/* This rank's local gradient of step s: different on every rank, with signs and scales that make
 * the order of summation matter. */
static void local_grads(float *g, long n, int s) {
  rng_normal(g, n, 7, RNG_METRIC, (uint32_t)s, (uint32_t)dist_rank());
  for (long i = 0; i < n; i++) g[i] *= (float)(1 + i % 5) * (i % 3 ? 1.0f : 1e-3f);
}

/* Three steps of stage `stage` from the same start; returns the parameters and the norms. */
static float *run_stage(int stage, double norms[3]) {
  Model *m = model_create(&t_cfg, 4);
  model_init_params(m, 3);
  ZeroOpt *z = zero_create(m->num_params, stage);
  EXPECT(z->opt->n == (stage == 0 ? m->num_params : z->end - z->begin), "stage %d: moments of %ld values", stage,
         z->opt->n);
  for (int s = 0; s < 3; s++) {
    local_grads(m->grads, m->num_params, s);
    norms[s] = zero_reduce_grads(z, m->grads);
    zero_update(z, m->params, m->grads, &t_oc, s, norms[s]);
  }
  float *p = mallocCheck(sizeof(float) * (size_t)m->num_params);
  memcpy(p, m->params, sizeof(float) * (size_t)m->num_params);
  zero_free(z);
  model_free(m);
  return p;
}

static void test_stages_agree(void) {
  Model *m = model_create(&t_cfg, 4);
  long n = m->num_params;
  model_init_params(m, 3);
  /* reference norms: the summed gradient in double */
  double ref[3], *sum = mallocCheck(sizeof(double) * (size_t)n);
  float *g = mallocCheck(sizeof(float) * (size_t)n);
  for (int s = 0; s < 3; s++) {
    local_grads(g, n, s);
    for (long i = 0; i < n; i++) sum[i] = g[i];
    dist_allreduce_sum_f64v(sum, n);
    double ss = 0;
    for (long i = 0; i < n; i++) ss += sum[i] * sum[i];
    ref[s] = sqrt(ss);
  }
  double norms[3][3];
  float *p[3];
  for (int stage = 0; stage < 3; stage++) p[stage] = run_stage(stage, norms[stage]);
  for (int stage = 0; stage < 3; stage++) {
    for (int s = 0; s < 3; s++) {
      EXPECT_CLOSE(norms[stage][s], ref[s], 0, 1e-6, "gradient norm against the double-precision sum");
      EXPECT(norms[stage][s] == norms[0][s], "stage %d step %d: norm %.17g, stage 0 %.17g", stage, s, norms[stage][s],
             norms[0][s]);
    }
    EXPECT(memcmp(p[stage], p[0], sizeof(float) * (size_t)n) == 0, "stage %d parameters differ from stage 0", stage);
  }
  /* every rank holds the same parameters (the all-gather reached every shard) */
  float *p0 = mallocCheck(sizeof(float) * (size_t)n);
  memcpy(p0, p[2], sizeof(float) * (size_t)n);
  MPI_Bcast(p0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  EXPECT(memcmp(p0, p[2], sizeof(float) * (size_t)n) == 0, "rank %d holds other parameters than rank 0", dist_rank());
  if (dist_size() == 1) { /* one rank: exactly the plain optimizer */
    AdamW *o = adamw_create(n);
    for (int s = 0; s < 3; s++) {
      local_grads(m->grads, n, s);
      adamw_update(o, m->params, m->grads, &t_oc, s, sqrt(ops->sum_squares(m->grads, n)));
    }
    EXPECT(memcmp(m->params, p[2], sizeof(float) * (size_t)n) == 0, "one rank: zero=2 differs from adamw_update");
    adamw_free(o);
  }
  for (int stage = 0; stage < 3; stage++) free(p[stage]);
  free(p0), free(sum), free(g);
  model_free(m);
}

static void test_nan_reaches_every_rank(void) {
  Model *m = model_create(&t_cfg, 4);
  long n = m->num_params;
  for (int stage = 0; stage < 3; stage++) {
    ZeroOpt *z = zero_create(n, stage);
    local_grads(m->grads, n, 0);
    if (dist_rank() == 0) m->grads[n - 1] = NAN; /* the last rank's shard */
    double norm = zero_reduce_grads(z, m->grads);
    EXPECT(isnan(norm), "stage %d rank %d: norm %g with a NaN on rank 0", stage, dist_rank(), norm);
    zero_free(z);
  }
  model_free(m);
}

static void test_ema_sharded(void) {
  Model *m = model_create(&t_cfg, 4);
  long n = m->num_params;
  EmaConfig ec = {0.9, 0.75};
  float *whole = mallocCheck(sizeof(float) * (size_t)n);
  for (int stage = 0; stage < 3; stage++) {
    model_init_params(m, 3);
    ZeroOpt *z = zero_create(n, stage);
    Ema *e = ema_create_range(z->opt->begin, z->opt->n), *full = ema_create_range(0, n);
    EXPECT(e->begin == z->opt->begin && e->n == z->opt->n, "stage %d: the EMA's range is not the moments'", stage);
    ema_copy_from(e, m->params), ema_copy_from(full, m->params);
    for (int s = 0; s < 4; s++) {
      local_grads(m->grads, n, s);
      zero_update(z, m->params, m->grads, &t_oc, s, zero_reduce_grads(z, m->grads));
      ema_update(e, m->params, ema_decay(&ec, s)), ema_update(full, m->params, ema_decay(&ec, s));
    }
    zero_gather_parts(e->w, e->begin, e->n, n, whole);
    EXPECT(memcmp(whole, full->w, sizeof(float) * (size_t)n) == 0, "stage %d rank %d: the gathered EMA differs", stage,
           dist_rank());
    EXPECT(memcmp(whole, m->params, sizeof(float) * (size_t)n) != 0, "stage %d: the EMA is the parameters", stage);
    ema_free(e), ema_free(full);
    zero_free(z);
  }
  free(whole);
  model_free(m);
}

static char t_dir[64];

static void test_checkpoint_any_rank_count(void) {
  if (dist_rank() == 0) {
    snprintf(t_dir, sizeof t_dir, "/tmp/amd_test_zero_XXXXXX");
    CHECK(mkdtemp(t_dir), "cannot create a scratch folder under /tmp");
  }
  MPI_Bcast(t_dir, sizeof t_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  Model *m = model_create(&t_cfg, 4);
  long n = m->num_params;
  model_init_params(m, 3);
  ZeroOpt *z = zero_create(n, 2);
  Ema *ema = ema_create_range(z->opt->begin, z->opt->n);
  ema_copy_from(ema, m->params);
  EmaConfig ec = {0.9, 0};
  for (int s = 0; s < 2; s++) {
    local_grads(m->grads, n, s);
    zero_update(z, m->params, m->grads, &t_oc, s, zero_reduce_grads(z, m->grads));
    ema_update(ema, m->params, ema_decay(&ec, s));
  }
  float *gema = mallocCheck(sizeof(float) * (size_t)n);
  zero_gather_parts(ema->w, ema->begin, ema->n, n, gema);
  CkptState st = {.step = 2, .seed = 11, .data_cursor = 5, .fake_updates = 1, .student_steps = 2, .rollbacks = 4};
  CkptNet net = {"student", m, z->opt, ema};
  model_ckpt_save(t_dir, &st, &net, 1, "zero = 2\n", "data.h5", 1);
  /* the global moments, gathered from the shards */
  float *gm = mallocCheck(sizeof(float) * (size_t)n), *gv = mallocCheck(sizeof(float) * (size_t)n);
  memcpy(gm + z->begin, z->opt->m, sizeof(float) * (size_t)z->opt->n);
  memcpy(gv + z->begin, z->opt->v, sizeof(float) * (size_t)z->opt->n);
  dist_allgather_f32(gm, n, z->counts, z->displs, NULL);
  dist_allgather_f32(gv, n, z->counts, z->displs, NULL);
  char path[4200];
  EXPECT(ckpt_latest(t_dir, path, sizeof path) == 2, "no checkpoint of step 2 in %s", t_dir);

  /* every partition a run could load it with: one rank (the whole vector), and shards of 1 to 7 */
  Model *m2 = model_create(&t_cfg, 4);
  for (int p = 0; p <= 7; p++)
    for (int r = 0; r < (p ? p : 1); r++) {
      long b = 0, e = n;
      if (p) zero_shard(n, r, p, &b, &e);
      AdamW *o = adamw_create_range(b, e - b);
      Ema *ema2 = ema_create_range(b, e - b);
      CkptNet back = {"student", m2, o, ema2};
      CkptState st2;
      model_ckpt_load(path, &st2, &back, 1);
      EXPECT(memcmp(ema2->w, gema + b, sizeof(float) * (size_t)(e - b)) == 0, "the EMA of shard %d of %d differs", r, p);
      ema_free(ema2);
      EXPECT(memcmp(m2->params, m->params, sizeof(float) * (size_t)n) == 0, "params of the %d-way load differ", p);
      EXPECT(memcmp(o->m, gm + b, sizeof(float) * (size_t)(e - b)) == 0, "adam_m of shard %d of %d differs", r, p);
      EXPECT(memcmp(o->v, gv + b, sizeof(float) * (size_t)(e - b)) == 0, "adam_v of shard %d of %d differs", r, p);
      EXPECT(st2.step == 2 && st2.seed == 11 && st2.data_cursor == 5 && st2.rollbacks == 4, "state differs");
      adamw_free(o);
    }
  /* a checkpoint without an EMA (older, or ema.decay=0): the EMA starts from its parameters */
  MPI_Barrier(MPI_COMM_WORLD);
  st.step = 3;
  CkptNet plain = {"student", m, z->opt, NULL};
  model_ckpt_save(t_dir, &st, &plain, 1, "zero = 2\n", "data.h5", 2);
  char path3[4200];
  snprintf(path3, sizeof path3, "%s/ckpt_00000003.h5", t_dir);
  Ema *ema3 = ema_create_range(0, n);
  CkptNet back3 = {"student", m2, NULL, ema3};
  CkptState st3;
  model_ckpt_load(path3, &st3, &back3, 1);
  EXPECT(memcmp(ema3->w, m->params, sizeof(float) * (size_t)n) == 0, "an EMA missing from the file: not the parameters");
  ema_free(ema3);
  MPI_Barrier(MPI_COMM_WORLD);
  if (dist_rank() == 0 && t_case_failures == 0) {
    unlink(path), unlink(path3);
    rmdir(t_dir);
  }
  free(gm), free(gv), free(gema);
  ema_free(ema);
  zero_free(z);
  model_free(m), model_free(m2);
}

static const ModelConfig t_dit = {.kind = "dit", .dim = 64, .num_classes = 3, .width = 8, .depth = 2, .temb_dim = 8,
                                  .img_channels = 1, .img_size = 8, .patch = 4, .heads = 2};

static void test_units(void) {
  Model *m = model_create(&t_cfg, 4), *d = model_create(&t_dit, 2);
  ModelConfig hc = {.kind = "head", .dim = 5};
  Model *h = model_create(&hc, 2);
  EXPECT(m->num_units == t_cfg.depth + 2, "mlp of depth %d: %d units", t_cfg.depth, m->num_units);
  EXPECT(d->num_units == t_dit.depth + 2, "dit of depth %d: %d units", t_dit.depth, d->num_units);
  EXPECT(h->num_units == 1, "head: %d units", h->num_units);
  Model *all[] = {m, d, h};
  for (int k = 0; k < 3; k++) {
    const Model *x = all[k];
    EXPECT(x->unit_begin[0] == 0 && x->unit_begin[x->num_units] == x->num_params, "%s: units do not cover the vector",
           x->cfg.kind);
    for (int u = 0; u < x->num_units; u++)
      EXPECT(x->unit_begin[u] < x->unit_begin[u + 1], "%s: unit %d is empty", x->cfg.kind, u);
    EXPECT(x->p_begin == 0 && x->p_end == x->num_params && !x->shard && model_gathered_bytes(x) == 0,
           "%s: a whole model stores a part", x->cfg.kind);
  }
  model_free(m), model_free(d), model_free(h);
}

/* Per-rank inputs of step s: x (B, dim), t (B), labels (B), dout (B, dim). */
static void stage3_inputs(const ModelConfig *c, int B, int s, float *x, float *t, int *labels, float *dout) {
  uint32_t r = (uint32_t)dist_rank();
  rng_normal(x, (long)B * c->dim, 5, RNG_METRIC, (uint32_t)s, r);
  rng_normal(dout, (long)B * c->dim, 6, RNG_METRIC, (uint32_t)s, r);
  for (int i = 0; i < B; i++) {
    t[i] = (float)rng_uniform(8, RNG_METRIC, (uint32_t)s, r, (uint32_t)i);
    labels[i] = (int)((r + (uint32_t)i + (uint32_t)s) % (uint32_t)(c->num_classes + 1));
  }
}

static void stage3_agrees(const ModelConfig *c, int B) {
  Model *w = model_create(c, B), *m = model_create_sharded(c, B);
  long n = w->num_params;
  model_init_params(w, 3), model_init_params(m, 3);
  long b, e;
  zero_shard(n, dist_rank(), dist_size(), &b, &e);
  EXPECT(m->p_begin == b && m->p_end == e && m->shard && model_gathered_bytes(m) > 0,
         "%s: the sharded model stores %ld..%ld, its shard is %ld..%ld", c->kind, m->p_begin, m->p_end, b, e);
  ZeroOpt *zw = zero_create(n, 0), *z3 = zero_create(n, 3);
  size_t xb = sizeof(float) * (size_t)B * (size_t)c->dim;
  float *x = mallocCheck(xb), *dout = mallocCheck(xb), *t = mallocCheck(sizeof(float) * (size_t)B);
  float *ow = mallocCheck(xb), *o3 = mallocCheck(xb), *dxw = mallocCheck(xb), *dx3 = mallocCheck(xb);
  int *labels = mallocCheck(sizeof(int) * (size_t)B);
  float *whole = mallocCheck(sizeof(float) * (size_t)n);
  int exact = dist_size() <= 2;
  for (int s = 0; s < 3; s++) {
    stage3_inputs(c, B, s, x, t, labels, dout);
    model_zero_grad(w), model_zero_grad(m);
    memset(dxw, 0, xb), memset(dx3, 0, xb);
    w->forward(w, ow, x, t, labels, B), m->forward(m, o3, x, t, labels, B);
    w->backward(w, dxw, dout, NULL, B), m->backward(m, dx3, dout, NULL, B);
    if (exact || s == 0) {
      EXPECT(memcmp(ow, o3, xb) == 0, "%s step %d: the sharded forward differs", c->kind, s);
      EXPECT(memcmp(dxw, dx3, xb) == 0, "%s step %d: the sharded dx differs", c->kind, s);
    }
    double nw = zero_reduce_grads(zw, w->grads), n3 = zero_reduce_grads(z3, m->grads);
    if (exact) EXPECT(nw == n3, "%s step %d: norm %.17g at stage 3, %.17g at stage 0", c->kind, s, n3, nw);
    else EXPECT_CLOSE(n3, nw, 0, 1e-6, "the stage-3 gradient norm against stage 0's");
    zero_update(zw, w->params, w->grads, &t_oc, s, nw), zero_update(z3, m->params, m->grads, &t_oc, s, n3);
  }
  zero_gather_parts(m->params, m->p_begin, model_stored_n(m), n, whole);
  double worst = 0;
  for (long i = 0; i < n; i++) worst = fmax(worst, fabs((double)whole[i] - (double)w->params[i]));
  if (exact) EXPECT(memcmp(whole, w->params, sizeof(float) * (size_t)n) == 0, "%s: stage-3 parameters differ by %g",
                    c->kind, worst);
  else EXPECT(worst < 1e-5, "%s: stage-3 parameters differ by %g at %d ranks", c->kind, worst, dist_size());
  /* frozen: dx as the whole frozen model's, the stored gradient untouched */
  w->frozen = m->frozen = 1;
  model_zero_grad(m);
  memset(dxw, 0, xb), memset(dx3, 0, xb);
  memcpy(w->params, whole, sizeof(float) * (size_t)n); /* the same weights in both */
  w->forward(w, ow, x, t, labels, B), m->forward(m, o3, x, t, labels, B);
  w->backward(w, dxw, dout, NULL, B), m->backward(m, dx3, dout, NULL, B);
  EXPECT(memcmp(dxw, dx3, xb) == 0, "%s frozen: the sharded dx differs", c->kind);
  for (long i = 0; i < model_stored_n(m); i++)
    if (m->grads[i] != 0.0f) {
      EXPECT(0, "%s frozen: stored gradient %ld is %g", c->kind, i, m->grads[i]);
      break;
    }
  free(x), free(dout), free(t), free(ow), free(o3), free(dxw), free(dx3), free(labels), free(whole);
  zero_free(zw), zero_free(z3);
  model_free(w), model_free(m);
}

static void test_stage3_agrees(void) {
  stage3_agrees(&t_cfg, 4);
  stage3_agrees(&t_dit, 2);
}

/* The bytes this rank sends and receives (mpi/dist.h: the payload of a direct exchange) in an
 * all-gather (gather = 1) or a reduce-scatter of a vector of n floats of which it holds k, at p
 * ranks: the cost model, written out here independently of mpi/dist.c. */
static void expect_collective(long *sent, long *received, int gather, long n, long k, int p) {
  long own = 4 * k * (p - 1), others = 4 * (n - k);
  *sent += gather ? own : others;
  *received += gather ? others : own;
}

/* One optimizer step of model config c at each stage, from a forward and a backward at stage 3
 * (prefetch on, then off): the bytes counted (the ZeroOpt's plus, at stage 3, the model's units')
 * are the cost model's exactly, computed from n, p and the layout: stage 0 reduce-scatters and
 * all-gathers the gradient, stage 1 also all-gathers the parameters, stage 2 reduce-scatters the
 * gradient and all-gathers the parameters; stage 3 gathers every unit in the forward and again in
 * the backward and reduce-scatters it, each rank holding the intersection of its shard with the
 * unit. Stage 3 then moves 1.5 times stage 2 (exactly, as the intersections add up to the shard).
 * The prefetch changes neither the bytes nor the outputs. */
static void traffic_matches_model(const ModelConfig *c, int B) {
  int p = dist_size(), r = dist_rank();
  long moved[4] = {0};
  size_t xb = sizeof(float) * (size_t)B * (size_t)c->dim;
  float *x = mallocCheck(xb), *dout = mallocCheck(xb), *t = mallocCheck(sizeof(float) * (size_t)B);
  float *out = mallocCheck(xb), *dx = mallocCheck(xb), *out_prefetched = mallocCheck(xb);
  int *labels = mallocCheck(sizeof(int) * (size_t)B);
  stage3_inputs(c, B, 0, x, t, labels, dout);
  for (int stage = 0; stage <= 3; stage++)
    for (int prefetch = 1; prefetch >= (stage == 3 ? 0 : 1); prefetch--) {
      Model *m = stage == 3 ? model_create_sharded(c, B) : model_create(c, B);
      model_set_prefetch(m, prefetch);
      model_init_params(m, 3);
      long n = m->num_params, sb, se;
      zero_shard(n, r, p, &sb, &se);
      ZeroOpt *z = zero_create(n, stage);
      model_zero_grad(m);
      memset(dx, 0, xb);
      m->forward(m, out, x, t, labels, B);
      m->backward(m, dx, dout, NULL, B);
      double norm = zero_reduce_grads(z, m->grads);
      zero_update(z, m->params, m->grads, &t_oc, 0, norm);
      long sent = 0, received = 0;
      if (p > 1 && stage < 3) {
        expect_collective(&sent, &received, 0, n, se - sb, p);                   /* gradient reduce-scatter */
        if (stage < 2) expect_collective(&sent, &received, 1, n, se - sb, p);    /* gradient all-gather */
        if (stage > 0) expect_collective(&sent, &received, 1, n, se - sb, p);    /* parameter all-gather */
      }
      for (int u = 0; stage == 3 && u < m->num_units; u++) {
        long ub = m->unit_begin[u], ue = m->unit_begin[u + 1];
        long k = (se < ue ? se : ue) - (sb > ub ? sb : ub);
        if (k < 0) k = 0;
        expect_collective(&sent, &received, 1, ue - ub, k, p); /* forward gather */
        expect_collective(&sent, &received, 1, ue - ub, k, p); /* backward gather */
        expect_collective(&sent, &received, 0, ue - ub, k, p); /* gradient reduce-scatter */
      }
      DistTraffic got = z->traffic;
      const DistTraffic *units = model_traffic(m);
      EXPECT((stage == 3) == (units != NULL), "%s stage %d: model_traffic is %p", c->kind, stage, (const void *)units);
      if (units) {
        got.sent += units->sent, got.received += units->received, got.seconds += units->seconds;
        EXPECT(units->gather_span >= units->gather_wait && units->gather_wait >= 0 &&
                   units->seconds >= units->gather_wait,
               "%s: gathers in flight %g s, waited %g s, in the calls %g s", c->kind, units->gather_span,
               units->gather_wait, units->seconds);
      }
      EXPECT(got.sent == sent && got.received == received,
             "%s stage %d (prefetch %d) at %d ranks, rank %d: counted %ld bytes sent, %ld received; the cost model "
             "says %ld, %ld", c->kind, stage, prefetch, p, r, got.sent, got.received, sent, received);
      EXPECT(got.seconds >= 0, "%s stage %d: %g s", c->kind, stage, got.seconds);
      if (stage == 3 && prefetch) memcpy(out_prefetched, out, xb);
      if (stage == 3 && !prefetch)
        EXPECT(memcmp(out, out_prefetched, xb) == 0, "%s: the prefetch changes the forward", c->kind);
      if (prefetch) moved[stage] = got.sent + got.received;
      zero_free(z);
      model_free(m);
    }
  if (p > 1)
    EXPECT(moved[3] * 2 == moved[2] * 3 && moved[0] == moved[2] && moved[1] * 2 == moved[2] * 3,
           "%s at %d ranks: bytes moved by stages 0..3: %ld %ld %ld %ld (expected 1 : 1.5 : 1 : 1.5)", c->kind, p,
           moved[0], moved[1], moved[2], moved[3]);
  else
    EXPECT(moved[0] + moved[1] + moved[2] + moved[3] == 0, "%s at one rank: %ld bytes moved", c->kind,
           moved[0] + moved[1] + moved[2] + moved[3]);
  free(x), free(dout), free(t), free(out), free(dx), free(out_prefetched), free(labels);
}

static void test_traffic(void) {
  traffic_matches_model(&t_cfg, 4);
  traffic_matches_model(&t_dit, 2);
}

/* Runs a forward of unit 1 of a sharded mlp, then reads it again after its release: must stop. */
static int read_after_release(void) {
  Model *m = model_create_sharded(&t_cfg, 4);
  model_init_params(m, 3);
  model_unit_enter(m, 1, MODEL_FORWARD);
  float first = *model_param(m, m->unit_begin[1]);
  model_unit_leave(m, 1);
  printf("read %g while gathered; now after the release:\n", first);
  float again = *model_param(m, m->unit_begin[1]);
  printf("FAIL read_after_release: read %g from a released unit\n", again);
  return 0;
}

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
/* Our leaks, looked for before MPI_Finalize, which leaves allocations of unloaded Open MPI
 * components behind that no suppression can name. */
static void test_no_leaks(void) { EXPECT(__lsan_do_recoverable_leak_check() == 0, "leaks (report above)"); }
#endif

int main(int argc, char **argv) {
#ifdef __SANITIZE_ADDRESS__
  __lsan_disable(); /* what MPI_Init allocates and drops is Open MPI's */
#endif
  MPI_Init(&argc, &argv);
#ifdef __SANITIZE_ADDRESS__
  __lsan_enable();
#endif
  if (argc > 1 && strcmp(argv[1], "read_after_release") == 0) {
    int rc = read_after_release();
    MPI_Finalize();
    return rc;
  }
  TEST_RUN(test_shard_ranges);
  TEST_RUN(test_stages_agree);
  TEST_RUN(test_nan_reaches_every_rank);
  TEST_RUN(test_ema_sharded);
  TEST_RUN(test_checkpoint_any_rank_count);
  TEST_RUN(test_units);
  TEST_RUN(test_stage3_agrees);
  TEST_RUN(test_traffic);
#ifdef __SANITIZE_ADDRESS__
  TEST_RUN(test_no_leaks);
#endif
  int failed = t_finish();
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  fflush(stdout);
  _exit(failed); /* skips the exit-time leak report: test_no_leaks made ours */
}
