#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in toy default, in a few minutes on 2 cores:
# toy 2-D data, a rectified-flow teacher trained under `mpirun -np 2`, AMD distillation of a 1-step
# student, and a table of the teacher at 50 steps against the student at 1 step (metrics and
# sampling speed), with scatter plots. Everything goes under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=${DEMO_DIR:-runs/demo}
MPIRUN="mpirun -np 2 --oversubscribe --mca btl self,vader"
rm -rf "$out"
mkdir -p "$out"

echo "== 1/5 toy data: 8 Gaussian modes on a ring, 4 classes"
./amd data toy2d out="$out/toy.h5"
echo "== 2/5 teacher: rectified flow under mpirun -np 2 (jobs/toy_teacher.cfg)"
$MPIRUN ./amd train jobs/toy_teacher.cfg data="$out/toy.h5" run="$out/teacher"
echo "== 3/5 AMD distillation of a 1-step student under mpirun -np 2 (jobs/toy_amd.cfg)"
$MPIRUN ./amd distill jobs/toy_amd.cfg teacher="$out/teacher" run="$out/amd"
echo "== 4/5 samples: teacher at 50 Euler steps, teacher at 1 step, AMD student at 1 step"
$MPIRUN ./amd sample ckpt="$out/teacher" out="$out/teacher_50.h5" steps=50 n=8192 png="$out/teacher_50.png"
$MPIRUN ./amd sample ckpt="$out/teacher" out="$out/teacher_1.h5" steps=1 n=8192 png="$out/teacher_1.png"
$MPIRUN ./amd sample ckpt="$out/amd" net=student sampler=generator steps=1 out="$out/amd_1.h5" n=8192 png="$out/amd_1.png"
echo "== 5/5 metrics"
for s in teacher_50 teacher_1 amd_1; do ./amd eval samples="$out/$s.h5" >"$out/$s.eval.txt"; done
echo
/usr/bin/python3 benchmarks/eval_table.py "teacher, 50 Euler steps=$out/teacher_50_eval.h5" \
  "teacher, 1 Euler step=$out/teacher_1_eval.h5" "AMD student, 1 step=$out/amd_1_eval.h5"
echo
echo "demo files in $out/:"
echo "  toy.h5                   dataset (with the mixture's exact parameters)"
echo "  teacher/, amd/           run folders: log.h5 (h5py: f['train/loss_dm']) and ckpt_*.h5"
echo "  *.h5, *.png              samples and their scatter plots; *_eval.h5 and *.eval.txt the metrics"
echo "  plots of the AMD log:    /usr/bin/python3 benchmarks/plot_log.py $out/amd/log.h5"
