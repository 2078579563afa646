/* elementwise.cu: the pointwise ops, data movement (patches, attention heads, embeddings) and the
 * per-sample updates of the flow, one thread per output element (grid-stride). Formulas and float or
 * double evaluation follow src/ops_cpu.c term by term; nvcc may fuse a multiply-add where the CPU
 * rounds twice, so results agree to float rounding, and the pure copies exactly.
 * Of the two column sums, embedding_backward adds in the CPU's row order; bias_backward adds in
 * double in a fixed order of its own, so it rounds to the CPU's float but for a rare last bit.
 * Not here: vectorized loads or fused kernels; each op is one simple kernel. */
#include "cuda_common.cuh"

__global__ void fill_kernel(float *x, float value, long n) {
  GRID_STRIDE(i, n) x[i] = value;
}

void cuda_fill(float *x, float value, long n) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(x, value, n);
  launchCheck(fill_kernel);
}

/* y (B, N) += b (N): a block row of threads per column range, grid-striding over the rows, so no
 * thread divides its index by N */
__global__ void bias_add_kernel(float *y, const float *b, int B, int N) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= N) return;
  float bj = b[j];
  for (long r = blockIdx.y; r < B; r += gridDim.y) y[r * N + j] += bj;
}

void cuda_bias_add(float *y, const float *b, int B, int N) {
  if (B <= 0 || N <= 0) return;
  int threads = N >= CUDA_THREADS ? CUDA_THREADS : (N + 31) / 32 * 32;
  unsigned rows = B < 65535 ? (unsigned)B : 65535;
  bias_add_kernel<<<dim3((N + threads - 1) / threads, rows), threads, 0, cuda_stream>>>(y, b, B, N);
  launchCheck(bias_add_kernel);
}

/* db (N) += column sums of dy (B, N) in double. A block owns 32 columns and one chunk of rows; its
 * BIAS_ROWS thread rows take every BIAS_ROWS-th row of the chunk (coalesced across the columns), then
 * one fixed-order sum. The transformer's biases see B = batch x tokens rows and only N = width
 * columns, so the rows are split into chunks to give the GPU about BIAS_BLOCKS blocks; the chunks'
 * sums go to the column partials and a second kernel adds them in chunk order. The split depends on
 * B and N alone, not on the device, so every GPU adds in the same order. */
#define BIAS_ROWS 16
#define BIAS_BLOCKS 256
#define BIAS_MIN_CHUNK 64
__global__ void bias_backward_kernel(float *db, double *partial, const float *dy, int B, int N, int chunk) {
  __shared__ double part[BIAS_ROWS][33];
  int j = blockIdx.x * 32 + threadIdx.x;
  int r0 = blockIdx.y * chunk, r1 = r0 + chunk < B ? r0 + chunk : B;
  double s = 0;
  if (j < N)
    for (int i = r0 + threadIdx.y; i < r1; i += BIAS_ROWS) s += dy[(long)i * N + j];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < N) {
    double t = 0;
    for (int r = 0; r < BIAS_ROWS; r++) t += part[r][threadIdx.x];
    if (gridDim.y == 1)
      db[j] += (float)t;
    else
      partial[(long)blockIdx.y * N + j] = t;
  }
}

__global__ void bias_chunks_kernel(float *db, const double *partial, int chunks, int N) {
  GRID_STRIDE(j, N) {
    double t = 0;
    for (int g = 0; g < chunks; g++) t += partial[(long)g * N + j];
    db[j] += (float)t;
  }
}

void cuda_bias_backward(float *db, const float *dy, int B, int N) {
  if (B <= 0 || N <= 0) return;
  int col_blocks = (N + 31) / 32;
  long chunks = BIAS_BLOCKS / col_blocks;
  long most = (B + BIAS_MIN_CHUNK - 1) / BIAS_MIN_CHUNK, room = CUDA_COLUMN_PARTIALS / N;
  if (chunks > most) chunks = most;
  if (chunks > room) chunks = room;
  if (chunks < 1) chunks = 1;
  int chunk = (int)((B + chunks - 1) / chunks);
  chunks = (B + chunk - 1) / chunk; /* no empty chunk */
  double *partial = cuda_column_partials();
  bias_backward_kernel<<<dim3(col_blocks, (unsigned)chunks), dim3(32, BIAS_ROWS), 0, cuda_stream>>>(db, partial, dy, B,
                                                                                                     N, chunk);
  launchCheck(bias_backward_kernel);
  if (chunks == 1) return;
  bias_chunks_kernel<<<grid_for(N), CUDA_THREADS, 0, cuda_stream>>>(db, partial, (int)chunks, N);
  launchCheck(bias_chunks_kernel);
}

