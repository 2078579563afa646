/* attention.cu: the DiT's attention fused per (sample, head). Forward: one block reads the head's
 * columns of qkv once, keeps K and V in shared memory, and for each query row (a warp per row)
 * forms the scores, the softmax and the row of prob v, so the scores never leave the block and
 * one launch replaces heads_split, two batched GEMMs, softmax and heads_merge. It writes what the
 * op contract asks (core/ops_list.h): prob (B, NH, T, T) for the backward and out (B, T, NH hs).
 * Backward: one block reads the head's K and V from qkv into shared memory and keeps the head's
 * datt (T, T) there, a warp per query row for dprob, the softmax backward and dq, then a warp per
 * key row for dk and dv, written straight into dqkv: one launch instead of heads_split,
 * heads_merge_backward, four batched GEMMs, softmax_backward and heads_split_backward.
 * Numerics: float32 products and sums in every precision (the unfused path's GEMMs follow
 * precision=bf16; these kernels, on CUDA cores, do not), the softmax of softmax_forward_kernel
 * (max, expf, the sum in double, one reciprocal) and the row sum of softmax_backward_kernel (in
 * double); the dot products run in another order than cuBLAS's, so results match the unfused path
 * to the GEMM bound, not bit for bit. Every sum runs in an order fixed by the shape.
 * They apply when their shared memory fits the 48 KiB of static shared memory: the forward's K
 * (padded a float per row against bank conflicts), V and a score row per warp, T (2 hs + 1) + 8 T
 * <= ATT_SMEM_FLOATS (T <= 87 at hs = 64: the 28 x 28, patch-4 DiT has T = 49; T <= 164 at
 * hs = 32); the backward's padded K and V and datt, 2 T (hs + 1) + T^2 <= ATT_SMEM_FLOATS (T <= 62
 * at hs = 64, T <= 81 at hs = 32). Otherwise, or with cuda_set_fused_attention(0)
 * (AMD_CUDA_FUSED_ATTENTION=0), transformer.cu runs the unfused sequences.
 * Not here: key tiling for longer sequences (flash attention). */
#include "cuda_common.cuh"
#include "ops_cuda.h"

#define ATT_WARPS 8
#define ATT_SMEM_FLOATS 12032 /* 47 KiB */

static int fused_on = 1;

extern "C" void cuda_set_fused_attention(int on) { fused_on = on != 0; }

extern "C" int cuda_fused_attention_applies(int T, int hs) {
  return fused_on && T >= 1 && hs >= 1 && (long)T * (2 * hs + 1) + (long)ATT_WARPS * T <= ATT_SMEM_FLOATS;
}

/* one block of ATT_WARPS warps per (sample b, head h) = blockIdx.x */
__global__ void attention_forward_kernel(float *out, float *prob, const float *qkv, int T, int NH, int hs,
                                         float scale) {
  __shared__ float sm[ATT_SMEM_FLOATS];
  int bh = blockIdx.x, b = bh / NH, h = bh % NH, ks = hs + 1;
  float *K = sm, *V = K + (long)T * ks, *S = V + (long)T * hs; /* K (T, hs + 1), V (T, hs), S (warps, T) */
  long c3 = 3L * NH * hs;
  for (int i = threadIdx.x; i < T * hs; i += blockDim.x) {
    int t = i / hs, d = i % hs;
    const float *row = qkv + ((long)b * T + t) * c3 + (long)h * hs + d; /* qkv (B, T, 3, NH, hs) */
    K[t * ks + d] = row[(long)NH * hs], V[t * hs + d] = row[2L * NH * hs];
  }
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float *s = S + (long)warp * T;
  for (int i = warp; i < T; i += ATT_WARPS) { /* the same rows for every lane of the warp */
    const float *qi = qkv + ((long)b * T + i) * c3 + (long)h * hs;
    float mx = -INFINITY;
    for (int j = lane; j < T; j += 32) {
      float dot = 0.0f;
      for (int d = 0; d < hs; d++) dot += qi[d] * K[j * ks + d];
      s[j] = scale * dot;
      mx = fmaxf(mx, s[j]);
    }
    warp_softmax_row(s, s, T, warp_max(mx), lane);
    float *pr = prob + ((long)bh * T + i) * T;
    for (int j = lane; j < T; j += 32) pr[j] = s[j];
    __syncwarp(); /* every lane reads the whole row next */
    float *o = out + ((long)b * T + i) * NH * hs + (long)h * hs; /* out (B, T, NH, hs) */
    for (int d = lane; d < hs; d += 32) {
      float acc = 0.0f;
      for (int j = 0; j < T; j++) acc += s[j] * V[j * hs + d];
      o[d] = acc;
    }
    __syncwarp(); /* the row is read before the next one overwrites it */
  }
}

