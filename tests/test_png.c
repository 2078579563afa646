/* test_png.c: tests for io/png.c. Every picture is read back with libpng's read API, which png.c does
 * not use, so the writer is checked against an independent decoder rather than against itself.
 * Outputs go to /tmp/amd_test_png_<pid>_*.png and are removed when a case passes (kept when it fails,
 * to look at). Not here: judging how the plots look; that is done by eye. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not <png.h>: -Iio makes that name find io/png.h. */
#include <libpng16/png.h>

#include "common.h"
#include "png.h"
#include "test.h"

typedef struct {
  int w, h;
  uint8_t *rgb; /* (h, w, 3) */
} t_image;

static void t_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "/tmp/amd_test_png_%ld_%s.png", (long)getpid(), name);
}

static void t_cleanup(const char *path) {
  if (t_case_failures == 0) remove(path);
}

/* Reads an 8-bit RGB PNG; on any problem prints why and returns an image with rgb == NULL. */
static t_image t_read_png(const char *path) {
  t_image img = {0, 0, NULL};
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("  cannot open '%s': %s\n", path, strerror(errno));
    return img;
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  /* Assigned after setjmp and read in its error branch, hence volatile. */
  uint8_t *volatile rgb = NULL;
  png_bytep *volatile rows = NULL;
  if (!png || !info) {
    printf("  libpng could not allocate its read structures\n");
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return img;
  }
  if (setjmp(png_jmpbuf(png))) {
    printf("  libpng could not read '%s'\n", path);
    png_destroy_read_struct(&png, &info, NULL);
    free(rgb);
    free(rows);
    fclose(f);
    return img;
  }
  png_init_io(png, f);
  png_read_info(png, info);
  int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
  if (png_get_color_type(png, info) != PNG_COLOR_TYPE_RGB || png_get_bit_depth(png, info) != 8) {
    printf("  '%s' is not 8-bit RGB (colour type %d, depth %d)\n", path, png_get_color_type(png, info),
           png_get_bit_depth(png, info));
    png_error(png, "unexpected format");
  }
  rgb = mallocCheck((size_t)w * (size_t)h * 3);
  rows = mallocCheck((size_t)h * sizeof *rows);
  for (int y = 0; y < h; y++) rows[y] = rgb + (size_t)y * (size_t)w * 3;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  fclose(f);
  img.w = w;
  img.h = h;
  img.rgb = rgb;
  return img;
}

static const uint8_t *t_pixel(const t_image *img, int col, int row) {
  return img->rgb + ((size_t)row * (size_t)img->w + (size_t)col) * 3;
}

static int t_is_white(const uint8_t *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

/* ---------------------------------------------------------------------------------------------- */

static void test_write_rgb_roundtrip(void) {
  char path[256], tmp[300];
  t_path(path, sizeof path, "rgb");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  enum { W = 7, H = 5 }; /* odd sizes, so a row-stride slip shows */
  uint8_t rgb[H * W * 3];
  for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i * 37 + 11);
  png_write_rgb(path, rgb, W, H);
  EXPECT(!amd_file_exists(tmp), "'%s' left behind", tmp);

  t_image img = t_read_png(path);
  EXPECT(img.rgb != NULL, "could not read back '%s'", path);
  if (!img.rgb) return;
  EXPECT(img.w == W && img.h == H, "size %d x %d, expected %d x %d", img.w, img.h, W, H);
  if (img.w == W && img.h == H) {
    int mismatches = 0;
    for (int i = 0; i < H * W * 3; i++) mismatches += img.rgb[i] != rgb[i];
    EXPECT(mismatches == 0, "%d of %d bytes differ", mismatches, H * W * 3);
  }
  free(img.rgb);
  t_cleanup(path);
}

static void test_write_rgb_replaces_existing(void) {
  char path[256];
  t_path(path, sizeof path, "replace");
  uint8_t a[3] = {1, 2, 3}, b[3] = {200, 100, 50};
  png_write_rgb(path, a, 1, 1);
  png_write_rgb(path, b, 1, 1);
  t_image img = t_read_png(path);
  EXPECT(img.rgb != NULL, "could not read back '%s'", path);
  if (!img.rgb) return;
  EXPECT(img.w == 1 && img.h == 1 && memcmp(img.rgb, b, 3) == 0, "the second write did not replace the first");
  free(img.rgb);
  t_cleanup(path);
}

