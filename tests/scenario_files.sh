#!/usr/bin/env bash
# The analyst's side of the files (docs/DESIGN.md section 6), through the real binary: tiny runs
# write every file kind (a toy dataset, an image dataset, a teacher under mpirun -np 2 stopped by a
# signal and resumed, a distillation, samples, toy and image eval files), then h5py walks every
# dataset of every file:
#  - each carries `units` and `description`; counts (steps, ranks, prompts, groups, labels, eval
#    counts) are integers;
#  - each file's root carries the provenance: commit, host, Slurm ids, ranks, threads, backend,
#    device, and the absolute path of every input;
#  - /train rows without a rate hold NaN; `time` runs on over a resume, and a checkpoint's `time`
#    is its log row's;
#  - amd info prints the provenance.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
TINY="model.width=32 model.depth=2 threads=1"
# a Slurm job as the environment shows it (the values only need to arrive in the files)
export SLURM_JOB_ID=4242 SLURM_ARRAY_JOB_ID=4240 SLURM_ARRAY_TASK_ID=2 SLURM_RESTART_COUNT=1

"$AMD" data toy2d out="$S/toy.h5" >/dev/null
expect_ok teacher_until_signal_then_resume bash -c "
  $MPIRUN -np 2 '$AMD' train data='$S/toy.h5' run='$S/teacher' $TINY train.steps=40 log.every=5 ckpt.every=10 \
    fault.signal_step=23 >'$S/t1.out' 2>&1
  test -f '$S/teacher/ckpt_00000023.h5' || { echo 'no checkpoint at the signal'; cat '$S/t1.out'; exit 1; }
  sleep 1
  $MPIRUN -np 2 '$AMD' train data='$S/toy.h5' run='$S/teacher' $TINY train.steps=40 log.every=5 ckpt.every=10 resume=1"
expect_ok distill "$AMD" distill teacher="$S/teacher" run="$S/amd" method=amd train.prompts=8 amd.K=4 train.steps=6 \
  log.every=3 log.advantage_every=3 threads=1
expect_ok sample "$AMD" sample ckpt="$S/amd" out="$S/samples.h5" n=256 threads=1
expect_ok eval "$AMD" eval samples="$S/samples.h5"

# images: a tiny imported dataset, a dit teacher and an evaluator of a few steps, image samples and
# their eval file
$PY -c "
import h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File('$S/raw_images.h5', 'w') as f:
    f['images'] = rng.integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    f['labels'] = np.arange(40) % 4
"
IMG="model.width=16 model.depth=1 model.heads=2 model.patch=4 threads=1 optim.warmup=0 train.batch=8 train.steps=2 ckpt.every=2"
expect_ok images_import "$AMD" data import in="$S/raw_images.h5" labels_dataset=/labels out="$S/img.h5"
expect_ok images_teacher "$AMD" train data="$S/img.h5" run="$S/img_teacher" model.temb_dim=16 $IMG
expect_ok images_evaluator "$AMD" train task=evaluator data="$S/img.h5" test_data="$S/img.h5" run="$S/img_eval" $IMG
expect_ok images_sample "$AMD" sample ckpt="$S/img_teacher" out="$S/img_samples.h5" n=16 steps=2 threads=1
expect_ok images_eval "$AMD" eval samples="$S/img_samples.h5" evaluator="$S/img_eval" pr.max=10

py_check every_dataset_has_units_and_description "
import glob, h5py
kinds, n, bad = set(), 0, []
def visit(name, obj):
    global n
    if isinstance(obj, h5py.Dataset):
        n += 1
        for a in ('units', 'description'):
            v = obj.attrs.get(a)
            if not isinstance(v, str) or not v:
                bad.append('%s:/%s lacks %s' % (path, name, a))
for path in sorted(glob.glob('$S/**/*.h5', recursive=True)):
    if 'raw_images' in path:
        continue
    with h5py.File(path, 'r') as f:
        kinds.add(f.attrs['format'])
        f.visititems(visit)
assert not bad, bad[:5]
assert kinds == {'amd-dataset', 'amd-samples', 'amd-checkpoint', 'amd-log', 'amd-eval'}, kinds
assert n > 150, n
"

py_check counts_are_integers "
import glob, h5py, numpy as np
def kind(path, name):
    with h5py.File(path, 'r') as f:
        return f[name].dtype.kind
log, dlog = '$S/teacher/log.h5', '$S/amd/log.h5'
ints = [(log, c) for c in ('train/step', 'timing/step', 'timing/rank', 'events/step')]
ints += [(dlog, c) for c in ('train/step', 'train/k_sim', 'advantage/step', 'advantage/prompt', 'advantage/group',
                             'advantage/rank', 'timing/rank')]
ints += [('$S/toy.h5', 'labels'), ('$S/toy.h5', 'mixture/mode_class'), ('$S/samples.h5', 'labels')]
ints += [('$S/samples_eval.h5', 'eval/' + m) for m in ('n', 'modes_covered', 'nfe')]
ints += [('$S/img_samples_eval.h5', 'eval/' + m) for m in ('samples', 'reference', 'nfe')]
wrong = [(p, c, kind(p, c)) for p, c in ints if kind(p, c) != 'i']
assert not wrong, wrong
floats = [(log, 'train/loss'), (log, 'train/time'), (log, 'timing/comm'), (dlog, 'advantage/advantage')]
wrong = [(p, c, kind(p, c)) for p, c in floats if kind(p, c) != 'f']
assert not wrong, wrong
a = h5py.File(dlog, 'r')['advantage']
assert set(a['step'][:].tolist()) == {3, 6} and a['group'][:].max() == 7, (a['step'][:], a['group'][:])
"

