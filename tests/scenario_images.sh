#!/usr/bin/env bash
# Images end to end on a small slice of Fashion-MNIST with tiny networks (seconds, not quality):
#  - a dit teacher, a reward and an evaluator classifier train from the CLI; the classifiers learn
#    (test accuracy well above chance) and log it;
#  - every distillation method runs on the dit; dmdr and amd use the classifier reward;
#  - amd sample writes image samples and a PNG grid with a row per class; amd eval computes the
#    image metrics (FD, precision, recall, accuracy, reward) into an eval file;
#  - eval.every writes FD, precision, recall and accuracy rows equal to amd sample + amd eval;
#  - bad settings (no test split, no reward network, no evaluator, a patch that does not divide the
#    image, a classifier on vector data) are clear errors;
#  - benchmarks/fmnist_methods.sh runs every stage at toy sizes and writes its table.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then echo "SKIP images: $FM missing (jobs/setup.sh installs it)"; exit 0; fi
"$AMD" data fmnist out_train="$S/fm_train.h5" out_test="$S/fm_test.h5" >/dev/null
# slices: 3000 training and 500 test images, through amd data import of HDF5 arrays
$PY - "$S" <<'PYEOF'
import sys, h5py, numpy as np
S = sys.argv[1]
for split, n in (("train", 3000), ("test", 500)):
    f = h5py.File(f"{S}/fm_{split}.h5", "r")
    with h5py.File(f"{S}/slice_{split}.h5", "w") as g:
        g["images"] = f["x"][:n]
        g["labels"] = f["labels"][:n]
PYEOF
for split in train test; do
  "$AMD" data import in="$S/slice_$split.h5" out="$S/$split.h5" dataset=/images labels_dataset=/labels classes=10 >/dev/null
done
TINY="model.width=32 model.depth=1 model.heads=2 model.patch=7 threads=1 optim.warmup=0 log.every=20"

expect_ok teacher "$AMD" train data="$S/train.h5" run="$S/teacher" $TINY model.temb_dim=32 train.steps=30 train.batch=32 ckpt.every=30 \
  sample.every=30 sample.steps=4
py_check teacher_sample_grid "
import matplotlib.image as mpimg, numpy as np
img = mpimg.imread('$S/teacher/samples_00000030.png')
assert img.shape[:2] == (10 * 30 + 2, 8 * 30 + 2), img.shape  # a row per class, 8 samples of 28 x 28
assert len(np.unique(img[2:30, 2:30])) > 10, 'blank sample'
"
expect_ok reward "$AMD" train task=reward data="$S/train.h5" test_data="$S/test.h5" run="$S/reward" $TINY train.steps=80 \
  train.batch=64 ckpt.every=40 optim.lr=2e-3
expect_ok evaluator "$AMD" train task=evaluator data="$S/train.h5" test_data="$S/test.h5" run="$S/evaluator" $TINY \
  model.width=48 model.heads=4 seed=1 train.steps=60 train.batch=64 ckpt.every=60 optim.lr=2e-3
py_check classifiers_learn "
import h5py, numpy as np
for run in ('reward', 'evaluator'):
    t = h5py.File('$S/' + run + '/log.h5', 'r')['train']
    acc = t['test_accuracy'][:]
    acc = acc[np.isfinite(acc)]
    assert len(acc) >= 1, (run, 'no test accuracy logged')
    assert acc[-1] > 0.3, (run, 'test accuracy', acc[-1], 'chance is 0.1')
    c = h5py.File('$S/' + run + '/ckpt_%08d.h5' % t['step'][-1], 'r')
    assert c['classifier'].attrs['kind'] == b'classifier' or c['classifier'].attrs['kind'] == 'classifier'
t = h5py.File('$S/teacher/log.h5', 'r')['train']
assert np.isfinite(t['loss'][:]).all()
c = h5py.File('$S/teacher/ckpt_00000030.h5', 'r')['teacher']
assert c.attrs['img_size'] == 28 and c.attrs['patch'] == 7, dict(c.attrs)
"
D="teacher=$S/teacher train.prompts=4 amd.K=2 train.steps=3 log.every=1 threads=1"
for m in dmd dmd2; do expect_ok distill_$m "$AMD" distill $D method=$m run="$S/$m"; done
for m in dmdr amd; do expect_ok distill_$m "$AMD" distill $D method=$m run="$S/$m" reward.ckpt="$S/reward"; done
py_check distill_logs "
import h5py, numpy as np
for m in ('dmd', 'dmd2', 'dmdr', 'amd'):
    t = h5py.File('$S/' + m + '/log.h5', 'r')['train']
    assert len(t['loss_dm']) == 3 and np.isfinite(t['loss_dm'][:]).all(), m
    assert np.isnan(t['off_manifold_frac'][:]).all(), (m, 'off-manifold is only defined on toy data')
