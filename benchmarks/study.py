#!/usr/bin/python3
"""A method study: every (method, budget, seed) cell of a spec distilled, sampled and evaluated, then
a table of means with 95% confidence intervals and each method's paired difference against a
baseline on the same seeds, with a verdict (issue 17, item 3; docs/study.md).

    /usr/bin/python3 benchmarks/study.py SPEC.json [--out DIR] [--jobs N] [--threads T] [--nice K]
    /usr/bin/python3 benchmarks/study.py SPEC.json --slurm [--submit]   # the cells as a Slurm array
    /usr/bin/python3 benchmarks/study.py SPEC.json --report              # only the table, from what exists
    /usr/bin/python3 benchmarks/study.py --self-test                     # the statistics against known values

A cell runs `amd distill` into STUDY/runs/<cell>, then `amd sample` and `amd eval` into
STUDY/evals/<cell>_samples.h5 and <cell>_eval.h5. A rerun skips a cell whose eval file is complete,
continues a cell whose run folder lacks its final checkpoint with resume=1 and the same settings, and
samples a cell that has its final checkpoint but no eval file: a killed study picks up where it
stopped. STUDY/journal.csv records every action. Every number of the table is read back from the eval
files (and logs, for `log:` metrics) with h5py; the t quantiles are computed here (no SciPy).
This script only drives the `amd` binary: method settings are free key=value overrides of `amd distill`.
Writes STUDY/results.md, results.csv and results.png (matplotlib; left out with a message without it).
"""
import argparse
import csv
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
# the direction of every metric amd eval writes (docs/DESIGN.md sections 6.5 and 9); a spec may name others
DIRECTIONS = {"off_manifold": "lower", "mass_error": "lower", "wrong_class": "lower", "sliced_w1": "lower",
              "fd": "lower", "coverage": "higher", "modes_covered": "higher", "log_density": "higher",
              "precision": "higher", "recall": "higher", "accuracy": "higher", "reward": "higher",
              "samples_per_s": "higher"}
# the GenEval-like scores of `amd eval` on a caption model's samples (docs/DESIGN.md section 9.1)
DIRECTIONS.update({"geneval_" + c: "higher" for c in ("overall", "single", "two", "counting", "position", "seen",
                                                      "heldout")})
SPEC_KEYS = {"description", "out", "amd", "teacher", "distill", "methods", "budgets", "seeds", "sample", "eval",
             "baseline", "metrics", "launcher", "failure", "contrasts"}
# `mode_share:I,J,...`: the share of the on-manifold samples whose nearest mode is one of modes I, J, ...
# (from /eval/mode_mass of a toy eval file); higher is better (the preferred modes of a preference reward)
MODE_SHARE_RE = re.compile(r"^mode_share:(\d+(,\d+)*)$")
DIVERGED_EXIT = 3  # amd distill's exit status after a divergence it could not roll back (docs/DESIGN.md 8.3)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SpecError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------
# statistics: Student t quantiles, intervals over seeds, paired differences and verdicts

