#!/usr/bin/env bash
# The caption reward's and the GenEval-like score's data and checks end to end (docs/DESIGN.md
# sections 4.8, 9.1 and 13.5), on small composed splits and tiny cell classifiers (seconds):
#  - amd data cells cuts canvases into cells: (4N, 1, 28, 28), 11 classes ending in 'empty', each
#    cell the canvas's pixels bit for bit, labelled from /layout; bad inputs (no captions, canvases
#    that disagree with their layout, missing keys, in = out) are clear errors that write nothing;
#  - amd train task=reward and task=evaluator train 11-class cell classifiers on them unchanged;
#  - amd eval on the test canvases written as a samples file with their own captions scores high
#    (and equal to geneval_of_data, the same canvases), with shuffled captions low, and the caption
#    reward's mean drops; held-out counts match the data's own flags; FD is ~0 against themselves
#    and grows for noisy canvases;
#  - errors: no evaluator, a 10-class evaluator of whole canvases, samples without captions,
#    caption samples against data without captions; amd distill's reward choice on captioned data
#    refuses a 10-class classifier and a class teacher's labels, and on class data a cell classifier.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then echo "SKIP caption: $FM missing (jobs/setup.sh installs it)"; exit 0; fi
expect_ok compose "$AMD" data compose n_train=1500 n_test=300 seed=3 threads=1 out_train="$S/train.h5" out_test="$S/test.h5"
for split in train test; do
  expect_ok cells_$split "$AMD" data cells in="$S/$split.h5" out="$S/cells_$split.h5"
done
py_check cells_are_the_canvas_cells "
import h5py, numpy as np
for split in ('train', 'test'):
    f, c = h5py.File('$S/' + split + '.h5', 'r'), h5py.File('$S/cells_' + split + '.h5', 'r')
    x, cells, lab = f['x'][:], c['x'][:], c['labels'][:]
    n = x.shape[0]
    assert cells.shape == (4 * n, 1, 28, 28) and lab.shape == (4 * n,), cells.shape
    assert c.attrs['num_classes'] == 11 and c.attrs['class_names'].split(',')[-1] == 'empty', dict(c.attrs)
    assert c.attrs['format'] == 'amd-dataset'
    cls, cell = f['layout/class'][:], f['layout/cell'][:]
    for i in range(n):
        for j in range(4):
            r, q = divmod(j, 2)
            assert np.array_equal(cells[4 * i + j, 0], x[i, 0, 28 * r:28 * r + 28, 28 * q:28 * q + 28]), (split, i, j)
            want = [int(cls[i, k]) for k in range(4) if cell[i, k] == j]
            assert lab[4 * i + j] == (want[0] if want else 10), (split, i, j, lab[4 * i + j], want)
            if not want: assert (cells[4 * i + j] == -1).all(), ('empty cell not background', i, j)
    assert 0.3 < (lab == 10).mean() < 0.7, (lab == 10).mean()
"
# bad inputs: nothing written
"$AMD" data toy2d out="$S/toy.h5" n=100 >/dev/null
expect_error cells_no_captions "has no /captions" "$AMD" data cells in="$S/toy.h5" out="$S/bad1.h5"
$PY - "$S" <<'PYEOF'
import sys, h5py, shutil
S = sys.argv[1]
shutil.copy(S + '/test.h5', S + '/wrong_size.h5')
with h5py.File(S + '/wrong_size.h5', 'r+') as f: f['layout'].attrs['cell_size'] = 14
PYEOF
expect_error cells_wrong_size "but its /layout says one channel of 2 x 2 cells of 14 pixels" "$AMD" data cells \
  in="$S/wrong_size.h5" out="$S/bad2.h5"
expect_error cells_no_in "config key 'in' is required" "$AMD" data cells out="$S/bad3.h5"
expect_error cells_no_out "config key 'out' is required" "$AMD" data cells in="$S/test.h5"
expect_error cells_in_is_out "both name" "$AMD" data cells in="$S/test.h5" out="$S/test.h5"
expect_error cells_in_is_out_by_another_name "both name" "$AMD" data cells in="$S/test.h5" out="$S/../$(basename "$S")/test.h5"
if ls "$S"/bad*.h5* >/dev/null 2>&1; then fail cells_errors_write_nothing "$(ls "$S"/bad*)"; else pass cells_errors_write_nothing; fi

