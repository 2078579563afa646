"""distill_torch.py: the PyTorch peer of amd's distillation step (docs/DESIGN.md section 4.9) for
dmd2 and amd, written as a user of the DMD2 or FastGen code would write it (not translated from
distill.c, not copied from either): on the DiT of dit_speed_torch.py, a student, a fake teacher and
a frozen real teacher, a linear GAN head on the fake teacher's pooled features, amd's reward
classifier (log p(c | x), docs/DESIGN.md section 5.3), separate AdamW optimizers (student; fake
teacher and head at the fake learning rate), gradient-norm clipping per network. One step =
fake_per_gen fake updates (flow matching on detached student samples weighted by W_i, plus the
discriminator on noised real and generated samples), then one generator update (the DMD gradient
with the guided real score as the stop-gradient loss 0.5 ||x - sg(x + H / n)||^2, the GAN term
through the frozen fake teacher and head, amd's advantage-weighted H_i and W_i of section 4.7).
Only S = 1 students are timed; --check replays any S (the dump gives the last step's input).

  python3 distill_torch.py --time TEACHER_CKPT [REWARD_CKPT] [method=amd prompts=16 K=4 fake_per_gen=2
        guidance=2 steps=10 warmup=2 threads=CORES seed=0 device=cpu precision=fp32 compile=0]
      times steps (after warmup ones) from the teacher's weights, inputs drawn by torch; prints
      `RESULT impl=torch ...` with ms per generator update (its fake updates included), images/s
      (the global batch P K per step) and the peak resident memory (and on CUDA the peak device
      memory). device=cuda runs it on the GPU, each step timed to torch.cuda.synchronize;
      precision=tf32 allows TF32 matmuls, precision=bf16 runs every network's forward and the
      losses under torch.autocast(bfloat16) (fp32 weights, optimizers and gradient norms, as amd's
      precision=bf16); compile=1 runs the five networks through torch.compile (PyTorch 2).
  python3 distill_torch.py --check DUMP CKPT [NEXT_CKPT]
      DUMP: the file `amd distill fault.dump_step=N fault.dump=DUMP` wrote (io/stepdump.h); CKPT:
      that run's checkpoint of step N (its state before step N); NEXT_CKPT (default: the run's
      checkpoint N + 1 beside CKPT, when present). Loads every network and the Adam moments, replays
      step N on the dumped inputs and compares each update's per-sample losses, samples, rewards,
      advantages, weights and gradient norms with amd's, then the weights after the step with
      NEXT_CKPT. Prints a line per quantity and exits 1 when one is beyond its tolerance.
Not here: dmd's regression, dmdr's reward gradient, several ranks; --check in anything but fp32 on
the CPU."""
import copy
import math
import os
import re
import resource
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_speed_torch import DiT, DiTBlock, sincos_2d  # noqa: E402  the one PyTorch DiT of benchmarks/


