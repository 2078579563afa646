/* transformer.cu: the DiT's row-wise layers (layernorm, softmax: one warp per row, sums in double
 * in a fixed lane order) and the adaLN conditioning (modulate, gated residual: pointwise forward,
 * one thread per (sample, channel) summing over tokens in order for the backward), with the CPU's
 * formulas and precision (src/ops_cpu.c); layernorm_modulate_forward is the two forwards in one
 * kernel.
 * attention_forward, attention_backward, modulate_layernorm_backward and the backward ops with a
 * bias gradient (gelu_bias_backward, gated_residual_bias_backward) are here the unfused sequences (heads split, the score
 * GEMMs, softmax, the value GEMMs, heads merge, and their backward) on the existing kernels and
 * cuBLAS, so that the CPU's fused ops have their conformance pairs; attention_forward and
 * attention_backward take the fused kernels of attention.cu instead where their shapes fit;
 * cross_attention_forward and cross_attention_backward are unfused sequences too, with a masked
 * softmax kernel and head gathers from (and adding scatters into) the query and key-value rows.
 * Not here: the fused attention kernels (attention.cu). */
#include "cuda_common.cuh"
#include "ops_cuda.h"

#define LN_EPS 1e-6
#define ROWS_PER_BLOCK (CUDA_THREADS / 32)