static __device__ inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void silu_forward_kernel(float *y, const float *x, long n) {
  GRID_STRIDE(i, n) y[i] = x[i] * sigmoidf(x[i]);
}

__global__ void silu_backward_kernel(float *dx, const float *dy, const float *x, long n) {
  GRID_STRIDE(i, n) {
    float s = sigmoidf(x[i]);
    dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

void cuda_silu_forward(float *y, const float *x, long n) {
  if (n <= 0) return;
  silu_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, x, n);
  launchCheck(silu_forward_kernel);
}

void cuda_silu_backward(float *dx, const float *dy, const float *x, long n) {
  if (n <= 0) return;
  silu_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dx, dy, x, n);
  launchCheck(silu_backward_kernel);
}

/* y = GELU(x); dg (may be NULL) keeps gelu'(x) for the backward */
__global__ void gelu_forward_kernel(float *y, float *dg, const float *x, long n) {
  GRID_STRIDE(i, n) {
    float xi = x[i], th = tanhf(gelu_u(xi)); /* xi: y may be x */
    y[i] = 0.5f * xi * (1.0f + th);
    if (dg) dg[i] = gelu_grad(xi, th);
  }
}

/* dx = dy gelu'(x), gelu'(x) from dg or (dg NULL) from x */
__global__ void gelu_backward_kernel(float *dx, const float *dy, const float *x, const float *dg, long n) {
  GRID_STRIDE(i, n) dx[i] = dy[i] * (dg ? dg[i] : gelu_grad(x[i], tanhf(gelu_u(x[i]))));
}

void cuda_gelu_forward(float *y, float *dg, const float *x, long n) {
  if (n <= 0) return;
  gelu_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, dg, x, n);
  launchCheck(gelu_forward_kernel);
}

void cuda_gelu_backward(float *dx, const float *dy, const float *x, const float *dg, long n) {
  if (n <= 0) return;
  gelu_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dx, dy, x, dg, n);
  launchCheck(gelu_backward_kernel);
}

/* Token element i of tokens (B, T, p*p*C) and its pixel in img (B, C, H, W): token features are
 * ordered (py, px, c), tokens in row-major patch order (as patch_pixel in src/ops_cpu.c). */
static __device__ inline long patch_pixel_of(long i, int C, int H, int W, int p) {
  int P = p * p * C, gw = W / p, T = (H / p) * gw;
  int f = (int)(i % P), t = (int)((i / P) % T);
  long b = i / ((long)P * T);
  int c = f % C, px = (f / C) % p, py = f / (C * p);
  return ((b * C + c) * H + (long)(t / gw) * p + py) * W + (long)(t % gw) * p + px;
}

__global__ void patchify_kernel(float *tokens, const float *img, long n, int C, int H, int W, int p) {
  GRID_STRIDE(i, n) tokens[i] = img[patch_pixel_of(i, C, H, W, p)];
}

__global__ void unpatchify_kernel(float *img, const float *tokens, long n, int C, int H, int W, int p) {
  GRID_STRIDE(i, n) img[patch_pixel_of(i, C, H, W, p)] = tokens[i];
}

void cuda_patchify(float *tokens, const float *img, int B, int C, int H, int W, int p) {
  long n = (long)B * (H / p) * (W / p) * p * p * C;
  if (n <= 0) return;
  patchify_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(tokens, img, n, C, H, W, p);
  launchCheck(patchify_kernel);
}

void cuda_unpatchify(float *img, const float *tokens, int B, int C, int H, int W, int p) {
  long n = (long)B * (H / p) * (W / p) * p * p * C;
  if (n <= 0) return;
  unpatchify_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(img, tokens, n, C, H, W, p);
  launchCheck(unpatchify_kernel);
}

