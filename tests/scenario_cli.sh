#!/usr/bin/env bash
# Bad inputs through the real binary: every one must exit non-zero with a message that names the
# problem, and leave what was already written loadable. Also `--help`, `info` on every file kind,
# and the divergence guard of training: exit 3 with guard.max_rollbacks = 0, rollback and
# learning-rate backoff by default, giving up after max_rollbacks spikes.
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

# a good run, then the NaN guard without rollbacks (guard.max_rollbacks = 0): the job stops with the
# divergence status, names the step, logs the event, writes nothing for that step, and the newest
# checkpoint still loads
expect_ok train_small "$AMD" train data="$S/toy.h5" run="$S/run" $TINY train.steps=20 ckpt.every=10
expect_error existing_run_refused "already holds a run" "$AMD" train data="$S/toy.h5" run="$S/run" $TINY
expect_error wrong_kind_as_data "expected amd-dataset" "$AMD" train data="$S/run/log.h5" run="$S/r1"
rm -rf "$S/nan"
"$AMD" train data="$S/toy.h5" run="$S/nan" $TINY train.steps=40 ckpt.every=10 fault.nan_step=25 guard.max_rollbacks=0 \
  >"$S/nan.out" 2>"$S/nan.err"
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

# divergence recovery (the default guard.max_rollbacks = 3): the same NaN rolls back to the step-20
# checkpoint with half the learning rate, logs the event, and the run finishes with finite losses;
# a NaN before the first checkpoint rolls back to the initial state
expect_ok ref40 "$AMD" train data="$S/toy.h5" run="$S/ref40" $TINY train.steps=40 ckpt.every=10
expect_ok nan_rollback "$AMD" train data="$S/toy.h5" run="$S/rb" $TINY train.steps=40 ckpt.every=10 fault.nan_step=25
expect_ok nan_rollback_initial "$AMD" train data="$S/toy.h5" run="$S/rb0" $TINY train.steps=40 ckpt.every=10 fault.nan_step=5
py_check nan_rollback_recovers "
import h5py, numpy as np
def msgs(f): return [m.decode() if isinstance(m, bytes) else m for m in f['events/message'][:]]
ref = h5py.File('$S/ref40/log.h5', 'r')['train']
f = h5py.File('$S/rb/log.h5', 'r'); t = f['train']
m = msgs(f)
assert len(m) == 1 and 'rollback 1 of 3 to' in m[0] and 'ckpt_00000020.h5' in m[0] and f['events/step'][0] == 25, m
assert np.array_equal(t['step'][:], np.arange(1, 41)), t['step'][:]  # the rolled-back rows were replaced
assert np.isfinite(t['loss'][:]).all() and np.isfinite(t['grad_norm'][:]).all()
assert np.array_equal(t['loss'][:20], ref['loss'][:20])
assert np.allclose(t['lr'][20:], 0.5 * ref['lr'][20:], rtol=1e-12), (t['lr'][20:], ref['lr'][20:])
assert not np.array_equal(t['loss'][20:], ref['loss'][20:])
g = h5py.File('$S/rb/ckpt_00000040.h5', 'r')
assert g['counters'][2] == 1, g['counters'][:]  # the rollback count travels with the checkpoint
f0 = h5py.File('$S/rb0/log.h5', 'r'); t0 = f0['train']
m0 = msgs(f0)
assert len(m0) == 1 and 'the initial state' in m0[0], m0
assert len(t0['step']) == 40 and np.isfinite(t0['loss'][:]).all()
assert t0['loss'][0] == ref['loss'][0] and np.allclose(t0['lr'][:], 0.5 * ref['lr'][:], rtol=1e-12)
"
# a loss-spike guard with a hair trigger diverges again and again, and gives up after max_rollbacks
"$AMD" train data="$S/toy.h5" run="$S/spike" $TINY train.steps=200 ckpt.every=10 guard.spike=1.0001 guard.window=2 \
  guard.max_rollbacks=2 >"$S/spike.out" 2>"$S/spike.err"
rc=$?
if [ "$rc" -eq 3 ] && grep -q "diverged at step" "$S/spike.err" && grep -q "rollbacks used: 2" "$S/spike.err"; then
  pass spike_guard_gives_up; else fail spike_guard_gives_up "rc $rc: $(tail -c 600 "$S/spike.err")"; fi
py_check spike_guard_events "
import h5py
f = h5py.File('$S/spike/log.h5', 'r')
m = [x.decode() if isinstance(x, bytes) else x for x in f['events/message'][:]]
assert len(m) == 3 and 'rollback 1 of 2' in m[0] and 'rollback 2 of 2' in m[1] and 'giving up' in m[2], m
assert 'above 1.0001 x its mean' in m[0], m[0]
"
expect_error guard_bad_factor "'guard.lr_factor'" "$AMD" train data="$S/toy.h5" run="$S/r0" guard.lr_factor=2

