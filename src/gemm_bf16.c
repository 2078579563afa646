/* gemm_bf16.c: bf16 products on the CPU (src/gemm_bf16.h): AMX tiles where the processor and the
 * kernel allow them, the rounding of the operands for everyone else.
 * The amx way, for one part of C: B's columns of the part are packed once into bf16 tiles in the
 * VNNI layout TDPBF16PS reads (16 pairs of k by 16 columns, 1 KB), A^T whole and A a block of 32
 * rows at a time into two tiles per 32 k; each 32 x 32 block of C is four accumulator tiles over the
 * whole of K (2 A tiles x 2 B tiles, the eight tile registers), stored to a block of floats and
 * written to C as alpha acc + beta C; each block of 32 rows of C, once written, goes to the caller's
 * epilogue while it is in L2 (the fused linear layers' bias and GELU or residual). With threads
 * (gemm_bf16_threads) the operand all parts read is packed once, by all of them. The rounding to
 * bf16 happens while packing (VCVTNE2PS2BF16: nearest, ties to even). Rows and columns beyond the
 * part and k beyond K are packed as zeros, which add nothing to any sum. Every element of C is the
 * same sequence of TDPBF16PS over k blocks 0, 1, ... whatever its place in a block, so the part a
 * call computes does not change its bits.
 * This file is compiled with the target ISA of the instructions it uses (the pragma below) and runs
 * them only after gemm_bf16_amx() found them, so the binary still starts on any x86-64-v2 machine. */
#include "gemm_bf16.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

static int bf16_on;
void cpu_set_bf16(int on) { bf16_on = on != 0; }
int cpu_bf16(void) { return bf16_on; }

/* float x rounded to bf16 (nearest, ties to even), as a float; NaN stays a quiet NaN of its sign
 * (the bits cuda/gemm.cu's bf16_round keeps) */
float bf16_round_float(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) u = (u | 0x00400000u) & 0xffff0000u;
  else u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float r;
  memcpy(&r, &u, 4);
  return r;
}

void bf16_round_floats(float *dst, const float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (long i = 0; i < n; i++) dst[i] = bf16_round_float(x[i]);
}

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define HAVE_AMX_BUILD 1
#endif

#ifndef HAVE_AMX_BUILD
int gemm_bf16_amx(void) { return 0; }
int gemm_bf16_select(int amx) {
  (void)amx;
  return 0;
}
const char *gemm_bf16_way(void) { return "round"; }
void gemm_bf16_threads(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                       float beta, float *C, int threads, gemm_bf16_epilogue epi, const void *ctx) {
  (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)B, (void)beta, (void)C;
  (void)threads, (void)epi, (void)ctx;
  amd_fatal("gemm_bf16_threads: this build has no AMX kernel");
}
#else

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")
#include <immintrin.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* the tile palette: every tile 16 rows of 64 bytes (C: 16 x 16 floats; A: 16 x 32 bf16; B: 16
 * pairs of k x 16 columns) */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

static void tiles_configure(void) {
  tile_config c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int t = 0; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64;
  _tile_loadconfig(&c);
}

/* per thread: packed A (32 rows, or A^T's part, x all k) and B (the part's columns x all k), grown as needed */
#define SCRATCH_THREADS 512
typedef struct {
  uint16_t *a, *b;
  size_t a_elems, b_elems;
} pack_scratch;
static pack_scratch scratch[SCRATCH_THREADS];

static uint16_t *grow(uint16_t **p, size_t *have, size_t elems) {
  if (elems > *have) {
    free(*p);
    *p = NULL;
    if (posix_memalign((void **)p, 64, elems * sizeof(uint16_t)) != 0)
      amd_fatal("out of memory allocating %zu bytes for bf16 GEMM operands", elems * sizeof(uint16_t));
    *have = elems;
  }
  return *p;
}

static uint16_t *shared_pack; /* gemm_bf16_threads' shared operand, grown by the calling thread */
static size_t shared_elems;

