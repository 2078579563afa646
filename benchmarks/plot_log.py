#!/usr/bin/python3
"""Turns amd training logs into PNG plots against step.

usage: /usr/bin/python3 benchmarks/plot_log.py runs/amd/log.h5 [more logs ...] [-o OUT_PREFIX]

Several logs of one kind are overlaid (one line each, labelled by their run folder), so methods or
settings can be compared on one figure.
  distillation logs: OUT_PREFIX_losses.png (loss_dm, fake-teacher loss, the GAN losses, both grad
    norms; panels of losses a method does not have are left out), _reward.png, _forbidden.png,
    _weights.png (from the /advantage records of the first log that has them);
  teacher and classifier logs (amd train): OUT_PREFIX_losses.png with loss, grad norm, learning rate,
    samples/s, and for classifiers the training and test accuracy;
  logs with held-out evaluations (eval.every, the /eval table): OUT_PREFIX_eval.png, the metrics
    against step (toy data: off-manifold fraction, coverage, mass error, sliced W1; images: FD,
    precision, recall, accuracy), a line per run and weights (raw solid, EMA dashed).
NaN entries (rows without a rate, steps without a test accuracy) are left out of each line. Reads
with locking=False, so it works on the log of a running job.
"""
import argparse
import os

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def smooth(y, n):
    if len(y) < 2 * n or n <= 1:
        return y
    k = np.ones(n) / n
    return np.convolve(y, k, mode="valid")


def load(path):
    with h5py.File(path, "r", locking=False) as f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != "amd-log":
            raise SystemExit(f"{path}: not an amd log (format {fmt!r})")
        train = {k: f["train"][k][:].astype(float) for k in f["train"]}
        adv = {k: f["advantage"][k][:] for k in f["advantage"]} if "advantage" in f else None
        ev = {k: f["eval"][k][:].astype(float) for k in f["eval"]} if "eval" in f else None
    return train, adv, ev


def kind_of(train):
    return "distillation" if "loss_dm" in train else "classifier" if "accuracy" in train else "teacher"


def label_of(path):
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or path


def panel(ax, runs, key, title, n, positive=False, sparse=False, log=False):
    """One quantity of every run; NaN rows (and with positive=True, non-positive ones: rows of a log
    written before rates were NaN hold 0) are left out; sparse ones are drawn as points."""
    drawn = False
    for name, (train, _, _) in runs:
        if key not in train:
            continue
        y, x = train[key], train["step"]
        keep = np.isfinite(y) & ((y > 0) if positive else True)
        y, x = y[keep], x[keep]
        if not len(y):
            continue
        if sparse:
            ax.plot(x, y, "o-", label=name, lw=1.0, ms=3)
        else:
            y = smooth(y, n)
            ax.plot(x[len(x) - len(y):], y, label=name, lw=1.2)
        drawn = True
    if drawn and log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def plot_train(runs, out, n, classifier):
    """amd train logs (teacher, reward or evaluator): one figure of the panels they have."""
    panels = [("loss", "loss", {"log": True}), ("grad_norm", "grad norm (before clipping)", {}),
              ("lr", "learning rate", {}), ("samples_per_s", "samples/s (per log interval)", {"positive": True})]
    if classifier:
        panels += [("accuracy", "training accuracy", {}), ("test_accuracy", "test accuracy", {"sparse": True})]
    cols = 3 if classifier else 2
    fig, axs = plt.subplots(2, cols, figsize=(5 * cols, 7))
    for ax, (key, title, opts) in zip(axs.flat, panels):
        if not panel(ax, runs, key, title, 1 if key == "samples_per_s" else n, **opts):
            ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(out + "_losses.png", dpi=90)
    plt.close(fig)
    print("wrote " + out + "_losses.png")


def plot_eval(runs, out):
    """The /eval tables (eval.every): each metric against step, a line per run and weights."""
    evs = [(name, ev) for name, (_, _, ev) in runs if ev is not None and len(ev.get("step", []))]
    if not evs:
        return
    images = any("fd" in ev for _, ev in evs)
    panels = ([("fd", "Frechet distance (evaluator features)"), ("precision", "precision"), ("recall", "recall"),
               ("accuracy", "evaluator accuracy")] if images else
              [("off_manifold", "off-manifold fraction (beyond 3 sigma)"), ("coverage", "coverage"),
               ("mass_error", "mass error (TV)"), ("sliced_w1", "sliced W1")])
    fig, axs = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, title) in zip(axs.flat, panels):
        for name, ev in evs:
            if key not in ev:
                continue
            for w, style in ((0, "o-"), (1, "s--")):
                keep = (ev["weights"] == w) & np.isfinite(ev[key])
                if keep.any():
                    ax.plot(ev["step"][keep], ev[key][keep], style, lw=1.2, ms=3,
                            label=name + (" (EMA)" if w else ""))
        ax.set_title("held-out " + title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out + "_eval.png", dpi=90)
    plt.close(fig)
    print("wrote " + out + "_eval.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+")
    ap.add_argument("-o", "--out", default=None, help="output prefix (default: beside the first log)")
    ap.add_argument("--smooth", type=int, default=10, help="moving-average window in steps")
    a = ap.parse_args()
    runs = [(label_of(p), load(p)) for p in a.logs]
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.logs[0])), "plot")
    n = a.smooth
    kinds = {kind_of(train) for _, (train, _, _) in runs}
    if "distillation" in kinds and len(kinds) > 1:
        raise SystemExit("cannot overlay distillation logs and amd train logs on one figure: plot them apart")
    plot_eval(runs, out)
    if "distillation" not in kinds:
        plot_train(runs, out, n, "classifier" in kinds)
        return

    fig, axs = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (key, title) in zip(axs.flat, [("loss_dm", "generator loss_dm"), ("loss_fake", "fake-teacher loss"),
                                           ("loss_gan_g", "GAN (generator)"), ("loss_gan_d", "GAN (discriminator)"),
                                           ("grad_norm_student", "student grad norm"),
                                           ("grad_norm_fake", "fake-teacher grad norm")]):
        if not panel(ax, runs, key, title, n):
            ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(out + "_losses.png", dpi=90)
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(11, 4))
    panel(axs[0], runs, "reward_mean", "reward mean", n)
    panel(axs[1], runs, "reward_std", "reward std", n)
    fig.tight_layout()
    fig.savefig(out + "_reward.png", dpi=90)
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(11, 4))
    panel(axs[0], runs, "forbidden_frac", "forbidden fraction (advantage < 0)", n)
    panel(axs[1], runs, "off_manifold_frac", "off-manifold fraction (beyond 3 sigma)", n)
    fig.tight_layout()
    fig.savefig(out + "_forbidden.png", dpi=90)
    plt.close(fig)

    adv = next((adv for _, (_, adv, _) in runs if adv is not None and len(adv.get("step", []))), None)
    if adv is not None:
        fig, axs = plt.subplots(1, 4, figsize=(16, 3.8))
        steps = adv["step"]
        qs = np.unique(steps)
        pick = qs[np.linspace(0, len(qs) - 1, min(4, len(qs))).astype(int)]
        for ax, key in zip(axs, ["advantage", "alpha", "beta", "fake_weight"]):
            for s in pick:
                ax.hist(adv[key][steps == s], bins=30, histtype="step", label=f"step {int(s)}")
            ax.set_title(key)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out + "_weights.png", dpi=90)
        plt.close(fig)
    print("wrote " + ", ".join(out + s for s in ["_losses.png", "_reward.png", "_forbidden.png"] +
                                (["_weights.png"] if adv is not None else [])))


if __name__ == "__main__":
    main()
