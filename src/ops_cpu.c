/* ops_cpu.c: the CPU backend: OpenBLAS sgemm for every matmul, OpenMP loops for the rest.
 * Reductions accumulate in double in a fixed order per thread count, so a run is repeatable.
 * The file is compiled three times (Makefile): for the x86-64-v2 baseline (SSE, 4 floats a vector)
 * into the table ops_cpu, with -mavx2 -DOPS_CPU_AVX2 (8 floats) into ops_cpu_avx2, and with
 * -mavx512f -DOPS_CPU_AVX512 (16 floats) into ops_cpu_avx512; ops_select installs the widest the
 * processor has (src/backend.h). No build enables FMA contraction (ISO C mode keeps
 * -ffp-contract=off; AVX-512's own FMA instructions are emitted only for an fma() call, and there
 * is none), so each element gets the same IEEE operations in the same order in all three: the
 * tables' results are bit for bit equal (tests/test_fused.c checks every fused op), the wider ones
 * only take fewer instructions for the vectorized (`omp simd`) loops.
 * precision=bf16 (src/gemm_bf16.h): cpu_gemm, and so every linear layer and gemm/gemm_batched, rounds
 * its operands to bf16 and sums in float32 (AMX tiles where the processor has them); the fused
 * attention's per-head products stay float32 (cpu_sgemm), as the CUDA backend's fused attention
 * kernels run on CUDA cores. Everything else (reductions, softmax, layernorm, the optimizer) is the
 * same float32 code in both precisions.
 * Each op of core/ops_list.h is the function cpu_<op> here; the table at the end is generated from
 * that list, so a missing function is a compile error. Not here: the op documentation (the list). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "gemm_bf16.h"
#include "philox.h"
#include "vmath.h"

#if !defined OPS_CPU_AVX2 && !defined OPS_CPU_AVX512
const amd_ops *ops = &ops_cpu;
#endif

static void *cpu_alloc(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) amd_fatal("out of memory allocating %zu bytes", bytes);
  memset(p, 0, rounded ? rounded : 64);
  return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
  if (bytes) memcpy(dst, src, bytes);
}
/* backend memory is host memory: both directions are the same copy */
#define cpu_to_device cpu_copy
#define cpu_to_host cpu_copy

static void cpu_synchronize(void) {}
static void cpu_graph_run(void **graph, void (*body)(const void *arg), const void *arg, size_t arg_bytes) {
  (void)graph, (void)arg_bytes;
  body(arg);
}
static void cpu_graph_free(void *graph) { (void)graph; }

static void cpu_fill(float *x, float value, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) x[i] = value;
}

/* C's rows [m0, m1) and columns [n0, n1) as one sgemm: the same sums as in the whole product
 * (OpenBLAS splits a product over rows and columns, never over K) */
static void gemm_part(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                      float beta, float *C, int m0, int m1, int n0, int n1) {
  int lda = transA ? M : K, ldb = transB ? K : N;
  const float *Ap = transA ? A + m0 : A + (long)m0 * K, *Bp = transB ? B + (long)n0 * K : B + n0;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m1 - m0,
              n1 - n0, K, alpha, Ap, lda, Bp, ldb, beta, C + (long)m0 * N + n0, N);
}

/* Outside a parallel region, at 2 threads, a product big enough is cut into one piece per OpenMP
 * thread along C's longer side (rows when M >= N), each piece a single-threaded sgemm (inside the
 * region OpenBLAS stays on its thread), instead of OpenBLAS's own threading: the distillation
 * step's backward GEMMs (weight gradients such as 512 x 128 x 3136 T N) ran 1.67 times as fast as at
 * 1 thread under OpenBLAS's threads and 1.86 times under this cut, and on no shape of the two DiTs
 * was the cut more than 1.2% slower (benchmarks/RESULTS.md, "GEMMs cut along C's longer side"). At
 * more threads OpenBLAS's own partition (over both sides of C) is kept: a cut along one side would
 * pack the other operand once per thread, and it has not been measured there. Every
 * piece keeps at least GEMM_SPLIT_MIN rows or columns and 2^24 FLOPs (M N K >= 8.4 M), above the
 * products OpenBLAS 0.3 runs outside its regular kernels (its small-matrix kernels, M N K <= 100^3,
 * and on SkylakeX its direct sgemm, M N K < 28 x 512 x 512), so a piece runs the kernels the whole
 * product does and each element of C is the sum it is there: the bits do not depend on the thread
 * count (tests/test_fused.c, test_gemm_split). */
#define GEMM_SPLIT_MIN 64
#define GEMM_SPLIT_FLOPS (1L << 24)
#define GEMM_SPLIT_THREADS 2 /* the thread counts the cut was measured at */
static void cpu_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      const float *B, float beta, float *C) {
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads(), rows = M >= N, D = rows ? M : N;
  if (threads > 1 && threads <= GEMM_SPLIT_THREADS && D / threads >= GEMM_SPLIT_MIN &&
      2L * M * N * K / threads >= GEMM_SPLIT_FLOPS) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int p = 0; p < threads; p++) {
      int d0 = (int)((long)D * p / threads), d1 = (int)((long)D * (p + 1) / threads);
      if (rows) gemm_part(transA, transB, M, N, K, alpha, A, B, beta, C, d0, d1, 0, N);
      else gemm_part(transA, transB, M, N, K, alpha, A, B, beta, C, 0, M, d0, d1);
    }
    return;
  }
  gemm_part(transA, transB, M, N, K, alpha, A, B, beta, C, 0, M, 0, N);
}

/* precision=bf16: with AMX the kernel of src/gemm_bf16.h on this table's threads (the same bits at
 * any thread count); without, the operands rounded to bf16 values (float32 copies) and the float32
 * product on them */
static void cpu_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                          const float *B, float beta, float *C) {
  if (M <= 0 || N <= 0) return;
  if (gemm_bf16_amx()) {
    gemm_bf16_threads(transA, transB, M, N, K, alpha, A, B, beta, C, omp_get_max_threads(), NULL, NULL);
    return;
  }
  long nA = (long)M * K, nB = (long)K * N;
  float *a = mallocCheck(sizeof(float) * (size_t)(nA + nB + 1)), *b = a + nA;
  bf16_round_floats(a, A, nA);
  bf16_round_floats(b, B, nB);
  cpu_sgemm(transA, transB, M, N, K, alpha, a, b, beta, C);
  free(a);
}

/* every GEMM of the backend but the fused attention's: in the precision in force */
static void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                     float beta, float *C) {
  if (cpu_bf16()) cpu_gemm_bf16(transA, transB, M, N, K, alpha, A, B, beta, C);
  else cpu_sgemm(transA, transB, M, N, K, alpha, A, B, beta, C);
}

/* Small matrices (attention's per-head T x T): OpenBLAS runs those on one thread anyway, so spread
 * the batch over the OpenMP threads (inside a parallel region OpenBLAS stays single-threaded).
 * Large ones: sequential over the batch, each sgemm threaded by OpenBLAS. Each C_i gets the same
 * kernel either way. Distinct C_i only: a zero strideC would race. */
#define GEMM_SMALL_FLOPS (1L << 22)
static void cpu_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                             long strideA, const float *B, long strideB, float beta, float *C,
                             long strideC, int batch) {
#pragma omp parallel for schedule(static) if (batch > 1 && strideC != 0 && 2L * M * N * K < GEMM_SMALL_FLOPS)
  for (int i = 0; i < batch; i++)
    cpu_gemm(transA, transB, M, N, K, alpha, A + i * strideA, B + i * strideB, beta, C + i * strideC);
}

