#!/usr/bin/python3
"""Keep what a study's tables and curves are read from, small enough to commit (issue 17).

    /usr/bin/python3 benchmarks/studies/keep.py SPEC STUDY DEST

SPEC is a study spec and STUDY its folder (benchmarks/study.py's --out). Into DEST this copies the
spec, the study's cells.json and journal.csv, every evaluated cell's eval file (evals/<cell>_eval.h5,
about 14 kB; not its samples) and, where its run folder is there, a log.h5 of its /eval table
(the held-out curves of eval.every) and the root attributes of its log (provenance: commit, host,
settings), without the /train rows and checkpoints (megabytes each). It also writes per_seed.csv:
one row per evaluated cell with its method, budget, seed and every metric of the spec, the numbers
the paired intervals are made of (a study's results.csv holds only the means and intervals). Then

    /usr/bin/python3 benchmarks/study.py DEST/<spec>.json --out DEST --report
    /usr/bin/python3 benchmarks/eval_curves.py --metric fd NAME='DEST/runs/<method>_steps<B>_seed*' ...

give the study's tables and curves from DEST alone, on any machine, and copying DEST's evals/ into a
new study folder before `study.py SPEC` runs makes it skip those cells (a fresh machine goes on where
the last one stopped, provided its teacher is the same: see the spec's teacher). Files already in
DEST are replaced; cells no longer in STUDY are left. DEST may hold SPEC itself; it may not be STUDY (the
runs' logs there would be replaced by their /eval tables)."""
import csv
import json
import os
import shutil
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import study  # noqa: E402  (benchmarks/study.py: the spec, the cells, the eval reader)


def copy(src, dst):
    """src to dst through dst.tmp (a full disk leaves the old dst whole); nothing where dst is src
    already (a spec kept in DEST and read from there)."""
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return
    shutil.copy(src, dst + ".tmp")
    os.replace(dst + ".tmp", dst)


def keep_log(src, dst):
    """dst: the /eval table of the log src and its root attributes; False when src has no /eval."""
    with h5py.File(src, "r", locking=False) as f:
        if "eval" not in f:
            return False
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with h5py.File(dst + ".tmp", "w") as g:
            for k, v in f.attrs.items():
                g.attrs[k] = v
            f.copy(f["eval"], g, "eval")
    os.replace(dst + ".tmp", dst)
    return True


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    spec_path, folder, dest = argv
    try:
        spec = study.load_spec(spec_path)
    except study.SpecError as e:
        sys.exit(f"keep: {e}")
    if not os.path.isdir(os.path.join(folder, "evals")):
        sys.exit(f"keep: '{folder}' is not a study folder (it has no evals/)")
    if os.path.isdir(dest) and os.path.samefile(folder, dest):
        sys.exit(f"keep: DEST '{dest}' is the study folder itself; keep into another folder")
    os.makedirs(os.path.join(dest, "evals"), exist_ok=True)
    copy(spec_path, os.path.join(dest, os.path.basename(spec_path)))
    for name in ("cells.json", "journal.csv"):
        if os.path.exists(os.path.join(folder, name)):
            copy(os.path.join(folder, name), os.path.join(dest, name))
    metrics = list(spec["metrics"])
    rows, logs = [], 0
    for m, b, s in study.cells_of(spec):
        cell = study.cell_name(m, b, s)
        run_log = os.path.join(folder, "runs", cell, "log.h5")
        ev = os.path.join(folder, "evals", cell + "_eval.h5")
        values = study.read_eval(ev, spec["metrics"], run_log if os.path.exists(run_log) else None)
        if values is None:  # not finished: neither its eval file nor its curve so far
            continue
        copy(ev, os.path.join(dest, "evals", cell + "_eval.h5"))
        if os.path.exists(run_log) and keep_log(run_log, os.path.join(dest, "runs", cell, "log.h5")):
            logs += 1
        rows.append([cell, m, b, s] + [repr(values[k]) for k in metrics])
    with open(os.path.join(dest, "per_seed.csv.tmp"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cell", "method", "steps", "seed"] + metrics)
        w.writerows(rows)
    os.replace(os.path.join(dest, "per_seed.csv.tmp"), os.path.join(dest, "per_seed.csv"))
    print(f"keep: {len(rows)} evaluated cells and {logs} /eval curves of {folder} in {dest} (per_seed.csv)")


if __name__ == "__main__":
    main(sys.argv[1:])
