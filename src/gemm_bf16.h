/* gemm_bf16.h: the CPU backend's precision=bf16 products: C = alpha op(A) op(B) + beta C with
 * op(A) and op(B) rounded to bfloat16 (nearest, ties to even, as cuda/gemm.cu rounds them) and the
 * sums in float32, the bf16 autocast of PyTorch and of the CUDA backend. Two ways, one meaning:
 *   amx    on a processor with AMX-BF16 (Intel Sapphire Rapids and later) whose kernel grants the
 *          tile state: packed bf16 tiles and TDPBF16PS, 16 x 16 x 32 products an instruction;
 *   round  anywhere else: the operands rounded to bf16 values into float32 copies, then the float32
 *          sgemm on them (a product of two bf16 values is exact in float32, so only the order of
 *          the sums differs from amx).
 * Which one a process uses: amx where it can, unless AMD_CPU_AMX=0 in the environment. Each element
 * of C is one sum over k in increasing order of 32-wide blocks, whatever part of C a call computes,
 * so cutting C among threads changes no bit (tests/test_gemm_bf16.c). Subnormal operands and sums
 * (below 1.2e-38) may become 0 in either: TDPBF16PS flushes them whatever MXCSR says, and the round
 * way's sgemm does under cpu.ftz (the default). */
#pragma once

/* The CPU backend's precision: 1 while its GEMMs are bf16 (backend_set_precision sets it), else 0 */
void cpu_set_bf16(int on);
int cpu_bf16(void);

/* 1 when this process computes bf16 products with AMX tiles: the processor has AMX-BF16 and
 * AVX512-BF16, the kernel granted the tile state (arch_prctl), and AMD_CPU_AMX is not 0. Decided
 * once; thread-safe after the first call (backend_set_precision makes it). */
int gemm_bf16_amx(void);
/* The way for the rest of the process: amx (1, where usable) or round (0); returns gemm_bf16_amx().
 * For tests and benchmarks that compare the two. */
int gemm_bf16_select(int amx);
/* "amx" or "round": the way this process computes bf16 products (for the log and provenance) */
const char *gemm_bf16_way(void);

/* Called by gemm_bf16_part after each block of C, rows [r0, r1) and columns [c0, c1), holds its
 * final values (alpha and beta applied), while the block is in cache: the fused linear layers' bias,
 * GELU or gated residual (src/ops_cpu.c). */
typedef void (*gemm_bf16_epilogue)(const void *ctx, int r0, int r1, int c0, int c1);

/* The product for rows [m0, m1) and columns [n0, n1) of C (M x N, row-major, leading dimension N);
 * A is op(A) = A (M x K, lda K) or A^T (A stored K x M, lda M) and likewise B (K x N or N x K),
 * as cblas_sgemm's row-major flags. One thread: the caller cuts C among threads (src/ops_cpu.c).
 * With beta = 0 C is not read. epi (NULL: none) runs on each 32 x 32 block of the part once it is
 * written. The amx way only (gemm_bf16_amx() must be 1). */
void gemm_bf16_part(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                    float beta, float *C, int m0, int m1, int n0, int n1, gemm_bf16_epilogue epi, const void *ctx);

/* The whole product by up to `parts` OpenMP threads (one when called inside a parallel region): C
 * cut along its longer side at multiples of 32 rows or columns, the operand every part reads (B for
 * a cut along rows, A along columns) packed once, by all of them (rather than whole by each: at 2
 * threads the two take the same time, the saving grows with the threads); the bits are
 * gemm_bf16_part's over the whole of C. The amx way only. */
void gemm_bf16_threads(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                       float beta, float *C, int parts, gemm_bf16_epilogue epi, const void *ctx);

/* dst[i] = x[i] rounded to the nearest bf16 value (ties to even; NaN stays NaN, infinities stay),
 * as a float; n elements. The round way's operands, and tests' references. */
void bf16_round_floats(float *dst, const float *x, long n);
float bf16_round_float(float x);