static void cpu_bias_add(float *y, const float *b, int B, int N) {
#pragma omp parallel for schedule(static) if ((long)B * N > 65536)
  for (int i = 0; i < B; i++) {
    float *yi = y + (long)i * N;
#pragma omp simd
    for (int j = 0; j < N; j++) yi[j] += b[j];
  }
}

/* Each column sums its rows in order, in double; rows are read along cache lines, a block of
 * columns per thread (a column walk down (B, N) touches a new line per element). A block is as wide
 * as the columns per thread up to BIAS_BLOCK, so at one thread a row of fc1's gradient (1024
 * columns, 4 KB) is read whole: in blocks of 256 columns, 1 KB of each row per pass down the rows,
 * gelu_bias_backward took 1.5 times as long (each row's piece is in another 4 KB page, where the
 * hardware prefetcher starts again). The sums are the same whatever the width: each column still
 * adds its rows in order. */
#define BIAS_BLOCK 2048
static void cpu_bias_backward(float *db, const float *dy, int B, int N) {
  int threads = (long)B * N > 65536 ? omp_get_max_threads() : 1;
  int blocks = amd_max_i(threads, (N + BIAS_BLOCK - 1) / BIAS_BLOCK), width = (N + blocks - 1) / blocks;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int blk = 0; blk < blocks; blk++) {
    int j0 = blk * width, j1 = amd_min_i(N, j0 + width);
    double s[BIAS_BLOCK];
    for (int j = j0; j < j1; j++) s[j - j0] = 0;
    for (int i = 0; i < B; i++) {
      const float *dyi = dy + (long)i * N;
#pragma omp simd
      for (int j = j0; j < j1; j++) s[j - j0] += dyi[j];
    }
    for (int j = j0; j < j1; j++) db[j] += (float)s[j - j0];
  }
}

static void cpu_silu_forward(float *y, const float *x, long n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (long i = 0; i < n; i++) y[i] = x[i] * vm_sigmoidf(x[i]);
}

static void cpu_silu_backward(float *dx, const float *dy, const float *x, long n) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (long i = 0; i < n; i++) {
    float s = vm_sigmoidf(x[i]);
    dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

#define LN_EPS 1e-6

/* Sums in SUM_LANES interleaved double sums: sum k takes the elements k, k + SUM_LANES, ... in
 * order (the tail's too), and the sums are added in order 0 .. SUM_LANES - 1 at the end. One chain
 * of dependent double adds, the plain loop's order, waits out the add's latency on every element (a
 * 256-column LayerNorm row: 256 adds one after the other, twice in the forward and in the backward;
 * the 7.4 M values of a teacher step's gradient norm, 1.6 ns each); these chains are independent,
 * and each vector lane carries whole chains, so the order, and the result, is the same at every
 * vector width (each table's, bit for bit). LayerNorm's row sums (layernorm_forward,
 * layernorm_modulate_forward and both backward ops, so the fused ops and the unfused ones give the
 * same bits) and sum_squares use them. */
#define SUM_LANES 16
/* the sum of x[0, n) */
static inline double lane_sum(const float *x, long n) {
  double a[SUM_LANES] = {0};
  long i = 0;
  for (; i + SUM_LANES <= n; i += SUM_LANES) {
#pragma omp simd
    for (int k = 0; k < SUM_LANES; k++) a[k] += x[i + k];
  }
  for (int k = 0; i < n; i++, k++) a[k] += x[i];
  double s = 0;
  for (int k = 0; k < SUM_LANES; k++) s += a[k];
  return s;
}

/* the sum of (x[i] - shift)^2 over x[0, n), the differences and squares in double (with shift 0,
 * each square of a float is exact) */
static inline double lane_sum_sq(const float *x, double shift, long n) {
  double a[SUM_LANES] = {0};
  long i = 0;
  for (; i + SUM_LANES <= n; i += SUM_LANES) {
#pragma omp simd
    for (int k = 0; k < SUM_LANES; k++) a[k] += (x[i + k] - shift) * (x[i + k] - shift);
  }
  for (int k = 0; i < n; i++, k++) a[k] += (x[i] - shift) * (x[i] - shift);
  double s = 0;
  for (int k = 0; k < SUM_LANES; k++) s += a[k];
  return s;
}

/* the mean and 1 / std of `rows` rows of C */
#define LN_ROWS 4
static inline void layernorm_stats(double *mu, double *rs, const float *x, int rows, int C) {
  for (int i = 0; i < rows; i++) {
    const float *xr = x + (long)i * C;
    mu[i] = lane_sum(xr, C) / C;
    rs[i] = 1.0 / sqrt(lane_sum_sq(xr, mu[i], C) / C + LN_EPS);
  }
}

static void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *x, int N, int C) {
  int groups = (N + LN_ROWS - 1) / LN_ROWS;
#pragma omp parallel for schedule(static) if ((long)N * C > 65536)
  for (int grp = 0; grp < groups; grp++) {
    int r0 = grp * LN_ROWS, rows = amd_min_i(LN_ROWS, N - r0);
    double mu[LN_ROWS], rs[LN_ROWS];
    layernorm_stats(mu, rs, x + (long)r0 * C, rows, C);
    for (int i = 0; i < rows; i++) {
      long r = r0 + i;
      const float *xr = x + r * C;
      float *orow = out + r * C;
      double m = mu[i], q = rs[i];
#pragma omp simd
      for (int c = 0; c < C; c++) orow[c] = (float)((xr[c] - m) * q);
      mean[r] = (float)m, rstd[r] = (float)q;
    }
  }
}

/* layernorm_forward's sums and normalization, then modulate_forward's map on each row while it is
 * in L1, instead of a second pass over the whole (B, T, C) */
static void cpu_layernorm_modulate_forward(float *y, float *ln, float *mean, float *rstd, const float *x,
                                           const float *shift, const float *scale, int ld, int B, int T, int C) {
  int N = B * T, groups = (N + LN_ROWS - 1) / LN_ROWS;
#pragma omp parallel for schedule(static) if ((long)N * C > 65536)
  for (int grp = 0; grp < groups; grp++) {
    int r0 = grp * LN_ROWS, rows = amd_min_i(LN_ROWS, N - r0);
    double mu[LN_ROWS], rs[LN_ROWS];
    layernorm_stats(mu, rs, x + (long)r0 * C, rows, C);
    for (int i = 0; i < rows; i++) {
      int r = r0 + i;
      const float *xr = x + (long)r * C, *k = scale + (long)(r / T) * ld, *sh = shift + (long)(r / T) * ld;
      float *yr = y + (long)r * C;
      double m = mu[i], q = rs[i];
      if (ln) {
        float *lr = ln + (long)r * C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
          float l = (float)((xr[c] - m) * q);
          lr[c] = l;
          yr[c] = l * (1.0f + k[c]) + sh[c];
        }
      } else {
#pragma omp simd
        for (int c = 0; c < C; c++) yr[c] = (float)((xr[c] - m) * q) * (1.0f + k[c]) + sh[c];
      }
      if (mean) mean[r] = (float)m;
      if (rstd) rstd[r] = (float)q;
    }
  }
}