static void scratch_free(void) {
  for (int i = 0; i < SCRATCH_THREADS; i++) free(scratch[i].a), free(scratch[i].b);
  memset(scratch, 0, sizeof scratch);
  free(shared_pack);
  shared_pack = NULL, shared_elems = 0;
}

static int amx_usable = -1; /* the processor has the instructions and the kernel the tile state */
static int amx_wanted = -1; /* -1: AMD_CPU_AMX decides */

static int usable(void) {
  if (amx_usable >= 0) return amx_usable;
  __builtin_cpu_init();
  int on = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("amx-bf16") &&
           __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("avx512bw");
  /* Linux hands out the 8 KB tile state only on request, once per process */
  if (on && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) on = 0;
  if (on) atexit(scratch_free);
  return amx_usable = on;
}

int gemm_bf16_amx(void) {
  if (amx_wanted < 0) {
    const char *env = getenv("AMD_CPU_AMX");
    amx_wanted = !(env && strcmp(env, "0") == 0);
  }
  return amx_wanted && usable();
}

int gemm_bf16_select(int amx) {
  amx_wanted = amx != 0;
  return gemm_bf16_amx();
}

const char *gemm_bf16_way(void) { return gemm_bf16_amx() ? "amx" : "round"; }

/* n (0..16) floats at p, the rest 0 */
static inline __m512 load16(const float *p, int n) {
  if (n >= 16) return _mm512_loadu_ps(p);
  return _mm512_maskz_loadu_ps((__mmask16)((1u << (n > 0 ? n : 0)) - 1u), p);
}

/* 32 bf16 of two float rows: lo in elements 0..15, hi in 16..31 */
static inline __m512i cvt_pair(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

/* interleaves the bf16 of rows r (elements 0..15) and r + 1 (16..31): dword j = (r[j], r1[j]) */
static inline __m512i interleave(__m512i v) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, v);
}

/* r[16] rows of 16 dwords transposed in place: r[i] dword j <- r[j] dword i */
static void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* r[4g + j], 128-bit lane l: column 4l + j of rows 4g .. 4g + 3; the lanes are gathered in two
   * rounds of 128-bit shuffles (0x88: lanes 0 and 2 of each operand, 0xdd: lanes 1 and 3) */
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

/* One A tile: rows m (rows valid of them, from row m0 of op(A)) by k0 .. k0 + 31, into dst (16 x 32
 * bf16). op(A) = A (lda K) or A^T (A stored K x M). */
static void pack_a_tile(uint16_t *dst, int transA, int M, int K, const float *A, int m0, int rows, int k0) {
  int kn = K - k0 < 32 ? K - k0 : 32;
  if (!transA) {
    for (int r = 0; r < 16; r++) {
      __m512i v = _mm512_setzero_si512();
      if (r < rows) {
        const float *p = A + (long)(m0 + r) * K + k0;
        v = cvt_pair(load16(p, kn), load16(p + 16, kn - 16));
      }
      _mm512_store_si512((void *)(dst + 32 * r), v);
    }
    return;
  }
  /* A stored K x M: row k holds op(A)'s column k; pairs of rows interleaved give dwords (m, k pair),
   * then transposed to rows m */
  __m512i r[16];
  for (int kp = 0; kp < 16; kp++) {
    int k = k0 + 2 * kp;
    __m512 lo = k < K ? load16(A + (long)k * M + m0, rows) : _mm512_setzero_ps();
    __m512 hi = k + 1 < K ? load16(A + (long)(k + 1) * M + m0, rows) : _mm512_setzero_ps();
    r[kp] = interleave(cvt_pair(lo, hi));
  }
  transpose16(r);
  for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(dst + 32 * i), r[i]);
}

/* One B tile in the VNNI layout: row kp holds, for columns n0 .. n0 + 15 (cols valid), the pair
 * (op(B)[k0 + 2kp][n], op(B)[k0 + 2kp + 1][n]). op(B) = B (ldb N) or B^T (B stored N x K). */
