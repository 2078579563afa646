#!/usr/bin/env bash
# amd distill on a caption teacher (docs/DESIGN.md sections 4 and 13), a tiny text-mode teacher on
# composed canvases:
#  - dmd, dmd (with its regression pairs) and dmd2 (with its GAN head) distill it; the student and
#    the fake teacher keep the text config; amd sample prompts= samples the 1-step student;
#    jobs/compose_dmd2.cfg and compose_amd.cfg run (shrunk);
#  - the prompts are the data's captions: the step dump's labels are the token rows of the captions
#    /advantage names (a caption index), shared by each group; the GAN head's real samples carry their
#    own captions;
#  - the batch is the same at 1 and 2 ranks, zero=0 and zero=3 (the same prompts, the same losses
#    to 1e-5);
#  - on the CUDA emulator (when built) the CPU's losses;
#  - amd and dmdr with the caption reward (a cell classifier): rewards are log-probabilities, the
#    advantages and weights move, dmdr's reward term is on, 1 and 2 ranks agree;
#  - the captions reach the student: the same canvases with other captions distill other weights;
#  - a crash and a resume give the same checkpoint bit for bit;
#  - mismatches are clear errors that write nothing: a vocabulary or token width other than the
#    teacher's, data without captions, a class teacher on canvases of another size, the class
#    reward classifier, dmdr/amd without a reward; a class teacher on captioned canvases distills
#    their class labels and says so (eval.every in text mode: scenario_texteval);
#  - sample.every pictures the student's samples, a row per caption, and leaves the training as it was.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then echo "SKIP textdistill: $FM missing (jobs/setup.sh installs it)"; exit 0; fi
expect_ok compose "$AMD" data compose n_train=64 n_test=32 seed=7 out_train="$S/train.h5" out_test="$S/test.h5"
expect_ok text_teacher "$AMD" train data="$S/train.h5" model.text=1 model.width=32 model.depth=1 model.patch=8 \
  model.heads=2 model.text_width=16 model.text_depth=1 train.steps=6 train.batch=8 log.every=3 ckpt.every=6 threads=1 \
  run="$S/t"
D="teacher=$S/t train.prompts=4 amd.K=2 train.steps=4 log.every=2 log.advantage_every=2 ckpt.every=4 threads=1"

expect_ok dmd "$AMD" distill $D method=dmd run="$S/dmd"
expect_ok dmd_regression "$AMD" distill $D method=dmd dmd.lambda_reg=0.5 dmd.reg_pairs=16 dmd.reg_steps=2 run="$S/reg"
expect_ok dmd2 "$AMD" distill $D method=dmd2 fake_per_gen=2 run="$S/dmd2" fault.dump_step=1 fault.dump="$S/dump.h5"
py_check student_keeps_text "
import h5py, numpy as np
f = h5py.File('$S/dmd2/ckpt_00000004.h5', 'r')
for net in ('student', 'fake'):
    a = f[net].attrs
    got = {k: int(a[k]) for k in ('text', 'vocab', 'max_text', 'text_width', 'text_depth')}
    assert got == dict(text=1, vocab=34, max_text=8, text_width=16, text_depth=1), (net, got)
assert 'disc' in f
for run in ('dmd', 'reg', 'dmd2'):
    t = h5py.File('$S/%s/log.h5' % run, 'r')['train']
    assert np.isfinite(t['loss_dm'][:]).all() and np.isfinite(t['loss_fake'][:]).all(), run
assert (h5py.File('$S/reg/log.h5', 'r')['train/loss_reg'][:] > 0).all()
assert (h5py.File('$S/dmd2/log.h5', 'r')['train/loss_gan_d'][:] != 0).all()
"
py_check prompts_are_captions "
import h5py, numpy as np
data = h5py.File('$S/train.h5', 'r')
tok, x = data['captions/tokens'][:], data['x'][:].reshape(64, -1)
a = h5py.File('$S/dmd2/log.h5', 'r')['advantage']
step, prompt, group = a['step'][:], a['prompt'][:].astype(int), a['group'][:].astype(int)
assert len(step) == 16 and set(step) == {2.0, 4.0}, step
assert ((prompt >= 0) & (prompt < 64)).all(), prompt
for s in (2.0, 4.0):  # the K = 2 members of a group share its caption
    p, g = prompt[step == s], group[step == s]
    assert (g == np.repeat(np.arange(4), 2)).all() and (p[0::2] == p[1::2]).all(), (g, p)
