/* gemm_split.c: OpenBLAS's own threading against the cut that src/ops_cpu.c's cpu_gemm makes (one
 * single-threaded sgemm per OpenMP thread on a piece of C, along its rows or along its columns),
 * on the GEMM shapes of the Fashion-MNIST distillation's 128-wide networks and of the 256-wide
 * teacher DiT, with the bits of each cut compared to the whole product's. Best of `reps` calls,
 * warm operands, wall clock, at OMP_NUM_THREADS = OPENBLAS_NUM_THREADS threads.
 *   OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 build/benchmarks/gemm_split [reps=15]
 * Not here: anything of amd's own code (it calls cblas_sgemm directly). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sgemm(int tA, int tB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                  int ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B,
              ldb, 0.0f, C, ldc);
}

/* C cut into `parts` pieces along its rows (bycol 0) or columns (1), one single-threaded sgemm each */
static void cut(int tA, int tB, int M, int N, int K, const float *A, const float *B, float *C, int parts, int bycol) {
  int lda = tA ? M : K, ldb = tB ? K : N;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < parts; p++) {
    int D = bycol ? N : M, d0 = (int)((long)D * p / parts), d1 = (int)((long)D * (p + 1) / parts);
    if (bycol)
      sgemm(tA, tB, M, d1 - d0, K, A, lda, tB ? B + (long)d0 * K : B + d0, ldb, C + d0, N);
    else
      sgemm(tA, tB, d1 - d0, N, K, tA ? A + d0 : A + (long)d0 * K, lda, B, ldb, C + (long)d0 * N, N);
  }
}

int main(int argc, char **argv) {
  int reps = 15;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "reps=", 5) == 0 && atoi(argv[i] + 5) > 0) {
      reps = atoi(argv[i] + 5);
    } else {
      fprintf(stderr, "gemm_split: unknown argument '%s' (reps=N)\n", argv[i]);
      return 2;
    }
  }
  static const struct { const char *what; int tA, tB, M, N, K; } shapes[] = {
      {"distill dW fc1", 1, 0, 512, 128, 3136},   {"distill dW qkv", 1, 0, 384, 128, 3136},
      {"distill dW proj", 1, 0, 128, 128, 3136},  {"distill dW fc2", 1, 0, 128, 512, 3136},
      {"distill dX fc2", 0, 0, 3136, 512, 128},   {"distill dX proj", 0, 0, 3136, 128, 128},
      {"distill dX fc1", 0, 0, 3136, 128, 512},   {"teacher dW fc1", 1, 0, 1024, 256, 3136},
      {"teacher dW fc2", 1, 0, 256, 1024, 3136},  {"teacher dW qkv", 1, 0, 768, 256, 3136},
      {"teacher dW proj", 1, 0, 256, 256, 3136},  {"teacher dX fc1", 0, 0, 3136, 256, 1024},
      {"teacher dX fc2", 0, 0, 3136, 1024, 256},  {"teacher dX qkv", 0, 0, 3136, 256, 768},
      {"teacher dX proj", 0, 0, 3136, 256, 256},  {"teacher qkv", 0, 1, 3136, 768, 256},
      {"teacher fc1", 0, 1, 3136, 1024, 256},     {"teacher fc2", 0, 1, 3136, 256, 1024},
      {"teacher dW ada", 1, 0, 1536, 256, 64},    {"teacher dX ada", 0, 0, 64, 256, 1536},
  };
  int threads = omp_get_max_threads();
  printf("gemm_split: %d OpenMP threads, best of %d calls, GFLOP/s; 'same' = equal bit for bit to the whole "
         "product\n  %-16s %3s %5s %5s %5s %9s %16s %16s %s\n", threads, reps, "shape", "op", "M", "N", "K", "OpenBLAS",
         "cut along rows", "cut along cols", "cpu_gemm cuts");
  srand(1);
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int tA = shapes[s].tA, tB = shapes[s].tB, M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C[3];
    for (int v = 0; v < 3; v++) C[v] = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !C[0] || !C[1] || !C[2]) {
      fprintf(stderr, "gemm_split: out of memory\n");
      return 1;
    }
    for (long i = 0; i < (long)M * K; i++) A[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (long i = 0; i < (long)K * N; i++) B[i] = (float)rand() / RAND_MAX * 2 - 1;
    double best[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < reps; r++)
      for (int v = 0; v < 3; v++) {
        double t0 = omp_get_wtime();
        if (v == 0) sgemm(tA, tB, M, N, K, A, tA ? M : K, B, tB ? K : N, C[0], N);
        else cut(tA, tB, M, N, K, A, B, C[v], threads, v == 2);
        double t = omp_get_wtime() - t0;
        if (t < best[v]) best[v] = t;
      }
    double fl = 2.0 * M * N * K * 1e-9;
    int same1 = !memcmp(C[0], C[1], sizeof(float) * (size_t)M * N), same2 = !memcmp(C[0], C[2], sizeof(float) * (size_t)M * N);
    printf("  %-16s  %c%c %5d %5d %5d %9.1f %9.1f %-6s %9.1f %-6s %s\n", shapes[s].what, tA ? 'T' : 'N', tB ? 'T' : 'N',
           M, N, K, fl / best[0], fl / best[1], same1 ? "same" : "DIFFER", fl / best[2], same2 ? "same" : "DIFFER",
           M >= N ? "rows" : "columns");
    free(A), free(B), free(C[0]), free(C[1]), free(C[2]);
  }
  return 0;
}