/* The plot mapping documented in png.h, restated here so the test does not borrow png.c's code. */
static int t_scatter_col(float x, float lo, float hi, int size) {
  int margin = size / 20 > 2 ? size / 20 : 2, span = size - 1 - 2 * margin;
  return (int)lrintf((float)margin + (x - lo) / (hi - lo) * (float)span);
}
static int t_scatter_row(float y, float lo, float hi, int size) {
  int margin = size / 20 > 2 ? size / 20 : 2, span = size - 1 - 2 * margin;
  return (int)lrintf((float)margin + (hi - y) / (hi - lo) * (float)span);
}

static void test_scatter_points_and_centres(void) {
  char path[256];
  t_path(path, sizeof path, "scatter");
  const float lo = -4.0f, hi = 4.0f;
  const int size = 200;
  /* Grid lines fall on multiples of 2, so the checked empty spots (odd coordinates) are clear of them. */
  const float xy[] = {1.0f, 3.0f, -3.0f, -1.0f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 9.0f, 9.0f, NAN, 0.0f};
  const int labels[] = {0, 1, 3, 3, 3, 2, 2};
  const float centres[] = {3.0f, -3.0f};
  png_scatter(path, xy, labels, 7, 4, centres, 1, lo, hi, size);

  t_image img = t_read_png(path);
  EXPECT(img.rgb != NULL, "could not read back '%s'", path);
  if (!img.rgb) return;
  EXPECT(img.w == size && img.h == size, "size %d x %d, expected %d x %d", img.w, img.h, size, size);
  if (img.w != size || img.h != size) {
    free(img.rgb);
    return;
  }
#define AT(x, y) t_pixel(&img, t_scatter_col((x), lo, hi, size), t_scatter_row((y), lo, hi, size))
  const uint8_t *blue = AT(1.0f, 3.0f), *orange = AT(-3.0f, -1.0f), *dense = AT(0.5f, 0.5f);
  EXPECT(!t_is_white(blue), "label 0 point is white");
  EXPECT(blue[2] > blue[0], "label 0 (tab10 blue) drew %d,%d,%d", blue[0], blue[1], blue[2]);
  EXPECT(orange[0] > orange[2], "label 1 (tab10 orange) drew %d,%d,%d", orange[0], orange[1], orange[2]);
  EXPECT(dense[0] + dense[1] + dense[2] < blue[0] + blue[1] + blue[2],
         "three stacked points (%d,%d,%d) are not darker than one (%d,%d,%d)", dense[0], dense[1], dense[2],
         blue[0], blue[1], blue[2]);
  /* y grows upward: the mirror image of the point at (1, 3) stays empty. */
  EXPECT(t_is_white(AT(1.0f, -3.0f)), "(1, -3) is not white: is y flipped?");
  EXPECT(t_is_white(AT(-3.0f, 3.0f)), "empty spot (-3, 3) is not white");
  const uint8_t *centre = AT(3.0f, -3.0f);
  EXPECT(centre[0] < 40 && centre[1] < 40 && centre[2] < 40, "centre marker is %d,%d,%d, not black", centre[0],
         centre[1], centre[2]);
  /* The marker is a cross a few pixels across, not a single dot. */
  const uint8_t *arm = t_pixel(&img, t_scatter_col(3.0f, lo, hi, size) + 2, t_scatter_row(-3.0f, lo, hi, size));
  EXPECT(arm[0] < 40 && arm[1] < 40 && arm[2] < 40, "centre marker arm is %d,%d,%d", arm[0], arm[1], arm[2]);
  /* The frame sits at the square's edges; the margin outside it is white. */
  const uint8_t *frame = AT(lo, 1.0f);
  EXPECT(!t_is_white(frame) && frame[0] > 150, "frame at x = lo is %d,%d,%d", frame[0], frame[1], frame[2]);
  EXPECT(t_is_white(t_pixel(&img, 0, size / 2)), "the margin is not white");
#undef AT
  free(img.rgb);
  t_cleanup(path);
}

