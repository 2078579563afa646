#!/usr/bin/env bash
# Damaged checkpoints are not trusted (src/runloop.c, ckpt_validate of io/ckpt.h): a resume passes
# over a newest checkpoint that is truncated, whose counters are not counts, whose step attribute
# is not the step of its name (a copy named ckpt_99999999.h5), whose parameters hold a NaN or whose
# adam_v holds an Inf or a negative value, with a message and an event, and continues from the
# newest good one; when every checkpoint is damaged the resume stops with an error naming them.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
CFG="data=$S/toy.h5 model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 ckpt.every=10 threads=1"
expect_ok ref "$AMD" train $CFG run="$S/ref" train.steps=30

# damage KIND: a copy of the reference run whose step-30 checkpoint is damaged that way
damage() {
  rm -rf "$S/$1"
  cp -r "$S/ref" "$S/$1"
  $PY - "$S/$1" "$1" <<'PYEOF'
import sys, os, h5py, numpy as np
run, kind = sys.argv[1], sys.argv[2]
path = run + '/ckpt_00000030.h5'
if kind == 'truncated':
    os.truncate(path, os.path.getsize(path) // 2)
elif kind == 'misnamed':
    os.rename(path, run + '/ckpt_99999999.h5')
else:
    with h5py.File(path, 'r+') as f:
        if kind == 'nan_counters': f['counters'][0] = np.nan
        if kind == 'negative_rollbacks': f['counters'][2] = -3
        if kind == 'negative_step': f.attrs['step'] = np.int64(-7)
        if kind == 'nan_params': f['teacher/params'][5] = np.nan
        if kind == 'inf_adam_v': f['teacher/adam_v'][7] = np.inf
        if kind == 'negative_adam_v': f['teacher/adam_v'][7] = -1e-3
PYEOF
}
for kind in truncated misnamed nan_counters negative_rollbacks negative_step nan_params inf_adam_v negative_adam_v; do
  damage $kind
  expect_ok "resume_past_$kind" "$AMD" train $CFG run="$S/$kind" resume=1 train.steps=40 resume.allow=train.steps
  if grep -q "is damaged (.*): passed over" "$S/resume_past_$kind.out" && \
     grep -q "resuming from $S/$kind/ckpt_00000020.h5" "$S/resume_past_$kind.out"; then pass "resume_past_${kind}_from_20"
  else fail "resume_past_${kind}_from_20" "$(grep -i 'damaged\|resum' "$S/resume_past_$kind.out" | head -3)"; fi
done
py_check passed_over_is_an_event "
import h5py
m = [x.decode() for x in h5py.File('$S/nan_params/log.h5', 'r')['events/message'][:]]
assert any('ckpt_00000030.h5 is damaged (/teacher/params[5] = nan)' in x for x in m), m
"
# every checkpoint damaged: an error naming them, no new run
damage allbad
for s in 10 20 30; do $PY -c "
import h5py, numpy as np
with h5py.File('$S/allbad/ckpt_000000$s.h5', 'r+') as f: f['counters'][1] = np.nan
"; done
expect_error resume_all_damaged "no checkpoint can be trusted" "$AMD" train $CFG run="$S/allbad" resume=1 train.steps=40
