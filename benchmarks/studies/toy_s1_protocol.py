#!/usr/bin/python3
"""The protocol of the tuned toy study at S = 1 (issue 17), as code: it writes each stage's spec from
the results of the stage before, so the whole chain can be rerun and checked.

    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py tune1                 # writes toy_s1_tune1.json
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py tune2 STUDY1          # from STUDY1/results.csv
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py test STUDY1 STUDY2    # the winners, test seeds
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py stability STUDY1 STUDY2
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py stability_high       # from toy_s1_stability.json
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py preference STUDY1 STUDY2
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py multistep STUDY1 STUDY2  # toy_s2_test, toy_s4_test
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py extend STUDY1 STUDY2 TEST  # toy_s1_test3200
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py retune S STUDY1 STUDY2      # toy_sS_tune, S = 2 or 4
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py variants STUDY1 STUDY2 TEST # toy_s1_variants
    /usr/bin/python3 benchmarks/studies/toy_s1_protocol.py retest S STUDY1 STUDY2 TUNE # toy_sS_tuned

Fair tuning: every method gets the same number of settings, 9, each run on the same 2 validation
seeds (900, 901; never a test seed) at 1600 steps:
  stage 1 (tune1), the same 4-point grid for every method: optim.lr_student 5e-4 or 1.5e-3 (with
    optim.lr_fake twice it) x fake_per_gen 2 or 5;
  stage 2 (tune2), 5 points around each method's stage-1 winner: guidance 2 and 3 and a cosine
    learning-rate decay (optim.schedule=cosine; the same 3 for every method) and 2 points of the
    method's own settings (dmd: its regression weight 0.25 and 1; dmd2: the GAN weight 1e-2 and
    1e-4; dmdr: the reward weight 0.01 and 0.2; amd: s = 1, and beta
    on the fake teacher's repulsion only). Left at their defaults for want of time on 2 cores:
    amd.lambda_rls (1), amd.rls_norm (raw), amd.spread_floor (0).
Selection (`select`): the lowest mean off-manifold fraction (EMA weights, 8192 samples) among the
settings whose mean coverage is at least 0.99 (a setting that drops a mode is not chosen however
sharp it is); when none passes, the highest mean coverage, and among equal coverage the lowest
off-manifold (until 2026-12-05 this fallback was the lowest off-manifold of all, which at S = 2 chose
a setting of AMD at coverage 0.56 over one at 0.88; no S = 1 choice differs between the two rules); among the
9 of a method. The test stage runs each winner on 10 fresh seeds (100-109)
at 1600 steps, the tuning budget (3200 did not fit the session's 2 cores: 40 runs of about 5 min
each), with held-out curves every 400 steps, EMA and raw.
The multistep stage runs the same S = 1 winners as 2- and 4-step students (student.steps 2 and 4) on
the same 10 test seeds: the settings are not retuned per S (no method gets tuning at S = 2 or 4, so
the budget stays equal; a method whose best setting moves with S is at a disadvantage there).
The extend stage continues every run of the test study (TEST, its folder) from 1600 to 3200 steps,
to see whether the verdict holds where the EMA curves flatten: it copies each run's last checkpoint
and log into the new study's run folder, which the runner then resumes with resume.allow=train.steps.
With the constant learning rate and the step-based EMA warm-up that is the same computation as a
3200-step run from the start (checked bit for bit on a 10 + 10 step run: checkpoint and /eval rows).
The retune stage tunes again at S = 2 or 4, with the same grid for every method: stage 1's 4 points
(optim.lr_student 5e-4 or 1.5e-3, optim.lr_fake twice it, fake_per_gen 2 or 5) on top of the method's
S = 1 winner (its guidance, schedule and own settings kept), as an S-step student, validation seeds
900 and 901, 1600 steps. 4 settings rather than 9: the second stage did not fit the 2 cores; every
method gets the same 4, so the comparison stays fair, but a method whose S = 1 choice of guidance or
own setting is wrong at S steps keeps it. The retest stage runs each retune winner (the same
selection rule, among its 4) on the 10 test seeds.
The variants stage is an ablation of AMD at its S = 1 winner, not a tuning: each change of one
setting (Dynamic Score Adaptation off, s = 0; Repulsive Landscape Sharpening off, lambda_rls = 0, or
doubled; its weights normalized to mean 1; a floor of half the batch's reward spread; beta on the
fake teacher's repulsion only, at s = 0.05, since at s = 1 that variant's term dominates the step,
docs/DESIGN.md 4.7) on the 10 test seeds, each paired against the winner itself (`amd`, whose runs
are the test study's, copied: the same binary computes the same cells).
"""
import csv
import json
import os
import shutil
import sys

