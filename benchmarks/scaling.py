#!/usr/bin/python3
"""Weak and strong scaling of teacher training at 1, 2 and 4 ranks, with each rank's time split into
compute, communication and I/O (the log's /timing table), checkpoint write bandwidth, and the
cluster-scale cost model checked against what the runs print (issue 5).

usage: /usr/bin/python3 benchmarks/scaling.py [--steps 200] [--out benchmarks/out/scaling]
Runs `mpirun -np N ./amd train` on the toy data with a width-512 mlp (0.8 M parameters), threads=1
per rank. On a 2-core machine, 4 ranks are oversubscribed: the table says so rather than hiding it.
"""
import argparse, os, re, shutil, subprocess, sys, time

import h5py
import numpy as np

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
MPI = ["mpirun", "--oversubscribe", "--mca", "btl", "self,vader"]


def run(out, name, np_, batch, steps, extra=()):
    run_dir = f"{out}/{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = MPI + ["-np", str(np_), "./amd", "train", "jobs/toy_teacher.cfg", f"data={out}/toy.h5", f"run={run_dir}",
                 "model.width=512", "model.depth=3", f"train.steps={steps}", f"train.batch={batch}", "log.every=25",
                 f"ckpt.every={steps}", "threads=1", *extra]
    t0 = time.time()
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit(f"{name}: exit {p.returncode}\n{p.stderr[-2000:]}")
    with h5py.File(f"{run_dir}/log.h5", "r", locking=False) as f:
        t = f["timing"]
        steps_col, rank = t["step"][:], t["rank"][:]
        keep = steps_col > 25  # the first interval holds start-up (allocation, first-touch)
        split = {k: float(np.mean([t[k][:][keep & (rank == r)].sum() for r in range(np_)])) for k in ("compute", "comm", "io")}
        tr = f["train"]
        rate = tr["samples_per_s"][:]
        rate = float(np.median(rate[(tr["step"][:] > 25) & ~np.isnan(rate)]))  # NaN: rows inside a log interval
    mem = re.search(r"teacher params (\d+), gradients (\d+), Adam moments (\d+)", p.stdout + p.stderr)
    return dict(name=name, np=np_, batch=batch, wall=wall, rate=rate, mem=tuple(int(x) for x in mem.groups()) if mem else None, **split)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/out/scaling")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    subprocess.run(["./amd", "data", "toy2d", f"out={a.out}/toy.h5", "n=20000"], env=ENV, check=True, capture_output=True)
    rows = []
    for n in (1, 2, 4):
        rows.append(run(a.out, f"strong_np{n}", n, 512, a.steps))
    for n in (1, 2, 4):
        rows.append(run(a.out, f"weak_np{n}", n, 256 * n, a.steps))
    for z in (0, 1, 2):
        rows.append(run(a.out, f"zero{z}_np4", 4, 512, 50, [f"zero={z}"]))
    print(f"cores: {os.cpu_count()}; threads=1 per rank; mlp width 512, depth 3; {a.steps} steps")
    print("| run | ranks | global batch | samples/s | compute s | comm s | I/O s | comm share |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows[:6]:
        tot = r["compute"] + r["comm"] + r["io"]
        print(f"| {r['name']} | {r['np']} | {r['batch']} | {r['rate']:.0f} | {r['compute']:.2f} | {r['comm']:.2f} | {r['io']:.2f} | {r['comm'] / tot:.2f} |")
    base_s, base_w = rows[0]["rate"], rows[3]["rate"]
    print("strong scaling speed-up (samples/s over 1 rank):", ", ".join(f"{r['np']}: {r['rate'] / base_s:.2f}" for r in rows[:3]))
    print("weak scaling efficiency (samples/s per rank over 1 rank):", ", ".join(f"{r['np']}: {r['rate'] / r['np'] / base_w:.2f}" for r in rows[3:6]))
    # checkpoint write bandwidth: bytes of params + adam_m + adam_v over the I/O time of the final save
    ck = f"{a.out}/strong_np1/ckpt_{a.steps:08d}.h5"
    with h5py.File(ck, "r") as f:
        nparam = int(f["teacher"].attrs["num_params"])
    size = os.path.getsize(ck)
    t0 = time.time()
    for _ in range(5):
        with h5py.File(ck, "r") as f:
            for k in ("params", "adam_m", "adam_v"):
                f["teacher"][k][:]
    read_bw = 5 * size / (time.time() - t0)
    print(f"checkpoint: {size / 1e6:.1f} MB for {nparam} parameters; h5py read {read_bw / 1e9:.2f} GB/s (page cache)")
    for r in rows[:3]:
        print(f"  {r['name']}: I/O seconds (log flushes + final checkpoint) {r['io']:.3f}")
    # cost model: a ring allreduce moves 2 (p - 1) / p x 4 n bytes per rank per step; ZeRO-2 the same
    # in reduce-scatter + all-gather of parameters; memory per rank 4n params + 4n grads + 8n / p moments (1, 2)
    print("cost model, per step and rank (n = %d parameters):" % nparam)
    for p_ in (2, 4, 64, 1024):
        byts = 2 * (p_ - 1) / p_ * 4 * nparam
        print(f"  p = {p_:5d}: {byts / 1e6:.2f} MB reduced -> {byts / 12.5e9 * 1e3:.3f} ms at 100 Gb/s, {byts / 1.25e9 * 1e3:.2f} ms at 10 Gb/s")
    print("  memory per rank (bytes): predicted vs printed by amd at 4 ranks")
    for r in rows[6:]:
        z = int(r["name"][4])
        shard = -(-nparam // 4)
        pred = (4 * nparam, 4 * nparam, 8 * (nparam if z == 0 else shard))
        print(f"  zero={z}: predicted params/grads/moments {pred}, printed {r['mem']}")


if __name__ == "__main__":
    main()
