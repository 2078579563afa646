/* idx.c: IDX reading through zlib's gzread, so plain and gzipped files take one path. */
#include "idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common.h"

static gzFile idx_open(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) amd_fatal("file '%s' does not exist", path);
    amd_fatal("cannot access '%s': %s", path, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) amd_fatal("'%s' is not a regular file", path);
  errno = 0;
  gzFile gz = gzopen(path, "rb");
  if (!gz) amd_fatal("cannot open '%s': %s", path, errno ? strerror(errno) : "out of memory");
  /* larger than zlib's 8 KiB default: Fashion-MNIST's 47 MB decode in fewer, longer calls */
  if (gzbuffer(gz, 1 << 18) != 0) amd_fatal("zlib: cannot size the read buffer of '%s'", path);
  return gz;
}

/* Reads up to `want` bytes; returns how many came, fewer only where the data end. */
static size_t idx_fill(gzFile gz, const char *path, void *buf, size_t want) {
  size_t got = 0;
  while (got < want) {
    size_t chunk = want - got < ((size_t)1 << 30) ? want - got : ((size_t)1 << 30);
    int r = gzread(gz, (unsigned char *)buf + got, (unsigned)chunk);
    if (r < 0) {
      int err = 0;
      const char *msg = gzerror(gz, &err);
      amd_fatal("cannot read '%s': %s (damaged gzip data?)", path, msg);
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return got;
}

static const char *idx_how(gzFile gz) { return gzdirect(gz) ? "" : " after gzip decompression"; }

static uint32_t idx_be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Opens an IDX file, checks its magic and returns it positioned after the header; dims receives
 * its `rank` sizes. `what` names the kind in messages ("images", "labels"). */
static gzFile idx_open_header(const char *path, uint32_t magic, int rank, uint32_t *dims, const char *what) {
  gzFile gz = idx_open(path);
  unsigned char h[4 + 4 * 3];
  size_t need = 4 + 4 * (size_t)rank;
  size_t got = idx_fill(gz, path, h, 4);
  if (got == 4) {
    uint32_t found = idx_be32(h);
    if (found != magic) {
      char why[96];
      if (found >> 16)
        snprintf(why, sizeof why, "not an IDX file");
      else if ((found >> 8 & 0xff) != 0x08)
        snprintf(why, sizeof why, "element type 0x%02X, but amd reads unsigned bytes, 0x08", found >> 8 & 0xff);
      else
        snprintf(why, sizeof why, "%u dimensions, but IDX %s have %d", found & 0xff, what, rank);
      gzclose(gz);
      amd_fatal("'%s' is not an IDX %s file: wrong magic number 0x%08X, expected 0x%08X (%s)", path, what, found,
                magic, why);
    }
    got += idx_fill(gz, path, h + 4, need - 4);
  }
  if (got < need) {
    const char *how = idx_how(gz);
    gzclose(gz);
    amd_fatal("'%s' is truncated: an IDX %s header takes %zu bytes, found %zu%s", path, what, need, got, how);
  }
  for (int i = 0; i < rank; i++) dims[i] = idx_be32(h + 4 + 4 * i);
  return gz;
}

/* Reads exactly `bytes` of data and closes the file; `promise` says what the header announced. */
static uint8_t *idx_read_body(gzFile gz, const char *path, size_t bytes, const char *promise) {
  uint8_t *buf = mallocCheck(bytes);
  size_t got = idx_fill(gz, path, buf, bytes);
  unsigned char extra;
  size_t more = got == bytes ? idx_fill(gz, path, &extra, 1) : 0;
  const char *how = idx_how(gz);
  gzclose(gz);
  if (got < bytes) {
    free(buf);
    amd_fatal("'%s' is truncated: its header promises %s, %zu bytes of data, but %zu were found%s", path, promise,
              bytes, got, how);
  }
  if (more) {
    free(buf);
    amd_fatal("'%s' holds more data than its header promises (%s, %zu bytes): damaged header?", path, promise, bytes);
  }
  return buf;
}

uint8_t *idx_read_images(const char *path, long *n, int *rows, int *cols) {
  uint32_t d[3];
  gzFile gz = idx_open_header(path, IDX_MAGIC_IMAGES, 3, d, "images");
  if (d[0] == 0 || d[0] > IDX_MAX_COUNT || d[1] == 0 || d[1] > IDX_MAX_SIDE || d[2] == 0 || d[2] > IDX_MAX_SIDE) {
    gzclose(gz);
    if (d[0] == 0) amd_fatal("'%s' holds no images: its header says N = 0", path);
    if (d[0] > IDX_MAX_COUNT)
      amd_fatal("'%s': its header says %u images, more than the limit of %ld (damaged header?)", path, d[0],
                IDX_MAX_COUNT);
    amd_fatal("'%s': its header says images of %u x %u pixels; height and width must lie in [1, %d]", path, d[1],
              d[2], IDX_MAX_SIDE);
  }
  char promise[96];
  snprintf(promise, sizeof promise, "%u images of %u x %u pixels", d[0], d[1], d[2]);
  uint8_t *px = idx_read_body(gz, path, (size_t)d[0] * d[1] * d[2], promise);
  *n = (long)d[0], *rows = (int)d[1], *cols = (int)d[2];
  return px;
}

uint8_t *idx_read_labels(const char *path, long *n) {
  uint32_t d[1];
  gzFile gz = idx_open_header(path, IDX_MAGIC_LABELS, 1, d, "labels");
  if (d[0] == 0 || d[0] > IDX_MAX_COUNT) {
    gzclose(gz);
    if (d[0] == 0) amd_fatal("'%s' holds no labels: its header says N = 0", path);
    amd_fatal("'%s': its header says %u labels, more than the limit of %ld (damaged header?)", path, d[0],
              IDX_MAX_COUNT);
  }
  char promise[64];
  snprintf(promise, sizeof promise, "%u labels", d[0]);
  uint8_t *labels = idx_read_body(gz, path, d[0], promise);
  *n = (long)d[0];
  return labels;
}
