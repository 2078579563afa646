#!/usr/bin/env bash
# A run is what its checkpoint says (issue 16, items 2 and 3; src/resume_check.h, io/dataset.h):
#  - inputs are recorded by absolute path with a content fingerprint of the dataset: a distillation
#    started from another folder that holds another toy.h5 uses (and checks) the teacher's, and
#    matches the same distillation started beside the teacher bit for bit; sample and eval from
#    another folder use the recorded dataset too; a replaced dataset is refused naming both files
#    and what differs, a missing one is a clear error; an older checkpoint (a relative data path,
#    no fingerprint) still works from its folder, as a teacher and for a resume;
#  - a resume refuses changed settings (train.steps, optim.lr, model.width: exit 2, each key with
#    its old and new value), a replaced dataset and, for a distillation, a replaced teacher
#    checkpoint (its teacher_fingerprint), unless resume.allow= names them, which the
#    log's /events then records; keys that do not change the run (log.every, ckpt.every,
#    threads, cpu.ftz) may change, and the provenance records cpu.ftz; a typo in resume.allow= is refused;
#  - run= empty, the root folder or an existing file is a usage error.
source "$(dirname "$0")/lib.sh"
S=$(cd "$SCRATCH" && pwd)
A=$S/a
B=$S/b
mkdir -p "$A" "$B"
"$AMD" data toy2d out="$A/toy.h5" n=2000 modes=4 classes=2 >/dev/null
"$AMD" data toy2d out="$B/toy.h5" n=2000 modes=8 classes=2 seed=7 >/dev/null
TINY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 threads=1"
DIST="train.prompts=8 amd.K=2 fake_per_gen=1 train.steps=4 log.every=2 ckpt.every=2 threads=1"

# expect_usage NAME NEEDLE COMMAND...: exit 2 and NEEDLE on stderr.
expect_usage() {
  local name=$1 needle=$2; shift 2
  "$@" >"$S/$name.out" 2>"$S/$name.err"
  local rc=$?
  if [ "$rc" -eq 2 ] && grep -qF -- "$needle" "$S/$name.err"; then pass "$name"
  else fail "$name" "exit $rc, expected 2 and '$needle': $(head -c 500 "$S/$name.err")"; fi
}

# the teacher, trained in folder a on a relative data path
(cd "$A" && "$AMD" train data=toy.h5 run=teacher $TINY train.steps=20 ckpt.every=10 >"$S/teacher.out" 2>&1)
if [ $? -eq 0 ]; then pass teacher_trained; else fail teacher_trained "$(tail -3 "$S/teacher.out")"; fi
py_check checkpoint_records_absolute_data "
import h5py
f = h5py.File('$A/teacher/ckpt_00000020.h5', 'r')
assert f.attrs['data'] == '$A/toy.h5', f.attrs['data']
fp = f.attrs['data_fingerprint']
assert fp.startswith('2000 samples of 2, 2 classes, checksum ') and len(fp.split()[-1]) == 16, fp
cfg = dict(l.split(' = ', 1) for l in f.attrs['config'].splitlines())
assert cfg['data'] == '$A/toy.h5' and cfg['resume.allow'] == '', cfg
"

# distillation from folder b (its own, other toy.h5) uses the teacher's dataset: the same run as from a
(cd "$A" && "$AMD" distill teacher=teacher $DIST run="$S/dist_a" >"$S/dist_a.out" 2>&1)
(cd "$B" && "$AMD" distill teacher=../a/teacher $DIST run="$S/dist_b" >"$S/dist_b.out" 2>&1)
if [ -f "$S/dist_a/ckpt_00000004.h5" ] && [ -f "$S/dist_b/ckpt_00000004.h5" ]; then pass distill_from_both_folders
else fail distill_from_both_folders "$(tail -3 "$S/dist_a.out" "$S/dist_b.out")"; fi
py_check distill_elsewhere_uses_teachers_data "
import h5py, numpy as np
a = h5py.File('$S/dist_a/log.h5', 'r')['train']; b = h5py.File('$S/dist_b/log.h5', 'r')['train']
for k in ('reward_mean', 'loss_dm', 'loss_fake', 'off_manifold_frac'):
    assert np.array_equal(a[k][:], b[k][:]), (k, a[k][:], b[k][:])
