/* ops_list.h: the one list of the backend ops (core/ops.h). Every place that names each op is
 * generated from it: the members of amd_ops (core/ops.h), the CPU table (src/ops_cpu.c), the CUDA
 * launchers' declarations (cuda/cuda_common.cuh) and table (cuda/ops_cuda.cu), the profiling
 * wrappers (src/ops_profile.c) and the start-up check that no table lacks an op (ops_missing,
 * src/backend.c). The comment beside each entry is that op's documentation; the conventions all ops
 * share (backend memory, asynchrony, "backward" adds, "overwrite", shapes) are in core/ops.h.
 *
 * An entry is X(ret, op, params, args, rv): the return type, the op's name (the table member, the
 * CPU function cpu_<op>, the CUDA function cuda_<op>), the parameter list, the same parameters as an
 * argument list, and `return` for an op that returns a value (empty for a void op), so a wrapper
 * forwards a call as `rv real->op args;`.
 * Two groups:
 *   AMD_OPS_KERNELS  general tensor ops: memory, GEMM, layers, elementwise, conditioning,
 *                    reductions, AdamW and the EMA, Philox draws; nothing in them knows a model or a method;
 *   AMD_OPS_FUSED    the fused ops of the flow losses, the distillation methods and the samplers
 *                    (each a few elementwise steps in one pass, kept in the backend for speed: one
 *                    launch instead of several on a GPU); they know the formulas of their method.
 * AMD_OPS is both, in the order of the struct.
 *
 * Adding an op: one entry here (in its group, with its comment), then `static` cpu_<op> in
 * src/ops_cpu.c and cuda_<op> in the .cu file of its family (cuda/gemm.cu, elementwise.cu,
 * transformer.cu, reduce.cu), with the same parameters. The tables, declarations and profiling
 * wrapper follow; a missing CPU or CUDA function is a compile error, and a table that still lacks
 * an op stops the program at start-up naming it. Then a conformance case in tests/test_cuda.c (and
 * a gradient check in tests/test_grad.c for a backward). If its FLOPs are worth counting (as the
 * GEMMs'), a FLOPS_<op> line in src/ops_profile.c.
 * Not here: the op implementations, which backend runs (src/backend.c), anything about models. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define AMD_OPS(X) AMD_OPS_KERNELS(X) AMD_OPS_FUSED(X)

#define AMD_OPS_KERNELS(X)                                                                                            \
  /* memory */                                                                                                        \
  /* zero-filled; fatal when it cannot */                                                                             \
  X(void *, alloc, (size_t bytes), (bytes), return)                                                                   \
  X(void, free, (void *p), (p), )                                                                                     \
  X(void, to_device, (void *dst, const void *src, size_t bytes), (dst, src, bytes), )                                 \
  X(void, to_host, (void *dst, const void *src, size_t bytes), (dst, src, bytes), )                                   \
  X(void, copy, (void *dst, const void *src, size_t bytes), (dst, src, bytes), )                                      \
  X(void, fill, (float *x, float value, long n), (x, value, n), )                                                     \
  /* waits until every op issued so far has finished (CPU: nothing to wait for); needed before a                      \
   * library outside the backend (a CUDA-aware MPI) reads backend memory directly */                                  \
  X(void, synchronize, (void), (), )                                                                                  \
  /* runs body(arg), a fixed sequence of ops on backend memory that neither copies to or from the                     \
   * host nor waits for the device nor allocates (CUDA graphs: on CUDA with cuda.graphs=1 the first                   \
   * call with these arg bytes runs eagerly, the second captures it into *graph and launches it,                      \
   * later ones only launch it, so the body's host code then does not run: it must set the same                       \
   * host state each time; new arg bytes capture again). *graph starts NULL; graph_free releases it.                  \
   * CPU, and CUDA with graphs off: body(arg) every time */                                                           \
  X(void, graph_run, (void **graph, void (*body)(const void *arg), const void *arg, size_t arg_bytes),                \
    (graph, body, arg, arg_bytes), )                                                                                  \
  X(void, graph_free, (void *graph), (graph), )                                                                       \
                                                                                                                      \
  /* C (M, N) = alpha op(A) op(B) + beta C; op(A) is (M, K), op(B) is (K, N); trans* = 1 transposes */                \
  X(void, gemm, (int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,            \
                 float beta, float *C),                                                                               \
    (transA, transB, M, N, K, alpha, A, B, beta, C), )                                                                \
  /* strided-batched GEMM: for i < batch, C_i = alpha op(A_i) op(B_i) + beta C_i with                                 \
   * X_i = X + i * strideX (strides in floats; 0 reuses one matrix), shapes as in gemm */                             \
  X(void, gemm_batched, (int transA, int transB, int M, int N, int K, float alpha, const float *A, long strideA,      \
                         const float *B, long strideB, float beta, float *C, long strideC, int batch),                \
    (transA, transB, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC, batch), )                              \
  /* y (B, N) += b (N) per row; db (N) += sum over the rows of dy (B, N) */                                           \
  X(void, bias_add, (float *y, const float *b, int B, int N), (y, b, B, N), )                                         \
  X(void, bias_backward, (float *db, const float *dy, int B, int N), (db, dy, B, N), )                                \
  X(void, silu_forward, (float *y, const float *x, long n), (y, x, n), )                                              \
  /* dx += dy silu'(x) */                                                                                             \
  X(void, silu_backward, (float *dx, const float *dy, const float *x, long n), (dx, dy, x, n), )                      \
                                                                                                                      \
  /* transformer layers (the `dit` model). Per-sample conditioning rows (shift, scale, gate) are                      \
   * (B, C) views with row stride ld, so the chunks of one adaLN output (B, 6C) serve directly. */                    \
  /* out (N, C) = (x - mean) * rstd per row, no affine; caches mean, rstd (N); eps 1e-6 as in DiT */                  \
  X(void, layernorm_forward, (float *out, float *mean, float *rstd, const float *x, int N, int C),                    \
    (out, mean, rstd, x, N, C), )                                                                                     \
  X(void, layernorm_backward, (float *dx, const float *dout, const float *x, const float *mean, const float *rstd,    \
                               int N, int C),                                                                         \
    (dx, dout, x, mean, rstd, N, C), )                                                                                \
  /* adaLN's normalization and modulation in one pass per row, rows (B, T): ln = LN(x) as layernorm_forward           \
   * keeps it, with mean and rstd, and y = ln (1 + scale[b]) + shift[b] as modulate_forward, bit for bit              \
   * those ops' results; ln, mean and rstd may each be NULL (not kept: a forward without a backward) */               \
  X(void, layernorm_modulate_forward, (float *y, float *ln, float *mean, float *rstd, const float *x,                 \
                                       const float *shift, const float *scale, int ld, int B, int T, int C),          \
    (y, ln, mean, rstd, x, shift, scale, ld, B, T, C), )                                                              \
  /* the backward of both, in one pass per sample: dm = dy (1 + scale[b]) (overwrite; scratch for a                   \
   * backend that runs it as two passes, (B, T, C)), dshift[b] = sum_t dy, dscale[b] = sum_t dy ln                    \
   * (overwrite), and dx += the LayerNorm backward of dm, as modulate_backward then layernorm_backward                \
   * give them (bit for bit on the CPU, which keeps dm in cache and leaves the dm buffer as it was) */                \
  X(void, modulate_layernorm_backward, (float *dx, float *dshift, float *dscale, float *dm, const float *dy,          \
                                        const float *ln, const float *scale, const float *x, const float *mean,       \
                                        const float *rstd, int ld, int B, int T, int C),                              \
    (dx, dshift, dscale, dm, dy, ln, scale, x, mean, rstd, ld, B, T, C), )                                            \
  /* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).                                       \
   * The forward also stores dg = gelu'(x) when dg is not NULL, so that the backward reads dy and dg                  \
   * only (not x, not tanh again) and x need not be kept for it (dg NULL there: computed from x; the same             \
   * values either way, bit for bit on the CPU). y may be x. */                                                       \
  X(void, gelu_forward, (float *y, float *dg, const float *x, long n), (y, dg, x, n), )                               \
  /* overwrite: dx = dy gelu'(x), gelu'(x) from dg when not NULL (x is not read then and may be NULL) */              \
  X(void, gelu_backward, (float *dx, const float *dy, const float *x, const float *dg, long n), (dx, dy, x, dg, n), ) \
  /* adaLN modulate: y (B, T, C) = x (1 + scale[b]) + shift[b]; backward (overwrite):                                 \
   * dx = dy (1 + scale[b]), dshift[b] = sum_t dy, dscale[b] = sum_t dy x */                                          \
  X(void, modulate_forward, (float *y, const float *x, const float *shift, const float *scale, int ld, int B, int T,  \
                             int C),                                                                                  \
    (y, x, shift, scale, ld, B, T, C), )                                                                              \
  X(void, modulate_backward, (float *dx, float *dshift, float *dscale, const float *dy, const float *x,               \
                              const float *scale, int ld, int B, int T, int C),                                       \
    (dx, dshift, dscale, dy, x, scale, ld, B, T, C), )                                                                \
  /* gated residual: x (B, T, C) += gate[b] y; backward (overwrite): dy = gate dx, dgate[b] =                         \
   * sum_t dx y (dx itself passes through to the residual stream unchanged) */                                        \
  X(void, gated_residual_forward, (float *x, const float *gate, const float *y, int ld, int B, int T, int C),         \
    (x, gate, y, ld, B, T, C), )                                                                                      \
  X(void, gated_residual_backward, (float *dy, float *dgate, const float *dx, const float *y, const float *gate,      \
                                    int ld, int B, int T, int C),                                                     \
    (dy, dgate, dx, y, gate, ld, B, T, C), )                                                                          \
  /* the backward ops that make a linear layer's output gradient, with that layer's bias gradient                     \
   * (bias_backward of their output, db may be NULL) in the same pass, bit for bit the two ops' results               \
   * on the CPU: gelu_bias_backward is gelu_backward over (N, O) rows (dx overwritten) and db (O) +=                  \
   * the column sums of dx; gated_residual_bias_backward is gated_residual_backward and db (C) += the                 \
   * column sums of dy */                                                                                             \
  X(void, gelu_bias_backward, (float *dx, float *db, const float *dy, const float *x, const float *dg, int N, int O), \
    (dx, db, dy, x, dg, N, O), )                                                                                      \
  X(void, gated_residual_bias_backward, (float *dy, float *dgate, float *db, const float *dx, const float *y,         \
                                         const float *gate, int ld, int B, int T, int C),                             \
    (dy, dgate, db, dx, y, gate, ld, B, T, C), )                                                                      \
  /* fused linear layers: z (N, O) = x (N, K) W^T + b (W (O, K) as in torch.nn.Linear, b (O) or NULL)                 \
   * and the pointwise step that follows it, in one pass over blocks of rows while each block's z is                  \
   * in cache; each gives bit for bit what gemm, bias_add and the unfused step give (the CPU backend's                \
   * sums; a GPU's as its gemm). All overwrite their outputs.                                                         \
   *   linear_forward:          y = z                                                                                 \
   *   linear_gelu_forward:     pre = z, y = GELU(pre) with dg as gelu_forward keeps it (dg may be NULL); pre may     \
   *                            be NULL: z is then made in y and replaced by GELU(z) (one output stream fewer)        \
   *   linear_residual_forward: rows (B, T); y = z, h_out = h_in + gate[b] y (gate rows of stride ld;                 \
   *                            h_out may be h_in), the adaLN-Zero gated residual */                                  \
  X(void, linear_forward, (float *y, const float *x, const float *W, const float *b, int N, int K, int O),            \
    (y, x, W, b, N, K, O), )                                                                                          \
  X(void, linear_gelu_forward, (float *y, float *dg, float *pre, const float *x, const float *W, const float *b,      \
                                int N, int K, int O),                                                                 \
    (y, dg, pre, x, W, b, N, K, O), )                                                                                 \
  X(void, linear_residual_forward, (float *h_out, float *y, const float *h_in, const float *gate, int ld,             \
                                    const float *x, const float *W, const float *b, int B, int T, int K, int O),      \
    (h_out, y, h_in, gate, ld, x, W, b, B, T, K, O), )                                                                \
  /* softmax over each row of (N, C); y may alias x. Backward (overwrite): dx = y (dy - sum_c dy y) */                \
  X(void, softmax_forward, (float *y, const float *x, int N, int C), (y, x, N, C), )                                  \
  X(void, softmax_backward, (float *dx, const float *dy, const float *y, int N, int C), (dx, dy, y, N, C), )          \
  /* image (B, C, H, W) <-> tokens (B, T, p*p*C), T = (H/p)(W/p) in row-major patch order, a token's                  \
   * features ordered (py, px, c) as in DiT's unpatchify. Both overwrite; each is the other's adjoint. */             \
  X(void, patchify, (float *tokens, const float *img, int B, int C, int H, int W, int p),                             \
    (tokens, img, B, C, H, W, p), )                                                                                   \
  X(void, unpatchify, (float *img, const float *tokens, int B, int C, int H, int W, int p),                           \
    (img, tokens, B, C, H, W, p), )                                                                                   \
  /* attention heads: qkv (B, T, 3, NH, hs) -> q, k, v (B, NH, T, hs) each; its backward writes                       \
   * dq, dk, dv into dqkv. merge: y (B, NH, T, hs) -> out (B, T, NH, hs); its backward writes dout                    \
   * into dy (B, NH, T, hs). All four overwrite. */                                                                   \
  X(void, heads_split, (float *q, float *k, float *v, const float *qkv, int B, int T, int NH, int hs),                \
    (q, k, v, qkv, B, T, NH, hs), )                                                                                   \
  X(void, heads_split_backward, (float *dqkv, const float *dq, const float *dk, const float *dv, int B, int T,        \
                                 int NH, int hs),                                                                     \
    (dqkv, dq, dk, dv, B, T, NH, hs), )                                                                               \
  X(void, heads_merge, (float *out, const float *y, int B, int T, int NH, int hs), (out, y, B, T, NH, hs), )          \
  X(void, heads_merge_backward, (float *dy, const float *dout, int B, int T, int NH, int hs),                         \
    (dy, dout, B, T, NH, hs), )                                                                                       \
                                                                                                                      \
  /* attention forward fused per (sample, head), while the head's T x T scores are in cache, reading                  \
   * the head's q, k, v in place from their columns of qkv (B, T, 3 NH hs) (no copies, no caches):                    \
   * prob (B, NH, T, T) = softmax(q k^T / sqrt(hs)) as heads_split, gemm_batched and softmax_forward                  \
   * give it, and out (B, T, NH hs) = prob v merged as heads_merge places it; the CPU backend's                       \
   * results are bit for bit those ops'. scratch holds attention_forward_scratch_floats                               \
   * (src/attention.h): none where the table's attention_heads_scratch is 0 (the CPU), else q, k,                     \
   * v, y (B, NH, T, hs) each for a backend that splits and merges the heads in passes of their own */                \
  X(void, attention_forward, (float *out, float *prob, float *scratch, const float *qkv, int B, int T, int NH,        \
                              int hs),                                                                                \
    (out, prob, scratch, qkv, B, T, NH, hs), )                                                                        \
  /* its backward, fused the same way (overwrite): dqkv (B, T, 3 NH hs) = d loss / d qkv given dout                   \
   * (B, T, NH hs), the forward's qkv and prob, as heads_split, heads_merge_backward, gemm_batched,                   \
   * softmax_backward, gemm_batched and heads_split_backward give it (bit for bit on the CPU). scratch                \
   * holds attention_scratch_floats (src/attention.h): dprob and datt (B, NH, T, T) each, then,                       \
   * where the table's attention_heads_scratch is 1 (CUDA), q, k, v, dy, dv (B, NH, T, hs) each */                    \
  X(void, attention_backward, (float *dqkv, float *scratch, const float *dout, const float *qkv,                      \
                               const float *prob, int B, int T, int NH, int hs),                                      \
    (dqkv, scratch, dout, qkv, prob, B, T, NH, hs), )                                                                 \
  /* cross-attention (text conditioning, src/cross_attention.h): queries from one sequence, keys and                  \
   * values from another with a key padding mask, per (sample, head). query (B, N, NH hs) and kv                      \
   * (B, M, 2 NH hs) (k in the first NH hs columns, v in the rest) as linear layers give them; mask                   \
   * (B, M): 1 for a key that takes part, 0 for padding (any nonzero value counts as 1). Caches q                     \
   * (B, NH, N, hs), k, v (B, NH, M, hs) and prob (B, NH, N, M) = softmax(q k^T / sqrt(hs) + log mask)                \
   * (padded keys get probability 0); out (B, N, NH hs) = prob v with the heads merged (overwrite).                   \
   * A sample whose keys are all padding (the empty caption) has prob 0 in every row, so its out is                   \
   * 0 (and so are its gradients), not the NaN of a softmax over nothing. y (B, NH, N, hs) is scratch                 \
   * for a backend that merges the heads in a second pass (attention_heads_scratch 1; the CPU reads                   \
   * none) */                                                                                                         \
  X(void, cross_attention_forward, (float *out, float *q, float *k, float *v, float *prob, float *y,                  \
                                    const float *query, const float *kv, const float *mask, int B, int N, int M,      \
                                    int NH, int hs),                                                                  \
    (out, q, k, v, prob, y, query, kv, mask, B, N, M, NH, hs), )                                                      \
  /* its backward: dquery (B, N, NH hs) and dkv (B, M, 2 NH hs) ADD d loss / d query and d kv given                   \
   * dout (B, N, NH hs) and the forward's q, k, v, prob (the mask is in prob's zeros: padded keys get                 \
   * no gradient). scratch holds cross_attention_scratch_floats (src/cross_attention.h): dprob and                    \
   * datt (B, NH, N, M) each, then, where attention_heads_scratch is 1, dy, dq (B, NH, N, hs) each and                \
   * dk, dv (B, NH, M, hs) each */                                                                                    \
  X(void, cross_attention_backward, (float *dquery, float *dkv, float *scratch, const float *dout, const float *q,    \
                                     const float *k, const float *v, const float *prob, int B, int N, int M, int NH,  \
                                     int hs),                                                                         \
    (dquery, dkv, scratch, dout, q, k, v, prob, B, N, M, NH, hs), )                                                   \
  /* elementwise */                                                                                                   \
  X(void, add, (float *y, const float *a, const float *b, long n), (y, a, b, n), ) /* y = a + b */                    \
  X(void, axpy, (float *y, float a, const float *x, long n), (y, a, x, n), )       /* y += a x */                     \
  X(void, scale, (float *x, float a, long n), (x, a, n), )                         /* x *= a */                       \
                                                                                                                      \
  /* conditioning: sinusoidal timestep features, out (B, dim) = [cos(t f_k), sin(t f_k)],                             \
   * f_k = scale * max_period^(-k / (dim/2)), t (B); and class-embedding lookup,                                      \
   * out (B, dim) = table[ids] */                                                                                     \
  X(void, timestep_embedding, (float *out, const float *t, int B, int dim, float scale, float max_period),            \
    (out, t, B, dim, scale, max_period), )                                                                            \
  X(void, embedding_forward, (float *out, const float *table, const int *ids, int B, int dim),                        \
    (out, table, ids, B, dim), )                                                                                      \
  X(void, embedding_backward, (float *dtable, const float *dout, const int *ids, int B, int dim),                     \
    (dtable, dout, ids, B, dim), )                                                                                    \
                                                                                                                      \
  /* reductions: computed in double, returned to the host */                                                          \
  X(double, sum_squares, (const float *x, long n), (x, n), return)                                                    \
  /* the same sum, bit for bit, left in *out (backend memory, one double) without waiting, for a                      \
   * caller that reads it back together with its other results */                                                     \
  X(void, sum_squares_async, (double *out, const float *x, long n), (out, x, n), )                                    \
  X(int, all_finite, (const float *x, long n), (x, n), return)                                                        \
                                                                                                                      \
  /* AdamW (Loshchilov and Hutter) on one flat range; step t >= 1 for bias correction; the gradient                   \
   * is multiplied by grad_scale first (global-norm clipping); decoupled weight decay wd. */                          \
  X(void, adamw, (float *p, const float *g, float *m, float *v, long n, float lr, float beta1, float beta2,           \
                  float eps, float wd, float grad_scale, long t),                                                     \
    (p, g, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, t), )                                                      \
  /* exponential moving average (core/ema.h) in lerp form, ema += w (p - ema) with w = 1 - decay: its                 \
   * fixed point is p exactly, which decay ema + w p with float decay and w (not summing to 1) is not */              \
  X(void, ema_update, (float *ema, const float *p, long n, float w), (ema, p, n, w), )                                \
                                                                                                                      \
  /* Philox draws: row b of out (B, D) is keyed by index = index0 + b (see philox.h) */                               \
  X(void, randn, (float *out, int B, int D, uint64_t seed, uint32_t stream, uint32_t step, uint32_t index0),          \
    (out, B, D, seed, stream, step, index0), )