a = h5py.File('$S/amd/log.h5', 'r')['train']
assert (a['reward_mean'][:] < 0).all() and (a['reward_std'][:] > 0).all(), 'classifier reward = log p(c|x) < 0'
assert a['alpha_std'][-1] > 0
d = h5py.File('$S/dmd/log.h5', 'r')['train']
assert (d['reward_mean'][:] == 0).all(), 'no reward network: rewards are 0'
"
# the status lines say nothing of off-manifold on images (not "nan"); on toy data they do (scenario_values)
py_check distill_status_no_nan "
lines = [l for l in open('$S/distill_amd.out').read().splitlines() if l.startswith('step ')]
assert len(lines) == 3, lines
assert all('nan' not in l and 'off-manifold' not in l and 'forbidden' in l for l in lines), lines
"
# eval.every on images: FD, precision, recall and accuracy rows (step 0, every 2 steps, the last; raw
# and EMA weights), the EMA row equal to amd sample noise=eval + amd eval (pr.max = eval.n) of its
# checkpoint; no evaluator: none
EV="eval.evaluator=$S/evaluator eval.data=$S/test.h5"
expect_ok distill_eval "$AMD" distill $D method=dmd2 run="$S/dev" eval.every=2 eval.n=40 $EV
expect_ok teacher_eval "$AMD" train data="$S/train.h5" run="$S/tev" $TINY model.temb_dim=32 train.steps=4 train.batch=32 \
  eval.every=2 eval.n=20 eval.steps=2 $EV
expect_ok distill_eval_sample "$AMD" sample ckpt="$S/dev" noise=eval n=40 out="$S/dev3.h5" threads=1
expect_ok distill_eval_eval "$AMD" eval samples="$S/dev3.h5" data="$S/test.h5" evaluator="$S/evaluator" pr.max=40 \
  out="$S/dev3_eval.h5" threads=1
py_check eval_rows_images "
import h5py, numpy as np
for run, steps, n, nfe in (('dev', [0, 2, 3], 40, 1), ('tev', [0, 2, 4], 20, 2)):
    e = h5py.File('$S/' + run + '/log.h5', 'r')['eval']
    assert list(e['step'][:]) == [s for s in steps for w in (0, 1)], (run, e['step'][:])  # raw, then EMA
    assert list(e['weights'][:]) == [0, 1] * len(steps), (run, e['weights'][:])
    assert (e['samples'][:] == n).all() and (e['nfe'][:] == nfe).all(), run
    assert set(e) == {'step', 'weights', 'samples', 'nfe', 'fd', 'precision', 'recall', 'accuracy', 'seconds'}, set(e)
    for k in e: assert np.isfinite(e[k][:]).all(), (run, k)
    assert (e['fd'][:] > 0).all()
    for k in ('precision', 'recall', 'accuracy'): assert ((e[k][:] >= 0) & (e[k][:] <= 1)).all(), (run, k)
e = h5py.File('$S/dev/log.h5', 'r')['eval']
g = h5py.File('$S/dev3_eval.h5', 'r')['eval']
for k in ('fd', 'precision', 'recall', 'accuracy'):  # the last EMA row: amd sample draws the EMA by default
    assert e[k][5] == g[k][()].item(), (k, e[k][5], g[k][()])
"
expect_ok distill_eval_no_evaluator "$AMD" distill $D method=dmd2 run="$S/dnoev" eval.every=2
if grep -q "image metrics need an evaluator (eval.evaluator=" "$S/distill_eval_no_evaluator.out" &&
   $PY -c "import h5py, sys; sys.exit('eval' in h5py.File('$S/dnoev/log.h5', 'r'))"; then
  pass eval_without_evaluator_says_so
else
  fail eval_without_evaluator_says_so "$(grep eval "$S/distill_eval_no_evaluator.out" | tail -3)"
fi
expect_error eval_classifier "held-out sample metrics are for task=teacher" "$AMD" train task=evaluator data="$S/train.h5" \
  test_data="$S/test.h5" run="$S/bad5" $TINY eval.every=2
expect_error eval_too_few_images "image metrics need at least 10 samples" "$AMD" distill $D method=dmd2 run="$S/bad6" \
  eval.every=2 eval.n=5 $EV
