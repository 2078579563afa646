#!/usr/bin/env bash
# EMA weights (ema.decay, ema.power; core/ema.h, docs/DESIGN.md section 6.3), through the real binary:
#  - a teacher checkpoint holds /teacher_ema (the same layout as /teacher, different values) and a
#    distillation's /student_ema;
#  - resume bit for bit: a teacher crashed at -np 1 or stopped by a signal at -np 2, and a
#    distillation stopped at -np 2, resumed, end with the EMA of the uninterrupted run; a rollback
#    (guard.lr_factor=1, so the steps redone are the same) restores the EMA with the rest;
#  - a zero=1 -np 2 checkpoint resumes at -np 1 and -np 3 (zero=1): the EMA loads into other shards
#    and ends as the uninterrupted run's up to float reduction order (the losses' tolerance of
#    scenario_zero, 1e-5), and at -np 2 zero=0 bit for bit;
#  - an older checkpoint without /teacher_ema resumes, its EMA starting from the loaded weights;
#    ema.decay is not free on resume;
#  - amd sample uses the EMA by default, the raw weights with weights=raw, records which, and
#    refuses weights=ema when there is none; amd distill reads the teacher's EMA unless
#    teacher.weights=raw.
source "$(dirname "$0")/lib.sh"
S=$(cd "$SCRATCH" && pwd)
"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
T="data=$S/toy.h5 model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 train.steps=30 log.every=10 ckpt.every=10 threads=1"
D="train.prompts=8 amd.K=2 fake_per_gen=1 train.steps=8 log.every=4 ckpt.every=4 threads=1"

# same_ema NAME A B NET: /NET_ema (and /NET) of the step-30 (or given) checkpoints A and B bit for bit
same_ema() {
  py_check "$1" "
import h5py, numpy as np
a = h5py.File('$2', 'r'); b = h5py.File('$3', 'r')
for k in ('$4_ema/params', '$4/params'):
    assert np.array_equal(a[k][:], b[k][:]), (k, np.abs(a[k][:] - b[k][:]).max())
"
}

expect_ok teacher_np1 "$AMD" train $T run="$S/t1"
py_check checkpoint_holds_ema "
import h5py, numpy as np
f = h5py.File('$S/t1/ckpt_00000030.h5', 'r')
t, e = f['teacher'], f['teacher_ema']
assert e.attrs['kind'] == t.attrs['kind'] and e.attrs['num_params'] == t.attrs['num_params']
assert np.array_equal(e['layout'][:], t['layout'][:]) and 'adam_m' not in e
assert e['params'].dtype == 'float32' and not np.array_equal(e['params'][:], t['params'][:])
assert e['params'].attrs['units'] == '1' and 'moving average' in e['params'].attrs['description']
"

# resume bit for bit: a crash at -np 1, a signal at -np 2
expect_error teacher_crash "simulated crash at step 25" "$AMD" train $T run="$S/t1c" fault.exit_step=25
expect_ok teacher_crash_resumed "$AMD" train $T run="$S/t1c" resume=1
same_ema teacher_resume_np1_bit_for_bit "$S/t1/ckpt_00000030.h5" "$S/t1c/ckpt_00000030.h5" teacher
expect_ok teacher_np2 $MPIRUN -np 2 "$AMD" train $T run="$S/t2"
$MPIRUN -np 2 "$AMD" train $T run="$S/t2s" fault.signal_step=17 >"$S/t2s.out" 2>&1
expect_ok teacher_signal_resumed $MPIRUN -np 2 "$AMD" train $T run="$S/t2s" resume=1
same_ema teacher_resume_np2_bit_for_bit "$S/t2/ckpt_00000030.h5" "$S/t2s/ckpt_00000030.h5" teacher

# a rollback restores the EMA: steps 21..24 are redone from checkpoint 20 with the same learning rate
expect_ok teacher_rollback "$AMD" train $T run="$S/t1r" fault.nan_step=25 guard.lr_factor=1
if grep -q "roll" "$S/teacher_rollback.out"; then pass rollback_happened; else fail rollback_happened "$(tail -3 "$S/teacher_rollback.out")"; fi
same_ema rollback_restores_ema "$S/t1/ckpt_00000030.h5" "$S/t1r/ckpt_00000030.h5" teacher

# distillation at -np 2, stopped by a signal and resumed
expect_ok distill_np2 $MPIRUN -np 2 "$AMD" distill teacher="$S/t1" $D run="$S/d2"
$MPIRUN -np 2 "$AMD" distill teacher="$S/t1" $D run="$S/d2s" fault.signal_step=5 >"$S/d2s.out" 2>&1
expect_ok distill_signal_resumed $MPIRUN -np 2 "$AMD" distill teacher="$S/t1" $D run="$S/d2s" resume=1
same_ema distill_resume_np2_bit_for_bit "$S/d2/ckpt_00000008.h5" "$S/d2s/ckpt_00000008.h5" student

# a zero=1 -np 2 checkpoint at -np 1, -np 3 (zero=1) and -np 2 zero=0
expect_ok teacher_np2_z1 $MPIRUN -np 2 "$AMD" train $T run="$S/z1" zero=1
for t in "1 1" "3 1" "2 0"; do
  set -- $t
  mkdir -p "$S/z1_np$1_z$2" && cp "$S/z1/ckpt_00000020.h5" "$S/z1/log.h5" "$S/z1_np$1_z$2/"
  expect_ok "z1_resumed_np$1_z$2" $MPIRUN -np $1 "$AMD" train $T run="$S/z1_np$1_z$2" zero=$2 resume=1