def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta function (Numerical Recipes 6.4, Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        even = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
        odd = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
        for num in (even, odd):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom: 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t > 0."""
    tail = 0.5 * betainc(0.5 * df, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The p quantile of Student's t (0.5 < p < 1), by bisection on t_cdf to 1e-12."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_interval(values, level=0.95):
    """(n, mean, low, high): the t interval of the mean over seeds; low = high = NaN when n < 2."""
    n = len(values)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    m = sum(values) / n
    if n < 2:
        return n, m, math.nan, math.nan
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return n, m, m - half, m + half


def verdict(low, high, direction):
    """better / worse / not separable at 95% for an interval of (method - baseline) differences."""
    if math.isnan(low) or math.isnan(high):
        return "too few seeds"
    if low <= 0.0 <= high:
        return "not separable at 95%"
    smaller = high < 0.0
    return "better" if smaller == (direction == "lower") else "worse"


def paired(method_values, baseline_values, direction):
    """The paired difference over the seeds both have: (n, mean, low, high, verdict).
    method_values, baseline_values: {seed: value}."""
    seeds = sorted(set(method_values) & set(baseline_values))
    n, m, lo, hi = mean_interval([method_values[s] - baseline_values[s] for s in seeds])
    return n, m, lo, hi, verdict(lo, hi, direction)


def wilson(k, n, z=1.959963985):
    """(share, low, high): k of n with the 95% Wilson score interval (sound at k = 0 and k = n)."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    center = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return p, max(0.0, center - half), min(1.0, center + half)


def self_test():
    """Known values: t quantiles from tables (to 1e-8), an interval and verdicts on hand-made inputs."""
    ok = True

    def check(name, cond, why=""):
        nonlocal ok
        print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + why))
        ok = ok and cond

    known = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 9: 2.262157163,
             10: 2.228138852, 29: 2.045229642, 100: 1.983971519, 100000: 1.959986}
    for df, q in known.items():
        got = t_quantile(0.975, df)
        check(f"t_quantile_0.975_df{df}", abs(got - q) < 1e-6 * q, f"{got!r} != {q}")
    check("t_quantile_0.95_df5", abs(t_quantile(0.95, 5) - 2.015048373) < 1e-8, repr(t_quantile(0.95, 5)))
    check("t_cdf_symmetric", abs(t_cdf(-1.3, 7) + t_cdf(1.3, 7) - 1.0) < 1e-14)
    check("t_cdf_df1_cauchy", abs(t_cdf(1.0, 1) - 0.75) < 1e-12, repr(t_cdf(1.0, 1)))
    # 1, 2, 3: mean 2, sd 1, half width 4.302652730 / sqrt(3)
    n, m, lo, hi = mean_interval([1.0, 2.0, 3.0])
    half = 4.302652730 / math.sqrt(3)
    check("interval_1_2_3", n == 3 and m == 2.0 and abs(lo - (2 - half)) < 1e-8 and abs(hi - (2 + half)) < 1e-8,
          repr((n, m, lo, hi)))
    n, m, lo, hi = mean_interval([0.5])
    check("interval_one_seed_nan", n == 1 and m == 0.5 and math.isnan(lo) and math.isnan(hi))
    base = {0: 0.50, 1: 0.60, 2: 0.70}
    cases = [  # (method values, direction, expected verdict)
        ({0: 0.40, 1: 0.51, 2: 0.59}, "lower", "better"),  # differences -0.10, -0.09, -0.11
        ({0: 0.40, 1: 0.51, 2: 0.59}, "higher", "worse"),
        ({0: 0.60, 1: 0.69, 2: 0.81}, "lower", "worse"),
        ({0: 0.60, 1: 0.69, 2: 0.81}, "higher", "better"),
        ({0: 0.40, 1: 0.70, 2: 0.70}, "lower", "not separable at 95%"),  # -0.1, +0.1, 0
        ({0: 0.50, 1: 0.60, 2: 0.70}, "lower", "not separable at 95%"),  # identical: interval [0, 0]
        ({0: 0.45}, "lower", "too few seeds"),
        ({0: 0.45, 1: 0.55, 5: 0.0}, "lower", "better"),  # seed 5 has no baseline: paired over 0 and 1
    ]
    for i, (mv, direction, want) in enumerate(cases):
        got = paired(mv, base, direction)[4]
        check(f"verdict_{i}_{direction}", got == want, f"{got!r} != {want!r}")
    n, m, lo, hi, _ = paired({0: 0.40, 1: 0.51, 2: 0.59}, base, "lower")
    half = 4.302652730 * 0.01 / math.sqrt(3)
    check("paired_interval", n == 3 and abs(m + 0.1) < 1e-12 and abs(lo - (-0.1 - half)) < 1e-8
          and abs(hi - (-0.1 + half)) < 1e-8, repr((n, m, lo, hi)))
    n = paired({0: 0.45, 1: 0.55, 5: 0.0}, base, "lower")[0]
    check("paired_common_seeds_only", n == 2, repr(n))
    # Wilson intervals: 0 of 10 -> [0, 0.2775], 5 of 10 -> [0.2366, 0.7634], 10 of 10 -> [0.7225, 1]
    for k, want in ((0, (0.0, 0.0, 0.27753)), (5, (0.5, 0.23659, 0.76341)), (10, (1.0, 0.72247, 1.0))):
        got = wilson(k, 10)
        check(f"wilson_{k}_of_10", all(abs(g - w) < 1e-4 for g, w in zip(got, want)), repr(got))
    return ok


# ---------------------------------------------------------------------------------------------------
# the spec

def _args_of(settings, where):
    """key=value arguments of a settings object ({key: value}) or list ("key=value")."""
    if isinstance(settings, list):
        for a in settings:
            if not isinstance(a, str) or "=" not in a:
                raise SpecError(f"{where}: {a!r} is not a key=value string")
        return list(settings)
    if not isinstance(settings, dict):
        raise SpecError(f"{where}: expected an object of settings {{\"key\": value}} or a list of \"key=value\"")
    out = []
    for k, v in settings.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (dict, list)) or v is None:
            raise SpecError(f"{where}: setting {k!r} has a value that is not a string, number or boolean")
        out.append(f"{k}={v}")
    return out


def _method_of(settings, where):
    """A method's arguments: {"distill": [...], "sample": [...], "eval": [...]}, from its `amd distill`
    overrides, or from an object with any of "distill", "sample" and "eval" (each overrides of that
    command, after the spec's own: e.g. sampling EMA or raw weights of the same kind of run)."""
    if isinstance(settings, dict) and settings and set(settings) <= {"distill", "sample", "eval"}:
        return {k: _args_of(settings.get(k, {}), f"{where}.{k}") for k in ("distill", "sample", "eval")}
    return {"distill": _args_of(settings, where), "sample": [], "eval": []}