assert len(set(prompt)) > 2, prompt
# the generator update of (0-based) step 1, logged as step 2, ran on the token rows of the captions its
# records name
gen = h5py.File('$S/dump.h5', 'r')['generator']
assert (gen['labels'][:] == tok[prompt[step == 2.0]]).all(), (gen['labels'][:], prompt)
# the GAN head's real canvases came with their own captions
for f in ('fake0', 'fake1'):
    g = h5py.File('$S/dump.h5', 'r')[f]
    rx, rl = g['disc_real_x'][:], g['disc_real_labels'][:]
    for i in range(len(rx)):
        idx = np.flatnonzero((x == rx[i]).all(axis=1))
        assert len(idx) >= 1 and any((tok[j] == rl[i]).all() for j in idx), (f, i, idx)
"

# a tiny cell classifier: the caption reward of the job configs and of amd and dmdr below
expect_ok cells "$AMD" data cells in="$S/train.h5" out="$S/cells.h5"
expect_ok cell_reward "$AMD" train task=reward data="$S/cells.h5" test_data="$S/cells.h5" model.width=16 model.depth=1 model.heads=2 \
  model.patch=7 train.steps=20 train.batch=32 log.every=10 ckpt.every=20 threads=1 run="$S/cr"
expect_ok job_config "$AMD" distill jobs/compose_dmd2.cfg teacher="$S/t" run="$S/job" train.steps=2 train.prompts=4 \
  log.advantage_every=1 optim.warmup=1 threads=1 reward.ckpt="$S/cr"
expect_ok job_config_amd "$AMD" distill jobs/compose_amd.cfg teacher="$S/t" run="$S/job_amd" train.steps=2 \
  train.prompts=4 log.advantage_every=1 optim.warmup=1 threads=1 reward.ckpt="$S/cr"
py_check job_config_is_dmd2_on_captions "
import h5py
f = h5py.File('$S/job/log.h5', 'r')
assert f['train/loss_gan_d'].shape == (2,) and (f['train/loss_gan_d'][:] != 0).all()
assert f['advantage/prompt'][:].max() < 64 and int(h5py.File('$S/job/ckpt_00000002.h5', 'r')['student'].attrs['text']) == 1
assert (f['advantage/reward'][:] < 0).all(), 'the caption reward is logged'
g = h5py.File('$S/job_amd/log.h5', 'r')
assert (g['advantage/alpha'][:] != 1).any() and g['train/loss_gan_d'].shape == (2,)
"

# pictures while it distills: a row per caption; the training as without them
expect_ok pictures "$AMD" distill $D method=dmd2 fake_per_gen=2 run="$S/pic" sample.every=2
py_check pictures_leave_training "
import h5py, numpy as np, os
a = h5py.File('$S/dmd2/ckpt_00000004.h5', 'r'); b = h5py.File('$S/pic/ckpt_00000004.h5', 'r')
for net in ('student', 'fake', 'disc'):
    assert np.array_equal(a[net]['params'][:], b[net]['params'][:]), net + ': sample.every changed the training'
for s in (2, 4):
    assert os.path.getsize('$S/pic/samples_%08d.png' % s) > 0, s
"
if grep -q "sample pictures: a row per caption, 8 samples each: '" "$S/pictures.out"; then pass pictures_name_captions
else fail pictures_name_captions "$(grep -i picture "$S/pictures.out")"; fi

# the same batch at 2 ranks (the prompts split 2 + 2)
expect_ok dmd2_np2 $MPIRUN -np 2 "$AMD" distill $D method=dmd2 fake_per_gen=2 run="$S/dmd2_np2"
expect_ok dmd2_np2_zero3 $MPIRUN -np 2 "$AMD" distill $D method=dmd2 fake_per_gen=2 zero=3 run="$S/dmd2_np2z3"
py_check np1_np2_same_batch "
import h5py, numpy as np
a = h5py.File('$S/dmd2/log.h5', 'r')
for run in ('dmd2_np2', 'dmd2_np2z3'):
    b = h5py.File('$S/%s/log.h5' % run, 'r')
    for k in ('loss_dm', 'loss_fake', 'loss_gan_g', 'loss_gan_d'):
        x, y = a['train'][k][:], b['train'][k][:]
        assert len(x) == 4 and np.allclose(x, y, rtol=1e-5, atol=0), (run, k, x, y)
    for k in ('step', 'prompt', 'group'):
        assert np.array_equal(a['advantage'][k][:], b['advantage'][k][:]), (run, k)
    assert set(b['advantage/rank'][:]) == {0.0, 1.0}, run
"

