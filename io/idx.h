/* idx.h: reading IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic
 * 0x0000TTDD, T the element type, D the rank, then D uint32 sizes) followed by the raw elements.
 * Plain and gzipped files read alike: zlib's gzread passes a file without the gzip magic (1f 8b)
 * through unchanged. Only the two kinds amd imports: idx3 images of unsigned bytes (N, H, W) and
 * idx1 labels of unsigned bytes (N). A missing file, a wrong magic, sizes beyond the limits below,
 * fewer or more bytes than the header promises: each is a fatal error naming the file.
 * Not here: scaling pixels, or checking that labels match images (the caller knows both).
 * Return convention: every function returns its result or stops the program. */
#pragma once
#include <stdint.h>

#define IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_MAX_COUNT 100000000L     /* images or labels in one file */
#define IDX_MAX_SIDE 4096            /* image height and width */

/* Returns the pixels (n, rows, cols), row-major, in a new buffer (caller frees). */
uint8_t *idx_read_images(const char *path, long *n, int *rows, int *cols);
/* Returns the labels (n) in a new buffer (caller frees). */
uint8_t *idx_read_labels(const char *path, long *n);
