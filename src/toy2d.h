/* toy2d.h: the class-conditional 2-D Gaussian mixture of the toy experiments.
 * Modes sit on a ring or a grid; every mode has the same isotropic sigma; class k owns the modes
 * whose number is k modulo num_classes, so every class has modes in several places and a sample
 * stuck between modes (a Forbidden Zone) is measurable exactly. Not here: files or metrics.
 * Return convention: errors stop the program (amd_fatal); functions return void or their result. */
#pragma once
#include <stdint.h>

#include "dataset.h" /* Mixture: the mixture as a toy dataset stores it */


/* layout "ring" (radius) or "grid" (square grid spanning [-radius, radius]^2). */
void mixture_make(Mixture *m, const char *layout, int num_modes, int num_classes, double radius, double sigma);
/* n samples, labels uniform over classes (sample i has label i mod num_classes, then a mode of that
 * class by weight); Philox stream RNG_TOYDATA keyed by (seed, index i). */
void mixture_sample(const Mixture *m, uint64_t seed, long n, float *x, int *labels);
/* Nearest mode to x and its distance in units of sigma. */
int mixture_nearest_mode(const Mixture *m, const float *x, double *dist_sigma);
/* log p(x | c), or log p(x) under uniform classes when c < 0. */
double mixture_log_density(const Mixture *m, const float *x, int c);