/* one row: dx += rstd (dout - mean(dout) - xhat mean(dout xhat)) */
static inline void layernorm_backward_row(float *dxr, const float *dr, const float *xr, float mean, float rstd, int C) {
  double a[SUM_LANES] = {0}, b[SUM_LANES] = {0}; /* the two sums in SUM_LANES chains (lane_sum) */
  int c = 0;
  for (; c + SUM_LANES <= C; c += SUM_LANES) {
#pragma omp simd
    for (int k = 0; k < SUM_LANES; k++) {
      double xh = (xr[c + k] - mean) * rstd;
      a[k] += dr[c + k], b[k] += dr[c + k] * xh;
    }
  }
  for (int k = 0; c < C; c++, k++) {
    double xh = (xr[c] - mean) * rstd;
    a[k] += dr[c], b[k] += dr[c] * xh;
  }
  double sd = 0, sdx = 0;
  for (int k = 0; k < SUM_LANES; k++) sd += a[k], sdx += b[k];
  sd /= C, sdx /= C;
#pragma omp simd
  for (int c = 0; c < C; c++) {
    double xh = (xr[c] - mean) * rstd;
    dxr[c] += (float)(rstd * (dr[c] - sd - xh * sdx));
  }
}

static void cpu_layernorm_backward(float *dx, const float *dout, const float *x, const float *mean,
                                   const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static) if ((long)N * C > 65536)
  for (int r = 0; r < N; r++)
    layernorm_backward_row(dx + (long)r * C, dout + (long)r * C, x + (long)r * C, mean[r], rstd[r], C);
}

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */

static inline float gelu_u(float x) { return GELU_K * (x + 0.044715f * x * x * x); }

static inline float gelu_grad(float x, float th) {
  float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

/* y = 0.5 x (1 + tanh u); dg (may be NULL) keeps gelu'(x) for the backward, from the same tanh. The
 * loops are branch-free so that `omp simd` vectorizes them with vm_tanhf. */
static void cpu_gelu_forward(float *y, float *dg, const float *x, long n) {
  if (dg) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
    for (long i = 0; i < n; i++) {
      float xi = x[i], th = vm_tanhf(gelu_u(xi)); /* xi: y may be x */
      y[i] = 0.5f * xi * (1.0f + th);
      dg[i] = gelu_grad(xi, th);
    }
  } else {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
    for (long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + vm_tanhf(gelu_u(x[i])));
  }
}

/* dx = dy * gelu'(x), with gelu'(x) from the forward (dg) or computed from x (dg NULL) */
static void cpu_gelu_backward(float *dx, const float *dy, const float *x, const float *dg, long n) {
  if (dg) {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
    for (long i = 0; i < n; i++) dx[i] = dy[i] * dg[i];
  } else {
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
    for (long i = 0; i < n; i++) dx[i] = dy[i] * gelu_grad(x[i], vm_tanhf(gelu_u(x[i])));
  }
}

static void cpu_modulate_forward(float *y, const float *x, const float *shift, const float *scale, int ld,
                                 int B, int T, int C) {
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      long o = ((long)b * T + t) * C;
      const float *k = scale + (long)b * ld, *s = shift + (long)b * ld, *xr = x + o;
      float *yr = y + o;
#pragma omp simd
      for (int c = 0; c < C; c++) yr[c] = xr[c] * (1.0f + k[c]) + s[c];
    }
}

/* The per-sample sums over tokens run token by token along rows (in order, in double), for a block
 * of at most ROW_BLOCK features at a time: a walk down each feature's column would touch a new
 * cache line per element. */
#define ROW_BLOCK 256
static void cpu_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                                  const float *scale, int ld, int B, int T, int C) {
  int blocks = (C + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int blk = 0; blk < blocks; blk++) {
      int c0 = blk * ROW_BLOCK, c1 = amd_min_i(C, c0 + ROW_BLOCK);
      const float *k = scale + (long)b * ld;
      double ds[ROW_BLOCK] = {0}, dc[ROW_BLOCK] = {0};
      for (int t = 0; t < T; t++) {
        long o = ((long)b * T + t) * C;
        const float *dyr = dy + o, *xr = x + o;
        float *dxr = dx + o;
#pragma omp simd
        for (int c = c0; c < c1; c++) {
          dxr[c] = dyr[c] * (1.0f + k[c]);
          ds[c - c0] += dyr[c], dc[c - c0] += (double)dyr[c] * xr[c];
        }
      }
      for (int c = c0; c < c1; c++) {
        dshift[(long)b * ld + c] = (float)ds[c - c0];
        dscale[(long)b * ld + c] = (float)dc[c - c0];
      }
    }
}

/* One sample per thread at a time: each token's row of dm is made in an L1-resident row buffer,
 * added into the sample's dshift and dscale sums (token by token, in double, the order of
 * modulate_backward) and taken through layernorm_backward's row while it is there, so dm is
 * neither written out nor read back; dm itself is not touched. */
static void cpu_modulate_layernorm_backward(float *dx, float *dshift, float *dscale, float *dm, const float *dy,
                                            const float *ln, const float *scale, const float *x, const float *mean,
                                            const float *rstd, int ld, int B, int T, int C) {
  (void)dm;
#pragma omp parallel if ((long)B * T * C > 65536)
  {
    float *dmr = mallocCheck(sizeof(float) * (size_t)C);
    double *ds = mallocCheck(sizeof(double) * 2 * (size_t)C), *dc = ds + C;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) {
      const float *k = scale + (long)b * ld;
      for (int c = 0; c < C; c++) ds[c] = 0, dc[c] = 0;
      for (int t = 0; t < T; t++) {
        long r = (long)b * T + t, o = r * C;
        const float *dyr = dy + o, *lr = ln + o;
#pragma omp simd
        for (int c = 0; c < C; c++) {
          dmr[c] = dyr[c] * (1.0f + k[c]);
          ds[c] += dyr[c], dc[c] += (double)dyr[c] * lr[c];
        }
        layernorm_backward_row(dx + o, dmr, x + o, mean[r], rstd[r], C);
      }
      for (int c = 0; c < C; c++) {
        dshift[(long)b * ld + c] = (float)ds[c];
        dscale[(long)b * ld + c] = (float)dc[c];
      }
    }
    free(dmr), free(ds);
  }
}

static void cpu_gated_residual_forward(float *x, const float *gate, const float *y, int ld, int B, int T, int C) {
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      long o = ((long)b * T + t) * C;
      const float *g = gate + (long)b * ld, *yr = y + o;
      float *xr = x + o;
#pragma omp simd
      for (int c = 0; c < C; c++) xr[c] += g[c] * yr[c];
    }
}

static void cpu_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y,
                                        const float *gate, int ld, int B, int T, int C) {
  int blocks = (C + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int blk = 0; blk < blocks; blk++) {
      int c0 = blk * ROW_BLOCK, c1 = amd_min_i(C, c0 + ROW_BLOCK);
      const float *g = gate + (long)b * ld;
      double dg[ROW_BLOCK] = {0};
      for (int t = 0; t < T; t++) {
        long o = ((long)b * T + t) * C;
        const float *dxr = dx + o, *yr = y + o;
        float *dyr = dy + o;
#pragma omp simd
        for (int c = c0; c < c1; c++) {
          dyr[c] = g[c] * dxr[c];
          dg[c - c0] += (double)dxr[c] * yr[c];
        }
      }
      for (int c = c0; c < c1; c++) dgate[(long)b * ld + c] = (float)dg[c - c0];
    }
}