static void pack_b_tile(uint16_t *dst, int transB, int N, int K, const float *B, int n0, int cols, int k0) {
  int kn = K - k0 < 32 ? K - k0 : 32;
  __m512i r[16];
  if (!transB) {
    for (int kp = 0; kp < 16; kp++) {
      int k = k0 + 2 * kp;
      __m512 lo = k < K ? load16(B + (long)k * N + n0, cols) : _mm512_setzero_ps();
      __m512 hi = k + 1 < K ? load16(B + (long)(k + 1) * N + n0, cols) : _mm512_setzero_ps();
      _mm512_store_si512((void *)(dst + 32 * kp), interleave(cvt_pair(lo, hi)));
    }
    return;
  }
  /* B stored N x K: row n's 32 k are 16 dwords (pairs of k); transposed to rows of pairs */
  for (int c = 0; c < 16; c++) {
    r[c] = _mm512_setzero_si512();
    if (c < cols) {
      const float *p = B + (long)(n0 + c) * K + k0;
      r[c] = cvt_pair(load16(p, kn), load16(p + 16, kn - 16));
    }
  }
  transpose16(r);
  for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(dst + 32 * i), r[i]);
}

#define TILE_ELEMS 512 /* bf16 in a 16 x 32 tile */

/* one product as the packing and the compute see it */
typedef struct {
  int transA, transB, M, N, K, kb_count;
  float alpha, beta;
  const float *A, *B;
  float *C;
  gemm_bf16_epilogue epi;
  const void *ctx;
} Product;

static size_t panel_elems(const Product *p) { return 2 * (size_t)(p->kb_count > 0 ? p->kb_count : 1) * TILE_ELEMS; }
static int column_tiles(int n0, int n1) { return ((n1 - n0 + 15) / 16 + 1) / 2 * 2; } /* paired: even */

/* B's tiles for columns [n0, n1): tile t's k block kb at bp + (t kb_count + kb) tiles, a zero tile
 * to pair an odd last one; only the tiles [i0, i1) of the packing order (a thread's share): k blocks
 * outermost for B stored K x N (rows streamed along n), column tiles for B^T (each row along k) */
static void pack_b_tiles(uint16_t *bp, const Product *p, int n0, int n1, long i0, long i1) {
  int nt2 = column_tiles(n0, n1), kbs = p->kb_count;
  for (long i = i0; i < i1; i++) {
    int t = (int)(p->transB ? i / kbs : i % nt2), kb = (int)(p->transB ? i % kbs : i / nt2);
    int c0 = n0 + 16 * t, cols = n1 - c0 < 16 ? n1 - c0 : 16;
    uint16_t *dst = bp + ((size_t)t * kbs + kb) * TILE_ELEMS;
    if (cols <= 0) memset(dst, 0, TILE_ELEMS * sizeof(uint16_t));
    else pack_b_tile(dst, p->transB, p->N, p->K, p->B, c0, cols, 32 * kb);
  }
}

/* A's panels (32 rows, all k) for rows [m0, m1): panel j at ap + j panel_elems, its tile (kb, h) at
 * (2 kb + h) tiles in it; only the tiles [i0, i1) of the packing order, k blocks outermost, so A^T
 * (stored K x M) is read as streams along m, 32 rows at a time */
static void pack_a_panels(uint16_t *ap, const Product *p, int m0, int m1, long i0, long i1) {
  int halves = 2 * ((m1 - m0 + 31) / 32);
  for (long i = i0; i < i1; i++) {
    int kb = (int)(i / halves), j = (int)(i % halves), r0 = m0 + 16 * j, r = m1 - r0 < 16 ? m1 - r0 : 16;
    uint16_t *dst = ap + (size_t)(j / 2) * panel_elems(p) + ((size_t)kb * 2 + j % 2) * TILE_ELEMS;
    if (r <= 0) memset(dst, 0, TILE_ELEMS * sizeof(uint16_t));
    else pack_a_tile(dst, p->transA, p->M, p->K, p->A, r0, r, 32 * kb);
  }
}