static void test_scatter_without_labels_or_centres(void) {
  char path[256];
  t_path(path, sizeof path, "scatter_plain");
  const float xy[] = {0.25f, -0.25f};
  png_scatter(path, xy, NULL, 1, 0, NULL, 0, -1.0f, 1.0f, 64);
  t_image img = t_read_png(path);
  EXPECT(img.rgb != NULL, "could not read back '%s'", path);
  if (!img.rgb) return;
  EXPECT(img.w == 64 && img.h == 64, "size %d x %d", img.w, img.h);
  const uint8_t *p = t_pixel(&img, t_scatter_col(0.25f, -1, 1, 64), t_scatter_row(-0.25f, -1, 1, 64));
  EXPECT(p[2] > p[0], "unlabelled points should be tab10 blue, got %d,%d,%d", p[0], p[1], p[2]);
  free(img.rgb);
  t_cleanup(path);
}

static void test_image_grid_layout(void) {
  char path[256];
  t_path(path, sizeof path, "grid");
  enum { N = 5, C = 3, H = 4, W = 3, COLS = 2 };
  float images[N * C * H * W];
  /* Image k, channel ch: -1 everywhere except pixel (1, 2), which is k / 4 - 1 + ch / 2 clamped. */
  for (int i = 0; i < N * C * H * W; i++) images[i] = -1.0f;
  for (int k = 0; k < N; k++)
    for (int ch = 0; ch < C; ch++)
      images[((k * C + ch) * H + 1) * W + 2] = (float)k / 4.0f - 1.0f + (float)ch * 0.5f;
  images[((4 * C + 2) * H + 3) * W + 0] = 7.0f;  /* beyond 1: clamps to 255 */
  images[((4 * C + 1) * H + 3) * W + 0] = -3.0f; /* beyond -1: clamps to 0 */
  images[((4 * C + 0) * H + 3) * W + 0] = 0.0f;  /* 127.5 rounds to even: 128 */
  png_image_grid(path, images, N, C, H, W, COLS);

  t_image img = t_read_png(path);
  EXPECT(img.rgb != NULL, "could not read back '%s'", path);
  if (!img.rgb) return;
  /* 2 columns, 3 rows: width 2 * (3 + 2) + 2 = 12, height 3 * (4 + 2) + 2 = 20. */
  EXPECT(img.w == 12 && img.h == 20, "size %d x %d, expected 12 x 20", img.w, img.h);
  if (img.w != 12 || img.h != 20) {
    free(img.rgb);
    return;
  }
  for (int k = 0; k < N; k++) {
    int x0 = 2 + (k % COLS) * (W + 2), y0 = 2 + (k / COLS) * (H + 2);
    const uint8_t *p = t_pixel(&img, x0 + 2, y0 + 1);
    for (int ch = 0; ch < C; ch++) {
      float v = (float)k / 4.0f - 1.0f + (float)ch * 0.5f;
      float b = (v + 1.0f) * 127.5f;
      int want = b <= 0 ? 0 : b >= 255 ? 255 : (int)lrintf(b);
      EXPECT(p[ch] == want, "image %d channel %d: %d, expected %d", k, ch, p[ch], want);
    }
    const uint8_t *bg = t_pixel(&img, x0, y0);
    EXPECT(bg[0] == 0 && bg[1] == 0 && bg[2] == 0, "image %d pixel (0, 0) is %d,%d,%d", k, bg[0], bg[1], bg[2]);
  }
  const uint8_t *q = t_pixel(&img, 2 + 0, 2 + 2 * (H + 2) + 3);
  EXPECT(q[0] == 128 && q[1] == 0 && q[2] == 255, "clamping: %d,%d,%d, expected 128,0,255", q[0], q[1], q[2]);
  /* Every border pixel and the whole empty sixth cell are black, so no image landed off its cell. */
  int lit = 0;
  for (int row = 0; row < img.h; row++)
    for (int col = 0; col < img.w; col++) {
      int in_border = col < 2 || col >= img.w - 2 || (col >= 2 + W && col < 2 + W + 2) || row < 2 ||
                      row >= img.h - 2 || (row - 2) % (H + 2) >= H;
      int in_empty = row >= 2 + 2 * (H + 2) && col >= 2 + (W + 2);
      if (in_border || in_empty) lit += !(t_pixel(&img, col, row)[0] == 0 && t_pixel(&img, col, row)[1] == 0 &&
                                          t_pixel(&img, col, row)[2] == 0);
    }
  EXPECT(lit == 0, "%d border or empty-cell pixels are not black", lit);
  free(img.rgb);
  t_cleanup(path);
}

