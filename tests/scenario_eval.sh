#!/usr/bin/env bash
# eval.every (issue 17, item 2): held-out metrics while a toy teacher and a toy student train.
#  - rows of the log's /eval at step 0, every eval.every steps and the last step, raw weights
#    (weights 0) then the EMA's (weights 1), finite, in range, counts int64, every column described;
#  - each row equals `amd sample noise=eval` + `amd eval` of the checkpoint of its step, exactly
#    (teacher and student, -np 1 and -np 2; EMA weights, as amd sample's default, and raw);
#  - checkpoints and /train bit-identical to the same runs without eval.every;
#  - a crash and resume continues the table without duplicates and with the same values, a
#    rollback rewinds it, a resume may switch eval.every on, and one that switches it off still
#    drops the rows beyond its checkpoint;
#  - amd info shows the table, benchmarks/plot_log.py draws it;
#  - data it cannot evaluate and an evaluator on toy data are usage errors that write nothing.
# Images (FD, precision, recall, accuracy rows; no evaluator: no rows, a message): scenario_images.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
TINY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 threads=1 optim.warmup=5"
"$AMD" data toy2d out="$S/toy.h5" n=2000 >/dev/null

# --- the same runs with and without eval.every ----------------------------------------------------
T="$TINY train.steps=30 ckpt.every=10 ckpt.keep=10"
expect_ok teacher_plain "$AMD" train data="$S/toy.h5" run="$S/plain" $T
expect_ok teacher_eval "$AMD" train data="$S/toy.h5" run="$S/tev" $T eval.every=10 eval.n=512 eval.steps=8
D="train.prompts=8 amd.K=4 log.every=5 log.advantage_every=5 threads=1 train.steps=10 ckpt.every=5 ckpt.keep=10"
expect_ok student_plain "$AMD" distill teacher="$S/plain" run="$S/dplain" $D
expect_ok student_eval "$AMD" distill teacher="$S/plain" run="$S/dev" $D eval.every=5 eval.n=300
expect_ok student_eval_np2 $MPIRUN -np 2 "$AMD" distill teacher="$S/plain" run="$S/dev2" $D eval.every=4 eval.n=301
py_check eval_rows "
import h5py, numpy as np
for run, steps, n, nfe in (('tev', [0, 10, 20, 30], 512, 8), ('dev', [0, 5, 10], 300, 1), ('dev2', [0, 4, 8, 10], 301, 1)):
    e = h5py.File('$S/%s/log.h5' % run, 'r')['eval']
    assert list(e['step'][:]) == [s for s in steps for w in (0, 1)], (run, e['step'][:])
    assert list(e['weights'][:]) == [0, 1] * len(steps), (run, e['weights'][:])
    assert (e['samples'][:] == n).all() and (e['nfe'][:] == nfe).all(), run
    for k in ('step', 'weights', 'samples', 'nfe', 'modes_covered'):
        assert e[k].dtype == np.int64, (run, k, e[k].dtype)
    for k in e:
        assert np.isfinite(e[k][:]).all(), (run, k)
        assert e[k].attrs['units'] and e[k].attrs['description'], (run, k)
    for k in ('coverage', 'off_manifold', 'mass_error', 'wrong_class'):
        assert ((e[k][:] >= 0) & (e[k][:] <= 1)).all(), (run, k, e[k][:])
    assert (e['sliced_w1'][:] > 0).all() and (e['seconds'][:] >= 0).all(), run
    assert e['modes_covered'][:].max() <= 8 and (e['coverage'][:] == e['modes_covered'][:] / 8).all(), run
"
py_check eval_same_run "
import h5py
def same(a, b, where):
    assert set(a) == set(b), where
    for k in a:
        if isinstance(a[k], h5py.Group): same(a[k], b[k], where + '/' + k)
        else: assert a[k][()].tobytes() == b[k][()].tobytes(), (where, k)