/* The fused linear layers. The rows are cut into blocks of LINEAR_ROWS (the last block takes the
 * remainder too); a thread takes a block, runs its GEMM (OpenBLAS is single-threaded inside a
 * parallel region) and the pointwise step while the block's z (about LINEAR_ROWS x O floats, 1 MiB
 * at O = 512) is in its core's L2, so z is written once and read back from cache instead of by a
 * second pass over the whole output. Each block's GEMM packs W again: blocks of 128 rows made the
 * dit's GEMMs 8-15% slower than one GEMM over all rows, blocks of 512 rows are as fast or faster. Each element of z is the same sum as in one GEMM over all rows
 * (OpenBLAS splits a product over rows and columns, never over K) as long as every block is a
 * product OpenBLAS runs in its regular kernels. It has others for small products (its small-matrix
 * kernels, M N K <= 100^3 in 0.3.21 on SkylakeX), and with the small layers in blocks too a
 * Fashion-MNIST distillation's gradients differed from the unfused ops' in the last bits; so layers
 * whose blocks would be small (the patch embedding, the output layer, the adaLN GEMMs of one row
 * per sample, the classifier's narrow ones) run as one GEMM on OpenBLAS's threads, and with that
 * the same run's log is the unfused one's bit for bit.
 * The steps after z are the expressions of bias_add, gelu_forward and gated_residual_forward, so
 * the results are bit for bit those of the unfused ops (tests/test_fused.c, on the dit's shapes). */
#define LINEAR_ROWS 512
#define LINEAR_BLOCK_MNK (1L << 21)
typedef enum { LINEAR_PLAIN, LINEAR_GELU, LINEAR_RESIDUAL } LinearStep;

typedef struct {
  LinearStep step;
  float *z;           /* (N, O) the GEMM's output: y, or pre for GELU (y too when pre is NULL) */
  float *y, *dg;      /* GELU: its output and derivative (dg may be NULL) */
  float *h_out;       /* residual: h_out = h_in + gate[row / T] z */
  const float *h_in, *gate;
  int ld, T;
} LinearOut;

/* GELU over one row of z, keeping its derivative (dg) or not; z may be y (each element is read before
 * it is written, and by nothing else). Out of line: inlined into linear_step,
 * GCC 12 inlines vm_tanhf into only one of the two loops and leaves the other unvectorized. */
static __attribute__((noinline)) void gelu_row_keep(float *y, float *dg, const float *z, int O) {
#pragma omp simd
  for (int j = 0; j < O; j++) {
    float zj = z[j], t = vm_tanhf(gelu_u(zj)); /* zj: y[j] may be z[j] */
    y[j] = 0.5f * zj * (1.0f + t);
    dg[j] = gelu_grad(zj, t);
  }
}

static __attribute__((noinline)) void gelu_row(float *y, const float *z, int O) {
#pragma omp simd
  for (int j = 0; j < O; j++) {
    float t = vm_tanhf(gelu_u(z[j]));
    y[j] = 0.5f * z[j] * (1.0f + t);
  }
}

/* the bias and the step after it on rows [r0, r1), columns [c0, c1) of z (O columns); each element's
 * operations are the same whatever the range */
static void linear_step_cols(const LinearOut *o, const float *b, int r0, int r1, int c0, int c1, int O) {
  int n = c1 - c0;
  for (int r = r0; r < r1; r++) {
    long off = (long)r * O + c0;
    float *z = o->z + off;
    if (b) {
      const float *bc = b + c0;
#pragma omp simd
      for (int j = 0; j < n; j++) z[j] += bc[j];
    }
    if (o->step == LINEAR_GELU && o->dg) {
      gelu_row_keep(o->y + off, o->dg + off, z, n);
    } else if (o->step == LINEAR_GELU) {
      gelu_row(o->y + off, z, n);
    } else if (o->step == LINEAR_RESIDUAL) {
      const float *g = o->gate + (long)(r / o->T) * o->ld + c0, *hi = o->h_in + off;
      float *ho = o->h_out + off;
#pragma omp simd
      for (int j = 0; j < n; j++) ho[j] = hi[j] + g[j] * z[j];
    }
  }
}

static void linear_step(const LinearOut *o, const float *b, int r0, int r1, int O) {
  linear_step_cols(o, b, r0, r1, 0, O, O);
}

/* precision=bf16 with AMX: the step runs on each block of 32 rows of z once the GEMM wrote it */
typedef struct {
  const LinearOut *o;
  const float *b;
  int O;
} LinearEpilogue;

static void linear_epilogue(const void *ctx, int r0, int r1, int c0, int c1) {
  const LinearEpilogue *e = ctx;
  linear_step_cols(e->o, e->b, r0, r1, c0, c1, e->O);
}

/* The bias inside the GEMM: z's rows start as b and the GEMM adds x W^T to them (beta 1), which
 * takes the bias's pass over z away (qkv's 3136 x 768 forward: 9.4 -> 8.1 ms at one thread, the
 * GEMM's own time; one GEMM over all rows instead of blocks when nothing else follows). The sums are
 * the same floats as long as OpenBLAS does not cut K into blocks (its GEMM_Q; on the development
 * Xeon K = 256 stays whole and 512 is cut): then each element is b + (x W^T) in one rounding, as
 * bias_add's (x W^T) + b. Cut, the bias would enter before the first block's partial sum instead of
 * after the last. A probe decides once, on the regular kernels (128 x 128 x 256, above the small-matrix
 * kernels' size): if b + sum and sum + b differ anywhere there, the bias stays a pass of its own. */
#define BIAS_IN_GEMM_K 256
static int bias_in_gemm(const float *b, int K) {
  static int ok = -1;
  if (!b || K > BIAS_IN_GEMM_K) return 0;
  if (ok < 0) {
    enum { PM = 128, PN = 128, PK = BIAS_IN_GEMM_K };
    float *a = mallocCheck(sizeof(float) * (PM * PK + PN * PK + PN + 2 * PM * PN));
    float *w = a + PM * PK, *bb = w + PN * PK, *c0 = bb + PN, *c1 = c0 + PM * PN;
    rng_normal(a, c0 - a, 12345, 0, 0, 0); /* x, W and b */
    cpu_sgemm(0, 1, PM, PN, PK, 1.0f, a, w, 0.0f, c0);
    for (int i = 0; i < PM; i++)
      for (int j = 0; j < PN; j++) {
        c0[i * PN + j] += bb[j];
        c1[i * PN + j] = bb[j];
      }
    cpu_sgemm(0, 1, PM, PN, PK, 1.0f, a, w, 1.0f, c1);
    ok = memcmp(c0, c1, sizeof(float) * PM * PN) == 0;
    free(a);
  }
  return ok;
}

/* rows [r0, r1) of z = x W^T, plus b when fold (bias_in_gemm's answer, asked before any parallel
 * region: its first call runs the probe) */
static void linear_gemm(const LinearOut *o, const float *x, const float *W, const float *b, int fold, int r0, int r1,
                        int K, int O) {
  float *z = o->z + (long)r0 * O;
  if (fold)
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && (long)(r1 - r0) * O > 65536)
    for (int r = 0; r < r1 - r0; r++) memcpy(z + (long)r * O, b, sizeof(float) * (size_t)O);
  cpu_gemm(0, 1, r1 - r0, O, K, 1.0f, x + (long)r0 * K, W, fold ? 1.0f : 0.0f, z);
}

