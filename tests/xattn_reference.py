#!/usr/bin/python3
"""xattn_reference.py: an independent PyTorch implementation of the cross-attention layer
(src/cross_attention.h: the text conditioning a DiT block will read), written from its definition,
that writes the golden fixture tests/fixtures/xattn_golden.h5 read by tests/test_xattn_golden.c.

    /usr/bin/python3 tests/xattn_reference.py      (Debian: python3-torch, python3-h5py)

    out = proj(attention(q = Linear(LN(x)), [k v] = Linear(text), key padding mask))

The batch has a full caption, one padded inside and at the end, one padded at the end, and the empty
caption (every token padding), whose attention output is defined as 0 (so its out is proj's bias):
torch's softmax over no key gives NaN there. Before writing, the script checks its formula against
torch.nn.MultiheadAttention with key_padding_mask on the samples that have a key (outputs and every
gradient), so the fixture rests on torch's own attention as well as on the formula below.
The fixture holds the config (attributes), random non-zero parameters named as the C layer's tensors
(prefix "xattn", torch's (out, in) layout; the zero-init output projection is random here too), the
inputs x, text, mask and a weight r, and the reference out and the gradients of loss = sum(out r)
with respect to every parameter ("grad/<tensor>"), x ("grad_x") and text ("grad_text").
Inputs are drawn in float32 (what the C layer holds) and the reference computed in float64 from
exactly those values. Reruns are bit-identical: a fixed seed, CPU only, float64.
Not here: any code shared with the C side; the DiT (tests/dit_reference.py).
"""
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261205
CONFIG = dict(width=16, heads=4, text_dim=12, tokens=6, text_len=5)
BATCH = 4
# 1: a caption token, 0: padding; sample 3 is the empty caption
MASK = [[1, 1, 1, 1, 1], [1, 0, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
PREFIX = "xattn"
OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "xattn_golden.h5")


def param_shapes(cfg):
    """(name, shape) in the C layer's order (cross_attention_create); Linear weights are (out, in)."""
    C, E = cfg["width"], cfg["text_dim"]
    return [("q.w", (C, C)), ("q.b", (C,)), ("kv.w", (2 * C, E)), ("kv.b", (2 * C,)),
            ("proj.zero.w", (C, C)), ("proj.b", (C,))]


def random_params(cfg, gen):
    """U(-1, 1) / sqrt(fan_in) as torch's Linear init, biases included, every entry non-zero."""
    params, fan_in = {}, 1
    for name, shape in param_shapes(cfg):  # a bias follows its weight, whose fan_in it shares
        fan_in = shape[1] if len(shape) == 2 else fan_in
        p = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) / math.sqrt(fan_in)
        p[p == 0] = 1e-3
        params[name] = p
    return params


def cross_attention(P, cfg, x, text, mask):
    """The layer as written from its definition. mask (B, M) bool, True for a caption token. Rows
    of a sample without a key get probability 0: their scores are left unmasked (finite) and the
    probabilities then multiplied by 0, so no NaN reaches the forward or the backward."""
    B, N, C = x.shape
    M, H = text.shape[1], cfg["heads"]
    hs = C // H
    q = F.linear(F.layer_norm(x, (C,), eps=1e-6), P["q.w"], P["q.b"])
    k, v = F.linear(text, P["kv.w"], P["kv.b"]).chunk(2, dim=-1)
    q = q.reshape(B, N, H, hs).transpose(1, 2)  # (B, H, N, hs)
    k = k.reshape(B, M, H, hs).transpose(1, 2)  # (B, H, M, hs)
    v = v.reshape(B, M, H, hs).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
    has_key = mask.any(dim=1)  # (B)
    keep = mask | ~has_key.unsqueeze(1)  # the empty caption's rows: nothing masked, then zeroed
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    prob = torch.softmax(scores, dim=-1) * has_key[:, None, None, None].to(scores.dtype)
    att = (prob @ v).transpose(1, 2).reshape(B, N, C)
    return F.linear(att, P["proj.zero.w"], P["proj.b"])