#define AMD_OPS_FUSED(X)                                                                                              \
  /* rectified flow: xt = (1 - t) x0 + t e, target v = e - x0; per-sample t (B) */                                    \
  X(void, flow_interpolate, (float *xt, float *v, const float *x0, const float *e, const float *t, int B, int D),     \
    (xt, v, x0, e, t, B, D), )                                                                                        \
  /* per-sample mean squared error loss[b] = mean_d (pred - target)^2 and its gradient                                \
   * dpred = scale * weight[b] * 2 (pred - target) / D (weight NULL means 1); loss (B) may be NULL */                 \
  X(void, mse_forward_backward, (float *loss, float *dpred, const float *pred, const float *target,                   \
                                 const float *weight, int B, int D, float scale),                                     \
    (loss, dpred, pred, target, weight, B, D, scale), )                                                               \
  /* the logistic (non-saturating GAN) loss of logits z (B): loss[b] = softplus(sign z_b) and its                     \
   * gradient dz[b] = scale sign sigmoid(sign z_b) (overwrite); sign is +1 or -1; loss may be NULL */                 \
  X(void, softplus_forward_backward, (float *loss, float *dz, const float *z, float sign, float scale, int B),        \
    (loss, dz, z, sign, scale, B), )                                                                                  \
  /* denoised (x0) prediction of a velocity network: d = xt - t v, per-sample t (B) */                                \
  X(void, flow_denoise, (float *d, const float *xt, const float *v, const float *t, int B, int D),                    \
    (d, xt, v, t, B, D), )                                                                                            \
  /* The DMD / AMD generator gradient (docs/DESIGN.md sections 4.3, 4.7), per sample i:                               \
   *   d_cfg = d_u + w (d_c - d_u),  H = beta_i (d_c - d_f) + alpha_i (w - 1)(d_c - d_u)   (beta_fake 0, Eq. 10)      \
   *                                 H = alpha_i (d_cfg - x) - beta_i (d_f - x)            (beta_fake 1)              \
   *   n = mean_d |x - d_cfg|,  loss_i = 0.5 || H / n ||^2,  dx = -scale H / n                                        \
   * stats (B, 6) receives per sample: loss_i, n, ||d_c - x||, ||d_f - x||, ||d_c - d_u||, and the                    \
   * cosine between (d_c - x) and (d_f - x). alpha, beta (B). */                                                      \
  X(void, dmd_grad, (float *dx, float *stats, const float *x, const float *d_c, const float *d_u, const float *d_f,   \
                     const float *alpha, const float *beta, float w, float scale, int beta_fake, int B, int D),       \
    (dx, stats, x, d_c, d_u, d_f, alpha, beta, w, scale, beta_fake, B, D), )                                          \
  /* x += h (B) * v, per-sample step size: one Euler update of a sampler */                                           \
  X(void, euler_update, (float *x, const float *v, const float *h, int B, int D), (x, v, h, B, D), )
