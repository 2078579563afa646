/* test_backend.c: the CPU's handling of subnormal floats (backend_set_ftz, the cpu.ftz setting).
 * backend_init flushes them (x86 FTZ and DAZ) on the calling thread and on every OpenMP thread,
 * including threads the pool creates afterwards; backend_set_ftz(0) restores IEEE gradual
 * underflow everywhere. Checked by arithmetic whose exact IEEE result is subnormal (a product that
 * underflows: FTZ) and whose operand is subnormal (a sum with a normal number that the subnormal
 * changes: DAZ), and on OpenBLAS's sgemm with subnormal operands. On a CPU without MXCSR the tests
 * are skipped, saying so. */
#include <cblas.h>
#include <float.h>
#include <omp.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "test.h"


/* 1e-20 * 1e-20 = 1e-40, subnormal in IEEE; 0 when flushed */
static volatile float small = 1e-20f;
/* a subnormal operand: 2^-140; with FLT_MIN added, a result that differs from FLT_MIN unless DAZ */
static volatile float denorm = 0x1p-140f;

/* 1 when this thread flushes both ways, 0 when it keeps subnormals both ways, -1 when mixed */
static int thread_mode(void) {
  float prod = small * small;
  float sum = FLT_MIN + denorm;
  int ftz = prod == 0.0f, daz = sum == FLT_MIN;
  return ftz && daz ? 1 : !ftz && !daz ? 0 : -1;
}

/* thread_mode of the caller and of each of `threads` OpenMP threads: the count that differ from want */
static int threads_not_in_mode(int threads, int want) {
  int bad = thread_mode() != want;
#pragma omp parallel num_threads(threads) reduction(+ : bad)
  bad += thread_mode() != want;
  return bad;
}

/* after backend_init, which should have set FTZ/DAZ */
static int have_mxcsr(void) {
#if defined(__x86_64__) || defined(__SSE2__)
  return 1;
#else
  t_skip("this CPU has no MXCSR (x86 FTZ/DAZ): subnormal floats are always kept");
  return 0;
#endif
}

static void test_ftz_on_at_init(void) {
  backend_init("cpu", "fp32", 2);
  if (!have_mxcsr()) return;
  EXPECT(backend_ftz() == 1, "backend_init leaves subnormals unflushed");
  EXPECT(threads_not_in_mode(2, 1) == 0, "a thread of the pool keeps subnormal floats after backend_init");
  /* threads the pool creates after the setting copy the creating thread's MXCSR */
  EXPECT(threads_not_in_mode(6, 1) == 0, "a thread created after backend_init keeps subnormal floats");
}

static void test_ftz_off_and_on(void) {
  backend_init("cpu", "fp32", 2);
  if (!have_mxcsr()) return;
  EXPECT(backend_set_ftz(0) == 0, "backend_set_ftz(0) returned 1");
  EXPECT(backend_ftz() == 0, "cpu.ftz=false left FTZ/DAZ set");
  EXPECT(threads_not_in_mode(6, 0) == 0, "cpu.ftz=false: a thread still flushes subnormal floats");
  EXPECT(backend_set_ftz(1) == 1, "backend_set_ftz(1) returned 0");
  EXPECT(threads_not_in_mode(6, 1) == 0, "cpu.ftz=true again: a thread keeps subnormal floats");
}

/* C = A B with A's entries subnormal and B's 1: under DAZ OpenBLAS's kernels read A as 0. 128^3 is
 * above OpenBLAS's size for one thread (4 x 65536 multiply-adds), so at 2 threads both compute. */
static void test_sgemm_subnormal(void) {
  backend_init("cpu", "fp32", 2);
  if (!have_mxcsr()) return;
  enum { n = 128 };
  static float A[n * n], B[n * n], C[n * n];
  for (int i = 0; i < n * n; i++) A[i] = 0x1p-130f, B[i] = 1.0f;
  for (int on = 1; on >= 0; on--) {
    backend_set_ftz(on);
    for (int th = 1; th <= 2; th++) {
      openblas_set_num_threads(th);
      memset(C, 0xff, sizeof C);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
      int zeros = 0;
      for (int i = 0; i < n * n; i++) zeros += C[i] == 0.0f;
      /* IEEE: each entry is 128 x 2^-130 = 2^-123, a normal float */
      if (on)
        EXPECT(zeros == n * n, "FTZ/DAZ at %d threads: %d of %d entries of a product of subnormals are not 0", th,
               n * n - zeros, n * n);
      else
        EXPECT(zeros == 0 && C[0] == 0x1p-123f, "IEEE at %d threads: %d zeros, C[0] = %g (want 2^-123)", th, zeros,
               (double)C[0]);
    }
  }
  backend_set_ftz(1);
}

int main(void) {
  TEST_RUN(test_ftz_on_at_init);
  TEST_RUN(test_ftz_off_and_on);
  TEST_RUN(test_sgemm_subnormal);
  return t_finish();
}
