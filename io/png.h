/* png.h: writes PNG pictures for looking at runs: raw RGB images, scatter plots of 2-D toy samples,
 * and grids of generated images.
 * Not here: reading PNGs, text or axis labels, or anything that needs MPI; call these on one rank.
 * Every failure (bad arguments, unwritable path, libpng error) is fatal and names the path.
 * Return convention: every function writes its file or stops the program with an error naming it. */
#pragma once
#include <stdint.h>

/* Writes an RGB8 image (h rows of w pixels, row-major, 3 bytes per pixel) as PNG; the file is
 * written to "<path>.tmp" then renamed, so a crash never leaves a half-written PNG at `path`.
 * libpng's own limit applies: w and h at most 1,000,000. */
void png_write_rgb(const char *path, const uint8_t *rgb /* (h, w, 3) */, int w, int h);

/* Scatter plot of 2-D points for toy data: white background, a light grey frame and grid lines at
 * the tick positions (a step of 1, 2 or 5 x 10^k giving about five intervals; no labels), points
 * coloured by class (matplotlib's tab10, cycling for more classes; label < 0 or >= num_classes, dark
 * grey; labels == NULL, all tab10 blue), drawn as anti-aliased discs of radius 1.5 px at alpha 0.55,
 * so dense regions read darker, and the mode centres drawn on top as black "+" crosses 7 px across
 * with a 1 px white halo.
 * Mapping: with margin M = max(2, size / 20) and S = size - 1 - 2M, the point (x, y) has its centre
 * at column M + (x - lo) / (hi - lo) * S and row M + (hi - y) / (hi - lo) * S (y grows upward; pixel
 * centres are at integers). Points and centres outside [lo, hi] x [lo, hi], or not finite, are
 * skipped. size is 16..16384. */
void png_scatter(const char *path, const float *xy /* (n, 2) */, const int *labels /* (n) or NULL */,
                 long n, int num_classes, const float *centres /* (m, 2) or NULL */, int m,
                 float lo, float hi, int size);

/* Grid of grayscale or RGB images: images (n, c, h, w) in [-1, 1], c = 1 or 3, mapped by
 * round((v + 1) * 127.5) clamped to 0..255 (NaN -> 0); grayscale is written as R = G = B.
 * Layout, the same as torchvision's make_grid(padding=2, pad_value=0): C = min(cols, n) columns,
 * R = ceil(n / C) rows, a picture of width C * (w + 2) + 2 and height R * (h + 2) + 2, image k with
 * its top-left pixel at column 2 + (k % C) * (w + 2), row 2 + (k / C) * (h + 2); borders and empty
 * cells are black. */
void png_image_grid(const char *path, const float *images /* (n, c, h, w) */, int n, int c, int h,
                    int w, int cols);