static void linear_blocks(const LinearOut *o, const float *x, const float *W, const float *b, int N, int K, int O) {
  if (cpu_bf16() && gemm_bf16_amx()) { /* one product, cut among the threads, the step in its epilogue */
    LinearEpilogue e = {o, b, O};
    int none = o->step == LINEAR_PLAIN && !b;
    gemm_bf16_threads(0, 1, N, O, K, 1.0f, x, W, 0.0f, o->z, omp_get_max_threads(), none ? NULL : linear_epilogue, &e);
    return;
  }
  int blocks = N / LINEAR_ROWS, fold = bias_in_gemm(b, K);
  const float *bstep = fold ? NULL : b; /* the bias the step after the GEMM adds */
  if (blocks < 2 * omp_get_max_threads() || (long)LINEAR_ROWS * O * K < LINEAR_BLOCK_MNK ||
      (o->step == LINEAR_PLAIN && fold)) {
    linear_gemm(o, x, W, b, fold, 0, N, K, O); /* on OpenBLAS's threads, then the step on ours */
    if (o->step == LINEAR_PLAIN && !bstep) return;
    int chunk = amd_max_i(1, 16384 / amd_max_i(O, 1)), chunks = (N + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if ((long)N * O > 65536)
    for (int k = 0; k < chunks; k++) linear_step(o, bstep, k * chunk, amd_min_i(N, (k + 1) * chunk), O);
    return;
  }
#pragma omp parallel for schedule(dynamic)
  for (int k = 0; k < blocks; k++) {
    int r0 = k * LINEAR_ROWS, r1 = k == blocks - 1 ? N : (k + 1) * LINEAR_ROWS;
    linear_gemm(o, x, W, b, fold, r0, r1, K, O);
    linear_step(o, bstep, r0, r1, O);
  }
}

static void cpu_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int K, int O) {
  LinearOut o = {.step = LINEAR_PLAIN, .z = y};
  linear_blocks(&o, x, W, b, N, K, O);
}

static void cpu_linear_gelu_forward(float *y, float *dg, float *pre, const float *x, const float *W, const float *b,
                                    int N, int K, int O) {
  LinearOut o = {.step = LINEAR_GELU, .z = pre ? pre : y, .y = y, .dg = dg};
  linear_blocks(&o, x, W, b, N, K, O);
}

static void cpu_linear_residual_forward(float *h_out, float *y, const float *h_in, const float *gate, int ld,
                                        const float *x, const float *W, const float *b, int B, int T, int K, int O) {
  LinearOut o = {.step = LINEAR_RESIDUAL, .z = y, .h_out = h_out, .h_in = h_in, .gate = gate, .ld = ld, .T = T};
  linear_blocks(&o, x, W, b, B * T, K, O);
}

/* The bias gradient in the pass that makes the output gradient: each thread owns a block of
 * columns (bias_backward's split) and walks all rows in order, so every column is summed over the
 * rows in bias_backward's order, in double, while the values it adds are the ones just computed. */
static void column_blocks(int rows, int N, int *blocks, int *width) {
  int threads = (long)rows * N > 65536 ? omp_get_max_threads() : 1;
  *blocks = amd_min_i(N, amd_max_i(threads, (N + BIAS_BLOCK - 1) / BIAS_BLOCK));
  *width = (N + *blocks - 1) / *blocks;
}

static void cpu_gelu_bias_backward(float *dx, float *db, const float *dy, const float *x, const float *dg, int N,
                                   int O) {
  int blocks, width;
  column_blocks(N, O, &blocks, &width);
#pragma omp parallel for schedule(static) num_threads(amd_min_i(blocks, omp_get_max_threads()))
  for (int blk = 0; blk < blocks; blk++) {
    int j0 = blk * width, j1 = amd_min_i(O, j0 + width);
    double s[BIAS_BLOCK];
    for (int j = j0; j < j1; j++) s[j - j0] = 0;
    for (int i = 0; i < N; i++) {
      long o = (long)i * O;
      const float *dyr = dy + o;
      float *dxr = dx + o;
      if (dg) {
        const float *dgr = dg + o;
#pragma omp simd
        for (int j = j0; j < j1; j++) dxr[j] = dyr[j] * dgr[j];
      } else {
        const float *xr = x + o;
#pragma omp simd
        for (int j = j0; j < j1; j++) dxr[j] = dyr[j] * gelu_grad(xr[j], vm_tanhf(gelu_u(xr[j])));
      }
      if (db) {
#pragma omp simd
        for (int j = j0; j < j1; j++) s[j - j0] += dxr[j];
      }
    }
    if (db)
      for (int j = j0; j < j1; j++) db[j] += (float)s[j - j0];
  }
}

static void cpu_gated_residual_bias_backward(float *dy, float *dgate, float *db, const float *dx, const float *y,
                                             const float *gate, int ld, int B, int T, int C) {
  int blocks, width;
  column_blocks(B * T, C, &blocks, &width);
#pragma omp parallel for schedule(static) num_threads(amd_min_i(blocks, omp_get_max_threads()))
  for (int blk = 0; blk < blocks; blk++) {
    int c0 = blk * width, c1 = amd_min_i(C, c0 + width);
    double s[BIAS_BLOCK];
    for (int c = c0; c < c1; c++) s[c - c0] = 0;
    for (int b = 0; b < B; b++) {
      const float *g = gate + (long)b * ld;
      double dg[BIAS_BLOCK];
      for (int c = c0; c < c1; c++) dg[c - c0] = 0;
      for (int t = 0; t < T; t++) {
        long o = ((long)b * T + t) * C;
        const float *dxr = dx + o, *yr = y + o;
        float *dyr = dy + o;
#pragma omp simd
        for (int c = c0; c < c1; c++) {
          dyr[c] = g[c] * dxr[c];
          dg[c - c0] += (double)dxr[c] * yr[c];
          s[c - c0] += dyr[c];
        }
      }
      for (int c = c0; c < c1; c++) dgate[(long)b * ld + c] = (float)dg[c - c0];
    }
    if (db)
      for (int c = c0; c < c1; c++) db[c] += (float)s[c - c0];
  }
}

/* SM_ROWS rows of softmax_forward at once (y may be x; rows of C contiguous floats). Each row's
 * max and its sum of exponentials (in double) run over its columns in order, one element after the
 * other as in a loop over one row, so the results are the same bit for bit; but the rows' chains of
 * dependent compares and double adds are interleaved, so each step's latency is hidden behind the
 * other rows' instead of stalling (a lone 49-column row spent most of its time waiting for its
 * previous add). The exponentials are vm_expf's, in a loop of their own per row so that it
 * vectorizes. */
#define SM_ROWS 8
static inline void softmax_rows(float *y, const float *x, int rows, int C) {
  float mx[SM_ROWS];
  double s[SM_ROWS];
  for (int i = 0; i < rows; i++) mx[i] = x[(long)i * C], s[i] = 0;
  if (rows == SM_ROWS) {
    for (int c = 1; c < C; c++)
      for (int i = 0; i < SM_ROWS; i++) mx[i] = x[(long)i * C + c] > mx[i] ? x[(long)i * C + c] : mx[i];
  } else {
    for (int c = 1; c < C; c++)
      for (int i = 0; i < rows; i++) mx[i] = x[(long)i * C + c] > mx[i] ? x[(long)i * C + c] : mx[i];
  }
  for (int i = 0; i < rows; i++) {
    const float *xr = x + (long)i * C;
    float *yr = y + (long)i * C, m = mx[i];
#pragma omp simd
    for (int c = 0; c < C; c++) yr[c] = vm_expf(xr[c] - m);
  }
  if (rows == SM_ROWS) {
    for (int c = 0; c < C; c++)
      for (int i = 0; i < SM_ROWS; i++) s[i] += y[(long)i * C + c];
  } else {
    for (int c = 0; c < C; c++)
      for (int i = 0; i < rows; i++) s[i] += y[(long)i * C + c];
  }
  for (int i = 0; i < rows; i++) {
    float *yr = y + (long)i * C, inv = (float)(1.0 / s[i]);
#pragma omp simd
    for (int c = 0; c < C; c++) yr[c] *= inv;
  }
}

/* N rows of softmax_forward, SM_ROWS at a time */
static inline void softmax_block(float *y, const float *x, int N, int C) {
  for (int r = 0; r < N; r += SM_ROWS) softmax_rows(y + (long)r * C, x + (long)r * C, amd_min_i(SM_ROWS, N - r), C);
}