/* Element i of a (B, NH, T, hs) head tensor and its offset in a (B, T, [3,] NH, hs) token tensor
 * whose rows are `row` floats long. */
static __device__ inline long token_offset(long i, int T, int NH, int hs, long row) {
  int d = (int)(i % hs), t = (int)((i / hs) % T), h = (int)((i / ((long)hs * T)) % NH);
  long b = i / ((long)hs * T * NH);
  return (b * T + t) * row + (long)h * hs + d;
}

__global__ void heads_split_kernel(float *q, float *k, float *v, const float *qkv, long n, int T, int NH, int hs) {
  long C = (long)NH * hs;
  GRID_STRIDE(i, n) {
    const float *src = qkv + token_offset(i, T, NH, hs, 3 * C);
    q[i] = src[0], k[i] = src[C], v[i] = src[2 * C];
  }
}

__global__ void heads_split_backward_kernel(float *dqkv, const float *dq, const float *dk, const float *dv, long n,
                                            int T, int NH, int hs) {
  long C = (long)NH * hs;
  GRID_STRIDE(i, n) {
    float *dst = dqkv + token_offset(i, T, NH, hs, 3 * C);
    dst[0] = dq[i], dst[C] = dk[i], dst[2 * C] = dv[i];
  }
}

__global__ void heads_merge_kernel(float *out, const float *y, long n, int T, int NH, int hs) {
  GRID_STRIDE(i, n) out[token_offset(i, T, NH, hs, (long)NH * hs)] = y[i];
}

__global__ void heads_merge_backward_kernel(float *dy, const float *dout, long n, int T, int NH, int hs) {
  GRID_STRIDE(i, n) dy[i] = dout[token_offset(i, T, NH, hs, (long)NH * hs)];
}

void cuda_heads_split(float *q, float *k, float *v, const float *qkv, int B, int T, int NH, int hs) {
  long n = (long)B * NH * T * hs;
  if (n <= 0) return;
  heads_split_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(q, k, v, qkv, n, T, NH, hs);
  launchCheck(heads_split_kernel);
}

void cuda_heads_split_backward(float *dqkv, const float *dq, const float *dk, const float *dv, int B, int T, int NH,
                               int hs) {
  long n = (long)B * NH * T * hs;
  if (n <= 0) return;
  heads_split_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dqkv, dq, dk, dv, n, T, NH, hs);
  launchCheck(heads_split_backward_kernel);
}

void cuda_heads_merge(float *out, const float *y, int B, int T, int NH, int hs) {
  long n = (long)B * NH * T * hs;
  if (n <= 0) return;
  heads_merge_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(out, y, n, T, NH, hs);
  launchCheck(heads_merge_kernel);
}

void cuda_heads_merge_backward(float *dy, const float *dout, int B, int T, int NH, int hs) {
  long n = (long)B * NH * T * hs;
  if (n <= 0) return;
  heads_merge_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dy, dout, n, T, NH, hs);
  launchCheck(heads_merge_backward_kernel);
}

__global__ void add_kernel(float *y, const float *a, const float *b, long n) {
  GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

__global__ void axpy_kernel(float *y, float a, const float *x, long n) {
  GRID_STRIDE(i, n) y[i] += a * x[i];
}

__global__ void scale_kernel(float *x, float a, long n) {
  GRID_STRIDE(i, n) x[i] *= a;
}

void cuda_add(float *y, const float *a, const float *b, long n) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, a, b, n);
  launchCheck(add_kernel);
}

void cuda_axpy(float *y, float a, const float *x, long n) {
  if (n <= 0) return;
  axpy_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, a, x, n);
  launchCheck(axpy_kernel);
}

void cuda_scale(float *x, float a, long n) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(x, a, n);
  launchCheck(scale_kernel);
}

