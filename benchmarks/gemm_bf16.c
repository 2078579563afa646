/* gemm_bf16.c: the CPU's precision=bf16 products (src/gemm_bf16.h, the amx way) against OpenBLAS's
 * sgemm on the GEMM shapes of the teacher DiT (width 256) and of the distillation's 128-wide
 * networks at batch 64 (3136 tokens), and on squares: GFLOP/s, best of `reps` calls on warm
 * operands, wall clock, at OMP_NUM_THREADS threads (OPENBLAS_NUM_THREADS the same). Each bf16 call
 * packs (and rounds) its operands, as every call in a training step does.
 *   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/benchmarks/gemm_bf16 [reps=20]
 * Needs a processor with AMX-BF16 (else it says so and exits 0). Not here: the accuracy of the
 * products (tests/test_gemm_bf16.c). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_bf16.h"

static double best_of(int reps, int tA, int tB, int M, int N, int K, const float *A, const float *B, float *C,
                      int bf16) {
  double best = 1e30;
  for (int r = 0; r <= reps; r++) { /* the first call pays for page faults and packing buffers */
    double t0 = omp_get_wtime();
    if (bf16)
      gemm_bf16_threads(tA, tB, M, N, K, 1.0f, A, B, 0.0f, C, omp_get_max_threads(), NULL, NULL);
    else
      cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
                  tA ? M : K, B, tB ? K : N, 0.0f, C, N);
    double dt = omp_get_wtime() - t0;
    if (r > 0 && dt < best) best = dt;
  }
  return best;
}

int main(int argc, char **argv) {
  int reps = 20;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "reps=", 5) == 0 && atoi(argv[i] + 5) > 0) {
      reps = atoi(argv[i] + 5);
    } else {
      fprintf(stderr, "gemm_bf16: unknown argument '%s' (reps=N)\n", argv[i]);
      return 2;
    }
  }
  if (!gemm_bf16_amx()) {
    printf("gemm_bf16: this processor (or its kernel) has no AMX-BF16; nothing to measure\n");
    return 0;
  }
  static const struct { const char *what; int tA, tB, M, N, K; } shapes[] = {
      {"square 512", 0, 0, 512, 512, 512},        {"square 1024", 0, 0, 1024, 1024, 1024},
      {"teacher qkv", 0, 1, 3136, 768, 256},      {"teacher fc1", 0, 1, 3136, 1024, 256},
      {"teacher fc2", 0, 1, 3136, 256, 1024},     {"teacher proj", 0, 1, 3136, 256, 256},
      {"teacher dX qkv", 0, 0, 3136, 256, 768},   {"teacher dX fc1", 0, 0, 3136, 256, 1024},
      {"teacher dX fc2", 0, 0, 3136, 1024, 256},  {"teacher dW qkv", 1, 0, 768, 256, 3136},
      {"teacher dW fc1", 1, 0, 1024, 256, 3136},  {"teacher dW fc2", 1, 0, 256, 1024, 3136},
      {"distill qkv", 0, 1, 3136, 384, 128},      {"distill fc1", 0, 1, 3136, 512, 128},
      {"distill fc2", 0, 1, 3136, 128, 512},      {"distill dX fc1", 0, 0, 3136, 128, 512},
      {"distill dW fc1", 1, 0, 512, 128, 3136},   {"distill dW fc2", 1, 0, 128, 512, 3136},
      {"attention q k^T", 0, 1, 49, 49, 32},      {"attention p v", 0, 0, 49, 32, 49},
  };
  printf("gemm_bf16: %d threads, best of %d calls, GFLOP/s\n  %-16s %3s %5s %5s %5s %9s %9s %7s\n",
         omp_get_max_threads(), reps, "shape", "op", "M", "N", "K", "sgemm", "bf16 amx", "ratio");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int tA = shapes[s].tA, tB = shapes[s].tB, M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !C) {
      fprintf(stderr, "gemm_bf16: out of memory\n");
      return 1;
    }
    for (long i = 0; i < (long)M * K; i++) A[i] = (float)((i * 7 % 13) - 6) * 0.01f;
    for (long i = 0; i < (long)K * N; i++) B[i] = (float)((i * 5 % 11) - 5) * 0.01f;
    double flop = 2.0 * M * N * K, ts = best_of(reps, tA, tB, M, N, K, A, B, C, 0);
    double tb = best_of(reps, tA, tB, M, N, K, A, B, C, 1);
    printf("  %-16s  %c%c %5d %5d %5d %9.1f %9.1f %7.2f\n", shapes[s].what, tA ? 'T' : 'N', tB ? 'T' : 'N', M, N, K,
           flop / ts * 1e-9, flop / tb * 1e-9, ts / tb);
    free(A), free(B), free(C);
  }
  return 0;
}