for x, y, steps in (('plain', 'tev', (10, 20, 30)), ('dplain', 'dev', (5, 10))):
    for s in steps:
        same(h5py.File('$S/%s/ckpt_%08d.h5' % (x, s), 'r'), h5py.File('$S/%s/ckpt_%08d.h5' % (y, s), 'r'), y)
    a, b = h5py.File('$S/%s/log.h5' % x, 'r'), h5py.File('$S/%s/log.h5' % y, 'r')
    assert 'eval' not in a, x
    for k in a['train']:
        if k not in ('time', 'samples_per_s', 'comm_s'): assert a['train'][k][()].tobytes() == b['train'][k][()].tobytes(), (y, k)
"

# --- a row is amd sample noise=eval + amd eval of the checkpoint of its step ---------------------------
expect_ok sample_teacher_20 "$AMD" sample ckpt="$S/tev/ckpt_00000020.h5" noise=eval n=512 steps=8 out="$S/t20.h5" threads=1
expect_ok eval_teacher_20 "$AMD" eval samples="$S/t20.h5"
expect_ok sample_teacher_20_raw "$AMD" sample ckpt="$S/tev/ckpt_00000020.h5" noise=eval n=512 steps=8 weights=raw \
  out="$S/r20.h5" threads=1
expect_ok eval_teacher_20_raw "$AMD" eval samples="$S/r20.h5"
expect_ok sample_student_10 "$AMD" sample ckpt="$S/dev/ckpt_00000010.h5" noise=eval n=300 out="$S/d10.h5" threads=1
expect_ok eval_student_10 "$AMD" eval samples="$S/d10.h5"
expect_ok sample_student_np2 $MPIRUN -np 2 "$AMD" sample ckpt="$S/dev2/ckpt_00000010.h5" noise=eval n=301 out="$S/m10.h5" threads=1
expect_ok eval_student_np2 "$AMD" eval samples="$S/m10.h5"
expect_ok sample_plain_noise "$AMD" sample ckpt="$S/dev/ckpt_00000010.h5" n=300 out="$S/p10.h5" threads=1
py_check eval_rows_equal_sample_and_eval "
import h5py, numpy as np
# rows 2i (raw) and 2i + 1 (EMA) of the i-th evaluation; amd sample draws the EMA by default
for run, i, f in (('tev', 5, 't20'), ('tev', 4, 'r20'), ('dev', 5, 'd10'), ('dev2', 7, 'm10')):
    e = h5py.File('$S/%s/log.h5' % run, 'r')['eval']
    g = h5py.File('$S/%s_eval.h5' % f, 'r')['eval']
    for k in ('coverage', 'modes_covered', 'off_manifold', 'mass_error', 'wrong_class', 'sliced_w1', 'log_density', 'nfe'):
        assert e[k][i] == g[k][()].item(), (run, k, e[k][i], g[k][()])
    assert e['samples'][i] == g['n'][()].item()
a, b = h5py.File('$S/d10.h5', 'r')['x'][:], h5py.File('$S/p10.h5', 'r')['x'][:]
assert not np.array_equal(a, b), 'noise=eval draws other noise than the default'
"

# --- resume, rollback, switching it on at a resume -------------------------------------------------------
expect_status() { # name, status, command...
  local name=$1 want=$2; shift 2
  "$@" >"$S/$name.out" 2>&1
  local rc=$?
  if [ "$rc" -eq "$want" ]; then pass "$name"; else fail "$name" "exit $rc, expected $want: $(tail -c 400 "$S/$name.out")"; fi
}
expect_status student_crash 1 "$AMD" distill teacher="$S/plain" run="$S/dres" $D eval.every=5 eval.n=300 fault.exit_step=7
expect_ok student_resume "$AMD" distill teacher="$S/plain" run="$S/dres" $D eval.every=5 eval.n=300 resume=1
D1="${D/log.every=5/log.every=1}"
expect_status student_crash_flushed 1 "$AMD" distill teacher="$S/plain" run="$S/doff" $D1 eval.every=2 eval.n=100 fault.exit_step=7
expect_ok resume_switches_eval_off "$AMD" distill teacher="$S/plain" run="$S/doff" $D1 resume=1
expect_ok teacher_rollback "$AMD" train data="$S/toy.h5" run="$S/tnan" $T eval.every=5 eval.n=256 eval.steps=4 fault.nan_step=15
cp -r "$S/plain" "$S/plain_on"
expect_ok resume_switches_eval_on "$AMD" train data="$S/toy.h5" run="$S/plain_on" $T train.steps=40 resume=1 \
  resume.allow=train.steps eval.every=10 eval.n=256 eval.steps=4
