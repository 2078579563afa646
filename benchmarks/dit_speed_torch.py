"""dit_speed_torch.py: the PyTorch counterpart of dit_speed.c. The same DiT (Peebles and Xie),
written here from the paper's conventions rather than translated from dit.c: patchify by a
stride-p convolution, fixed 2-D sin-cos positions, timestep MLP on 256 sinusoidal features of
1000 t, class table with a null row, adaLN-Zero blocks (LayerNorm without affine, eps 1e-6),
multi-head attention, GELU(tanh) MLP of ratio 4, final adaLN + linear, unpatchify. One training
step = zero grads, rectified-flow loss (x_t = (1 - t) x0 + t e, target e - x0, t logit-normal,
10% label dropout), backward, gradient-norm clip 1.0, AdamW, in float32 on the CPU (or device=cuda:
the GPU, TF32 off as in amd's default; each step timed to torch.cuda.synchronize). The last line is
`RESULT key=value ...` in dit_speed.c's format.
  python3 dit_speed_torch.py [img=28 channels=1 patch=4 width=256 depth=6 heads=4 temb=256
                              classes=10 batch=64 warmup=2 steps=10 threads=CORES device=cpu
                              precision=fp32 compile=0]
On CUDA, precision=tf32 allows TF32 matmuls; precision=bf16 runs the forward and the loss under
torch.autocast(bfloat16) on either device (bf16 GEMMs, fp32 weights, optimizer and reductions:
what a GPU user runs, and on a CPU with AMX-BF16 oneDNN's bf16 matmuls), amd's precision=bf16 peer; compile=1 runs the model through torch.compile (PyTorch 2;
its compilation happens in the warm-up steps).
Not here: EMA."""
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos_2d(grid, dim):
    """DiT's get_2d_sincos_pos_embed: first half encodes the column, second the row."""
    q = dim // 4
    w = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    coords = torch.arange(grid, dtype=torch.float64)
    row, col = torch.meshgrid(coords, coords, indexing="ij")

    def enc(pos):
        a = pos.reshape(-1, 1) * w.reshape(1, -1)
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    return torch.cat([enc(col), enc(row)], dim=1).float()  # (T, dim)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    def __init__(self, width, freq_dim):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = 1000.0 * t[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.heads
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, hs).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        y = att.softmax(dim=-1) @ v  # (B, NH, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class DiTBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    def __init__(self, img, channels, patch, width, depth, heads, temb, classes):
        super().__init__()
        self.patch, self.channels, self.grid = patch, channels, img // patch
        self.x_embedder = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.register_buffer("pos_embed", sincos_2d(self.grid, width).unsqueeze(0))
        self.t_embedder = TimestepEmbedder(width, temb)
        self.y_embedder = nn.Embedding(classes + 1, width)  # row `classes` is the null class
        self.blocks = nn.ModuleList([DiTBlock(width, heads) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.final_linear = nn.Linear(width, patch * patch * channels)
        for m in [self.final_modulation[1], self.final_linear] + [b.adaLN_modulation[1] for b in self.blocks]:
            nn.init.zeros_(m.weight)  # adaLN-Zero
            nn.init.zeros_(m.bias)

    def forward(self, x, t, y, features=False):
        """v (B, channels, img, img); with features=True also the token mean of the last residual
        stream, (B, width): what a GAN head reads (benchmarks/distill_torch.py)."""
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, T, C)
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c).chunk(2, dim=1)
        out = self.final_linear(modulate(self.norm_final(h), shift, scale))  # (B, T, p p C)
        B, g, p, C = x.shape[0], self.grid, self.patch, self.channels
        out = out.reshape(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, g * p, g * p)
        return (out, h.mean(dim=1)) if features else out


