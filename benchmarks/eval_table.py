#!/usr/bin/python3
"""Prints amd eval files side by side as a markdown table, with the speed-up over the first row.

usage: /usr/bin/python3 benchmarks/eval_table.py NAME=FILE_eval.h5 [NAME=FILE_eval.h5 ...]
"""
import sys

import h5py

COLS = [("nfe", "NFE", "{:.0f}"), ("coverage", "coverage", "{:.3f}"), ("off_manifold", "off-manifold", "{:.4f}"),
        ("mass_error", "mass error (TV)", "{:.4f}"), ("wrong_class", "wrong class", "{:.4f}"),
        ("sliced_w1", "sliced W1", "{:.4f}"), ("log_density", "log p(x|c)", "{:.3f}"),
        ("samples_per_s", "samples/s", "{:.0f}")]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = []
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "amd-eval":
                sys.exit(f"{path}: not an amd eval file")
            rows.append((name, {k: float(f["eval"][k][0]) for k, _, _ in COLS}))
    print("| model | " + " | ".join(c[1] for c in COLS) + " | speed-up |")
    print("|---" * (len(COLS) + 2) + "|")
    base = rows[0][1]["samples_per_s"]
    for name, e in rows:
        cells = [fmt.format(e[k]) for k, _, fmt in COLS]
        print(f"| {name} | " + " | ".join(cells) + f" | {e['samples_per_s'] / base:.1f}x |")


if __name__ == "__main__":
    main()