class RewardClassifier(nn.Module):
    """R(x, c) = log p(c | x): DiT blocks conditioned on one learned vector, logits from the token
    mean of the final LayerNorm (docs/DESIGN.md section 5.3)."""

    def __init__(self, img, channels, patch, width, depth, heads, classes):
        super().__init__()
        self.x_embedder = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.register_buffer("pos_embed", sincos_2d(img // patch, width).unsqueeze(0))
        self.cond = nn.Parameter(torch.zeros(1, width))
        self.blocks = nn.ModuleList([DiTBlock(width, heads) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        c = self.cond.expand(x.shape[0], -1)
        for block in self.blocks:
            h = block(h, c)
        return self.head(self.norm_final(h).mean(dim=1))

    def log_prob(self, x, labels):
        return F.log_softmax(self.forward(x), dim=1).gather(1, labels[:, None])[:, 0]


# --- amd checkpoints (docs/DESIGN.md section 6.3) into these modules ------------------------------

def torch_name(c_name):
    """The module parameter of a tensor of amd's dit, classifier or head layout."""
    name = c_name.replace(".zero.", ".")
    fixed = {"class.emb": "y_embedder.weight", "cond.emb": "cond", "head.w": "head.weight", "head.b": "head.bias"}
    if name in fixed:
        return fixed[name]
    prefix, kind = name.rsplit(".", 1)
    kind = {"w": "weight", "b": "bias"}[kind]
    m = re.fullmatch(r"block(\d+)\.(ada|qkv|proj|fc1|fc2)", prefix)
    if m:
        inner = {"ada": "adaLN_modulation.1", "qkv": "attn.qkv", "proj": "attn.proj", "fc1": "mlp.0",
                 "fc2": "mlp.2"}[m.group(2)]
        return f"blocks.{m.group(1)}.{inner}.{kind}"
    return {"patch": "x_embedder", "time.fc1": "t_embedder.mlp.0", "time.fc2": "t_embedder.mlp.2",
            "final.ada": "final_modulation.1", "final.out": "final_linear"}[prefix] + "." + kind


def arch(f, net):
    a = f[net].attrs
    return {k: int(a[k]) for k in ("width", "depth", "heads", "patch", "img_size", "img_channels", "temb_dim",
                                   "num_classes", "dim")}


def build(f, net, kind):
    """A module of the architecture of net `net` in checkpoint f: 'dit', 'classifier' or 'head'."""
    a = arch(f, net)
    if kind == "dit":
        return DiT(a["img_size"], a["img_channels"], a["patch"], a["width"], a["depth"], a["heads"], a["temb_dim"],
                   a["num_classes"])
    if kind == "classifier":
        return RewardClassifier(a["img_size"], a["img_channels"], a["patch"], a["width"], a["depth"], a["heads"],
                                a["num_classes"])
    return nn.Linear(a["dim"], 1)


def tensors(f, net, vector="params", module=None):
    """{parameter name: tensor in the module's shape} of /net/<vector> laid out by /net/layout; for a
    GAN head (module an nn.Linear) the names are the Linear's own (weight, bias)."""
    flat = f[net][vector][:]
    out = {}
    for row in f[net]["layout"][:]:
        name = row["name"].decode() if isinstance(row["name"], bytes) else str(row["name"])
        shape = tuple(int(s) for s in row["shape"][:int(row["ndim"])])
        v = torch.from_numpy(flat[int(row["offset"]):int(row["offset"]) + int(np.prod(shape))].reshape(shape).copy())
        if name == "patch.w":  # (C, p p c) with features (py, px, c): the convolution's (C, c, p, p)
            ch, p = int(f[net].attrs["img_channels"]), int(f[net].attrs["patch"])
            v = v.reshape(shape[0], p, p, ch).permute(0, 3, 1, 2).contiguous()
        key = torch_name(name)
        out[key.split(".", 1)[1] if isinstance(module, nn.Linear) else key] = v.float()
    return out


def load(module, f, net, where):
    state = tensors(f, net, module=module)
    expected = set(module.state_dict()) - {k for k, _ in module.named_buffers()}
    if expected != set(state):
        sys.exit(f"distill_torch.py: {where}:/{net} does not match the module: missing "
                 f"{sorted(expected - set(state))[:5]}, unknown {sorted(set(state) - expected)[:5]}")
    module.load_state_dict(state, strict=False)
    return module


def load_moments(opt, module, f, net, updates_done):
    """AdamW's state of module's parameters from /net/adam_m and /net/adam_v."""
    m, v = tensors(f, net, "adam_m", module), tensors(f, net, "adam_v", module)
    for name, p in module.named_parameters():
        opt.state[p] = {"step": torch.tensor(float(updates_done)), "exp_avg": m[name], "exp_avg_sq": v[name]}


def pick_net(f, net):
    """net's EMA when the checkpoint has one, as amd distill's teacher.weights=auto."""
    return net + "_ema" if net + "_ema" in f else net


# --- the step ------------------------------------------------------------------------------------

class Settings:
    """The distillation settings, from amd's config text (check) or key=value arguments (time)."""

    def __init__(self, text=""):
        kv = {}
        for line in text.splitlines():
            if "=" in line:
                k, _, val = line.partition("=")
                kv[k.strip()] = val.strip()
        g = lambda k, d: type(d)(kv.get(k, d))
        self.method = g("method", "amd")
        self.prompts, self.K = g("train.prompts", 16), g("amd.K", 4)
        self.fake_per_gen = g("fake_per_gen", 2) or (1 if self.method == "dmd" else 5)
        self.w, self.t_min, self.t_max = g("guidance", 2.0), g("dmd.t_min", 0.02), g("dmd.t_max", 0.98)
        self.lambda_gan, self.disc_weight = g("gan.lambda", 1e-3), g("gan.disc_weight", 1e-2)
        self.s, self.lambda_rls, self.eps = g("amd.s", 0.5), g("amd.lambda_rls", 1.0), g("amd.eps", 1e-6)
        self.beta_on, self.rls_norm = g("amd.beta_on", "dm"), g("amd.rls_norm", "raw")
        self.spread_floor = g("amd.spread_floor", 0.0)
        self.lr_student, self.lr_fake = g("optim.lr_student", 1e-4), g("optim.lr_fake", 2e-4)
        self.warmup, self.schedule = g("optim.warmup", 0), g("optim.schedule", "constant")
        self.lr_min_ratio, self.steps = g("optim.lr_min_ratio", 0.1), g("train.steps", 400)
        self.beta1, self.beta2, self.adam_eps = g("optim.beta1", 0.9), g("optim.beta2", 0.999), g("optim.eps", 1e-8)
        self.weight_decay, self.grad_clip = g("optim.weight_decay", 0.0), g("optim.grad_clip", 1.0)
        if self.method not in ("dmd2", "amd") or self.lambda_gan <= 0:
            sys.exit(f"distill_torch.py: method={self.method}, gan.lambda={self.lambda_gan}: the peer has dmd2 and amd "
                     "with their GAN term")
        self.GB = self.prompts * self.K

    def lr(self, base, step, warmup, total):
        """docs/DESIGN.md section 2.5: linear warmup, then constant or cosine to lr_min_ratio x base."""
        if step < warmup:
            return base * (step + 1) / warmup
        if self.schedule != "cosine":
            return base
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        lo = base * self.lr_min_ratio
        return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * p))


def advantages(r, K, eps, std_floor=0.0):
    """Group-relative advantage (section 4.7): clip((r - mean_g) / (max(std_g, floor) + eps), -1, 1)."""
    g = r.reshape(-1, K)
    sd = g.std(dim=1, unbiased=False, keepdim=True).clamp(min=std_floor)
    return ((g - g.mean(dim=1, keepdim=True)) / (sd + eps)).clamp(-1, 1).reshape(-1)


class Peer:
    """The networks, their optimizers and the two kinds of update; each update takes its draws as a
    dict (torch's own in --time, amd's dumped ones in --check) and returns what --check compares."""

    def __init__(self, cfg, real, fake, student, disc, reward):
        self.c, self.real, self.fake, self.student, self.disc, self.reward = cfg, real, fake, student, disc, reward
        for p in real.parameters():
            p.requires_grad_(False)
        if reward is not None:
            for p in reward.parameters():
                p.requires_grad_(False)
        adamw = lambda params, lr: torch.optim.AdamW(params, lr=lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                                                     weight_decay=cfg.weight_decay)
        self.opt_student = adamw(student.parameters(), cfg.lr_student)
        self.opt_fake = adamw(fake.parameters(), cfg.lr_fake)
        self.opt_disc = adamw(disc.parameters(), cfg.lr_fake)
        self.null = real.y_embedder.num_embeddings - 1
        self.override = None  # check: amd's rewards of the update, so both sides share the advantages

    def images(self, x):
        return x.reshape(x.shape[0], self.real.channels, self.real.grid * self.real.patch, -1)

    def generate(self, xt, t, labels):
        """The student's step at t: x0 = x_t - t v(x_t, t, c) (section 4.2)."""
        return xt - t.view(-1, 1, 1, 1) * self.student(xt, t, labels)

    def weights(self, x, labels):
        """rewards, advantages, alpha, beta and W of amd (section 4.7); dmd2: none, 1, 1, 1."""
        B = x.shape[0]
        one = torch.ones(B, device=x.device)
        if self.c.method != "amd":
            return None, None, one, one, one
        with torch.no_grad():
            r = self.reward.log_prob(x, labels).double()
        rr = self.override if self.override is not None else r
        floor = self.c.spread_floor * rr.std(unbiased=False).item() if self.c.spread_floor > 0 else 0.0
        A = advantages(rr, self.c.K, self.c.eps, floor)
        W = torch.exp(-self.c.lambda_rls * A)
        if self.c.rls_norm == "mean1":
            W = W / W.reshape(-1, self.c.K).mean(dim=1).repeat_interleave(self.c.K)
        return r, A, (1 + self.c.s * A).float(), (1 - self.c.s * A).float(), W.float()

    def optimize(self, opt, module, lr):
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(), self.c.grad_clip) if self.c.grad_clip > 0 else \
            torch.norm(torch.stack([p.grad.norm() for p in module.parameters()]))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        return float(norm)

    def fake_update(self, u, inp):
        """One fake-teacher update u on the inputs inp (section 4.6 and the discriminator of 4.5)."""
        c, out = self.c, {}
        labels, bc = inp["labels"], lambda t: t.view(-1, 1, 1, 1)
        with torch.no_grad():
            x = self.generate(inp["gen_xt"], inp["gen_t"], labels)
        out["x"] = x
        out["reward"], out["advantage"], _, _, W = self.weights(x, labels)
        out["fake_weight"] = W
        t, e = inp["flow_t"], inp["flow_noise"]
        per = ((self.fake((1 - bc(t)) * x + bc(t) * e, t, labels) - (e - x)) ** 2).mean(dim=(1, 2, 3))
        loss = (W * per).sum() / c.GB
        out["loss_flow"] = per.detach()
        t, e, xr = inp["disc_real_t"], inp["disc_real_noise"], inp["disc_real_x"]
        _, feat = self.fake((1 - bc(t)) * xr + bc(t) * e, t, inp["disc_real_labels"], features=True)
        real = F.softplus(-self.disc(feat)[:, 0])
        t, e = inp["disc_gen_t"], inp["disc_gen_noise"]
        _, feat = self.fake((1 - bc(t)) * x + bc(t) * e, t, labels, features=True)
        gen = F.softplus(self.disc(feat)[:, 0])
        loss = loss + c.disc_weight * (real.sum() + gen.sum()) / c.GB
        out["loss_disc_real"], out["loss_disc_gen"] = real.detach(), gen.detach()
        self.opt_fake.zero_grad(set_to_none=False)
        self.opt_disc.zero_grad(set_to_none=False)
        loss.backward()
        lr = c.lr(c.lr_fake, u, c.warmup * c.fake_per_gen, c.steps * c.fake_per_gen)
        out["grad_norm"] = self.optimize(self.opt_fake, self.fake, lr)
        out["grad_norm_disc"] = self.optimize(self.opt_disc, self.disc, lr)
        return out

    def generator_update(self, step, inp):
        """The generator update (section 4.9, item 2): DMD gradient with the guided real score, GAN term."""
        c, out = self.c, {}
        labels, bc = inp["labels"], lambda t: t.view(-1, 1, 1, 1)
        x = self.generate(inp["gen_xt"], inp["gen_t"], labels)
        out["x"] = x.detach()
        out["reward"], out["advantage"], alpha, beta, out["fake_weight"] = self.weights(x.detach(), labels)
        out["alpha"], out["beta"] = alpha, beta
        t, e = inp["dmd_t"], inp["dmd_noise"]
        xt = (1 - bc(t)) * x + bc(t) * e  # the GAN term's gradient reaches x through it
        xd = xt.detach()
        with torch.no_grad():
            null = torch.full_like(labels, self.null)
            v = self.real(torch.cat([xd, xd]), torch.cat([t, t]), torch.cat([labels, null]))
            d_c, d_u = (torch.cat([xd, xd]) - bc(torch.cat([t, t])) * v).chunk(2)
        for p in list(self.fake.parameters()) + list(self.disc.parameters()):
            p.requires_grad_(False)  # frozen in this backward: only the input gradient
        v_f, feat = self.fake(xt, t, labels, features=True)
        d_f = xd - bc(t) * v_f.detach()
        xs = x.detach()
        d_cfg = d_u + c.w * (d_c - d_u)
        n = (xs - d_cfg).abs().mean(dim=(1, 2, 3)) + 1e-12
        if c.method == "amd" and c.beta_on == "fake":
            H = bc(alpha) * (d_cfg - xs) - bc(beta) * (d_f - xs)
        else:
            H = bc(beta) * (d_c - d_f) + bc(alpha) * (c.w - 1) * (d_c - d_u)
        g = H / bc(n)
        out["loss_dm"], out["norm"] = 0.5 * (g ** 2).sum(dim=(1, 2, 3)), n
        loss = 0.5 * ((x - (x + g).detach()) ** 2).sum() / c.GB  # d loss / dx = -g / GB
        gan = F.softplus(-self.disc(feat)[:, 0])
        loss = loss + c.lambda_gan * gan.sum() / c.GB
        out["loss_gan"] = gan.detach()
        self.opt_student.zero_grad(set_to_none=False)
        loss.backward()
        for p in list(self.fake.parameters()) + list(self.disc.parameters()):
            p.requires_grad_(True)
        out["grad_norm"] = self.optimize(self.opt_student, self.student, c.lr(c.lr_student, step, c.warmup, c.steps))
        return out


def networks(teacher_path, teacher_net, reward_path, cfg):
    """The real teacher, the student and fake teacher (copies of it), a fresh GAN head, the reward."""
    with h5py.File(teacher_path, "r") as f:
        real = load(build(f, teacher_net, "dit"), f, teacher_net, teacher_path)
        width = arch(f, teacher_net)["width"]
    reward = None
    if cfg.method == "amd":
        if not reward_path:
            sys.exit("distill_torch.py: method=amd needs the reward classifier's checkpoint")
        with h5py.File(reward_path, "r") as f:
            reward = load(build(f, "classifier", "classifier"), f, "classifier", reward_path)
    student, fake = copy.deepcopy(real), copy.deepcopy(real)
    for p in list(student.parameters()) + list(fake.parameters()):
        p.requires_grad_(True)
    return real, fake, student, nn.Linear(width, 1), reward


# --- check: replay a dumped step ------------------------------------------------------------------

def check(dump_path, ckpt_path, next_path=None):
    dump = h5py.File(dump_path, "r")
    text = dump.attrs["config"]
    cfg = Settings(text.decode() if isinstance(text, bytes) else text)
    step = int(dump.attrs["step"])
    s = lambda k: (lambda v: v.decode() if isinstance(v, bytes) else str(v))(dump.attrs[k])
    real, fake, student, disc, reward = networks(s("teacher"), s("teacher_net"), s("reward"), cfg)
    ck = h5py.File(ckpt_path, "r")
    if int(ck.attrs["step"]) != step:
        sys.exit(f"distill_torch.py: {ckpt_path} holds step {int(ck.attrs['step'])}, the dump step {step}")
    load(student, ck, "student", ckpt_path)
    load(fake, ck, "fake", ckpt_path)
    load(disc, ck, "disc", ckpt_path)
    peer = Peer(cfg, real, fake, student, disc, reward)
    fake_done = int(ck["counters"][0])
    load_moments(peer.opt_student, student, ck, "student", step)
    load_moments(peer.opt_fake, fake, ck, "fake", fake_done)
    load_moments(peer.opt_disc, disc, ck, "disc", fake_done)
    failures = []

    def compare(what, ours, theirs, tol, scale=None):
        """max |ours - theirs| / scale (default: max |theirs|, at least 1e-30) against tol."""
        a = torch.as_tensor(ours).double().reshape(-1)
        b = torch.as_tensor(np.asarray(theirs)).double().reshape(-1)
        den = scale if scale is not None else max(b.abs().max().item(), 1e-30)
        err = (a - b).abs().max().item() / den
        ok = err <= tol
        print(f"{'PASS' if ok else 'FAIL'} {what}: max difference {err:.2e} of the scale (tolerance {tol:.0e})")
        if not ok:
            failures.append(what)

    def inputs(g):
        img = lambda k: peer.images(torch.from_numpy(g[k][:]))
        d = {k: img(k) for k in g if g[k].ndim == 2 and k not in ("dmd_stats",)}
        d.update({k: torch.from_numpy(g[k][:]).float() for k in g if g[k].ndim == 1 and k.endswith("_t")})
        d.update({k: torch.from_numpy(g[k][:]).long() for k in ("labels", "disc_real_labels") if k in g})
        return d

    def compare_common(name, g, out):
        compare(f"{name} samples x", out["x"], g["x"][:], 1e-5)
        if cfg.method == "amd":
            compare(f"{name} rewards", out["reward"], g["reward"][:], 1e-5, max(1.0, np.abs(g["reward"][:]).max()))
            compare(f"{name} advantages", out["advantage"], g["advantage"][:], 1e-6, 1.0)
            compare(f"{name} fake weights W", out["fake_weight"], g["fake_weight"][:], 1e-6)

    for f in range(cfg.fake_per_gen):
        g = dump[f"fake{f}"]
        peer.override = torch.from_numpy(g["reward"][:]) if cfg.method == "amd" else None
        out = peer.fake_update(step * cfg.fake_per_gen + f, inputs(g))
        name = f"fake update {f}"
        compare_common(name, g, out)
        compare(f"{name} flow loss per sample", out["loss_flow"], g["loss_flow"][:], 2e-5)
        compare(f"{name} discriminator loss, real", out["loss_disc_real"], g["loss_disc_real"][:], 2e-5)
        compare(f"{name} discriminator loss, generated", out["loss_disc_gen"], g["loss_disc_gen"][:], 2e-5)
        compare(f"{name} gradient norm, fake teacher", out["grad_norm"], g["grad_norm"][:], 1e-4)
        compare(f"{name} gradient norm, GAN head", out["grad_norm_disc"], g["grad_norm_disc"][:], 1e-4)
    g = dump["generator"]
    peer.override = torch.from_numpy(g["reward"][:]) if cfg.method == "amd" else None
    out = peer.generator_update(step, inputs(g))
    compare_common("generator update", g, out)
    if cfg.method == "amd":
        compare("generator update alpha", out["alpha"], g["alpha"][:], 1e-6)
        compare("generator update beta", out["beta"], g["beta"][:], 1e-6)
    compare("generator update loss_dm per sample", out["loss_dm"], g["dmd_stats"][:, 0], 1e-4)
    compare("generator update DMD normalizer n", out["norm"], g["dmd_stats"][:, 1], 2e-5)
    compare("generator update GAN loss per sample", out["loss_gan"], g["loss_gan"][:], 2e-5)
    compare("generator update gradient norm, student", out["grad_norm"], g["grad_norm"][:], 1e-4)

    if next_path is None:
        cand = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "ckpt_%08d.h5" % (step + 1))
        next_path = cand if os.path.exists(cand) else None
    if next_path:
        # the step's change of each network against amd's: |ours - amd's| / |amd's - before|
        nx = h5py.File(next_path, "r")
        for net, module in (("student", student), ("fake", fake), ("disc", disc)):
            after, before = tensors(nx, net, module=module), tensors(ck, net, module=module)
            ours = dict(module.named_parameters())
            diff = math.sqrt(sum(((ours[k].detach() - after[k]) ** 2).sum().item() for k in after))
            moved = math.sqrt(sum(((after[k] - before[k]) ** 2).sum().item() for k in after))
            compare(f"{net} weights after the step (difference over amd's change)", [diff], [0.0], 1e-3,
                    max(moved, 1e-30))
    else:
        print(f"SKIP weights after the step: no checkpoint of step {step + 1}")
    verdict = "FAILED: " + ", ".join(failures) if failures else "every quantity within its tolerance"
    print(f"{cfg.method} step {step}: {verdict}")
    return 1 if failures else 0