import extend  # benchmarks/studies/extend.py (this script's folder is first on sys.path)

# where the specs are written and read back (TOY_PROTOCOL_SPECS: another folder, for the tests)
HERE = os.environ.get("TOY_PROTOCOL_SPECS") or os.path.dirname(os.path.abspath(__file__))
METHODS = ["dmd", "dmd2", "dmdr", "amd"]
TEACHER_CMDS = [["{amd}", "data", "toy2d", "out={prep}/toy.h5"],
                ["{amd}", "train", "jobs/toy_teacher.cfg", "data={prep}/toy.h5", "run={prep}/run", "threads={threads}"]]
METRICS = ["off_manifold", "coverage", "mass_error", "wrong_class", "sliced_w1", "log_density"]
VALIDATION = [900, 901]
TEST = list(range(100, 110))
STAGE2 = {  # name suffix -> settings, on top of the stage-1 winner
    "dmd": {"g2": {"guidance": 2.0}, "g3": {"guidance": 3.0}, "cos": {"optim.schedule": "cosine"},
            "reg0.25": {"dmd.lambda_reg": 0.25},
            "reg1": {"dmd.lambda_reg": 1.0}},
    "dmd2": {"g2": {"guidance": 2.0}, "g3": {"guidance": 3.0}, "cos": {"optim.schedule": "cosine"},
             "gan1e-2": {"gan.lambda": 1e-2},
             "gan1e-4": {"gan.lambda": 1e-4}},
    "dmdr": {"g2": {"guidance": 2.0}, "g3": {"guidance": 3.0}, "cos": {"optim.schedule": "cosine"},
             "r0.01": {"dmdr.lambda_r": 0.01},
             "r0.2": {"dmdr.lambda_r": 0.2}},
    "amd": {"g2": {"guidance": 2.0}, "g3": {"guidance": 3.0}, "cos": {"optim.schedule": "cosine"},
            "s1": {"amd.s": 1.0},
            "betafake": {"amd.beta_on": "fake"}},
}


def spec(description, out, teacher, methods, budgets, seeds, baseline, settings, metrics=METRICS, **extra):
    s = {"description": description, "out": out, "teacher": teacher,
         "distill": {"config": "jobs/toy_amd.cfg", "settings": settings},
         "methods": methods, "budgets": budgets, "seeds": seeds, "sample": {"n": 8192},
         "baseline": baseline, "metrics": metrics}
    s.update(extra)
    return s


def settings_of(study):
    """{method name: its amd distill settings} from a study folder's spec (cells.json keeps arguments; the
    spec is read back from the protocol's own file)."""
    name = os.path.basename(os.path.normpath(study))
    with open(os.path.join(HERE, name + ".json")) as f:
        return json.load(f)["methods"]


def means(study):
    """{method: {metric: mean}} of a study's results.csv (its only budget)."""
    out = {}
    with open(os.path.join(study, "results.csv")) as f:
        for r in csv.DictReader(f):
            if r["table"] == "mean" and r["n"] not in ("", "0"):
                out.setdefault(r["method"], {})[r["metric"]] = float(r["mean"])
    return out


def select(studies, family):
    """The winner of a method family over the given studies: (name, settings, its means)."""
    cands = []
    for st in studies:
        m, sets = means(st), settings_of(st)
        for name, v in m.items():
            if sets[name]["method"] == family and len(v) == len(METRICS):
                cands.append((name, sets[name], v))
    if not cands:
        sys.exit(f"toy_s1_protocol: no evaluated setting of {family} in {studies}")
    # full coverage (>= 0.99) ties; below it more coverage wins; then the lowest off-manifold
    return min(cands, key=lambda c: (-min(c[2]["coverage"], 0.99), c[2]["off_manifold"]))


