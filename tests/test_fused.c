/* test_fused.c: each fused op of the CPU backend's transformer against its unfused form, on the
 * same inputs, bit for bit (the fused ops keep the order of every float operation; core/ops_list.h):
 * the fused linear layers against gemm + bias_add (+ gelu_forward, or copy + gated_residual_forward),
 * with and without a bias, at 1 to 3 threads, with row counts that run as one block and in row
 * blocks with a short last block, and the gated residual in place (h_out = h_in).
 * Not here: values against a reference (test_dit checks the unfused ops, test_dit_golden the whole
 * dit against PyTorch), CUDA conformance (test_cuda). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "test.h"

#define TEST_SEED 20261205u
#include "gradcheck.h"

static void expect_same(const char *what, const float *got, const float *want, long n) {
  long bad = 0, first = -1;
  for (long i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) bad++, first = first < 0 ? i : first;
  EXPECT(bad == 0, "%s: %ld of %ld values differ from the unfused ops' (first at %ld: %.9g vs %.9g)", what, bad, n,
         first, bad ? got[first] : 0.0, bad ? want[first] : 0.0);
}

/* B, T (rows B T), K inputs, O outputs: one block (51 rows), blocks with a short last one (1000), the
 * dit's MLP widths at 4 x 49 tokens */
static const int shapes[][4] = {{3, 17, 24, 40}, {8, 125, 37, 19}, {4, 49, 128, 512}, {4, 49, 512, 128}};

typedef struct {
  int B, T, K, O, N;
  long n;
  float *x, *W, *b, *h_in, *cond; /* inputs: x (N, K), W (O, K), b (O), h_in (N, O), cond (B, 6 O) */
} Layer;

static Layer layer_make(const int *s) {
  Layer l = {.B = s[0], .T = s[1], .K = s[2], .O = s[3]};
  l.N = l.B * l.T, l.n = (long)l.N * l.O;
  l.x = alloc_f((long)l.N * l.K), l.W = alloc_f((long)l.O * l.K), l.b = alloc_f(l.O);
  l.h_in = alloc_f(l.n), l.cond = alloc_f(6L * l.B * l.O);
  fill_uniform(l.x, (long)l.N * l.K, -1, 1), fill_uniform(l.W, (long)l.O * l.K, -0.5, 0.5);
  fill_uniform(l.b, l.O, -1, 1), fill_uniform(l.h_in, l.n, -2, 2), fill_uniform(l.cond, 6L * l.B * l.O, -1, 1);
  return l;
}

static void layer_free(Layer *l) {
  ops->free(l->x), ops->free(l->W), ops->free(l->b), ops->free(l->h_in), ops->free(l->cond);
}

/* z = x W^T + b, unfused */
static void unfused_linear(float *z, const Layer *l, const float *b) {
  ops->gemm(0, 1, l->N, l->O, l->K, 1.0f, l->x, l->W, 0.0f, z);
  if (b) ops->bias_add(z, b, l->N, l->O);
}

static void check_layer(const Layer *l, const float *b, const char *tag) {
  long n = l->n;
  float *want = alloc_f(n), *want_y = alloc_f(n), *want_th = alloc_f(n), *want_h = alloc_f(n);
  float *got = alloc_f(n), *got_y = alloc_f(n), *got_th = alloc_f(n), *got_h = alloc_f(n);
  char what[160];
  unfused_linear(want, l, b);
  ops->fill(got, 7.0f, n); /* the fused ops overwrite */
  ops->linear_forward(got, l->x, l->W, b, l->N, l->K, l->O);
  snprintf(what, sizeof what, "linear_forward %s", tag);
  expect_same(what, got, want, n);

  ops->gelu_forward(want_y, want_th, want, n);
  ops->fill(got, 7.0f, n), ops->fill(got_y, 7.0f, n), ops->fill(got_th, 7.0f, n);
  ops->linear_gelu_forward(got_y, got_th, got, l->x, l->W, b, l->N, l->K, l->O);
  snprintf(what, sizeof what, "linear_gelu_forward pre %s", tag);
  expect_same(what, got, want, n);
  snprintf(what, sizeof what, "linear_gelu_forward y %s", tag);
  expect_same(what, got_y, want_y, n);
  snprintf(what, sizeof what, "linear_gelu_forward th %s", tag);
  expect_same(what, got_th, want_th, n);
  ops->fill(got_y, 7.0f, n);
  ops->linear_gelu_forward(got_y, NULL, got, l->x, l->W, b, l->N, l->K, l->O);
  snprintf(what, sizeof what, "linear_gelu_forward y without th %s", tag);
  expect_same(what, got_y, want_y, n);

  const float *gate = l->cond + 5 * l->O; /* chunk 5 of the adaLN output, as the dit's MLP half */
  ops->copy(want_h, l->h_in, sizeof(float) * (size_t)n);
  ops->gated_residual_forward(want_h, gate, want, 6 * l->O, l->B, l->T, l->O);
  ops->fill(got, 7.0f, n), ops->fill(got_h, 7.0f, n);
  ops->linear_residual_forward(got_h, got, l->h_in, gate, 6 * l->O, l->x, l->W, b, l->B, l->T, l->K, l->O);
  snprintf(what, sizeof what, "linear_residual_forward y %s", tag);
  expect_same(what, got, want, n);
  snprintf(what, sizeof what, "linear_residual_forward h %s", tag);
  expect_same(what, got_h, want_h, n);
  ops->copy(got_h, l->h_in, sizeof(float) * (size_t)n); /* in place: h_out = h_in */
  ops->linear_residual_forward(got_h, got, got_h, gate, 6 * l->O, l->x, l->W, b, l->B, l->T, l->K, l->O);
  snprintf(what, sizeof what, "linear_residual_forward in place %s", tag);
  expect_same(what, got_h, want_h, n);

  float *bufs[] = {want, want_y, want_th, want_h, got, got_y, got_th, got_h};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ops->free(bufs[i]);
}

static void test_linear_fused(void) {
  int threads = omp_get_max_threads();
  for (size_t z = 0; z < sizeof shapes / sizeof shapes[0]; z++) {
    Layer l = layer_make(shapes[z]);
    for (int th = 1; th <= 3; th++) {
      omp_set_num_threads(th);
      for (int bias = 0; bias < 2; bias++) {
        char tag[64];
        snprintf(tag, sizeof tag, "%dx%dx%d%s, %d threads", l.N, l.K, l.O, bias ? " bias" : "", th);
        check_layer(&l, bias ? l.b : NULL, tag);
      }
    }
    layer_free(&l);
  }
  omp_set_num_threads(threads);
}

int main(void) {
  TEST_RUN(test_linear_fused);
  return t_finish();
}
