#!/usr/bin/env bash
# amd's distillation step against its PyTorch peer (benchmarks/distill_torch.py) on the same inputs,
# seconds on tiny networks (a 2-block DiT on 8 x 8 images, 16 samples a step):
#  - `amd distill fault.dump_step=1 fault.dump=FILE` writes step 1's inputs and per-sample losses,
#    every dataset described (units, description), and the run is bit-identical to one without it;
#    `amd info` summarizes the dump;
#  - `distill_torch.py --check` replays step 1 of dmd2, amd, amd's variants and a 2-step amd student
#    from the step-1 checkpoint and matches every loss, sample, reward, advantage, weight and gradient
#    norm, and the weights after the step (the step-2 checkpoint), within its tolerances;
#  - a dump with one loss moved by 1% fails the check, so the check can fail;
#  - fault.dump_step without fault.dump, and at -np 2, are usage errors.
# Skipped when /usr/bin/python3 has no torch (Debian: python3-torch).
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
if ! $PY -c "import torch" 2>/dev/null; then echo "SKIP peer: $PY cannot import torch (apt-get install python3-torch)"; exit 0; fi
PEER="$PWD/benchmarks/distill_torch.py"

# 256 images of 8 x 8 in 4 classes, each class a bright quadrant, through amd data import
$PY - "$S" <<'PYEOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
labels = rng.integers(0, 4, 256)
imgs = rng.integers(0, 60, (256, 1, 8, 8))
for i, c in enumerate(labels):
    imgs[i, 0, (c // 2) * 4:(c // 2) * 4 + 4, (c % 2) * 4:(c % 2) * 4 + 4] += 180
with h5py.File(sys.argv[1] + "/raw.h5", "w") as f:
    f["images"] = imgs.astype(np.uint8)
    f["labels"] = labels
PYEOF
"$AMD" data import in="$S/raw.h5" out="$S/data.h5" dataset=/images labels_dataset=/labels classes=4 >/dev/null
TINY="model.width=32 model.depth=2 model.heads=2 model.patch=2 threads=1 optim.warmup=0 log.every=10"
expect_ok teacher "$AMD" train data="$S/data.h5" run="$S/teacher" $TINY model.temb_dim=16 train.steps=20 train.batch=32 \
  ckpt.every=20
expect_ok reward "$AMD" train task=reward data="$S/data.h5" test_data="$S/data.h5" run="$S/reward" $TINY train.steps=20 \
  train.batch=32 ckpt.every=20 optim.lr=2e-3

# fake_per_gen 2 and guidance 2 as jobs/fmnist_*.cfg; a warmup, so the learning rates change inside the step
D="teacher=$S/teacher reward.ckpt=$S/reward train.prompts=4 amd.K=4 train.steps=2 log.every=1 threads=1 ckpt.every=1
   fake_per_gen=2 guidance=2 optim.warmup=3 fault.dump_step=1"
declare -A extra=([dmd2]="method=dmd2" [amd]="method=amd"
                  [amd_variants]="method=amd amd.beta_on=fake amd.rls_norm=mean1 amd.spread_floor=0.1 amd.s=0.1"
                  [amd_s2]="method=amd student.steps=2")
for run in dmd2 amd amd_variants amd_s2; do
  expect_ok "dump_$run" "$AMD" distill $D ${extra[$run]} run="$S/$run" fault.dump="$S/dump_$run.h5"
  if "$PY" "$PEER" --check "$S/dump_$run.h5" "$S/$run/ckpt_00000001.h5" >"$S/peer_$run.out" 2>&1; then
    pass "peer_$run"
  else
    fail "peer_$run" "$(grep -E '^FAIL|Error|error' "$S/peer_$run.out" | head -5) (all in $S/peer_$run.out)"
  fi
done

# the dump only reads: the run without it is the same bit for bit
expect_ok nodump_amd "$AMD" distill ${D/fault.dump_step=1/} ${extra[amd]} run="$S/amd_nodump"
py_check dump_changes_nothing "
import h5py, numpy as np
a, b = h5py.File('$S/amd/ckpt_00000002.h5', 'r'), h5py.File('$S/amd_nodump/ckpt_00000002.h5', 'r')
for net in ('student', 'fake', 'disc'):
    for v in ('params', 'adam_m', 'adam_v'):
        assert np.array_equal(a[net][v][:], b[net][v][:]), (net, v)
ta, tb = h5py.File('$S/amd/log.h5', 'r')['train'], h5py.File('$S/amd_nodump/log.h5', 'r')['train']
for col in ta:
    if col not in ('samples_per_s', 'time', 'comm_s'):
        assert np.array_equal(ta[col][:], tb[col][:], equal_nan=True), col
"
py_check dump_described "
import h5py
f = h5py.File('$S/dump_amd.h5', 'r')
assert f.attrs['format'] in (b'amd-step-dump', 'amd-step-dump') and int(f.attrs['step']) == 1
assert set(f) == {'fake0', 'fake1', 'generator'}, set(f)
n = []
f.visititems(lambda name, o: n.append(name) if isinstance(o, h5py.Dataset) else None)
for name in n:
    assert 'units' in f[name].attrs and 'description' in f[name].attrs, name
assert f['generator/dmd_stats'].shape == (16, 6) and f['fake0/flow_noise'].shape == (16, 64)
"

if "$AMD" info "$S/dump_amd.h5" >"$S/info.out" 2>&1 && grep -q "distillation step 1: real teacher /teacher_ema" "$S/info.out" \
   && grep -q "updates: /fake0 /fake1 /generator" "$S/info.out"; then pass info_dump; else fail info_dump "$(cat "$S/info.out")"; fi

# the check can fail: one per-sample flow loss of the amd dump moved by 1%
cp "$S/dump_amd.h5" "$S/dump_bad.h5"
$PY -c "
import h5py
with h5py.File('$S/dump_bad.h5', 'r+') as f:
    f['fake1/loss_flow'][3] *= 1.01
"
if "$PY" "$PEER" --check "$S/dump_bad.h5" "$S/amd/ckpt_00000001.h5" >"$S/peer_bad.out" 2>&1; then
  fail peer_detects_difference "a flow loss moved by 1% passed the check"
elif grep -q "^FAIL fake update 1 flow loss per sample" "$S/peer_bad.out"; then
  pass peer_detects_difference
else
  fail peer_detects_difference "exit non-zero without the flow loss's FAIL line: $(tail -3 "$S/peer_bad.out")"
fi

expect_error dump_needs_file "fault.dump_step' needs fault.dump" "$AMD" distill teacher="$S/teacher" run="$S/e1" \
  method=dmd2 fault.dump_step=0
expect_error dump_one_rank "runs on one rank only" $MPIRUN -np 2 "$AMD" distill teacher="$S/teacher" run="$S/e2" \
  method=dmd2 train.prompts=2 fault.dump_step=0 fault.dump="$S/e2.h5"