t = h5py.File('$A/teacher/ckpt_00000020.h5', 'r').attrs
c = h5py.File('$S/dist_b/ckpt_00000004.h5', 'r').attrs
assert c['data'] == '$A/toy.h5' and c['data_fingerprint'] == t['data_fingerprint'], dict(c)
assert c['teacher'] == '$A/teacher/ckpt_00000020.h5', c['teacher']
"

# sample in a, eval from b: the samples name a's dataset, so the metrics are a's
(cd "$A" && "$AMD" sample ckpt=teacher out=samples.h5 n=400 steps=8 png=samples.png >"$S/sample_a.out" 2>&1 &&
  "$AMD" eval samples=samples.h5 out=eval_a.h5 >"$S/eval_a.out" 2>&1)
(cd "$B" && "$AMD" eval samples=../a/samples.h5 out=eval_b.h5 >"$S/eval_b.out" 2>&1)
py_check eval_elsewhere_uses_recorded_data "
import h5py
s = h5py.File('$A/samples.h5', 'r').attrs
assert s['data'] == '$A/toy.h5' and s['data_fingerprint'].startswith('2000 samples'), dict(s)
a = h5py.File('$A/eval_a.h5', 'r'); b = h5py.File('$B/eval_b.h5', 'r')
assert b.attrs['data'] == '$A/toy.h5', b.attrs['data']
for k in ('off_manifold', 'coverage', 'mass_error', 'log_density'):
    assert a['eval/' + k][0] == b['eval/' + k][0], (k, a['eval/' + k][0], b['eval/' + k][0])
"

# an older teacher checkpoint (a relative data path, no fingerprint) works from its folder as before
cp -r "$A/teacher" "$A/old_teacher"
$PY -c "
import h5py
f = h5py.File('$A/old_teacher/ckpt_00000020.h5', 'r+')
f.attrs['data'] = 'toy.h5'
del f.attrs['data_fingerprint']
"
(cd "$A" && "$AMD" distill teacher=old_teacher $DIST run="$S/dist_old" >"$S/dist_old.out" 2>&1)
if [ $? -eq 0 ]; then pass old_checkpoint_still_works; else fail old_checkpoint_still_works "$(tail -3 "$S/dist_old.out")"; fi
py_check old_checkpoint_same_run "
import h5py, numpy as np
a = h5py.File('$S/dist_a/log.h5', 'r')['train']; b = h5py.File('$S/dist_old/log.h5', 'r')['train']
assert np.array_equal(a['reward_mean'][:], b['reward_mean'][:])
assert h5py.File('$S/dist_old/ckpt_00000004.h5', 'r').attrs['data'] == '$A/toy.h5'
"

# the teacher's dataset replaced, then missing: refused, naming both files and what differs
cp "$A/toy.h5" "$S/toy_orig.h5"
cp "$B/toy.h5" "$A/toy.h5"
expect_usage distill_replaced_data_refused "is not the one '$A/teacher/ckpt_00000020.h5' records: the same shape and classes" \
  "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_x"
[ -e "$S/dist_x/log.h5" ] && fail distill_refusal_writes_nothing "log.h5 written" || pass distill_refusal_writes_nothing
expect_usage eval_replaced_data_refused "is not the one '$A/samples.h5' records" "$AMD" eval samples="$A/samples.h5" out="$S/x.h5"
expect_usage sample_png_replaced_data_refused "is not the one" \
  "$AMD" sample ckpt="$A/teacher" out="$S/x.h5" n=10 steps=2 png="$S/x.png"
expect_ok distill_other_data_on_purpose "$AMD" distill teacher="$A/teacher" data="$B/toy.h5" $DIST run="$S/dist_data"
rm "$A/toy.h5"
expect_usage distill_missing_data_refused "the dataset '$A/toy.h5' that '$A/teacher/ckpt_00000020.h5' records does not exist" \
  "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_y"
cp "$S/toy_orig.h5" "$A/toy.h5"

