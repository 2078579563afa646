#!/usr/bin/env bash
# amd train on captioned canvases (docs/DESIGN.md sections 5.2 and 13), a tiny text-mode teacher:
#  - model.text=1 takes the vocabulary and the token width from the dataset; the checkpoint records
#    them with the text encoder's width and depth;
#  - the captions reach the network: the same canvases with other captions train other weights;
#  - a crash and a resume give the same checkpoint bit for bit (weights and Adam moments);
#  - at 2 ranks with zero=3 the same losses (1e-5);
#  - jobs/compose_teacher.cfg trains (shrunk);
#  - a class model on a captioned dataset trains on /labels, and says so;
#  - amd sample prompt= and prompts= on it: the samples file records each sample's caption (text and
#    tokens, /labels its index among the prompts), the same at 2 ranks, other captions other samples,
#    png= a grid; bad prompts (an unknown word, naming it and the line) and the wrong kind of
#    conditioning are clear errors that write nothing;
#  - mismatches are clear errors: model.vocab or model.max_text other than the dataset's, a dataset
#    without captions, a classifier or an mlp in text mode (eval.every in text mode: scenario_texteval);
#  - sample.every pictures a row per caption (the data's first distinct ones) and leaves the
#    training as it was.
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
swap_caption_tokens "$S/train.h5" "$S/swapped.h5"
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
expect_ok text_pictures "$AMD" train $T run="$S/tp" sample.every=3
py_check text_pictures_leave_training "
import h5py, numpy as np, os
a = h5py.File('$S/t/ckpt_00000006.h5', 'r')['teacher/params'][:]
b = h5py.File('$S/tp/ckpt_00000006.h5', 'r')['teacher/params'][:]
assert np.array_equal(a, b), 'sample.every changed the training'
for s in (3, 6):
    assert os.path.getsize('$S/tp/samples_%08d.png' % s) > 0, s
"
if grep -q "sample pictures: a row per caption, 8 samples each: '" "$S/text_pictures.out"; then pass text_pictures_name_captions
else fail text_pictures_name_captions "$(grep -i picture "$S/text_pictures.out")"; fi
expect_ok text_np2_zero3 $MPIRUN -np 2 "$AMD" train $T run="$S/t2z3" zero=3
py_check text_np2_zero3_same_losses "
import h5py, numpy as np
a = h5py.File('$S/t/log.h5', 'r')['train/loss'][:]
b = h5py.File('$S/t2z3/log.h5', 'r')['train/loss'][:]
assert len(a) == 6 and np.allclose(a, b, rtol=1e-5, atol=0), (a, b)
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
if ls -d "$S"/bad* >/dev/null 2>&1; then fail mismatches_write_nothing "$(ls -d "$S"/bad*)"; else pass mismatches_write_nothing; fi

# amd sample with prompts
P="ckpt=$S/t n=6 steps=3 seed=3 threads=1"
expect_ok sample_prompt "$AMD" sample $P prompt="A bag to the left of a  sneaker" cfg=2 out="$S/s1.h5" png="$S/s1.png"
printf 'a bag\n\nthree shirts\na coat above a dress\n' >"$S/prompts.txt"
expect_ok sample_prompts "$AMD" sample $P prompts="$S/prompts.txt" out="$S/s2.h5"
expect_ok sample_prompts_np2 $MPIRUN -np 2 "$AMD" sample $P prompts="$S/prompts.txt" out="$S/s2n2.h5"
expect_ok sample_other_prompt "$AMD" sample $P prompt="three shirts" cfg=2 out="$S/s3.h5"
py_check samples_record_captions "
import h5py, numpy as np
vocab = [w.decode() for w in h5py.File('$S/train.h5', 'r')['captions/vocab'][:]]
def check(path, texts):
    f = h5py.File(path, 'r')
    lab, text, tok = f['labels'][:], [t.decode() for t in f['captions/text'][:]], f['captions/tokens'][:]
    assert list(lab) == [i % len(texts) for i in range(6)], lab
    assert text == [texts[l] for l in lab], text
    for t, ids in zip(text, tok):
        assert ' '.join(vocab[i] for i in ids if i) == t and (ids[len(t.split()):] == 0).all(), (t, ids)
    assert [w.decode() for w in f['captions/vocab'][:]] == vocab
    assert f.attrs['class_names'] == ','.join(texts), f.attrs['class_names']
    return f['x'][:]
x1 = check('$S/s1.h5', ['a bag to the left of a sneaker'])
x2 = check('$S/s2.h5', ['a bag', 'three shirts', 'a coat above a dress'])
x2n = check('$S/s2n2.h5', ['a bag', 'three shirts', 'a coat above a dress'])
x3 = check('$S/s3.h5', ['three shirts'])
assert np.array_equal(x2, x2n), 'samples differ at 2 ranks'
assert not np.array_equal(x1, x3), 'another caption drew the same samples'
assert x1.shape == (6, 1, 56, 56) and np.isfinite(x1).all()
"
if [ -s "$S/s1.png" ]; then pass sample_png; else fail sample_png "no $S/s1.png"; fi
printf 'a bag\nthree hats\n' >"$S/bad_prompts.txt"
: >"$S/empty_prompts.txt"
expect_error prompt_unknown_word "unknown word 'hat'" "$AMD" sample $P prompt="a hat" out="$S/bad_s1.h5"
expect_error prompts_unknown_word "line 2: unknown word 'hats'" "$AMD" sample $P prompts="$S/bad_prompts.txt" out="$S/bad_s2.h5"
expect_error prompts_empty "holds no caption" "$AMD" sample $P prompts="$S/empty_prompts.txt" out="$S/bad_s3.h5"
expect_error prompt_missing "is conditioned on captions (text mode): give prompt=" "$AMD" sample $P out="$S/bad_s4.h5"
expect_error prompt_and_prompts "prompt= or prompts=, not both" "$AMD" sample $P prompt="a bag" prompts="$S/prompts.txt" \
  out="$S/bad_s5.h5"
expect_error class_on_text_model "is conditioned on captions; use prompt=" "$AMD" sample $P prompt="a bag" class=1 out="$S/bad_s6.h5"
expect_error prompt_on_class_model "is conditioned on class labels, not captions" "$AMD" sample $P ckpt="$S/cls" \
  prompt="a bag" out="$S/bad_s7.h5"
if ls "$S"/bad_s* >/dev/null 2>&1; then fail bad_prompts_write_nothing "$(ls "$S"/bad_s*)"; else pass bad_prompts_write_nothing; fi