expect_ok sample_student "$AMD" sample ckpt="$S/amd" n=40 out="$S/student.h5" png="$S/student.png" png.cols=4 threads=1
expect_ok sample_teacher "$AMD" sample ckpt="$S/teacher" n=20 steps=4 cfg=1.5 out="$S/teacher4.h5" threads=1
py_check sample_files "
import h5py, numpy as np, struct, zlib
f = h5py.File('$S/student.h5', 'r')
assert f['x'].shape == (40, 1, 28, 28), f['x'].shape
assert np.isfinite(f['x'][:]).all()
png = open('$S/student.png', 'rb').read()
assert png[:8] == b'\x89PNG\r\n\x1a\n'
w, h = struct.unpack('>II', png[16:24])
assert (w, h) == (4 * 30 + 2, 10 * 30 + 2), (w, h)  # 4 per class, a row per class, 2-px borders
"
expect_ok eval_student "$AMD" eval samples="$S/student.h5" data="$S/test.h5" evaluator="$S/evaluator" reward="$S/reward" \
  out="$S/student_eval.h5" threads=1
py_check eval_metrics "
import h5py, numpy as np
e = h5py.File('$S/student_eval.h5', 'r')
assert e.attrs['format'] in (b'amd-eval', 'amd-eval')
g = e['eval']
for k in ('fd', 'precision', 'recall', 'accuracy', 'accuracy_of_data', 'reward', 'nfe', 'samples_per_s'):
    assert k in g and np.isfinite(g[k][()]).all(), k
assert g['fd'][()] > 0 and 0 <= g['precision'][()] <= 1 and 0 <= g['recall'][()] <= 1
assert g['nfe'][()] == 1 and g['reward'][()] < 0
assert g['accuracy_of_data'][()] > 0.3, g['accuracy_of_data'][()]
"
# the test images scored as samples: FD near 0, precision and recall 1, the evaluator's test accuracy
cp "$S/test.h5" "$S/test_as_samples.h5"
$PY -c "
import h5py
f = h5py.File('$S/test_as_samples.h5', 'r+'); f.attrs['format'] = 'amd-samples'; f.attrs['data'] = '$S/test.h5'
"
expect_ok eval_data "$AMD" eval samples="$S/test_as_samples.h5" evaluator="$S/evaluator" out="$S/data_eval.h5" threads=1
py_check eval_data_against_itself "
import h5py
g = h5py.File('$S/data_eval.h5', 'r')['eval']
assert abs(g['fd'][()]) < 1e-3, g['fd'][()]
assert g['precision'][()] == 1 and g['recall'][()] == 1
assert g['accuracy'][()] == g['accuracy_of_data'][()]
"

expect_error no_test_split "test_data" "$AMD" train task=reward data="$S/train.h5" run="$S/bad1"
expect_error no_reward_net "reward.ckpt" "$AMD" distill $D method=amd run="$S/bad2"
expect_error no_evaluator "evaluator" "$AMD" eval samples="$S/student.h5" data="$S/test.h5"
expect_error bad_patch "model.patch" "$AMD" train data="$S/train.h5" run="$S/bad3" model.patch=5
"$AMD" data toy2d out="$S/toy.h5" n=500 >/dev/null
expect_error classifier_on_vectors "image data" "$AMD" train task=evaluator data="$S/toy.h5" test_data="$S/toy.h5" run="$S/bad4"

# benchmarks/fmnist_methods.sh end to end at toy sizes: every stage runs, in the right argument
# order, and the table has a row per model (3 teacher samplers, 4 one-step students)
PIPE_TRAIN="model.width=32 model.depth=1 model.heads=2 model.patch=7 model.temb_dim=32 train.steps=4 train.batch=16
  ckpt.every=4 log.every=2 optim.warmup=0"
PIPE_DISTILL="train.steps=2 train.prompts=2 amd.K=2 ckpt.every=2 log.every=1 log.advantage_every=1 fake_per_gen=1"
OUT="$S/pipe" N=20 STEPS=1 THREADS=1 AMD="$AMD" TRAIN_DATA="$S/train.h5" TEST_DATA="$S/test.h5" \
  TRAIN_ARGS="$PIPE_TRAIN" DISTILL_ARGS="$PIPE_DISTILL" bash benchmarks/fmnist_methods.sh >"$S/pipe.out" 2>&1
rc=$?
rows=$(grep -c "^| .* | [0-9]" "$S/pipe/table.md" 2>/dev/null)
if [ "$rc" -eq 0 ] && [ "$rows" = 7 ] && [ -f "$S/pipe/samples/amd_S1.png" ]; then
  pass benchmark_script_end_to_end
else
  fail benchmark_script_end_to_end "exit $rc, $rows table rows: $(tail -c 600 "$S/pipe.out"; tail -c 400 "$S"/pipe/logs/*.log 2>/dev/null | tail -c 600)"
fi
