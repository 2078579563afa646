/* metrics_img.c: image metrics over evaluator features: Frechet distance, k-NN precision and
 * recall, classifier accuracy. Host-side only; BLAS and LAPACK from OpenBLAS, loops in OpenMP. */
#include "metrics_img.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* LAPACK's divide-and-conquer symmetric eigensolver (Fortran, inside OpenBLAS, 32-bit integers).
 * The two trailing lengths are the hidden CHARACTER lengths gfortran passes. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                    size_t uplo_len);

/* rows of centred features per dsyrk call */
#define STATS_BLOCK_ROWS 1024
/* k-NN distance blocks: at most this many floats, and at most this many query rows */
#define KNN_BLOCK_FLOATS (1L << 22)
#define KNN_BLOCK_ROWS 256L

/* ---------------------------------------------------------------------------------------------- */
/* Frechet distance */

/* Eigenvalues w (n) of the symmetric a (n, n), ascending; with vectors, a is overwritten so that its
 * row j (row-major view) is the unit eigenvector of w[j]. */
static void sym_eig(double *a, int n, double *w, int vectors, const char *what) {
  const char jobz = vectors ? 'V' : 'N', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(&jobz, &uplo, &n, a, &n, w, &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  CHECK(info == 0, "dsyevd workspace query failed for the %dx%d %s (info %d)", n, n, what, info);
  lwork = (int)work_query;
  liwork = iwork_query;
  double *work = mallocCheck(sizeof(double) * (size_t)lwork);
  int *iwork = mallocCheck(sizeof(int) * (size_t)liwork);
  dsyevd_(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(work), free(iwork);
  CHECK(info == 0, "dsyevd failed on the %dx%d %s (info %d: %s)", n, n, what, info,
        info < 0 ? "illegal argument" : "eigenvalues did not converge");
}

static void check_finite(const double *x, long n, const char *what) {
  for (long i = 0; i < n; i++)
    CHECK(isfinite(x[i]), "Frechet distance: %s[%ld] is %g; statistics must be finite", what, i, x[i]);
}

double frechet_distance(const double *mu1, const double *cov1, const double *mu2, const double *cov2, int d) {
  CHECK(d >= 1, "Frechet distance: dimension %d", d);
  size_t dd = (size_t)d * (size_t)d;
  check_finite(mu1, d, "mu1"), check_finite(mu2, d, "mu2");
  check_finite(cov1, (long)dd, "cov1"), check_finite(cov2, (long)dd, "cov2");
  double mean_term = 0, tr1 = 0, tr2 = 0;
  for (int i = 0; i < d; i++) {
    mean_term += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    tr1 += cov1[(size_t)i * d + i];
    tr2 += cov2[(size_t)i * d + i];
  }
  /* S1 = V L V^T, so S1^{1/2} S2 S1^{1/2} = V (P S2 P^T) V^T with P = L^{1/2} V^T: same eigenvalues
   * as P S2 P^T, and S1^{1/2} is never formed. */
  double *p = mallocCheck(sizeof(double) * dd), *t = mallocCheck(sizeof(double) * dd);
  double *m = mallocCheck(sizeof(double) * dd), *w = mallocCheck(sizeof(double) * (size_t)d);
  memcpy(p, cov1, sizeof(double) * dd);
  sym_eig(p, d, w, 1, "covariance cov1");
  for (int j = 0; j < d; j++) {
    double s = sqrt(w[j] > 0 ? w[j] : 0);
    for (int i = 0; i < d; i++) p[(size_t)j * d + i] *= s;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, p, d, cov2, d, 0.0, t, d);
  /* symmetric up to rounding; dsyevd reads one triangle only */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, t, d, p, d, 0.0, m, d);
  sym_eig(m, d, w, 0, "matrix S1^1/2 S2 S1^1/2");
  double tr_sqrt = 0;
  for (int j = 0; j < d; j++) tr_sqrt += sqrt(w[j] > 0 ? w[j] : 0);
  free(p), free(t), free(m), free(w);
  return mean_term + tr1 + tr2 - 2.0 * tr_sqrt;
}

/* ---------------------------------------------------------------------------------------------- */
/* Feature statistics */

void feature_stats(const float *feat, long n, int d, double *mu, double *cov) {
  CHECK(n >= 2 && d >= 1, "feature statistics need at least 2 samples of dimension >= 1 (got %ld x %d)", n, d);
  memset(mu, 0, sizeof(double) * (size_t)d);
  for (long i = 0; i < n; i++)
    for (int j = 0; j < d; j++) mu[j] += feat[i * d + j];
  for (int j = 0; j < d; j++) mu[j] /= (double)n;
  memset(cov, 0, sizeof(double) * (size_t)d * (size_t)d);
  double *c = mallocCheck(sizeof(double) * STATS_BLOCK_ROWS * (size_t)d); /* (rows, d) centred */
  for (long r0 = 0; r0 < n; r0 += STATS_BLOCK_ROWS) {
    int rows = (int)(n - r0 < STATS_BLOCK_ROWS ? n - r0 : STATS_BLOCK_ROWS);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < d; j++) c[(size_t)r * d + j] = feat[(r0 + r) * d + j] - mu[j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, rows, 1.0, c, d, 1.0, cov, d);
  }
  free(c);
  double scale = 1.0 / (double)(n - 1);
  for (int i = 0; i < d; i++)
    for (int j = i; j < d; j++) cov[(size_t)j * d + i] = cov[(size_t)i * d + j] *= scale;
}