py_check eval_resume_and_rollback "
import h5py, numpy as np
a, b = h5py.File('$S/dev/log.h5', 'r')['eval'], h5py.File('$S/dres/log.h5', 'r')['eval']
assert list(b['step'][:]) == [0, 0, 5, 5, 10, 10], b['step'][:]
for k in a:
    if k != 'seconds': assert a[k][()].tobytes() == b[k][()].tobytes(), k
r = h5py.File('$S/tnan/log.h5', 'r')
assert list(r['eval']['step'][:]) == [s for s in (0, 5, 10, 15, 20, 25, 30) for w in (0, 1)], r['eval']['step'][:]
assert any(b'rollback' in m for m in r['events']['message'][:]), 'no rollback happened'
o = h5py.File('$S/doff/log.h5', 'r')
assert list(o['eval']['step'][:]) == [0, 0, 2, 2, 4, 4] and len(o['eval']['off_manifold']) == 6, o['eval']['step'][:]
assert list(o['train']['step'][:]) == list(range(1, 11))
p = h5py.File('$S/plain_on/log.h5', 'r')['eval']
assert list(p['step'][:]) == [40, 40], p['step'][:]
"

# --- amd info, plot_log.py ---------------------------------------------------------------------------------
"$AMD" info "$S/dev/log.h5" >"$S/info.out" 2>&1
if grep -q "/eval: 6 held-out evaluations from step 0 to 10" "$S/info.out" &&
   grep -q "last, raw weights (step 10): samples 300 nfe 1 off_manifold" "$S/info.out" &&
   grep -q "last, EMA weights (step 10): samples 300 nfe 1 off_manifold" "$S/info.out"; then
  pass info_shows_eval
else
  fail info_shows_eval "$(grep -A2 eval "$S/info.out" | head -5)"
fi
expect_ok plot_eval $PY benchmarks/plot_log.py "$S/dev/log.h5" "$S/dres/log.h5" -o "$S/plot"
py_check plot_eval_panels "
import matplotlib.image as mpimg, numpy as np
img = mpimg.imread('$S/plot_eval.png')[:, :, :3]
h, w = img.shape[0] // 2, img.shape[1] // 2
for r in range(2):
    for c in range(2):
        cell = img[r * h:(r + 1) * h, c * w:(c + 1) * w]
        assert (np.abs(cell - cell[0, 0]).sum(axis=2) > 0.3).mean() > 0.01, ('blank panel', r, c)
"

# benchmarks/eval_curves.py: per step, the mean of the runs' EMA rows (dev, dev2, dres: not every run
# has every step), with its interval where two runs or more have the step
$PY benchmarks/eval_curves.py --metric off_manifold one="$S/dev" all="$S/d[er][ve]*" >"$S/curves.out" 2>&1
py_check eval_curves_means "
import h5py, glob, os
rows = [l.split('|')[1:-1] for l in open('$S/curves.out') if l.startswith('| ') and not l.startswith('| step')]
def by_step(runs):
    v = {}
    for run in runs:
        e = h5py.File(run + '/log.h5', 'r')['eval']
        for s, w, x in zip(e['step'][:], e['weights'][:], e['off_manifold'][:]):
            if w == 1: v.setdefault(int(s), []).append(x)
    return v
