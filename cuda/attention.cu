/* attention.cu: the DiT's attention forward fused per (sample, head): one block reads the head's
 * columns of qkv once, keeps K and V in shared memory, and for each query row (a warp per row)
 * forms the scores, the softmax and the row of prob v, so the scores never leave the block and
 * one launch replaces heads_split, two batched GEMMs, softmax and heads_merge. It writes what the
 * op contract asks (core/ops_list.h): q, k, v (B, NH, T, hs) and prob (B, NH, T, T) for the
 * backward, and out (B, T, NH hs).
 * Numerics: float32 products and sums in every precision (the unfused path's GEMMs follow
 * precision=bf16; this kernel's, on CUDA cores, do not), the softmax of softmax_forward_kernel
 * (max, expf, the sum in double, one reciprocal); the dot products run in another order than
 * cuBLAS's, so results match the unfused path to the GEMM bound, not bit for bit.
 * It applies when K (padded a float per row against bank conflicts), V and a score row per warp
 * fit the 48 KiB of static shared memory: T (2 hs + 1) + 8 T <= ATT_SMEM_FLOATS, e.g. T <= 88 at
 * hs = 64 (the 28 x 28, patch-4 DiT has T = 49) and T <= 168 at hs = 32; otherwise, or with
 * cuda_set_fused_attention(0) (AMD_CUDA_FUSED_ATTENTION=0), cuda_attention_forward runs the
 * unfused sequence of transformer.cu.
 * Not here: the backward (the unfused sequence, on the q, k, v and prob saved here), key tiling
 * for longer sequences (flash attention). */
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
__global__ void attention_forward_kernel(float *out, float *q, float *k, float *v, float *prob, const float *qkv,
                                         int T, int NH, int hs, float scale) {
  __shared__ float sm[ATT_SMEM_FLOATS];
  int bh = blockIdx.x, b = bh / NH, h = bh % NH, ks = hs + 1;
  float *K = sm, *V = K + (long)T * ks, *S = V + (long)T * hs; /* K (T, hs + 1), V (T, hs), S (warps, T) */
  long c3 = 3L * NH * hs, head = (long)bh * T * hs;
  for (int i = threadIdx.x; i < T * hs; i += blockDim.x) {
    int t = i / hs, d = i % hs;
    const float *row = qkv + ((long)b * T + t) * c3 + (long)h * hs + d; /* qkv (B, T, 3, NH, hs) */
    float qv = row[0], kv = row[(long)NH * hs], vv = row[2L * NH * hs];
    q[head + i] = qv, k[head + i] = kv, v[head + i] = vv;
    K[t * ks + d] = kv, V[t * hs + d] = vv;
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
    mx = warp_max(mx);
    double sum = 0;
    for (int j = lane; j < T; j += 32) {
      float e = expf(s[j] - mx);
      s[j] = e;
      sum += e;
    }
    float inv = (float)(1.0 / warp_sum(sum));
    float *pr = prob + ((long)bh * T + i) * T;
    for (int j = lane; j < T; j += 32) pr[j] = s[j] *= inv;
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

void cuda_attention_forward_fused(float *out, float *q, float *k, float *v, float *prob, const float *qkv, int B,
                                  int T, int NH, int hs) {
  attention_forward_kernel<<<(unsigned)(B * NH), ATT_WARPS * 32, 0, cuda_stream>>>(out, q, k, v, prob, qkv, T, NH, hs,
                                                                                   1.0f / sqrtf((float)hs));
  launchCheck(attention_forward_kernel);
}
