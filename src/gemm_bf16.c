/* gemm_bf16.c: bf16 products on the CPU (src/gemm_bf16.h): AMX tiles where the processor and the
 * kernel allow them, the rounding of the operands for everyone else.
 * The amx way, for one part of C: B's columns of the part are packed once into bf16 tiles in the
 * VNNI layout TDPBF16PS reads (16 pairs of k by 16 columns, 1 KB), then for each block of 32 rows
 * A's rows are packed into two tiles per 32 k, and each 32 x 32 block of C is four accumulator tiles
 * over the whole of K (2 A tiles x 2 B tiles, the eight tile registers), stored to a block of floats
 * and written to C as alpha acc + beta C, then handed to the caller's epilogue while it is in L1
 * (the fused linear layers' bias and GELU or residual). The rounding to bf16 happens while packing
 * (VCVTNE2PS2BF16: nearest, ties to even). Rows and columns beyond the part and k beyond K are
 * packed as zeros, which add nothing to any sum. Every element of C is the same sequence of
 * TDPBF16PS over k blocks 0, 1, ... whatever its place in a block, so the part a call computes does
 * not change its bits.
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
void gemm_bf16_part(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                    float beta, float *C, int m0, int m1, int n0, int n1, gemm_bf16_epilogue epi, const void *ctx) {
  (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)B, (void)beta, (void)C;
  (void)m0, (void)m1, (void)n0, (void)n1, (void)epi, (void)ctx;
  amd_fatal("gemm_bf16_part: this build has no AMX kernel");
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

/* per OpenMP thread: packed A (32 rows x all k) and B (the part's columns x all k), grown as needed */
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

static void scratch_free(void) {
  for (int i = 0; i < SCRATCH_THREADS; i++) free(scratch[i].a), free(scratch[i].b);
  memset(scratch, 0, sizeof scratch);
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

void gemm_bf16_part(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                    float beta, float *C, int m0, int m1, int n0, int n1, gemm_bf16_epilogue epi, const void *ctx) {
  if (m1 <= m0 || n1 <= n0) return;
  if (!gemm_bf16_amx()) amd_fatal("gemm_bf16_part: AMX is not in use in this process");
  int kb_count = (K + 31) / 32, nt = (n1 - n0 + 15) / 16, nt2 = (nt + 1) / 2 * 2;
  int tid = omp_get_thread_num();
  if (tid >= SCRATCH_THREADS) amd_fatal("gemm_bf16_part: thread %d beyond %d", tid, SCRATCH_THREADS);
  pack_scratch *s = &scratch[tid];
  size_t kb1 = kb_count > 0 ? (size_t)kb_count : 1, panel = 2 * kb1 * TILE_ELEMS; /* one block of 32 rows */
  int mblocks = (m1 - m0 + 31) / 32;
  /* A^T (stored K x M) is packed whole, k blocks outermost, so that its rows are read as streams
   * (32 rows at a time, along m) rather than 32 floats of each of K rows per block of 32 rows, one
   * page after another; A itself a block of 32 rows at a time (each a stream along k) */
  uint16_t *ap = grow(&s->a, &s->a_elems, (transA ? (size_t)mblocks : 1) * panel);
  uint16_t *bp = grow(&s->b, &s->b_elems, (size_t)nt2 * kb1 * TILE_ELEMS);
  /* B's tiles: [column tile][k block], a zero tile to pair an odd last one; k blocks outermost for
   * B stored K x N (rows streamed along n), column tiles for B^T (each row streamed along k) */
  for (int i = 0; i < nt2 * kb_count; i++) {
    int t = transB ? i / kb_count : i % nt2, kb = transB ? i % kb_count : i / nt2;
    int c0 = n0 + 16 * t, cols = n1 - c0 < 16 ? n1 - c0 : 16;
    uint16_t *dst = bp + ((size_t)t * kb_count + kb) * TILE_ELEMS;
    if (cols <= 0) memset(dst, 0, TILE_ELEMS * sizeof(uint16_t));
    else pack_b_tile(dst, transB, N, K, B, c0, cols, 32 * kb);
  }
  if (transA)
    for (int kb = 0; kb < kb_count; kb++)
      for (int j = 0; j < 2 * mblocks; j++) {
        int r0 = m0 + 16 * j, r = m1 - r0 < 16 ? m1 - r0 : 16;
        uint16_t *dst = ap + (size_t)(j / 2) * panel + ((size_t)kb * 2 + j % 2) * TILE_ELEMS;
        if (r <= 0) memset(dst, 0, TILE_ELEMS * sizeof(uint16_t));
        else pack_a_tile(dst, transA, M, K, A, r0, r, 32 * kb);
      }
  tiles_configure();
  float acc[32 * 32] __attribute__((aligned(64)));
  for (int mb = m0; mb < m1; mb += 32) {
    int rows = m1 - mb < 32 ? m1 - mb : 32;
    const uint16_t *ap_block = transA ? ap + (size_t)((mb - m0) / 32) * panel : ap;
    for (int kb = 0; kb < kb_count && !transA; kb++)
      for (int h = 0; h < 2; h++) {
        int r = rows - 16 * h;
        uint16_t *dst = ap + ((size_t)kb * 2 + h) * TILE_ELEMS;
        if (r <= 0) memset(dst, 0, TILE_ELEMS * sizeof(uint16_t));
        else pack_a_tile(dst, transA, M, K, A, mb + 16 * h, r < 16 ? r : 16, 32 * kb);
      }
    for (int t = 0; t < nt; t += 2) {
      const uint16_t *b0 = bp + (size_t)t * kb_count * TILE_ELEMS, *b1 = b0 + (size_t)kb_count * TILE_ELEMS;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int kb = 0; kb < kb_count; kb++) {
        _tile_loadd(4, ap_block + (size_t)kb * 2 * TILE_ELEMS, 64);
        _tile_loadd(5, ap_block + ((size_t)kb * 2 + 1) * TILE_ELEMS, 64);
        _tile_loadd(6, b0 + (size_t)kb * TILE_ELEMS, 64);
        _tile_loadd(7, b1 + (size_t)kb * TILE_ELEMS, 64);
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
      __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
      for (int i = 0; i < rows; i++) {
        float *c = C + (long)(mb + i) * N + c0;
        __m512 x0 = _mm512_mul_ps(va, _mm512_load_ps(acc + 32 * i));
        __m512 x1 = _mm512_mul_ps(va, _mm512_load_ps(acc + 32 * i + 16));
        if (beta != 0.0f) {
          x0 = _mm512_add_ps(x0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mlo, c)));
          x1 = _mm512_add_ps(x1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mhi, c + 16)));
        }
        _mm512_mask_storeu_ps(c, mlo, x0);
        _mm512_mask_storeu_ps(c + 16, mhi, x1);
      }
    }
    if (epi) epi(ctx, mb, mb + rows, n0, n1); /* whole rows: streams along them, the block in L2 */
  }
  _tile_release();
}

#pragma GCC pop_options
#endif