# damaged checkpoints: a truncated newest file and a leftover .tmp from a crash mid-write
cp "$S/run/ckpt_00000020.h5" "$S/trunc_ckpt.h5"
truncate -s 2000 "$S/trunc_ckpt.h5"
expect_error truncated_checkpoint "truncated" "$AMD" sample ckpt="$S/trunc_ckpt.h5" out="$S/x.h5"
head -c 5000 "$S/run/ckpt_00000020.h5" >"$S/run/ckpt_00000030.h5.tmp"
expect_ok resume_ignores_tmp "$AMD" train data="$S/toy.h5" run="$S/run" $TINY train.steps=30 ckpt.every=10 resume=1 \
  resume.allow=train.steps
if grep -q "resuming from $S/run/ckpt_00000020.h5" "$SCRATCH/resume_ignores_tmp.out"; then pass resume_picks_newest_complete; else fail resume_picks_newest_complete "$(head -3 "$SCRATCH/resume_ignores_tmp.out")"; fi
expect_error resume_other_architecture "model.width: 16 -> 32" "$AMD" train data="$S/toy.h5" run="$S/run" $TINY model.width=32 train.steps=40 resume=1

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

# image datasets (issue 4): Fashion-MNIST from the Debian package dataset-fashion-mnist, which
# jobs/setup.sh installs, so a missing package fails these checks rather than skipping them; then
# `amd data import` of IDX and HDF5 images, good and bad (bad ones must leave no output file)
FM=/usr/share/datasets/fashion-mnist
expect_ok data_help_lists_kinds bash -c "'$AMD' data --help | grep -q '^ *fmnist .*Fashion-MNIST' && '$AMD' data fmnist --help |
  grep -q out_train && '$AMD' data import --help | grep -q labels_dataset"
t0=$EPOCHREALTIME
expect_ok data_fmnist "$AMD" data fmnist out_train="$S/fmnist_train.h5" out_test="$S/fmnist_test.h5"
echo "data_fmnist: $(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $t0 }") s"
py_check fmnist_layout "
import gzip, h5py, numpy as np
tr, te = h5py.File('$S/fmnist_train.h5', 'r'), h5py.File('$S/fmnist_test.h5', 'r')
assert tr['x'].shape == (60000, 1, 28, 28) and tr['x'].dtype == np.float32, tr['x']
assert te['x'].shape == (10000, 1, 28, 28) and te['x'].dtype == np.float32, te['x']
x = tr['x'][:]
assert x.min() == -1 and x.max() == 1, (x.min(), x.max())
l, lt = tr['labels'][:], te['labels'][:]
assert l.dtype == np.int32 and l.shape == (60000,) and lt.shape == (10000,)
assert l.min() == 0 and l.max() == 9 and (np.bincount(l) == 6000).all(), np.bincount(l)
assert lt.min() == 0 and lt.max() == 9 and (np.bincount(lt) == 1000).all(), np.bincount(lt)
for f, split in ((tr, 'train'), (te, 'test')):
    assert f.attrs['format'] == 'amd-dataset' and f.attrs['num_classes'] == 10, dict(f.attrs)
    assert f.attrs['source'] == 'fashion-mnist ' + split, f.attrs['source']
    assert f.attrs['class_names'].split(',') == ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                                                 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'], f.attrs['class_names']
raw = np.frombuffer(gzip.open('$FM/t10k-images-idx3-ubyte.gz').read()[16:], np.uint8).reshape(10000, 1, 28, 28)
assert np.allclose(te['x'][:], raw / 127.5 - 1, rtol=0, atol=1e-6), 'test pixels are not p / 127.5 - 1'
raw = np.frombuffer(gzip.open('$FM/t10k-labels-idx1-ubyte.gz').read()[8:], np.uint8)
assert (lt == raw).all(), 'test labels differ from the IDX file'
"
expect_ok info_fmnist "$AMD" info "$S/fmnist_train.h5"
if grep -q "60000 samples of shape (1, 28, 28), values in \[-1, 1\]" "$S/info_fmnist.out"; then pass info_fmnist_shape
else fail info_fmnist_shape "$(cat "$S/info_fmnist.out")"; fi
expect_error fmnist_missing_dir "install the Debian package dataset-fashion-mnist" "$AMD" data fmnist dir="$S/nowhere" \
  out_train="$S/bad_out.h5" out_test="$S/bad_out.h5"

