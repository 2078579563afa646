#!/usr/bin/python3
"""dit_reference.py: an independent PyTorch implementation of the `dit` model (src/dit.c), written
from the DiT paper's conventions (Peebles and Xie; facebookresearch/DiT models.py), that writes the
golden fixtures tests/fixtures/dit_golden.h5 (class labels) and tests/fixtures/dit_text_golden.h5
(text mode, issue 20: captions through a text encoder, the pooled caption added to c and a
cross-attention layer in every block, docs/DESIGN.md section 5.2), read by tests/test_dit_golden.c.

    /usr/bin/python3 tests/dit_reference.py      (Debian: python3-torch, python3-h5py)

The fixture holds a small config (attributes), random non-zero parameters named as the C model's
tensors with torch's (out, in) layout, inputs x, t, labels, a target and a feature weight r, and the
reference out, features, loss and gradient of
    loss = 0.5 mean((out - target)^2) + sum(features * r)
with respect to every parameter ("grad/<tensor>") and to x ("grad_x").
Every input is drawn in float32 (what the C model holds) and the reference is then computed in
float64 from exactly those values, so the stored results are exact to float32 rounding and the C
test's tolerance only has to cover the C model's own float32 arithmetic.
Reruns are bit-identical: a fixed torch seed, CPU only, float64.
Text mode: the fixture's labels are token ids (B, max_text), 0 the padding; the batch has a caption
with padding after it, the empty caption and a caption of every position. The text encoder is
written here from its definition (text_encoder.h): token embedding plus 1-D sin-cos positions,
pre-LN blocks of masked self-attention (the cross-attention layer of tests/xattn_reference.py, whose
formula that script checks against torch.nn.MultiheadAttention, with keys and values from LN(x))
and a GELU MLP, a final LayerNorm, and the masked mean over the caption's tokens (0 for the empty
caption).
Not here: any code shared with the C side; training; sampling.
"""
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from xattn_reference import cross_attention

SEED = 20251126
CONFIG = dict(img_channels=1, img_size=8, patch=2, width=32, depth=2, heads=4, temb_dim=16,
              num_classes=3)
BATCH = 3
LABELS = [2, 0, 3]  # 3 = num_classes: the null label of classifier-free guidance
OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "dit_golden.h5")
TEXT_SEED = 20261206
TEXT_CONFIG = dict(CONFIG, text=1, vocab=9, text_width=16, text_depth=2, max_text=6)
TEXT_IDS = [[4, 8, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [3, 2, 7, 7, 5, 6]]
TEXT_OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "dit_text_golden.h5")


def param_shapes(cfg):
    """(name, shape) in the C model's order (dit_create); every Linear weight is (out, in)."""
    C, P = cfg["width"], cfg["patch"] ** 2 * cfg["img_channels"]
    shapes = [("patch.w", (C, P)), ("patch.b", (C,)),
              ("time.fc1.w", (C, cfg["temb_dim"])), ("time.fc1.b", (C,)),
              ("time.fc2.w", (C, C)), ("time.fc2.b", (C,))]
    xattn = lambda prefix, C, E: [(f"{prefix}.{n}", s) for n, s in
                                  [("q.w", (C, C)), ("q.b", (C,)), ("kv.w", (2 * C, E)), ("kv.b", (2 * C,)),
                                   ("proj.zero.w", (C, C)), ("proj.b", (C,))]]
    if cfg.get("text"):  # the text encoder (text_encoder_create), then Linear(pooled)
        E = cfg["text_width"]
        shapes += [("text.emb", (cfg["vocab"], E))]
        for l in range(cfg["text_depth"]):
            shapes += xattn(f"text.block{l}.attn", E, E)
            shapes += [(f"text.block{l}.fc1.w", (4 * E, E)), (f"text.block{l}.fc1.b", (4 * E,)),
                       (f"text.block{l}.fc2.w", (E, 4 * E)), (f"text.block{l}.fc2.b", (E,))]
        shapes += [("cond.text.w", (C, E)), ("cond.text.b", (C,))]
    else:
        shapes += [("class.emb", (cfg["num_classes"] + 1, C))]
    for l in range(cfg["depth"]):
        shapes += [(f"block{l}.ada.zero.w", (6 * C, C)), (f"block{l}.ada.b", (6 * C,)),
                   (f"block{l}.qkv.w", (3 * C, C)), (f"block{l}.qkv.b", (3 * C,)),
                   (f"block{l}.proj.w", (C, C)), (f"block{l}.proj.b", (C,))]
        if cfg.get("text"):
            shapes += xattn(f"block{l}.xattn", C, cfg["text_width"])
        shapes += [(f"block{l}.fc1.w", (4 * C, C)), (f"block{l}.fc1.b", (4 * C,)),
                   (f"block{l}.fc2.w", (C, 4 * C)), (f"block{l}.fc2.b", (C,))]
    shapes += [("final.ada.zero.w", (2 * C, C)), ("final.ada.b", (2 * C,)),
               ("final.out.zero.w", (P, C)), ("final.out.b", (P,))]
    return shapes


