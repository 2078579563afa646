#!/usr/bin/env bash
# gpu_fmnist.sh: the image benchmark of issue 4 (benchmarks/fmnist_methods.sh, the jobs/fmnist_*.cfg
# settings unchanged) on a GPU machine, from the bundle of benchmarks/gpu_bundle.sh (.gpu/) and the
# four gzipped IDX files of Fashion-MNIST copied into .fm/ (the GPU machine has neither the Debian
# package nor a network): the classifiers, the DiT teacher, its samplers, and the students of
# STEPS (default "1 2 4"), every run with device=auto (the GPU) and 16 threads for the host's part.
# Stops at LIMIT seconds (default 330) wherever it is; the table is rewritten after each student
# step count, so a stopped run leaves the table of what it finished. Writes $OUT/fmnist_gpu.tar.gz
# (table, stage times, logs, each run's log.h5, eval files and PNG grids; not the checkpoints).
#   here:  bash benchmarks/gpu_bundle.sh; mkdir -p .fm; cp /usr/share/datasets/fashion-mnist/*.gz .fm/
#   there: bash benchmarks/gpu_fmnist.sh        (carry .gpu and .fm; both are ignored by git)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_fmnist}
LIMIT=${LIMIT:-330}
W=/tmp/fmnist_gpu
mkdir -p "$OUT" "$W"
source benchmarks/gpu_env.sh
nvidia-smi -L
t0=$(date +%s)
"$G/bin/amd" data fmnist dir="$PWD/.fm" out_train="$W/train.h5" out_test="$W/test.h5" || exit 1
echo "data: $(($(date +%s) - t0)) s"
OUT="$W/run" AMD="$G/bin/amd" PY="$PY" THREADS=16 TRAIN_DATA="$W/train.h5" TEST_DATA="$W/test.h5" \
  STEPS="${STEPS:-1 2 4}" timeout "$LIMIT" bash benchmarks/fmnist_methods.sh >"$W/pipeline.txt" 2>&1
echo "fmnist_methods.sh exit $? after $(($(date +%s) - t0)) s"
cat "$W/pipeline.txt"
cd "$W" && tar -czf "$OUT/fmnist_gpu.tar.gz" pipeline.txt run/table.md run/logs $(ls run/*/log.h5 run/samples/*.png \
  run/samples/*_eval.h5 2>/dev/null)