static void test_image_grid_grayscale_few_images(void) {
  char path[256];
  t_path(path, sizeof path, "grid_gray");
  enum { N = 2, H = 3, W = 2 };
  float images[N * H * W];
  for (int i = 0; i < N * H * W; i++) images[i] = (float)i / (N * H * W - 1) * 2.0f - 1.0f;
  png_image_grid(path, images, N, 1, H, W, 8); /* more columns than images: the grid shrinks to 2 */
  t_image img = t_read_png(path);
  EXPECT(img.rgb != NULL, "could not read back '%s'", path);
  if (!img.rgb) return;
  EXPECT(img.w == 2 * (W + 2) + 2 && img.h == H + 4, "size %d x %d, expected %d x %d", img.w, img.h,
         2 * (W + 2) + 2, H + 4);
  if (img.w == 2 * (W + 2) + 2 && img.h == H + 4) {
    const uint8_t *last = t_pixel(&img, 2 + (W + 2) + W - 1, 2 + H - 1); /* image 1, last pixel: value 1 */
    EXPECT(last[0] == 255 && last[1] == 255 && last[2] == 255, "gray 1.0 is %d,%d,%d", last[0], last[1], last[2]);
    const uint8_t *mid = t_pixel(&img, 2 + 1, 2 + 1); /* image 0, value 3/11*2-1 */
    int want = (int)lrintf((3.0f / 11.0f * 2.0f) * 127.5f);
    EXPECT(mid[0] == want && mid[1] == want && mid[2] == want, "gray pixel %d,%d,%d, expected %d", mid[0],
           mid[1], mid[2], want);
  }
  free(img.rgb);
  t_cleanup(path);
}

/* ---------------------------------------------------------------------------------------------- */
/* Fatal paths: each runs in a child through expect_fatal. */

static void t_write_unwritable(void *arg) {
  uint8_t rgb[3] = {0, 0, 0};
  png_write_rgb((const char *)arg, rgb, 1, 1);
}

/* Wider than libpng's 1,000,000-pixel limit: png_set_IHDR fails inside libpng, exercising the
 * setjmp branch rather than a check of ours. */
static void t_write_too_wide(void *arg) {
  int w = 1000001;
  uint8_t *rgb = callocCheck((size_t)w * 3, 1);
  png_write_rgb((const char *)arg, rgb, w, 1);
}

static void t_scatter_bad_range(void *arg) {
  float xy[2] = {0, 0};
  png_scatter((const char *)arg, xy, NULL, 1, 0, NULL, 0, 1.0f, 1.0f, 64);
}

static void t_scatter_bad_size(void *arg) {
  float xy[2] = {0, 0};
  png_scatter((const char *)arg, xy, NULL, 1, 0, NULL, 0, -1.0f, 1.0f, 0);
}

static void t_grid_bad_channels(void *arg) {
  float images[2 * 2 * 2] = {0};
  png_image_grid((const char *)arg, images, 1, 2, 2, 2, 1);
}

static void test_fatal_errors_name_the_path(void) {
  EXPECT(expect_fatal(t_write_unwritable, "/nonexistent_dir/x.png", "/nonexistent_dir/x.png"),
         "unwritable path");

  char path[256], tmp[300];
  t_path(path, sizeof path, "too_wide");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  EXPECT(expect_fatal(t_write_too_wide, path, path), "libpng error");
  EXPECT(!amd_file_exists(tmp) && !amd_file_exists(path), "a failed write left a file behind");

  EXPECT(expect_fatal(t_scatter_bad_range, "/tmp/amd_test_png_never.png", "lo < hi"), "lo == hi");
  EXPECT(expect_fatal(t_scatter_bad_size, "/tmp/amd_test_png_never.png", "size 0"), "size 0");
  EXPECT(expect_fatal(t_grid_bad_channels, "/tmp/amd_test_png_never.png", "c is 2"), "c = 2");
  EXPECT(!amd_file_exists("/tmp/amd_test_png_never.png"), "a rejected call wrote a file");
}

int main(void) {
  TEST_RUN(test_write_rgb_roundtrip);
  TEST_RUN(test_write_rgb_replaces_existing);
  TEST_RUN(test_scatter_points_and_centres);
  TEST_RUN(test_scatter_without_labels_or_centres);
  TEST_RUN(test_image_grid_layout);
  TEST_RUN(test_image_grid_grayscale_few_images);
  TEST_RUN(test_fatal_errors_name_the_path);
  return t_finish();
}