def load_spec(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError as e:
        raise SpecError(f"cannot read the spec: {e}")
    except json.JSONDecodeError as e:
        raise SpecError(f"{path} is not valid JSON: {e}")
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: the spec must be a JSON object")
    problems = [f"unknown key {k!r} (keys: {', '.join(sorted(SPEC_KEYS))})" for k in spec if k not in SPEC_KEYS]
    for k in ("teacher", "methods", "budgets", "seeds", "baseline", "metrics"):
        if k not in spec:
            problems.append(f"{k!r} is required")
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems))
    t = spec["teacher"]
    if isinstance(t, str):
        t = {"ckpt": t}
    if not isinstance(t, dict) or not isinstance(t.get("ckpt"), str) or set(t) - {"ckpt", "commands"}:
        raise SpecError(f"{path}: 'teacher' must be a checkpoint path or "
                        "{\"ckpt\": PATH, \"commands\": [[ARG, ...], ...]}")
    cmds = t.get("commands", [])
    if not isinstance(cmds, list) or not all(isinstance(c, list) and c and all(isinstance(a, str) for a in c)
                                             for c in cmds):
        raise SpecError(f"{path}: 'teacher.commands' must be a list of argument lists")
    d = spec.get("distill", {})
    if not isinstance(d, dict) or set(d) - {"config", "settings"}:
        raise SpecError(f"{path}: 'distill' must be {{\"config\": FILE.cfg, \"settings\": {{...}}}}")
    methods = spec["methods"]
    if not isinstance(methods, dict) or not methods:
        raise SpecError(f"{path}: 'methods' must be a non-empty object {{name: {{key: value, ...}}}}")
    for name in methods:
        if not NAME_RE.match(name):
            raise SpecError(f"{path}: method name {name!r} must be letters, digits, '_', '.', '-'")
    budgets, seeds = spec["budgets"], spec["seeds"]
    for key, vals, least in (("budgets", budgets, 1), ("seeds", seeds, 0)):
        good = isinstance(vals, list) and vals and len(set(vals)) == len(vals)
        if not good or not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in vals):
            raise SpecError(f"{path}: {key!r} must be a non-empty list of distinct integers >= {least}")
    if spec["baseline"] not in methods:
        raise SpecError(f"{path}: the baseline {spec['baseline']!r} is not one of the methods ({', '.join(methods)})")
    metrics = spec["metrics"]
    if isinstance(metrics, list):
        unknown = [m for m in metrics if m not in DIRECTIONS and not m.startswith("mode_share")]
        if unknown:
            raise SpecError(f"{path}: metrics {unknown} have no known direction: give them as "
                            "{\"name\": \"lower\"|\"higher\"}")
        metrics = {m: DIRECTIONS.get(m, "higher") for m in metrics}
    if not isinstance(metrics, dict) or not metrics or any(v not in ("lower", "higher") for v in metrics.values()):
        raise SpecError(f"{path}: 'metrics' must be a list of known metrics or an object "
                        "{name: \"lower\"|\"higher\"}")
    for m in metrics:
        if m.startswith("mode_share") and not MODE_SHARE_RE.match(m):
            raise SpecError(f"{path}: metric {m!r}: write mode_share:I,J,... with the mode indices")
    failure = spec.get("failure", {})
    if not isinstance(failure, dict) or any(k not in metrics or isinstance(v, bool) or not isinstance(v, (int, float))
                                            for k, v in failure.items()):
        raise SpecError(f"{path}: 'failure' must be an object {{metric: threshold}} over the spec's metrics "
                        "(a cell fails when a metric is beyond its threshold on the bad side)")
    contrasts = spec.get("contrasts", [])
    if not isinstance(contrasts, list) or not all(
            isinstance(c, list) and len(c) in (2, 4) and all(isinstance(x, str) and x in methods for x in c)
            and c[0] != c[1] and (len(c) == 2 or c[2] != c[3]) for c in contrasts):
        raise SpecError(f"{path}: 'contrasts' must be a list of [METHOD, REFERENCE] pairs of two different methods "
                        f"of the spec ({', '.join(methods)}), or of [A, B, C, D] (the difference in differences "
                        "(A - B) - (C - D))")
    launcher = spec.get("launcher", [])
    if not isinstance(launcher, list) or not all(isinstance(a, str) for a in launcher):
        raise SpecError(f"{path}: 'launcher' must be a list of strings (e.g. [\"mpirun\", \"-np\", \"2\"])")
    return {
        "path": os.path.abspath(path),
        "out": spec.get("out", os.path.join("runs", "study", os.path.splitext(os.path.basename(path))[0])),
        "amd": spec.get("amd", "amd"),
        "teacher": t["ckpt"], "teacher_commands": cmds,
        "config": d.get("config", ""), "common": _args_of(d.get("settings", {}), "distill.settings"),
        "methods": {n: _method_of(s, f"methods.{n}") for n, s in methods.items()},
        "budgets": budgets, "seeds": seeds,
        "sample": _args_of(spec.get("sample", {}), "sample"), "eval": _args_of(spec.get("eval", {}), "eval"),
        "baseline": spec["baseline"], "metrics": metrics, "launcher": launcher,
        "contrasts": [tuple(c) for c in contrasts],
        "failure": {k: float(v) for k, v in failure.items()}, "record_divergence": "failure" in spec,
    }


