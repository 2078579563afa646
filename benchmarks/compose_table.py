#!/usr/bin/python3
"""compose_table.py: the compositional table of issue 20 from what benchmarks/compose_study.sh made.

    /usr/bin/python3 benchmarks/compose_table.py W [--amd ./amd] [--no-grids]

Rows: the caption teacher at 50 and at 4 Euler steps (W/teacher_evals/teacher<steps>_seed<s>_eval.h5)
and the 1-step student of each method of the study W/compose_s1.json (its cells' eval files under
W/study/evals); columns: the GenEval-like score per category, overall, on seen and on held-out word
combinations, and FD in the evaluator's cell features; each the mean over seeds with its 95% t
interval (benchmarks/study.py's statistics). Then AMD minus each baseline, paired by seed. Every
number is read back from the eval files with h5py. Unless --no-grids: one grid per model of the same
8 captions (two of each category, the held-out ones where the test split has them), 8 samples each,
drawn with `amd sample ... png=` into W/grids/<model>.png (seed 0's student), and the same samples
side by side in W/grids/side_by_side.png (a row per caption, a column per model, 4 samples each)."""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from study import mean_interval, paired, read_eval  # noqa: E402

COLS = [("geneval_single", "single"), ("geneval_two", "two objects"), ("geneval_counting", "counting"),
        ("geneval_position", "position"), ("geneval_overall", "overall"), ("geneval_seen", "seen"),
        ("geneval_heldout", "held-out"), ("fd", "FD")]
METHODS = ("dmd", "dmd2", "dmdr", "amd")
SEED_RE = re.compile(r"_seed(\d+)_eval\.h5$")


def per_seed(files):
    """{metric: {seed: value}} of eval files named ..._seed<N>_eval.h5"""
    out = {}
    for f in files:
        e = read_eval(f, [c for c, _ in COLS])
        if e is None:
            continue
        s = int(SEED_RE.search(f).group(1))
        for k, v in e.items():
            out.setdefault(k, {})[s] = v
    return out


def cell(vals):
    vs = [v for v in vals.values() if not math.isnan(v)]
    n, m, lo, hi = mean_interval(vs)
    if n == 0:
        return "-"
    return f"{m:.3f}" if n < 2 else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def grid_captions(test):
    """two captions of each category from the test split, held-out ones first where there are"""
    import h5py
    f = h5py.File(test, "r")
    text = [t.decode() if isinstance(t, bytes) else t for t in f["captions/text"][:]]
    cat, held = f["captions/category"][:], f["captions/held_out"][:]
    picks = []
    for c in range(4):
        idx = [i for i in range(len(text)) if cat[i] == c]
        idx.sort(key=lambda i: -int(held[i]))
        picks += [text[i] for i in idx[:2]]
    return picks


def side_by_side(grids, names, caps, png, per=4):
    """one figure: a row per caption, a column per model, the first `per` samples of each caption from
    grids/<model>_samples.h5 (the samples file names each sample's caption in captions/text)"""
    import h5py
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(caps), len(names), figsize=(1.6 * len(names), 1.7 * len(caps)), squeeze=False)
    for j, name in enumerate(names):
        with h5py.File(os.path.join(grids, name + "_samples.h5"), "r") as f:
            x = f["x"][:]
            text = [t.decode() if isinstance(t, bytes) else t for t in f["captions/text"][:]]
        for i, c in enumerate(caps):
            idx = [k for k, t in enumerate(text) if t == c][:per]
            tiles = [np.clip((x[k, 0] + 1) / 2, 0, 1) for k in idx]
            tiles += [np.zeros_like(x[0, 0])] * (per - len(tiles))
            half, h = per // 2, tiles[0].shape[0]
            vbar, hbar = np.full((h, 2), 0.5), np.full((2, 2 * h + 2), 0.5)  # grey lines between samples
            img = np.vstack([np.hstack([tiles[0], vbar, tiles[1]]), hbar, np.hstack([tiles[2], vbar, tiles[3]])]) \
                if per == 4 else np.hstack(tiles)
            ax = axes[i][j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(c, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("w")
    ap.add_argument("--amd", default="./amd")
    ap.add_argument("--no-grids", action="store_true")
    a = ap.parse_args()
    spec = json.load(open(os.path.join(a.w, "compose_s1.json")))
    budget = spec["budgets"][0]
    rows = {}
    for steps in (50, 4):
        rows[f"teacher, {steps} Euler steps"] = per_seed(glob.glob(f"{a.w}/teacher_evals/teacher{steps}_seed*_eval.h5"))
    for m in METHODS:
        rows[f"{m}, 1-step student"] = per_seed(glob.glob(f"{a.w}/study/evals/{m}_steps{budget}_seed*_eval.h5"))
    print(f"GenEval-like score (share of samples whose items, counts and positions are all right by the "
          f"evaluator; higher is better) and FD (lower is better); mean over seeds [95% t interval]. "
          f"{spec['description']}.\n")
    print("| model | seeds | " + " | ".join(h for _, h in COLS) + " |")
    print("|---|---|" + "---|" * len(COLS))
    for name, v in rows.items():
        n = len(v.get("geneval_overall", {}))
        print(f"| {name} | {n} | " + " | ".join(cell(v.get(c, {})) for c, _ in COLS) + " |")
    amd = rows["amd, 1-step student"]
    print("\nAMD minus each baseline, paired by seed [95% t interval], verdict:\n")
    print("| AMD minus | " + " | ".join(h for _, h in COLS) + " |")
    print("|---|" + "---|" * len(COLS))
    for m in ("dmd", "dmd2", "dmdr"):
        base = rows[f"{m}, 1-step student"]
        out = []
        for c, _ in COLS:
            n, d, lo, hi, ver = paired(amd.get(c, {}), base.get(c, {}), "lower" if c == "fd" else "higher")
            out.append("-" if n == 0 else f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] {ver}" if n > 1 else f"{d:+.3f}")
        print(f"| {m} | " + " | ".join(out) + " |")
    if a.no_grids:
        return
    caps = grid_captions(os.path.join(a.w, "compose_test.h5"))
    os.makedirs(os.path.join(a.w, "grids"), exist_ok=True)
    open(os.path.join(a.w, "grids", "captions.txt"), "w").write("".join(c + "\n" for c in caps))
    seed0 = min(spec["seeds"])
    models = {f"teacher{s}": [f"ckpt={a.w}/teacher", f"steps={s}", "cfg=2"] for s in (50, 4)}
    for m in METHODS:
        models[m] = [f"ckpt={a.w}/study/runs/{m}_steps{budget}_seed{seed0}"]
    print("\nGrids (a row per caption, 8 samples each, the same noise for every model):\n")
    ok = True
    for name, args in models.items():
        png = os.path.join(a.w, "grids", name + ".png")
        cmd = [a.amd, "sample", *args, f"prompts={a.w}/grids/captions.txt", f"n={8 * len(caps)}", "png.cols=8",
               f"png={png}", f"out={a.w}/grids/{name}_samples.h5", "threads=2"]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        print(f"- {name}: {png}" if r.returncode == 0 else f"- {name}: failed ({r.stderr.strip().splitlines()[-1:]})")
        ok = ok and r.returncode == 0
    if ok:
        png = os.path.join(a.w, "grids", "side_by_side.png")
        side_by_side(os.path.join(a.w, "grids"), list(models), caps, png)
        print(f"- side by side: {png}")
    print("\nCaptions, top to bottom: " + "; ".join(caps))


if __name__ == "__main__":
    main()