$PY -c "
import gzip, struct, h5py, numpy as np
rng = np.random.default_rng(4)
img = rng.integers(0, 256, size=(40, 9, 7), dtype=np.uint8)
img[0, 0, :2] = 0, 255
hdr = struct.pack('>IIII', 0x803, 40, 9, 7)
gzip.open('$S/imp_images.idx.gz', 'wb').write(hdr + img.tobytes())
open('$S/imp_images.idx', 'wb').write(hdr + img.tobytes())
lab = (np.arange(40) % 5).astype(np.uint8)
open('$S/imp_labels.idx', 'wb').write(struct.pack('>II', 0x801, 40) + lab.tobytes())
open('$S/imp_labels39.idx', 'wb').write(struct.pack('>II', 0x801, 39) + lab[:39].tobytes())
open('$S/imp_magic.idx', 'wb').write(struct.pack('>IIII', 0x802, 40, 9, 7) + img.tobytes())
open('$S/imp_trunc.idx', 'wb').write(hdr + img.tobytes()[:1000])
with h5py.File('$S/imp_u8.h5', 'w') as f:
    f['images'] = rng.integers(0, 256, size=(30, 3, 8, 8), dtype=np.uint8)
    f['labels'] = np.arange(30, dtype=np.int64) % 3
with h5py.File('$S/imp_float.h5', 'w') as f:
    v = rng.uniform(-1, 1, size=(30, 1, 8, 8)).astype(np.float32)
    v[3, 0, 1, 2], v[7, 0, 0, 0] = -1.5, 1.25
    f['images'] = v
    f['flat'] = np.zeros((30, 64), np.float32)
"
expect_ok import_idx_gz "$AMD" data import in="$S/imp_images.idx.gz" labels="$S/imp_labels.idx" out="$S/imp_idx.h5"
expect_ok import_idx_plain_no_labels "$AMD" data import in="$S/imp_images.idx" out="$S/imp_plain.h5" name=plain
expect_ok import_h5_uint8 "$AMD" data import in="$S/imp_u8.h5" labels_dataset=/labels out="$S/imp_h5.h5"
py_check import_layout "
import h5py, numpy as np
raw = np.frombuffer(open('$S/imp_images.idx', 'rb').read()[16:], np.uint8).reshape(40, 1, 9, 7)
for name, classes in (('imp_idx', 5), ('imp_plain', 1)):
    f = h5py.File('$S/%s.h5' % name, 'r')
    assert f['x'].shape == (40, 1, 9, 7), f['x'].shape
    assert np.allclose(f['x'][:], raw / 127.5 - 1, rtol=0, atol=1e-6), name + ': pixels are not p / 127.5 - 1'
    assert f.attrs['num_classes'] == classes, (name, f.attrs['num_classes'])
assert (h5py.File('$S/imp_idx.h5', 'r')['labels'][:] == np.arange(40) % 5).all()
assert (h5py.File('$S/imp_plain.h5', 'r')['labels'][:] == 0).all()
assert h5py.File('$S/imp_plain.h5', 'r').attrs['source'] == 'plain'
src, f = h5py.File('$S/imp_u8.h5', 'r'), h5py.File('$S/imp_h5.h5', 'r')
assert f['x'].shape == (30, 3, 8, 8) and f.attrs['num_classes'] == 3, (f['x'].shape, f.attrs['num_classes'])
assert np.allclose(f['x'][:], src['images'][:] / 127.5 - 1, rtol=0, atol=1e-6)
assert (f['labels'][:] == src['labels'][:]).all()
"
expect_ok info_import "$AMD" info "$S/imp_h5.h5"
expect_error import_missing "imp_nothing.idx' does not exist" "$AMD" data import in="$S/imp_nothing.idx" out="$S/bad_out.h5"
expect_error import_wrong_magic "wrong magic number 0x00000802, expected 0x00000803" \
  "$AMD" data import in="$S/imp_magic.idx" out="$S/bad_out.h5"
expect_error import_truncated "truncated: its header promises 40 images of 9 x 7 pixels, 2520 bytes of data, but 1000" \
  "$AMD" data import in="$S/imp_trunc.idx" out="$S/bad_out.h5"
expect_error import_label_count "holds 39 labels but" \
  "$AMD" data import in="$S/imp_images.idx" labels="$S/imp_labels39.idx" out="$S/bad_out.h5"
expect_error import_label_range "outside [0, 4)" \
  "$AMD" data import in="$S/imp_images.idx" labels="$S/imp_labels.idx" classes=4 out="$S/bad_out.h5"
expect_error import_float_out_of_range "from min -1.5 to max 1.25, outside [-1, 1]" \
  "$AMD" data import in="$S/imp_float.h5" out="$S/bad_out.h5"
expect_error import_h5_wrong_rank "2 dimensions; expected 4: (N, C, H, W)" \
  "$AMD" data import in="$S/imp_float.h5" dataset=/flat out="$S/bad_out.h5"
if [ ! -e "$S/bad_out.h5" ] && [ ! -e "$S/bad_out.h5.tmp" ]; then pass import_errors_write_nothing
else fail import_errors_write_nothing "$(ls "$S"/bad_out*)"; fi