# the CUDA backend on the emulator (make CUDA_EMU=1; it stops on any access past a buffer): the
# (2B, max_text) label buffers on the device, the real teacher as a CUDA graph; the CPU's losses
EMU=$PWD/build-cuda-emu/amd
if [ -x "$EMU" ]; then
  E="$D method=dmd2 fake_per_gen=1 train.steps=2 log.every=1"
  expect_ok emu_dmd2 "$EMU" distill $E device=cuda cuda.graphs=1 run="$S/emu"
  expect_ok cpu_dmd2 "$AMD" distill $E run="$S/cpu"
  py_check emu_same_losses "
import h5py, numpy as np
a = h5py.File('$S/cpu/log.h5', 'r')['train']; b = h5py.File('$S/emu/log.h5', 'r')['train']
for k in ('loss_dm', 'loss_fake', 'loss_gan_g', 'loss_gan_d'):
    assert np.allclose(a[k][:], b[k][:], rtol=1e-4, atol=1e-6), (k, a[k][:], b[k][:])
"
else
  echo "SKIP emu_dmd2: no emulator build (make CUDA_EMU=1)"
fi

# the same canvases with every caption's first two tokens swapped distill other weights
swap_caption_tokens "$S/train.h5" "$S/swapped.h5"
expect_ok other_captions "$AMD" distill $D method=dmd2 fake_per_gen=2 data="$S/swapped.h5" run="$S/sw"
py_check captions_reach_the_student "
import h5py, numpy as np
a = h5py.File('$S/dmd2/ckpt_00000004.h5', 'r'); b = h5py.File('$S/sw/ckpt_00000004.h5', 'r')
assert np.array_equal(h5py.File('$S/dmd2/log.h5', 'r')['advantage/prompt'][:],
                      h5py.File('$S/sw/log.h5', 'r')['advantage/prompt'][:]), 'the same caption indices were drawn'
for net in ('student', 'fake'):
    assert not np.array_equal(a[net]['params'][:], b[net]['params'][:]), net + ': other captions, the same weights'
"

# crash and resume
R="$D method=dmd2 fake_per_gen=2 train.steps=6 ckpt.every=3"
expect_ok full "$AMD" distill $R run="$S/full"
expect_error crash "simulated crash at step 5" "$AMD" distill $R run="$S/crash" fault.exit_step=5
expect_ok resumed "$AMD" distill $R run="$S/crash" resume=1
py_check resume_bit_for_bit "
import h5py, numpy as np
a = h5py.File('$S/full/ckpt_00000006.h5', 'r'); b = h5py.File('$S/crash/ckpt_00000006.h5', 'r')
for net in ('student', 'fake', 'disc'):
    for k in ('params', 'adam_m', 'adam_v'):
        assert np.array_equal(a[net][k][:], b[net][k][:]), (net, k)
la = h5py.File('$S/full/log.h5', 'r'); lb = h5py.File('$S/crash/log.h5', 'r')
assert np.array_equal(la['train/loss_dm'][:], lb['train/loss_dm'][:])
assert np.array_equal(la['advantage/prompt'][:], lb['advantage/prompt'][:])
"

# amd and dmdr with the caption reward (a tiny cell classifier, docs/DESIGN.md 4.8): each sample scored
# by log P(its cells hold its caption) <= 0, the advantages and AMD's weights move, dmdr's reward term
# is on; the same at 2 ranks (the reward scores each rank's share of the groups)
expect_ok amd_caption_reward "$AMD" distill $D method=amd reward.ckpt="$S/cr" run="$S/amd"
expect_ok dmdr_caption_reward "$AMD" distill $D method=dmdr reward.ckpt="$S/cr" run="$S/dmdr"
expect_ok amd_caption_reward_np2 $MPIRUN -np 2 "$AMD" distill $D method=amd reward.ckpt="$S/cr" run="$S/amd_np2"
py_check caption_reward_drives_amd_and_dmdr "
import h5py, numpy as np
a = h5py.File('$S/amd/log.h5', 'r')
r, adv, al = a['advantage/reward'][:], a['advantage/advantage'][:], a['advantage/alpha'][:]
assert np.isfinite(r).all() and (r <= 1e-9).all() and r.std() > 0, r
assert (np.abs(adv) > 0).any() and (al != 1).any(), (adv, al)
assert np.isfinite(a['train/loss_dm'][:]).all()
d = h5py.File('$S/dmdr/log.h5', 'r')['train']
assert (d['loss_reward'][:] != 0).all() and np.isfinite(d['loss_reward'][:]).all(), d['loss_reward'][:]
b = h5py.File('$S/amd_np2/log.h5', 'r')
for k in ('loss_dm', 'loss_fake', 'reward_mean'):
    assert np.allclose(a['train'][k][:], b['train'][k][:], rtol=1e-5, atol=1e-7), (k, a['train'][k][:], b['train'][k][:])