static inline unsigned row_blocks(int N) { return (unsigned)((N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *x, int N, int C) {
  int r = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= N) return; /* r is the same for the whole warp */
  const float *xr = x + (long)r * C;
  double s = 0, ss = 0;
  for (int c = lane; c < C; c += 32) s += xr[c];
  double mu = warp_sum(s) / C;
  for (int c = lane; c < C; c += 32) ss += (xr[c] - mu) * (xr[c] - mu);
  double rs = 1.0 / sqrt(warp_sum(ss) / C + LN_EPS);
  for (int c = lane; c < C; c += 32) out[(long)r * C + c] = (float)((xr[c] - mu) * rs);
  if (lane == 0) mean[r] = (float)mu, rstd[r] = (float)rs;
}

/* layernorm_forward_kernel's row, then modulate_forward_kernel's map on it; rows (B, T) */
__global__ void layernorm_modulate_forward_kernel(float *y, float *ln, float *mean, float *rstd, const float *x,
                                                  const float *shift, const float *scale, int ld, int N, int T,
                                                  int C) {
  int r = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  const float *xr = x + (long)r * C, *k = scale + (long)(r / T) * ld, *sh = shift + (long)(r / T) * ld;
  double s = 0, ss = 0;
  for (int c = lane; c < C; c += 32) s += xr[c];
  double mu = warp_sum(s) / C;
  for (int c = lane; c < C; c += 32) ss += (xr[c] - mu) * (xr[c] - mu);
  double rs = 1.0 / sqrt(warp_sum(ss) / C + LN_EPS);
  for (int c = lane; c < C; c += 32) {
    float l = (float)((xr[c] - mu) * rs);
    if (ln) ln[(long)r * C + c] = l;
    y[(long)r * C + c] = l * (1.0f + k[c]) + sh[c];
  }
  if (lane == 0 && mean) mean[r] = (float)mu;
  if (lane == 0 && rstd) rstd[r] = (float)rs;
}

/* dx += rstd (dout - mean(dout) - xhat mean(dout xhat)), xhat in float as on the CPU */
__global__ void layernorm_backward_kernel(float *dx, const float *dout, const float *x, const float *mean,
                                          const float *rstd, int N, int C) {
  int r = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  const float *xr = x + (long)r * C, *dr = dout + (long)r * C;
  float mr = mean[r], rr = rstd[r];
  double sd = 0, sdx = 0;
  for (int c = lane; c < C; c += 32) {
    double xh = (xr[c] - mr) * rr;
    sd += dr[c], sdx += dr[c] * xh;
  }
  sd = warp_sum(sd) / C, sdx = warp_sum(sdx) / C;
  for (int c = lane; c < C; c += 32) {
    double xh = (xr[c] - mr) * rr;
    dx[(long)r * C + c] += (float)(rr * (dr[c] - sd - xh * sdx));
  }
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *x, int N, int C) {
  if (N <= 0 || C <= 0) return;
  layernorm_forward_kernel<<<row_blocks(N), CUDA_THREADS, 0, cuda_stream>>>(out, mean, rstd, x, N, C);
  launchCheck(layernorm_forward_kernel);
}

void cuda_layernorm_backward(float *dx, const float *dout, const float *x, const float *mean, const float *rstd,
                             int N, int C) {
  if (N <= 0 || C <= 0) return;
  layernorm_backward_kernel<<<row_blocks(N), CUDA_THREADS, 0, cuda_stream>>>(dx, dout, x, mean, rstd, N, C);
  launchCheck(layernorm_backward_kernel);
}

void cuda_layernorm_modulate_forward(float *y, float *ln, float *mean, float *rstd, const float *x, const float *shift,
                                     const float *scale, int ld, int B, int T, int C) {
  int N = B * T;
  if (N <= 0 || C <= 0) return;
  layernorm_modulate_forward_kernel<<<row_blocks(N), CUDA_THREADS, 0, cuda_stream>>>(y, ln, mean, rstd, x, shift,
                                                                                       scale, ld, N, T, C);
  launchCheck(layernorm_modulate_forward_kernel);
}

/* y may alias x: each lane reads its elements for the max before any lane writes, and then rewrites
 * only its own elements */
__global__ void softmax_forward_kernel(float *y, const float *x, int N, int C) {
  int r = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  const float *xr = x + (long)r * C;
  float *yr = y + (long)r * C;
  float mx = -INFINITY;
  for (int c = lane; c < C; c += 32) mx = fmaxf(mx, xr[c]);
  warp_softmax_row(yr, xr, C, warp_max(mx), lane);
}

__global__ void softmax_backward_kernel(float *dx, const float *dy, const float *y, int N, int C) {
  int r = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  const float *dr = dy + (long)r * C, *yr = y + (long)r * C;
  double s = 0;
  for (int c = lane; c < C; c += 32) s += (double)dr[c] * yr[c];
  s = warp_sum(s);
  for (int c = lane; c < C; c += 32) dx[(long)r * C + c] = yr[c] * (float)(dr[c] - s);
}

void cuda_softmax_forward(float *y, const float *x, int N, int C) {
  if (N <= 0 || C <= 0) return;
  softmax_forward_kernel<<<row_blocks(N), CUDA_THREADS, 0, cuda_stream>>>(y, x, N, C);
  launchCheck(softmax_forward_kernel);
}

void cuda_softmax_backward(float *dx, const float *dy, const float *y, int N, int C) {
  if (N <= 0 || C <= 0) return;
  softmax_backward_kernel<<<row_blocks(N), CUDA_THREADS, 0, cuda_stream>>>(dx, dy, y, N, C);
  launchCheck(softmax_backward_kernel);
}

/* y (B, T, C) = x (1 + scale[b]) + shift[b]; conditioning rows have stride ld */
__global__ void modulate_forward_kernel(float *y, const float *x, const float *shift, const float *scale, int ld,
                                        long n, int T, int C) {
  GRID_STRIDE(i, n) {
    long b = i / ((long)T * C), cb = b * ld + i % C;
    y[i] = x[i] * (1.0f + scale[cb]) + shift[cb];
  }
}

/* one thread per (b, c): dx over the T tokens, dshift and dscale summed over them in double */
__global__ void modulate_backward_kernel(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                                         const float *scale, int ld, long n, int T, int C) {
  GRID_STRIDE(bc, n) {
    long b = bc / C, c = bc % C, cb = b * ld + c;
    double ds = 0, dc = 0;
    float k = 1.0f + scale[cb];
    for (int t = 0; t < T; t++) {
      long i = (b * T + t) * C + c;
      dx[i] = dy[i] * k;
      ds += dy[i], dc += (double)dy[i] * x[i];
    }
    dshift[cb] = (float)ds;
    dscale[cb] = (float)dc;
  }
}

void cuda_modulate_forward(float *y, const float *x, const float *shift, const float *scale, int ld, int B, int T,
                           int C) {
  long n = (long)B * T * C;
  if (n <= 0) return;
  modulate_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(y, x, shift, scale, ld, n, T, C);
  launchCheck(modulate_forward_kernel);
}

void cuda_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                            const float *scale, int ld, int B, int T, int C) {
  long n = (long)B * C;
  if (n <= 0) return;
  modulate_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dx, dshift, dscale, dy, x, scale, ld, n, T,
                                                                           C);
  launchCheck(modulate_backward_kernel);
}

