#!/usr/bin/env bash
# eval.every for caption models (issue 20; docs/DESIGN.md sections 8 and 9.1), a tiny text-mode
# teacher and its student on 64 + 32 composed canvases, a tiny evaluator cell classifier:
#  - a student's /eval rows hold the GenEval-like score per category, overall, seen and held out,
#    and FD, precision and recall in the evaluator's cell features: shares in [0, 1] or NaN where
#    no sample has such a caption, FD >= 0; the same at 1 and 2 ranks;
#  - sample i takes caption i mod M of eval.data, M = min(eval.n, its canvases): a row equals
#    amd sample noise=eval prompts=<those captions> + amd eval (pr.max = eval.n) of the checkpoint
#    of its step, exactly (-np 1 and -np 2, eval.n above and below the split's size);
#  - a text-mode teacher in amd train likewise (eval.steps Euler steps);
#  - on the CUDA emulator (when built) the CPU's rows;
#  - no evaluator: a message and no rows; a 10-class evaluator of whole canvases, an eval.data
#    without /captions or with another vocabulary: usage errors that write nothing.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then echo "SKIP texteval: $FM missing (jobs/setup.sh installs it)"; exit 0; fi
expect_ok compose "$AMD" data compose n_train=64 n_test=32 seed=7 out_train="$S/train.h5" out_test="$S/test.h5"
TEXT="model.text=1 model.width=32 model.depth=1 model.patch=8 model.heads=2 model.text_width=16 model.text_depth=1"
expect_ok text_teacher "$AMD" train data="$S/train.h5" $TEXT train.steps=6 train.batch=8 log.every=3 ckpt.every=6 \
  threads=1 run="$S/t"
expect_ok cells "$AMD" data cells in="$S/test.h5" out="$S/cells.h5"
expect_ok cell_evaluator "$AMD" train task=evaluator data="$S/cells.h5" test_data="$S/cells.h5" model.width=16 \
  model.depth=1 model.heads=2 model.patch=7 train.steps=20 train.batch=32 log.every=10 ckpt.every=20 threads=1 \
  run="$S/ev"
EV="eval.evaluator=$S/ev eval.data=$S/test.h5"
D="teacher=$S/t train.prompts=4 amd.K=2 train.steps=4 log.every=2 ckpt.every=2 ckpt.keep=5 threads=1 method=dmd2 fake_per_gen=1"

# the student: eval.n = 40 > the 32 test canvases (M = 32, captions wrap), at 1 and 2 ranks; eval.n =
# 20 < 32 (M = 20)
expect_ok student_eval "$AMD" distill $D run="$S/dev" eval.every=2 eval.n=40 $EV
expect_ok student_eval_np2 $MPIRUN -np 2 "$AMD" distill $D run="$S/dev2" eval.every=2 eval.n=40 $EV
expect_ok student_eval_20 "$AMD" distill $D run="$S/dev20" eval.every=3 eval.n=20 $EV
py_check student_eval_rows "
import h5py, numpy as np
G = ['geneval_overall', 'geneval_single', 'geneval_two', 'geneval_counting', 'geneval_position', 'geneval_seen',
     'geneval_heldout']
for run, steps, n in (('dev', [0, 2, 4], 40), ('dev2', [0, 2, 4], 40), ('dev20', [0, 3, 4], 20)):
    e = h5py.File('$S/%s/log.h5' % run, 'r')['eval']
    assert set(e) == {'step', 'weights', 'samples', 'nfe', 'fd', 'precision', 'recall', 'seconds'} | set(G), set(e)
    assert list(e['step'][:]) == [s for s in steps for w in (0, 1)], (run, e['step'][:])
    assert (e['samples'][:] == n).all() and (e['nfe'][:] == 1).all(), run
    for k in G + ['precision', 'recall']:
        v = e[k][:]
        assert (np.isnan(v) | ((v >= 0) & (v <= 1))).all(), (run, k, v)
    assert np.isfinite(e['geneval_overall'][:]).all() and (e['fd'][:] >= 0).all(), run
