#!/usr/bin/env bash
# amd train on captioned canvases (docs/DESIGN.md sections 5.2 and 13), a tiny text-mode teacher:
#  - model.text=1 takes the vocabulary and the token width from the dataset; the checkpoint records
#    them with the text encoder's width and depth;
#  - the captions reach the network: the same canvases with other captions train other weights;
#  - a crash and a resume give the same checkpoint bit for bit (weights and Adam moments);
#  - jobs/compose_teacher.cfg trains (shrunk);
#  - a class model on a captioned dataset trains on /labels, and says so;
#  - mismatches are clear errors: model.vocab or model.max_text other than the dataset's, a dataset
#    without captions, a classifier or an mlp in text mode, sample.every and eval.every in text mode.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then echo "SKIP texttrain: $FM missing (jobs/setup.sh installs it)"; exit 0; fi
expect_ok compose "$AMD" data compose n_train=64 n_test=32 seed=7 out_train="$S/train.h5" out_test="$S/test.h5"
T="data=$S/train.h5 model.text=1 model.width=32 model.depth=1 model.patch=8 model.heads=2 model.text_width=16
   model.text_depth=1 train.steps=6 train.batch=8 log.every=3 ckpt.every=3 threads=1"
expect_ok text_teacher "$AMD" train $T run="$S/t"
py_check checkpoint_holds_text "
import h5py
a = h5py.File('$S/t/ckpt_00000006.h5', 'r')['teacher'].attrs
got = {k: int(a[k]) for k in ('text', 'vocab', 'max_text', 'text_width', 'text_depth')}
assert got == dict(text=1, vocab=34, max_text=8, text_width=16, text_depth=1), got
"
# the same canvases with every caption's first two tokens swapped
$PY -c "
import h5py, shutil
shutil.copy('$S/train.h5', '$S/swapped.h5')
f = h5py.File('$S/swapped.h5', 'r+')
t = f['captions/tokens'][:]
t[:, [0, 1]] = t[:, [1, 0]]
f['captions/tokens'][...] = t
"
expect_ok other_captions "$AMD" train $T data="$S/swapped.h5" run="$S/sw"
py_check captions_reach_the_network "
import h5py, numpy as np
a = h5py.File('$S/t/ckpt_00000006.h5', 'r')['teacher/params'][:]
b = h5py.File('$S/sw/ckpt_00000006.h5', 'r')['teacher/params'][:]
assert not np.array_equal(a, b), 'other captions trained the same weights'
"
expect_error text_crash "simulated crash at step 5" "$AMD" train $T run="$S/tc" fault.exit_step=5
expect_ok text_resumed "$AMD" train $T run="$S/tc" resume=1
py_check text_resume_bit_for_bit "
import h5py, numpy as np
a = h5py.File('$S/t/ckpt_00000006.h5', 'r')['teacher']
b = h5py.File('$S/tc/ckpt_00000006.h5', 'r')['teacher']
for k in ('params', 'adam_m', 'adam_v'):
    assert np.array_equal(a[k][:], b[k][:]), (k, np.abs(a[k][:] - b[k][:]).max())
"
expect_ok job_config "$AMD" train jobs/compose_teacher.cfg data="$S/train.h5" run="$S/job" model.width=32 model.depth=1 \
  model.text_width=16 model.temb_dim=16 train.steps=2 train.batch=8 optim.warmup=1 threads=1
py_check job_config_is_text "
import h5py
a = h5py.File('$S/job/ckpt_00000002.h5', 'r')['teacher'].attrs
assert (int(a['text']), int(a['patch']), int(a['text_depth'])) == (1, 8, 2), dict(a)
"
C="data=$S/train.h5 model.width=32 model.depth=1 model.patch=8 model.heads=2 train.steps=2 train.batch=8 threads=1"
expect_ok class_model_on_captions "$AMD" train $C run="$S/cls"
if grep -q "model.text=0 trains on its class labels" "$S/class_model_on_captions.out"; then pass class_model_says_labels
else fail class_model_says_labels "$(tail -3 "$S/class_model_on_captions.out")"; fi

# mismatches: a clear error, no run folder
$PY -c "
import h5py, shutil
shutil.copy('$S/train.h5', '$S/plain.h5')
f = h5py.File('$S/plain.h5', 'r+')
del f['captions'], f['layout']
"
expect_error vocab_disagrees "'model.vocab' = 10 disagrees with the vocabulary" "$AMD" train $T run="$S/bad1" model.vocab=10
expect_error max_text_disagrees "'model.max_text' = 9 disagrees with the captions" "$AMD" train $T run="$S/bad2" model.max_text=9
expect_error no_captions "holds no /captions" "$AMD" train $T run="$S/bad3" data="$S/plain.h5"
expect_error text_classifier "is for the teacher's dit" "$AMD" train $T run="$S/bad4" task=reward test_data="$S/test.h5"
expect_error text_mlp "is for the teacher's dit" "$AMD" train $T run="$S/bad5" model.kind=mlp
expect_error text_sample_every "pictures of samples are for class models" "$AMD" train $T run="$S/bad6" sample.every=2
expect_error text_eval_every "held-out sample metrics are for class models" "$AMD" train $T run="$S/bad7" eval.every=2 \
  eval.data="$S/test.h5"
if ls -d "$S"/bad* >/dev/null 2>&1; then fail mismatches_write_nothing "$(ls -d "$S"/bad*)"; else pass mismatches_write_nothing; fi