# resume: changed settings refused, allowed by resume.allow= (and recorded), free keys free
R="data=$A/toy.h5 $TINY ckpt.every=10"
expect_ok run20 "$AMD" train $R run="$S/r" train.steps=20
expect_usage resume_steps_refused "train.steps: 20 -> 30" "$AMD" train $R run="$S/r" train.steps=30 resume=1
expect_usage resume_lr_refused "optim.lr: 0.001 -> 0.005" "$AMD" train $R run="$S/r" train.steps=20 optim.lr=5e-3 resume=1
expect_usage resume_names_every_key "resume.allow=train.steps,optim.lr" \
  "$AMD" train $R run="$S/r" train.steps=30 optim.lr=5e-3 resume=1
expect_usage resume_width_refused "model.width: 16 -> 32" "$AMD" train $R run="$S/r" model.width=32 resume=1
expect_usage resume_seed_refused "seed: 0 -> 1" "$AMD" train $R run="$S/r" seed=1 resume=1
expect_usage resume_allow_typo_refused "'optim.lrr' is not a key" \
  "$AMD" train $R run="$S/r" train.steps=30 resume=1 resume.allow=optim.lrr
py_check provenance_cpu_ftz "
import h5py
a = h5py.File('$S/r/log.h5', 'r').attrs['cpu.ftz']
assert (a.decode() if isinstance(a, bytes) else a) == 'true', a
"
expect_ok resume_free_keys "$AMD" train $R run="$S/r" train.steps=20 log.every=3 ckpt.every=7 threads=2 cpu.ftz=0 resume=1
expect_ok resume_allowed "$AMD" train $R run="$S/r" train.steps=30 optim.lr=5e-3 resume=1 resume.allow=train.steps,optim.lr
py_check resume_allowed_logged "
import h5py, numpy as np
f = h5py.File('$S/r/log.h5', 'r')
m = [x.decode() if isinstance(x, bytes) else x for x in f['events/message'][:]]
assert 'resume: train.steps 20 -> 30 (resume.allow)' in m and 'resume: optim.lr 0.001 -> 0.005 (resume.allow)' in m, m
assert np.array_equal(f['train/step'][:], np.arange(1, 31))
c = dict(l.split(' = ', 1) for l in h5py.File('$S/r/ckpt_00000030.h5', 'r').attrs['config'].splitlines())
assert c['train.steps'] == '30' and c['optim.lr'] == '0.005', c
"
if grep -q "resume: train.steps 20 -> 30 (resume.allow)" "$S/resume_allowed.out"; then pass resume_allowed_says_so
else fail resume_allowed_says_so "$(grep -i resum "$S/resume_allowed.out")"; fi

# an older run's checkpoint (relative data path in its config, no resume.allow key, no fingerprint)
# resumes from its folder with the same settings, and still refuses other ones
(cd "$A" && "$AMD" train data=toy.h5 run=old_run $TINY train.steps=10 ckpt.every=10 >"$S/old_run.out" 2>&1)
py_check old_run_made "
import h5py
f = h5py.File('$A/old_run/ckpt_00000010.h5', 'r+')
c = f.attrs['config'].replace('data = $A/toy.h5', 'data = toy.h5').replace('resume.allow = \\n', '')
assert 'data = toy.h5' in c and 'resume.allow' not in c, c
f.attrs['config'] = c
f.attrs['data'] = 'toy.h5'
del f.attrs['data_fingerprint']
"
(cd "$A" && "$AMD" train data=toy.h5 run=old_run $TINY train.steps=10 ckpt.every=10 resume=1 >"$S/old_resume.out" 2>&1)
if [ $? -eq 0 ] && grep -q "resuming from old_run/ckpt_00000010.h5" "$S/old_resume.out"; then pass old_checkpoint_resumes
else fail old_checkpoint_resumes "$(tail -3 "$S/old_resume.out")"; fi
(cd "$A" && exec "$AMD" train data=toy.h5 run=old_run $TINY train.steps=20 ckpt.every=10 resume=1) >"$S/old_changed.out" 2>&1
if [ $? -eq 2 ] && grep -q "train.steps: 10 -> 20" "$S/old_changed.out"; then pass old_checkpoint_refuses_changes
else fail old_checkpoint_refuses_changes "$(tail -3 "$S/old_changed.out")"; fi