def write(name, s):
    path = os.path.join(HERE, name + ".json")
    with open(path, "w") as f:
        json.dump(s, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    stage, studies = sys.argv[1], sys.argv[2:]
    tune_settings = {"log.every": 200, "log.advantage_every": 200, "ckpt.every": 800, "eval.every": 400, "eval.n": 4096}
    teacher1 = {"ckpt": "{prep}/run", "commands": TEACHER_CMDS}
    shared_teacher = "runs/study/toy_s1_tune1/teacher/run"
    if stage == "tune1":
        methods = {}
        for m in METHODS:
            for lr, lrn in ((5e-4, "lr5e-4"), (1.5e-3, "lr1.5e-3")):
                for f in (2, 5):
                    methods[f"{m}_{lrn}_f{f}"] = {"method": m, "optim.lr_student": lr, "optim.lr_fake": 2 * lr,
                                                  "fake_per_gen": f}
        write("toy_s1_tune1", spec(
            "Tuning, stage 1 of 2, toy data, S = 1 (issue 17; benchmarks/studies/toy_s1_protocol.py): the same 4-point "
            "grid for every method (optim.lr_student 5e-4 or 1.5e-3 with optim.lr_fake twice it, fake_per_gen 2 or 5), "
            "other settings those of jobs/toy_amd.cfg, EMA weights, 1600 steps, validation seeds 900 and 901.",
            "runs/study/toy_s1_tune1", teacher1, methods, [1600], VALIDATION, "dmd2_lr5e-4_f5", tune_settings))
    elif stage == "tune2":
        methods = {}
        for m in METHODS:
            name, base, _ = select(studies, m)
            for suffix, extra in STAGE2[m].items():
                methods[f"{name}_{suffix}"] = dict(base, **extra)
        write("toy_s1_tune2", spec(
            "Tuning, stage 2 of 2, toy data, S = 1 (issue 17; benchmarks/studies/toy_s1_protocol.py): 5 points around "
            "each method's stage-1 winner (guidance 2 and 3 and a cosine decay for every method, 2 of the method's own "
            "settings), "
            "1600 steps, validation seeds 900 and 901.",
            "runs/study/toy_s1_tune2", shared_teacher, methods, [1600], VALIDATION,
            next(k for k in methods if k.startswith("dmd2_")), tune_settings))
    elif stage == "stability_high":
        # the 8x and 16x cells of the stability spec with their 1x references, as a study of their own
        with open(os.path.join(HERE, "toy_s1_stability.json")) as f:
            s = json.load(f)
        keep = lambda m: m.endswith(("_lr1x", "_lr8x", "_lr16x"))
        s["methods"] = {k: v for k, v in s["methods"].items() if keep(k)}
        s["contrasts"] = [c for c in s["contrasts"] if all(keep(m) for m in c)]
        s["out"] = "runs/study/toy_s1_stability_high"
        s["description"] = (
            "The 8x and 16x cells of toy_s1_stability.json with their 1x references (issue 17, claim b): the same "
            "methods, settings, seeds and failure rule, the 2x and 4x cells left out (measured in toy_s1_stability, "
            "binary of 5386dca); written from toy_s1_stability.json by keeping its _lr1x, _lr8x and _lr16x methods and "
            "the contrasts among them.")
        write("toy_s1_stability_high", s)
    elif stage in ("test", "stability", "preference", "multistep", "extend"):
        win = {m: select(studies[:2], m) for m in METHODS}  # the tuning's winners (extend's TEST is not tuning)
        for m, (name, sets, v) in win.items():
            print(f"{m}: {name} (validation off_manifold {v['off_manifold']:.4f}, coverage {v['coverage']:.3f})")
        if stage == "test":
            write("toy_s1_test", spec(
                "The tuned toy study at S = 1 (issue 17; benchmarks/studies/toy_s1_protocol.py): each method's winner of "
                "the two tuning stages (9 settings each, validation seeds 900 and 901), 10 fresh test seeds, 1600 steps "
                "(the tuning budget), "
                "held-out curves every 400 steps (raw and EMA rows), the EMA student sampled.",
                "runs/study/toy_s1_test", shared_teacher, {m: win[m][1] for m in METHODS}, [1600], TEST, "dmd2",
                {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 800, "eval.every": 400, "eval.n": 4096}))
        elif stage == "extend":
            if len(studies) != 3:
                sys.exit("toy_s1_protocol: extend takes STUDY1 STUDY2 TEST (the test study's folder)")
            test, out = studies[2], "runs/study/toy_s1_test3200"
            extend.copy_runs(test, out, METHODS, TEST, 1600, 3200)  # benchmarks/studies/extend.py's copy
            print(f"copied the 1600-step runs of {test} into {out}/runs")
            write("toy_s1_test3200", spec(
                "The tuned toy study at S = 1 continued to 3200 steps (issue 17; benchmarks/studies/toy_s1_protocol.py "
                "extend): every run of toy_s1_test resumed from its 1600-step checkpoint (resume.allow=train.steps; the "
                "same computation as a 3200-step run), the same 10 test seeds, held-out curves every 400 steps.",
                out, shared_teacher, {m: win[m][1] for m in METHODS}, [3200], TEST, "dmd2",
                {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 800, "eval.every": 400, "eval.n": 4096,
                 "resume.allow": "train.steps"}))
        elif stage == "multistep":
            for S in (2, 4):
                write(f"toy_s{S}_test", spec(
                    f"The toy study at S = {S} (issue 17; benchmarks/studies/toy_s1_protocol.py): each method's S = 1 "
                    f"winner (not retuned) as a {S}-step student, the 10 test seeds of the S = 1 study, 1600 steps, "
                    "held-out curves every 400 steps (raw and EMA rows), the EMA student sampled.",
                    f"runs/study/toy_s{S}_test", shared_teacher,
                    {m: dict(win[m][1], **{"student.steps": S}) for m in METHODS}, [1600], TEST, "dmd2",
                    {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 800, "eval.every": 400,
                     "eval.n": 4096}))
        elif stage == "stability":
            methods = {}
            for m in METHODS:
                for x in (1, 2, 4, 8, 16):
                    s = dict(win[m][1])
                    s["optim.lr_student"] = x * s["optim.lr_student"]
                    s["optim.lr_fake"] = x * s["optim.lr_fake"]
                    methods[f"{m}_lr{x}x"] = s
            write("toy_s1_stability", spec(
                "Stability (issue 17, claim b; benchmarks/studies/toy_s1_protocol.py): each method's tuned setting at 1x, "
                "2x, 4x, 8x and 16x its tuned learning rates (student and fake teacher), 1600 steps, 4 test seeds. A cell fails "
                "when it diverges (a non-finite loss or gradient; no rollback, which would halve the learning rate under "
                "test: exit 3; a loss-spike criterion is no use here, loss_dm jumps 100-fold in healthy runs) or collapses: coverage below 0.75 (two of the 8 modes "
                "lost) or off-manifold above 0.9.",
                "runs/study/toy_s1_stability", shared_teacher, methods, [1600], TEST[:4], "dmd2_lr1x",
                {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 400, "guard.max_rollbacks": 0},
                failure={"coverage": 0.75, "off_manifold": 0.9},
                # how much each method loses at 2x and 4x (paired by seed), and AMD against DMD2 at each rate
                contrasts=[[f"{m}_lr{x}x", f"{m}_lr1x"] for m in METHODS for x in (2, 4, 8, 16)]
                + [[f"amd_lr{x}x", f"dmd2_lr{x}x"] for x in (1, 2, 4, 8, 16)]
                # AMD's loss from 1x against each baseline's (a difference in differences)
                + [[f"amd_lr{x}x", "amd_lr1x", f"{m}_lr{x}x", f"{m}_lr1x"] for m in METHODS[:3] for x in (2, 4, 8, 16)]))
        else:
            pref = "4,4,4,4,1,1,1,1"  # modes 0-3 preferred: one of the two modes of each class
            methods = {}
            for m in ("dmd2", "dmdr", "amd"):
                methods[m] = dict(win[m][1], **{"reward.preference": pref})
            methods["rls_only"] = dict(win["amd"][1], **{"reward.preference": pref, "amd.s": 0.0})
            write("toy_s1_preference", spec(
                "Selective learning (issue 17, claim c; benchmarks/studies/toy_s1_protocol.py): a preference reward that "
                "weights modes 0-3 (one of each class's two modes) 4 times the others (reward.preference "
                f"{pref}); dmd2 (which ignores the reward), dmdr, amd and RLS alone (amd with s = 0: no Dynamic Score "
                "Adaptation), each at its tuned setting, 1600 steps, 4 test seeds. mode_share:0,1,2,3 is the share of "
                "on-manifold mass on the preferred modes (0.5 without preference), coverage whether the others survive.",
                "runs/study/toy_s1_preference", shared_teacher, methods, [1600], TEST[:4], "dmd2",
                {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 400},
                metrics=["mode_share:0,1,2,3", "coverage", "off_manifold", "wrong_class", "sliced_w1"]))
    elif stage == "variants":
        if len(studies) != 3:
            sys.exit("toy_s1_protocol: variants takes STUDY1 STUDY2 TEST (the test study's folder)")
        name, base, _ = select(studies[:2], "amd")
        test, out = studies[2], "runs/study/toy_s1_variants"
        if settings_of(test)["amd"] != base:
            sys.exit(f"toy_s1_protocol: {test}'s amd is not the tuning's winner {name}")
        for sub, suffix in (("runs", ""), ("evals", "_eval.h5"), ("evals", "_samples.h5")):
            for seed in TEST:
                src = os.path.join(test, sub, f"amd_steps1600_seed{seed}{suffix}")
                dst = os.path.join(out, sub, f"amd_steps1600_seed{seed}{suffix}")
                if os.path.exists(dst):
                    continue
                if not os.path.exists(src):
                    sys.exit(f"toy_s1_protocol: {src} is missing (run the test study first)")
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if os.path.isdir(src):
                    shutil.copytree(src, dst + ".tmp")
                else:
                    shutil.copy2(src, dst + ".tmp")
                os.replace(dst + ".tmp", dst)
        variants = {"s0": {"amd.s": 0.0}, "rls0": {"amd.lambda_rls": 0.0}, "rls2": {"amd.lambda_rls": 2.0},
                    "mean1": {"amd.rls_norm": "mean1"}, "floor0.5": {"amd.spread_floor": 0.5},
                    "fake_s0.05": {"amd.beta_on": "fake", "amd.s": 0.05}}
        methods = {"amd": base}
        methods.update({f"amd_{k}": dict(base, **v) for k, v in variants.items()})
        write("toy_s1_variants", spec(
            "AMD's components and variants at S = 1 (issue 17; benchmarks/studies/toy_s1_protocol.py variants): an "
            f"ablation at AMD's tuned setting ({name}), one setting changed at a time (s = 0: RLS alone; lambda_rls 0: "
            "Dynamic Score Adaptation alone; lambda_rls 2; RLS weights of mean 1; a reward-spread floor of 0.5; beta on "
            "the fake teacher's repulsion only, at s = 0.05), the 10 test seeds, 1600 steps, each against the tuned "
            "setting itself (its runs are the test study's).",
            out, shared_teacher, methods, [1600], TEST, "amd",
            {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 800, "eval.every": 400, "eval.n": 4096}))
    elif stage in ("retune", "retest"):
        if len(studies) < 3 or studies[0] not in ("2", "4"):
            sys.exit(f"toy_s1_protocol: {stage} takes S (2 or 4) STUDY1 STUDY2" + (" TUNE" if stage == "retest" else ""))
        S, studies = int(studies[0]), studies[1:]
        if stage == "retune":
            methods = {}
            for m in METHODS:
                name, base, _ = select(studies, m)
                for lr, lrn in ((5e-4, "lr5e-4"), (1.5e-3, "lr1.5e-3")):
                    for f in (2, 5):
                        methods[f"{m}_{lrn}_f{f}"] = dict(base, **{"optim.lr_student": lr, "optim.lr_fake": 2 * lr,
                                                                   "fake_per_gen": f, "student.steps": S})
            write(f"toy_s{S}_tune", spec(
                f"Tuning at S = {S}, toy data (issue 17; benchmarks/studies/toy_s1_protocol.py retune): the same 4-point "
                "grid for every method (optim.lr_student 5e-4 or 1.5e-3 with optim.lr_fake twice it, fake_per_gen 2 or "
                f"5) on top of its S = 1 winner, as a {S}-step student, EMA weights, 1600 steps, validation seeds 900 "
                "and 901.",
                f"runs/study/toy_s{S}_tune", shared_teacher, methods, [1600], VALIDATION, "dmd2_lr1.5e-3_f5",
                tune_settings))
        else:
            if len(studies) != 3:
                sys.exit("toy_s1_protocol: retest takes S STUDY1 STUDY2 TUNE")
            win = {m: select(studies[2:], m) for m in METHODS}
            for m, (name, sets, v) in win.items():
                print(f"{m}: {name} (validation off_manifold {v['off_manifold']:.4f}, coverage {v['coverage']:.3f})")
            write(f"toy_s{S}_tuned", spec(
                f"The toy study at S = {S}, retuned (issue 17; benchmarks/studies/toy_s1_protocol.py retest): each "
                f"method's winner of the S = {S} tuning (4 settings each, validation seeds 900 and 901), the 10 test seeds, "
                "1600 steps, held-out curves every 400 steps (raw and EMA rows), the EMA student sampled.",
                f"runs/study/toy_s{S}_tuned", shared_teacher, {m: win[m][1] for m in METHODS}, [1600], TEST, "dmd2",
                {"log.every": 400, "log.advantage_every": 400, "ckpt.every": 800, "eval.every": 400, "eval.n": 4096}))
    else:
        sys.exit(f"toy_s1_protocol: unknown stage {stage!r} (tune1, tune2, test, stability, stability_high, preference, multistep, "
                 "extend, variants, retune, retest)")


if __name__ == "__main__":
    main()
