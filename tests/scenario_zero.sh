#!/usr/bin/env bash
# ZeRO sharding (zero = 0 | 1 | 2 | 3) and sharded checkpoints, through the real binary:
#  - the shard arithmetic, stage agreement and sharded checkpoint loads at 3 uneven ranks (test_zero);
#  - teacher training: zero 0, 1 and 2 give bit-identical losses, gradient norms, parameters and
#    Adam moments at the same rank count (every stage sums gradients by the same reduce-scatter),
#    reruns are bit-identical, and -np 1, 2, 4 agree up to float reduction order;
#  - a run saved at -np 2 with zero=2 resumes at -np 1 and -np 4 (losses as an uninterrupted run up
#    to reduction order) and at -np 2 with zero=0 (bit-identical);
#  - the checkpoint holds the global 1-D vectors, no .tmp stays, ckpt.keep still prunes, and the
#    startup line reports the per-rank memory of the moments shrinking with the stage;
#  - AMD distillation with zero=2 at -np 2 is bit-identical to zero=0, and resumes at -np 1 and -np 4;
#  - zero=3 (each rank stores its shard of the parameters and gradient; src/model.h): at -np 2 an
#    mlp and a dit teacher are bit-identical to zero=0 (losses, gradient norms, parameters, moments,
#    EMA, /eval rows: a sum over two ranks has one order); a zero=3 -np 2 checkpoint resumes at
#    -np 1 and -np 3 (zero=3: the losses' tolerance above) and at -np 2 with zero=0 (bit for bit);
#    kill -9 of the ranks inside a checkpoint write, then resume, and a rollback after a NaN
#    gradient (guard.lr_factor=1) are bit-identical to the uninterrupted run; the memory line
#    shows the shard and the gathered buffers; a read of a released unit stops the program
#    (test_zero read_after_release); classifiers refuse zero=3 with a message;
#  - distillation at zero=3 (student, fake teacher, GAN head and the frozen real teacher sharded) at
#    -np 2: dmd (one backward per update) bit-identical to zero=0; amd within the 1e-4 of the
#    distillation above (a GAN method's fake teacher takes two backward passes per update, the flow
#    loss and the GAN term: zero=3 sums each over ranks, zero=0 their local sum, so they round
#    differently; measured 4e-7 relative); a zero=3 -np 2 distillation resumed at -np 1 (zero=3)
#    and at -np 2 with zero=0; dmd2 and dmdr with a 2-step student at zero=3 within the same bound;
#    a NaN rolled back at zero=3, and a SIGUSR1 stop (exit 75) resumed, end where the uninterrupted
#    run does, bit for bit;
#  - communication and memory in the log: test_zero also at -np 2; each step's comm_bytes equals the
#    cost model computed from n and p (zero 0 to 3, -np 1, 2, 4; zero=3 1.5 times zero=2), as the
#    start-up line says, the
#    /memory row equals the start-up line (a resume at another rank count adds one), a log of an
#    older amd without these columns resumes with NaN on its earlier rows; in distillation
#    comm_bytes is the sum of the four networks' columns.
# Tolerances: at a different rank count the float32 gradient sums round differently (a few ulp per
# element); measured, the teacher's losses then differ by at most 3e-8 relative over 30 steps and
# the distillation losses by at most 5e-6 over 8 steps. A resume that loads a wrong part of the
# moments changes the losses by more than 1e-3 (tried by breaking the shard offset), so the checks
# use 1e-5 (teacher) and 1e-4 (distillation): 100 times the noise, 10 times below a real fault.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
CFG="jobs/toy_teacher.cfg model.width=32 model.depth=2 model.temb_dim=16 train.steps=30 train.batch=64
     optim.warmup=5 log.every=10 ckpt.every=10 threads=1"
"$AMD" data toy2d out="$S/toy.h5" n=4000 >/dev/null
train() { # name np zero [key=value ...]
  local name=$1 np=$2 zero=$3; shift 3
  expect_ok "$name" $MPIRUN -np "$np" "$AMD" train $CFG data="$S/toy.h5" run="$S/$name" zero="$zero" "$@"
}

for np in 2 3; do
  if $MPIRUN -np $np "$PWD/build/tests/test_zero" >"$S/test_zero_np$np.out" 2>&1 && ! grep -q '^FAIL' "$S/test_zero_np$np.out"; then
    pass test_zero_np$np; else fail test_zero_np$np "$(grep -v '^PASS' "$S/test_zero_np$np.out" | head -20)"; fi
