/* test_xattn_golden.c: the cross-attention layer (src/cross_attention.h) against an independent
 * PyTorch implementation (tests/xattn_reference.py, checked there against torch.nn.MultiheadAttention
 * with key_padding_mask; it wrote the committed fixture tests/fixtures/xattn_golden.h5). The
 * fixture's random non-zero parameters (the zero-init output projection included) are loaded by
 * tensor name; one forward and one backward with loss = sum(out r), dout = r, over a batch with a
 * full caption, two padded ones and the empty caption, are checked against the reference out, loss,
 * every parameter gradient, dx and dtext. One PASS/FAIL line per group, naming the worst entry.
 * Runs from the repository root (as tests/run.sh does). Not here: finite differences (test_xattn.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "cross_attention.h"
#include "h5.h"
#include "model.h"
#include "ops.h"
#include "test.h"

#define FIXTURE "tests/fixtures/xattn_golden.h5"
#define PREFIX "xattn"

/* The reference is float64 from the same float32 inputs, so the error measured is the C layer's own
 * float32 arithmetic (a LayerNorm, the linear layers' and attention's GEMMs, a softmax; sums of
 * length <= 24). Measured with OpenBLAS 0.3.21 at 1 and 2 threads: absolute error at most 6e-8 on
 * out (entries up to 0.57), 9e-8 on dx and dtext and 4.8e-7 on the parameter gradients (entries up
 * to 4.2); relative error at most 4.1e-5 on entries above 1e-3; the worst entry uses 7% of the
 * tolerance below. The bound is test_dit_golden's: the factor of 14 left is for other BLAS kernels
 * and summation orders; atol 1e-6 covers entries that are sums of cancelling terms (the key bias's
 * gradient is exactly 0: a softmax ignores a shift of every score) and stays far below a typical
 * gradient, so a wrong sign, transpose, head order, k/v order, mask or missing term fails. */
#define GOLD_ATOL 1e-6
#define GOLD_RTOL 1e-4
#include "golden.h" /* after GOLD_ATOL and GOLD_RTOL */

typedef struct {
  hid_t f;
  int B, N, M, C, E, NH, loaded;
  Model *m;
  CrossAttention xa;
  float *out, *dx, *dtext;                /* C results on the host */
  float *ref_out, *ref_dx, *ref_dtext;    /* the fixture's */
  double loss, ref_loss;
} Golden;

static Golden g;

/* Reads `name` if it exists with exactly the given shape; otherwise records a failure naming both
 * shapes and returns NULL. */
static float *read_shaped(const char *name, int ndim, const int *shape) {
  if (!h5_exists(g.f, name)) {
    EXPECT(0, "%s: the fixture has no dataset '%s' (rerun tests/xattn_reference.py?)", FIXTURE, name);
    return NULL;
  }
  hid_t d = H5Dopen2(g.f, name, H5P_DEFAULT);
  CHECK(d >= 0, "%s: cannot open dataset '%s'", FIXTURE, name);
  hid_t s = H5Dget_space(d);
  hsize_t dims[4] = {0};
  int r = H5Sget_simple_extent_ndims(s), same = r == ndim;
  if (r >= 0 && r <= 4) H5Sget_simple_extent_dims(s, dims, NULL);
  H5Sclose(s), H5Dclose(d);
  for (int i = 0; same && i < ndim; i++) same = dims[i] == (hsize_t)shape[i];
  EXPECT(same, "%s: '%s' has rank %d or another shape than the layer's (rank %d, first dim %d)", FIXTURE, name, r,
         ndim, shape[0]);
  return same ? h5_read_f32(g.f, name, ndim, dims) : NULL;
}

static int fixture_int(const char *name) { return (int)h5_attr_read_i64(g.f, name); }

/* Builds the layer from the fixture's config in a model of its own (as a DiT builder registers it),
 * loads its parameters and inputs, runs forward and backward once and keeps what the checks compare. */