def torch_mha(P, cfg, x, text, mask):
    """The same through torch.nn.MultiheadAttention (separate q, k, v weights, kdim = vdim = E)."""
    C, E, H = cfg["width"], cfg["text_dim"], cfg["heads"]
    mha = torch.nn.MultiheadAttention(C, H, kdim=E, vdim=E, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.q_proj_weight.copy_(P["q.w"])
        mha.k_proj_weight.copy_(P["kv.w"][:C])
        mha.v_proj_weight.copy_(P["kv.w"][C:])
        mha.in_proj_bias.copy_(torch.cat([P["q.b"], P["kv.b"]]))
        mha.out_proj.weight.copy_(P["proj.zero.w"])
        mha.out_proj.bias.copy_(P["proj.b"])
    out, _ = mha(F.layer_norm(x, (C,), eps=1e-6), text, text, key_padding_mask=~mask, need_weights=False)
    grads = lambda: {"q.w": mha.q_proj_weight.grad, "kv.w": torch.cat([mha.k_proj_weight.grad, mha.v_proj_weight.grad]),
                     "q.b": mha.in_proj_bias.grad[:C], "kv.b": mha.in_proj_bias.grad[C:],
                     "proj.zero.w": mha.out_proj.weight.grad, "proj.b": mha.out_proj.bias.grad}
    return out, grads


def check_against_mha(params32, cfg, x32, text32, r32, mask):
    """Outputs and gradients of the formula against nn.MultiheadAttention on the samples with a key."""
    sel = mask.any(dim=1)
    x, text, r, m = x32[sel].double(), text32[sel].double(), r32[sel].double(), mask[sel]
    P = {k: v.double().requires_grad_(True) for k, v in params32.items()}
    xa, ta = x.clone().requires_grad_(True), text.clone().requires_grad_(True)
    out_a = cross_attention(P, cfg, xa, ta, m)
    (out_a * r).sum().backward()
    Q = {k: v.double() for k, v in params32.items()}
    xb, tb = x.clone().requires_grad_(True), text.clone().requires_grad_(True)
    out_b, grads = torch_mha(Q, cfg, xb, tb, m)
    (out_b * r).sum().backward()
    worst = max((out_a - out_b).abs().max().item(), (xa.grad - xb.grad).abs().max().item(),
                (ta.grad - tb.grad).abs().max().item(),
                max((P[k].grad - g).abs().max().item() for k, g in grads().items()))
    assert worst < 1e-12, "the formula and nn.MultiheadAttention differ by %g" % worst
    return worst


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    cfg = CONFIG
    B, N, M, C, E = BATCH, cfg["tokens"], cfg["text_len"], cfg["width"], cfg["text_dim"]
    params32 = random_params(cfg, gen)
    x32 = torch.randn((B, N, C), generator=gen, dtype=torch.float32)
    text32 = torch.randn((B, M, E), generator=gen, dtype=torch.float32)
    r32 = torch.rand((B, N, C), generator=gen, dtype=torch.float32) * 2 - 1
    mask = torch.tensor(MASK, dtype=torch.bool)
    agree = check_against_mha(params32, cfg, x32, text32, r32, mask)

    P = {k: v.double().requires_grad_(True) for k, v in params32.items()}
    x, text = x32.double().requires_grad_(True), text32.double().requires_grad_(True)
    out = cross_attention(P, cfg, x, text, mask)
    loss = (out * r32.double()).sum()
    loss.backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(p.grad).all() for p in P.values())

    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    f32 = lambda a: a.detach().float().numpy()
    # no timestamps on any object, so a rerun writes the same bytes
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(OUT_PATH.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    with h5py.File(fid) as f:
        f.attrs["format"] = "amd-test-fixture"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["created_by"] = "tests/xattn_reference.py (torch %s)" % torch.__version__
        f.attrs["config"] = " ".join(f"{k}={v}" for k, v in cfg.items())
        for k, v in cfg.items():
            f.attrs[k] = np.int64(v)
        f.attrs["batch"] = np.int64(B)
        f.attrs["prefix"] = PREFIX
        for name, p in params32.items():
            f.create_dataset(f"{PREFIX}.{name}", data=p.numpy(), track_times=False)
        f.create_dataset("x", data=x32.numpy(), track_times=False)
        f.create_dataset("text", data=text32.numpy(), track_times=False)
        f.create_dataset("mask", data=mask.float().numpy(), track_times=False)
        f.create_dataset("r", data=r32.numpy(), track_times=False)
        f.create_dataset("out", data=f32(out), track_times=False)
        f.create_dataset("loss", data=np.float64(loss.item()), track_times=False)
        f.create_dataset("grad_x", data=f32(x.grad), track_times=False)
        f.create_dataset("grad_text", data=f32(text.grad), track_times=False)
        g = h5py.Group(h5py.h5g.create(f.id, b"grad", gcpl=gcpl))
        for name, p in P.items():
            g.create_dataset(f"{PREFIX}.{name}", data=f32(p.grad), track_times=False)
    print("wrote %s (%d bytes): loss %.9g, |out| max %.3g; nn.MultiheadAttention agrees within %.2g"
          % (OUT_PATH, os.path.getsize(OUT_PATH), loss.item(), out.abs().max().item(), agree))


if __name__ == "__main__":
    main()
