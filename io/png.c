/* png.c: PNG output through libpng: the atomic RGB writer, and the scatter plot and image grid that
 * rasterise into an RGB8 buffer and hand it to that writer.
 * Not here: reading PNGs, fonts, or any drawing beyond what the plots in png.h need. */
#include "png.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not <png.h>: the build puts io/ on the include path, where that name finds this module's header. */
#include <libpng16/png.h>

#include "common.h"

/* ---------------------------------------------------------------------------------------------- */
/* Writing */

/* What libpng's error callback leaves for the setjmp branch, so the fatal message can name the file
 * and say what libpng objected to. */
typedef struct {
  const char *path;
  char msg[256];
} libpng_error;

static void libpng_on_error(png_structp png, png_const_charp msg) {
  libpng_error *err = png_get_error_ptr(png);
  snprintf(err->msg, sizeof err->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void libpng_on_warning(png_structp png, png_const_charp msg) {
  const libpng_error *err = png_get_error_ptr(png);
  fprintf(stderr, "amd: warning: libpng, writing '%s': %s\n", err->path, msg);
}

void png_write_rgb(const char *path, const uint8_t *rgb, int w, int h) {
  CHECK(path && path[0], "png_write_rgb: the path is NULL or empty");
  CHECK(rgb, "png_write_rgb('%s'): the image is NULL", path);
  CHECK(w > 0 && h > 0, "png_write_rgb('%s'): size %d x %d must be positive", path, w, h);

  size_t len = strlen(path);
  char *tmp = mallocCheck(len + sizeof ".tmp");
  memcpy(tmp, path, len);
  memcpy(tmp + len, ".tmp", sizeof ".tmp");
  FILE *f = fopenCheck(tmp, "wb");

  libpng_error err = {.path = path, .msg = ""};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, libpng_on_error, libpng_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    remove(tmp);
    amd_fatal("cannot write PNG '%s': libpng could not allocate its write structures", path);
  }
  /* libpng reports errors by longjmp; nothing below changes a local that this branch reads. */
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    remove(tmp);
    amd_fatal("cannot write PNG '%s': libpng: %s", path, err.msg);
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);

  /* stdio buffers, so a full disk may only show up here. */
  if (fclose(f) != 0) {
    int e = errno;
    remove(tmp);
    amd_fatal("cannot write PNG '%s': closing '%s' failed: %s", path, tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    amd_fatal("cannot write PNG '%s': renaming '%s' into place failed: %s", path, tmp, strerror(e));
  }
  free(tmp);
}

/* ---------------------------------------------------------------------------------------------- */
/* Scatter plot */

/* matplotlib's tab10, the palette readers of diffusion papers' toy plots already know. */
static const uint8_t scatter_palette[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};
/* Darker than tab10's own grey (class 7), so unlabelled points stay distinguishable from it. */
static const uint8_t scatter_unlabelled[3] = {70, 70, 70};
static const uint8_t scatter_grid[3] = {232, 232, 232};
static const uint8_t scatter_frame[3] = {190, 190, 190};
static const uint8_t scatter_black[3] = {0, 0, 0};
static const uint8_t scatter_white[3] = {255, 255, 255};
static const float scatter_radius = 1.5f;
/* Low enough that a few overlapping points still darken visibly before saturating. */
static const float scatter_alpha = 0.55f;
static const int scatter_cross_half = 3;

/* The square's geometry in pixels; see png.h for the mapping. */
typedef struct {
  int size, margin, span;
  float lo, hi;
} scatter_square;

static float scatter_col(const scatter_square *sq, float x) {
  return (float)sq->margin + (x - sq->lo) / (sq->hi - sq->lo) * (float)sq->span;
}

static float scatter_row(const scatter_square *sq, float y) {
  return (float)sq->margin + (sq->hi - y) / (sq->hi - sq->lo) * (float)sq->span;
}

static int scatter_inside(const scatter_square *sq, float x, float y) {
  /* Written so that NaN compares false and is skipped. */
  return x >= sq->lo && x <= sq->hi && y >= sq->lo && y <= sq->hi;
}

static void scatter_set(uint8_t *rgb, int size, int col, int row, const uint8_t colour[3]) {
  if (col < 0 || col >= size || row < 0 || row >= size) return;
  memcpy(rgb + ((size_t)row * (size_t)size + (size_t)col) * 3, colour, 3);
}

/* Coverage falls off linearly over the disc's last pixel, so a 1.5 px disc does not look square. */
static void scatter_disc(uint8_t *rgb, int size, float cx, float cy, const uint8_t colour[3]) {
  int c0 = amd_max_i(0, (int)floorf(cx - scatter_radius - 0.5f));
  int c1 = amd_min_i(size - 1, (int)ceilf(cx + scatter_radius + 0.5f));
  int r0 = amd_max_i(0, (int)floorf(cy - scatter_radius - 0.5f));
  int r1 = amd_min_i(size - 1, (int)ceilf(cy + scatter_radius + 0.5f));
  for (int row = r0; row <= r1; row++) {
    for (int col = c0; col <= c1; col++) {
      float d = hypotf((float)col - cx, (float)row - cy);
      float coverage = fminf(1.0f, fmaxf(0.0f, scatter_radius + 0.5f - d));
      float a = scatter_alpha * coverage;
      if (a <= 0.0f) continue;
      uint8_t *p = rgb + ((size_t)row * (size_t)size + (size_t)col) * 3;
      for (int k = 0; k < 3; k++) p[k] = (uint8_t)lrintf((1.0f - a) * (float)p[k] + a * (float)colour[k]);
    }
  }
}

/* A step of 1, 2 or 5 x 10^k that cuts [lo, hi] into about five intervals. */
static double scatter_tick_step(double lo, double hi) {
  double raw = (hi - lo) / 5.0;
  double mag = pow(10.0, floor(log10(raw)));
  double norm = raw / mag;
  double nice = norm < 1.5 ? 1.0 : norm < 3.5 ? 2.0 : norm < 7.5 ? 5.0 : 10.0;
  return nice * mag;
}

/* Full-height vertical line at column `col` and full-width horizontal line at row `row` of the square. */
static void scatter_lines(uint8_t *rgb, const scatter_square *sq, int col, int row, const uint8_t colour[3]) {
  for (int i = sq->margin; i <= sq->margin + sq->span; i++) {
    scatter_set(rgb, sq->size, col, i, colour);
    scatter_set(rgb, sq->size, i, row, colour);
  }
}

static void scatter_axes(uint8_t *rgb, const scatter_square *sq) {
  double step = scatter_tick_step(sq->lo, sq->hi);
  for (double k = ceil(sq->lo / step); k * step <= sq->hi; k++) {
    float t = (float)(k * step);
    scatter_lines(rgb, sq, (int)lrintf(scatter_col(sq, t)), (int)lrintf(scatter_row(sq, t)), scatter_grid);
  }
  /* The frame goes last so that a tick at lo or hi does not paint over it. */
  scatter_lines(rgb, sq, sq->margin, sq->margin, scatter_frame);
  scatter_lines(rgb, sq, sq->margin + sq->span, sq->margin + sq->span, scatter_frame);
}

static void scatter_cross(uint8_t *rgb, int size, int col, int row) {
  /* A white halo first, so the black arms still read on top of a dense dark cluster. */
  for (int i = -scatter_cross_half - 1; i <= scatter_cross_half + 1; i++) {
    for (int j = -1; j <= 1; j++) {
      scatter_set(rgb, size, col + i, row + j, scatter_white);
      scatter_set(rgb, size, col + j, row + i, scatter_white);
    }
  }
  for (int i = -scatter_cross_half; i <= scatter_cross_half; i++) {
    scatter_set(rgb, size, col + i, row, scatter_black);
    scatter_set(rgb, size, col, row + i, scatter_black);
  }
}

void png_scatter(const char *path, const float *xy, const int *labels, long n, int num_classes,
                 const float *centres, int m, float lo, float hi, int size) {
  CHECK(path && path[0], "png_scatter: the path is NULL or empty");
  CHECK(n >= 0 && (n == 0 || xy), "png_scatter('%s'): %ld points with xy %s", path, n, xy ? "given" : "NULL");
  CHECK(m >= 0 && (m == 0 || centres), "png_scatter('%s'): %d centres with centres %s", path, m,
        centres ? "given" : "NULL");
  CHECK(num_classes >= 0, "png_scatter('%s'): num_classes %d is negative", path, num_classes);
  CHECK(isfinite(lo) && isfinite(hi) && lo < hi,
        "png_scatter('%s'): the plotted range needs lo < hi, got lo %g, hi %g", path, (double)lo, (double)hi);
  CHECK(size >= 16 && size <= 16384, "png_scatter('%s'): size %d is outside 16..16384", path, size);

  scatter_square sq = {.size = size, .margin = amd_max_i(2, size / 20), .lo = lo, .hi = hi};
  sq.span = size - 1 - 2 * sq.margin;
  size_t bytes = (size_t)size * (size_t)size * 3;
  uint8_t *rgb = mallocCheck(bytes);
  memset(rgb, 255, bytes);
  scatter_axes(rgb, &sq);

  for (long i = 0; i < n; i++) {
    float x = xy[2 * i], y = xy[2 * i + 1];
    if (!scatter_inside(&sq, x, y)) continue;
    const uint8_t *colour = scatter_palette[0];
    if (labels) {
      int l = labels[i];
      colour = l >= 0 && l < num_classes ? scatter_palette[l % 10] : scatter_unlabelled;
    }
    scatter_disc(rgb, size, scatter_col(&sq, x), scatter_row(&sq, y), colour);
  }
  for (int j = 0; j < m; j++) {
    float x = centres[2 * j], y = centres[2 * j + 1];
    if (!scatter_inside(&sq, x, y)) continue;
    scatter_cross(rgb, size, (int)lrintf(scatter_col(&sq, x)), (int)lrintf(scatter_row(&sq, y)));
  }

  png_write_rgb(path, rgb, size, size);
  free(rgb);
}

/* ---------------------------------------------------------------------------------------------- */
/* Image grid */

static uint8_t grid_to_byte(float v) {
  float b = (v + 1.0f) * 127.5f;
  /* Written so that NaN lands on 0 rather than in an undefined float-to-int conversion. */
  if (!(b > 0.0f)) return 0;
  if (b >= 255.0f) return 255;
  return (uint8_t)lrintf(b);
}

void png_image_grid(const char *path, const float *images, int n, int c, int h, int w, int cols) {
  CHECK(path && path[0], "png_image_grid: the path is NULL or empty");
  CHECK(images, "png_image_grid('%s'): images is NULL", path);
  CHECK(n > 0 && h > 0 && w > 0 && cols > 0,
        "png_image_grid('%s'): n %d, h %d, w %d and cols %d must all be positive", path, n, h, w, cols);
  CHECK(c == 1 || c == 3, "png_image_grid('%s'): c is %d, expected 1 (grayscale) or 3 (RGB)", path, c);

  int grid_cols = amd_min_i(cols, n);
  int grid_rows = (n + grid_cols - 1) / grid_cols;
  long width = (long)grid_cols * (w + 2L) + 2, height = (long)grid_rows * (h + 2L) + 2;
  CHECK(width <= 1000000 && height <= 1000000, "png_image_grid('%s'): a %ld x %ld grid is beyond libpng's limit",
        path, width, height);
  size_t bytes = (size_t)width * (size_t)height * 3;
  uint8_t *rgb = callocCheck(bytes, 1);

  size_t plane = (size_t)h * (size_t)w;
  for (int k = 0; k < n; k++) {
    const float *img = images + (size_t)k * (size_t)c * plane;
    size_t x0 = 2 + (size_t)(k % grid_cols) * (size_t)(w + 2);
    size_t y0 = 2 + (size_t)(k / grid_cols) * (size_t)(h + 2);
    for (int y = 0; y < h; y++) {
      uint8_t *dst = rgb + ((y0 + (size_t)y) * (size_t)width + x0) * 3;
      for (int x = 0; x < w; x++) {
        size_t at = (size_t)y * (size_t)w + (size_t)x;
        for (int ch = 0; ch < 3; ch++) dst[3 * x + ch] = grid_to_byte(img[(c == 3 ? (size_t)ch : 0) * plane + at]);
      }
    }
  }

  png_write_rgb(path, rgb, (int)width, (int)height);
  free(rgb);
}
