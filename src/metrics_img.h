/* metrics_img.h: image metrics over evaluator features (docs/DESIGN.md section 9), pure host-side C.
 *   feature_stats         mean and unbiased covariance of an (n, d) feature set
 *   frechet_distance      Frechet distance between two Gaussians (FID when the features are
 *                         Inception's; here, whatever evaluator the caller ran)
 *   knn_precision_recall  improved precision and recall (Kynkaanniemi et al., NeurIPS 2019)
 *   feature_metrics       the three above for a sample set against a reference's features
 *   classifier_accuracy   share of predictions equal to their label (prompt adherence)
 * Features are row-major float (n, d); statistics are double. Matrix square roots go through
 * LAPACK's symmetric eigensolver (dsyevd in OpenBLAS); distances through blocked sgemm.
 * Not here: running the evaluator network, reading sample files, MPI (see cmd_eval.c).
 * Return convention: errors stop the program (amd_fatal); functions return void or their result. */
#pragma once

/* mu (d) = mean of the rows of feat (n, d); cov (d, d) = sum_i (x_i - mu)(x_i - mu)^T / (n - 1).
 * Centred before the outer products, so a large common offset costs no precision. n >= 2. */
void feature_stats(const float *feat, long n, int d, double *mu, double *cov);

/* d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2})  (Dowson & Landau 1982).
 * cov1, cov2: symmetric positive semi-definite (d, d); eigenvalues that rounding pushes below 0 are
 * taken as 0. The result is returned as computed: it can be a rounding-sized negative number when
 * the two Gaussians are the same. Fatal on non-finite input or when the eigensolver fails. */
double frechet_distance(const double *mu1, const double *cov1, const double *mu2, const double *cov2, int d);

/* radius[i] = Euclidean distance from x_i to its k-th nearest other point of x (n, d); a duplicate
 * of x_i counts as a neighbour at distance 0. 1 <= k <= n - 1. */
void knn_radii(const float *x, long n, int d, int k, float *radius);

/* Kynkaanniemi et al. 2019, eq. (1)-(2): each point of a set gets a ball of its k-NN radius within
 * its own set (k = 3..5 in the paper); precision = share of fake points inside at least one real
 * ball, recall = share of real points inside at least one fake ball (a point on the boundary is
 * inside). Memory is O((nr + nf) d) plus one block of at most 2^22 distances. */
void knn_precision_recall(const float *real, long nr, const float *fake, long nf, int d, int k, double *precision,
                          double *recall);

/* FD of the sample features feat (n, d), n >= 2, against the reference statistics ref_mu, ref_cov,
 * and precision and recall (k = pr_k) between the first pr_max samples and the first pr_max of the
 * reference features ref (nr, d): what `amd eval` reports for images and for captioned canvases. */
void feature_metrics(const float *feat, long n, const float *ref, long nr, const double *ref_mu, const double *ref_cov,
                     int d, int pr_k, long pr_max, double *fd, double *precision, double *recall);

/* Share of i < n with pred[i] == labels[i]; 0 when n == 0. */
double classifier_accuracy(const int *pred, const int *labels, long n);
