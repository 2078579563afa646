#!/usr/bin/env bash
# gpu_fmnist_study.sh: the Fashion-MNIST method study of issue 17 on a GPU machine, as one prepared
# command of at most 10 minutes: the data, the reward and evaluator classifiers and the DiT teacher
# (jobs/fmnist_*.cfg), then benchmarks/study.py on the 1-step students of dmd2 and amd (then dmd and
# dmdr, if time is left), SEEDS paired seeds at BUDGET distillation steps, EMA weights, held-out FD,
# precision, recall and evaluator accuracy every EVAL_EVERY steps on 1000 fixed-noise samples.
# JOBS cells share the GPU at a time (a 1.3 M-parameter DiT leaves an H100 mostly idle). At LIMIT
# seconds the study is stopped (its runs checkpoint) and the table of what finished is written.
# Brings back $OUT/fmnist_study.tar.gz: the study folder without checkpoints (results.md/.csv/.png,
# journal, cells.json, eval files, every run's log.h5 with its /eval curve), the teacher's log.
#   here:  bash benchmarks/gpu_bundle.sh; mkdir -p .fm; cp /usr/share/datasets/fashion-mnist/*.gz .fm/
#   there: bash benchmarks/gpu_fmnist_study.sh          (carry .gpu and .fm)
#   a plumbing check on the CPU, in a minute: TINY=1 bash benchmarks/gpu_fmnist_study.sh
#   PASSES=fmnist_s1_main: dmd2 and amd only (rerun without it for dmd, dmdr and the DMDR reward weights:
#   finished cells are skipped); PASSES=fmnist_s1_extend continues dmd2, amd and dmdr_r1 (see below);
#   PASSES=fmnist_s1_amd_s, fmnist_s1_amd_parts, fmnist_s1_amd_rls: AMD's s, its components one at a time,
#   its lambda_rls
#   the 2-core CPU variant (no time limit; a smaller teacher, DiT width 64, depth 2, 8000 steps; 3 seeds
#   at 1000 steps; the preparation and the first two passes at CPU_SEEDS="0 1 2 3 4" took 85 min on a
#   2-core Xeon, about 7 min per cell, two at a time):
#   CPU=1 OUT=/tmp/fm W=/tmp/fm bash benchmarks/gpu_fmnist_study.sh
#   the GPU study's own sizes on a CPU with AMX-BF16 (the full teacher of jobs/fmnist_teacher.cfg, 5
#   seeds at 2000 steps, every training and distillation in precision=bf16; about 3.5 hours on 2 cores,
#   resumable: rerun the same command and finished cells are skipped):
#   CPU=1 CPU_FULL=1 OUT=/work/fmfull W=/work/fmfull bash benchmarks/gpu_fmnist_study.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_fmnist_study}
LIMIT=${LIMIT:-540}
BUDGET=${BUDGET:-2000}
SEEDS=${SEEDS:-"0 1 2 3 4"}
JOBS=${JOBS:-4}
THREADS=${THREADS:-4}
EVAL_EVERY=${EVAL_EVERY:-500}
W=${W:-/tmp/fmnist_study}
t0=$(date +%s)
mkdir -p "$OUT" "$W"
if [ -n "${TINY:-}" ]; then
  # the same pipeline at toy sizes with ./amd on the CPU: small data, networks and budgets
  AMD=$PWD/amd PY=/usr/bin/python3 BUDGET=${TINY_BUDGET:-6} SEEDS="0 1" JOBS=2 THREADS=1 EVAL_EVERY=3
  TRAIN_X="train.steps=30 log.every=10 ckpt.every=30 model.width=32 model.depth=1"
  SAMPLE_N=64 FM_DIR=/usr/share/datasets/fashion-mnist
elif [ -n "${CPU:-}" ]; then
  AMD=${AMD:-$PWD/amd} PY=/usr/bin/python3 LIMIT=${CPU_LIMIT:-100000} BUDGET=${CPU_BUDGET:-1000} SEEDS=${CPU_SEEDS:-"0 1 2"}
  JOBS=2 THREADS=1 EVAL_EVERY=250 TRAIN_X="threads=2" SAMPLE_N=1000 FM_DIR=/usr/share/datasets/fashion-mnist
  TEACHER_X="model.width=64 model.depth=2"
  if [ -n "${CPU_FULL:-}" ]; then
    BUDGET=${CPU_BUDGET:-2000} SEEDS=${CPU_SEEDS:-"0 1 2 3 4"} TEACHER_X="" PRECISION=bf16
    TRAIN_X="threads=2 precision=bf16"
  fi
