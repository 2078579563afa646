/* test_idx.c: io/idx.c, the IDX reader behind `amd data fmnist` and `amd data import`: images and
 * labels written here, plain and gzipped (gzopen/gzwrite), read back byte for byte; then the bad
 * inputs, each in a forked child through expect_fatal, checking the message names the problem:
 * missing file, wrong magic, truncated header and data (plain and gzipped), a label count that
 * disagrees with the data, damaged gzip data, and sizes beyond the limits. Files go to a scratch
 * folder /tmp/amd_test_idx_XXXXXX, removed when every case passed (kept otherwise, to look at).
 * Not here: scaling to [-1, 1] and matching labels to images (scenario_cli.sh drives those). */
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "idx.h"
#include "test.h"

static char scratch[64];

/* scratch/name into buf (4096 bytes) */
static char *t_file(char *buf, const char *name) {
  snprintf(buf, 4096, "%s/%s", scratch, name);
  return buf;
}

/* Writes an IDX file: magic, `rank` big-endian sizes, then `bytes` bytes of data (fewer or more
 * than the sizes imply, to make bad files), gzipped when gz is set. */
static void write_idx(const char *path, int gz, uint32_t magic, int rank, const uint32_t *dims, const uint8_t *data,
                      size_t bytes) {
  size_t head = 4 + 4 * (size_t)rank;
  uint8_t *buf = mallocCheck(head + bytes);
  for (int i = 0; i <= rank; i++) {
    uint32_t v = i ? dims[i - 1] : magic;
    buf[4 * i] = (uint8_t)(v >> 24), buf[4 * i + 1] = (uint8_t)(v >> 16);
    buf[4 * i + 2] = (uint8_t)(v >> 8), buf[4 * i + 3] = (uint8_t)v;
  }
  if (bytes) memcpy(buf + head, data, bytes);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    CHECK(f, "cannot create '%s'", path);
    CHECK(gzwrite(f, buf, (unsigned)(head + bytes)) == (int)(head + bytes), "gzwrite to '%s' failed", path);
    CHECK(gzclose(f) == Z_OK, "gzclose of '%s' failed", path);
  } else {
    FILE *f = fopenCheck(path, "wb");
    CHECK(fwrite(buf, 1, head + bytes, f) == head + bytes, "write to '%s' failed", path);
    fclose(f);
  }
  free(buf);
}

/* 5 images of 3 x 4 with distinct bytes, 0..255 included */
enum { N = 5, H = 3, W = 4 };
static void make_pixels(uint8_t *px) {
  for (int i = 0; i < N * H * W; i++) px[i] = (uint8_t)(i * 37 % 256);
  px[0] = 0, px[1] = 255;
}

static void check_images(const char *path, const uint8_t *want) {
  long n = 0;
  int h = 0, w = 0;
  uint8_t *px = idx_read_images(path, &n, &h, &w);
  EXPECT(n == N && h == H && w == W, "%s: shape (%ld, %d, %d), expected (%d, %d, %d)", path, n, h, w, N, H, W);
  if (n == N && h == H && w == W) EXPECT(memcmp(px, want, N * H * W) == 0, "%s: pixels differ", path);
  free(px);
}

static void test_images_round_trip(void) {
  char path[4096];
  uint8_t px[N * H * W];
  make_pixels(px);
  const uint32_t dims[3] = {N, H, W};
  write_idx(t_file(path, "images.idx"), 0, IDX_MAGIC_IMAGES, 3, dims, px, sizeof px);
  check_images(path, px);
  write_idx(t_file(path, "images.idx.gz"), 1, IDX_MAGIC_IMAGES, 3, dims, px, sizeof px);
  check_images(path, px);
}