/* ---------------------------------------------------------------------------------------------- */
/* k-NN precision and recall */

/* x (n, d) minus shift (d), as a new array: distances do not change, and the |a|^2 + |b|^2 - 2 a.b
 * form loses less to cancellation near the origin (features often share a large offset). */
static float *centred_copy(const float *x, long n, const double *shift, int d) {
  float *c = mallocCheck(sizeof(float) * (size_t)n * (size_t)d);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++)
    for (int j = 0; j < d; j++) c[i * d + j] = (float)(x[i * d + j] - shift[j]);
  return c;
}

/* mean (d) of the rows of x (n, d); fatal when a column holds a NaN or an infinity (it spreads to
 * the mean, and would otherwise turn into silently wrong neighbour counts) */
static void column_mean(const float *x, long n, int d, double *mean, const char *what) {
  memset(mean, 0, sizeof(double) * (size_t)d);
  for (long i = 0; i < n; i++)
    for (int j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (int j = 0; j < d; j++) {
    mean[j] /= (double)n;
    CHECK(isfinite(mean[j]), "k-NN: %s features, column %d, hold a NaN or an infinity", what, j);
  }
}

static float *squared_norms(const float *x, long n, int d) {
  float *s = mallocCheck(sizeof(float) * (size_t)n);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    double a = 0;
    for (int j = 0; j < d; j++) a += (double)x[i * d + j] * x[i * d + j];
    s[i] = (float)a;
  }
  return s;
}

static long block_rows(long ncols) {
  long rows = KNN_BLOCK_FLOATS / ncols;
  return rows < 1 ? 1 : rows > KNN_BLOCK_ROWS ? KNN_BLOCK_ROWS : rows;
}

/* g (rows, ncols) = |q_r|^2 + |ref_j|^2 - 2 q_r . ref_j for query rows q (rows, d) */
static void squared_distances(float *g, const float *q, const float *qn, long rows, const float *ref,
                              const float *refn, long ncols, int d) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)ncols, d, -2.0f, q, d, ref, d, 0.0f, g,
              (int)ncols);
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; r++)
    for (long j = 0; j < ncols; j++) g[r * ncols + j] += qn[r] + refn[j];
}

/* Max-heap of the k smallest (distance, index) pairs seen so far; the root is the k-th smallest. */
static void heap_sift_down(float *key, long *idx, int k, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, top = i;
    if (l < k && key[l] > key[top]) top = l;
    if (r < k && key[r] > key[top]) top = r;
    if (top == i) return;
    float tk = key[i];
    long ti = idx[i];
    key[i] = key[top], idx[i] = idx[top];
    key[top] = tk, idx[top] = ti;
    i = top;
  }
}

static void heap_push(float *key, long *idx, int *count, int k, float v, long j) {
  if (*count < k) {
    int i = (*count)++;
    key[i] = v, idx[i] = j;
    while (i > 0 && key[(i - 1) / 2] < key[i]) {
      int p = (i - 1) / 2;
      float tk = key[i];
      long ti = idx[i];
      key[i] = key[p], idx[i] = idx[p];
      key[p] = tk, idx[p] = ti;
      i = p;
    }
  } else if (v < key[0]) {
    key[0] = v, idx[0] = j;
    heap_sift_down(key, idx, k, 0);
  }
}

/* radius2[i] = squared distance from x_i to its k-th nearest other row of x (n, d), x centred. */
static void knn_radii2(const float *x, long n, int d, int k, double *radius2) {
  float *xn = squared_norms(x, n, d);
  long rows_max = block_rows(n);
  float *g = mallocCheck(sizeof(float) * (size_t)(rows_max * n));       /* (rows, n) */
  float *hkey = mallocCheck(sizeof(float) * (size_t)(rows_max * k));    /* (rows, k) */
  long *hidx = mallocCheck(sizeof(long) * (size_t)(rows_max * k));      /* (rows, k) */
  for (long r0 = 0; r0 < n; r0 += rows_max) {
    long rows = n - r0 < rows_max ? n - r0 : rows_max;
    squared_distances(g, x + r0 * d, xn + r0, rows, x, xn, n, d);
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
      long i = r0 + r;
      float *key = hkey + r * k;
      long *idx = hidx + r * k;
      int count = 0;
      for (long j = 0; j < n; j++)
        if (j != i) heap_push(key, idx, &count, k, g[r * n + j], j);
      /* The selection used the cancelling sgemm form; the radius itself is recomputed directly, so a
       * duplicate point gives exactly 0 and small radii keep their digits after the square root. */
      double s = 0;
      for (int c = 0; c < d; c++) {
        double e = (double)x[i * d + c] - x[idx[0] * d + c];
        s += e * e;
      }
      radius2[i] = s;
    }
  }
  free(xn), free(g), free(hkey), free(hidx);
}