else
  source benchmarks/gpu_env.sh
  nvidia-smi -L
  AMD=$G/bin/amd TRAIN_X="" SAMPLE_N=1000 FM_DIR=$PWD/.fm
fi
# the spec of each part of the study, written here with this machine's paths and binary
spec() { # NAME PREPARE(1: the study makes the data, classifiers and teacher) METHOD... [vs:A,B ...]
  # a METHOD is a method's name, or NAME:KEY=VALUE,... (e.g. dmdr_r1:method=dmdr,dmdr.lambda_r=1); vs:A,B
  # adds the paired contrast A minus B to the table
  local name=$1 prepare=$2; shift 2
  "$PY" - "$name" "$prepare" "$W" "$AMD" "$BUDGET" "$SEEDS" "$EVAL_EVERY" "$SAMPLE_N" "$FM_DIR" "$TRAIN_X" "${TEACHER_X:-}" \
    "${PRECISION:-fp32}" "$@" <<'PY'
import json, sys
name, prepare, w, amd, budget, seeds, every, n, fm, trainx, teacherx, precision = sys.argv[1:13]
methods, contrasts = {}, []
for a in sys.argv[13:]:
    if a.startswith("vs:"):
        contrasts.append(a[3:].split(","))
    elif ":" in a:
        mname, kv = a.split(":", 1)
        methods[mname] = dict(x.split("=", 1) for x in kv.split(","))
    else:
        methods[a] = {"method": a}
p = w + "/prep"
tx = trainx.split()
cmds = [["mkdir", "-p", p], [amd, "data", "fmnist", f"dir={fm}", f"out_train={p}/train.h5", f"out_test={p}/test.h5"]]
for task in ("reward", "evaluator"):
    cmds.append([amd, "train", f"jobs/fmnist_{task}.cfg", f"data={p}/train.h5", f"test_data={p}/test.h5",
                 f"run={p}/{task}", "threads={threads}", "resume=1"] + tx)
cmds.append([amd, "train", "jobs/fmnist_teacher.cfg", f"data={p}/train.h5", f"run={p}/teacher", "threads={threads}",
             "resume=1"]
            + tx + teacherx.split())
spec = {
    "description": f"Fashion-MNIST, 1-step students, EMA weights, {budget} steps, seeds {seeds}"
                   + (f", teacher {teacherx}" if teacherx else "")
                   + (f", precision {precision}" if precision != "fp32" else "") + " (issue 17; "
                   "benchmarks/gpu_fmnist_study.sh)",
    "amd": amd,
    "teacher": {"ckpt": f"{p}/teacher", "commands": cmds} if prepare == "1" else f"{p}/teacher",
    "distill": {"config": "jobs/fmnist_amd.cfg",
                "settings": {"reward.ckpt": f"{p}/reward", "eval.every": int(every), "eval.n": int(n),
                             "eval.evaluator": f"{p}/evaluator", "eval.data": f"{p}/test.h5",
                             "log.every": 100, "log.advantage_every": 100, "ckpt.every": 500,
                             **({"precision": precision} if precision != "fp32" else {})}},
    "methods": methods, "contrasts": contrasts,
    "budgets": [int(budget)], "seeds": [int(s) for s in seeds.split()],
    "sample": {"n": int(n), "batch": 200},
    "eval": {"evaluator": f"{p}/evaluator", "reward": f"{p}/reward", "data": f"{p}/test.h5"},
    "baseline": "dmd2",
    "metrics": ["fd", "precision", "recall", "accuracy", "reward"],
}
json.dump(spec, open(f"{w}/{name}.json", "w"), indent=1)
PY
}
# the first pass makes the data, the classifiers and the teacher in $W/prep and runs dmd2 and amd; the
# second, in the same study folder, adds dmd and dmdr (the runner skips the cells already evaluated)
spec fmnist_s1_main 1 dmd2 amd
spec fmnist_s1_all 0 dmd2 amd dmd dmdr
# the third pass: DMDR at reward weights 1 and 10 (its default 0.05 moves nothing on images; on the CPU
# variant 1 gained AMD's reward, 10 3.3 times it), each set against AMD: at a like reward gain, which keeps
# more recall?
spec fmnist_s1_dmdr 0 dmd2 amd dmdr_r1:method=dmdr,dmdr.lambda_r=1 dmdr_r10:method=dmdr,dmdr.lambda_r=10 \
  vs:amd,dmdr_r1 vs:amd,dmdr_r10
