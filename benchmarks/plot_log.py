#!/usr/bin/python3
"""Turns an amd distillation (or teacher) log into PNG plots: losses, reward, forbidden fraction and
the AMD weight distributions against step.

usage: /usr/bin/python3 benchmarks/plot_log.py runs/amd/log.h5 [more logs ...] [-o OUT_PREFIX]

Several logs are overlaid (one line each, labelled by their run folder), so methods can be compared
on one figure. Writes OUT_PREFIX_losses.png, _reward.png, _forbidden.png, _weights.png (the last
from the /advantage records of the first log that has them). Reads with locking=False, so it works
on the log of a running job.
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
        if f.attrs.get("format") != "amd-log":
            raise SystemExit(f"{path}: not an amd log (format {f.attrs.get('format')!r})")
        train = {k: f["train"][k][:] for k in f["train"]}
        adv = {k: f["advantage"][k][:] for k in f["advantage"]} if "advantage" in f else None
    return train, adv


def label_of(path):
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or path


def panel(ax, runs, key, title, n):
    drawn = False
    for name, (train, _) in runs:
        if key in train and len(train[key]):
            y = smooth(train[key], n)
            x = train["step"][len(train["step"]) - len(y):]
            ax.plot(x, y, label=name, lw=1.2)
            drawn = True
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+")
    ap.add_argument("-o", "--out", default=None, help="output prefix (default: beside the first log)")
    ap.add_argument("--smooth", type=int, default=10, help="moving-average window in steps")
    a = ap.parse_args()
    runs = [(label_of(p), load(p)) for p in a.logs]
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.logs[0])), "plot")
    n = a.smooth

    fig, axs = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (key, title) in zip(axs.flat, [("loss_dm", "generator loss_dm"), ("loss_fake", "fake-teacher loss"),
                                           ("loss_gan_g", "GAN (generator)"), ("loss_gan_d", "GAN (discriminator)"),
                                           ("grad_norm_student", "student grad norm"), ("loss", "teacher loss")]):
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

    adv = next((adv for _, (_, adv) in runs if adv is not None and len(adv.get("step", []))), None)
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