TINY="model.width=32 model.depth=1 model.heads=2 model.patch=7 threads=1 optim.warmup=0 log.every=100 train.batch=64"
C="data=$S/cells_train.h5 test_data=$S/cells_test.h5 train.steps=500 ckpt.every=500 optim.lr=2e-3"
expect_ok reward "$AMD" train task=reward $C run="$S/reward" $TINY
expect_ok evaluator "$AMD" train task=evaluator $C run="$S/evaluator" $TINY model.width=48 model.heads=4 seed=1
py_check cell_classifiers_learn "
import h5py, numpy as np
for run in ('reward', 'evaluator'):
    acc = h5py.File('$S/' + run + '/log.h5', 'r')['train']['test_accuracy'][:]
    acc = acc[np.isfinite(acc)]
    assert len(acc) and acc[-1] > 0.7, (run, acc)  # chance: 0.5 (empty) or 1/11
"
# the test canvases as samples files: their own captions, shuffled captions, noisy pixels
$PY - "$S" <<'PYEOF'
import sys, h5py, numpy as np
S = sys.argv[1]
f = h5py.File(S + '/test.h5', 'r')
n = f['x'].shape[0]
perm = np.random.default_rng(0).permutation(n)
noise = np.random.default_rng(1).normal(0, 0.5, f['x'].shape).astype(np.float32)
for name, order, x, captions in (('own', np.arange(n), f['x'][:], True), ('shuffled', perm, f['x'][:], True),
                                 ('noisy', np.arange(n), np.clip(f['x'][:] + noise, -1, 1), True),
                                 ('uncaptioned', np.arange(n), f['x'][:], False)):
    with h5py.File(S + '/' + name + '.h5', 'w') as g:
        for k, v in f.attrs.items(): g.attrs[k] = v
        g.attrs['format'] = 'amd-samples'
        g['x'], g['labels'] = x, f['labels'][:]
        if captions:  # as amd sample writes a caption model's samples: its prompts are the classes
            g.attrs['num_classes'], g.attrs['class_names'] = n, ''
            g['labels'][:] = np.arange(n)
            c = g.create_group('captions')
            c['tokens'], c['text'], c['vocab'] = f['captions/tokens'][:][order], f['captions/text'][:][order], f['captions/vocab'][:]
with h5py.File(S + '/plain_test.h5', 'w') as g:  # the test canvases as a dataset without captions
    for k, v in f.attrs.items(): g.attrs[k] = v
    g['x'], g['labels'] = f['x'][:], f['labels'][:]
PYEOF
E="data=$S/test.h5 evaluator=$S/evaluator reward=$S/reward threads=1"
for s in own shuffled noisy; do expect_ok eval_$s "$AMD" eval samples="$S/$s.h5" $E; done
py_check geneval_own_high_shuffled_low "
import h5py, numpy as np
e = {s: {k: v[()][0] for k, v in h5py.File('$S/' + s + '_eval.h5', 'r')['eval'].items()} for s in ('own', 'shuffled', 'noisy')}
own, shuf, noisy = e['own'], e['shuffled'], e['noisy']
cats = ('single', 'two', 'counting', 'position')
assert own['geneval_overall'] > 0.35 and shuf['geneval_overall'] < 0.1, (own['geneval_overall'], shuf['geneval_overall'])
assert own['geneval_overall'] == own['geneval_of_data'], own
for c in cats: assert own['geneval_' + c] > shuf['geneval_' + c] + 0.1, (c, own, shuf)
assert own['reward'] > shuf['reward'] + 2, (own['reward'], shuf['reward'])
f = h5py.File('$S/test.h5', 'r')['captions']
ho, cat = f['held_out'][:], f['category'][:]
assert own['heldout_samples'] == ho.sum() > 0, (own['heldout_samples'], ho.sum())
n = len(cat)
# the overall share is the per-category shares weighted by their counts, and seen/held out split it
w = np.bincount(cat, minlength=4)
assert abs(sum(own['geneval_' + c] * w[k] for k, c in enumerate(cats)) / n - own['geneval_overall']) < 1e-9
assert abs((own['geneval_seen'] * (n - ho.sum()) + own['geneval_heldout'] * ho.sum()) / n - own['geneval_overall']) < 1e-9
assert abs(own['fd']) < 1e-3 and noisy['fd'] > 100 * max(abs(own['fd']), 1e-4), (own['fd'], noisy['fd'])
assert own['precision'] == 1 and own['recall'] == 1 and own['samples'] == n == own['reference']
"
# a caption model's samples as amd sample writes them (a text teacher of 2 steps: the pipeline, not quality)
expect_ok text_teacher "$AMD" train data="$S/train.h5" model.text=1 model.width=32 model.depth=1 model.patch=8 \
  model.heads=2 model.text_width=16 model.text_depth=1 model.temb_dim=32 train.steps=2 train.batch=8 ckpt.every=2 \
  threads=1 log.every=1 run="$S/text_teacher"
