"""gpu_speed_table.py ROWS: the markdown table of benchmarks/gpu_speed.sh from its rows file, one line
per run: `ROW workload run ms images_per_s gemm_gflop_s gemm_frac_of_peak`, or `ROW workload run
skipped|n/a|failed` for a run without a time. Per workload (teacher, dmd2, amd) every run's ms per
step (the teacher's training step; a distillation's generator update with its fake updates) and
images/s; amd's rows add the speed-up over each PyTorch row of the same workload (PyTorch's ms /
amd's ms, so > 1 is amd faster) and, for the teacher, the step's GEMM GFLOP/s (and, where
dit_speed measured it, their fraction of that precision's GEMM ceiling). All numbers are from the
one run that wrote ROWS."""
import sys

TORCH = ("torch-fp32", "torch-bf16", "torch-bf16+compile")
HEAD = {"torch-fp32": "PyTorch fp32", "torch-bf16": "PyTorch bf16 autocast",
        "torch-bf16+compile": "PyTorch bf16 + compile"}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    order, runs = [], {}
    for line in open(sys.argv[1]):
        f = line.split()
        if len(f) < 3 or f[0] != "ROW" or f[1] not in ("teacher", "dmd2", "amd"):
            continue
        w = f[1]
        if w not in runs:
            order.append(w)
            runs[w] = []
        try:
            ms = float(f[3])
        except (IndexError, ValueError):
            ms = None
        num = lambda i: float(f[i]) if len(f) > i and f[i] not in ("", "failed") else 0.0
        runs[w].append({"run": f[2], "ms": ms if ms and ms > 0 else None, "note": f[3] if len(f) > 3 else "failed",
                        "img": num(4), "gflops": num(5), "frac": num(6)})
    cols = " | ".join(f"x {HEAD[t]}" for t in TORCH)
    print(f"| workload | run | ms/step | images/s | GEMM GFLOP/s | {cols} |")
    print("|---|---|---|---|---|" + "---|" * len(TORCH))
    for w in order:
        base = {r["run"]: r["ms"] for r in runs[w] if r["run"] in TORCH}
        for r in runs[w]:
            if r["ms"] is None:
                print(f"| {w} | {r['run']} | {r['note']} | | |" + " |" * len(TORCH))
                continue
            gemm = ""
            if r["gflops"] > 0:
                gemm = f"{r['gflops']:.4g}" + (f" ({100 * r['frac']:.0f}% of peak)" if r["frac"] > 0 else "")
            ratios = []
            for t in TORCH:
                ok = r["run"].startswith("amd-") and base.get(t)
                ratios.append(f"{base[t] / r['ms']:.2f}" if ok else "")
            print(f"| {w} | {r['run']} | {r['ms']:.2f} | {r['img']:.0f} | {gemm} | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