/* The backward, one block per (sample b, head h), overwriting the head's columns of dqkv:
 *   dprob = dy v^T, datt = prob (dprob - rowsum(dprob prob)) (softmax_backward_kernel's row),
 *   dq = scale datt k, dk = scale datt^T q, dv = prob^T dy,
 * dy the head's columns of dout. Phase 1, a warp per query row i: the row of dprob against V in
 * shared memory, the row of datt into shared memory, dq_i against K. Phase 2, after the block's
 * barrier, with q and dy in shared memory where K and V were, a warp per key row j: dk_j and dv_j
 * as sums over i in order (no atomics: the same sums every run). */
__global__ void attention_backward_kernel(float *dqkv, const float *dout, const float *qkv, const float *prob, int T,
                                          int NH, int hs, float scale) {
  __shared__ float sm[ATT_SMEM_FLOATS];
  int bh = blockIdx.x, b = bh / NH, h = bh % NH, ks = hs + 1;
  float *K = sm, *V = K + (long)T * ks, *Dt = V + (long)T * ks; /* K, V (T, hs + 1), datt (T, T) */
  long c = (long)NH * hs, c3 = 3L * NH * hs;
  const float *P = prob + (long)bh * T * T;
  for (int i = threadIdx.x; i < T * hs; i += blockDim.x) {
    int t = i / hs, d = i % hs;
    const float *row = qkv + ((long)b * T + t) * c3 + (long)h * hs + d; /* qkv (B, T, 3, NH, hs) */
    K[t * ks + d] = row[c], V[t * ks + d] = row[2 * c];
  }
  __syncthreads();
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = warp; i < T; i += ATT_WARPS) {
    const float *dy = dout + ((long)b * T + i) * c + (long)h * hs, *pr = P + (long)i * T;
    float *di = Dt + (long)i * T;
    double s = 0;
    for (int j = lane; j < T; j += 32) {
      float dp = 0.0f;
      for (int d = 0; d < hs; d++) dp += dy[d] * V[j * ks + d];
      di[j] = dp;
      s += (double)dp * pr[j];
    }
    s = warp_sum(s);
    for (int j = lane; j < T; j += 32) di[j] = pr[j] * (float)(di[j] - s);
    __syncwarp(); /* every lane reads the whole row next */
    float *dq = dqkv + ((long)b * T + i) * c3 + (long)h * hs;
    for (int d = lane; d < hs; d += 32) {
      float acc = 0.0f;
      for (int j = 0; j < T; j++) acc += di[j] * K[j * ks + d];
      dq[d] = scale * acc;
    }
  }
  __syncthreads(); /* every row of datt is in place, and K and V are read for the last time */
  float *Q = K, *Dy = V; /* phase 2 reads q and dy (T, hs + 1) where K and V were */
  for (int i = threadIdx.x; i < T * hs; i += blockDim.x) {
    int t = i / hs, d = i % hs;
    Q[t * ks + d] = qkv[((long)b * T + t) * c3 + (long)h * hs + d];
    Dy[t * ks + d] = dout[((long)b * T + t) * c + (long)h * hs + d];
  }
  __syncthreads();
  for (int j = warp; j < T; j += ATT_WARPS) {
    float *dk = dqkv + ((long)b * T + j) * c3 + c + (long)h * hs, *dv = dk + c;
    for (int d = lane; d < hs; d += 32) {
      float ak = 0.0f, av = 0.0f;
      for (int i = 0; i < T; i++) {
        ak += Dt[(long)i * T + j] * Q[i * ks + d];
        av += P[(long)i * T + j] * Dy[i * ks + d];
      }
      dk[d] = scale * ak, dv[d] = av;
    }
  }
}

extern "C" int cuda_fused_attention_backward_applies(int T, int hs) {
  return fused_on && T >= 1 && hs >= 1 && 2L * T * (hs + 1) + (long)T * T <= ATT_SMEM_FLOATS;
}

void cuda_attention_backward_fused(float *dqkv, const float *dout, const float *qkv, const float *prob, int B, int T,
                                   int NH, int hs) {
  attention_backward_kernel<<<(unsigned)(B * NH), ATT_WARPS * 32, 0, cuda_stream>>>(dqkv, dout, qkv, prob, T, NH, hs,
                                                                                    1.0f / sqrtf((float)hs));
  launchCheck(attention_backward_kernel);
}

void cuda_attention_forward_fused(float *out, float *prob, const float *qkv, int B, int T, int NH, int hs) {
  attention_forward_kernel<<<(unsigned)(B * NH), ATT_WARPS * 32, 0, cuda_stream>>>(out, prob, qkv, T, NH, hs,
                                                                                   1.0f / sqrtf((float)hs));
  launchCheck(attention_forward_kernel);
}
