#!/usr/bin/env bash
# The image benchmark (issue 4) on Fashion-MNIST, end to end, on the jobs/fmnist_*.cfg settings:
#   1. data (amd data fmnist), the reward and evaluator classifiers, the DiT teacher;
#   2. samples (N per model, classes in turn) of the teacher at 50 Euler, 25 Heun and 4 Euler steps
#      with guidance 2, and a PNG grid (a row per class) of each;
#   3. for each S in STEPS (default "1 2 4"): dmd, dmd2, dmdr and amd students at S steps, each
#      sampled at its S steps as soon as it is trained;
#   4. amd eval of each against the test split with the evaluator (FD, precision, recall, accuracy)
#      and the reward network (training reward), and the markdown table (eval_table.py), rewritten
#      after each S so that a stopped run leaves the table of what it finished.
# Resumable: a stage whose output exists is skipped, and an interrupted training resumes from its
# newest checkpoint, so rerunning the script after a stop continues where it was.
# Usage: benchmarks/fmnist_methods.sh    (env: OUT=runs/fmnist N=2000 STEPS="1 2 4" THREADS=2 METHODS=...
#        PY=python3 with h5py and numpy, for the table; AMD=the amd binary)
# For a quick check of the script itself (tests/scenario_images.sh): TRAIN_DATA and TEST_DATA replace
# data/fmnist_{train,test}.h5, and TRAIN_ARGS, DISTILL_ARGS (key=value lists) go after the job
# config of every `amd train` and `amd distill`; a train.steps there overrides the config's.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=${OUT:-runs/fmnist}
N=${N:-2000}
STEPS=${STEPS:-"1 2 4"}
THREADS=${THREADS:-2}
METHODS=${METHODS:-"amd dmd2 dmdr dmd"}
AMD=${AMD:-./amd}
PY=${PY:-/usr/bin/python3}
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -v) # peak memory in the logs, where the machine has it
TRAIN_DATA=${TRAIN_DATA:-data/fmnist_train.h5}
TEST_DATA=${TEST_DATA:-data/fmnist_test.h5}
TRAIN_ARGS=${TRAIN_ARGS:-}
DISTILL_ARGS=${DISTILL_ARGS:-}
mkdir -p "$OUT/logs" "$OUT/samples"
stamp() { date '+%F %T'; }

[ -f "$TRAIN_DATA" ] && [ -f "$TEST_DATA" ] || $AMD data fmnist out_train="$TRAIN_DATA" out_test="$TEST_DATA"

# train NAME CFG STEPS COMMAND KEY=VALUE...: `amd COMMAND CFG KEY=VALUE...` until ckpt_<STEPS>.h5
# exists (resuming when interrupted)
train() {
  local name=$1 cfg=$2 steps=$3 cmd=$4; shift 4
  local ckpt; ckpt=$(printf '%s/%s/ckpt_%08d.h5' "$OUT" "$name" "$steps")
  if [ -f "$ckpt" ]; then echo "$(stamp) $name: done ($ckpt)"; return; fi
  echo "$(stamp) $name: training ($OUT/logs/$name.log)"
  "${TIME[@]}" "$AMD" "$cmd" "$cfg" "$@" run="$OUT/$name" resume=1 threads="$THREADS" >>"$OUT/logs/$name.log" 2>&1
}
# steps_of CFG [KEY=VALUE...]: the run's train.steps (the last train.steps= given, else the config's)
steps_of() {
  local cfg=$1 v=""; shift
  for a in "$@"; do case "$a" in train.steps=*) v=${a#train.steps=} ;; esac; done
  [ -n "$v" ] && echo "$v" || awk -F' *= *' '/^\[train\]/{t=1; next} /^\[/{t=0} t && $1=="steps"{print $2}' "$cfg"
}
# shellcheck disable=SC2206
targs=(data="$TRAIN_DATA" $TRAIN_ARGS) cargs=(data="$TRAIN_DATA" test_data="$TEST_DATA" $TRAIN_ARGS) dargs=($DISTILL_ARGS)

train reward jobs/fmnist_reward.cfg "$(steps_of jobs/fmnist_reward.cfg "${cargs[@]}")" train "${cargs[@]}"
train evaluator jobs/fmnist_evaluator.cfg "$(steps_of jobs/fmnist_evaluator.cfg "${cargs[@]}")" train "${cargs[@]}"
train teacher jobs/fmnist_teacher.cfg "$(steps_of jobs/fmnist_teacher.cfg "${targs[@]}")" train "${targs[@]}"

# sample NAME KEY=VALUE...: samples file, grid and eval file of one model
sample() {
  local name=$1; shift
  local s="$OUT/samples/$name.h5"
  if [ ! -f "${s%.h5}_eval.h5" ]; then
    echo "$(stamp) sample + eval $name"
    "$AMD" sample "$@" n="$N" out="$s" png="${s%.h5}.png" threads="$THREADS" batch=200 >>"$OUT/logs/sample_$name.log" 2>&1
    "$AMD" eval samples="$s" data="$TEST_DATA" evaluator="$OUT/evaluator" reward="$OUT/reward" \
      threads="$THREADS" >>"$OUT/logs/sample_$name.log" 2>&1
  fi
}
sample teacher_euler50 ckpt="$OUT/teacher" sampler=euler steps=50 cfg=2.0
sample teacher_heun25 ckpt="$OUT/teacher" sampler=heun steps=25 cfg=2.0
sample teacher_euler4 ckpt="$OUT/teacher" sampler=euler steps=4 cfg=2.0
rows=("teacher, 50 Euler steps=$OUT/samples/teacher_euler50_eval.h5" "teacher, 25 Heun steps=$OUT/samples/teacher_heun25_eval.h5"
      "teacher, 4 Euler steps=$OUT/samples/teacher_euler4_eval.h5")
# one student step count at a time: its four distillations, their samples, and the table so far
# (trained in the order of METHODS, tabled in the order dmd, dmd2, dmdr, amd)
for S in $STEPS; do
  for m in $METHODS; do
    train "${m}_S$S" "jobs/fmnist_$m.cfg" "$(steps_of "jobs/fmnist_$m.cfg" "${dargs[@]}")" distill student.steps="$S" \
      teacher="$OUT/teacher" reward.ckpt="$OUT/reward" "${dargs[@]}"
    sample "${m}_S$S" ckpt="$OUT/${m}_S$S"
  done
  for m in dmd dmd2 dmdr amd; do
    [ -f "$OUT/samples/${m}_S${S}_eval.h5" ] && rows+=("$m student, $S step(s)=$OUT/samples/${m}_S${S}_eval.h5")
  done
  "$PY" benchmarks/eval_table.py "${rows[@]}" > "$OUT/table.md"
  echo "$(stamp) table after the $S-step students: $OUT/table.md"
done
cat "$OUT/table.md"
echo "$(stamp) done: $OUT/table.md, grids in $OUT/samples/*.png, peak memory in $OUT/logs/*.log (Maximum resident set size)"
