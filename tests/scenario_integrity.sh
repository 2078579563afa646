#!/usr/bin/env bash
# Damaged checkpoints are not trusted (src/runloop.c, ckpt_validate of io/ckpt.h): a resume passes
# over a newest checkpoint that is truncated, whose counters are not counts, whose step attribute
# is not the step of its name (a copy named ckpt_99999999.h5), whose parameters hold a NaN or whose
# adam_v holds an Inf or a negative value, with a message and an event, and continues from the
# newest good one; when every checkpoint is damaged the resume stops with an error naming them.
# Checksums: every array's `checksum` attribute is the documented sum at 1 and 2 ranks; one flipped
# bit in the parameters is found by it (resume passes over the file, `amd sample` of it is an
# error); a checkpoint without checksums still loads. A run folder named to `amd sample` or to
# `amd distill teacher=` gives its newest trusted checkpoint (past a truncated one, with a message;
# all damaged: an error); misnamed copies are passed over and ckpt.keep never removes them.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
CFG="data=$S/toy.h5 model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 ckpt.every=10 threads=1"
expect_ok ref "$AMD" train $CFG run="$S/ref" train.steps=30

# damage NAME [KIND]: a copy NAME of the reference run whose step-30 checkpoint is damaged the way
# KIND (default: NAME) says
damage() {
  rm -rf "$S/$1"
  cp -r "$S/ref" "$S/$1"
  $PY - "$S/$1" "${2:-$1}" <<'PYEOF'
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

# checksums (io/ckpt.h): every array of a checkpoint carries one, and it is the documented sum
# (docs/DESIGN.md section 6.3), the same whatever the rank count that wrote it
expect_ok ref_np2 $MPIRUN -np 2 "$AMD" train $CFG run="$S/ref2" train.steps=20
py_check checksum_attributes_match_the_formula "
import h5py, numpy as np
def mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))
def checksum(bits):
    with np.errstate(over='ignore'):
        return int(mix(bits ^ mix(np.arange(len(bits), dtype=np.uint64))).sum(dtype=np.uint64))
for run in ('ref', 'ref2'):
    f = h5py.File('$S/%s/ckpt_00000020.h5' % run, 'r')
    for k in ('params', 'adam_m', 'adam_v'):
        d = f['teacher'][k]
        assert checksum(d[:].view(np.uint32).astype(np.uint64)) == int(d.attrs['checksum']), (run, k)
    c = f['counters']
    assert checksum(c[:].view(np.uint64)) == int(c.attrs['checksum']), run
    assert 'checksum' in f['teacher/layout'].attrs, run
"
# one flipped bit in the file (the lowest of a parameter: still finite, only the checksum sees it)
damage flipped_bit none
$PY - "$S/flipped_bit/ckpt_00000030.h5" <<'PYEOF'
import sys, h5py
path = sys.argv[1]
with h5py.File(path, 'r') as f:
    off = f['teacher/params'].id.get_offset() + 4 * 5
with open(path, 'r+b') as fh:
    fh.seek(off); b = fh.read(1); fh.seek(off); fh.write(bytes([b[0] ^ 1]))
PYEOF
expect_error sample_refuses_a_damaged_file "does not match its checksum" \
  "$AMD" sample ckpt="$S/flipped_bit/ckpt_00000030.h5" n=16 out="$S/x.h5"
expect_ok resume_past_flipped_bit "$AMD" train $CFG run="$S/flipped_bit" resume=1 train.steps=40 resume.allow=train.steps
if grep -q "ckpt_00000030.h5 is damaged (/teacher/params does not match its checksum" "$S/resume_past_flipped_bit.out" &&
   grep -q "resuming from $S/flipped_bit/ckpt_00000020.h5" "$S/resume_past_flipped_bit.out"; then pass flipped_bit_found_by_checksum
