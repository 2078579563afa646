/* model_shard.c: ZeRO stage 3 inside a model (model.h): the per-unit all-gather of the parameters
 * into two reusable buffers, with the next unit of a pass prefetched by a non-blocking gather, and
 * the per-unit reduce-scatter of the gradient into this rank's stored range. Rank r contributes to
 * unit u the intersection of its zero_shard with the unit, so the gathers and reductions need no
 * copy of anything outside the stored range. A unit is readable only between its enter and leave
 * (model_shard_param checks it), so a read of a released buffer stops the program in every test.
 * Not here: the optimizer step over the shard (mpi/zero.c), the MPI calls themselves (mpi/dist.c).
 * Return convention: misuse (a unit read while not gathered, units entered out of turn) and MPI
 * errors stop the program; functions return void or their result. */
#include <stdlib.h>

#include "common.h"
#include "dist.h"
#include "model.h"
#include "ops.h"
#include "zero.h"

struct ModelShard {
  int size, rank;
  int *counts, *displs; /* (num_units, size): rank r's part of unit u, offsets relative to the unit */
  long max_unit, max_part;
  float *buf[2];        /* (max_unit) gathered parameters; unit u uses buf[u % 2] */
  int held[2];          /* the unit buf[s] holds, readable (-1: none) */
  int pending[2];       /* the unit being gathered into buf[s] (-1: none) */
  DistGather gather[2];
  float *gbuf;          /* (max_unit) the entered unit's local gradient in a backward */
  float *part;          /* (max_part) this rank's part of its sum over ranks */
  int current;          /* the unit entered (-1: none) */
  int prefetch;         /* start the next unit's gather on enter (model_set_prefetch) */
  ModelPass pass;
  DistTraffic traffic;  /* what its gathers and reduce-scatters moved */
};

void model_shard_create(Model *m) {
  ModelShard *sh = callocCheck(1, sizeof *sh);
  int size = dist_size(), U = m->num_units;
  sh->size = size, sh->rank = dist_rank();
  sh->counts = callocCheck((size_t)U * (size_t)size, sizeof(int));
  sh->displs = callocCheck((size_t)U * (size_t)size, sizeof(int));
  for (int u = 0; u < U; u++) {
    long ub = m->unit_begin[u], ue = m->unit_begin[u + 1];
    sh->max_unit = ue - ub > sh->max_unit ? ue - ub : sh->max_unit;
    for (int r = 0; r < size; r++) {
      long sb, se;
      zero_shard(m->num_params, r, size, &sb, &se);
      long b = sb > ub ? sb : ub, e = se < ue ? se : ue;
      if (b > ue) b = ue;
      if (e < b) e = b;
      sh->counts[u * size + r] = (int)(e - b), sh->displs[u * size + r] = (int)(b - ub);
      if (r == sh->rank && e - b > sh->max_part) sh->max_part = e - b;
    }
  }
  size_t f = sizeof(float);
  for (int s = 0; s < 2; s++) sh->buf[s] = ops->alloc(f * (size_t)sh->max_unit), sh->held[s] = sh->pending[s] = -1;
  sh->gbuf = ops->alloc(f * (size_t)sh->max_unit);
  sh->part = ops->alloc(f * (size_t)(sh->max_part ? sh->max_part : 1));
  sh->current = -1, sh->prefetch = 1;
  m->shard = sh;
}

void model_shard_free(Model *m) {
  ModelShard *sh = m->shard;
  for (int s = 0; s < 2; s++) dist_gather_free(&sh->gather[s]), ops->free(sh->buf[s]);
  ops->free(sh->gbuf), ops->free(sh->part);
  free(sh->counts), free(sh->displs);
  free(sh);
  m->shard = NULL;
}

long model_gathered_bytes(const Model *m) {
  const ModelShard *sh = m->shard;
  return sh ? (long)sizeof(float) * (3 * sh->max_unit + sh->max_part) : 0;
}

const DistTraffic *model_traffic(const Model *m) { return m->shard ? &m->shard->traffic : NULL; }

