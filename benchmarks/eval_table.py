#!/usr/bin/python3
"""Prints amd eval files side by side as a markdown table, with the speed-up over the first row.
Toy and image eval files are told apart by their metrics (toy: coverage; images: fd); a metric a
file lacks (the reward without reward=) shows as "-".

usage: /usr/bin/python3 benchmarks/eval_table.py NAME=FILE_eval.h5 [NAME=FILE_eval.h5 ...]
"""
import sys

import h5py

TOY = [("nfe", "NFE", "{:.0f}"), ("coverage", "coverage", "{:.3f}"), ("off_manifold", "off-manifold", "{:.4f}"),
        ("mass_error", "mass error (TV)", "{:.4f}"), ("wrong_class", "wrong class", "{:.4f}"),
        ("sliced_w1", "sliced W1", "{:.4f}"), ("log_density", "log p(x\\|c)", "{:.3f}"),
        ("samples_per_s", "samples/s", "{:.0f}")]
IMAGES = [("nfe", "NFE", "{:.0f}"), ("fd", "FD", "{:.3f}"), ("precision", "precision", "{:.3f}"),
          ("recall", "recall", "{:.3f}"), ("accuracy", "evaluator accuracy", "{:.3f}"),
          ("reward", "reward log p(c\\|x)", "{:.3f}"), ("samples_per_s", "images/s", "{:.1f}")]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows, cols = [], TOY
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "amd-eval":
                sys.exit(f"{path}: not an amd eval file")
            if "fd" in f["eval"]:
                cols = IMAGES
            rows.append((name, {k: float(f["eval"][k][0]) for k in f["eval"]}))
    print("| model | " + " | ".join(c[1] for c in cols) + " | speed-up |")
    print("|---" * (len(cols) + 2) + "|")
    base = rows[0][1]["samples_per_s"]
    for name, e in rows:
        cells = [fmt.format(e[k]) if k in e else "-" for k, _, fmt in cols]
        print(f"| {name} | " + " | ".join(cells) + f" | {e['samples_per_s'] / base:.1f}x |")


if __name__ == "__main__":
    main()