/* Number of rows of q (nq, d) within radius2[j] of at least one row ref_j of ref (nref, d). */
static long count_covered(const float *q, long nq, const float *ref, long nref, const double *radius2, int d) {
  float *qn = squared_norms(q, nq, d), *refn = squared_norms(ref, nref, d);
  float *r2 = mallocCheck(sizeof(float) * (size_t)nref);
  for (long j = 0; j < nref; j++) r2[j] = (float)radius2[j];
  long rows_max = block_rows(nref);
  float *g = mallocCheck(sizeof(float) * (size_t)(rows_max * nref)); /* (rows, nref) */
  long covered = 0;
  for (long r0 = 0; r0 < nq; r0 += rows_max) {
    long rows = nq - r0 < rows_max ? nq - r0 : rows_max;
    squared_distances(g, q + r0 * d, qn + r0, rows, ref, refn, nref, d);
#pragma omp parallel for schedule(static) reduction(+ : covered)
    for (long r = 0; r < rows; r++) {
      for (long j = 0; j < nref; j++)
        if (g[r * nref + j] <= r2[j]) {
          covered++;
          break;
        }
    }
  }
  free(qn), free(refn), free(r2), free(g);
  return covered;
}

static void check_knn_args(long n, int d, int k, const char *what) {
  CHECK(d >= 1, "k-NN: feature dimension %d", d);
  CHECK(n <= INT_MAX, "k-NN: %ld %s points, at most %d", n, what, INT_MAX);
  CHECK(k >= 1 && k <= n - 1, "k-NN: k = %d needs 1 <= k <= %ld (%ld %s points)", k, n - 1, n, what);
}

void knn_radii(const float *x, long n, int d, int k, float *radius) {
  check_knn_args(n, d, k, "input");
  double *mean = mallocCheck(sizeof(double) * (size_t)d), *r2 = mallocCheck(sizeof(double) * (size_t)n);
  column_mean(x, n, d, mean, "input");
  float *xc = centred_copy(x, n, mean, d);
  knn_radii2(xc, n, d, k, r2);
  for (long i = 0; i < n; i++) radius[i] = (float)sqrt(r2[i]);
  free(mean), free(r2), free(xc);
}

void knn_precision_recall(const float *real, long nr, const float *fake, long nf, int d, int k, double *precision,
                          double *recall) {
  check_knn_args(nr, d, k, "real");
  check_knn_args(nf, d, k, "fake");
  double *mean = mallocCheck(sizeof(double) * (size_t)d);
  column_mean(fake, nf, d, mean, "fake");
  column_mean(real, nr, d, mean, "real");
  float *rc = centred_copy(real, nr, mean, d), *fc = centred_copy(fake, nf, mean, d);
  double *real_r2 = mallocCheck(sizeof(double) * (size_t)nr), *fake_r2 = mallocCheck(sizeof(double) * (size_t)nf);
  knn_radii2(rc, nr, d, k, real_r2);
  knn_radii2(fc, nf, d, k, fake_r2);
  *precision = (double)count_covered(fc, nf, rc, nr, real_r2, d) / (double)nf;
  *recall = (double)count_covered(rc, nr, fc, nf, fake_r2, d) / (double)nr;
  free(mean), free(rc), free(fc), free(real_r2), free(fake_r2);
}

void feature_metrics(const float *feat, long n, const float *ref, long nr, const double *ref_mu, const double *ref_cov,
                     int d, int pr_k, long pr_max, double *fd, double *precision, double *recall) {
  double *mu = mallocCheck(sizeof(double) * (size_t)d), *cov = mallocCheck(sizeof(double) * (size_t)d * d);
  feature_stats(feat, n, d, mu, cov);
  *fd = frechet_distance(mu, cov, ref_mu, ref_cov, d);
  free(mu), free(cov);
  knn_precision_recall(ref, nr < pr_max ? nr : pr_max, feat, n < pr_max ? n : pr_max, d, pr_k, precision, recall);
}

double classifier_accuracy(const int *pred, const int *labels, long n) {
  long right = 0;
  for (long i = 0; i < n; i++) right += pred[i] == labels[i];
  return n > 0 ? (double)right / (double)n : 0.0;
}