void model_set_prefetch(Model *m, int on) {
  if (m && m->shard) m->shard->prefetch = on;
}

/* Rank r's part of unit u: where it starts in the flat vector, and its length. */
static long part_begin(const Model *m, int u, int r) { return m->unit_begin[u] + m->shard->displs[u * m->shard->size + r]; }
static int part_count(const Model *m, int u, int r) { return m->shard->counts[u * m->shard->size + r]; }

/* Starts the gather of unit u into its buffer, after completing (and dropping) any gather there. */
static void gather_start(Model *m, int u) {
  ModelShard *sh = m->shard;
  int s = u % 2, n = part_count(m, u, sh->rank);
  dist_gather_wait(&sh->gather[s]);
  sh->held[s] = -1;
  const float *mine = n ? model_stored(m, part_begin(m, u, sh->rank), n) : m->params;
  dist_gather_start(&sh->gather[s], mine, sh->buf[s], m->unit_begin[u + 1] - m->unit_begin[u],
                    sh->counts + u * sh->size, sh->displs + u * sh->size, &sh->traffic);
  sh->pending[s] = u;
}

static void gather_finish(ModelShard *sh, int u) {
  int s = u % 2;
  dist_gather_wait(&sh->gather[s]);
  sh->pending[s] = -1, sh->held[s] = u;
}

void model_unit_enter(Model *m, int u, ModelPass pass) {
  ModelShard *sh = m->shard;
  if (!sh) return;
  CHECK(u >= 0 && u < m->num_units, "model: unit %d entered, the model has %d", u, m->num_units);
  CHECK(sh->current < 0, "model: unit %d entered while unit %d is still entered", u, sh->current);
  if (sh->pending[u % 2] != u) gather_start(m, u);
  gather_finish(sh, u);
  int next = pass == MODEL_FORWARD ? u + 1 : u - 1;
  if (sh->prefetch && next >= 0 && next < m->num_units && sh->pending[next % 2] != next) gather_start(m, next);
  sh->current = u, sh->pass = pass;
  if (pass == MODEL_BACKWARD && !m->frozen)
    ops->fill(sh->gbuf, 0.0f, m->unit_begin[u + 1] - m->unit_begin[u]);
}

void model_unit_leave(Model *m, int u) {
  ModelShard *sh = m->shard;
  if (!sh) return;
  CHECK(sh->current == u, "model: unit %d left but the unit entered is %d", u, sh->current);
  sh->held[u % 2] = -1;
  sh->current = -1;
  if (sh->pass != MODEL_BACKWARD || m->frozen) return;
  int n = part_count(m, u, sh->rank);
  dist_reduce_scatter_part(sh->gbuf, sh->part, m->unit_begin[u + 1] - m->unit_begin[u], sh->counts + u * sh->size,
                           &sh->traffic);
  if (n) ops->axpy(model_stored_grad(m, part_begin(m, u, sh->rank), n), 1.0f, sh->part, n);
}

/* The unit holding flat offset off. */
static int unit_of(const Model *m, long off) {
  CHECK(off >= 0 && off < m->num_params, "model: offset %ld outside the %ld parameters", off, m->num_params);
  int lo = 0, hi = m->num_units - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (m->unit_begin[mid] <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

float *model_shard_param(const Model *m, long off) {
  const ModelShard *sh = m->shard;
  int u = unit_of(m, off);
  CHECK(sh->held[u % 2] == u,
        "model: parameter at offset %ld (unit %d) read while its unit is not gathered (never entered, or released)",
        off, u);
  return sh->buf[u % 2] + (off - m->unit_begin[u]);
}

float *model_shard_grad(const Model *m, long off) {
  const ModelShard *sh = m->shard;
  int u = unit_of(m, off);
  CHECK(sh->current == u && sh->pass == MODEL_BACKWARD,
        "model: gradient at offset %ld (unit %d) written outside that unit's backward", off, u);
  return sh->gbuf + (off - m->unit_begin[u]);
}