/* x (B, T, C) += gate[b] y */
__global__ void gated_residual_forward_kernel(float *x, const float *gate, const float *y, int ld, long n, int T,
                                              int C) {
  GRID_STRIDE(i, n) {
    long b = i / ((long)T * C);
    x[i] += gate[b * ld + i % C] * y[i];
  }
}

/* one thread per (b, c): dy = gate dx over the tokens, dgate = sum_t dx y in double */
__global__ void gated_residual_backward_kernel(float *dy, float *dgate, const float *dx, const float *y,
                                               const float *gate, int ld, long n, int T, int C) {
  GRID_STRIDE(bc, n) {
    long b = bc / C, c = bc % C, cb = b * ld + c;
    double dg = 0;
    float g = gate[cb];
    for (int t = 0; t < T; t++) {
      long i = (b * T + t) * C + c;
      dy[i] = g * dx[i];
      dg += (double)dx[i] * y[i];
    }
    dgate[cb] = (float)dg;
  }
}

void cuda_gated_residual_forward(float *x, const float *gate, const float *y, int ld, int B, int T, int C) {
  long n = (long)B * T * C;
  if (n <= 0) return;
  gated_residual_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(x, gate, y, ld, n, T, C);
  launchCheck(gated_residual_forward_kernel);
}

void cuda_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y, const float *gate, int ld,
                                  int B, int T, int C) {
  long n = (long)B * C;
  if (n <= 0) return;
  gated_residual_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dy, dgate, dx, y, gate, ld, n, T, C);
  launchCheck(gated_residual_backward_kernel);
}

void cuda_attention_forward(float *out, float *prob, float *scratch, const float *qkv, int B, int T, int NH, int hs) {
  if (B * NH <= 0 || T <= 0 || hs <= 0) return;
  if (cuda_fused_attention_applies(T, hs)) {
    cuda_attention_forward_fused(out, prob, qkv, B, T, NH, hs);
    return;
  }
  int n = B * NH;
  long th = (long)T * hs, tt = (long)T * T, btc = (long)B * T * NH * hs;
  float *q = scratch, *k = q + btc, *v = k + btc, *y = v + btc; /* attention_forward_scratch_floats' */
  cuda_heads_split(q, k, v, qkv, B, T, NH, hs);
  cuda_gemm_batched(0, 1, T, T, hs, 1.0f / sqrtf((float)hs), q, th, k, th, 0.0f, prob, tt, n); /* scores */
  cuda_softmax_forward(prob, prob, n * T, T);
  cuda_gemm_batched(0, 0, T, hs, T, 1.0f, prob, tt, v, th, 0.0f, y, th, n);
  cuda_heads_merge(out, y, B, T, NH, hs);
}