/* out (B, dim): [cos(t f_k), sin(t f_k)], f_k = scale max_period^(-k / half), in double as on the CPU */
__global__ void timestep_embedding_kernel(float *out, const float *t, long n, int dim, float scale, float max_period) {
  int half = dim / 2;
  GRID_STRIDE(i, n) {
    int k = (int)(i % half);
    long b = i / half;
    double f = scale * exp(-log((double)max_period) * k / half);
    out[b * dim + k] = (float)cos(t[b] * f);
    out[b * dim + half + k] = (float)sin(t[b] * f);
  }
}

void cuda_timestep_embedding(float *out, const float *t, int B, int dim, float scale, float max_period) {
  long n = (long)B * (dim / 2);
  if (n <= 0) return;
  timestep_embedding_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(out, t, n, dim, scale, max_period);
  launchCheck(timestep_embedding_kernel);
}

__global__ void embedding_forward_kernel(float *out, const float *table, const int *ids, long n, int dim) {
  GRID_STRIDE(i, n) out[i] = table[(long)ids[i / dim] * dim + i % dim];
}

/* one thread per column, rows in order: two rows may share an id, and the sums match the CPU's */
__global__ void embedding_backward_kernel(float *dtable, const float *dout, const int *ids, int B, int dim) {
  GRID_STRIDE(j, dim) {
    for (int b = 0; b < B; b++) dtable[(long)ids[b] * dim + j] += dout[(long)b * dim + j];
  }
}

void cuda_embedding_forward(float *out, const float *table, const int *ids, int B, int dim) {
  long n = (long)B * dim;
  if (n <= 0) return;
  embedding_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(out, table, ids, n, dim);
  launchCheck(embedding_forward_kernel);
}

void cuda_embedding_backward(float *dtable, const float *dout, const int *ids, int B, int dim) {
  if (B <= 0 || dim <= 0) return;
  embedding_backward_kernel<<<grid_for(dim), CUDA_THREADS, 0, cuda_stream>>>(dtable, dout, ids, B, dim);
  launchCheck(embedding_backward_kernel);
}

__global__ void flow_interpolate_kernel(float *xt, float *v, const float *x0, const float *e, const float *t, long n,
                                        int D) {
  GRID_STRIDE(i, n) {
    float tb = t[i / D];
    xt[i] = (1.0f - tb) * x0[i] + tb * e[i];
    v[i] = e[i] - x0[i];
  }
}

__global__ void flow_denoise_kernel(float *d, const float *xt, const float *v, const float *t, long n, int D) {
  GRID_STRIDE(i, n) d[i] = xt[i] - t[i / D] * v[i];
}

__global__ void euler_update_kernel(float *x, const float *v, const float *h, long n, int D) {
  GRID_STRIDE(i, n) x[i] += h[i / D] * v[i];
}

void cuda_flow_interpolate(float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D) {
  long n = (long)B * D;
  if (n <= 0) return;
  flow_interpolate_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(xt, v, x0, e, t, n, D);
  launchCheck(flow_interpolate_kernel);
}

void cuda_flow_denoise(float *d, const float *xt, const float *v, const float *t, int B, int D) {
  long n = (long)B * D;
  if (n <= 0) return;
  flow_denoise_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(d, xt, v, t, n, D);
  launchCheck(flow_denoise_kernel);
}

void cuda_euler_update(float *x, const float *v, const float *h, int B, int D) {
  long n = (long)B * D;
  if (n <= 0) return;
  euler_update_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(x, v, h, n, D);
  launchCheck(euler_update_kernel);
}

/* in double, as the CPU: a handful of logits per step */
__global__ void softplus_forward_backward_kernel(float *loss, float *dz, const float *z, float sign, float scale,
                                                 int B) {
  GRID_STRIDE(b, (long)B) {
    double u = (double)sign * z[b];
    if (loss) loss[b] = (float)(u > 0 ? u + log1p(exp(-u)) : log1p(exp(u)));
    dz[b] = (float)(scale * sign / (1.0 + exp(-u)));
  }
}

void cuda_softplus_forward_backward(float *loss, float *dz, const float *z, float sign, float scale, int B) {
  if (B <= 0) return;
  softplus_forward_backward_kernel<<<grid_for(B), CUDA_THREADS, 0, cuda_stream>>>(loss, dz, z, sign, scale, B);
  launchCheck(softplus_forward_backward_kernel);
}
