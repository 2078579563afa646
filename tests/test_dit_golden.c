/* test_dit_golden.c: the `dit` model against an independent PyTorch implementation of the same DiT
 * (tests/dit_reference.py, which wrote the committed fixtures tests/fixtures/dit_golden.h5 and, for
 * text mode (captions, issue 20), tests/fixtures/dit_text_golden.h5; every test below runs on each,
 * the second time after a line "text mode"). The
 * fixture's random non-zero parameters (adaLN-Zero weights included, so every block and gate is
 * live) are loaded by tensor name; one forward and one backward with
 *   loss = 0.5 mean((out - target)^2) + sum(features r),  dout = (out - target) / numel,  dfeat = r
 * are then checked against the reference out, features, loss, every parameter gradient and dx.
 * One PASS/FAIL line per group of tensors, naming the worst entry on failure.
 * Runs from the repository root (as tests/run.sh does). Not here: finite differences (test_dit.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "h5.h"
#include "model.h"
#include "ops.h"
#include "test.h"

static const char *FIXTURE = "tests/fixtures/dit_golden.h5";

/* The reference is float64 from the same float32 inputs (exact to float32 rounding), so the error
 * measured is the C model's own float32 arithmetic (about 30 layers, reductions of length <= 128).
 * Measured with OpenBLAS 0.3.21 at 1 and 2 threads: relative error at most 1e-5 on entries above
 * 1e-3; absolute at most 2.7e-7 on out (entries up to 2.1) and 6e-8 on the gradients (median entry
 * 3e-3, largest 0.5); the worst entry uses 5% of the tolerance below. rtol 1e-4 leaves a factor of 10
 * for other BLAS kernels and summation orders; atol 1e-6 covers entries that are sums of cancelling
 * terms (some are exactly 0: the key bias, the unused class row) and stays below 1e-3 of a typical
 * gradient, so a wrong sign, transpose, chunk order or missing term (off by O(its size)) fails.
 * Text mode (more layers: a 2-block text encoder and a cross-attention per block) keeps the same
 * tolerances: measured with OpenBLAS 0.3.21, absolute error at most 3e-7 on out and 9e-8 on the
 * gradients, relative at most 7e-6 on entries above 1e-3; the worst entry uses 4.3% of the tolerance. */
#define GOLD_ATOL 1e-6
#define GOLD_RTOL 1e-4
#include "golden.h" /* after GOLD_ATOL and GOLD_RTOL */

typedef struct {
  Model *m;
  int B, dim, loaded;
  float *out, *feat, *dx;             /* C results on the host: (B, dim), (B, width), (B, dim) */
  float *ref_out, *ref_feat, *ref_dx; /* the fixture's */
  double loss, ref_loss;
  hid_t f;
} Golden;

static Golden g;

/* rank of dataset `name` and its dims, or -1 when it is missing */
static int fixture_dims(const char *name, hsize_t *dims) {
  if (!h5_exists(g.f, name)) return -1;
  hid_t d = H5Dopen2(g.f, name, H5P_DEFAULT);
  CHECK(d >= 0, "%s: cannot open dataset '%s'", FIXTURE, name);
  hid_t s = H5Dget_space(d);
  int r = H5Sget_simple_extent_ndims(s);
  CHECK(r >= 0 && r <= 4, "%s: dataset '%s' has %d dimensions", FIXTURE, name, r);
  H5Sget_simple_extent_dims(s, dims, NULL);
  H5Sclose(s);
  H5Dclose(d);
  return r;
}

/* Reads `name` if it has exactly the given shape; otherwise records a failure that names both
 * shapes and returns NULL. */
static float *read_shaped(const char *name, int ndim, const int *shape) {
  hsize_t dims[4];
  int r = fixture_dims(name, dims), same = r == ndim;
  for (int i = 0; same && i < ndim; i++) same = dims[i] == (hsize_t)shape[i];
  char want[64] = "", got[64] = "";
  for (int i = 0; i < ndim; i++) snprintf(want + strlen(want), sizeof want - strlen(want), " %d", shape[i]);
  for (int i = 0; i < r; i++) snprintf(got + strlen(got), sizeof got - strlen(got), " %llu", (unsigned long long)dims[i]);
  EXPECT(r >= 0, "%s: the fixture has no dataset '%s' (rerun tests/dit_reference.py?)", FIXTURE, name);
  EXPECT(r < 0 || same, "%s: '%s' has shape (%s ), the model's is (%s )", FIXTURE, name, got, want);
  if (!same) return NULL;
  return h5_read_f32(g.f, name, ndim, dims);
}

static int fixture_int(const char *name) { return (int)h5_attr_read_i64(g.f, name); }