/* unfused: the heads split again from qkv; dq takes dy's place and dk v's once they are read */
void cuda_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *prob, int B,
                             int T, int NH, int hs) {
  if (B * NH <= 0 || T <= 0 || hs <= 0) return;
  if (cuda_fused_attention_backward_applies(T, hs)) {
    cuda_attention_backward_fused(dqkv, dout, qkv, prob, B, T, NH, hs);
    return;
  }
  int n = B * NH;
  long th = (long)T * hs, tt = (long)T * T, btc = (long)B * T * NH * hs;
  float *dprob = scratch, *datt = dprob + (long)n * tt;                      /* (B, NH, T, T) each */
  float *q = datt + (long)n * tt, *k = q + btc, *v = k + btc, *dy = v + btc, *dv = dy + btc; /* (B, NH, T, hs) */
  float scale = 1.0f / sqrtf((float)hs);
  cuda_heads_split(q, k, v, qkv, B, T, NH, hs);
  cuda_heads_merge_backward(dy, dout, B, T, NH, hs);
  cuda_gemm_batched(0, 1, T, T, hs, 1.0f, dy, th, v, th, 0.0f, dprob, tt, n); /* dy v^T */
  cuda_gemm_batched(1, 0, T, hs, T, 1.0f, prob, tt, dy, th, 0.0f, dv, th, n); /* prob^T dy */
  cuda_softmax_backward(datt, dprob, prob, n * T, T);
  float *dq = dy, *dk = v;                                                     /* dy and v are read */
  cuda_gemm_batched(0, 0, T, hs, T, scale, datt, tt, k, th, 0.0f, dq, th, n); /* datt k */
  cuda_gemm_batched(1, 0, T, hs, T, scale, datt, tt, q, th, 0.0f, dk, th, n); /* datt^T q */
  cuda_heads_split_backward(dqkv, dq, dk, dv, B, T, NH, hs);
}

/* Element i of a (B, NH, T, hs) head tensor and its offset in token rows (B, T, .) `ld` floats long,
 * the head's hs columns starting at h hs. */
static __device__ inline long head_token_offset(long i, int T, int NH, int hs, long ld) {
  int d = (int)(i % hs), t = (int)((i / hs) % T), h = (int)((i / ((long)hs * T)) % NH);
  long b = i / ((long)hs * T * NH);
  return (b * T + t) * ld + (long)h * hs + d;
}

__global__ void heads_gather_kernel(float *dst, const float *src, long n, int T, int NH, int hs, long ld) {
  GRID_STRIDE(i, n) dst[i] = src[head_token_offset(i, T, NH, hs, ld)];
}

/* each element of the token rows is one head's, so no two threads add into the same float */
__global__ void heads_scatter_add_kernel(float *dst, const float *src, long n, int T, int NH, int hs, long ld) {
  GRID_STRIDE(i, n) dst[head_token_offset(i, T, NH, hs, ld)] += src[i];
}

/* heads (B, NH, T, hs) <- the head columns of token rows of stride ld, and their adjoint, adding */
static void heads_gather(float *dst, const float *src, int B, int T, int NH, int hs, long ld) {
  long n = (long)B * NH * T * hs;
  if (n <= 0) return;
  heads_gather_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dst, src, n, T, NH, hs, ld);
  launchCheck(heads_gather_kernel);
}

static void heads_scatter_add(float *dst, const float *src, int B, int T, int NH, int hs, long ld) {
  long n = (long)B * NH * T * hs;
  if (n <= 0) return;
  heads_scatter_add_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream>>>(dst, src, n, T, NH, hs, ld);
  launchCheck(heads_scatter_add_kernel);
}

/* softmax_forward_kernel's row over the keys whose mask is nonzero, in place: padded keys get 0 and a
 * row without a key is all 0; row r belongs to sample r / per_sample, whose mask row is M long */
__global__ void masked_softmax_forward_kernel(float *y, const float *mask, int N, int M, int per_sample) {
  int r = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  float *yr = y + (long)r * M;
  const float *mr = mask + (long)(r / per_sample) * M;
  float mx = -INFINITY;
  for (int c = lane; c < M; c += 32)
    if (mr[c] != 0.0f) mx = fmaxf(mx, yr[c]);
  mx = warp_max(mx);
  if (mx == -INFINITY) { /* the whole warp takes this branch */
    for (int c = lane; c < M; c += 32) yr[c] = 0.0f;
    return;
  }
  double s = 0;
  for (int c = lane; c < M; c += 32) {
    float e = mr[c] != 0.0f ? expf(yr[c] - mx) : 0.0f;
    yr[c] = e;
    s += e;
  }
  float inv = (float)(1.0 / warp_sum(s));
  for (int c = lane; c < M; c += 32) yr[c] *= inv;
}

/* the unfused sequence: heads gathered out of query and kv, the score GEMMs, the masked softmax, the
 * value GEMMs, heads merged */
