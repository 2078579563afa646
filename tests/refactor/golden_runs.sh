#!/usr/bin/env bash
# golden_runs.sh AMD OUT [DEVICE]: runs a fixed set of short jobs with the binary AMD into OUT, so
# that two builds (before and after a refactor that must not change behaviour) can be compared file
# by file with tests/refactor/same_outputs.py. The set covers the demo's pipeline (toy data, teacher
# under mpirun -np 2, AMD distillation, samples, eval), a teacher with ZeRO-2 and a rollback, a
# distillation stopped by a signal and resumed, and short DiT teacher, reward and distillations of
# every method on a slice of Fashion-MNIST. DEVICE: cpu (default) or cuda (the CUDA emulator build).
set -euo pipefail
AMD=$(realpath "$1"); OUT=$2; DEV=${3:-cpu}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN="mpirun -np 2 --oversubscribe --mca btl self,vader"
rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
run() { echo "+ $*" >>cmds.txt; "$@" >>out.txt 2>&1; }
runrc() { echo "+ $*" >>cmds.txt; set +e; "$@" >>out.txt 2>&1; echo "rc $?" >>cmds.txt; set -e; }
D="device=$DEV"
# the demo (jobs/demo.sh) at its own settings
run "$AMD" data toy2d out=toy2d.h5
run $MPIRUN "$AMD" train "$OLDPWD/jobs/toy_teacher.cfg" data=toy2d.h5 run=teacher $D
run $MPIRUN "$AMD" distill "$OLDPWD/jobs/toy_amd.cfg" teacher=teacher run=amd $D train.steps=100 ckpt.every=50
run $MPIRUN "$AMD" sample ckpt=teacher out=teacher_50.h5 steps=50 n=2048 $D
run $MPIRUN "$AMD" sample ckpt=amd net=student sampler=generator steps=1 out=amd_1.h5 n=2048 $D
for s in teacher_50 amd_1; do run "$AMD" eval samples=$s.h5; done
# teacher: ZeRO-2 at 2 ranks, a NaN rollback, then a signal stop and a resume
run $MPIRUN "$AMD" train "$OLDPWD/jobs/toy_teacher.cfg" data=toy2d.h5 run=t_z2 zero=2 train.steps=300 \
  model.width=64 ckpt.every=100 log.every=50 fault.nan_step=150 $D 2>/dev/null || true
runrc $MPIRUN "$AMD" train "$OLDPWD/jobs/toy_teacher.cfg" data=toy2d.h5 run=t_sig zero=1 train.steps=300 \
  model.width=64 ckpt.every=100 log.every=50 fault.signal_step=130 $D
run $MPIRUN "$AMD" train "$OLDPWD/jobs/toy_teacher.cfg" data=toy2d.h5 run=t_sig zero=1 train.steps=300 \
  model.width=64 ckpt.every=100 log.every=50 resume=1 $D
# every method on the toy teacher, with rollback and signal stop/resume in distillation
for m in dmd dmd2 dmdr amd; do
  run $MPIRUN "$AMD" distill teacher=teacher method=$m run=d_$m train.steps=20 train.prompts=16 amd.K=4 \
    log.every=5 log.advantage_every=5 ckpt.every=10 zero=2 $D
done
run "$AMD" distill teacher=teacher method=amd run=d_nan train.steps=20 train.prompts=8 amd.K=4 log.every=5 \
  ckpt.every=10 fault.nan_step=15 $D
runrc $MPIRUN "$AMD" distill teacher=teacher method=dmd2 run=d_sig train.steps=20 train.prompts=8 amd.K=4 \
  log.every=5 ckpt.every=10 fault.signal_step=13 $D
run $MPIRUN "$AMD" distill teacher=teacher method=dmd2 run=d_sig train.steps=20 train.prompts=8 amd.K=4 \
  log.every=5 ckpt.every=10 resume=1 $D
# images: a slice of Fashion-MNIST, a tiny dit teacher and reward, every method for 3 steps
FM=/usr/share/datasets/fashion-mnist
if [ -f "$FM/train-images-idx3-ubyte.gz" ]; then
  run "$AMD" data fmnist out_train=fm_train.h5 out_test=fm_test.h5
  /usr/bin/python3 - <<'PYEOF'
import h5py
for split, n in (("train", 2000), ("test", 300)):
    f = h5py.File(f"fm_{split}.h5", "r")
    with h5py.File(f"slice_{split}.h5", "w") as g:
        g["images"] = f["x"][:n]; g["labels"] = f["labels"][:n]
PYEOF
  rm -f fm_train.h5 fm_test.h5
  for s in train test; do run "$AMD" data import in=slice_$s.h5 out=img_$s.h5 dataset=/images labels_dataset=/labels classes=10; done
  T="model.width=32 model.depth=1 model.heads=2 model.patch=7 threads=1 optim.warmup=0 log.every=10 $D"
  run "$AMD" train data=img_train.h5 run=img_teacher $T model.temb_dim=32 train.steps=20 train.batch=32 ckpt.every=10
  run "$AMD" train task=reward data=img_train.h5 test_data=img_test.h5 run=img_reward $T train.steps=20 train.batch=32 ckpt.every=10
  for m in dmd dmd2 dmdr amd; do
    run $MPIRUN "$AMD" distill teacher=img_teacher method=$m run=img_$m reward.ckpt=img_reward train.prompts=4 amd.K=2 \
      train.steps=3 log.every=1 threads=1 student.steps=2 $D
  done
  run "$AMD" sample ckpt=img_amd net=student sampler=generator steps=2 out=img_amd_s.h5 n=64 $D
fi
echo "golden runs done in $OUT"
