#!/usr/bin/env bash
# The study runner, benchmarks/study.py (issue 17, item 3; docs/study.md), end to end on the CI-sized
# spec benchmarks/study_ci.json (a tiny toy teacher, dmd2 and amd, 10 and 20 steps, 3 seeds):
#  - its statistics against known values and hand-made inputs (--self-test: t quantiles, intervals,
#    paired differences, verdicts);
#  - bad specs are refused naming the problem, before anything runs, and so is a rerun whose spec gives
#    cells that already ran other settings (the table would mix them);
#  - a study stopped by SIGTERM (the running amd checkpoints), then killed with kill -9 (the whole
#    process group), then rerun, completes: no cell distilled from scratch twice (a second fresh start
#    only where the first was cut off before it made its run folder), the interrupted ones continued
#    with resume=1 and their first settings, a log row per step in every run folder;
#  - the table's means, 95% t intervals, paired differences and verdicts equal those recomputed here
#    from the eval files (h5py, the t quantile of df 2 from a table), and the PNG is written;
#    benchmarks/studies/keep.py keeps the eval files and per-seed numbers without checkpoints, and the
#    table made from its folder alone is the same file; a
#    `log:COLUMN` metric is the last row of each run's /train/COLUMN, a missing column an error;
#  - --slurm writes the pending cells and the sbatch command of jobs/sweep_array.sbatch; two array
#    tasks run through that script (without a cluster: SLURM_ARRAY_TASK_ID set by hand, mpirun -np 1)
#    and give the local cells' numbers bit for bit, and the next --slurm lists only the other cells;
#  - with a "failure" criterion a diverged distillation (exit 3) is recorded as a result, not an error:
#    the Failures table counts diverged and collapsed cells with Wilson intervals, a rerun skips them;
#    a `mode_share:I,J,...` metric equals the share recomputed from /eval/mode_mass;
#  - `contrasts` add paired tables of chosen pairs (checked against the baseline table, negated) and
#    differences in differences (twice the baseline table when the pairs are mirrored);
#  - benchmarks/pause_tree.sh stops and resumes a process and a child that runs in a session of its own
#    (as a study's cells do), and refuses a bad signal or PID.
source "$(dirname "$0")/lib.sh"
S=$(cd "$SCRATCH" && pwd)
STUDY="$PY benchmarks/study.py"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# --- the statistics ------------------------------------------------------------------------------------
$STUDY --self-test 2>&1 || fail self_test "exit $?"

# --- bad specs ------------------------------------------------------------------------------------------
mkspec() { # OUT PYTHON-EXPRESSION-ON-s: a copy of the CI spec changed by the expression
  $PY -c "
import json, sys
s = json.load(open('benchmarks/study_ci.json'))
$2
json.dump(s, open('$1', 'w'), indent=1)"
}
mkspec "$S/bad_baseline.json" "s['baseline'] = 'dmd'"
expect_error spec_bad_baseline "the baseline 'dmd' is not one of the methods (dmd2, amd)" $STUDY "$S/bad_baseline.json" --out "$S/bad"
mkspec "$S/bad_key.json" "s['seed'] = [0]"
expect_error spec_unknown_key "unknown key 'seed'" $STUDY "$S/bad_key.json" --out "$S/bad"
mkspec "$S/bad_metric.json" "s['metrics'] = ['off_manifold', 'fidelity']"
expect_error spec_metric_direction "metrics ['fidelity'] have no known direction" $STUDY "$S/bad_metric.json" --out "$S/bad"
mkspec "$S/bad_seeds.json" "s['seeds'] = [0, 0, 1]"
expect_error spec_repeated_seed "'seeds' must be a non-empty list of distinct integers" $STUDY "$S/bad_seeds.json" --out "$S/bad"
mkspec "$S/no_teacher.json" "s['teacher'] = '$S/nowhere'"
expect_error spec_missing_teacher "the teacher '$S/nowhere' does not exist (train it first" $STUDY "$S/no_teacher.json" --out "$S/bad"
if [ -e "$S/bad/runs" ] && [ -n "$(ls "$S/bad/runs")" ]; then fail spec_errors_run_nothing "$S/bad/runs exists"; else pass spec_errors_run_nothing; fi

# --- interrupted twice, then completed -------------------------------------------------------------------
# slow checkpoints (a free key: a resume passes it again) leave time to stop a cell midway
mkspec "$S/ci.json" "s['distill']['settings']['fault.slow_ckpt_ms'] = 150"
# waits until MIN eval files exist and a cell is inside its distillation with a checkpoint but not its last
wait_midway() {
  $PY -c "
import csv, glob, os, sys, time
out, least = '$S/ci', int(sys.argv[1])
t0 = time.time()
while time.time() - t0 < 60:
    time.sleep(0.03)
    if len(glob.glob(out + '/evals/*_eval.h5')) < least or not os.path.exists(out + '/journal.csv'):
        continue
    last = {}
    for r in csv.DictReader(open(out + '/journal.csv')):
        last[r['cell']] = r['action']
    for cell, action in last.items():
        if action in ('distill', 'resume'):
            steps = int(cell.split('_steps')[1].split('_')[0])
            ck = glob.glob(f'{out}/runs/{cell}/ckpt_*.h5')
            if ck and not os.path.exists(f'{out}/runs/{cell}/ckpt_{steps:08d}.h5'):
                sys.exit(0)
sys.exit('no cell midway within 60 s')" "$1"
}
setsid $STUDY "$S/ci.json" --out "$S/ci" --jobs 2 >"$S/run1.out" 2>&1 &
pid=$!
if wait_midway 2; then
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  if [ "$rc" -ne 0 ] && grep -q "interrupted; the running commands were told to checkpoint" "$S/run1.out" &&
    ! pgrep -g "$pid" >/dev/null && grep -q ',stopped,' "$S/ci/journal.csv"; then
    pass study_sigterm_stops_cells
  else
    fail study_sigterm_stops_cells "exit $rc, processes left: $(pgrep -g "$pid" | tr '\n' ' '); $(tail -3 "$S/run1.out")"
  fi
