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

/* Called by gemm_bf16_threads once each block of 32 rows of C, rows [r0, r1) and columns [c0, c1)
 * (those of the part that computed it), holds its final values (alpha and beta applied), while the
 * block is in L2: the fused linear layers' bias, GELU or gated residual (src/ops_cpu.c). */
typedef void (*gemm_bf16_epilogue)(const void *ctx, int r0, int r1, int c0, int c1);

/* C (M x N, row-major, leading dimension N) = alpha op(A) op(B) + beta C, A being op(A) = A (M x K)
 * or A^T (A stored K x M) and likewise B (K x N or N x K), as cblas_sgemm's row-major flags with
 * packed leading dimensions; with beta = 0 C is not read. On up to `threads` OpenMP threads (one
 * inside a parallel region), each part at least GEMM_BF16_PART_FLOPS: C cut along its longer side
 * at multiples of 32 rows or columns, the operand every part reads (B for a cut along rows, A along
 * columns) packed once, by all of them (rather than whole by each: at 2 threads the two take the
 * same time, the saving grows with the threads); the bits do not depend on the cut. epi (NULL:
 * none) runs on the blocks of C as they are written. The amx way only (gemm_bf16_amx() must be 1). */
#define GEMM_BF16_PART_FLOPS (1L << 21)
void gemm_bf16_threads(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                       float beta, float *C, int threads, gemm_bf16_epilogue epi, const void *ctx);

/* dst[i] = x[i] rounded to the nearest bf16 value (ties to even; NaN stays NaN, infinities stay),
 * as a float; n elements. The round way's operands, and tests' references. */
void bf16_round_floats(float *dst, const float *x, long n);
float bf16_round_float(float x);