# fmnist_s1_amd_s (only when PASSES names it): AMD at s = 0.25 and 1 (its default 0.5 above), so that
# AMD gets as many points on its reward-diversity curve as DMDR (weights 0.05, 1, 10), each set
# against DMDR at weight 1
spec fmnist_s1_amd_s 0 dmd2 amd amd_s0.25:method=amd,amd.s=0.25 amd_s1:method=amd,amd.s=1 \
  dmdr_r1:method=dmdr,dmdr.lambda_r=1 vs:amd_s0.25,dmdr_r1 vs:amd_s1,dmdr_r1 vs:amd,dmdr_r1
# fmnist_s1_amd_parts (only when PASSES names it): AMD's components one at a time at its default setting,
# to find what costs AMD its recall on images: lambda_rls = 0 (Dynamic Score Adaptation alone), s = 0
# (Repulsive Landscape Sharpening alone), and the sharpening weights normalized to mean 1; each against amd,
# and the sharpening alone against DMDR at weight 1 (the cells of the dmdr pass)
spec fmnist_s1_amd_parts 0 dmd2 amd amd_norls:method=amd,amd.lambda_rls=0 amd_rls_only:method=amd,amd.s=0 \
  amd_mean1:method=amd,amd.rls_norm=mean1 dmdr_r1:method=dmdr,dmdr.lambda_r=1 vs:amd_norls,amd vs:amd_rls_only,amd \
  vs:amd_mean1,amd vs:amd_rls_only,dmdr_r1
# fmnist_s1_amd_rls (only when PASSES names it): AMD at lambda_rls = 0.5 and 2 (its default 1 above), set
# against DMDR at weight 1: on images the sharpening alone (s = 0) gave AMD's reward gain and its recall
# loss; does a weaker sharpening keep part of the reward at less recall lost, a stronger one more reward?
spec fmnist_s1_amd_rls 0 dmd2 amd amd_rls0.5:method=amd,amd.lambda_rls=0.5 amd_rls2:method=amd,amd.lambda_rls=2 \
  dmdr_r1:method=dmdr,dmdr.lambda_r=1 dmdr_r10:method=dmdr,dmdr.lambda_r=10 vs:amd_rls0.5,dmdr_r1 \
  vs:amd_rls2,dmdr_r1 vs:amd_rls2,dmdr_r10 vs:amd_rls0.5,amd vs:amd_rls2,amd vs:amd,dmdr_r1
left() { echo $((LIMIT - ($(date +%s) - t0))); }
# fmnist_s1_extend (only when PASSES names it, after the dmdr pass): the runs of dmd2, amd and dmdr_r1 in
# $W/study continued from BUDGET to EXTEND_TO steps in $W/study_extend (benchmarks/studies/extend.py), to
# see where the FD curves flatten and whether the ranking holds there
EXTEND_TO=${EXTEND_TO:-$((2 * BUDGET))}
for name in ${PASSES:-fmnist_s1_main fmnist_s1_all fmnist_s1_dmdr}; do
  [ "$(left)" -gt 30 ] || break
  echo "== $name ($(left) s left)"
  folder=$W/study
  if [ "$name" = fmnist_s1_extend ]; then
    folder=$W/study_extend
    "$PY" benchmarks/studies/extend.py "$W/fmnist_s1_dmdr.json" "$W/study" "$BUDGET" "$EXTEND_TO" \
      "$W/$name.json" "$folder" dmd2 amd dmdr_r1 || break
  fi
  timeout -s TERM "$(left)" "$PY" benchmarks/study.py "$W/$name.json" --out "$folder" --jobs "$JOBS" \
    --threads "$THREADS" --nice 0 >"$W/$name.log" 2>&1
  echo "   study.py exit $? after $(($(date +%s) - t0)) s"
  "$PY" benchmarks/study.py "$W/$name.json" --out "$folder" --report >"$W/$name.report" 2>&1
  tail -n 25 "$W/$name.report"
done
cd "$W" && tar -czf "$OUT/fmnist_study.tar.gz" --exclude='ckpt_*.h5' --exclude='*_samples.h5' --exclude='*.h5.bak' \
  --exclude=prep/train.h5 --exclude=prep/test.h5 ./*.json ./*.log ./*.report study study_extend prep/teacher/log.h5 2>/dev/null
echo "gpu_fmnist_study: $OUT/fmnist_study.tar.gz after $(($(date +%s) - t0)) s"
