#!/usr/bin/env bash
# Impossible values and user mistakes through the real binary (issue 16, items 7 and 12): a bit flip
# in a dataset, a damaged toy mixture, eval against a dataset of other classes or modes, settings
# whose product overflows an int, sampling a network that is not a velocity network, several bad
# keys at once, a mistyped command; each exits with its status and a message that names the problem
# (and no source location), writing nothing. Also the status lines and the end-of-run summary of
# training and distillation, and `amd data toy2d`'s default file.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
TINY="model.width=16 model.depth=1 model.temb_dim=8 threads=1"

# expect_status NAME STATUS NEEDLE COMMAND...: exit STATUS, NEEDLE on stderr, no "file.c:line" there.
expect_status() {
  local name=$1 want=$2 needle=$3; shift 3
  "$@" >"$S/$name.out" 2>"$S/$name.err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then fail "$name" "exit $rc, expected $want: $(head -c 400 "$S/$name.err")"
  elif ! grep -qF -- "$needle" "$S/$name.err"; then fail "$name" "stderr lacks '$needle': $(head -c 400 "$S/$name.err")"
  elif grep -qE '\.c:[0-9]+' "$S/$name.err"; then fail "$name" "a user's mistake names a source line: $(cat "$S/$name.err")"
  else pass "$name"; fi
}

"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
"$AMD" data toy2d out="$S/toy6.h5" n=2000 modes=6 classes=2 >/dev/null
"$AMD" data toy2d out="$S/toy3.h5" n=2000 modes=6 classes=3 >/dev/null

# item 7 (a), (b): damaged datasets are refused before anything is written
$PY -c "
import h5py, numpy as np, shutil
for name, edit in (('flip', lambda f: f['x'].__setitem__((5, 1), np.float32(3.0e9))),
                   ('nanx', lambda f: f['x'].__setitem__((9, 0), np.float32('nan'))),
                   ('nanmean', lambda f: f['mixture/means'].__setitem__((1, 0), np.float32('nan'))),
                   ('negweight', lambda f: f['mixture/weights'].__setitem__(0, np.float32(-1.0))),
                   ('weightsum', lambda f: f['mixture/weights'].__setitem__(0, np.float32(0.9)))):
    shutil.copy('$S/toy.h5', '$S/%s.h5' % name)
    with h5py.File('$S/%s.h5' % name, 'r+') as f: edit(f)
"
expect_status bit_flip_refused 1 "flip.h5': /x[5, 1] = 3e+09 is outside [-" "$AMD" train data="$S/flip.h5" run="$S/r_flip" $TINY
if [ -e "$S/r_flip" ]; then fail bit_flip_writes_nothing "$(ls -R "$S/r_flip")"; else pass bit_flip_writes_nothing; fi
expect_status nan_x_refused 1 "nanx.h5': /x[9, 0] is nan, not a finite number" "$AMD" train data="$S/nanx.h5" run="$S/r_nanx" $TINY
expect_status nan_mixture_mean_refused 1 "/mixture/means[1, 0] = nan is not a finite number" "$AMD" train data="$S/nanmean.h5" run="$S/r_nm" $TINY
expect_status negative_weight_refused 1 "/mixture/weights[0] = -1 is not a non-negative number" "$AMD" info "$S/negweight.h5"
expect_status weights_not_summing_refused 1 "the weights of class 0's modes sum to 1.4, not 1" "$AMD" train data="$S/weightsum.h5" run="$S/r_ws" $TINY

# a teacher and a student (dmd2: with a GAN head, the network sample must refuse)
expect_ok teacher "$AMD" train data="$S/toy.h5" run="$S/t" $TINY train.batch=32 train.steps=20 log.every=5 ckpt.every=10
expect_ok student "$AMD" distill teacher="$S/t" run="$S/d" method=dmd2 train.prompts=8 amd.K=2 fake_per_gen=1 \
  train.steps=4 log.every=2 ckpt.every=2 threads=1
expect_ok samples "$AMD" sample ckpt="$S/t" out="$S/s.h5" n=64 steps=4

# item 12 (g): the same status line for both, averages labelled, elapsed time; a summary at the end
py_check status_lines_alike "
import re
t = open('$S/teacher.out').read(); d = open('$S/student.out').read()
tl = [l for l in t.splitlines() if l.startswith('step ')]; dl = [l for l in d.splitlines() if l.startswith('step ')]
assert len(tl) == 4 and len(dl) == 2, (tl, dl)
pat = r'^step +\d+/\d+ \| avg (\d+): .* \| last: .* \| +\d+ samples/s \| elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d$'
for l, n in [(l, '5') for l in tl] + [(l, '2') for l in dl]:
    m = re.match(pat, l)
    assert m and m.group(1) == n, l
