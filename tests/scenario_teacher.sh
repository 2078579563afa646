#!/usr/bin/env bash
# Teacher quality at the demo's training budget (jobs/toy_teacher.cfg, mpirun -np 2): its 50-step
# Euler samples must cover every mode and put fewer than 5% of samples off-manifold (beyond 3
# sigma of every mode; a perfect sampler puts 1.1% there).
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" >/dev/null
expect_ok teacher_train $MPIRUN -np 2 "$AMD" train jobs/toy_teacher.cfg data="$S/toy.h5" run="$S/teacher"
expect_ok teacher_sample $MPIRUN -np 2 "$AMD" sample ckpt="$S/teacher" out="$S/t50.h5" steps=50 n=8192
expect_ok teacher_eval "$AMD" eval samples="$S/t50.h5"
py_check teacher_covers_every_mode "
import h5py
e = h5py.File('$S/t50_eval.h5', 'r')['eval']
assert e['coverage'][0] == 1.0, e['coverage'][0]
"
py_check teacher_off_manifold_below_5pct "
import h5py
e = h5py.File('$S/t50_eval.h5', 'r')['eval']
assert e['off_manifold'][0] < 0.05, e['off_manifold'][0]
"
# the few-step teacher is what distillation must fix: at 1 step it lands between the modes
expect_ok teacher_sample_1step "$AMD" sample ckpt="$S/teacher" out="$S/t1.h5" steps=1 n=4096
expect_ok teacher_eval_1step "$AMD" eval samples="$S/t1.h5"
py_check teacher_1step_in_forbidden_zone "
import h5py
e = h5py.File('$S/t1_eval.h5', 'r')['eval']
assert e['off_manifold'][0] > 0.5, e['off_manifold'][0]
"