def cell_name(method, budget, seed):
    return f"{method}_steps{budget}_seed{seed}"


def cells_of(spec):
    return [(m, b, s) for b in spec["budgets"] for s in spec["seeds"] for m in spec["methods"]]


# ---------------------------------------------------------------------------------------------------
# running the cells

class Study:
    def __init__(self, spec, out, threads, nice):
        self.spec, self.out, self.threads, self.nice = spec, out, threads, nice
        amd = spec["amd"]
        self.amd = os.path.join(ROOT, amd) if os.sep in amd or amd == "amd" else amd
        self.subst = {"study": out, "prep": os.path.join(out, "teacher"), "amd": self.amd, "threads": str(threads)}
        self.teacher = self.fill(spec["teacher"])
        self.lock = threading.Lock()
        self.procs = set()
        self.stopping = False

    def fill(self, s):
        for k, v in self.subst.items():
            s = s.replace("{" + k + "}", v)
        return s

    def path(self, *parts):
        return os.path.join(self.out, *parts)

    def journal(self, cell, action, detail=""):
        with self.lock:
            new = not os.path.exists(self.path("journal.csv"))
            with open(self.path("journal.csv"), "a", newline="") as f:
                w = csv.writer(f)
                if new:
                    w.writerow(["time", "cell", "action", "detail"])
                w.writerow([time.strftime("%Y-%m-%dT%H:%M:%S"), cell, action, detail])
            print(f"study: {cell}: {action}{' ' + detail if detail else ''}", flush=True)

    def run(self, args, log):
        """Runs args (at low priority), output to log; returns the exit status."""
        if self.stopping:
            return 130
        cmd = (["nice", "-n", str(self.nice)] if self.nice else []) + args
        with open(log, "a") as f:
            f.write(f"+ {shlex.join(cmd)}\n")
            f.flush()
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
            with self.lock:
                self.procs.add(p)
                if self.stopping:
                    p.send_signal(signal.SIGTERM)
            rc = p.wait()
            with self.lock:
                self.procs.discard(p)
        return rc

    def stop(self):
        """SIGTERM to every running command: amd checkpoints and exits 75; a rerun continues."""
        self.stopping = True
        with self.lock:
            for p in self.procs:
                p.send_signal(signal.SIGTERM)

    def prepare_teacher(self):
        """Runs the teacher commands once, in STUDY/teacher; cut off, they run again from the first with
        STUDY/teacher emptied (commands that write elsewhere must be rerunnable: amd train resume=1)."""
        cmds = self.spec["teacher_commands"]
        done = self.path("teacher", "done")
        if not cmds or os.path.exists(done):
            return True
        prep = self.path("teacher")
        if os.path.exists(prep):
            subprocess.run(["rm", "-rf", prep], check=True)
        os.makedirs(prep)
        self.journal("teacher", "prepare", f"{len(cmds)} commands")
        for c in cmds:
            rc = self.run([self.fill(a) for a in c], self.path("teacher", "prepare.log"))
            if rc != 0:
                self.journal("teacher", "failed", f"exit {rc}; see {self.path('teacher', 'prepare.log')}")
                return False
        open(done, "w").close()
        self.journal("teacher", "prepared", self.teacher)
        return True

    def check_teacher(self):
        if not os.path.exists(os.path.join(ROOT, self.teacher)):
            raise SpecError(f"the teacher '{self.teacher}' does not exist"
                            + (" after its commands ran" if self.spec["teacher_commands"] else
                               " (train it first, or give teacher.commands that make it)"))

    # the arguments of a cell's three commands: the same on every run of the study, so a resume
    # passes the settings it started with (amd refuses changed ones: docs/DESIGN.md section 8.8)
    def distill_args(self, method, budget, seed):
        cfg = [self.fill(self.spec["config"])] if self.spec["config"] else []
        return (cfg + [self.fill(a) for a in self.spec["common"] + self.spec["methods"][method]["distill"]]
                + [f"teacher={self.teacher}", f"seed={seed}", f"train.steps={budget}"])

    def sample_args(self, method, budget, seed):
        cell = cell_name(method, budget, seed)
        args = [self.fill(a) for a in self.spec["sample"] + self.spec["methods"][method]["sample"]]
        if not any(a.startswith("seed=") for a in args):
            args.append(f"seed={seed}")
        return args + [f"ckpt={self.path('runs', cell, f'ckpt_{budget:08d}.h5')}",
                       f"out={self.path('evals', cell + '_samples.h5')}"]

    def eval_args(self, method, budget, seed):
        cell = cell_name(method, budget, seed)
        return ([self.fill(a) for a in self.spec["eval"] + self.spec["methods"][method]["eval"]]
                + [f"samples={self.path('evals', cell + '_samples.h5')}",
                   f"out={self.path('evals', cell + '_eval.h5')}"])

    def eval_complete(self, cell):
        return (read_eval(self.path("evals", cell + "_eval.h5"), self.spec["metrics"]) is not None
                or os.path.exists(self.path("evals", cell + "_diverged")))

    def check_record(self):
        """Refuses a study folder whose cells ran with other arguments than the spec gives them now (its
        table would mix the two); records the arguments of every cell of the spec. New cells (more
        seeds, budgets or methods) are welcome."""
        record = self.path("cells.json")
        old = json.load(open(record)) if os.path.exists(record) else {}
        now = {}
        for m, b, s in cells_of(self.spec):
            cell = cell_name(m, b, s)
            now[cell] = {"distill": self.distill_args(m, b, s), "sample": self.sample_args(m, b, s),
                         "eval": self.eval_args(m, b, s)}
        changed = []
        for cell in sorted(set(old) & set(now)):
            for cmd in ("distill", "sample", "eval"):
                if old[cell][cmd] != now[cell][cmd]:
                    gone = [a for a in old[cell][cmd] if a not in now[cell][cmd]]
                    new = [a for a in now[cell][cmd] if a not in old[cell][cmd]]
                    changed.append(f"{cell} ({cmd}: {' '.join(gone) or '-'} -> {' '.join(new) or '-'})")
        if changed:
            raise SpecError(f"the study folder {self.out} holds cells run with other settings than the spec gives "
                            f"them now: {'; '.join(changed[:6])}{' ...' if len(changed) > 6 else ''} ({len(changed)} "
                            "in all); choose another --out, or remove those cells' runs/ and evals/ files and their "
                            "entries in cells.json")
        old.update(now)
        with open(record + ".tmp", "w") as f:
            json.dump(old, f, indent=1)
        os.replace(record + ".tmp", record)

    def run_cell(self, method, budget, seed):
        cell = cell_name(method, budget, seed)
        if self.eval_complete(cell):
            self.journal(cell, "skip", "eval file complete")
            return True
        run_dir = self.path("runs", cell)
        log = self.path("logs", cell + ".log")
        final = os.path.join(run_dir, f"ckpt_{budget:08d}.h5")
        if not os.path.exists(final):
            resume = os.path.exists(run_dir)
            self.journal(cell, "resume" if resume else "distill", f"{budget} steps, seed {seed}")
            args = self.distill_args(method, budget, seed) + [f"run={run_dir}", f"threads={self.threads}"]
            if resume:
                args.append("resume=1")
            rc = self.run(self.spec["launcher"] + [self.amd, "distill"] + args, log)
            if rc == DIVERGED_EXIT and self.spec["record_divergence"] and not self.stopping:
                # with a "failure" criterion a divergence is a result (the share of seeds that diverge)
                with open(self.path("evals", cell + "_diverged"), "w") as f:
                    f.write(f"amd distill exit {rc}: diverged; see {log}\n")
                self.journal(cell, "diverged", f"distill exit {rc}; see {log}")
                return True
            if rc != 0 or not os.path.exists(final):
                word = "stopped" if rc == 75 or self.stopping else "failed"
                self.journal(cell, word, f"distill exit {rc}; see {log}")
                return False
            self.journal(cell, "distilled")
        rc = self.run([self.amd, "sample"] + self.sample_args(method, budget, seed) + [f"threads={self.threads}"], log)
        if rc == 0:
            rc = self.run([self.amd, "eval"] + self.eval_args(method, budget, seed) + [f"threads={self.threads}"], log)
        if rc != 0 or not self.eval_complete(cell):
            self.journal(cell, "stopped" if self.stopping else "failed", f"sample/eval exit {rc}; see {log}")
            return False
        self.journal(cell, "evaluated")
        return True

    def prepare(self):
        """The study folder, the record of its cells and the teacher: False when the teacher could not be made."""
        for d in ("runs", "evals", "logs"):
            os.makedirs(self.path(d), exist_ok=True)
        self.check_record()
        if not self.prepare_teacher():
            return False
        self.check_teacher()
        return True

    def run_all(self, jobs):
        if not self.prepare():
            return False
        ex = ThreadPoolExecutor(max_workers=jobs)
        futures = [ex.submit(self.run_cell, *c) for c in cells_of(self.spec)]
        try:
            results = [f.result() for f in futures]
        except KeyboardInterrupt:
            self.stop()
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        ex.shutdown()
        return all(results)

    def slurm(self, submit, jobs, cpus):
        """Writes the cells not yet evaluated as a CELLS file for jobs/sweep_array.sbatch and prints (or runs)
        its sbatch command. Line i (task i): NAME, then tab-separated distill, sample and eval arguments."""
        if not self.prepare():
            return False
        lines = []
        for m, b, s in cells_of(self.spec):
            cell = cell_name(m, b, s)
            if self.eval_complete(cell):
                continue
            parts = [self.distill_args(m, b, s), self.sample_args(m, b, s), self.eval_args(m, b, s)]
            for a in (x for p in parts for x in p):
                if any(ch.isspace() for ch in a):
                    raise SpecError(f"cell {cell}: argument {a!r} holds white space, which a CELLS line cannot carry")
            lines.append("\t".join([cell] + [" ".join(p) for p in parts]))
        if not lines:
            print("study: every cell is evaluated; nothing to submit")
            return True
        stamp, k = time.strftime('%Y%m%d-%H%M%S'), 1
        cells = self.path(f"slurm_cells_{stamp}.txt")
        while os.path.exists(cells):  # an earlier array may still read it
            k += 1
            cells = self.path(f"slurm_cells_{stamp}-{k}.txt")
        with open(cells, "x") as f:
            f.write("\n".join(lines) + "\n")
        env = {"CELLS": cells, "SWEEP": self.path("runs"), "AMD": self.amd}
        limit = f"%{jobs}" if jobs else ""
        cmd = (["sbatch", f"--array=0-{len(lines) - 1}{limit}"] + ([f"--cpus-per-task={cpus}"] if cpus else [])
               + ["jobs/sweep_array.sbatch"])
        text = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(cmd)
        print(f"study: {len(lines)} cells in {cells}\nsubmit from {ROOT}:\n  {text}\n"
              "when the array is done, collect with: "
              f"{shlex.join(['benchmarks/study.py', self.spec['path'], '--out', self.out, '--report'])}"
              " (or rerun without --slurm: it does locally what is missing)")
        if submit:
            r = subprocess.run(cmd[:1] + ["--parsable"] + cmd[1:], env=dict(ENV, **env), cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
            if r.returncode != 0:
                print(f"study: sbatch failed (exit {r.returncode})", file=sys.stderr)
                return False
            print(f"study: submitted array job {r.stdout.strip().split(';')[0]}")
        return True


# ---------------------------------------------------------------------------------------------------
# reading back and reporting

def read_eval(path, metrics, log=None):
    """{metric: value} from an eval file (/eval/<metric>, one value each) and, for `log:COLUMN` metrics,
    the last row of log's /train/COLUMN; None when the file is missing, not an eval file or lacks one."""
    import h5py
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r", locking=False) as f:
            fmt = f.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode()
            if fmt != "amd-eval" or "eval" not in f:
                return None
            out = {}
            for m in metrics:
                if m.startswith("log:"):
                    continue
                share = MODE_SHARE_RE.match(m)
                if share:
                    if "mode_mass" not in f["eval"]:
                        return None
                    mass = [float(x) for x in f["eval"]["mode_mass"][:]]
                    idx = [int(i) for i in share.group(1).split(",")]
                    if any(i >= len(mass) for i in idx):
                        raise SpecError(f"metric {m!r}: {path} has {len(mass)} modes (0 to {len(mass) - 1})")
                    total = sum(mass)
                    out[m] = sum(mass[i] for i in set(idx)) / total if total > 0 else math.nan
                    continue
                if m not in f["eval"]:
                    return None
                out[m] = float(f["eval"][m][0])
    except OSError:
        return None
    if log is not None and any(m.startswith("log:") for m in metrics):
        with h5py.File(log, "r", locking=False) as f:
            for m in metrics:
                if m.startswith("log:"):
                    if m[4:] not in f["train"]:
                        raise SpecError(f"metric {m!r}: the log {log} has no column /train/{m[4:]}")
                    out[m] = float(f["train"][m[4:]][-1])
    return out


def fmt(v):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def diverged_cells(spec, out):
    """{(method, budget): set of seeds} whose distillation diverged (recorded with a "failure" spec)."""
    div = {}
    for m, b, s in cells_of(spec):
        if os.path.exists(os.path.join(out, "evals", cell_name(m, b, s) + "_diverged")):
            div.setdefault((m, b), set()).add(s)
    return div


def failure_rows(spec, values, div):
    """The "failure" table: per (method, budget), cells finished, diverged, collapsed (an evaluated cell with a
    metric beyond its threshold on the bad side) and the failed share with its 95% Wilson interval."""
    rows = []
    for b in spec["budgets"]:
        for m in spec["methods"]:
            v = values.get((m, b), {})
            seeds = set().union(*[set(v.get(k, {})) for k in spec["metrics"]]) if v else set()
            collapsed = set()
            for s in seeds:
                for k, thr in spec["failure"].items():
                    x = v.get(k, {}).get(s)
                    bad = x is None or math.isnan(x) or (x > thr if spec["metrics"][k] == "lower" else x < thr)
                    if bad:
                        collapsed.add(s)
            d = div.get((m, b), set())
            n = len(seeds | d)
            rows.append((m, b, n, len(d), len(collapsed), *wilson(len(d) + len(collapsed), n)))
    return rows


def collect(spec, out):
    """values[(method, budget)][metric] = {seed: value} over the cells that are evaluated."""
    values = {}
    for m, b, s in cells_of(spec):
        cell = cell_name(m, b, s)
        e = read_eval(os.path.join(out, "evals", cell + "_eval.h5"), spec["metrics"],
                      os.path.join(out, "runs", cell, "log.h5"))
        if e is None:
            continue
        for k, v in e.items():
            values.setdefault((m, b), {}).setdefault(k, {})[s] = v
    return values


def paired_table(spec, values, pairs, rows, table, with_reference=False):
    """The markdown lines of a table of paired differences, method minus reference per (method, reference)
    pair and budget, or (A - B) - (C - D) per (A, B, C, D); appends the CSV rows (table `table`, the
    reference, "C - D" for a difference in differences, in the baseline column, the method "A - B")."""
    metrics = spec["metrics"]
    head = "| method | " + ("reference | " if with_reference else "") + "steps | pairs | "
    md = [head + " | ".join(metrics) + " |", "|---" * (len(metrics) + 3 + with_reference) + "|"]

    def per_seed(b, names, k):
        """{seed: value} of one method, or of A - B over the seeds both have."""
        vals = [values.get((x, b), {}).get(k, {}) for x in names]
        if len(vals) == 1:
            return vals[0]
        return {s: vals[0][s] - vals[1][s] for s in set(vals[0]) & set(vals[1])}

    for b in spec["budgets"]:
        for pair in pairs:
            half = len(pair) // 2
            m, ref = " - ".join(pair[:half]), " - ".join(pair[half:])
            cells, npairs = [], 0
            for k, d in metrics.items():
                n, mean, lo, hi, word = paired(per_seed(b, pair[:half], k), per_seed(b, pair[half:], k), d)
                npairs = max(npairs, n)
                cells.append(f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}] {word}" if n else "-")
                rows.append([table, m, b, k, d, n, mean, lo, hi, ref, word if n else ""])
            md.append(f"| {m} | " + (f"{ref} | " if with_reference else "") + f"{b} | {npairs} | "
                      + " | ".join(cells) + " |")
    return md