def main():
    args = dict(img=28, channels=1, patch=4, width=256, depth=6, heads=4, temb=256, classes=10, batch=64, warmup=2,
                steps=10, threads=os.cpu_count(), device="cpu", precision="fp32", compile=0)
    for a in sys.argv[1:]:
        key, _, value = a.partition("=")
        if key not in args:
            sys.exit(f"dit_speed_torch.py: unknown argument '{a}'")
        args[key] = value if key in ("device", "precision") else int(value)
    a = type("Args", (), args)
    if a.device not in ("cpu", "cuda"):
        sys.exit(f"dit_speed_torch.py: device={a.device}: expected cpu or cuda")
    if a.precision not in ("fp32", "tf32", "bf16"):
        sys.exit(f"dit_speed_torch.py: precision={a.precision}: expected fp32, tf32 or bf16")
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("dit_speed_torch.py: device=cuda but torch sees no CUDA device (a CPU-only torch build?)")
    if a.compile and not hasattr(torch, "compile"):
        sys.exit(f"dit_speed_torch.py: compile=1 needs PyTorch 2 (torch.compile); this is torch {torch.__version__}")
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.device == "cuda":  # float32 GEMMs, as amd runs them, unless precision=tf32
        torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    # bf16 autocast on the device the model runs on (the CPU's: oneDNN bf16 matmuls)
    autocast = lambda: torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    load = os.getloadavg()
    print(f"dit_speed_torch: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    model = DiT(a.img, a.channels, a.patch, a.width, a.depth, a.heads, a.temb, a.classes).to(dev)
    num_params = sum(p.numel() for p in model.parameters())
    print(f"model dit: img {a.img}x{a.img}x{a.channels}, patch {a.patch}, width {a.width}, depth {a.depth}, "
          f"heads {a.heads}, temb {a.temb}, classes {a.classes}, batch {a.batch}\nnum_params {num_params}")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    net = torch.compile(model) if a.compile else model
    x0 = (torch.rand(a.batch, a.channels, a.img, a.img) * 2 - 1).to(dev)
    labels = (torch.arange(a.batch) % a.classes).to(dev)

    def train_step():
        opt.zero_grad()
        t = torch.sigmoid(torch.randn(a.batch, device=dev))
        e = torch.randn_like(x0)
        xt = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * e
        y = torch.where(torch.rand(a.batch, device=dev) < 0.1, torch.full_like(labels, a.classes), labels)
        with autocast():
            loss = F.mse_loss(net(xt, t, y).float(), e - x0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()

    for _ in range(a.warmup):
        train_step()
    ms, cpu0 = [], time.process_time()
    for _ in range(a.steps):
        t0 = time.perf_counter()
        train_step()
        ms.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / len(ms)  # as in dit_speed.c
    busy = cpu_ms / (sum(ms) / len(ms) * torch.get_num_threads())
    ms.sort()
    n = len(ms)
    med = ms[n // 2] if n % 2 else 0.5 * (ms[n // 2 - 1] + ms[n // 2])
    load = os.getloadavg()
    print(f"training step (zero grads, flow loss forward + backward, grad-norm clip, AdamW), {a.steps} timed after "
          f"{a.warmup} warmup:\n  ms/step median {med:.1f}, min {ms[0]:.1f}, mean {sum(ms) / n:.1f}; "
          f"{a.batch / (med * 1e-3):.1f} images/s\n  CPU time {cpu_ms:.1f} ms/step\n"
          f"  load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; CPU busy {busy:.2f} of {torch.get_num_threads()} threads")
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else 0.0
    print(f"RESULT impl=torch device={a.device} precision={a.precision} compile={a.compile} "
          f"threads={torch.get_num_threads()} batch={a.batch} params={num_params} ms_step={med:.2f} "
          f"ms_step_min={ms[0]:.2f} images_s={a.batch / (med * 1e-3):.2f} load1={load[0]:.2f} cpu_ms_step={cpu_ms:.2f} "
          f"cpu_busy={busy:.3f} peak_device_mb={peak_mb:.1f}", flush=True)


if __name__ == "__main__":
    main()