one, all_ = by_step(['$S/dev']), by_step(sorted(glob.glob('$S/d[er][ve]*')))
assert sorted(os.path.basename(r) for r in glob.glob('$S/d[er][ve]*')) == ['dev', 'dev2', 'dres']
assert [int(r[0]) for r in rows] == sorted(all_), rows
for r in rows:
    s = int(r[0])
    for cell, v in ((r[1], one.get(s)), (r[2], all_[s])):
        if not v: assert cell.strip() == '', r; continue
        assert abs(float(cell.split()[0]) - sum(v) / len(v)) < 1e-4, (r, v)
        assert ('[' in cell) == (len(v) > 1), (r, v)
"

# --baseline: paired differences per step over the seeds both groups have (the seed is the folder
# name's _seed<N>: links name the runs here), against values recomputed from the logs; --png draws
mkdir -p "$S/pair"
SA=$(cd "$S" && pwd)
ln -sfn "$SA/dev" "$S/pair/a_seed0"; ln -sfn "$SA/dev2" "$S/pair/a_seed1"
ln -sfn "$SA/dres" "$S/pair/b_seed0"; ln -sfn "$SA/dev" "$S/pair/b_seed1"
$PY benchmarks/eval_curves.py --metric off_manifold --baseline b --png "$S/curves.png" \
  a="$S/pair/a_seed*" b="$S/pair/b_seed*" >"$S/curves_paired.out" 2>&1
py_check eval_curves_paired "
import h5py
lines = open('$S/curves_paired.out').read().split('paired difference against b')[1].splitlines()
rows = [l.split('|')[1:-1] for l in lines if l.startswith('| ') and not l.startswith('| step')]
def ema(run):
    e = h5py.File(run + '/log.h5', 'r')['eval']
    return {int(s): x for s, w, x in zip(e['step'][:], e['weights'][:], e['off_manifold'][:]) if w == 1}
a = [ema('$S/dev'), ema('$S/dev2')]
b = [ema('$S/dres'), ema('$S/dev')]
checked = 0
for r in rows:
    s = int(r[0])
    d = [a[i][s] - b[i][s] for i in (0, 1) if s in a[i] and s in b[i]]
    if len(d) < 2: assert r[1].strip() == '', r; continue
    assert abs(float(r[1].split()[0]) - sum(d) / 2) < 1e-4 and '(2 pairs)' in r[1], (r, d)
    checked += 1
assert checked >= 1, rows
assert open('$S/curves.png', 'rb').read(8) == b'\\x89PNG\\r\\n\\x1a\\n'
"
expect_error eval_curves_baseline_needs_seeds "has no _seed<N> at the end of its folder name" \
  $PY benchmarks/eval_curves.py --baseline one one="$S/dev" two="$S/dev2"

# --- what it cannot evaluate ----------------------------------------------------------------------------
"$AMD" data toy2d out="$S/nomix.h5" n=300 >/dev/null
$PY -c "import h5py; del h5py.File('$S/nomix.h5', 'r+')['mixture']"
"$AMD" data toy2d out="$S/other.h5" n=300 radius=0.5 >/dev/null
expect_error eval_needs_toy_or_images "held-out metrics need images or 2-D toy data" \
  "$AMD" train data="$S/nomix.h5" run="$S/bad1" $T eval.every=5
expect_error eval_no_evaluator_on_toy "an evaluator is for images" \
  "$AMD" distill teacher="$S/plain" run="$S/bad2" $D eval.every=5 eval.evaluator="$S/plain"
expect_error eval_data_other_mixture "eval.data" \
  "$AMD" distill teacher="$S/plain" run="$S/bad3" $D eval.every=5 eval.data="$S/other.h5"
if [ ! -e "$S/bad1" ] && [ ! -e "$S/bad2" ] && [ ! -e "$S/bad3" ]; then pass eval_errors_write_nothing; else
  fail eval_errors_write_nothing "$(ls -d "$S"/bad* 2>&1)"; fi