# --- time: the step on torch's own draws ----------------------------------------------------------

def time_steps(teacher_path, reward_path, args):
    torch.set_num_threads(args["threads"])
    torch.manual_seed(args["seed"])
    device, precision = args["device"], args["precision"]
    if device not in ("cpu", "cuda") or precision not in ("fp32", "tf32", "bf16"):
        sys.exit(f"distill_torch.py: device={device} precision={precision}: expected cpu|cuda and fp32|tf32|bf16")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("distill_torch.py: device=cuda but torch sees no CUDA device (a CPU-only torch build?)")
    if args["compile"] and not hasattr(torch, "compile"):
        sys.exit(f"distill_torch.py: compile=1 needs PyTorch 2 (torch.compile); this is torch {torch.__version__}")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    dev = torch.device(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    cfg = Settings("\n".join(f"{k} = {v}" for k, v in (
        ("method", args["method"]), ("train.prompts", args["prompts"]), ("amd.K", args["K"]),
        ("fake_per_gen", args["fake_per_gen"]), ("guidance", args["guidance"]))))
    with h5py.File(teacher_path, "r") as f:
        net = pick_net(f, "teacher")
    nets = [n.to(dev) if n is not None else None for n in networks(teacher_path, net, reward_path, cfg)]
    real, fake, student, disc, reward = nets
    if args["compile"]:  # compiled views share the modules' parameters, so the optimizers see them
        nets = [torch.compile(n) if n is not None else None for n in nets]
    peer = Peer(cfg, *nets)
    B, C, S = cfg.GB, real.channels, real.grid * real.patch
    classes = real.y_embedder.num_embeddings - 1
    data = torch.rand(1024, C, S, S, device=dev) * 2 - 1  # the discriminator's real points: the speed does not read them
    data_labels = torch.randint(0, classes, (1024,), device=dev)

    def dmd_t():
        return cfg.t_min + (cfg.t_max - cfg.t_min) * torch.rand(B, device=dev)

    def draw(fake_update):
        labels = torch.randint(0, classes, (cfg.prompts,), device=dev).repeat_interleave(cfg.K)
        d = {"labels": labels, "gen_xt": torch.randn(B, C, S, S, device=dev), "gen_t": torch.ones(B, device=dev)}
        if fake_update:
            pick = torch.randint(0, data.shape[0], (B,), device=dev)
            d.update(flow_t=torch.rand(B, device=dev), flow_noise=torch.randn(B, C, S, S, device=dev),
                     disc_real_x=data[pick], disc_real_labels=data_labels[pick], disc_real_t=dmd_t(),
                     disc_real_noise=torch.randn(B, C, S, S, device=dev), disc_gen_t=dmd_t(),
                     disc_gen_noise=torch.randn(B, C, S, S, device=dev))
        else:
            d.update(dmd_t=dmd_t(), dmd_noise=torch.randn(B, C, S, S, device=dev))
        return d

    def one_step(s):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for f in range(cfg.fake_per_gen):
                peer.fake_update(s * cfg.fake_per_gen + f, draw(True))
            out = peer.generator_update(s, draw(False))
        sync()
        return out

    for s in range(args["warmup"]):
        one_step(s)
    ms = []
    for s in range(args["warmup"], args["warmup"] + args["steps"]):
        t0 = time.perf_counter()
        out = one_step(s)
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    n = len(ms)
    med = ms[n // 2] if n % 2 else 0.5 * (ms[n // 2 - 1] + ms[n // 2])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"distill_torch: torch {torch.__version__}, {torch.get_num_threads()} threads, {cfg.method}, global batch "
          f"{cfg.prompts} x {cfg.K}, {cfg.fake_per_gen} fake updates per generator update, "
          f"{sum(p.numel() for p in student.parameters())} parameters a DiT; last loss_dm "
          f"{out['loss_dm'].mean().item():.4g}")
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    print(f"RESULT impl=torch method={cfg.method} device={device} precision={precision} compile={args['compile']} "
          f"threads={torch.get_num_threads()} batch={B} fake_per_gen={cfg.fake_per_gen} ms_step={med:.2f} "
          f"ms_step_min={ms[0]:.2f} images_s={B / (med * 1e-3):.2f} peak_rss_mb={rss:.1f} "
          f"peak_device_mb={peak_mb:.1f}", flush=True)


def main():
    argv = sys.argv[1:]
    if 3 <= len(argv) <= 4 and argv[0] == "--check":
        sys.exit(check(argv[1], argv[2], argv[3] if len(argv) == 4 else None))
    if len(argv) >= 2 and argv[0] == "--time":
        paths = [a for a in argv[1:] if "=" not in a]
        args = dict(method="amd", prompts=16, K=4, fake_per_gen=2, guidance=2.0, steps=10, warmup=2,
                    threads=os.cpu_count(), seed=0, device="cpu", precision="fp32", compile=0)
        for a in argv[1:]:
            if "=" not in a:
                continue
            key, _, value = a.partition("=")
            if key not in args:
                sys.exit(f"distill_torch.py: unknown argument '{a}'")
            args[key] = type(args[key])(value)
        time_steps(paths[0], paths[1] if len(paths) > 1 else "", args)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
