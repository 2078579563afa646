#!/usr/bin/env bash
# The learning-rate schedule of amd distill (optim.schedule, issue 17): constant by default (both
# learning rates the configured ones after the warmup); cosine decays the student's over train.steps
# and the fake teacher's over its train.steps x fake_per_gen updates to optim.lr_min_ratio x each,
# after a linear warmup, as the /train columns lr_student and lr_fake show against the formula.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" n=2000 >/dev/null
expect_ok teacher "$AMD" train data="$S/toy.h5" run="$S/teacher" model.width=16 model.depth=1 model.temb_dim=8 \
  train.batch=32 train.steps=10 threads=1
D="teacher=$S/teacher train.prompts=8 amd.K=2 train.steps=12 log.every=4 threads=1 fake_per_gen=3
  optim.lr_student=1e-3 optim.lr_fake=2e-3 optim.warmup=2"
expect_ok distill_constant "$AMD" distill $D run="$S/constant"
expect_ok distill_cosine "$AMD" distill $D run="$S/cosine" optim.schedule=cosine optim.lr_min_ratio=0.2
py_check lr_schedules "
import h5py, math, numpy as np
def lr(peak, low, warmup, total, u, cosine):
    if warmup > 0 and u < warmup: return peak * (u + 1) / warmup
    if not cosine or total <= warmup: return peak
    p = min((u - warmup) / (total - warmup), 1.0)
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * p))
for run, cosine in (('constant', 0), ('cosine', 1)):
    t = h5py.File('$S/' + run + '/log.h5', 'r')['train']
    steps = t['step'][:] - 1
    r = 0.2 if cosine else 1.0
    want_s = [lr(1e-3, 1e-3 * r, 2, 12, s, cosine) for s in steps]
    want_f = [lr(2e-3, 2e-3 * r, 6, 36, 3 * s, cosine) for s in steps]
    assert np.allclose(t['lr_student'][:], want_s, rtol=1e-12, atol=0), (run, t['lr_student'][:], want_s)
    assert np.allclose(t['lr_fake'][:], want_f, rtol=1e-12, atol=0), (run, t['lr_fake'][:], want_f)
c = h5py.File('$S/constant/log.h5', 'r')['train']
assert (c['lr_student'][2:] == 1e-3).all() and (c['lr_fake'][2:] == 2e-3).all(), 'constant after the warmup'
k = h5py.File('$S/cosine/log.h5', 'r')['train']
assert k['lr_student'][-1] < 0.25e-3 and np.all(np.diff(k['lr_student'][2:]) < 0), k['lr_student'][:]
"