def report(spec, out):
    values = collect(spec, out)
    metrics, base = spec["metrics"], spec["baseline"]
    rows = []  # the CSV's rows
    arrow = {"lower": "lower is better", "higher": "higher is better"}
    md = [f"# Study {os.path.basename(spec['path'])}", "",
          f"Spec `{spec['path']}`; seeds {spec['seeds']}; budgets (distillation steps) {spec['budgets']}; "
          f"baseline `{base}`. Means over seeds with 95% t intervals [low, high]; paired differences are "
          "method minus baseline on the seeds both have, with their 95% t interval and a verdict.", "",
          "Metrics: " + "; ".join(f"{k} ({arrow[d]})" for k, d in metrics.items()) + ".", "",
          "## Means", "", "| method | steps | seeds | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 3) + "|"]
    for b in spec["budgets"]:
        for m in spec["methods"]:
            v = values.get((m, b), {})
            cells = []
            nseeds = max((len(v.get(k, {})) for k in metrics), default=0)
            for k, d in metrics.items():
                n, mean, lo, hi = mean_interval([v[k][s] for s in sorted(v.get(k, {}))])
                cells.append(f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]" if n else "-")
                rows.append(["mean", m, b, k, d, n, mean, lo, hi, "", ""])
            md.append(f"| {m} | {b} | {nseeds} | " + " | ".join(cells) + " |")
    md += ["", f"## Paired differences against {base}", ""]
    md += paired_table(spec, values, [(m, base) for m in spec["methods"] if m != base], rows, "paired")
    if spec["contrasts"]:
        md += ["", "## Contrasts", "", "Paired differences of the spec's `contrasts`, method minus reference on "
               "the seeds both have.", ""]
        md += paired_table(spec, values, spec["contrasts"], rows, "contrast", with_reference=True)
    div = diverged_cells(spec, out)
    if spec["failure"]:
        crit = "; ".join(f"{k} {'above' if metrics[k] == 'lower' else 'below'} {v:g}" for k, v in spec["failure"].items())
        md += ["", "## Failures", "",
               f"A cell fails when its distillation diverges (amd distill exit {DIVERGED_EXIT}: NaN or a loss spike its "
               f"rollbacks could not cure) or collapses ({crit}). Diverged cells have no metrics: the means above "
               "are over the other cells. Failed share with its 95% Wilson interval.", "",
               "| method | steps | cells | diverged | collapsed | failed share [95%] |", "|---|---|---|---|---|---|"]
        for m, b, n, nd, nc, p, lo, hi in failure_rows(spec, values, div):
            md.append(f"| {m} | {b} | {n} | {nd} | {nc} | " + (f"{p:.2f} [{lo:.2f}, {hi:.2f}]" if n else "-") + " |")
            rows.append(["failure", m, b, "failed_share", "lower", n, p, lo, hi, "", f"{nd} diverged, {nc} collapsed"])
    missing = [cell_name(m, b, s) for m, b, s in cells_of(spec)
               if s not in values.get((m, b), {}).get(next(iter(metrics)), {}) and s not in div.get((m, b), set())]
    # an eval file that is there but unreadable (truncated, damaged, not amd's) is named, not taken as pending
    bad = [p for p in (os.path.join(out, "evals", c + "_eval.h5") for c in missing) if os.path.exists(p)]
    missing = [c for c in missing if os.path.join(out, "evals", c + "_eval.h5") not in bad]
    if missing:
        md += ["", f"Not evaluated yet ({len(missing)} cells): " + ", ".join(missing) + "."]
    if bad:
        md += ["", f"Eval files that cannot be read ({len(bad)} cells; truncated, damaged or not an amd eval file with "
               "the spec's metrics; running the study again remakes them): " + ", ".join(bad) + "."]
        for p in bad:
            print(f"study: warning: {p} cannot be read", file=sys.stderr)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["table", "method", "steps", "metric", "direction", "n", "mean", "ci_low", "ci_high",
                    "baseline", "verdict"])
        for r in rows:
            w.writerow([repr(x) if isinstance(x, float) else x for x in r])
    print("\n".join(md))
    print(f"wrote {os.path.join(out, 'results.md')} and results.csv")
    plot(spec, out, rows)
    return not missing and not bad