static void cpu_softmax_forward(float *y, const float *x, int N, int C) {
  int groups = (N + SM_ROWS - 1) / SM_ROWS;
#pragma omp parallel for schedule(static) if ((long)N * C > 65536)
  for (int g = 0; g < groups; g++)
    softmax_rows(y + (long)g * SM_ROWS * C, x + (long)g * SM_ROWS * C, amd_min_i(SM_ROWS, N - g * SM_ROWS), C);
}

/* SM_ROWS rows of softmax_backward at once, dx = y (dy - sum_c dy y) per row: each row's sum in
 * double and in column order as in a loop over one row (the same results bit for bit), the rows'
 * chains interleaved as in softmax_rows */
static inline void softmax_backward_rows(float *dx, const float *dy, const float *y, int rows, int C) {
  double s[SM_ROWS] = {0};
  if (rows == SM_ROWS) {
    for (int c = 0; c < C; c++)
      for (int i = 0; i < SM_ROWS; i++) s[i] += (double)dy[(long)i * C + c] * y[(long)i * C + c];
  } else {
    for (int c = 0; c < C; c++)
      for (int i = 0; i < rows; i++) s[i] += (double)dy[(long)i * C + c] * y[(long)i * C + c];
  }
  for (int i = 0; i < rows; i++) {
    const float *dr = dy + (long)i * C, *yr = y + (long)i * C;
    float *dxr = dx + (long)i * C;
    double si = s[i];
#pragma omp simd
    for (int c = 0; c < C; c++) dxr[c] = yr[c] * (float)(dr[c] - si);
  }
}

static inline void softmax_backward_block(float *dx, const float *dy, const float *y, int N, int C) {
  for (int r = 0; r < N; r += SM_ROWS) {
    long o = (long)r * C;
    softmax_backward_rows(dx + o, dy + o, y + o, amd_min_i(SM_ROWS, N - r), C);
  }
}

static void cpu_softmax_backward(float *dx, const float *dy, const float *y, int N, int C) {
  int groups = (N + SM_ROWS - 1) / SM_ROWS;
#pragma omp parallel for schedule(static) if ((long)N * C > 65536)
  for (int g = 0; g < groups; g++) {
    long o = (long)g * SM_ROWS * C;
    softmax_backward_rows(dx + o, dy + o, y + o, amd_min_i(SM_ROWS, N - g * SM_ROWS), C);
  }
}

/* offset in the image (B, C, H, W) of token element (b, t, (py p + px) C + c) */
static inline long patch_pixel(int b, int t, int py, int px, int c, int C, int H, int W, int p) {
  int gw = W / p;
  return (((long)b * C + c) * H + (t / gw) * p + py) * W + (t % gw) * p + px;
}

static void cpu_patchify(float *tokens, const float *img, int B, int C, int H, int W, int p) {
  int T = (H / p) * (W / p), P = p * p * C;
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * C * H * W > 65536)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int py = 0; py < p; py++)
        for (int px = 0; px < p; px++)
          for (int c = 0; c < C; c++)
            tokens[((long)b * T + t) * P + (py * p + px) * C + c] = img[patch_pixel(b, t, py, px, c, C, H, W, p)];
}

static void cpu_unpatchify(float *img, const float *tokens, int B, int C, int H, int W, int p) {
  int T = (H / p) * (W / p), P = p * p * C;
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * C * H * W > 65536)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int py = 0; py < p; py++)
        for (int px = 0; px < p; px++)
          for (int c = 0; c < C; c++)
            img[patch_pixel(b, t, py, px, c, C, H, W, p)] = tokens[((long)b * T + t) * P + (py * p + px) * C + c];
}

static void cpu_heads_split(float *q, float *k, float *v, const float *qkv, int B, int T, int NH, int hs) {
  long C = (long)NH * hs;
#pragma omp parallel for collapse(3) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const float *src = qkv + ((long)b * T + t) * 3 * C + (long)h * hs;
        long o = (((long)b * NH + h) * T + t) * hs;
        memcpy(q + o, src, sizeof(float) * (size_t)hs);
        memcpy(k + o, src + C, sizeof(float) * (size_t)hs);
        memcpy(v + o, src + 2 * C, sizeof(float) * (size_t)hs);
      }
}

static void cpu_heads_split_backward(float *dqkv, const float *dq, const float *dk, const float *dv, int B,
                                     int T, int NH, int hs) {
  long C = (long)NH * hs;
#pragma omp parallel for collapse(3) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        float *dst = dqkv + ((long)b * T + t) * 3 * C + (long)h * hs;
        long o = (((long)b * NH + h) * T + t) * hs;
        memcpy(dst, dq + o, sizeof(float) * (size_t)hs);
        memcpy(dst + C, dk + o, sizeof(float) * (size_t)hs);
        memcpy(dst + 2 * C, dv + o, sizeof(float) * (size_t)hs);
      }
}

static void cpu_heads_merge(float *out, const float *y, int B, int T, int NH, int hs) {
  long C = (long)NH * hs;
#pragma omp parallel for collapse(3) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++)
        memcpy(out + ((long)b * T + t) * C + (long)h * hs, y + (((long)b * NH + h) * T + t) * hs, sizeof(float) * (size_t)hs);
}

static void cpu_heads_merge_backward(float *dy, const float *dout, int B, int T, int NH, int hs) {
  long C = (long)NH * hs;
#pragma omp parallel for collapse(3) schedule(static) if ((long)B * T * C > 65536)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++)
        memcpy(dy + (((long)b * NH + h) * T + t) * hs, dout + ((long)b * T + t) * C + (long)h * hs, sizeof(float) * (size_t)hs);
}

/* One (sample, head) at a time per thread: the scores GEMM reading the head's q and k in place from
 * qkv (leading dimension 3 NH hs), the softmax of each score row while the T x T block is in L1 or
 * L2, and the product with v (in place too) written straight into the head's columns of out
 * (leading dimension NH hs), so neither the heads, the scores nor y take a pass of their own. The
 * products are the GEMMs gemm_batched runs for these shapes after heads_split (one single-threaded
 * sgemm per head when small, else each on OpenBLAS's threads; a leading dimension moves where an
 * operand is read, not the order of a sum: tests/test_fused.c checks the bits), the softmax is softmax_forward's row, so the results are bit
 * for bit the unfused attention's. */
static void cpu_attention_forward(float *out, float *prob, float *scratch, const float *qkv, int B, int T, int NH,
                                  int hs) {
  (void)scratch;
  long C = (long)NH * hs, tt = (long)T * T;
  float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static) if (B * NH > 1 && 2L * T * T * hs < GEMM_SMALL_FLOPS)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float *qi = qkv + (long)b * T * 3 * C + (long)h * hs, *ki = qi + C, *vi = qi + 2 * C;
      float *pi = prob + ((long)b * NH + h) * tt;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, qi, (int)(3 * C), ki, (int)(3 * C), 0.0f,
                  pi, T);
      softmax_block(pi, pi, T, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, pi, T, vi, (int)(3 * C), 0.0f,
                  out + (long)b * T * C + (long)h * hs, (int)C);
    }
}

/* Where a head's rows of q, k or v are: (sample b, head h) starts at p + b sb + h sh, its rows ld
 * floats apart. The caches of cross-attention (B, NH, N, hs): sb = NH N hs, sh = N hs, ld = hs;
 * self-attention's qkv (B, T, 3 NH hs) read in place: sb = 3 T NH hs, sh = hs, ld = 3 NH hs. */