static void test_golden_load_and_run(void) {
  if (access(FIXTURE, R_OK) != 0) {
    EXPECT(0, "cannot read %s: run the tests from the repository root", FIXTURE);
    return;
  }
  g.f = h5_open(FIXTURE, "amd-test-fixture", 0, NULL);
  int B = g.B = fixture_int("batch"), N = g.N = fixture_int("tokens"), M = g.M = fixture_int("text_len");
  int C = g.C = fixture_int("width"), E = g.E = fixture_int("text_dim"), NH = g.NH = fixture_int("heads");
  Model *m = g.m = callocCheck(1, sizeof *m);
  m->max_batch = B + 1, m->num_units = 1; /* B below max_batch catches code sized by max_batch */
  cross_attention_create(&g.xa, m, PREFIX, C, E, NH, N, M + 1);
  m->unit_begin[1] = m->p_end = m->num_params;
  m->params = ops->alloc(sizeof(float) * (size_t)m->num_params);
  m->grads = ops->alloc(sizeof(float) * (size_t)m->num_params);
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    float *p = read_shaped(ti->name, ti->ndim, ti->shape);
    if (!p) continue;
    ops->to_device(m->params + ti->offset, p, sizeof(float) * (size_t)ti->shape[0] * ti->shape[1]);
    free(p);
  }
  int xs[3] = {B, N, C}, ts[3] = {B, M, E}, ms[2] = {B, M};
  float *x = read_shaped("x", 3, xs), *text = read_shaped("text", 3, ts), *mask = read_shaped("mask", 2, ms);
  float *r = read_shaped("r", 3, xs);
  g.ref_out = read_shaped("out", 3, xs), g.ref_dx = read_shaped("grad_x", 3, xs);
  g.ref_dtext = read_shaped("grad_text", 3, ts);
  hsize_t dims[1];
  double *loss = h5_read_f64(g.f, "loss", 0, dims);
  g.ref_loss = *loss;
  free(loss);
  if (t_case_failures == 0) {
    size_t fs = sizeof(float), nx = (size_t)B * N * C, nt = (size_t)B * M * E;
    float *xd = ops->alloc(fs * nx), *td = ops->alloc(fs * nt), *md = ops->alloc(fs * B * M);
    float *outd = ops->alloc(fs * nx), *rd = ops->alloc(fs * nx), *dxd = ops->alloc(fs * nx), *dtd = ops->alloc(fs * nt);
    ops->to_device(xd, x, fs * nx), ops->to_device(td, text, fs * nt), ops->to_device(md, mask, fs * B * M);
    ops->to_device(rd, r, fs * nx);
    model_zero_grad(m);
    cross_attention_forward(&g.xa, outd, m, xd, td, md, B, M);
    g.out = mallocCheck(fs * nx), g.dx = mallocCheck(fs * nx), g.dtext = mallocCheck(fs * nt);
    ops->to_host(g.out, outd, fs * nx);
    g.loss = 0;
    for (size_t i = 0; i < nx; i++) g.loss += (double)g.out[i] * r[i];
    cross_attention_backward(&g.xa, m, dxd, dtd, rd, xd, td, B);
    ops->to_host(g.dx, dxd, fs * nx), ops->to_host(g.dtext, dtd, fs * nt);
    g.loaded = 1;
    float *bufs[] = {xd, td, md, outd, rd, dxd, dtd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
  }
  free(x), free(text), free(mask), free(r);
}

static int golden_ready(void) {
  if (!g.loaded) t_skip("the fixture did not load (see test_golden_load_and_run)");
  return g.loaded;
}

static void test_golden_out_and_loss(void) {
  if (!golden_ready()) return;
  Worst w = {0};
  compare(&w, "out", g.out, g.ref_out, (long)g.B * g.N * g.C);
  expect_worst("out", &w);
  EXPECT_CLOSE(g.loss, g.ref_loss, GOLD_ATOL, GOLD_RTOL, "loss");
  /* the empty caption (the last sample): attention output 0, so out is the projection's bias */
  float *pb = mallocCheck(sizeof(float) * (size_t)g.C);
  ops->to_host(pb, g.m->params + g.xa.projb, sizeof(float) * (size_t)g.C);
  int bias = 1;
  for (int i = 0; i < g.N * g.C; i++) bias &= g.out[(long)(g.B - 1) * g.N * g.C + i] == pb[i % g.C];
  EXPECT(bias, "the empty caption's out is not proj.b exactly");
  free(pb);
}

static void test_golden_dx_dtext(void) {
  if (!golden_ready()) return;
  Worst w = {0};
  compare(&w, "grad_x", g.dx, g.ref_dx, (long)g.B * g.N * g.C);
  expect_worst("grad_x", &w);
  Worst wt = {0};
  compare(&wt, "grad_text", g.dtext, g.ref_dtext, (long)g.B * g.M * g.E);
  expect_worst("grad_text", &wt);
}

static void test_golden_grad_params(void) {
  if (!golden_ready()) return;
  Worst w = {0};
  for (int k = 0; k < g.m->num_tensors; k++) {
    const TensorInfo *ti = &g.m->tensors[k];
    char name[MODEL_NAME_MAX + 8];
    snprintf(name, sizeof name, "grad/%s", ti->name);
    float *ref = read_shaped(name, ti->ndim, ti->shape);
    if (!ref) continue;
    long n = (long)ti->shape[0] * ti->shape[1];
    float *c = mallocCheck(sizeof(float) * (size_t)n);
    ops->to_host(c, g.m->grads + ti->offset, sizeof(float) * (size_t)n);
    compare(&w, name, c, ref, n);
    free(c), free(ref);
  }
  expect_worst("grad of every tensor", &w);
}

int main(void) {
  TEST_RUN(test_golden_load_and_run);
  TEST_RUN(test_golden_out_and_loss);
  TEST_RUN(test_golden_dx_dtext);
  TEST_RUN(test_golden_grad_params);
  if (g.f > 0) h5_close(g.f);
  if (g.m) {
    cross_attention_free(&g.xa);
    ops->free(g.m->params), ops->free(g.m->grads);
    free(g.m);
  }
  free(g.out), free(g.dx), free(g.dtext), free(g.ref_out), free(g.ref_dx), free(g.ref_dtext);
  return t_finish();
}
