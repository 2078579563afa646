#!/usr/bin/python3
"""same_outputs.py BEFORE AFTER: compares every HDF5 file (and every .txt eval report) of two
golden_runs.sh folders bit for bit: every dataset's values, dtype and shape, every attribute, the
group structure. Wall-clock measurements are skipped: the /timing table, the /train columns time
and samples_per_s, timing lines of eval reports, the samples/s attribute of sample files and the
time attribute of checkpoints; so is the provenance that names the build, the machine or the folder
(commit, host, device, the Slurm ids, the input.* paths).
Prints each difference; exits 1 when there is one."""
import os, sys
import h5py, numpy as np

SKIP_TABLES = {"timing"}
SKIP_COLS = {"time", "samples_per_s"}
SKIP_ATTRS = {"samples_per_s", "seconds", "wall_s", "created", "time", "commit", "host", "device", "slurm_job_id",
              "slurm_array_job_id", "slurm_array_task_id", "slurm_restart_count"}


def walk(f):
    out = {}
    def visit(name, obj):
        parts = name.split("/")
        if parts[0] in SKIP_TABLES:
            return
        if isinstance(obj, h5py.Dataset) and parts[-1] in SKIP_COLS and parts[0] in ("train", "eval"):
            return
        out[name] = obj
    f.visititems(visit)
    out["/"] = f
    return out


def attrs(obj):
    return {k: obj.attrs[k] for k in obj.attrs if k not in SKIP_ATTRS and not k.startswith("input.")}


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "O":
        return np.array_equal(a, b)
    return a.tobytes() == b.tobytes()  # bit for bit, NaNs included


def compare_h5(pa, pb, diffs):
    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        wa, wb = walk(fa), walk(fb)
        for k in sorted(set(wa) ^ set(wb)):
            diffs.append(f"{pa}: {k} only in {'before' if k in wa else 'after'}")
        for k in sorted(set(wa) & set(wb)):
            oa, ob = wa[k], wb[k]
            if type(oa) is not type(ob):
                diffs.append(f"{pa}: {k} changes kind")
                continue
            aa, ab = attrs(oa), attrs(ob)
            for n in sorted(set(aa) | set(ab)):
                if n not in aa or n not in ab or not same(aa[n], ab[n]):
                    diffs.append(f"{pa}: {k} attribute {n}: {aa.get(n)!r} -> {ab.get(n)!r}")
            if isinstance(oa, h5py.Dataset):
                va, vb = oa[()], ob[()]
                if not same(va, vb):
                    diffs.append(f"{pa}: {k} values differ ({oa.dtype}{oa.shape} vs {ob.dtype}{ob.shape})")


def main():
    before, after = sys.argv[1], sys.argv[2]
    diffs, n = [], 0
    for root, _, files in os.walk(before):
        for name in sorted(files):
            pa = os.path.join(root, name)
            pb = os.path.join(after, os.path.relpath(pa, before))
            if not (name.endswith(".h5") or name.endswith(".bak")):
                continue
            if not os.path.exists(pb):
                diffs.append(f"{pb} missing")
                continue
            n += 1
            compare_h5(pa, pb, diffs)
    for root, _, files in os.walk(after):
        for name in files:
            pb = os.path.join(root, name)
            if name.endswith(".h5") and not os.path.exists(os.path.join(before, os.path.relpath(pb, after))):
                diffs.append(f"{pb} is new")
    for d in diffs:
        print("DIFF", d)
    print(f"{n} HDF5 files compared, {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


main()