static long tensor_size(const TensorInfo *ti) {
  return (long)ti->shape[0] * ti->shape[1] * ti->shape[2] * ti->shape[3];
}

/* Builds the model from the fixture's config, loads its parameters and inputs, runs forward and
 * backward once and keeps what the checks below compare. */
static void test_golden_load_and_run(void) {
  if (access(FIXTURE, R_OK) != 0) {
    EXPECT(0, "cannot read %s: run the tests from the repository root", FIXTURE);
    return;
  }
  g.f = h5_open(FIXTURE, "amd-test-fixture", 0, NULL);
  ModelConfig cfg = {.kind = "dit"};
  cfg.img_channels = fixture_int("img_channels"), cfg.img_size = fixture_int("img_size");
  cfg.patch = fixture_int("patch"), cfg.width = fixture_int("width"), cfg.depth = fixture_int("depth");
  cfg.heads = fixture_int("heads"), cfg.temb_dim = fixture_int("temb_dim");
  cfg.num_classes = fixture_int("num_classes");
  if (h5_attr_exists(g.f, "text")) { /* text mode: labels are token ids (B, max_text) */
    cfg.text = fixture_int("text"), cfg.vocab = fixture_int("vocab"), cfg.text_width = fixture_int("text_width");
    cfg.text_depth = fixture_int("text_depth"), cfg.max_text = fixture_int("max_text");
  }
  int per = model_label_ints(&cfg);
  cfg.dim = cfg.img_channels * cfg.img_size * cfg.img_size;
  int B = g.B = fixture_int("batch"), D = g.dim = cfg.dim, C = cfg.width;
  Model *m = g.m = model_create(&cfg, B + 1); /* B below max_batch catches code sized by max_batch */
  EXPECT(m->num_params == h5_attr_read_i64(g.f, "num_params") && m->num_tensors == fixture_int("num_tensors"),
         "the model has %ld parameters in %d tensors, the fixture %lld in %d", m->num_params, m->num_tensors,
         h5_attr_read_i64(g.f, "num_params"), fixture_int("num_tensors"));
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    float *p = read_shaped(ti->name, ti->ndim, ti->shape);
    if (!p) continue;
    ops->to_device(m->params + ti->offset, p, sizeof(float) * (size_t)tensor_size(ti));
    free(p);
  }
  int img[4] = {B, cfg.img_channels, cfg.img_size, cfg.img_size}, bc[2] = {B, C};
  float *x = read_shaped("x", 4, img), *t = read_shaped("t", 1, &B), *target = read_shaped("target", 4, img);
  float *r = read_shaped("r", 2, bc);
  g.ref_out = read_shaped("out", 4, img), g.ref_feat = read_shaped("features", 2, bc);
  g.ref_dx = read_shaped("grad_x", 4, img);
  hsize_t dims[2] = {0, 1};
  int *labels = h5_read_i32(g.f, "labels", cfg.text ? 2 : 1, dims);
  EXPECT(dims[0] == (hsize_t)B && dims[1] == (hsize_t)per, "%s: labels (%llu, %llu) for batch %d of %d each", FIXTURE,
         (unsigned long long)dims[0], (unsigned long long)dims[1], B, per);
  double *loss = h5_read_f64(g.f, "loss", 0, dims);
  g.ref_loss = *loss;
  free(loss);
  if (t_case_failures == 0) {
    for (int b = 0; b < B * per; b++)
      EXPECT(labels[b] >= 0 && labels[b] <= (cfg.text ? cfg.vocab - 1 : cfg.num_classes), "label %d out of range",
             labels[b]);
    size_t fs = sizeof(float), nd = (size_t)B * D, nf = (size_t)B * C;
    float *xd = ops->alloc(fs * nd), *td = ops->alloc(fs * B), *outd = ops->alloc(fs * nd);
    float *doutd = ops->alloc(fs * nd), *rd = ops->alloc(fs * nf), *dxd = ops->alloc(fs * nd);
    int *ld = ops->alloc(sizeof(int) * (size_t)B * per);
    ops->to_device(xd, x, fs * nd), ops->to_device(td, t, fs * B), ops->to_device(rd, r, fs * nf);
    ops->to_device(ld, labels, sizeof(int) * (size_t)B * per);
    model_zero_grad(m);
    m->forward(m, outd, xd, td, ld, B);
    g.out = mallocCheck(fs * nd), g.feat = mallocCheck(fs * nf), g.dx = mallocCheck(fs * nd);
    ops->to_host(g.out, outd, fs * nd);
    ops->to_host(g.feat, m->features(m), fs * nf);
    /* loss = 0.5 mean (out - target)^2 + sum(features r); its gradients at out and at features */
    float *dout = mallocCheck(fs * nd);
    double se = 0, fr = 0;
    for (size_t i = 0; i < nd; i++) {
      double e = (double)g.out[i] - target[i];
      se += e * e;
      dout[i] = (float)(e / (double)nd);
    }
    for (size_t i = 0; i < nf; i++) fr += (double)g.feat[i] * r[i];
    g.loss = 0.5 * se / (double)nd + fr;
    ops->to_device(doutd, dout, fs * nd);
    m->backward(m, dxd, doutd, rd, B);
    ops->to_host(g.dx, dxd, fs * nd);
    g.loaded = 1;
    free(dout);
    ops->free(xd), ops->free(td), ops->free(outd), ops->free(doutd), ops->free(rd), ops->free(dxd);
    ops->free(ld);
  }
  free(x), free(t), free(target), free(r), free(labels);
}