else fail flipped_bit_found_by_checksum "$(grep -i 'damaged\|resum' "$S/resume_past_flipped_bit.out" | head -3)"; fi
# a checkpoint written before checksums (none on its arrays) still loads
damage no_checksums none
$PY -c "
import h5py
with h5py.File('$S/no_checksums/ckpt_00000030.h5', 'r+') as f:
    for d in ('counters', 'teacher/params', 'teacher/adam_m', 'teacher/adam_v', 'teacher/layout'): del f[d].attrs['checksum']
"
expect_ok resume_without_checksums "$AMD" train $CFG run="$S/no_checksums" resume=1 train.steps=40 resume.allow=train.steps
if grep -q "resuming from $S/no_checksums/ckpt_00000030.h5" "$S/resume_without_checksums.out"; then pass old_checkpoint_loads
else fail old_checkpoint_loads "$(grep -i 'damaged\|resum' "$S/resume_without_checksums.out" | head -3)"; fi

# a run folder named to sample, distill (teacher=) or eval takes the newest checkpoint it can trust:
# past a truncated newest one, with a message
damage truncated2 truncated
expect_ok sample_past_truncated "$AMD" sample ckpt="$S/truncated2" n=64 out="$S/truncated2_samples.h5"
if grep -q "ckpt_00000030.h5 is damaged (.*): passed over" "$S/sample_past_truncated.out" &&
   $PY -c "
import h5py, sys
sys.exit(h5py.File('$S/truncated2_samples.h5', 'r').attrs['checkpoint'] != '$PWD/$S/truncated2/ckpt_00000020.h5')"
then pass sample_falls_back_to_20; else fail sample_falls_back_to_20 "$(head -3 "$S/sample_past_truncated.out")"; fi
expect_ok distill_teacher_past_truncated "$AMD" distill teacher="$S/truncated2" run="$S/dist_tr" train.prompts=4 amd.K=2 \
  fake_per_gen=1 train.steps=2 log.every=1 ckpt.every=2 threads=1
if grep -q "teacher $PWD/$S/truncated2/ckpt_00000020.h5" "$S/distill_teacher_past_truncated.out"; then pass distill_teacher_falls_back_to_20
else fail distill_teacher_falls_back_to_20 "$(grep -i 'teacher\|damaged' "$S/distill_teacher_past_truncated.out" | head -3)"; fi
expect_error sample_all_damaged "no checkpoint can be trusted" "$AMD" sample ckpt="$S/allbad" n=16 out="$S/y.h5"

# misnamed copies (ckpt_99999999.h5 and ckpt_00000001.h5, each holding step 30) are neither taken
# nor pruned: the run goes on from step 30 and ckpt.keep=2 removes only its own older checkpoints
damage misnamed2 none
cp "$S/misnamed2/ckpt_00000030.h5" "$S/misnamed2/ckpt_99999999.h5"
cp "$S/misnamed2/ckpt_00000030.h5" "$S/misnamed2/ckpt_00000001.h5"
expect_ok sample_past_misnamed "$AMD" sample ckpt="$S/misnamed2" n=16 out="$S/misnamed2_samples.h5"
if grep -q "ckpt_99999999.h5 is damaged (its step attribute (30) is not the step 99999999 of its name): passed over" \
   "$S/sample_past_misnamed.out"; then pass sample_passes_over_misnamed; else fail sample_passes_over_misnamed "$(head -3 "$S/sample_past_misnamed.out")"; fi
expect_ok resume_with_misnamed "$AMD" train $CFG run="$S/misnamed2" resume=1 train.steps=50 ckpt.keep=2 resume.allow=train.steps
got=$(cd "$S/misnamed2" && echo ckpt_*.h5)
if [ "$got" = "ckpt_00000001.h5 ckpt_00000040.h5 ckpt_00000050.h5 ckpt_99999999.h5" ] &&
   grep -q "resuming from $S/misnamed2/ckpt_00000030.h5" "$S/resume_with_misnamed.out" &&
   grep -q "ckpt.keep leaves '$S/misnamed2/ckpt_99999999.h5' alone" "$S/resume_with_misnamed.out"; then pass keep_prunes_only_its_own
else fail keep_prunes_only_its_own "files: $got; $(grep -i 'resum\|keep' "$S/resume_with_misnamed.out" | head -3)"; fi
