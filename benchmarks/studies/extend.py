#!/usr/bin/python3
"""Continue a finished study to a longer budget without rerunning its first part (issue 17).

    /usr/bin/python3 benchmarks/studies/extend.py SPEC FOLDER B0 B1 NEW_SPEC NEW_FOLDER [METHOD ...]

SPEC is a study spec whose cells ran to B0 distillation steps in the study folder FOLDER. For each
of its methods (or only the METHODs named) and seeds, this copies the run's last checkpoint
(ckpt_<B0>.h5) and its log into NEW_FOLDER/runs/<method>_steps<B1>_seed<seed>, and writes NEW_SPEC:
the same spec with budgets [B1], those methods, the teacher as a checkpoint (not remade), "out"
NEW_FOLDER and resume.allow=train.steps, so that `benchmarks/study.py NEW_SPEC` resumes every run
from B0 to B1 (the runner resumes a run folder that lacks its final checkpoint). With a constant
learning rate after the warm-up and the EMA's step-based warm-up, that is the same computation as a
B1-step run from the start (tests/scenario_study.sh compares the checkpoints and eval numbers bit for
bit; benchmarks/studies/toy_s1_protocol.py's extend stage is the same idea). A learning-rate
schedule that depends on train.steps (cosine) would change: this refuses such a spec (the schedule
set by the spec, or recorded in a run's checkpoint however it was set), and a spec that
benchmarks/study.py would refuse. Runs
already copied are left alone, so it can be rerun. FOLDER is given as the first study's --out was
(the spec's {study} and {prep} become paths in it, and the continued runs must name their teacher
and files as the first ones did: amd refuses a resume whose settings changed)."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import study  # noqa: E402  (benchmarks/study.py: the spec's checks)


def fail(msg):
    sys.exit(f"extend: {msg}")


def run_schedule(ckpt):
    """optim.schedule as the run recorded it: the checkpoint's `config` attribute holds every setting
    the run resolved (defaults, its config file, its command line)."""
    import h5py
    with h5py.File(ckpt, "r") as f:
        text = f.attrs["config"]
    text = text.decode() if isinstance(text, bytes) else str(text)
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "optim.schedule":
            return value.strip()
    return "constant"


def copy_runs(folder, new_folder, methods, seeds, b0, b1):
    """Each run's last checkpoint and log, FOLDER/runs/<m>_steps<b0>_seed<s> to
    NEW_FOLDER/runs/<m>_steps<b1>_seed<s> (whole or not at all: through a .tmp folder); runs already
    there are left alone. Returns how many were copied."""
    copied = 0
    for m in methods:
        for seed in seeds:
            src = os.path.join(folder, "runs", f"{m}_steps{b0}_seed{seed}")
            dst = os.path.join(new_folder, "runs", f"{m}_steps{b1}_seed{seed}")
            if os.path.exists(dst):
                continue
            ckpt = os.path.join(src, f"ckpt_{b0:08d}.h5")
            if not os.path.exists(ckpt):
                fail(f"{src} has no ckpt_{b0:08d}.h5 (has that study finished?)")
            os.makedirs(dst + ".tmp", exist_ok=True)
            for f in (ckpt, os.path.join(src, "log.h5")):
                shutil.copy2(f, os.path.join(dst + ".tmp", os.path.basename(f)))
            os.replace(dst + ".tmp", dst)
            copied += 1
    return copied


def main(argv):
    if len(argv) < 6:
        fail("usage: extend.py SPEC FOLDER B0 B1 NEW_SPEC NEW_FOLDER [METHOD ...]")
    spec_path, folder, b0, b1, new_spec, new_folder = argv[:6]
    try:
        b0, b1 = int(b0), int(b1)
    except ValueError:
        fail(f"the budgets must be integers, not {argv[2]!r} and {argv[3]!r}")
    if not 0 < b0 < b1:
        fail(f"the new budget {b1} must be larger than the old one {b0} (and both positive)")
    try:
        study.load_spec(spec_path)  # refuses a spec the runner would refuse, naming the problem
    except study.SpecError as e:
        fail(str(e))
    spec = json.load(open(spec_path))
    methods = argv[6:] or list(spec["methods"])
    unknown = [m for m in methods if m not in spec["methods"]]
    if unknown:
        fail(f"methods {unknown} are not in {spec_path} ({', '.join(spec['methods'])})")
    if b0 not in spec["budgets"]:
        fail(f"{spec_path} has no budget {b0} (budgets {spec['budgets']})")
    common = spec.get("distill", {}).get("settings", {})
    for m in methods:
        s = spec["methods"][m]
        s = s.get("distill", {}) if set(s) <= {"distill", "sample", "eval"} and s else s
        schedules = {dict(common, **s).get("optim.schedule", "constant")}  # the spec's, then each run's own
        for seed in spec["seeds"]:
            ckpt = os.path.join(folder, "runs", f"{m}_steps{b0}_seed{seed}", f"ckpt_{b0:08d}.h5")
            if os.path.exists(ckpt):
                schedules.add(run_schedule(ckpt))
        if schedules != {"constant"}:
            fail(f"method {m} uses a learning-rate schedule over train.steps: its continuation would not be "
                 f"the run a {b1}-step study makes")
    copied = copy_runs(folder, new_folder, methods, spec["seeds"], b0, b1)
    spec["budgets"] = [b1]
    if isinstance(spec["teacher"], dict):  # made by the first study: the continuation uses it as it is
        spec["teacher"] = spec["teacher"]["ckpt"]
    # {study} and {prep} name the first study's folder, which the continued runs go on using
    subst = {"{study}": folder, "{prep}": os.path.join(folder, "teacher")}

    def fill(v):
        if isinstance(v, str):
            for k, x in subst.items():
                v = v.replace(k, x)
            return v
        if isinstance(v, list):
            return [fill(x) for x in v]
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return v
    spec = fill(spec)
    spec["methods"] = {m: spec["methods"][m] for m in methods}
    if spec.get("baseline") not in spec["methods"]:
        spec["baseline"] = methods[0]
    spec["contrasts"] = [c for c in spec.get("contrasts", []) if all(x in spec["methods"] for x in c)]
    spec["out"] = os.path.abspath(new_folder)
    spec.setdefault("distill", {}).setdefault("settings", {})["resume.allow"] = "train.steps"
    spec["description"] = (spec.get("description", "") + f"; continued from {b0} to {b1} steps "
                           f"(benchmarks/studies/extend.py, from {os.path.abspath(folder)})")
    with open(new_spec + ".tmp", "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(new_spec + ".tmp", new_spec)
    print(f"extend: {copied} runs copied into {new_folder}/runs; spec {new_spec} ({len(methods)} methods, "
          f"{len(spec['seeds'])} seeds, {b0} -> {b1} steps)")


if __name__ == "__main__":
    main(sys.argv[1:])