done

for np in 1 2 4; do
  for z in 0 1 2; do train "np${np}_z$z" $np $z; done
done
train np4_z2_rerun 4 2 ckpt.keep=2
train np2_z1_rerun 2 1
py_check stages_bit_identical "
import h5py, numpy as np
for n in (1, 2, 4):
    a = h5py.File('$S/np%d_z0/log.h5' % n, 'r')['train']
    ca = h5py.File('$S/np%d_z0/ckpt_00000030.h5' % n, 'r')['teacher']
    for z in (1, 2):
        b = h5py.File('$S/np%d_z%d/log.h5' % (n, z), 'r')['train']
        for k in ('loss', 'grad_norm'):
            assert len(b[k]) == 30 and np.array_equal(a[k][:], b[k][:]), (n, z, k)
        cb = h5py.File('$S/np%d_z%d/ckpt_00000030.h5' % (n, z), 'r')['teacher']
        for k in ('params', 'adam_m', 'adam_v'):
            assert np.array_equal(ca[k][:], cb[k][:]), (n, z, k)
"
py_check reruns_bit_identical "
import h5py, numpy as np
for run, ref in (('np4_z2_rerun', 'np4_z2'), ('np2_z1_rerun', 'np2_z1')):
    a = h5py.File('$S/%s/log.h5' % run, 'r')['train']; b = h5py.File('$S/%s/log.h5' % ref, 'r')['train']
    for k in ('loss', 'grad_norm'):
        assert np.array_equal(a[k][:], b[k][:]), (run, k)
"
py_check rank_counts_agree "
import h5py, numpy as np
ref = h5py.File('$S/np1_z0/log.h5', 'r')['train/loss'][:]
for n in (2, 4):
    for z in (0, 1, 2):
        x = h5py.File('$S/np%d_z%d/log.h5' % (n, z), 'r')['train/loss'][:]
        rel = (np.abs(x - ref) / np.abs(ref)).max()
        assert rel < 1e-5, (n, z, rel)
        print('np', n, 'zero', z, 'max relative difference to np 1:', rel)
"
py_check checkpoint_global_vectors "
import h5py, os
f = h5py.File('$S/np4_z2/ckpt_00000030.h5', 'r')
n = f['teacher'].attrs['num_params']
for k in ('params', 'adam_m', 'adam_v'):
    assert f['teacher'][k].shape == (n,) and f['teacher'][k].dtype == 'float32', k
assert f['teacher/layout'].shape[0] > 0 and f['counters'].shape == (4,) and f.attrs['step'] == 30
assert sorted(os.listdir('$S/np4_z2_rerun')) == ['ckpt_00000020.h5', 'ckpt_00000030.h5', 'log.h5', 'log.h5.bak'], os.listdir('$S/np4_z2_rerun')
assert not [x for x in os.listdir('$S/np4_z2') if x.endswith('.tmp')]
"
# bytes of Adam moments per rank: 8 n at zero=0; the largest shard at zero=1, 2 (n/4 rounded to 16)
py_check memory_line "
import re
def moments(name):
    line = [l for l in open('$SCRATCH/' + name + '.out') if 'bytes per rank' in l][0]
    return [int(v) for v in re.search(r'params (\d+), gradients (\d+), Adam moments (\d+) \((\d+) of (\d+)', line).groups()]
p, g, m, shard, n = moments('np1_z0')
assert p == g == 4 * n and m == 8 * n and shard == n, (p, g, m, shard, n)
assert moments('np4_z0')[2] == 8 * n
for z in (1, 2):
    p4, g4, m4, s4, n4 = moments('np4_z%d' % z)
    assert n4 == n and p4 == g4 == 4 * n and m4 == 8 * s4 and n / 4 <= s4 < n / 4 + 32, (z, m4, s4)
"

# save at -np 2 with zero=2, crash; resume at -np 1, at -np 4, and at -np 2 with zero=0
expect_error crash_np2_z2 "simulated crash at step 25" $MPIRUN -np 2 "$AMD" train $CFG data="$S/toy.h5" run="$S/crash" zero=2 fault.exit_step=25
for t in "1 1" "4 2" "2 0"; do
  set -- $t
  cp -r "$S/crash" "$S/resume_np$1_z$2"
  train "resume_np$1_z$2" $1 $2 resume=1