assert 'avg 5: loss ' in tl[-1] and 'avg 2: dm ' in dl[-1] and ', reward ' in dl[-1], (tl[-1], dl[-1])
assert re.search(r'last: forbidden [0-9.]+, off-manifold [0-9.]+, grad ', dl[-1]), dl[-1]  # toy data: known
for out, what, run, last, losses in ((t, 'training', '$S/t', 20, 'loss '), (d, 'distillation', '$S/d', 4, 'loss_dm ')):
    assert re.search(r'^done: %s of %s, steps 0 to %d of %d \(%d this run\) in \d+:\d\d:\d\d \([0-9.]+ s\), \d+ samples/s$'
                     % (what, re.escape(run), last, last, last), out, re.M), out
    assert \"  last step's losses: \" + losses in out, out
    assert '  log %s/log.h5, last checkpoint %s/ckpt_%08d.h5' % (run, run, last) in out, out
"

# item 7 (c): eval against a dataset of other classes or modes than the samples' model (as distill)
expect_status eval_other_classes 2 "data '$PWD/$S/toy3.h5' (dim 2, 3 classes) does not match the samples" \
  "$AMD" eval samples="$S/s.h5" data="$S/toy3.h5" out="$S/e3.h5"
expect_status eval_other_modes 2 "(6 modes) is another toy mixture than '$PWD/$S/toy.h5' (4 modes)" \
  "$AMD" eval samples="$S/s.h5" data="$S/toy6.h5" out="$S/e6.h5"
expect_status distill_other_modes 2 "(6 modes) is another toy mixture than '$PWD/$S/toy.h5' (4 modes)" \
  "$AMD" distill teacher="$S/t" data="$S/toy6.h5" run="$S/d6" train.prompts=8 amd.K=2 train.steps=2 threads=1
"$AMD" data toy2d out="$S/toy_again.h5" n=500 modes=4 classes=2 seed=7 >/dev/null
expect_ok eval_same_mixture_other_draw "$AMD" eval samples="$S/s.h5" data="$S/toy_again.h5" out="$S/e_again.h5"
if [ -e "$S/e3.h5" ] || [ -e "$S/e6.h5" ] || [ -e "$S/d6" ]; then fail refused_eval_writes_nothing "$(ls "$S")"
else pass refused_eval_writes_nothing; fi

# item 7 (d): a product of settings that overflows an int is a usage error naming the keys
expect_status batch_overflow 2 "2 x train.prompts x amd.K (the real teacher's batch) is too large" \
  "$AMD" distill teacher="$S/t" run="$S/d_big" amd.K=1024 train.prompts=1048576 threads=1

# item 7 (e): only velocity networks are sampled
expect_status sample_disc_refused 2 "the networks of this checkpoint that can be sampled: student, fake" \
  "$AMD" sample ckpt="$S/d" net=disc out="$S/disc.h5" n=16
if [ -e "$S/disc.h5" ]; then fail sample_disc_writes_nothing "disc.h5 written"; else pass sample_disc_writes_nothing; fi
expect_ok sample_fake "$AMD" sample ckpt="$S/d" net=fake out="$S/fake.h5" n=16 steps=2

# item 12 (d, e, f): every bad key at once, a line each; did you mean for commands and dataset kinds
expect_status every_bad_key 2 "4 problems in the settings:" \
  "$AMD" train data="$S/toy.h5" optim.lrr=1 train.steps=0 model.width=wide bogus.key=1
py_check every_bad_key_listed "
e = open('$S/every_bad_key.err').read().splitlines()
assert e[0] == 'amd: error: 4 problems in the settings:', e
assert e[1] == \"  unknown config key 'optim.lrr' (command line); did you mean 'optim.lr'?\", e
assert e[2].startswith(\"  config key 'train.steps' = '0' (command line): out of range\"), e
assert e[3].startswith(\"  config key 'model.width' = 'wide' (command line): not an integer\"), e
assert e[4] == \"  unknown config key 'bogus.key' (command line); --help lists every key\" and len(e) == 5, e
"
printf 'optim.lr = -5\n[optim]\nbeta1 = 2\n' >"$S/bad.cfg"
expect_status bad_file_and_line 2 "(command line)" "$AMD" train "$S/bad.cfg" data="$S/toy.h5" trian.steps=5
py_check bad_file_and_line_listed "
e = open('$S/bad_file_and_line.err').read()
assert '3 problems' in e and '(%s:1)' % '$S/bad.cfg' in e and '(%s:3)' % '$S/bad.cfg' in e and \"did you mean 'train.steps'\" in e, e
"
expect_status command_suggested 2 "unknown command 'trian'; did you mean 'train'?" "$AMD" trian
expect_status kind_suggested 2 "did you mean 'toy2d'?" "$AMD" data toy2
expect_status missing_file_no_location 1 "does not exist" "$AMD" train data="$S/nope.h5" run="$S/r0"

# item 12 (c): amd data toy2d writes data/toy.h5, the file the scripts and the README use
mkdir -p "$S/cwd" && (cd "$S/cwd" && "$AMD" data toy2d n=100 >/dev/null)
if [ -f "$S/cwd/data/toy.h5" ]; then pass toy2d_default_is_data_toy_h5; else fail toy2d_default_is_data_toy_h5 "$(ls -R "$S/cwd")"; fi