void cuda_cross_attention_forward(float *out, float *q, float *k, float *v, float *prob, float *y, const float *query,
                                  const float *kv, const float *mask, int B, int N, int M, int NH, int hs) {
  int n = B * NH, rows = n * N;
  long C = (long)NH * hs, nh = (long)N * hs, mh = (long)M * hs, nm = (long)N * M;
  heads_gather(q, query, B, N, NH, hs, C);
  heads_gather(k, kv, B, M, NH, hs, 2 * C);
  heads_gather(v, kv + C, B, M, NH, hs, 2 * C);
  cuda_gemm_batched(0, 1, N, M, hs, 1.0f / sqrtf((float)hs), q, nh, k, mh, 0.0f, prob, nm, n); /* scores */
  if (rows > 0 && M > 0) {
    masked_softmax_forward_kernel<<<row_blocks(rows), CUDA_THREADS, 0, cuda_stream>>>(prob, mask, rows, M, NH * N);
    launchCheck(masked_softmax_forward_kernel);
  }
  cuda_gemm_batched(0, 0, N, hs, M, 1.0f, prob, nm, v, mh, 0.0f, y, nh, n);
  cuda_heads_merge(out, y, B, N, NH, hs);
}

/* the backward in the same pieces; each of dquery and dkv gets its heads added at the end */
void cuda_cross_attention_backward(float *dquery, float *dkv, float *scratch, const float *dout, const float *q,
                                   const float *k, const float *v, const float *prob, int B, int N, int M, int NH,
                                   int hs) {
  int n = B * NH;
  long C = (long)NH * hs, nh = (long)N * hs, mh = (long)M * hs, nm = (long)N * M;
  float *dprob = scratch, *datt = dprob + (long)n * nm; /* cross_attention_scratch_floats' */
  float *dy = datt + (long)n * nm, *dq = dy + (long)n * nh, *dk = dq + (long)n * nh, *dv = dk + (long)n * mh;
  float scale = 1.0f / sqrtf((float)hs);
  heads_gather(dy, dout, B, N, NH, hs, C);
  cuda_gemm_batched(0, 1, N, M, hs, 1.0f, dy, nh, v, mh, 0.0f, dprob, nm, n); /* dy v^T */
  cuda_gemm_batched(1, 0, M, hs, N, 1.0f, prob, nm, dy, nh, 0.0f, dv, mh, n); /* prob^T dy */
  cuda_softmax_backward(datt, dprob, prob, n * N, M); /* prob 0 at a padded key: datt 0 there */
  cuda_gemm_batched(0, 0, N, hs, M, scale, datt, nm, k, mh, 0.0f, dq, nh, n); /* datt k */
  cuda_gemm_batched(1, 0, M, hs, N, scale, datt, nm, q, nh, 0.0f, dk, mh, n); /* datt^T q */
  heads_scatter_add(dquery, dq, B, N, NH, hs, C);
  heads_scatter_add(dkv, dk, B, M, NH, hs, 2 * C);
  heads_scatter_add(dkv + C, dv, B, M, NH, hs, 2 * C);
}

/* the two backward kernels, dm in between */
void cuda_modulate_layernorm_backward(float *dx, float *dshift, float *dscale, float *dm, const float *dy,
                                      const float *ln, const float *scale, const float *x, const float *mean,
                                      const float *rstd, int ld, int B, int T, int C) {
  cuda_modulate_backward(dm, dshift, dscale, dy, ln, scale, ld, B, T, C);
  cuda_layernorm_backward(dx, dm, x, mean, rstd, B * T, C);
}

/* the backward ops with the bias gradient of their output: the two kernels one after the other */
void cuda_gelu_bias_backward(float *dx, float *db, const float *dy, const float *x, const float *dg, int N, int O) {
  cuda_gelu_backward(dx, dy, x, dg, (long)N * O);
  if (db) cuda_bias_backward(db, dx, N, O);
}

void cuda_gated_residual_bias_backward(float *dy, float *dgate, float *db, const float *dx, const float *y,
                                       const float *gate, int ld, int B, int T, int C) {
  cuda_gated_residual_backward(dy, dgate, dx, y, gate, ld, B, T, C);
  if (db) cuda_bias_backward(db, dy, B * T, C);
}
