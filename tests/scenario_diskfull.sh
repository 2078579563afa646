#!/usr/bin/env bash
# A full disk or a file-size limit while a run writes (core/common.c amd_fatal, io/h5.c): the write
# fails, every rank ends with exit 1 (never SIGSEGV inside MPI_Finalize, never SIGXFSZ) and a
# message naming the file and the reason, and the earlier checkpoint stays whole: a resume without
# the limit continues from it. `ulimit -f` needs no root (Open MPI's own start-up files need about
# 8 MB, so the limit is 10 MB and the model's checkpoint 16 MB). A full tmpfs was checked by hand
# (docs/testing.md).
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
"$AMD" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null
CFG="data=$S/toy.h5 model.width=512 model.depth=2 model.temb_dim=8 train.batch=32 log.every=5 ckpt.every=10 threads=1"
expect_ok first_checkpoint "$AMD" train $CFG run="$S/base" train.steps=10

for np in 1 2; do
  rm -rf "$S/np$np"
  cp -r "$S/base" "$S/np$np"
  launch=("$AMD"); [ $np = 2 ] && launch=($MPIRUN -np 2 "$AMD")
  (ulimit -f 10000; "${launch[@]}" train $CFG run="$S/np$np" resume=1 train.steps=20 resume.allow=train.steps) >"$S/np$np.out" 2>&1
  rc=$?
  if [ $rc -eq 1 ] && grep -q "cannot write dataset '[a-z_]*' in '$S/np$np/ckpt_00000020.h5.tmp' (.*file-size limit" "$S/np$np.out" &&
     ! grep -q "Segmentation fault\|Signal: \|File size limit exceeded" "$S/np$np.out"; then pass "size_limit_np${np}_exit_1_naming_the_file"
  else fail "size_limit_np${np}_exit_1_naming_the_file" "rc $rc: $(grep -v '^step\|^  [a-z]' "$S/np$np.out" | tail -c 600)"; fi
  # mpirun may return while a rank it killed is still going away: wait for the lock's owner
  owner=$(awk '{print $4}' "$S/np$np/amd.lock" 2>/dev/null)
  for i in $(seq 1 100); do [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null || break; sleep 0.1; done
  expect_ok "size_limit_np${np}_resume" "$AMD" train $CFG run="$S/np$np" resume=1 train.steps=20 resume.allow=train.steps
  if grep -q "resuming from $S/np$np/ckpt_00000010.h5" "$S/size_limit_np${np}_resume.out"; then pass "size_limit_np${np}_checkpoint_whole"
  else fail "size_limit_np${np}_checkpoint_whole" "$(grep -i 'resum\|damaged' "$S/size_limit_np${np}_resume.out")"; fi
done