# the dataset replaced between a run and its resume
cp "$B/toy.h5" "$A/toy.h5"
R="$R optim.lr=5e-3"
expect_usage resume_replaced_data_refused "resume.allow=data" "$AMD" train $R run="$S/r" train.steps=40 resume=1 \
  resume.allow=train.steps
if grep -q "the dataset '$A/toy.h5' is not the one the checkpoint records: the same shape and classes" \
  "$S/resume_replaced_data_refused.err"; then pass resume_replaced_data_names_it
else fail resume_replaced_data_names_it "$(head -c 600 "$S/resume_replaced_data_refused.err")"; fi
expect_ok resume_data_allowed "$AMD" train $R run="$S/r" train.steps=40 resume=1 resume.allow=train.steps,data
py_check resume_data_allowed_logged "
import h5py
m = [x.decode() if isinstance(x, bytes) else x for x in h5py.File('$S/r/log.h5', 'r')['events/message'][:]]
assert any(x.startswith(\"resume: data '$A/toy.h5': the same shape\") and x.endswith('(resume.allow)') for x in m), m
"
cp "$S/toy_orig.h5" "$A/toy.h5"

# a distillation resumed after its teacher's data changed is refused too
expect_error dist_crash "simulated crash" "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_r" fault.exit_step=3
cp "$B/toy.h5" "$A/toy.h5"
expect_usage distill_resume_replaced_data_refused "is not the one" \
  "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_r" resume=1
cp "$S/toy_orig.h5" "$A/toy.h5"
expect_ok distill_resume "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_r" resume=1
py_check distill_records_teacher_fingerprint "
import h5py
t = h5py.File('$A/teacher/ckpt_00000020.h5', 'r')['teacher/params']
c = h5py.File('$S/dist_r/ckpt_00000004.h5', 'r').attrs
assert c['teacher_fingerprint'] == '%d params, checksum %016x' % (t.shape[0], t.attrs['checksum']), dict(c)
"

# ... and after its teacher checkpoint was replaced by another teacher's (same path, same data)
(cd "$A" && "$AMD" train data=toy.h5 run=teacher2 $TINY train.steps=20 ckpt.every=10 seed=1 >/dev/null 2>&1)
cp "$A/teacher/ckpt_00000020.h5" "$S/teacher_orig.h5"
expect_error dist_crash2 "simulated crash" "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_t" fault.exit_step=3
cp "$A/teacher2/ckpt_00000020.h5" "$A/teacher/ckpt_00000020.h5"
expect_usage distill_resume_replaced_teacher_refused "resume.allow=teacher" \
  "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_t" resume=1
if grep -qF "the teacher checkpoint '$A/teacher/ckpt_00000020.h5' is not the one the checkpoint records" \
  "$S/distill_resume_replaced_teacher_refused.err"; then pass distill_resume_replaced_teacher_names_it
else fail distill_resume_replaced_teacher_names_it "$(head -c 600 "$S/distill_resume_replaced_teacher_refused.err")"; fi
expect_ok distill_resume_teacher_allowed "$AMD" distill teacher="$A/teacher" $DIST run="$S/dist_t" resume=1 \
  resume.allow=teacher
cp "$S/teacher_orig.h5" "$A/teacher/ckpt_00000020.h5"

# run= that cannot hold a run (data= a missing file: an amd that took run= would stop there, writing nothing)
N="data=$S/none.h5 $TINY"
expect_usage run_root_refused "is the root folder" "$AMD" train $N run=/ train.steps=2
expect_usage run_root_dotdot_refused "is the root folder" "$AMD" train $N run=/tmp/.. train.steps=2
expect_usage run_empty_refused "config key 'run' is empty" "$AMD" train $N run= train.steps=2
expect_usage run_file_refused "is an existing file, not a folder" "$AMD" train $N run="$A/toy.h5" train.steps=2
expect_usage distill_run_root_refused "is the root folder" "$AMD" distill teacher="$S/none" $DIST run=/