printf 'a bag\nthree shirts\na coat above a dress\na sneaker and a boot\n' >"$S/prompts.txt"
expect_ok sample_prompts "$AMD" sample ckpt="$S/text_teacher" prompts="$S/prompts.txt" n=12 steps=2 threads=1 \
  out="$S/sampled.h5"
expect_ok eval_sampled "$AMD" eval samples="$S/sampled.h5" $E pr.k=3
py_check eval_sampled_rows "
import h5py, numpy as np
e = h5py.File('$S/sampled_eval.h5', 'r')['eval']
assert e['samples'][0] == 12 and e['reference'][0] == 300, (e['samples'][0], e['reference'][0])
for k in ('single', 'two', 'counting', 'position', 'overall', 'seen'):
    v = e['geneval_' + k][0]
    assert 0 <= v <= 1, (k, v)
assert np.isnan(e['geneval_heldout'][0]) and e['heldout_samples'][0] == 0  # no prompt names a held-out pair
assert np.isfinite(e['fd'][0]) and np.isfinite(e['reward'][0])
"
# errors
expect_error eval_no_evaluator "caption samples need evaluator=" "$AMD" eval samples="$S/own.h5" data="$S/test.h5" \
  out="$S/e1.h5" threads=1
expect_ok canvas_classifier "$AMD" train task=evaluator data="$S/train.h5" test_data="$S/test.h5" run="$S/canvas_cls" \
  $TINY train.steps=5 ckpt.every=5
expect_error eval_ten_class_evaluator "is not a cell classifier of these 56 x 56 canvases" "$AMD" eval \
  samples="$S/own.h5" data="$S/test.h5" evaluator="$S/canvas_cls" out="$S/e2.h5" threads=1
expect_error eval_uncaptioned_samples "have no /captions" "$AMD" eval samples="$S/uncaptioned.h5" data="$S/test.h5" \
  evaluator="$S/evaluator" out="$S/e3.h5" threads=1
expect_error eval_uncaptioned_data "has no /captions" "$AMD" eval samples="$S/own.h5" data="$S/plain_test.h5" \
  evaluator="$S/evaluator" out="$S/e4.h5" threads=1
if ls "$S"/e[0-9].h5* >/dev/null 2>&1; then fail eval_errors_write_nothing "$(ls "$S"/e[0-9]*)"; else pass eval_errors_write_nothing; fi
# the reward's choice in amd distill: on the captioned canvases a 10-class classifier is refused, and
# a cell classifier for a class teacher (its prompts are no captions); a cell classifier on class
# data (the cells relabelled into 10 classes) is refused
expect_ok canvas_teacher "$AMD" train data="$S/train.h5" run="$S/teacher" $TINY model.temb_dim=32 train.steps=2 ckpt.every=2
D="train.prompts=2 amd.K=2 train.steps=1 threads=1 method=dmdr"
expect_error distill_ten_class_reward "is not a cell classifier of these 56 x 56 canvases" "$AMD" distill \
  teacher="$S/teacher" $D run="$S/d1" reward.ckpt="$S/canvas_cls"
expect_error distill_cell_reward_class_teacher "this teacher's prompts are class labels" "$AMD" distill \
  teacher="$S/teacher" $D run="$S/d3" reward.ckpt="$S/reward"
$PY - "$S" <<'PYEOF'
import sys, h5py
S = sys.argv[1]
f = h5py.File(S + '/cells_test.h5', 'r')
with h5py.File(S + '/class10.h5', 'w') as g:
    for k, v in f.attrs.items(): g.attrs[k] = v
    g.attrs['num_classes'] = 10
    g.attrs['class_names'] = ','.join(f.attrs['class_names'].split(',')[:10])
    g['x'], g['labels'] = f['x'][:400], f['labels'][:400] % 10
PYEOF
expect_ok class_teacher "$AMD" train data="$S/class10.h5" run="$S/teacher10" $TINY model.temb_dim=32 train.steps=2 ckpt.every=2
expect_error distill_cell_reward_on_class_data "looks like a cell classifier" "$AMD" distill teacher="$S/teacher10" $D \
  run="$S/d2" reward.ckpt="$S/reward"