# a category is NaN exactly where none of the samples' captions is of it
t = h5py.File('$S/test.h5', 'r')['captions']
names = t.attrs['categories']
names = (names.decode() if isinstance(names, bytes) else names).split(',')
for run, n in (('dev', 40), ('dev20', 20)):
    e = h5py.File('$S/%s/log.h5' % run, 'r')['eval']
    M = min(n, 32)
    cats = t['category'][:][np.arange(n) % M]
    held = t['held_out'][:][np.arange(n) % M]
    for j, k in enumerate(('single', 'two', 'counting', 'position')):
        assert np.isnan(e['geneval_' + k][:]).all() == (not (cats == names.index(k)).any()), (run, k, cats)
    assert np.isnan(e['geneval_heldout'][:]).all() == (not held.any()), (run, held)
    assert np.isnan(e['geneval_seen'][:]).all() == held.all(), (run, held)
a, b = h5py.File('$S/dev/log.h5', 'r')['eval'], h5py.File('$S/dev2/log.h5', 'r')['eval']
for k in a:
    if k == 'seconds': continue
    x, y = a[k][:], b[k][:]
    assert np.allclose(x, y, rtol=1e-4, atol=1e-6, equal_nan=True), ('1 and 2 ranks differ', k, x, y)
"

# a row is amd sample noise=eval prompts=<eval.data's first M captions> + amd eval of its checkpoint
$PY -c "
import h5py
t = [s.decode() for s in h5py.File('$S/test.h5', 'r')['captions/text'][:]]
open('$S/all.txt', 'w').write('\n'.join(t) + '\n')
open('$S/first20.txt', 'w').write('\n'.join(t[:20]) + '\n')
"
E="data=$S/test.h5 evaluator=$S/ev threads=1"
expect_ok sample_student "$AMD" sample ckpt="$S/dev/ckpt_00000004.h5" noise=eval n=40 prompts="$S/all.txt" out="$S/d4.h5" threads=1
expect_ok eval_student "$AMD" eval samples="$S/d4.h5" $E pr.max=40
expect_ok sample_student_raw "$AMD" sample ckpt="$S/dev/ckpt_00000002.h5" noise=eval n=40 prompts="$S/all.txt" \
  weights=raw out="$S/r2.h5" threads=1
expect_ok eval_student_raw "$AMD" eval samples="$S/r2.h5" $E pr.max=40
expect_ok sample_student_np2 $MPIRUN -np 2 "$AMD" sample ckpt="$S/dev2/ckpt_00000004.h5" noise=eval n=40 \
  prompts="$S/all.txt" out="$S/m4.h5" threads=1
expect_ok eval_student_np2 "$AMD" eval samples="$S/m4.h5" $E pr.max=40
expect_ok sample_student_20 "$AMD" sample ckpt="$S/dev20/ckpt_00000004.h5" noise=eval n=20 prompts="$S/first20.txt" \
  out="$S/s20.h5" threads=1
expect_ok eval_student_20 "$AMD" eval samples="$S/s20.h5" $E pr.max=20
# the teacher in amd train: eval.steps Euler steps, raw and EMA rows
expect_ok teacher_eval "$AMD" train data="$S/train.h5" $TEXT train.steps=4 train.batch=8 log.every=2 ckpt.every=4 \
  threads=1 run="$S/tev" eval.every=2 eval.n=20 eval.steps=2 $EV
expect_ok sample_teacher "$AMD" sample ckpt="$S/tev/ckpt_00000004.h5" noise=eval n=20 steps=2 prompts="$S/first20.txt" \
  out="$S/t4.h5" threads=1
expect_ok eval_teacher "$AMD" eval samples="$S/t4.h5" $E pr.max=20
py_check eval_rows_equal_sample_and_eval "
import h5py, numpy as np
# rows 2i (raw) and 2i + 1 (EMA) of the i-th evaluation; amd sample draws the EMA by default
for run, i, f in (('dev', 5, 'd4'), ('dev', 2, 'r2'), ('dev2', 5, 'm4'), ('dev20', 5, 's20'), ('tev', 5, 't4')):
    e = h5py.File('$S/%s/log.h5' % run, 'r')['eval']
    g = h5py.File('$S/%s_eval.h5' % f, 'r')['eval']
    assert e['weights'][i] == (i % 2), (run, i)
    for k in e:
        if k in ('step', 'weights', 'seconds'): continue
        assert np.array_equal(e[k][i], g[k][()].item(), equal_nan=True), (run, f, k, e[k][i], g[k][()])
    assert set(e) - set(g) == {'step', 'weights', 'seconds'}, set(e) - set(g)