def plot(spec, out, rows):
    """results.png: per metric, the means' intervals (top) and the paired differences' (bottom) by budget."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("study: matplotlib is not installed: no results.png (apt-get install python3-matplotlib)")
        return
    metrics, methods, budgets = list(spec["metrics"]), list(spec["methods"]), spec["budgets"]
    fig, axes = plt.subplots(2, len(metrics), figsize=(3.2 * len(metrics), 6), squeeze=False)
    width = 0.8 / len(methods)
    for j, k in enumerate(metrics):
        for row, table in enumerate(("mean", "paired")):
            ax = axes[row][j]
            for i, m in enumerate(methods):
                xs, ys, err = [], [], [[], []]
                for bi, b in enumerate(budgets):
                    r = next((r for r in rows if r[0] == table and r[1] == m and r[2] == b and r[3] == k), None)
                    if r is None or r[5] == 0:
                        continue
                    mean, lo, hi = r[6], r[7], r[8]
                    xs.append(bi - 0.4 + width * (i + 0.5))
                    ys.append(mean)
                    err[0].append(0 if math.isnan(lo) else mean - lo)
                    err[1].append(0 if math.isnan(hi) else hi - mean)
                if xs:
                    ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, label=m, color=f"C{i}")
            if table == "paired":
                ax.axhline(0.0, color="gray", lw=0.8)
            ax.set_xticks(range(len(budgets)))
            ax.set_xticklabels([str(b) for b in budgets])
            ax.set_xlabel("distillation steps")
            d = spec["metrics"][k]
            ax.set_title(f"{k} ({d} is better)" if table == "mean" else f"{k}: minus {spec['baseline']}", fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("means and paired differences, 95% t intervals over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "results.png"), dpi=90)
    plt.close(fig)
    print(f"wrote {os.path.join(out, 'results.png')}")


def usage_error(e):
    """A mistake in the spec or its use: the message, exit status 2 (as amd's usage errors)."""
    print(f"study: {e}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", nargs="?", help="the study's spec (JSON; docs/study.md)")
    ap.add_argument("--out", help="study folder (default: the spec's \"out\" under the repository, else "
                    "runs/study/<spec name>)")
    ap.add_argument("--jobs", type=int, default=1, help="cells run at a time (local); each gets cores / jobs threads")
    ap.add_argument("--threads", type=int, default=0, help="threads per cell (default cores / jobs; "
                    "with --slurm: --cpus-per-task, default the script's 1)")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the commands (0: none)")
    ap.add_argument("--slurm", action="store_true", help="write the pending cells for jobs/sweep_array.sbatch and "
                    "print its sbatch command (--jobs N: at most N tasks at a time)")
    ap.add_argument("--submit", action="store_true", help="with --slurm: also run that sbatch command")
    ap.add_argument("--report", action="store_true", help="run nothing: the table of what is evaluated")
    ap.add_argument("--self-test", action="store_true", help="check the statistics against known values")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(0 if self_test() else 1)
    if not a.spec:
        ap.error("a SPEC is required (or --self-test)")
    if a.jobs < 1 or a.threads < 0:
        ap.error("--jobs must be >= 1 and --threads >= 0")
    try:
        spec = load_spec(a.spec)
    except SpecError as e:
        usage_error(e)
    out = os.path.abspath(a.out) if a.out else os.path.abspath(os.path.join(ROOT, spec["out"]))
    os.makedirs(out, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = a.threads or max(1, cores // a.jobs)
    study = Study(spec, out, threads, a.nice)
    if a.report:
        try:
            sys.exit(0 if report(spec, out) else 1)
        except SpecError as e:
            usage_error(e)
    if a.slurm:
        try:
            ok = study.slurm(a.submit, a.jobs if a.jobs > 1 else 0, a.threads)
        except SpecError as e:
            usage_error(e)
        sys.exit(0 if ok else 1)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print(f"study: {len(cells_of(spec))} cells into {out}, {a.jobs} at a time, {threads} threads each")
    try:
        ok = study.run_all(a.jobs)
    except SpecError as e:
        usage_error(e)
    except KeyboardInterrupt:
        study.stop()
        sys.exit(f"study: interrupted; the running commands were told to checkpoint; rerun the same command to "
                 f"continue (journal: {os.path.join(out, 'journal.csv')})")
    try:
        complete = report(spec, out)
    except SpecError as e:
        usage_error(e)
    if not ok:
        sys.exit("study: some cells failed (journal.csv names them and their logs); rerun to retry them")
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()