def random_params(cfg, gen):
    """Every entry random and non-zero, the adaLN-Zero weights included (at zero the gates would
    hide every block from the test). Linear weights and biases ~ U(-1, 1) / sqrt(fan_in) as torch's
    default init, the class table ~ N(0, 1); a draw that rounds to 0 is moved off it."""
    params, fan_in = {}, 1
    for name, shape in param_shapes(cfg):  # a bias follows its weight, whose fan_in it shares
        if name in ("class.emb", "text.emb"):
            p = torch.randn(shape, generator=gen, dtype=torch.float32)
        else:
            fan_in = shape[1] if len(shape) == 2 else fan_in
            p = (torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1) / math.sqrt(fan_in)
        p[p == 0] = 1e-3
        params[name] = p
    return params


def patchify(x, p):
    """(B, C, H, W) -> (B, T, p*p*C): tokens in row-major patch order, features ordered (py, px, c),
    the inverse of DiT's unpatchify einsum 'nhwpqc->nchpwq'."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(tokens, C, p, H, W):
    """DiT's unpatchify: (B, T, p*p*C) -> (B, C, H, W)."""
    B = tokens.shape[0]
    x = tokens.reshape(B, H // p, W // p, p, p, C)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(B, C, H, W)


def sincos_1d(dim, pos):
    """DiT's get_1d_sincos_pos_embed_from_grid: [sin(pos w), cos(pos w)], w_k = 10000^(-k/(dim/2))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = pos.reshape(-1, 1).double() * omega.reshape(1, -1)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(dim, grid):
    """DiT's get_2d_sincos_pos_embed: tokens row-major over (row, col); the first half of the
    features encodes the column (DiT's grid[0] comes from the w coordinate), the second the row."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols.reshape(-1)), sincos_1d(dim // 2, rows.reshape(-1))], dim=1)


def timestep_embedding(t, dim, max_period=10000.0):
    """DiT's TimestepEmbedder.timestep_embedding: [cos(t f_k), sin(t f_k)], f_k = max_period^(-k/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    args = t.reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def attention(x, w, b, heads):
    """timm Attention as in DiT: qkv (B, T, 3, heads, hs), softmax(q k^T / sqrt(hs)) v, no proj here."""
    B, T, C = x.shape
    hs = C // heads
    qkv = F.linear(x, w, b).reshape(B, T, 3, heads, hs).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, T, hs)
    att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, T, C)


def xattn(P, prefix, heads, x, text, mask):
    """The cross-attention layer of tests/xattn_reference.py with the tensors under prefix."""
    sub = {k[len(prefix) + 1:]: v for k, v in P.items() if k.startswith(prefix + ".")}
    return cross_attention(sub, {"heads": heads}, x, text, mask)


def text_encoder(P, cfg, ids):
    """text (B, L, E), pooled (B, E) and mask (B, L) from token ids (B, L), 0 the padding."""
    E, L = cfg["text_width"], ids.shape[1]
    ln = lambda h: F.layer_norm(h, (E,), eps=1e-6)
    mask = ids != 0
    x = P["text.emb"][ids] + sincos_1d(E, torch.arange(L)).unsqueeze(0)
    for l in range(cfg["text_depth"]):
        w = lambda what: P[f"text.block{l}.{what}"]
        x = x + xattn(P, f"text.block{l}.attn", cfg["heads"], x, ln(x), mask)
        x = x + F.linear(F.gelu(F.linear(ln(x), w("fc1.w"), w("fc1.b")), approximate="tanh"), w("fc2.w"), w("fc2.b"))
    text = ln(x)
    m = mask.to(text.dtype).unsqueeze(-1)
    pooled = (text * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)  # the empty caption: 0
    return text, pooled, mask


def dit_forward(P, cfg, x, t, labels):
    """Returns out (B, C, H, W) and features (B, width), the mean over tokens of the last residual stream.
    labels: class labels (B), or in text mode token ids (B, max_text)."""
    C, p, S, CI = cfg["width"], cfg["patch"], cfg["img_size"], cfg["img_channels"]
    ln = lambda h: F.layer_norm(h, (C,), eps=1e-6)
    h = F.linear(patchify(x, p), P["patch.w"], P["patch.b"]) + sincos_2d(C, S // p).unsqueeze(0)
    temb = timestep_embedding(1000.0 * t, cfg["temb_dim"])
    c = F.linear(F.silu(F.linear(temb, P["time.fc1.w"], P["time.fc1.b"])), P["time.fc2.w"], P["time.fc2.b"])
    if cfg.get("text"):
        text, pooled, mask = text_encoder(P, cfg, labels)
        c = c + F.linear(pooled, P["cond.text.w"], P["cond.text.b"])
    else:
        c = c + P["class.emb"][labels]
    sc = F.silu(c)
    for l in range(cfg["depth"]):
        w = lambda what: P[f"block{l}.{what}"]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = \
            F.linear(sc, w("ada.zero.w"), w("ada.b")).chunk(6, dim=1)
        a = attention(modulate(ln(h), shift_msa, scale_msa), w("qkv.w"), w("qkv.b"), cfg["heads"])
        h = h + gate_msa.unsqueeze(1) * F.linear(a, w("proj.w"), w("proj.b"))
        if cfg.get("text"):
            h = h + xattn(P, f"block{l}.xattn", cfg["heads"], h, text, mask)
        m = F.gelu(F.linear(modulate(ln(h), shift_mlp, scale_mlp), w("fc1.w"), w("fc1.b")), approximate="tanh")
        h = h + gate_mlp.unsqueeze(1) * F.linear(m, w("fc2.w"), w("fc2.b"))
    features = h.mean(dim=1)
    shift, scale = F.linear(sc, P["final.ada.zero.w"], P["final.ada.b"]).chunk(2, dim=1)
    tokens = F.linear(modulate(ln(h), shift, scale), P["final.out.zero.w"], P["final.out.b"])
    return unpatchify(tokens, CI, p, S, S), features


def main():
    write_fixture(SEED, CONFIG, torch.tensor(LABELS, dtype=torch.int64), OUT_PATH)
    write_fixture(TEXT_SEED, TEXT_CONFIG, torch.tensor(TEXT_IDS, dtype=torch.int64), TEXT_OUT_PATH)


def write_fixture(seed, cfg, labels, out_path):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    S, CI, B = cfg["img_size"], cfg["img_channels"], BATCH
    params32 = random_params(cfg, gen)
    x32 = torch.randn((B, CI, S, S), generator=gen, dtype=torch.float32)
    t32 = torch.rand((B,), generator=gen, dtype=torch.float32)
    target32 = torch.randn((B, CI, S, S), generator=gen, dtype=torch.float32)
    # r scaled so the feature term and the output term reach the blocks' gradients in comparable size
    r32 = 0.1 * (torch.rand((B, cfg["width"]), generator=gen, dtype=torch.float32) * 2 - 1)

    P = {k: v.double().requires_grad_(True) for k, v in params32.items()}
    x = x32.double().requires_grad_(True)
    out, features = dit_forward(P, cfg, x, t32.double(), labels)
    loss = 0.5 * ((out - target32.double()) ** 2).mean() + (features * r32.double()).sum()
    loss.backward()

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    f32 = lambda a: a.detach().float().numpy()
    # no timestamps on any object, so a rerun writes the same bytes
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(out_path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    with h5py.File(fid) as f:
        f.attrs["format"] = "amd-test-fixture"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["created_by"] = "tests/dit_reference.py (torch %s)" % torch.__version__
        f.attrs["config"] = " ".join(f"{k}={v}" for k, v in cfg.items())
        for k, v in cfg.items():
            f.attrs[k] = np.int64(v)
        f.attrs["batch"] = np.int64(B)
        f.attrs["num_params"] = np.int64(sum(v.numel() for v in params32.values()))
        f.attrs["num_tensors"] = np.int64(len(params32))
        for name, p in params32.items():
            f.create_dataset(name, data=p.numpy(), track_times=False)
        f.create_dataset("x", data=x32.numpy(), track_times=False)
        f.create_dataset("t", data=t32.numpy(), track_times=False)
        f.create_dataset("labels", data=labels.int().numpy(), track_times=False)
        f.create_dataset("target", data=target32.numpy(), track_times=False)
        f.create_dataset("r", data=r32.numpy(), track_times=False)
        f.create_dataset("out", data=f32(out), track_times=False)
        f.create_dataset("features", data=f32(features), track_times=False)
        f.create_dataset("loss", data=np.float64(loss.item()), track_times=False)
        f.create_dataset("grad_x", data=f32(x.grad), track_times=False)
        g = h5py.Group(h5py.h5g.create(f.id, b"grad", gcpl=gcpl))
        for name, p in P.items():
            g.create_dataset(name, data=f32(p.grad), track_times=False)
    print("wrote %s (%d bytes): loss %.9g, |out| max %.3g, |features| max %.3g"
          % (out_path, os.path.getsize(out_path), loss.item(), out.abs().max().item(), features.abs().max().item()))


if __name__ == "__main__":
    main()