done
py_check resume_other_rank_counts "
import h5py, numpy as np
for run, ref in (('resume_np1_z1', 'np1_z0'), ('resume_np4_z2', 'np4_z0')):
    a = h5py.File('$S/%s/log.h5' % run, 'r')['train/loss'][:]
    b = h5py.File('$S/%s/log.h5' % ref, 'r')['train/loss'][:]
    assert len(a) == 30, (run, len(a))
    rel = (np.abs(a - b) / np.abs(b)).max()
    assert rel < 1e-5, (run, rel)
    print(run, 'max relative difference to the uninterrupted run:', rel)
"
py_check resume_other_stage_bit_identical "
import h5py, numpy as np
a = h5py.File('$S/resume_np2_z0/log.h5', 'r')['train']; b = h5py.File('$S/np2_z0/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    assert np.array_equal(a[k][:], b[k][:]), k
ca = h5py.File('$S/resume_np2_z0/ckpt_00000030.h5', 'r')['teacher']; cb = h5py.File('$S/np2_z0/ckpt_00000030.h5', 'r')['teacher']
for k in ('params', 'adam_m', 'adam_v'):
    assert np.array_equal(ca[k][:], cb[k][:]), k
"

# zero=3: the mlp teacher at -np 2 is zero=0's bit for bit, EMA and /eval rows included
train np2_z3 2 3
E="eval.every=15 eval.n=64 eval.steps=4"
train np2_z0_eval 2 0 $E
train np2_z3_eval 2 3 $E
py_check stage3_mlp_bit_identical "
import h5py, numpy as np
for ref, run in (('np2_z0', 'np2_z3'), ('np2_z0_eval', 'np2_z3_eval')):
    a = h5py.File('$S/%s/log.h5' % ref, 'r'); b = h5py.File('$S/%s/log.h5' % run, 'r')
    for k in ('loss', 'grad_norm'):
        assert len(b['train'][k]) == 30 and np.array_equal(a['train'][k][:], b['train'][k][:]), (run, k)
    ca = h5py.File('$S/%s/ckpt_00000030.h5' % ref, 'r'); cb = h5py.File('$S/%s/ckpt_00000030.h5' % run, 'r')
    for k in ('teacher/params', 'teacher/adam_m', 'teacher/adam_v', 'teacher_ema/params'):
        assert np.array_equal(ca[k][:], cb[k][:]), (run, k)
a = h5py.File('$S/np2_z0_eval/log.h5', 'r')['eval']; b = h5py.File('$S/np2_z3_eval/log.h5', 'r')['eval']
assert len(a['step']) >= 4 and len(b['step']) == len(a['step']), (len(a['step']), len(b['step']))  # raw and EMA rows
for k in a.keys():
    if k != 'seconds':
        assert np.array_equal(a[k][:], b[k][:], equal_nan=True), ('eval', k)
"
py_check stage3_memory_line "
import re
def line(name):
    l = [l for l in open('$SCRATCH/' + name + '.out') if 'bytes per rank:' in l and 'gathered' in l][0]
    return [int(v) for v in re.search(r'params (\d+), gradients (\d+), Adam moments (\d+) \((\d+) of (\d+) values\), gathered buffers (\d+)', l).groups()]
p, g, m, shard, n, gb = line('np2_z3')
assert n / 2 <= shard < n / 2 + 32 and p == g == 4 * shard and m == 8 * shard and gb > 0, (p, g, m, shard, n, gb)
assert line('np2_z0')[5] == 0 and line('np2_z0')[0] == 4 * n
"
# the log's bytes per step against the cost model (DESIGN.md 7.2.1), from n and p alone (the unit
# intersections add up to the shard): rank 0 holds shard s of the 16-aligned split; one all-gather
# or reduce-scatter moves 4 (n - s) + 4 s (p - 1) bytes (in plus out); a teacher step is 2 of them
# at zero=0 and 2, 3 at zero=1 and 3 (forward gather, backward gather, reduce-scatter)
py_check comm_bytes_cost_model "
import h5py, re, numpy as np
n = int(h5py.File('$S/np1_z0/ckpt_00000030.h5', 'r')['teacher'].attrs['num_params'])
def expected(p, z):
    s = min((n + 15) // 16 // p * 16, n)
    return {0: 2, 1: 3, 2: 2, 3: 3}[z] * (4 * (n - s) + 4 * s * (p - 1))
for run, p, z in (('np1_z0', 1, 0), ('np2_z0', 2, 0), ('np2_z1', 2, 1), ('np2_z2', 2, 2), ('np4_z1', 4, 1),
                  ('np4_z2', 4, 2), ('np2_z3', 2, 3)):
    t = h5py.File('$S/%s/log.h5' % run, 'r')['train']
    b, sec = t['comm_bytes'][:], t['comm_s'][:]
    assert len(b) == 30 and (b == expected(p, z)).all(), (run, b[:3], expected(p, z))
    said = [l for l in open('$SCRATCH/%s.out' % run) if 'a step moves' in l][0]  # amd's start-up line
    assert int(re.search(r'moves (\d+) bytes', said).group(1)) == expected(p, z), (run, said)
    assert np.isfinite(sec).all() and (sec >= 0).all() and (sec[b == 0] < 1e-3).all(), (run, sec[:3])
    assert t['comm_bytes'].attrs['units'] == 'bytes'
b2 = h5py.File('$S/np2_z2/log.h5', 'r')['train/comm_bytes'][0]
b3 = h5py.File('$S/np2_z3/log.h5', 'r')['train/comm_bytes'][0]
assert b3 == 1.5 * b2, (b3, b2)
print('n', n, 'bytes per step at 2 ranks: zero=2', b2, 'zero=3', b3)
"
# the start-up line's bytes per rank, in the log's /memory table (one row per start)
py_check memory_table "
import h5py, re
def line(name):
    l = [l for l in open('$SCRATCH/' + name + '.out') if 'bytes per rank:' in l and 'gathered' in l][0]
    return [int(v) for v in re.search(r'params (\d+), gradients (\d+), Adam moments (\d+) \((\d+) of (\d+) values\), gathered buffers (\d+)', l).groups()]
for run, p, z in (('np2_z3', 2, 3), ('np4_z2', 4, 2), ('np1_z0', 1, 0)):
    m = h5py.File('$S/%s/log.h5' % run, 'r')['memory']
    par, grad, mom, values, n, gath = line(run)
    row = {k: m[k][:].tolist() for k in m}
    assert row['step'] == [0] and row['ranks'] == [p] and row['zero'] == [z], (run, row)
    assert (row['teacher_params'], row['teacher_gradients'], row['teacher_moments'], row['teacher_gathered']) == ([par], [grad], [mom], [gath]), (run, row)
    assert row['teacher_ema'] == [4 * values], (run, row)
    assert m['teacher_params'].attrs['units'] == 'bytes'
m = h5py.File('$S/resume_np4_z2/log.h5', 'r')['memory']
assert m['step'][:].tolist() == [0, 20] and m['ranks'][:].tolist() == [2, 4] and m['zero'][:].tolist() == [2, 2], m['ranks'][:]
"
# a log of an older amd (no comm_* columns, no /memory) resumed: the columns come with NaN rows
cp -r "$S/np2_z3" "$S/oldlog"
$PY -c "
import h5py
for p in ('$S/oldlog/log.h5', '$S/oldlog/log.h5.bak'):
    with h5py.File(p, 'a') as f:
        del f['train/comm_bytes'], f['train/comm_s'], f['memory']
"
train oldlog 2 3 train.steps=33 resume=1 resume.allow=train.steps
py_check old_log_resumed "
import h5py, numpy as np
f = h5py.File('$S/oldlog/log.h5', 'r')
b, ref = f['train/comm_bytes'][:], h5py.File('$S/np2_z3/log.h5', 'r')['train/comm_bytes'][0]
assert len(b) == 33 and np.isnan(b[:30]).all() and (b[30:] == ref).all(), b
assert len(f['train/comm_s']) == 33 and f['memory/step'][:].tolist() == [30], f['memory/step'][:]
"
# the dit teacher, on 256 random 8 x 8 images
$PY - "$S" <<'PYEOF'
import sys, h5py, numpy as np
r = np.random.default_rng(0)
with h5py.File(sys.argv[1] + "/img_raw.h5", "w") as g:
    g["images"] = (r.random((256, 1, 8, 8)) * 255).astype(np.uint8)
    g["labels"] = r.integers(0, 4, 256).astype(np.uint8)
PYEOF
"$AMD" data import in="$S/img_raw.h5" out="$S/img.h5" dataset=/images labels_dataset=/labels classes=4 >/dev/null
DIT="data=$S/img.h5 model.width=16 model.depth=2 model.heads=2 model.patch=4 model.temb_dim=8 train.steps=12
     train.batch=16 optim.warmup=2 log.every=4 ckpt.every=4 threads=1"
for z in 0 3; do expect_ok "dit_np2_z$z" $MPIRUN -np 2 "$AMD" train $DIT run="$S/dit_z$z" zero=$z; done
py_check stage3_dit_bit_identical "
import h5py, numpy as np
a = h5py.File('$S/dit_z0/log.h5', 'r')['train']; b = h5py.File('$S/dit_z3/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    assert len(b[k]) == 12 and np.array_equal(a[k][:], b[k][:]), k
ca = h5py.File('$S/dit_z0/ckpt_00000012.h5', 'r'); cb = h5py.File('$S/dit_z3/ckpt_00000012.h5', 'r')
assert ca['teacher'].attrs['kind'] == 'dit'
for k in ('teacher/params', 'teacher/adam_m', 'teacher/adam_v', 'teacher_ema/params'):
    assert np.array_equal(ca[k][:], cb[k][:]), k
"
# a zero=3 -np 2 checkpoint resumed at -np 1 and -np 3 with zero=3, and at -np 2 with zero=0
expect_error crash_np2_z3 "simulated crash at step 25" $MPIRUN -np 2 "$AMD" train $CFG data="$S/toy.h5" run="$S/crash3" zero=3 fault.exit_step=25
for t in "1 3" "3 3" "2 0"; do
  set -- $t
  cp -r "$S/crash3" "$S/resume3_np$1_z$2"
  train "resume3_np$1_z$2" $1 $2 resume=1
done
py_check stage3_resumes "
import h5py, numpy as np
for run in ('resume3_np1_z3', 'resume3_np3_z3'):
    a = h5py.File('$S/%s/log.h5' % run, 'r')['train/loss'][:]
    b = h5py.File('$S/np1_z0/log.h5', 'r')['train/loss'][:]
    assert len(a) == 30, (run, len(a))
    rel = (np.abs(a - b) / np.abs(b)).max()
    assert rel < 1e-5, (run, rel)
    print(run, 'max relative difference to the uninterrupted -np 1 run:', rel)
a = h5py.File('$S/resume3_np2_z0/log.h5', 'r')['train']; b = h5py.File('$S/np2_z0/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    assert np.array_equal(a[k][:], b[k][:]), k
ca = h5py.File('$S/resume3_np2_z0/ckpt_00000030.h5', 'r'); cb = h5py.File('$S/np2_z0/ckpt_00000030.h5', 'r')
for k in ('teacher/params', 'teacher/adam_m', 'teacher/adam_v', 'teacher_ema/params'):
    assert np.array_equal(ca[k][:], cb[k][:]), k
"
# kill -9 of both ranks inside the write of the step-20 checkpoint, then resume from step 10
$MPIRUN -np 2 "$AMD" train $CFG data="$S/toy.h5" run="$S/kill3" zero=3 fault.slow_ckpt_ms=1500 >"$S/kill3.out" 2>&1 &
pid=$!
for i in $(seq 1 400); do [ -e "$S/kill3/ckpt_00000020.h5.tmp" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.025; done
if [ -e "$S/kill3/ckpt_00000020.h5.tmp" ]; then
  ranks=$(pgrep -P $pid)
  kill -9 $ranks 2>/dev/null
  wait $pid 2>/dev/null
  # mpirun may exit before it reaps the killed ranks, which then stay zombies (alive to kill -0,
  # so to the run lock) until the container's init reaps them: wait for that
  for r in $ranks; do for i in $(seq 1 400); do kill -0 $r 2>/dev/null || break; sleep 0.025; done; done
  expect_ok kill3_resume $MPIRUN -np 2 "$AMD" train $CFG data="$S/toy.h5" run="$S/kill3" zero=3 resume=1
  if grep -q "resuming from $S/kill3/ckpt_00000010.h5" "$S/kill3_resume.out"; then pass stage3_kill9_resumes_at_10
  else fail stage3_kill9_resumes_at_10 "$(grep -m2 resum "$S/kill3_resume.out")"; fi
  py_check stage3_kill9_bit_identical "
import h5py, numpy as np
a = h5py.File('$S/kill3/log.h5', 'r')['train']; b = h5py.File('$S/np2_z3/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    assert len(a[k]) == 30 and np.array_equal(a[k][:], b[k][:]), k
ca = h5py.File('$S/kill3/ckpt_00000030.h5', 'r'); cb = h5py.File('$S/np2_z3/ckpt_00000030.h5', 'r')
for k in ('teacher/params', 'teacher/adam_m', 'teacher/adam_v', 'teacher_ema/params'):
    assert np.array_equal(ca[k][:], cb[k][:]), k
"
else
  wait $pid 2>/dev/null
  fail stage3_kill9_resumes_at_10 "no step-20 checkpoint write to kill: $(tail -3 "$S/kill3.out")"
fi
# a NaN gradient at step 15: the guard rolls back to the step-10 checkpoint and redoes the steps
# (guard.lr_factor=1, so the same ones): the end is the uninterrupted zero=3 run's, bit for bit
train rollback3 2 3 fault.nan_step=15 guard.lr_factor=1
py_check stage3_rollback_bit_identical "
import h5py, numpy as np
m = [x.decode() for x in h5py.File('$S/rollback3/log.h5', 'r')['events/message'][:]]
assert any('roll' in x for x in m), m
a = h5py.File('$S/rollback3/log.h5', 'r')['train']; b = h5py.File('$S/np2_z3/log.h5', 'r')['train']
for k in ('loss', 'grad_norm'):
    assert len(a[k]) == 30 and np.array_equal(a[k][:], b[k][:]), k
ca = h5py.File('$S/rollback3/ckpt_00000030.h5', 'r'); cb = h5py.File('$S/np2_z3/ckpt_00000030.h5', 'r')
for k in ('teacher/params', 'teacher/adam_m', 'teacher/adam_v', 'teacher_ema/params'):
    assert np.array_equal(ca[k][:], cb[k][:]), k
"
expect_error stage3_read_after_release "read while its unit is not gathered" $MPIRUN -np 2 "$PWD/build/tests/test_zero" read_after_release
expect_error stage3_classifier_refused "zero' = 3 is for task=teacher" "$AMD" train task=reward data="$S/img.h5" test_data="$S/img.h5" run="$S/cls3" zero=3

# AMD distillation of the np1_z0 teacher: student, fake teacher and GAN head sharded
D="teacher=$S/np1_z0 method=amd train.prompts=8 amd.K=4 fake_per_gen=2 train.steps=8 log.every=4 ckpt.every=4 threads=1"
distill() { # name np zero [key=value ...]
  local name=$1 np=$2 zero=$3; shift 3
  expect_ok "distill_$name" $MPIRUN -np "$np" "$AMD" distill $D run="$S/d_$name" zero="$zero" "$@"
}
distill np2_z0 2 0
distill np2_z2 2 2
distill np1_z0 1 0
distill np4_z0 4 0
py_check distill_zero2_bit_identical "
import h5py, numpy as np
a = h5py.File('$S/d_np2_z0/log.h5', 'r'); b = h5py.File('$S/d_np2_z2/log.h5', 'r')
for k in ('loss_dm', 'loss_fake', 'loss_gan_g', 'loss_gan_d', 'grad_norm_student', 'grad_norm_fake'):
    assert np.array_equal(a['train'][k][:], b['train'][k][:]), k
pa = h5py.File('$S/d_np2_z0/ckpt_00000008.h5', 'r'); pb = h5py.File('$S/d_np2_z2/ckpt_00000008.h5', 'r')
for net in ('student', 'fake', 'disc'):
    for k in ('params', 'adam_m', 'adam_v'):
        assert np.array_equal(pa[net][k][:], pb[net][k][:]), (net, k)
"
expect_error distill_crash "simulated crash at step 6" $MPIRUN -np 2 "$AMD" distill $D run="$S/d_crash" zero=2 fault.exit_step=6
for t in "1 1" "4 2"; do
  set -- $t
  cp -r "$S/d_crash" "$S/d_resume_np$1_z$2"
  distill "resume_np$1_z$2" $1 $2 resume=1
done
py_check distill_resume_other_rank_counts "
import h5py, numpy as np
for run, ref in (('d_resume_np1_z1', 'd_np1_z0'), ('d_resume_np4_z2', 'd_np4_z0')):
    a = h5py.File('$S/%s/log.h5' % run, 'r')['train']; b = h5py.File('$S/%s/log.h5' % ref, 'r')['train']
    for k in ('loss_dm', 'loss_fake', 'grad_norm_student', 'grad_norm_fake'):
        x, y = a[k][:], b[k][:]
        assert len(x) == 8, (run, k, len(x))
        rel = (np.abs(x - y) / (np.abs(y) + 1e-6)).max()
        assert rel < 1e-4, (run, k, rel)
        print(run, k, 'max relative difference to the uninterrupted run:', rel)
"
# distillation at zero=3
distill np2_z3 2 3
distill np2_z0_dmd 2 0 method=dmd
distill np2_z3_dmd 2 3 method=dmd
expect_error distill_crash3 "simulated crash at step 6" $MPIRUN -np 2 "$AMD" distill $D run="$S/d_crash3" zero=3 fault.exit_step=6
for t in "1 3" "2 0"; do
  set -- $t
  cp -r "$S/d_crash3" "$S/d_resume3_np$1_z$2"
  distill "resume3_np$1_z$2" $1 $2 resume=1
done
py_check distill_stage3 "
import h5py, numpy as np
def logs(run): return h5py.File('$S/%s/log.h5' % run, 'r')['train']
a, b = logs('d_np2_z0_dmd'), logs('d_np2_z3_dmd')
for k in ('loss_dm', 'loss_fake', 'grad_norm_student', 'grad_norm_fake'):
    assert len(b[k]) == 8 and np.array_equal(a[k][:], b[k][:]), ('dmd', k)
pa = h5py.File('$S/d_np2_z0_dmd/ckpt_00000008.h5', 'r'); pb = h5py.File('$S/d_np2_z3_dmd/ckpt_00000008.h5', 'r')
for k in ('student/params', 'student/adam_m', 'student/adam_v', 'fake/params', 'fake/adam_m', 'student_ema/params'):
    assert np.array_equal(pa[k][:], pb[k][:]), ('dmd', k)
for run, ref in (('d_np2_z3', 'd_np2_z0'), ('d_resume3_np1_z3', 'd_np1_z0'), ('d_resume3_np2_z0', 'd_np2_z0')):
    a, b = logs(run), logs(ref)
    for k in ('loss_dm', 'loss_fake', 'loss_gan_g', 'loss_gan_d', 'grad_norm_student', 'grad_norm_fake'):
        x, y = a[k][:], b[k][:]
        assert len(x) == 8, (run, k, len(x))
        rel = (np.abs(x - y) / (np.abs(y) + 1e-6)).max()
        assert rel < 1e-4, (run, k, rel)
    print(run, 'max relative difference of the losses and norms to', ref, ':', rel)
"
# the other GAN methods and a multi-step student at zero=3: dmd2 and dmdr (its reward term) with S = 2
for m in dmd2 dmdr; do
  distill "np2_z0_${m}_s2" 2 0 method=$m student.steps=2
  distill "np2_z3_${m}_s2" 2 3 method=$m student.steps=2
done
py_check distill_stage3_methods_s2 "
import h5py, numpy as np
for m in ('dmd2', 'dmdr'):
    a = h5py.File('$S/d_np2_z0_%s_s2/log.h5' % m, 'r')['train']
    b = h5py.File('$S/d_np2_z3_%s_s2/log.h5' % m, 'r')['train']
    rel = 0.0
    for k in ('loss_dm', 'loss_fake', 'loss_gan_g', 'grad_norm_student', 'grad_norm_fake'):
        x, y = b[k][:], a[k][:]
        assert len(x) == 8 and np.all(np.isfinite(x)), (m, k, x)
        r = (np.abs(x - y) / (np.abs(y) + 1e-6)).max()
        assert r < 1e-4, (m, k, r)
        rel = max(rel, r)
    pa = h5py.File('$S/d_np2_z0_%s_s2/ckpt_00000008.h5' % m, 'r')
    pb = h5py.File('$S/d_np2_z3_%s_s2/ckpt_00000008.h5' % m, 'r')
    d = np.abs(pa['student/params'][:] - pb['student/params'][:]).max()
    assert d < 1e-4, (m, 'student params', d)
    print(m, 'S = 2: max relative loss difference', rel, 'max parameter difference', d)
"
# same_distill CHECK RUN REF EVENT: RUN's 8 /train rows and step-8 checkpoint equal REF's bit for bit, and
# its /events hold a message with EVENT in it
same_distill() {
  py_check "$1" "
import h5py, numpy as np
m = [x.decode() for x in h5py.File('$S/$2/log.h5', 'r')['events/message'][:]]
assert any('$4' in x for x in m), m
a = h5py.File('$S/$2/log.h5', 'r')['train']; b = h5py.File('$S/$3/log.h5', 'r')['train']
for k in ('loss_dm', 'loss_fake', 'grad_norm_student'):
    assert len(a[k]) == 8 and np.array_equal(a[k][:], b[k][:]), k
ca = h5py.File('$S/$2/ckpt_00000008.h5', 'r'); cb = h5py.File('$S/$3/ckpt_00000008.h5', 'r')
for k in ('student/params', 'student/adam_m', 'fake/params', 'student_ema/params'):
    assert np.array_equal(ca[k][:], cb[k][:]), k
"
}
# a NaN at step 6 of a zero=3 dmd distillation: the guard rolls back to the step-4 checkpoint and
# redoes the steps (guard.lr_factor=1): the end is the uninterrupted zero=3 run's, bit for bit
distill rollback3_dmd 2 3 method=dmd fault.nan_step=6 guard.lr_factor=1
same_distill distill_stage3_rollback d_rollback3_dmd d_np2_z3_dmd roll
# SIGUSR1 before step 6 of a zero=3 dmd distillation (fault.signal_step): a checkpoint at 6, exit 75;
# the resume, from step 6, ends bit for bit where the uninterrupted zero=3 run does
$MPIRUN -np 2 "$AMD" distill $D run="$S/d_sig3" zero=3 method=dmd fault.signal_step=6 >"$S/d_sig3.out" 2>&1
rc=$?
if [ "$rc" -eq 75 ] && [ -f "$S/d_sig3/ckpt_00000006.h5" ]; then pass distill_stage3_sigusr1_exit_75
else fail distill_stage3_sigusr1_exit_75 "rc $rc: $(tail -c 600 "$S/d_sig3.out")"; fi
distill sig3 2 3 method=dmd resume=1
same_distill distill_stage3_sigusr1_resume d_sig3 d_np2_z3_dmd "resume from step 6"
py_check distill_stage3_memory_lines "
lines = [l for l in open('$SCRATCH/distill_np2_z3.out') if 'bytes' in l]
assert any('zero=3' in l and ' student params' in l for l in lines), lines
assert any('zero=3' in l and ' fake params' in l for l in lines), lines
assert any('zero=3' in l and ' disc params' in l for l in lines), lines
real = [l for l in lines if l.startswith('real teacher')]
assert real and 'gathered buffers 0' not in real[0], real
"
py_check distill_comm_and_memory "
import h5py, numpy as np
f = h5py.File('$S/d_np2_z3/log.h5', 'r')
t, m = f['train'], f['memory']
nets = ('student', 'fake', 'disc', 'real')
total = sum(t['comm_bytes_' + k][:] for k in nets)
assert len(total) == 8 and (t['comm_bytes'][:] == total).all() and (t['comm_bytes_real'][:] > 0).all(), t['comm_bytes'][:]
assert (m['real_params'][:] > 0).all() and (m['real_gathered'][:] > 0).all() and (m['real_moments'][:] == 0).all()
assert m['zero'][:].tolist() == [3] and (m['student_ema'][:] > 0).all() and (m['fake_ema'][:] == 0).all()
z0 = h5py.File('$S/d_np2_z0/log.h5', 'r')['train']
assert (z0['comm_bytes_real'][:] == 0).all() and (z0['comm_bytes'][:] > 0).all()
print('distillation bytes per step at 2 ranks: zero=0', z0['comm_bytes'][0], 'zero=3', t['comm_bytes'][0])
"
expect_error distill_stage3_no_pictures "needs the whole student on rank 0" "$AMD" distill $D run="$S/d_pic3" zero=3 sample.every=2
