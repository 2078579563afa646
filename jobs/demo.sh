#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in toy default, in a few minutes on 2 cores:
# toy 2-D data, a rectified-flow teacher trained under `mpirun -np 2`, 50-step samples with a
# scatter plot, and the metrics table. Everything goes under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=${DEMO_DIR:-runs/demo}
rm -rf "$out"
mkdir -p "$out"

echo "== 1/4 toy data: 8 Gaussian modes on a ring, 4 classes"
./amd data toy2d out="$out/toy2d.h5"
echo "== 2/4 teacher: rectified flow, mpirun -np 2 (jobs/toy_teacher.cfg)"
mpirun -np 2 --oversubscribe --mca btl self,vader ./amd train jobs/toy_teacher.cfg data="$out/toy2d.h5" run="$out/teacher"
echo "== 3/4 samples: teacher, 50 Euler steps"
mpirun -np 2 --oversubscribe --mca btl self,vader ./amd sample ckpt="$out/teacher" out="$out/teacher_50.h5" \
  steps=50 n=8192 png="$out/teacher_50.png"
echo "== 4/4 metrics"
./amd eval samples="$out/teacher_50.h5"
echo
echo "demo files in $out/:"
echo "  toy2d.h5               dataset (with the mixture's exact parameters)"
echo "  teacher/log.h5         training log (h5py: f['train/loss'])"
echo "  teacher/ckpt_*.h5      checkpoints"
echo "  teacher_50.h5 / .png   50-step samples and their scatter plot"
echo "  teacher_50_eval.h5     the metrics above"