else
  fail study_sigterm_stops_cells "the study did not reach a cell midway"
  kill -TERM "$pid"; wait "$pid"
fi
n1=$(ls "$S"/ci/evals/*_eval.h5 | wc -l)
setsid $STUDY "$S/ci.json" --out "$S/ci" --jobs 2 >"$S/run2.out" 2>&1 &
pid=$!
if wait_midway $((n1 + 2)); then
  kill -KILL -- -"$pid"
  wait "$pid" 2>/dev/null
  # the killed amd processes linger a moment as zombies, and their run folders' locks with them
  for _ in $(seq 100); do pgrep -g "$pid" >/dev/null || break; sleep 0.1; done
  if pgrep -g "$pid" >/dev/null; then fail study_killed "processes left: $(pgrep -g "$pid" | tr '\n' ' ')"; else pass study_killed; fi
else
  fail study_killed "the study did not reach a cell midway; $(tail -3 "$S/run2.out")"
  kill -KILL -- -"$pid"; wait "$pid" 2>/dev/null
fi
t0=$SECONDS
expect_ok study_rerun_completes $STUDY "$S/ci.json" --out "$S/ci" --jobs 2
echo "  (rerun: $((SECONDS - t0)) s)"
py_check study_no_cell_twice "
import csv, glob, os, h5py, numpy as np
rows = list(csv.DictReader(open('$S/ci/journal.csv')))
cells = [f'{m}_steps{b}_seed{s}' for b in (10, 20) for s in (0, 1, 2) for m in ('dmd2', 'amd')]
runs = sorted(os.path.basename(p) for p in glob.glob('$S/ci/runs/*'))
assert runs == sorted(cells), runs
for c in cells:
    acts = [r['action'] for r in rows if r['cell'] == c]
    # a second fresh start only when the first was cut off before amd made the run folder: then it
    # had written nothing (a run folder is always resumed, and amd refuses a fresh run in one)
    fresh = [b for b in ('\n' + open(f'$S/ci/logs/{c}.log').read()).split('\n+ ')[1:]
             if ' distill ' in b.split('\n')[0] and not b.split('\n')[0].endswith('resume=1')]
    assert acts.count('distill') == len(fresh) and 1 <= len(fresh) <= 2, (c, acts, len(fresh))
    assert all('checkpoint ' not in b for b in fresh[:-1]), (c, 'a fresh start after a checkpoint')
    assert acts.count('distilled') <= 1 and acts.count('evaluated') <= 1, (c, acts)
    steps = int(c.split('_steps')[1].split('_')[0])
    with h5py.File(f'$S/ci/runs/{c}/log.h5', 'r') as f:
        st = f['train/step'][:]
    assert list(st) == list(range(1, steps + 1)), (c, list(st))
    assert os.path.exists(f'$S/ci/evals/{c}_eval.h5'), c
resumed = [r['cell'] for r in rows if r['action'] == 'resume']
assert resumed, 'no cell was resumed'
skipped = [r['cell'] for r in rows if r['action'] == 'skip']
assert len(skipped) >= 4, skipped
print(len(resumed), 'resumed,', len(skipped), 'skipped')
"
# every resumed cell passed resume=1 with its first settings, and amd went on from a checkpoint
py_check study_resume_same_settings "
import csv, re
rows = list(csv.DictReader(open('$S/ci/journal.csv')))
for c in {r['cell'] for r in rows if r['action'] == 'resume'}:
    log = open(f'$S/ci/logs/{c}.log').read()
    cmds = [l for l in log.splitlines() if l.startswith('+ ') and ' distill ' in l]
    assert len(cmds) >= 2 and cmds[-1].endswith(' resume=1'), (c, cmds)
    assert cmds[-1][:-len(' resume=1')] == cmds[0], (c, cmds)
    assert 'resume' in log and 'refus' not in log, c
"
mkspec "$S/changed.json" "s['distill']['settings']['fault.slow_ckpt_ms'] = 150; s['methods']['amd']['amd.s'] = 0.25"
expect_error study_changed_settings_refused "amd_steps10_seed0 (distill: amd.s=0.5 -> amd.s=0.25)" $STUDY "$S/changed.json" --out "$S/ci"
if grep -q "amd.s=0.25" "$S/ci/cells.json"; then fail study_changed_settings_not_recorded "cells.json took them"; else pass study_changed_settings_not_recorded; fi

# --- the table against the eval files ----------------------------------------------------------------------
py_check study_table_numbers "
import csv, math, h5py
T975_DF2 = 4.302652730  # Student t, 0.975 quantile, 2 degrees of freedom (3 seeds)
metrics = {'off_manifold': 'lower', 'coverage': 'higher', 'mass_error': 'lower', 'wrong_class': 'lower',
           'sliced_w1': 'lower', 'log_density': 'higher'}
def val(m, b, s, k):
    with h5py.File(f'$S/ci/evals/{m}_steps{b}_seed{s}_eval.h5', 'r') as f:
        return float(f['eval'][k][0])
def ci(v):
    n = len(v); mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    h = T975_DF2 * sd / math.sqrt(n)
    return mean, mean - h, mean + h
def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
rows = list(csv.DictReader(open('$S/ci/results.csv')))
assert len(rows) == 2 * 2 * 6 + 2 * 6, len(rows)
verdicts = set()
for r in rows:
    m, b, k = r['method'], int(r['steps']), r['metric']
    assert r['direction'] == metrics[k] and r['n'] == '3', r
    if r['table'] == 'mean':
        want = ci([val(m, b, s, k) for s in (0, 1, 2)])
    else:
        assert m == 'amd' and r['baseline'] == 'dmd2', r
        want = ci([val(m, b, s, k) - val('dmd2', b, s, k) for s in (0, 1, 2)])
        lo, hi = want[1], want[2]
        v = 'not separable at 95%' if lo <= 0 <= hi else ('better' if (hi < 0) == (metrics[k] == 'lower') else 'worse')
        assert r['verdict'] == v, (r, v)
        verdicts.add(v)
    got = (float(r['mean']), float(r['ci_low']), float(r['ci_high']))
    assert all(close(a, b) for a, b in zip(got, want)), (r, want)
md = open('$S/ci/results.md').read()
for m in ('dmd2', 'amd'):
    for b in (10, 20):
        assert f'| {m} | {b} | 3 |' in md, (m, b)
assert '## Paired differences against dmd2' in md and 'Not evaluated' not in md
print('verdicts seen:', sorted(verdicts))
"
py_check study_png "
import matplotlib.image as mpimg
b = open('$S/ci/results.png', 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
im = mpimg.imread('$S/ci/results.png')
assert im.shape[0] > 200 and im.shape[1] > 600 and im[..., :3].std() > 0.05, im.shape
"
cp "$S/ci/results.csv" "$S/results_first.csv"
expect_ok study_report_only $STUDY "$S/ci.json" --out "$S/ci" --report
if cmp -s "$S/ci/results.csv" "$S/results_first.csv" && grep -q "wrote $S/ci/results.md" "$S/study_report_only.out"; then
  pass study_report_rewrites_table
else
  fail study_report_rewrites_table "$(tail -3 "$S/study_report_only.out")"
fi
# benchmarks/studies/keep.py: the eval files, the runs' /eval tables and per_seed.csv, without checkpoints;
# the table made from the kept folder alone is the study's
expect_ok study_keep $PY benchmarks/studies/keep.py "$S/ci.json" "$S/ci" "$S/kept"
expect_ok study_report_from_kept $STUDY "$S/kept/ci.json" --out "$S/kept" --report
py_check study_kept_same_table "
import csv, glob, os, sys
sys.path.insert(0, 'benchmarks')
import study
assert open('$S/kept/results.csv').read() == open('$S/results_first.csv').read(), 'the kept folder gives another table'
assert not glob.glob('$S/kept/**/ckpt_*', recursive=True), 'checkpoints kept'
rows = list(csv.DictReader(open('$S/kept/per_seed.csv')))
assert len(rows) == 12, len(rows)
spec = study.load_spec('$S/ci.json')
for r in rows:
    e = study.read_eval(os.path.join('$S/ci/evals', r['cell'] + '_eval.h5'), spec['metrics'])
    assert all(float(r[k]) == e[k] for k in spec['metrics']), (r, e)
"
# again with the spec read from DEST itself (how a kept study is continued), and DEST = STUDY refused
# (the runs' logs would be replaced by their /eval tables)
expect_ok study_keep_spec_in_dest $PY benchmarks/studies/keep.py "$S/kept/ci.json" "$S/ci" "$S/kept"
expect_error study_keep_into_itself "is the study folder itself" \
  $PY benchmarks/studies/keep.py "$S/ci.json" "$S/ci" "$S/ci/"
# a truncated eval file is named in the report (and its exit), not counted as a cell still to run
cp -r "$S/kept" "$S/kept_bad"
cell=$(ls "$S/kept_bad/evals" | head -1)
head -c 3000 "$S/kept/evals/$cell" >"$S/kept_bad/evals/$cell"
expect_error study_report_truncated_eval "$S/kept_bad/evals/$cell cannot be read" \
  $STUDY "$S/kept_bad/ci.json" --out "$S/kept_bad" --report

# --- benchmarks/studies/extend.py: the 10-step cells continued to 20 steps are the 20-step cells, bit for bit -
expect_error study_extend_shorter "the new budget 10 must be larger than the old one 20" \
  $PY benchmarks/studies/extend.py "$S/ci.json" "$S/ci" 20 10 "$S/ext.json" "$S/ext"
expect_error study_extend_no_budget "has no budget 15" \
  $PY benchmarks/studies/extend.py "$S/ci.json" "$S/ci" 15 20 "$S/ext.json" "$S/ext"
mkspec "$S/cosine.json" "s['methods']['amd']['optim.schedule'] = 'cosine'"
expect_error study_extend_schedule "method amd uses a learning-rate schedule over train.steps" \
  $PY benchmarks/studies/extend.py "$S/cosine.json" "$S/ci" 10 20 "$S/ext.json" "$S/ext"
# a run whose checkpoint records a cosine schedule (however its config set it) is refused too
mkdir -p "$S/cos/runs" && cp -r "$S/ci/runs/dmd2_steps10_seed0" "$S/cos/runs/"
$PY -c "
import h5py
with h5py.File('$S/cos/runs/dmd2_steps10_seed0/ckpt_00000010.h5', 'r+') as f:
    c = f.attrs['config']; c = c.decode() if isinstance(c, bytes) else c
    assert 'optim.schedule = constant' in c, c
    f.attrs['config'] = c.replace('optim.schedule = constant', 'optim.schedule = cosine')"
expect_error study_extend_schedule_ckpt "method dmd2 uses a learning-rate schedule over train.steps" \
  $PY benchmarks/studies/extend.py "$S/ci.json" "$S/cos" 10 20 "$S/ext.json" "$S/ext" dmd2
mkspec "$S/bad_extend.json" "del s['seeds']"
expect_error study_extend_bad_spec "'seeds' is required" \
  $PY benchmarks/studies/extend.py "$S/bad_extend.json" "$S/ci" 10 20 "$S/ext.json" "$S/ext"
expect_ok study_extend_copies $PY benchmarks/studies/extend.py "$S/ci.json" "$S/ci" 10 20 "$S/ext.json" "$S/ext"
expect_ok study_extend_runs $STUDY "$S/ext.json" --jobs 2
py_check study_extend_same_bits "
import csv, json, h5py, numpy as np
spec = json.load(open('$S/ext.json'))
assert spec['budgets'] == [20] and spec['out'] == '$S/ext' and isinstance(spec['teacher'], str), spec
assert spec['distill']['settings']['resume.allow'] == 'train.steps', spec['distill']
rows = list(csv.DictReader(open('$S/ext/journal.csv')))
assert not [r for r in rows if r['action'] == 'distill'], 'a cell distilled from the start'
def datasets(path):
    out = {}
    with h5py.File(path, 'r') as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
for s in (0, 1, 2):
    for m in ('dmd2', 'amd'):
        c = f'{m}_steps20_seed{s}'
        assert [r['action'] for r in rows if r['cell'] == c].count('resume') == 1, c
        a = datasets(f'$S/ext/runs/{c}/ckpt_00000020.h5')
        b = datasets(f'$S/ci/runs/{c}/ckpt_00000020.h5')
        assert a.keys() == b.keys() and len(a) > 5, (c, sorted(a), sorted(b))
        for k in a:
            assert np.array_equal(a[k], b[k]), (c, k)
        with h5py.File(f'$S/ext/runs/{c}/log.h5', 'r') as f:
            assert list(f['train/step'][:]) == list(range(1, 21)), c
        with h5py.File(f'$S/ext/evals/{c}_eval.h5', 'r') as f, h5py.File(f'$S/ci/evals/{c}_eval.h5', 'r') as g:
            for k in ('off_manifold', 'coverage', 'sliced_w1'):
                assert f['eval'][k][0] == g['eval'][k][0], (c, k)
"

# --- Slurm: the cells as an array of jobs/sweep_array.sbatch -----------------------------------------------
mkspec "$S/slurm.json" "s['teacher'] = '$S/ci/teacher/run'"
expect_ok study_slurm_cells $STUDY "$S/slurm.json" --out "$S/sl" --slurm --jobs 4
cells=$(ls "$S"/sl/slurm_cells_*.txt 2>/dev/null | head -1)
if [ -n "$cells" ] && [ "$(wc -l <"$cells")" -eq 12 ] &&
  grep -qF "CELLS=$cells SWEEP=$S/sl/runs AMD=$PWD/amd sbatch --array=0-11%4 jobs/sweep_array.sbatch" "$S/study_slurm_cells.out"; then
  pass study_slurm_command
else
  fail study_slurm_command "$(cat "$S/study_slurm_cells.out")"
fi
for i in 0 1; do
  SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=7 SLURM_JOB_ID=$((8 + i)) AMD_ROOT=$PWD CELLS=$cells SWEEP=$S/sl/runs \
    AMD=$PWD/amd AMD_LAUNCHER=mpirun AMD_NTASKS=1 THREADS=1 bash jobs/sweep_array.sbatch >"$S/task$i.out" 2>&1 ||
    fail "study_slurm_task$i" "exit $?: $(tail -5 "$S/sl/runs/"*"/slurm-7_$i.out")"
done
py_check study_slurm_tasks "
import h5py
for c in ('dmd2_steps10_seed0', 'amd_steps10_seed0'):
    with h5py.File('$S/sl/evals/' + c + '_eval.h5', 'r') as f, h5py.File('$S/ci/evals/' + c + '_eval.h5', 'r') as g:
        for k in ('off_manifold', 'coverage', 'sliced_w1', 'log_density'):
            assert f['eval'][k][0] == g['eval'][k][0], (c, k, f['eval'][k][0], g['eval'][k][0])
"
$STUDY "$S/slurm.json" --out "$S/sl" --slurm >"$S/slurm2.out" 2>&1
cells2=$(ls "$S"/sl/slurm_cells_*.txt | grep -v "$cells" | head -1)
if [ -n "$cells2" ] && [ "$(wc -l <"$cells2")" -eq 10 ] && ! grep -q "_steps10_seed0	" "$cells2"; then
  pass study_slurm_pending_only
else
  fail study_slurm_pending_only "$(cat "$S/slurm2.out")"
fi
expect_error study_report_incomplete "Not evaluated yet (10 cells)" bash -c "$STUDY $S/slurm.json --out $S/sl --report 1>&2"

# a method may also override `amd sample` and `amd eval` (e.g. EMA or raw weights), after the spec's own
mkspec "$S/nested.json" "s['teacher'] = '$S/ci/teacher/run'; s['methods']['amd_small'] = {'distill': {'method': 'amd'}, 'sample': {'n': 512}, 'eval': {'sw.projections': 16}}"
expect_ok study_method_sample_eval $STUDY "$S/nested.json" --out "$S/nested" --slurm
py_check study_method_sample_eval_args "
import glob
lines = [l.rstrip('\n').split('\t') for l in open(glob.glob('$S/nested/slurm_cells_*.txt')[0])]
small = [l for l in lines if l[0].startswith('amd_small_')]
other = [l for l in lines if not l[0].startswith('amd_small_')]
assert len(small) == 6 and len(other) == 12, (len(small), len(other))
for l in small:
    assert ' method=amd ' in l[1] + ' ' and l[2].startswith('n=1024 n=512 ') and l[3].startswith('sw.projections=32 sw.projections=16 '), l
for l in other:
    assert 'n=512' not in l[2] and 'sw.projections=16' not in l[3], l
"

# --- a metric from the logs: the last row of /train/<column> ------------------------------------------------
mkspec "$S/logmetric.json" "s['metrics'] = {'log:loss_dm': 'lower', 'coverage': 'higher'}"
expect_ok study_log_metric_report $STUDY "$S/logmetric.json" --out "$S/ci" --report
py_check study_log_metric_values "
import csv, h5py
rows = [r for r in csv.DictReader(open('$S/ci/results.csv')) if r['metric'] == 'log:loss_dm' and r['table'] == 'mean']
assert len(rows) == 4, rows
for r in rows:
    v = []
    for s in (0, 1, 2):
        with h5py.File(f\"$S/ci/runs/{r['method']}_steps{r['steps']}_seed{s}/log.h5\", 'r') as f:
            v.append(float(f['train/loss_dm'][-1]))
    assert abs(float(r['mean']) - sum(v) / 3) <= 1e-12 * max(1, abs(sum(v))), (r, v)
"
# contrasts: extra paired tables; dmd2 minus amd is the baseline table's amd minus dmd2, negated
mkspec "$S/contrast.json" "s['contrasts'] = [['dmd2', 'amd'], ['amd', 'dmd2', 'dmd2', 'amd']]"
expect_ok study_contrasts_report $STUDY "$S/contrast.json" --out "$S/ci" --report
py_check study_contrasts_values "
import csv
rows = list(csv.DictReader(open('$S/ci/results.csv')))
con = {(r['steps'], r['metric']): r for r in rows if r['table'] == 'contrast' and r['method'] == 'dmd2'}
# (amd - dmd2) - (dmd2 - amd): twice the paired difference, its interval twice as wide
did = {(r['steps'], r['metric']): r for r in rows if r['table'] == 'contrast' and r['method'] == 'amd - dmd2'}
par = {(r['steps'], r['metric']): r for r in rows if r['table'] == 'paired'}
assert len(con) == 2 * 6 and set(con) == set(par), (len(con), sorted(con))
flip = {'better': 'worse', 'worse': 'better', 'not separable at 95%': 'not separable at 95%'}
for key, c in con.items():
    p = par[key]
    assert c['method'] == 'dmd2' and c['baseline'] == 'amd' and c['n'] == '3', c
    assert abs(float(c['mean']) + float(p['mean'])) <= 1e-12 * max(1.0, abs(float(p['mean']))), (c, p)
    assert abs(float(c['ci_low']) + float(p['ci_high'])) <= 1e-9 and abs(float(c['ci_high']) + float(p['ci_low'])) <= 1e-9, (c, p)
    assert c['verdict'] == flip[p['verdict']], (c, p)
    q = did[key]
    assert q['baseline'] == 'dmd2 - amd' and q['n'] == '3' and q['verdict'] == p['verdict'], (q, p)
    for f in ('mean', 'ci_low', 'ci_high'):
        assert abs(float(q[f]) - 2 * float(p[f])) <= 1e-9 * max(1.0, abs(float(p[f]))), (f, q, p)
md = open('$S/ci/results.md').read()
assert '## Contrasts' in md and '| dmd2 | amd | 10 | 3 |' in md and '| amd - dmd2 | dmd2 - amd | 20 | 3 |' in md, md
"
mkspec "$S/contrast_bad.json" "s['contrasts'] = [['amd', 'nosuch']]"
expect_error study_contrasts_unknown "'contrasts' must be a list of [METHOD, REFERENCE] pairs of two different methods" \
  $STUDY "$S/contrast_bad.json" --out "$S/bad"
mkspec "$S/logmissing.json" "s['metrics'] = {'log:no_such_column': 'lower'}"
expect_error study_log_metric_missing "has no column /train/no_such_column" $STUDY "$S/logmissing.json" --out "$S/ci" --report

# --- failures as results (the stability claim): a diverged distillation is recorded, not an error ----------
# method "nan" poisons its student at step 3 with no rollback allowed: amd distill exits 3 on every seed
mkspec "$S/fail.json" "s['teacher'] = '$S/ci/teacher/run'; s['budgets'] = [10]; s['seeds'] = [0, 1]; \
s['methods'] = {'dmd2': {'method': 'dmd2'}, 'nan': {'method': 'dmd2', 'fault.nan_step': 3, 'guard.max_rollbacks': 0}}; \
s['metrics'] = ['off_manifold', 'coverage', 'mode_share:0,2,4,6']; s['failure'] = {'coverage': 0.0}"
expect_ok study_failure_recorded $STUDY "$S/fail.json" --out "$S/fail" --jobs 2 --threads 1
py_check study_failure_table "
import csv, h5py
rows = {(r['table'], r['method'], r['metric']): r for r in csv.DictReader(open('$S/fail/results.csv'))}
f = rows[('failure', 'nan', 'failed_share')]
assert f['n'] == '2' and float(f['mean']) == 1.0 and f['verdict'] == '2 diverged, 0 collapsed', f
assert abs(float(f['ci_low']) - 0.34238) < 1e-4 and float(f['ci_high']) == 1.0, f   # Wilson, 2 of 2
g = rows[('failure', 'dmd2', 'failed_share')]
assert g['n'] == '2' and float(g['mean']) == 0.0 and g['verdict'] == '0 diverged, 0 collapsed', g
assert rows[('mean', 'nan', 'off_manifold')]['n'] == '0'
# mode_share: the share of on-manifold mass on modes 0, 2, 4, 6, recomputed from /eval/mode_mass
v = []
for s in (0, 1):
    with h5py.File(f'$S/fail/evals/dmd2_steps10_seed{s}_eval.h5', 'r') as e:
        m = e['eval/mode_mass'][:]
        v.append(sum(m[[0, 2, 4, 6]]) / sum(m))
r = rows[('mean', 'dmd2', 'mode_share:0,2,4,6')]
assert abs(float(r['mean']) - sum(v) / 2) < 1e-12 and r['direction'] == 'higher', (r, v)
md = open('$S/fail/results.md').read()
assert '## Failures' in md and 'Not evaluated' not in md, md
"
grep -q "nan_steps10_seed0: diverged" "$S/study_failure_recorded.out" && pass study_failure_journal ||
  fail study_failure_journal "$(tail -5 "$S/study_failure_recorded.out")"
# a rerun runs nothing again; a collapse threshold every evaluated cell crosses counts them
mkspec "$S/fail2.json" "s['teacher'] = '$S/ci/teacher/run'; s['budgets'] = [10]; s['seeds'] = [0, 1]; \
s['methods'] = {'dmd2': {'method': 'dmd2'}, 'nan': {'method': 'dmd2', 'fault.nan_step': 3, 'guard.max_rollbacks': 0}}; \
s['metrics'] = ['off_manifold', 'coverage', 'mode_share:0,2,4,6']; s['failure'] = {'off_manifold': -1}"
expect_ok study_failure_rerun $STUDY "$S/fail2.json" --out "$S/fail" --jobs 2 --threads 1
if [ "$(grep -c ': distill ' "$S/study_failure_rerun.out")" = 0 ] && [ "$(grep -c ',skip,' "$S/fail/journal.csv")" = 4 ]; then
  pass study_failure_rerun_skips
else
  fail study_failure_rerun_skips "$(cat "$S/study_failure_rerun.out" | head -8)"
fi
grep -q "| dmd2 | 10 | 2 | 0 | 2 | 1.00 \[0.34, 1.00\] |" "$S/fail/results.md" && pass study_failure_collapsed ||
  fail study_failure_collapsed "$(grep -A6 '## Failures' "$S/fail/results.md")"
mkspec "$S/fail_bad.json" "s['failure'] = {'fd': 1.0}"
expect_error study_failure_unknown_metric "'failure' must be an object {metric: threshold} over the spec's metrics" \
  $STUDY "$S/fail_bad.json" --out "$S/bad"
mkspec "$S/share_bad.json" "s['metrics'] = ['mode_share:a']"
expect_error study_mode_share_syntax "metric 'mode_share:a': write mode_share:I,J,... with the mode indices" \
  $STUDY "$S/share_bad.json" --out "$S/bad"

# --- the tuning protocol of the toy study (benchmarks/studies/toy_s1_protocol.py) ------------------------
# Each stage's spec from made-up results of the stage before: the selection rule (lowest off-manifold
# among the settings with coverage >= 0.99, else the highest coverage, then the lowest off-manifold among
# those), the settings each stage carries over
# (retune: the S = 1 winner's own settings under the new grid), and the variants stage's copies.
P="$PY benchmarks/studies/toy_s1_protocol.py"
export TOY_PROTOCOL_SPECS="$S/proto"
mkdir -p "$S/proto"
fake_results() { # STUDY-FOLDER: a results.csv from the spec's method names (off-manifold and coverage in the names' order)
  $PY - "$1" "$S/proto/$(basename "$1").json" <<'PY'
import json, os, sys
out, spec = sys.argv[1], json.load(open(sys.argv[2]))
os.makedirs(out, exist_ok=True)
rows = ["table,method,steps,metric,direction,n,mean,ci_low,ci_high,baseline,verdict"]
for i, name in enumerate(spec["methods"]):
    # within each method family the off-manifold falls with the position; every family's last setting drops a
    # mode (coverage 0.9), and dmdr's settings all do: its last drops more (0.5)
    fam = spec["methods"][name]["method"]
    last = name == [n for n in spec["methods"] if spec["methods"][n]["method"] == fam][-1]
    cov = (0.5 if last else 0.9) if fam == "dmdr" else 0.9 if last else 1.0
    v = {"off_manifold": 1.0 - 0.01 * i, "coverage": cov,
         "mass_error": 0.1, "wrong_class": 0.0, "sliced_w1": 0.1, "log_density": 0.0}
    for m, x in v.items():
        rows.append(f"mean,{name},1600,{m},lower,2,{x},{x},{x},,")
open(os.path.join(out, "results.csv"), "w").write("\n".join(rows) + "\n")
PY
}
expect_ok protocol_tune1 $P tune1
fake_results "$S/proto/toy_s1_tune1"
expect_ok protocol_tune2 $P tune2 "$S/proto/toy_s1_tune1"
fake_results "$S/proto/toy_s1_tune2"
T="$S/proto/toy_s1_tune1 $S/proto/toy_s1_tune2"
expect_ok protocol_test $P test $T
expect_ok protocol_retune $P retune 2 $T
fake_results "$S/proto/toy_s2_tune"
expect_ok protocol_retest $P retest 2 $T "$S/proto/toy_s2_tune"
expect_error protocol_retune_bad_s "retune takes S (2 or 4) STUDY1 STUDY2" $P retune 3 $T
py_check protocol_specs "
import json
ld = lambda n: json.load(open('$S/proto/' + n + '.json'))
t1, t2, test, rt, rs = ld('toy_s1_tune1'), ld('toy_s1_tune2'), ld('toy_s1_test'), ld('toy_s2_tune'), ld('toy_s2_tuned')
assert len(t1['methods']) == 16 and len(t2['methods']) == 20 and len(rt['methods']) == 16, (len(t1['methods']), len(t2['methods']))
# stage 1: the third setting of each family (lowest off-manifold with full coverage; the fourth drops a mode);
# dmdr: every setting drops a mode, so the lowest off-manifold among its highest coverage (0.9), again the
# third (the fourth, at 0.5, is sharper: the lowest off-manifold of all is not the rule)
win1 = {'dmd': 'dmd_lr1.5e-3_f2', 'dmd2': 'dmd2_lr1.5e-3_f2', 'amd': 'amd_lr1.5e-3_f2', 'dmdr': 'dmdr_lr1.5e-3_f2'}
for m, w in win1.items():
    names = [n for n in t2['methods'] if t2['methods'][n]['method'] == m]
    assert len(names) == 5 and all(n.startswith(w + '_') for n in names), (m, names)
# the test stage: stage 2's fourth setting of each family (its fifth drops a mode, or more of them for dmdr),
# which beats stage 1's winner
for m in win1:
    names = [n for n in t2['methods'] if t2['methods'][n]['method'] == m]
    pick = names[3]
    assert test['methods'][m] == t2['methods'][pick], (m, test['methods'][m], t2['methods'][pick])
    # retune: the same 4 points for every family on top of that winner, as 2-step students
    grid = {n: s for n, s in rt['methods'].items() if s['method'] == m}
    assert len(grid) == 4, grid
    for s in grid.values():
        assert s['student.steps'] == 2 and s['optim.lr_fake'] == 2 * s['optim.lr_student'], s
        rest = {k: v for k, v in s.items() if k not in ('optim.lr_student', 'optim.lr_fake', 'fake_per_gen', 'student.steps')}
        assert rest == {k: v for k, v in test['methods'][m].items()
                        if k not in ('optim.lr_student', 'optim.lr_fake', 'fake_per_gen')}, (rest, test['methods'][m])
    assert rs['methods'][m] == rt['methods'][m + '_lr1.5e-3_f2'], (m, rs['methods'][m])
assert rs['seeds'] == list(range(100, 110)) and rt['seeds'] == [900, 901], (rs['seeds'], rt['seeds'])
"
# the variants stage copies the test study's amd cells (and refuses when one is missing)
mkdir -p "$S/proto/toy_s1_test/runs/amd_steps1600_seed100" "$S/proto/toy_s1_test/evals"
# (run in the scratch folder: the copies' destination is relative, and a study folder of that name in the
# repository, from a real run of the variants stage, would have every copy already)
expect_error protocol_variants_missing "toy_s1_test/runs/amd_steps1600_seed101 is missing" \
  env -C "$S/proto" $PY "$PWD/benchmarks/studies/toy_s1_protocol.py" variants $T "$S/proto/toy_s1_test"
for seed in $(seq 100 109); do
  mkdir -p "$S/proto/toy_s1_test/runs/amd_steps1600_seed$seed"
  echo "$seed" >"$S/proto/toy_s1_test/runs/amd_steps1600_seed$seed/log.h5"
  for f in eval samples; do echo "$seed" >"$S/proto/toy_s1_test/evals/amd_steps1600_seed${seed}_$f.h5"; done
done
# (the copies go under the folder it runs in, as the runner's out paths do)
expect_ok protocol_variants env -C "$S/proto" $PY "$PWD/benchmarks/studies/toy_s1_protocol.py" variants $T "$S/proto/toy_s1_test"
py_check protocol_variants_spec "
import json, os
v = json.load(open('$S/proto/toy_s1_variants.json'))
test = json.load(open('$S/proto/toy_s1_test.json'))
assert v['baseline'] == 'amd' and v['methods']['amd'] == test['methods']['amd'] and len(v['methods']) == 7, v['methods']
assert v['methods']['amd_fake_s0.05']['amd.beta_on'] == 'fake' and v['methods']['amd_s0']['amd.s'] == 0.0
r = '$S/proto/runs/study/toy_s1_variants'
assert open(r + '/runs/amd_steps1600_seed107/log.h5').read() == '107\n'
assert open(r + '/evals/amd_steps1600_seed103_eval.h5').read() == '103\n'
"
# the extend stage copies every test run's 1600-step checkpoint and log (extend.py's copy_runs): refused
# while one is missing, then the copies and a 3200-step spec that resumes them
expect_error protocol_extend_missing "has no ckpt_00001600.h5" \
  env -C "$S/proto" $PY "$PWD/benchmarks/studies/toy_s1_protocol.py" extend $T "$S/proto/toy_s1_test"
for m in dmd dmd2 dmdr amd; do
  for seed in $(seq 100 109); do
    d="$S/proto/toy_s1_test/runs/${m}_steps1600_seed$seed"
    mkdir -p "$d"; echo "$m $seed" >"$d/ckpt_00001600.h5"; echo "$m $seed" >"$d/log.h5"
  done
done
expect_ok protocol_extend env -C "$S/proto" $PY "$PWD/benchmarks/studies/toy_s1_protocol.py" extend $T "$S/proto/toy_s1_test"
py_check protocol_extend_spec "
import json, os
e = json.load(open('$S/proto/toy_s1_test3200.json'))
assert e['budgets'] == [3200] and e['distill']['settings']['resume.allow'] == 'train.steps', e
r = '$S/proto/runs/study/toy_s1_test3200/runs'
assert len(os.listdir(r)) == 40, sorted(os.listdir(r))
assert open(r + '/dmdr_steps3200_seed104/ckpt_00001600.h5').read() == 'dmdr 104\n'
assert open(r + '/amd_steps3200_seed109/log.h5').read() == 'amd 109\n'
"
unset TOY_PROTOCOL_SPECS

# --- benchmarks/pause_tree.sh: a child in a session of its own is paused and resumed with its parent ---
bash -c 'setsid sleep 60 & echo $! > "$1"; wait' _ "$S/pause_child.pid" &
parent=$!
for _ in $(seq 50); do [ -s "$S/pause_child.pid" ] && break; sleep 0.1; done
child=$(cat "$S/pause_child.pid")
state() { local s; read -r s <"/proc/$1/stat"; s=${s##*) }; echo "${s%% *}"; }
bash benchmarks/pause_tree.sh STOP "$parent" >/dev/null
[ "$(state "$parent")" = T ] && [ "$(state "$child")" = T ] && pass pause_tree_stop ||
  fail pause_tree_stop "states $(state "$parent") $(state "$child") after STOP (a setsid child must stop too)"
bash benchmarks/pause_tree.sh CONT "$parent" >/dev/null
[ "$(state "$parent")" != T ] && [ "$(state "$child")" != T ] && pass pause_tree_cont ||
  fail pause_tree_cont "states $(state "$parent") $(state "$child") after CONT"
kill "$child" 2>/dev/null; wait "$parent" 2>/dev/null
expect_error pause_tree_usage "usage: pause_tree.sh STOP|CONT PID" bash benchmarks/pause_tree.sh HUP 1
expect_error pause_tree_no_process "pause_tree.sh: no process" bash benchmarks/pause_tree.sh STOP 999999999