for k in ('prompt', 'reward', 'advantage'):
    assert np.allclose(a['advantage'][k][:], b['advantage'][k][:], rtol=1e-5, atol=1e-7), k
"

# the 1-step student samples captions
printf 'a bag\nthree shirts\na coat above a dress\n' >"$S/prompts.txt"
expect_ok sample_student "$AMD" sample ckpt="$S/dmd2" prompts="$S/prompts.txt" n=6 out="$S/s.h5" png="$S/s.png" threads=1
py_check student_samples "
import h5py, numpy as np
f = h5py.File('$S/s.h5', 'r')
x = f['x'][:]
assert x.shape == (6, 1, 56, 56) and np.isfinite(x).all(), x.shape
assert [t.decode() for t in f['captions/text'][:]] == ['a bag', 'three shirts', 'a coat above a dress'] * 2
assert f.attrs['sampler'] in ('generator', b'generator'), dict(f.attrs)
"

# mismatches: a clear error, no run folder
$PY -c "
import h5py, numpy as np, shutil
for name in ('plain', 'vocab', 'wide'):
    shutil.copy('$S/train.h5', '$S/%s.h5' % name)
f = h5py.File('$S/plain.h5', 'r+')
del f['captions'], f['layout']
f = h5py.File('$S/vocab.h5', 'r+')
v = list(f['captions/vocab'][:]) + [b'hat']
del f['captions/vocab']
f['captions/vocab'] = np.array(v, dtype=h5py.string_dtype())
f = h5py.File('$S/wide.h5', 'r+')
t = f['captions/tokens'][:]
del f['captions/tokens']
f['captions/tokens'] = np.concatenate([t, np.zeros((len(t), 1), t.dtype)], axis=1)
"
expect_error vocab_disagrees "its captions (35 words, 8 tokens each) are not the teacher's (34 words, 8 tokens" \
  "$AMD" distill $D data="$S/vocab.h5" run="$S/bad1"
expect_error width_disagrees "its captions (34 words, 9 tokens each) are not the teacher's (34 words, 8 tokens" \
  "$AMD" distill $D data="$S/wide.h5" run="$S/bad2"
expect_error no_captions "holds no /captions" "$AMD" distill $D data="$S/plain.h5" run="$S/bad3"
expect_error not_a_classifier_reward "classifier" "$AMD" distill $D method=amd reward.ckpt="$S/t" run="$S/bad4"
expect_error amd_needs_reward "method=amd on the captioned canvases" "$AMD" distill $D method=amd run="$S/bad5"
expect_error dmdr_needs_reward "method=dmdr on the captioned canvases" "$AMD" distill $D method=dmdr run="$S/bad6"
# a class teacher: on canvases of another size an error; on the captioned canvases their /labels
"$AMD" data toy2d out="$S/toy.h5" n=256 >/dev/null
C="train.steps=2 train.batch=8 ckpt.every=2 threads=1"
expect_ok toy_teacher "$AMD" train data="$S/toy.h5" model.width=16 $C run="$S/toyt"
expect_error class_teacher_on_canvases "(dim 3136, 10 classes) does not match the teacher" "$AMD" distill $D \
  teacher="$S/toyt" data="$S/train.h5" run="$S/bad8"
expect_error caption_teacher_on_toy_data "(dim 2, 4 classes) does not match the teacher" "$AMD" distill $D \
  data="$S/toy.h5" run="$S/bad9"
if ls -d "$S"/bad* >/dev/null 2>&1; then fail mismatches_write_nothing "$(ls -d "$S"/bad*)"; else pass mismatches_write_nothing; fi
expect_ok class_teacher "$AMD" train data="$S/train.h5" model.width=32 model.depth=1 model.patch=8 model.heads=2 $C \
  run="$S/ct"
expect_ok class_teacher_distills_labels "$AMD" distill $D teacher="$S/ct" method=dmd2 run="$S/ctd"
if grep -q "distills on its class labels" "$S/class_teacher_distills_labels.out"; then pass class_teacher_says_labels
else fail class_teacher_says_labels "$(tail -3 "$S/class_teacher_distills_labels.out")"; fi
py_check class_teacher_prompts_are_classes "
import h5py, numpy as np
p = h5py.File('$S/ctd/log.h5', 'r')['advantage/prompt'][:]
assert ((p >= 0) & (p < 10)).all(), p
"