s = h5py.File('$S/d4.h5', 'r')
t = h5py.File('$S/test.h5', 'r')['captions/tokens'][:]
assert np.array_equal(s['captions/tokens'][:], t[np.arange(40) % 32]), 'sample i: caption i mod 32'
"

# on the CUDA emulator (when built, make CUDA_EMU=1): the token rows of the evaluation's prompts on the
# device, the CPU's rows
EMU=$PWD/build-cuda-emu/amd
if [ -x "$EMU" ]; then
  U="$D train.steps=2 eval.every=2 eval.n=20 $EV"
  expect_ok emu_student_eval "$EMU" distill $U device=cuda run="$S/emu"
  expect_ok cpu_student_eval "$AMD" distill $U run="$S/cpu"
  py_check emu_same_rows "
import h5py, numpy as np
a, b = h5py.File('$S/cpu/log.h5', 'r')['eval'], h5py.File('$S/emu/log.h5', 'r')['eval']
assert len(a['step']) == 4
for k in a:
    if k != 'seconds': assert np.allclose(a[k][:], b[k][:], rtol=1e-4, atol=1e-6, equal_nan=True), (k, a[k][:], b[k][:])
"
else
  echo "SKIP emu_student_eval: no emulator build (make CUDA_EMU=1)"
fi

# no evaluator: a message, no rows; a 10-class evaluator, data without captions or with another
# vocabulary: usage errors that write nothing
expect_ok no_evaluator "$AMD" distill $D train.steps=2 run="$S/noev" eval.every=2 eval.data="$S/test.h5"
if grep -q "caption metrics need an evaluator (eval.evaluator=" "$S/no_evaluator.out" &&
   $PY -c "import h5py, sys; sys.exit('eval' in h5py.File('$S/noev/log.h5', 'r'))"; then
  pass no_evaluator_says_so
else
  fail no_evaluator_says_so "$(grep eval "$S/no_evaluator.out" | tail -3)"
fi
expect_ok canvas_evaluator "$AMD" train task=evaluator data="$S/train.h5" test_data="$S/test.h5" model.width=16 \
  model.depth=1 model.heads=2 model.patch=8 train.steps=2 train.batch=16 log.every=1 ckpt.every=2 threads=1 run="$S/ev10"
$PY -c "
import h5py, numpy as np, shutil
for name in ('plain', 'vocab'):
    shutil.copy('$S/test.h5', '$S/%s.h5' % name)
f = h5py.File('$S/plain.h5', 'r+')
del f['captions'], f['layout']
f = h5py.File('$S/vocab.h5', 'r+')
v = list(f['captions/vocab'][:])
v[5], v[6] = v[6], v[5]
del f['captions/vocab']
f['captions/vocab'] = np.array(v, dtype=h5py.string_dtype())
"
expect_error ten_class_evaluator "is not a cell classifier" "$AMD" distill $D run="$S/bad1" eval.every=2 \
  eval.evaluator="$S/ev10" eval.data="$S/test.h5"
expect_error eval_data_no_captions "holds no /captions" "$AMD" distill $D run="$S/bad2" eval.every=2 \
  eval.evaluator="$S/ev" eval.data="$S/plain.h5"
expect_error eval_data_other_vocab "8 tokens each; its token 5 is" "$AMD" distill $D \
  run="$S/bad3" eval.every=2 eval.evaluator="$S/ev" eval.data="$S/vocab.h5"
expect_error teacher_eval_no_captions "holds no /captions" "$AMD" train data="$S/train.h5" $TEXT train.steps=2 \
  train.batch=8 threads=1 run="$S/bad4" eval.every=2 eval.evaluator="$S/ev" eval.data="$S/plain.h5"
if ls -d "$S"/bad* >/dev/null 2>&1; then fail errors_write_nothing "$(ls -d "$S"/bad*)"; else pass errors_write_nothing; fi