/* C's rows [m0, m1) and columns [n0, n1) from B's tiles bp (packed from column b0) and A's panels:
 * a_all (packed from row a0), or, when NULL, each block of 32 rows packed into a_own as it comes
 * (one stream along k per row) */
static void compute(const Product *p, int m0, int m1, int n0, int n1, const uint16_t *a_all, int a0,
                    uint16_t *a_own, const uint16_t *bp, int b0) {
  int kbs = p->kb_count, nt = (n1 - n0 + 15) / 16, N = p->N;
  size_t panel = panel_elems(p);
  float acc[32 * 32] __attribute__((aligned(64)));
  __m512 va = _mm512_set1_ps(p->alpha), vb = _mm512_set1_ps(p->beta);
  tiles_configure();
  for (int mb = m0; mb < m1; mb += 32) {
    int rows = m1 - mb < 32 ? m1 - mb : 32;
    const uint16_t *ap = a_all ? a_all + (size_t)((mb - a0) / 32) * panel : a_own;
    if (!a_all) pack_a_panels(a_own, p, mb, mb + rows, 0, 2L * kbs);
    for (int t = 0; t < nt; t += 2) {
      const uint16_t *bt0 = bp + (size_t)((n0 - b0) / 16 + t) * kbs * TILE_ELEMS, *bt1 = bt0 + (size_t)kbs * TILE_ELEMS;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int kb = 0; kb < kbs; kb++) {
        _tile_loadd(4, ap + (size_t)kb * 2 * TILE_ELEMS, 64);
        _tile_loadd(5, ap + ((size_t)kb * 2 + 1) * TILE_ELEMS, 64);
        _tile_loadd(6, bt0 + (size_t)kb * TILE_ELEMS, 64);
        _tile_loadd(7, bt1 + (size_t)kb * TILE_ELEMS, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, acc, 128);
      _tile_stored(1, acc + 16, 128);
      _tile_stored(2, acc + 16 * 32, 128);
      _tile_stored(3, acc + 16 * 32 + 16, 128);
      int c0 = n0 + 16 * t, cols = n1 - c0 < 32 ? n1 - c0 : 32;
      __mmask16 mlo = (__mmask16)(cols >= 16 ? 0xffffu : (1u << cols) - 1u);
      __mmask16 mhi = (__mmask16)(cols >= 32 ? 0xffffu : cols <= 16 ? 0u : (1u << (cols - 16)) - 1u);
      for (int i = 0; i < rows; i++) {
        float *c = p->C + (long)(mb + i) * N + c0;
        __m512 x0 = _mm512_mul_ps(va, _mm512_load_ps(acc + 32 * i));
        __m512 x1 = _mm512_mul_ps(va, _mm512_load_ps(acc + 32 * i + 16));
        if (p->beta != 0.0f) {
          x0 = _mm512_add_ps(x0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mlo, c)));
          x1 = _mm512_add_ps(x1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mhi, c + 16)));
        }
        _mm512_mask_storeu_ps(c, mlo, x0);
        _mm512_mask_storeu_ps(c + 16, mhi, x1);
      }
    }
    if (p->epi) p->epi(p->ctx, mb, mb + rows, n0, n1); /* whole rows: streams along them, the block in L2 */
  }
  _tile_release();
}

/* this thread's packing buffers: a slot per thread that ever packs, taken on its first product (an
 * OpenMP thread number is not unique across nested or concurrent teams) */
static pack_scratch *thread_scratch(void) {
  static _Thread_local int slot = -1;
  static int slots;
  if (slot < 0) {
#pragma omp atomic capture
    slot = slots++;
  }
  if (slot >= SCRATCH_THREADS) amd_fatal("gemm_bf16: more than %d threads computed bf16 products", SCRATCH_THREADS);
  return &scratch[slot];
}

static Product product(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                       float beta, float *C, gemm_bf16_epilogue epi, const void *ctx) {
  if (!gemm_bf16_amx()) amd_fatal("gemm_bf16: AMX is not in use in this process");
  return (Product){transA, transB, M, N, K, (K + 31) / 32, alpha, beta, A, B, C, epi, ctx};
}