py_check provenance_at_every_root "
import glob, os, socket, h5py
expect = {'slurm_job_id': '4242', 'slurm_array_job_id': '4240', 'slurm_array_task_id': '2', 'slurm_restart_count': '1'}
for path in sorted(glob.glob('$S/**/*.h5', recursive=True)):
    if 'raw_images' in path:
        continue
    a = h5py.File(path, 'r').attrs
    assert a['commit'] and isinstance(a['commit'], str), (path, a.get('commit'))
    assert a['host'] == socket.gethostname(), (path, a.get('host'))
    for k, v in expect.items():
        assert a[k] == v, (path, k, a.get(k))
    assert a['threads'] >= 1 and a['device'], (path, a.get('threads'), a.get('device'))
    teacher = path.startswith('$S/teacher/')
    assert a['ranks'] == (2 if teacher else 1), (path, a['ranks'])
    assert a['backend'] == ('none' if path.endswith(('toy.h5', 'img.h5', '_eval.h5')) and 'img_samples' not in path
                            else 'cpu'), (path, a['backend'])
    for k in a:
        if k.startswith('input.'):
            assert os.path.isabs(a[k]) and os.path.exists(a[k]), (path, k, a[k])
real = os.path.realpath
def inputs(p):
    a = h5py.File(p, 'r').attrs
    return {k[6:]: a[k] for k in a if k.startswith('input.')}
assert inputs('$S/teacher/log.h5') == {'data': real('$S/toy.h5')}, inputs('$S/teacher/log.h5')
assert inputs('$S/teacher/ckpt_00000040.h5') == {'data': real('$S/toy.h5')}
assert inputs('$S/amd/log.h5') == {'teacher': real('$S/teacher')}, inputs('$S/amd/log.h5')
assert inputs('$S/samples.h5') == {'ckpt': real('$S/amd')}
assert inputs('$S/samples_eval.h5') == {'samples': real('$S/samples.h5')}
assert inputs('$S/img.h5') == {'in': real('$S/raw_images.h5')}
assert inputs('$S/img_eval/log.h5') == {'data': real('$S/img.h5'), 'test_data': real('$S/img.h5')}
assert inputs('$S/img_samples_eval.h5') == {'samples': real('$S/img_samples.h5'), 'evaluator': real('$S/img_eval')}
"

py_check rates_nan_between_log_rows "
import h5py, numpy as np
for log, every in (('$S/teacher/log.h5', 5), ('$S/amd/log.h5', 3)):
    t = h5py.File(log, 'r')['train']
    step, rate = t['step'][:], t['samples_per_s'][:]
    at = step % every == 0
    assert np.isnan(rate[~at]).all(), (log, rate[~at])
    assert (rate[at] > 0).all(), (log, rate[at])
"

py_check time_runs_on_over_a_resume "
import h5py, numpy as np
f = h5py.File('$S/teacher/log.h5', 'r')
step, time = f['train/step'][:], f['train/time'][:]
assert np.array_equal(step, np.arange(1, 41)), step
msgs = [m.decode() if isinstance(m, bytes) else m for m in f['events/message'][:]]
assert any('resume from step 23' in m for m in msgs), msgs
assert (np.diff(time) > 0).all(), ('time goes back at the resume', time[20:26])
for s in (30, 40):  # checkpoints written after the resume hold the row's time
    c = h5py.File('$S/teacher/ckpt_%08d.h5' % s, 'r').attrs['time']
    assert c == time[s - 1], (s, c, time[s - 1])
"

"$AMD" info "$S/teacher/log.h5" "$S/toy.h5" >"$S/info.out" 2>&1
if grep -q "on host $(hostname): 2 ranks x 1 thread, backend cpu" "$S/info.out" &&
  grep -q "Slurm job 4242 (array job 4240, task 2), restart count 1" "$S/info.out" &&
  grep -q "input data: $(realpath "$S/toy.h5")" "$S/info.out" && grep -q "backend none (none)" "$S/info.out" &&
  grep -q "elapsed .* s of training steps$" "$S/info.out"; then
  pass info_prints_provenance
else
  fail info_prints_provenance "$(head -c 1500 "$S/info.out")"
fi

# a rollback: the clock goes on from the target's time, so time never goes back and every
# checkpoint (the target rewritten, the newer ones) holds its row's time
expect_ok rollback "$AMD" train data="$S/toy.h5" run="$S/rb" $TINY train.steps=20 log.every=5 ckpt.every=10 \
  fault.nan_step=15
py_check time_consistent_over_a_rollback "
import h5py, numpy as np
f = h5py.File('$S/rb/log.h5', 'r')
step, time = f['train/step'][:], f['train/time'][:]
assert np.array_equal(step, np.arange(1, 21)), step
assert (np.diff(time) > 0).all(), time
msgs = [m.decode() if isinstance(m, bytes) else m for m in f['events/message'][:]]
assert any('rollback' in m for m in msgs), msgs
for s in (10, 20):
    c = h5py.File('$S/rb/ckpt_%08d.h5' % s, 'r').attrs['time']
    assert c == time[s - 1], (s, c, time[s - 1])
"
