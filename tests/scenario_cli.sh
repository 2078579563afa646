#!/usr/bin/env bash
# Bad inputs through the real binary: every one must exit non-zero with a message that names the
# problem, and leave what was already written loadable. Also `--help`, `info` on every file kind,
# and the NaN guard of training.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
TINY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 log.every=5 threads=1"

expect_ok data_toy2d "$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2
expect_ok help_lists_keys bash -c "'$AMD' train --help | grep -q 'optim.lr' && '$AMD' sample --help | grep -q 'sampler'"
expect_error unknown_command "unknown command 'trian'" "$AMD" trian
expect_error unknown_key "'optim.lrr'" "$AMD" train data="$S/toy.h5" optim.lrr=1
expect_error unknown_key_suggests "did you mean 'optim.lr'" "$AMD" train data="$S/toy.h5" optim.lrr=1
expect_error out_of_range "'train.steps'" "$AMD" train data="$S/toy.h5" train.steps=0
expect_error bad_float "'optim.lr'" "$AMD" train data="$S/toy.h5" optim.lr=fast
expect_error nan_value "'optim.lr'" "$AMD" train data="$S/toy.h5" optim.lr=nan
expect_error bad_choice "euler|heun" "$AMD" sample ckpt=x sampler=rk4
printf 'optim.lr = 1e-3\nbogus.key = 3\n' >"$S/bad.cfg"
expect_error unknown_key_in_file "bad.cfg:2" "$AMD" train "$S/bad.cfg" data="$S/toy.h5"
expect_error data_required "'data' is required" "$AMD" train
expect_error missing_file "does not exist" "$AMD" train data="$S/nope.h5" run="$S/r0"
echo "not hdf5 at all" >"$S/text.h5"
expect_error not_hdf5 "not an HDF5 file" "$AMD" train data="$S/text.h5" run="$S/r0"
head -c 3000 "$S/toy.h5" >"$S/trunc.h5"
expect_error truncated_dataset "truncated" "$AMD" train data="$S/trunc.h5" run="$S/r0"
$PY -c "
import h5py; f = h5py.File('$S/newer.h5', 'w'); f.attrs['format'] = 'amd-dataset'; f.attrs['format_version'] = 99"
expect_error newer_version "newer than this amd" "$AMD" train data="$S/newer.h5" run="$S/r0"
$PY -c "import h5py; h5py.File('$S/foreign.h5', 'w')['x'] = [1.0]"
expect_error foreign_hdf5 "not an amd file" "$AMD" info "$S/foreign.h5"
expect_error device_cuda_without_backend "without the CUDA backend" "$AMD" train data="$S/toy.h5" run="$S/r0" device=cuda
expect_error batch_below_ranks "smaller than the rank count" $MPIRUN -np 2 "$AMD" train data="$S/toy.h5" run="$S/r0" train.batch=1

# a good run, then the NaN guard: the job stops with the divergence status, names the step, logs
# the event, writes nothing for that step, and the newest checkpoint still loads
expect_ok train_small "$AMD" train data="$S/toy.h5" run="$S/run" $TINY train.steps=20 ckpt.every=10
expect_error existing_run_refused "already holds a run" "$AMD" train data="$S/toy.h5" run="$S/run" $TINY
expect_error wrong_kind_as_data "expected amd-dataset" "$AMD" train data="$S/run/log.h5" run="$S/r1"
rm -rf "$S/nan"
"$AMD" train data="$S/toy.h5" run="$S/nan" $TINY train.steps=40 ckpt.every=10 fault.nan_step=25 >"$S/nan.out" 2>"$S/nan.err"
rc=$?
if [ "$rc" -eq 3 ] && grep -q "diverged at step 25" "$S/nan.err"; then pass nan_guard_exit_status; else fail nan_guard_exit_status "rc $rc: $(cat "$S/nan.err")"; fi
if [ -f "$S/nan/ckpt_00000020.h5" ] && [ ! -e "$S/nan/ckpt_00000030.h5" ] && ! ls "$S/nan"/*.tmp >/dev/null 2>&1; then
  pass nan_guard_no_new_checkpoint; else fail nan_guard_no_new_checkpoint "$(ls "$S/nan")"; fi
expect_ok nan_guard_checkpoint_loads "$AMD" sample ckpt="$S/nan" out="$S/nan_samples.h5" n=64 steps=4
py_check nan_guard_logged "
import h5py
f = h5py.File('$S/nan/log.h5', 'r', locking=False)
msgs = [m.decode() if isinstance(m, bytes) else m for m in f['events/message'][:]]
assert any('diverged' in m for m in msgs), msgs
assert f['train/step'][-1] <= 25, f['train/step'][-1]
"

# damaged checkpoints: a truncated newest file and a leftover .tmp from a crash mid-write
cp "$S/run/ckpt_00000020.h5" "$S/trunc_ckpt.h5"
truncate -s 2000 "$S/trunc_ckpt.h5"
expect_error truncated_checkpoint "truncated" "$AMD" sample ckpt="$S/trunc_ckpt.h5" out="$S/x.h5"
head -c 5000 "$S/run/ckpt_00000020.h5" >"$S/run/ckpt_00000030.h5.tmp"
expect_ok resume_ignores_tmp "$AMD" train data="$S/toy.h5" run="$S/run" $TINY train.steps=30 ckpt.every=10 resume=1
if grep -q "resuming from $S/run/ckpt_00000020.h5" "$SCRATCH/resume_ignores_tmp.out"; then pass resume_picks_newest_complete; else fail resume_picks_newest_complete "$(head -3 "$SCRATCH/resume_ignores_tmp.out")"; fi
expect_error resume_other_architecture "architecture mismatch" "$AMD" train data="$S/toy.h5" run="$S/run" $TINY model.width=32 train.steps=40 resume=1

# sample, eval and info on every kind of file
expect_ok sample_png "$AMD" sample ckpt="$S/run" out="$S/samples.h5" n=200 steps=8 sampler=heun cfg=2 png="$S/samples.png"
expect_error sample_bad_class "'class'" "$AMD" sample ckpt="$S/run" out="$S/x.h5" class=7
expect_ok eval_runs "$AMD" eval samples="$S/samples.h5" out="$S/eval.h5"
for f in toy.h5 run/log.h5 run/ckpt_00000030.h5 samples.h5 eval.h5; do
  expect_ok "info_$(basename "$f" .h5)" "$AMD" info "$S/$f"
done
py_check png_written "
import struct
b = open('$S/samples.png', 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n'
w, h = struct.unpack('>II', b[16:24]); assert (w, h) == (640, 640), (w, h)
"
py_check samples_file_layout "
import h5py, numpy as np
f = h5py.File('$S/samples.h5', 'r')
assert f.attrs['format'] == 'amd-samples' and f['x'].shape == (200, 2) and f['labels'].shape == (200,)
assert f.attrs['nfe'] == 8 * 2 * 2 - 2, f.attrs['nfe']  # Heun, 8 steps, last step Euler, CFG doubles
assert np.isfinite(f['x'][:]).all()
"