done
same_ema z1_resumed_np2_z0_bit_for_bit "$S/z1/ckpt_00000030.h5" "$S/z1_np2_z0/ckpt_00000030.h5" teacher
py_check z1_resumed_other_rank_counts "
import h5py, numpy as np
ref = h5py.File('$S/z1/ckpt_00000030.h5', 'r')['teacher_ema/params'][:]
for np_ in (1, 3):
    x = h5py.File('$S/z1_np%d_z1/ckpt_00000030.h5' % np_, 'r')['teacher_ema/params'][:]
    rel = np.abs(x - ref).max() / np.abs(ref).max()
    assert rel < 1e-5, (np_, rel)
    print('np', np_, 'largest EMA difference to the -np 2 run, relative to its largest value:', rel)
"

# an older checkpoint: no /teacher_ema, no ema.* keys in its config
mkdir -p "$S/old" && cp "$S/t1/ckpt_00000020.h5" "$S/t1/log.h5" "$S/old/"
$PY -c "
import h5py
with h5py.File('$S/old/ckpt_00000020.h5', 'a') as f:
    del f['teacher_ema']
    f.attrs['config'] = '\n'.join(l for l in f.attrs['config'].splitlines() if not l.startswith('ema.'))
"
expect_ok old_checkpoint_resumed "$AMD" train $T run="$S/old" resume=1
if grep -q "holds no /teacher_ema" "$S/old_checkpoint_resumed.out"; then pass old_checkpoint_message
else fail old_checkpoint_message "$(head -c 600 "$S/old_checkpoint_resumed.out")"; fi
py_check old_checkpoint_ema_from_weights "
import h5py, numpy as np
f = h5py.File('$S/old/ckpt_00000030.h5', 'r')
assert 'teacher_ema' in f and np.array_equal(f['teacher/params'][:], h5py.File('$S/t1/ckpt_00000030.h5', 'r')['teacher/params'][:])
"
mkdir -p "$S/changed" && cp "$S/t1/ckpt_00000020.h5" "$S/t1/log.h5" "$S/changed/"
expect_error ema_decay_not_free "ema.decay: 0.999 -> 0.99" "$AMD" train $T run="$S/changed" resume=1 ema.decay=0.99

# amd sample: the EMA by default, raw on request, recorded; weights=ema without one is refused
expect_ok sample_default "$AMD" sample ckpt="$S/t1" out="$S/s_ema.h5" n=64 steps=4 threads=1
expect_ok sample_raw "$AMD" sample ckpt="$S/t1" out="$S/s_raw.h5" n=64 steps=4 threads=1 weights=raw
expect_ok sample_student "$AMD" sample ckpt="$S/d2" out="$S/s_student.h5" n=64 threads=1
py_check sample_records_weights "
import h5py, numpy as np
e = h5py.File('$S/s_ema.h5', 'r'); r = h5py.File('$S/s_raw.h5', 'r'); s = h5py.File('$S/s_student.h5', 'r')
assert e.attrs['weights'] == 'ema' and r.attrs['weights'] == 'raw' and s.attrs['weights'] == 'ema', (e.attrs['weights'], r.attrs['weights'])
assert e.attrs['net'] == r.attrs['net'] == 'teacher' and s.attrs['net'] == 'student'
assert not np.array_equal(e['x'][:], r['x'][:])
"
grep -q "ema weights of /teacher_ema" "$S/sample_default.out" && grep -q "raw weights of /teacher$" "$S/sample_raw.out" &&
  pass sample_says_which || fail sample_says_which "$(cat "$S/sample_default.out" "$S/sample_raw.out")"
expect_ok teacher_without_ema "$AMD" train $T run="$S/noema" ema.decay=0 train.steps=10
expect_error sample_ema_missing "holds no EMA weights" "$AMD" sample ckpt="$S/noema" out="$S/s_none.h5" n=8 weights=ema
expect_error distill_ema_missing "holds no EMA weights" "$AMD" distill teacher="$S/noema" $D run="$S/d_none" teacher.weights=ema

# amd distill: the teacher's EMA unless teacher.weights=raw
expect_ok distill_raw_teacher "$AMD" distill teacher="$S/t1" $D run="$S/d_raw" teacher.weights=raw train.steps=4
expect_ok distill_ema_teacher "$AMD" distill teacher="$S/t1" $D run="$S/d_ema" train.steps=4
grep -q "EMA weights" "$S/distill_ema_teacher.out" && grep -q "raw weights" "$S/distill_raw_teacher.out" &&
  pass distill_says_which || fail distill_says_which "$(grep teacher "$S/distill_ema_teacher.out" | tail -2)"
py_check distill_starts_from_teacher_ema "
import h5py, numpy as np
t = h5py.File('$S/t1/ckpt_00000030.h5', 'r')
a = h5py.File('$S/d_ema/log.h5', 'r')['train/loss_dm'][:]; b = h5py.File('$S/d_raw/log.h5', 'r')['train/loss_dm'][:]
assert not np.array_equal(a, b), (a, b)
"
