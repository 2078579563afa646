#!/usr/bin/env bash
# MPI data parallelism and determinism of teacher training:
#  - the same run at -np 1 and -np 2 gives the same losses up to float reduction order;
#  - a run that crashes and resumes from its checkpoint gives bit-identical losses and parameters
#    to an uninterrupted one (at -np 2 and at -np 1);
#  - sampling writes the same file at any rank count (noise keyed by global sample index).
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
CFG="model.width=32 model.depth=2 model.temb_dim=16 train.batch=64 train.steps=60 log.every=10 ckpt.every=20 threads=1"
"$AMD" data toy2d out="$S/toy.h5" n=4000 >/dev/null

expect_ok np1 "$AMD" train data="$S/toy.h5" run="$S/np1" $CFG
expect_ok np2 $MPIRUN -np 2 "$AMD" train data="$S/toy.h5" run="$S/np2" $CFG
py_check np1_np2_same_losses "
import h5py, numpy as np
a = h5py.File('$S/np1/log.h5', 'r')['train/loss'][:]
b = h5py.File('$S/np2/log.h5', 'r')['train/loss'][:]
assert len(a) == len(b) == 60, (len(a), len(b))
rel = np.abs(a - b) / np.abs(a)
assert rel.max() < 1e-3, rel.max()
print('max relative difference', rel.max())
"

for np in 2 1; do
  expect_error "crash_np$np" "simulated crash at step 50" $MPIRUN -np $np "$AMD" train data="$S/toy.h5" run="$S/crash$np" $CFG fault.exit_step=50
  expect_ok "resume_np$np" $MPIRUN -np $np "$AMD" train data="$S/toy.h5" run="$S/crash$np" $CFG resume=1
  py_check "resume_bit_identical_np$np" "
import h5py, numpy as np
a = h5py.File('$S/np$np/log.h5', 'r')
b = h5py.File('$S/crash$np/log.h5', 'r')
for col in ('step', 'loss', 'grad_norm', 'lr'):
    x, y = a['train/' + col][:], b['train/' + col][:]
    assert x.shape == y.shape and np.array_equal(x, y), (col, x.shape, y.shape)
pa = h5py.File('$S/np$np/ckpt_00000060.h5', 'r')['teacher']
pb = h5py.File('$S/crash$np/ckpt_00000060.h5', 'r')['teacher']
for k in ('params', 'adam_m', 'adam_v'):
    assert np.array_equal(pa[k][:], pb[k][:]), k
"
done

expect_ok sample_np1 "$AMD" sample ckpt="$S/np1" out="$S/s1.h5" n=300 steps=10 batch=64 threads=1
expect_ok sample_np2 $MPIRUN -np 2 "$AMD" sample ckpt="$S/np1" out="$S/s2.h5" n=300 steps=10 batch=64 threads=1
py_check sample_rank_independent "
import h5py, numpy as np
a = h5py.File('$S/s1.h5', 'r'); b = h5py.File('$S/s2.h5', 'r')
assert np.array_equal(a['labels'][:], b['labels'][:])
d = np.abs(a['x'][:] - b['x'][:]).max()
assert d < 1e-5, d
"
