#!/usr/bin/env bash
# compose_study.sh: the compositional table of issue 20: on captioned Fashion-MNIST canvases, the
# caption teacher at 50 and at 4 Euler steps and the 1-step student of every method, scored by the
# GenEval-like measure of `amd eval` (the share of samples whose every item, count and position is
# right by the evaluator) per category and overall, on seen and on held-out word combinations, with
# 95% intervals over paired seeds; plus a grid of the same captions from each model.
#   1. data and networks in $W (each skipped when it exists): `amd data compose` (20000 train and 4000
#      test canvases), `amd data cells` of both, the cell reward and the cell evaluator
#      (jobs/compose_reward.cfg, jobs/compose_evaluator.cfg), the teacher (jobs/compose_teacher.cfg);
#   2. the prompts: the first NP captions of the test split (every category, seen and held-out pairs);
#   3. the teacher rows: `amd sample` with cfg = the distillation's guidance (2), 50 and 4 Euler
#      steps, one samples file per seed, each evaluated;
#   4. the students: benchmarks/study.py on dmd, dmd2, dmdr and amd (jobs/compose_<method>.cfg, S = 1,
#      EMA weights), SEEDS paired seeds at BUDGET steps, each cell sampled on the same prompts; held-out
#      curves (eval.every = BUDGET / 4 on the first 200 test captions) in each run's log;
#   5. benchmarks/compose_table.py: the table (markdown, $W/compose_table.md) and the grids.
# Resumable: rerun the same command and finished parts are skipped (study.py resumes its cells).
#   the 2-core CPU variant (defaults): bash benchmarks/compose_study.sh   (W=/tmp/compose_study)
#   a plumbing check in a minute or two:  TINY=1 bash benchmarks/compose_study.sh
# Settings (environment): W, SEEDS ("0 1 2"), BUDGET (400), PROMPTS per update (8), NP (400 captions),
# JOBS (2 cells at a time), THREADS (1 per cell), STUDENT_X (more `amd distill` overrides).
set -uo pipefail
cd "$(dirname "$0")/.."
AMD=${AMD:-$PWD/amd}
PY=/usr/bin/python3
W=${W:-/tmp/compose_study}
SEEDS=${SEEDS:-"0 1 2"}
BUDGET=${BUDGET:-400}
PROMPTS=${PROMPTS:-8}
NP=${NP:-400}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
STUDENT_X=${STUDENT_X:-}
FM=/usr/share/datasets/fashion-mnist
TRAIN_X="threads=2"
COMPOSE_X=""
if [ -n "${TINY:-}" ]; then
  # the same pipeline at toy sizes: small data, networks and budgets
  SEEDS="0 1" BUDGET=4 NP=16 PROMPTS=4
  COMPOSE_X="n_train=400 n_test=200"
  TRAIN_X="threads=1 train.steps=20 log.every=10 ckpt.every=20 model.width=32 model.depth=1"
  TEACHER_X="model.text_width=16 model.text_depth=1 train.batch=16"
  STUDENT_X="amd.K=2 log.every=2 ckpt.every=4 $STUDENT_X"
fi
step() { echo "== $* ($(date +%T))"; "$@" || { echo "compose_study: failed: $*" >&2; exit 1; }; }
mkdir -p "$W"
# 1. data and networks
[ -f "$W/compose_test.h5" ] || step "$AMD" data compose dir="$FM" out_train="$W/compose_train.h5" \
  out_test="$W/compose_test.h5" $COMPOSE_X
for s in train test; do
  [ -f "$W/cells_$s.h5" ] || step "$AMD" data cells in="$W/compose_$s.h5" out="$W/cells_$s.h5"
done
for task in reward evaluator; do
  [ -f "$W/$task.done" ] || { step nice -n 5 "$AMD" train "jobs/compose_$task.cfg" data="$W/cells_train.h5" \
    test_data="$W/cells_test.h5" run="$W/$task" resume=1 $TRAIN_X && touch "$W/$task.done"; }
done
[ -f "$W/teacher.done" ] || { step nice -n 5 "$AMD" train jobs/compose_teacher.cfg data="$W/compose_train.h5" \
  run="$W/teacher" resume=1 $TRAIN_X ${TEACHER_X:-} && touch "$W/teacher.done"; }
# 2. the prompts: the test split's first NP captions
"$PY" -c "
import h5py, sys
t = h5py.File(sys.argv[1], 'r')['captions/text'][:int(sys.argv[2])]
open(sys.argv[3], 'w').write(''.join((x.decode() if isinstance(x, bytes) else x) + '\n' for x in t))
" "$W/compose_test.h5" "$NP" "$W/prompts.txt" || exit 1
EVAL="data=$W/compose_test.h5 evaluator=$W/evaluator reward=$W/reward"
# 3. the teacher rows
mkdir -p "$W/teacher_evals"
for steps in 50 4; do
  for seed in $SEEDS; do
    f="$W/teacher_evals/teacher${steps}_seed$seed"
    [ -f "${f}_eval.h5" ] && continue
    step nice -n 5 "$AMD" sample ckpt="$W/teacher" prompts="$W/prompts.txt" n="$NP" steps="$steps" cfg=2 \
      seed="$seed" out="${f}_samples.h5" threads=2
    step nice -n 5 "$AMD" eval samples="${f}_samples.h5" $EVAL out="${f}_eval.h5" threads=2
  done
done
# 4. the students
"$PY" - "$W" "$AMD" "$BUDGET" "$SEEDS" "$NP" "$PROMPTS" "$STUDENT_X" <<'PY' || exit 1
import json, sys
w, amd, budget, seeds, n, prompts, extra = sys.argv[1:8]
settings = {"reward.ckpt": f"{w}/reward", "data": f"{w}/compose_train.h5", "train.prompts": int(prompts),
            # held-out curves: the GenEval-like score and FD on the test split's first eval.n captions
            "eval.every": max(1, int(budget) // 4), "eval.n": min(int(n), 200), "eval.evaluator": f"{w}/evaluator",
            "eval.data": f"{w}/compose_test.h5"}
for kv in extra.split():
    k, v = kv.split("=", 1)
    settings[k] = v
spec = {
    "description": f"captioned canvases (issue 20), 1-step students of the caption teacher, EMA weights, "
                   f"{budget} steps, {prompts} prompts x K 4 per update, seeds {seeds}, {n} test captions "
                   "(benchmarks/compose_study.sh)",
    "amd": amd,
    "teacher": f"{w}/teacher",
    "distill": {"config": "jobs/compose_amd.cfg", "settings": settings},
    "methods": {m: {"method": m} for m in ("dmd", "dmd2", "dmdr", "amd")},
    "budgets": [int(budget)], "seeds": [int(s) for s in seeds.split()],
    "sample": {"n": int(n), "prompts": f"{w}/prompts.txt"},
    "eval": {"evaluator": f"{w}/evaluator", "reward": f"{w}/reward", "data": f"{w}/compose_test.h5"},
    "baseline": "dmd2",
    "metrics": ["geneval_overall", "geneval_single", "geneval_two", "geneval_counting", "geneval_position",
                "geneval_seen", "geneval_heldout", "fd", "reward"],
}
json.dump(spec, open(f"{w}/compose_s1.json", "w"), indent=1)
PY
step nice -n 5 "$PY" benchmarks/study.py "$W/compose_s1.json" --out "$W/study" --jobs "$JOBS" --threads "$THREADS" --nice 0
# 5. the table and the grids
step "$PY" benchmarks/compose_table.py "$W" --amd "$AMD" >"$W/compose_table.md"
cat "$W/compose_table.md"