/* the whole of p's product on this thread, from its own packing */
static void on_this_thread(const Product *p) {
  pack_scratch *s = thread_scratch();
  size_t kb1 = p->kb_count > 0 ? (size_t)p->kb_count : 1;
  int M = p->M, N = p->N;
  uint16_t *bp = grow(&s->b, &s->b_elems, (size_t)column_tiles(0, N) * kb1 * TILE_ELEMS);
  uint16_t *ap = grow(&s->a, &s->a_elems, (p->transA ? (size_t)((M + 31) / 32) : 1) * panel_elems(p));
  pack_b_tiles(bp, p, 0, N, 0, (long)column_tiles(0, N) * p->kb_count);
  if (p->transA) pack_a_panels(ap, p, 0, M, 0, 2L * ((M + 31) / 32) * p->kb_count); /* A^T whole: streams along m */
  compute(p, 0, M, 0, N, p->transA ? ap : NULL, 0, ap, bp, 0);
}

void gemm_bf16_threads(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                       float beta, float *C, int threads, gemm_bf16_epilogue epi, const void *ctx) {
  if (M <= 0 || N <= 0) return;
  Product p = product(transA, transB, M, N, K, alpha, A, B, beta, C, epi, ctx);
  int rows = M >= N, D = rows ? M : N, blocks = (D + 31) / 32;
  long by_flops = 2L * M * N * K / GEMM_BF16_PART_FLOPS;
  int parts = omp_in_parallel() ? 1 : threads;
  if (parts > by_flops) parts = by_flops > 1 ? (int)by_flops : 1;
  if (parts > blocks) parts = blocks;
  if (parts <= 1) {
    on_this_thread(&p);
    return;
  }
  size_t kb1 = p.kb_count > 0 ? (size_t)p.kb_count : 1;
  /* cut along rows: B is shared; along columns: A (all its panels) */
  long total = rows ? (long)column_tiles(0, N) * p.kb_count : 2L * ((M + 31) / 32) * p.kb_count;
  size_t need = rows ? (size_t)column_tiles(0, N) * kb1 * TILE_ELEMS : (size_t)((M + 31) / 32) * panel_elems(&p);
  uint16_t *shared = grow(&shared_pack, &shared_elems, need);
#pragma omp parallel num_threads(parts)
  {
    int q = omp_get_thread_num(), n = omp_get_num_threads();
    if (rows) pack_b_tiles(shared, &p, 0, N, total * q / n, total * (q + 1) / n);
    else pack_a_panels(shared, &p, 0, M, total * q / n, total * (q + 1) / n);
    int d0 = 32 * (int)((long)blocks * q / n), d1 = 32 * (int)((long)blocks * (q + 1) / n);
    if (d1 > D) d1 = D;
    pack_scratch *s = thread_scratch();
    uint16_t *own;
    if (rows) { /* A: its rows' panels, whole for A^T, else a block at a time */
      own = grow(&s->a, &s->a_elems, (transA ? (size_t)((d1 - d0 + 31) / 32) : 1) * panel_elems(&p));
      if (transA && d1 > d0) pack_a_panels(own, &p, d0, d1, 0, 2L * ((d1 - d0 + 31) / 32) * p.kb_count);
    } else { /* B: its columns' tiles */
      own = grow(&s->b, &s->b_elems, (size_t)column_tiles(d0, d1) * kb1 * TILE_ELEMS);
      if (d1 > d0) pack_b_tiles(own, &p, d0, d1, 0, (long)column_tiles(d0, d1) * p.kb_count);
    }
#pragma omp barrier
    if (d1 > d0) {
      if (rows) compute(&p, d0, d1, 0, N, transA ? own : NULL, d0, own, shared, 0);
      else compute(&p, 0, M, d0, d1, shared, 0, NULL, own, d0);
    }
  }
}

#pragma GCC pop_options
#endif