static int golden_ready(void) {
  if (!g.loaded) t_skip("the fixture did not load (see test_golden_load_and_run)");
  return g.loaded;
}

static void test_golden_out(void) {
  if (!golden_ready()) return;
  Worst w = {0};
  compare(&w, "out", g.out, g.ref_out, (long)g.B * g.dim);
  expect_worst("out", &w);
}

static void test_golden_features_and_loss(void) {
  if (!golden_ready()) return;
  Worst w = {0};
  compare(&w, "features", g.feat, g.ref_feat, (long)g.B * g.m->feat_dim);
  expect_worst("features", &w);
  EXPECT_CLOSE(g.loss, g.ref_loss, GOLD_ATOL, GOLD_RTOL, "loss");
}

static void test_golden_dx(void) {
  if (!golden_ready()) return;
  Worst w = {0};
  compare(&w, "grad_x", g.dx, g.ref_dx, (long)g.B * g.dim);
  expect_worst("grad_x", &w);
}

/* the gradients of every tensor whose name starts with one of the prefixes */
static void check_param_grads(const char *group, const char *const *prefixes, int np) {
  if (!golden_ready()) return;
  Model *m = g.m;
  Worst w = {0};
  int matched = 0;
  for (int k = 0; k < m->num_tensors; k++) {
    const TensorInfo *ti = &m->tensors[k];
    int hit = 0;
    for (int i = 0; i < np; i++) hit |= strncmp(ti->name, prefixes[i], strlen(prefixes[i])) == 0;
    if (!hit) continue;
    matched++;
    char name[MODEL_NAME_MAX + 8];
    snprintf(name, sizeof name, "grad/%s", ti->name);
    float *ref = read_shaped(name, ti->ndim, ti->shape);
    if (!ref) continue;
    long n = tensor_size(ti);
    float *c = mallocCheck(sizeof(float) * (size_t)n);
    ops->to_host(c, m->grads + ti->offset, sizeof(float) * (size_t)n);
    compare(&w, name, c, ref, n);
    free(c), free(ref);
  }
  EXPECT(matched > 0, "%s: no model tensor matched", group);
  expect_worst(group, &w);
}

static void test_golden_grad_embeddings(void) {
  static const char *const p[] = {"patch.", "time.", "class."};
  check_param_grads("grad patch, time and class embeddings", p, 3);
}

static void test_golden_grad_blocks(void) {
  static const char *const p[] = {"block"};
  check_param_grads("grad transformer blocks", p, 1);
}

static void test_golden_grad_final(void) {
  static const char *const p[] = {"final."};
  check_param_grads("grad final layer", p, 1);
}

/* text mode: the text encoder and Linear(pooled) (the blocks' xattn.* are in the blocks' group) */
static void test_golden_grad_text(void) {
  static const char *const p[] = {"text.", "cond.text."};
  check_param_grads("grad text encoder and pooled caption", p, 2);
}

static void run_fixture(const char *path) {
  FIXTURE = path;
  g = (Golden){0};
  TEST_RUN(test_golden_load_and_run);
  TEST_RUN(test_golden_out);
  TEST_RUN(test_golden_features_and_loss);
  TEST_RUN(test_golden_dx);
  TEST_RUN(test_golden_grad_embeddings);
  TEST_RUN(test_golden_grad_blocks);
  TEST_RUN(test_golden_grad_final);
  if (g.m && g.m->cfg.text) TEST_RUN(test_golden_grad_text);
  if (g.f > 0) h5_close(g.f);
  model_free(g.m);
  free(g.out), free(g.feat), free(g.dx), free(g.ref_out), free(g.ref_feat), free(g.ref_dx);
}

int main(void) {
  run_fixture("tests/fixtures/dit_golden.h5");
  printf("text mode\n");
  run_fixture("tests/fixtures/dit_text_golden.h5");
  return t_finish();
}