typedef struct {
  const float *p;
  long sb, sh;
  int ld;
} HeadRows;

static inline const float *head_rows(HeadRows x, int b, int h) { return x.p + b * x.sb + h * x.sh; }

/* The backward of attention per (sample, head), self- and cross-attention alike: N queries, M keys
 * (M = N for self-attention). The head's dy is read in place from dout (leading dimension NH hs);
 * dprob = dy v^T, dv = prob^T dy, datt = softmax_backward(dprob), dq = datt k / sqrt(hs) and
 * dk = datt^T q / sqrt(hs), the three written straight into the head's columns of dq (leading
 * dimension ldq) and of dk, dv (leading dimension ldkv) with beta 0 (overwrite) or 1 (add), so
 * there is no merge or split pass. The products are gemm_batched's for these shapes, the rows
 * softmax_backward's, so the results are bit for bit the unfused backward's. A key padding mask
 * needs nothing here: a padded key's probability 0 gives it datt 0, so no gradient. dprob and datt
 * are (B, NH, N, M) scratch each. The (sample, head) blocks write disjoint columns, so the threads
 * never share an output. */
static void attention_backward_heads(float *dq, int ldq, float *dk, float *dv, int ldkv, float beta, float *dprob,
                                     float *datt, const float *dout, HeadRows q, HeadRows k, HeadRows v,
                                     const float *prob, int B, int N, int M, int NH, int hs) {
  long C = (long)NH * hs, nm = (long)N * M;
  float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static) if (B * NH > 1 && 2L * N * M * hs < GEMM_SMALL_FLOPS)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      long i = (long)b * NH + h;
      const float *qi = head_rows(q, b, h), *ki = head_rows(k, b, h), *vi = head_rows(v, b, h), *pi = prob + i * nm;
      const float *dy = dout + (long)b * N * C + (long)h * hs;
      float *dp = dprob + i * nm, *da = datt + i * nm;
      float *dqi = dq + (long)b * N * ldq + (long)h * hs, *dki = dk + (long)b * M * ldkv + (long)h * hs;
      float *dvi = dv + (long)b * M * ldkv + (long)h * hs;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, hs, 1.0f, dy, (int)C, vi, v.ld, 0.0f, dp, M);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, hs, N, 1.0f, pi, M, dy, (int)C, beta, dvi, ldkv);
      softmax_backward_block(da, dp, pi, N, M);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hs, M, scale, da, M, ki, k.ld, beta, dqi, ldq);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, hs, N, scale, da, M, qi, q.ld, beta, dki, ldkv);
    }
}

/* self-attention: q, k, v read in place from qkv; dq, dk, dv overwrite the head's columns of dqkv
 * (leading dimension 3 NH hs) */
static void cpu_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                   const float *prob, int B, int T, int NH, int hs) {
  int C = NH * hs;
  float *dprob = scratch, *datt = dprob + (long)B * NH * T * T; /* attention_scratch_floats' */
  long sb = 3L * T * C;
  HeadRows q = {qkv, sb, hs, 3 * C}, k = {qkv + C, sb, hs, 3 * C}, v = {qkv + 2 * C, sb, hs, 3 * C};
  attention_backward_heads(dqkv, 3 * C, dqkv + C, dqkv + 2 * C, 3 * C, 0.0f, dprob, datt, dout, q, k, v, prob, B, T,
                           T, NH, hs);
}

/* one row of cross_attention_forward's softmax over the keys whose mask is nonzero: the padded
 * keys get 0, and a row with no key left is all 0 (the empty caption); with every key present it is
 * softmax_rows' for that row */
static inline void masked_softmax_row(float *yr, const float *xr, const float *mask, int C) {
  float mx = -INFINITY;
  for (int c = 0; c < C; c++)
    if (mask[c] != 0.0f) mx = xr[c] > mx ? xr[c] : mx;
  if (mx == -INFINITY) { /* no key (or only -inf scores, which a finite q k^T never gives) */
    memset(yr, 0, sizeof(float) * (size_t)C);
    return;
  }
#pragma omp simd
  for (int c = 0; c < C; c++) yr[c] = vm_select(mask[c] != 0.0f, vm_expf(xr[c] - mx), 0.0f);
  double s = 0;
  for (int c = 0; c < C; c++) s += yr[c];
  float inv = (float)(1.0 / s);
#pragma omp simd
  for (int c = 0; c < C; c++) yr[c] *= inv;
}

/* As cpu_attention_forward, with queries and keys from two sequences: per (sample, head), the head's
 * rows of query and of kv copied out (the caches), the N x M scores, their masked softmax while the
 * block is in cache, and prob v written straight into the head's columns of out. */
static void cpu_cross_attention_forward(float *out, float *q, float *k, float *v, float *prob, float *y,
                                        const float *query, const float *kv, const float *mask, int B, int N, int M,
                                        int NH, int hs) {
  (void)y;
  long C = (long)NH * hs, nh = (long)N * hs, mh = (long)M * hs, nm = (long)N * M;
  float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static) if (B * NH > 1 && 2L * N * M * hs < GEMM_SMALL_FLOPS)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      long i = (long)b * NH + h;
      float *qi = q + i * nh, *ki = k + i * mh, *vi = v + i * mh, *pi = prob + i * nm;
      for (int t = 0; t < N; t++)
        memcpy(qi + (long)t * hs, query + ((long)b * N + t) * C + (long)h * hs, sizeof(float) * (size_t)hs);
      for (int t = 0; t < M; t++) {
        const float *src = kv + ((long)b * M + t) * 2 * C + (long)h * hs;
        memcpy(ki + (long)t * hs, src, sizeof(float) * (size_t)hs);
        memcpy(vi + (long)t * hs, src + C, sizeof(float) * (size_t)hs);
      }
      cpu_sgemm(0, 1, N, M, hs, scale, qi, ki, 0.0f, pi);
      for (int t = 0; t < N; t++) masked_softmax_row(pi + (long)t * M, pi + (long)t * M, mask + (long)b * M, M);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hs, M, 1.0f, pi, M, vi, hs, 0.0f,
                  out + (long)b * N * C + (long)h * hs, (int)C);
    }
}

/* cross-attention: dq, dk, dv add (beta 1) into the head's columns of dquery (leading dimension
 * NH hs) and dkv (2 NH hs) */
static void cpu_cross_attention_backward(float *dquery, float *dkv, float *scratch, const float *dout, const float *q,
                                         const float *k, const float *v, const float *prob, int B, int N, int M,
                                         int NH, int hs) {
  int C = NH * hs;
  float *dprob = scratch, *datt = dprob + (long)B * NH * N * M; /* cross_attention_scratch_floats' */
  long nh = (long)N * hs, mh = (long)M * hs;
  HeadRows qr = {q, NH * nh, nh, hs}, kr = {k, NH * mh, mh, hs}, vr = {v, NH * mh, mh, hs}; /* the caches */
  attention_backward_heads(dquery, C, dkv, dkv + C, 2 * C, 1.0f, dprob, datt, dout, qr, kr, vr, prob, B, N, M, NH, hs);
}

static void cpu_add(float *y, const float *a, const float *b, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void cpu_axpy(float *y, float a, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) y[i] += a * x[i];
}

static void cpu_scale(float *x, float a, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) x[i] *= a;
}

static void cpu_ema_update(float *ema, const float *p, long n, float w) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) ema[i] += w * (p[i] - ema[i]);
}

/* The frequencies depend on k alone: computed once per call (in chunks of TE_CHUNK), not once per
 * sample, with the same expression, so the same doubles (a toy distillation spent 11% of its op time
 * here, half of it in exp and log) */