static void test_labels_round_trip(void) {
  char path[4096];
  const uint8_t want[7] = {0, 9, 3, 3, 255, 1, 0};
  const uint32_t dims[1] = {7};
  for (int gz = 0; gz < 2; gz++) {
    write_idx(t_file(path, gz ? "labels.idx.gz" : "labels.idx"), gz, IDX_MAGIC_LABELS, 1, dims, want, sizeof want);
    long n = 0;
    uint8_t *got = idx_read_labels(path, &n);
    EXPECT(n == 7, "%s: %ld labels, expected 7", path, n);
    if (n == 7) EXPECT(memcmp(got, want, sizeof want) == 0, "%s: labels differ", path);
    free(got);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* bad inputs */

static void read_images(void *path) {
  long n;
  int h, w;
  free(idx_read_images(path, &n, &h, &w));
}

static void read_labels(void *path) {
  long n;
  free(idx_read_labels(path, &n));
}

static void test_bad_missing(void) {
  char path[4096];
  EXPECT(expect_fatal(read_images, t_file(path, "nothing_here.idx"), "nothing_here.idx' does not exist"),
         "missing images file");
  EXPECT(expect_fatal(read_labels, path, "does not exist"), "missing labels file");
  EXPECT(expect_fatal(read_images, scratch, "not a regular file"), "a folder given as the file");
}

static void test_bad_magic(void) {
  char path[4096];
  const uint8_t data[4] = {1, 2, 3, 4};
  const uint32_t one[1] = {4};
  /* a labels file given as images, and the other way round */
  write_idx(t_file(path, "labels_as_images.idx"), 0, IDX_MAGIC_LABELS, 1, one, data, sizeof data);
  EXPECT(expect_fatal(read_images, path, "wrong magic number 0x00000801, expected 0x00000803"), "labels as images");
  const uint32_t img[3] = {1, 2, 2};
  write_idx(t_file(path, "images_as_labels.idx.gz"), 1, IDX_MAGIC_IMAGES, 3, img, data, sizeof data);
  EXPECT(expect_fatal(read_labels, path, "wrong magic number 0x00000803, expected 0x00000801"), "images as labels");
  /* int32 elements (type 0x0C): right rank, wrong element type */
  write_idx(t_file(path, "int32.idx"), 0, 0x00000C03u, 3, img, data, sizeof data);
  EXPECT(expect_fatal(read_images, path, "element type 0x0C"), "int32 IDX");
  FILE *f = fopenCheck(t_file(path, "text.idx"), "w");
  fputs("this is not an IDX file at all\n", f);
  fclose(f);
  EXPECT(expect_fatal(read_images, path, "not an IDX file"), "a text file");
  EXPECT(expect_fatal(read_images, path, path), "the message names the file");
}

static void test_bad_truncated(void) {
  char path[4096];
  uint8_t px[N * H * W];
  make_pixels(px);
  const uint32_t dims[3] = {N, H, W};
  write_idx(t_file(path, "short.idx"), 0, IDX_MAGIC_IMAGES, 3, dims, px, 50);
  EXPECT(expect_fatal(read_images, path, "truncated: its header promises 5 images of 3 x 4 pixels, 60 bytes of data, "
                                         "but 50 were found"),
         "plain file, 50 of 60 bytes");
  write_idx(t_file(path, "short.idx.gz"), 1, IDX_MAGIC_IMAGES, 3, dims, px, 17);
  EXPECT(expect_fatal(read_images, path, "but 17 were found after gzip decompression"), "gzipped, 17 of 60 bytes");
  write_idx(t_file(path, "no_data.idx"), 0, IDX_MAGIC_IMAGES, 3, dims, px, 0);
  EXPECT(expect_fatal(read_images, path, "but 0 were found"), "header only");
  /* a header cut short: magic and one of three sizes */
  FILE *f = fopenCheck(t_file(path, "short_header.idx"), "wb");
  const uint8_t head[8] = {0, 0, 8, 3, 0, 0, 0, 5};
  fwrite(head, 1, sizeof head, f);
  fclose(f);
  EXPECT(expect_fatal(read_images, path, "an IDX images header takes 16 bytes, found 8"), "8-byte header");
  f = fopenCheck(t_file(path, "empty.idx"), "wb");
  fclose(f);
  EXPECT(expect_fatal(read_labels, path, "an IDX labels header takes 8 bytes, found 0"), "empty file");
}

static void test_bad_label_count(void) {
  char path[4096];
  const uint8_t labels[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1};
  const uint32_t ten[1] = {10};
  write_idx(t_file(path, "fewer_labels.idx"), 0, IDX_MAGIC_LABELS, 1, ten, labels, 8);
  EXPECT(expect_fatal(read_labels, path, "header promises 10 labels, 10 bytes of data, but 8 were found"),
         "header says 10 labels, file holds 8");
  write_idx(t_file(path, "more_labels.idx.gz"), 1, IDX_MAGIC_LABELS, 1, ten, labels, 12);
  EXPECT(expect_fatal(read_labels, path, "more data than its header promises (10 labels"),
         "header says 10 labels, file holds 12");
}

static void test_bad_gzip_damaged(void) {
  char path[4096];
  uint8_t px[N * H * W];
  make_pixels(px);
  const uint32_t dims[3] = {N, H, W};
  write_idx(t_file(path, "damaged.idx.gz"), 1, IDX_MAGIC_IMAGES, 3, dims, px, sizeof px);
  /* the gzip trailer's CRC-32 no longer matches the data */
  FILE *f = fopenCheck(path, "r+b");
  CHECK(fseek(f, -8, SEEK_END) == 0, "seek in '%s'", path);
  int c = fgetc(f);
  CHECK(fseek(f, -8, SEEK_END) == 0, "seek in '%s'", path);
  fputc(c ^ 0xff, f);
  fclose(f);
  EXPECT(expect_fatal(read_images, path, "damaged gzip data"), "gzip CRC mismatch");
}

static void test_bad_sizes(void) {
  char path[4096];
  const uint8_t px[4] = {0};
  const uint32_t none[3] = {0, 28, 28}, wide[3] = {1, 2, 5000}, many[3] = {200000000, 28, 28};
  write_idx(t_file(path, "none.idx"), 0, IDX_MAGIC_IMAGES, 3, none, px, 0);
  EXPECT(expect_fatal(read_images, path, "holds no images: its header says N = 0"), "N = 0");
  write_idx(t_file(path, "wide.idx"), 0, IDX_MAGIC_IMAGES, 3, wide, px, sizeof px);
  EXPECT(expect_fatal(read_images, path, "images of 2 x 5000 pixels; height and width must lie in [1, 4096]"),
         "W = 5000");
  write_idx(t_file(path, "many.idx"), 0, IDX_MAGIC_IMAGES, 3, many, px, sizeof px);
  EXPECT(expect_fatal(read_images, path, "200000000 images, more than the limit"), "N = 200 million");
  const uint32_t no_labels[1] = {0};
  write_idx(t_file(path, "no_labels.idx"), 0, IDX_MAGIC_LABELS, 1, no_labels, px, 0);
  EXPECT(expect_fatal(read_labels, path, "holds no labels"), "0 labels");
}

/* ---------------------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

int main(void) {
  snprintf(scratch, sizeof scratch, "/tmp/amd_test_idx_XXXXXX");
  CHECK(mkdtemp(scratch), "cannot create a scratch folder under /tmp");
  TEST_RUN(test_images_round_trip);
  TEST_RUN(test_labels_round_trip);
  TEST_RUN(test_bad_missing);
  TEST_RUN(test_bad_magic);
  TEST_RUN(test_bad_truncated);
  TEST_RUN(test_bad_label_count);
  TEST_RUN(test_bad_gzip_damaged);
  TEST_RUN(test_bad_sizes);
  if (t_failed == 0) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  else printf("  files kept in %s\n", scratch);
  return t_finish();
}