#define TE_CHUNK 256
static void cpu_timestep_embedding(float *out, const float *t, int B, int dim, float scale, float max_period) {
  int half = dim / 2;
  double f[TE_CHUNK];
  for (int k0 = 0; k0 < half; k0 += TE_CHUNK) {
    int kn = amd_min_i(TE_CHUNK, half - k0);
    for (int k = 0; k < kn; k++) f[k] = scale * exp(-log((double)max_period) * (k0 + k) / half);
#pragma omp parallel for schedule(static) if ((long)B * dim > 65536)
    for (int b = 0; b < B; b++) {
      float *o = out + (long)b * dim + k0;
      for (int k = 0; k < kn; k++) {
        o[k] = (float)cos(t[b] * f[k]);
        o[half + k] = (float)sin(t[b] * f[k]);
      }
    }
  }
}

static void cpu_embedding_forward(float *out, const float *table, const int *ids, int B, int dim) {
  for (int b = 0; b < B; b++) memcpy(out + (long)b * dim, table + (long)ids[b] * dim, sizeof(float) * dim);
}

static void cpu_embedding_backward(float *dtable, const float *dout, const int *ids, int B, int dim) {
  /* serial over rows: two rows may share an id */
  for (int b = 0; b < B; b++)
    for (int j = 0; j < dim; j++) dtable[(long)ids[b] * dim + j] += dout[(long)b * dim + j];
}

/* each of the threads sums its static block into part[t], and the parts are added in order 0, 1,
 * ..., so the result depends on the thread count only (an OpenMP reduction(+) adds the threads'
 * sums in the order they finish, which can differ from run to run in the last bits) */
#define SS_MAX_PARTS 256
static double cpu_sum_squares(const float *x, long n) {
  int parts = n > 65536 ? amd_min_i(omp_get_max_threads(), SS_MAX_PARTS) : 1;
  long chunk = (n + parts - 1) / parts;
  double part[SS_MAX_PARTS];
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int t = 0; t < parts; t++) {
    long lo = (long)t * chunk < n ? (long)t * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
    part[t] = lane_sum_sq(x + lo, 0.0, hi - lo); /* lane_sum_sq's order within the block */
  }
  double s = 0;
  for (int t = 0; t < parts; t++) s += part[t];
  return s;
}

static void cpu_sum_squares_async(double *out, const float *x, long n) { *out = cpu_sum_squares(x, n); }

static int cpu_all_finite(const float *x, long n) {
  int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > 65536)
  for (long i = 0; i < n; i++) bad |= !isfinite(x[i]);
  return !bad;
}

static void cpu_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                      float beta2, float eps, float wd, float grad_scale, long t) {
  float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
  /* simd: each element's arithmetic is independent (no reduction), so the vector lanes give the
   * scalar loop's results bit for bit. It vectorizes only with -fno-math-errno (Makefile): with
   * errno kept, sqrtf of a negative must set it, GCC branches to the library call per element and
   * the loop stays scalar whatever the pragma says (26 ms -> 8.7 ms at 7.4 M parameters, 1 thread). */
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
  for (long i = 0; i < n; i++) {
    float gi = g[i] * grad_scale;
    m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
    v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    float mhat = m[i] / bc1, vhat = v[i] / bc2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  }
}

static void cpu_randn(float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0) {
#pragma omp parallel for schedule(static) if ((long)B * D > 16384)
  for (int b = 0; b < B; b++) rng_normal(out + (long)b * D, D, seed, stream, step, index0 + (uint32_t)b);
}

static void cpu_flow_interpolate(float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      long i = (long)b * D + d;
      xt[i] = (1.0f - t[b]) * x0[i] + t[b] * e[i];
      v[i] = e[i] - x0[i];
    }
}

static void cpu_mse_forward_backward(float *loss, float *dpred, const float *pred, const float *target,
                                     const float *weight, int B, int D, float scale) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++) {
    double s = 0;
    float k = scale * (weight ? weight[b] : 1.0f) * 2.0f / (float)D;
    for (int d = 0; d < D; d++) {
      long i = (long)b * D + d;
      float diff = pred[i] - target[i];
      s += (double)diff * diff;
      if (dpred) dpred[i] = k * diff;
    }
    if (loss) loss[b] = (float)(s / D);
  }
}

static void cpu_softplus_forward_backward(float *loss, float *dz, const float *z, float sign, float scale, int B) {
  for (int b = 0; b < B; b++) {
    double u = (double)sign * z[b];
    if (loss) loss[b] = (float)(u > 0 ? u + log1p(exp(-u)) : log1p(exp(u)));
    dz[b] = (float)(scale * sign / (1.0 + exp(-u)));
  }
}

static void cpu_flow_denoise(float *d, const float *xt, const float *v, const float *t, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++)
    for (int j = 0; j < D; j++) d[(long)b * D + j] = xt[(long)b * D + j] - t[b] * v[(long)b * D + j];
}

static void cpu_dmd_grad(float *dx, float *stats, const float *x, const float *d_c, const float *d_u,
                         const float *d_f, const float *alpha, const float *beta, float w, float scale, int beta_fake,
                         int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 16384)
  for (int b = 0; b < B; b++) {
    const long o = (long)b * D;
    double n = 0, rr = 0, ff = 0, cu = 0, rf = 0;
    for (int j = 0; j < D; j++) {
      float cfg = d_u[o + j] + w * (d_c[o + j] - d_u[o + j]);
      n += fabsf(x[o + j] - cfg);
      double r = d_c[o + j] - x[o + j], f = d_f[o + j] - x[o + j], g = d_c[o + j] - d_u[o + j];
      rr += r * r, ff += f * f, cu += g * g, rf += r * f;
    }
    n = n / D + 1e-12;
    double loss = 0;
    for (int j = 0; j < D; j++) {
      float h;
      if (beta_fake) {
        float cfg = d_u[o + j] + w * (d_c[o + j] - d_u[o + j]);
        h = alpha[b] * (cfg - x[o + j]) - beta[b] * (d_f[o + j] - x[o + j]);
      } else {
        h = beta[b] * (d_c[o + j] - d_f[o + j]) + alpha[b] * (w - 1.0f) * (d_c[o + j] - d_u[o + j]);
      }
      float g = h / (float)n;
      loss += 0.5 * (double)g * g;
      dx[o + j] = -scale * g;
    }
    float *s = stats + (long)b * 6;
    s[0] = (float)loss, s[1] = (float)n, s[2] = (float)sqrt(rr), s[3] = (float)sqrt(ff), s[4] = (float)sqrt(cu);
    s[5] = (float)(rf / (sqrt(rr * ff) + 1e-30));
  }
}

static void cpu_euler_update(float *x, const float *v, const float *h, int B, int D) {
#pragma omp parallel for schedule(static) if ((long)B * D > 65536)
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) x[(long)b * D + d] += h[b] * v[(long)b * D + d];
}

/* the table: every op of core/ops_list.h as its cpu_<op> above */
#define CPU_ENTRY(ret, op, params, args, rv) .op = cpu_##op,
#if defined OPS_CPU_AVX2
const amd_ops ops_cpu_avx2 = {.name = "cpu", .host_memory = 1, AMD_OPS(CPU_ENTRY)};
#elif defined OPS_CPU_AVX512
const amd_ops ops_cpu_avx512 = {.name = "cpu", .host_memory = 1, AMD_OPS(CPU_ENTRY)};
#else
const amd_ops ops_cpu = {.name = "cpu", .host_memory = 1, AMD_OPS(CPU_ENTRY)};
#endif
