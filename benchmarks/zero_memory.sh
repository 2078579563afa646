#!/usr/bin/env bash
# Peak resident memory per rank at each ZeRO stage (issue 18), for every "RANKS:ZERO" pair of CASES,
# each rank under /usr/bin/time (-1 MB: a rank's line is missing); prints a markdown table of the
# largest rank's peak RSS beside amd's own start-up lines (its bytes per rank of parameters,
# gradients, moments and gathered buffers), to compare with DESIGN.md 7.2.1's model, and the log's
# per-step communication (comm_bytes, comm_s, when the binary logs them).
#   CMD=train: `amd train` of a DiT teacher of WIDTH x DEPTH (default 512 x 12, about 58 M
#     parameters) on Fashion-MNIST, STEPS steps of BATCH images.
#   CMD=distill: `amd distill` of TEACHER (a checkpoint of such a DiT, e.g. 2 steps of CMD=train)
#     with METHOD (dmd2, or amd with REWARD, a reward classifier's checkpoint: jobs/fmnist_reward.cfg),
#     STEPS steps of PROMPTS x K samples, 2 fake updates per generator update.
#   bash benchmarks/zero_memory.sh [DATA=data/fmnist_train.h5] [CASES="2:0 2:1 2:2 2:3 4:3"] [AMD=./amd]
#   CMD=distill METHOD=amd TEACHER=<run> REWARD=<run> bash benchmarks/zero_memory.sh
# Extra key=value settings for every run go in EXTRA (e.g. EXTRA="ema.decay=0").
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CMD=${CMD:-train} AMD=${AMD:-./amd}
DATA=${DATA:-data/fmnist_train.h5}
CASES=${CASES:-"1:0 2:0 2:1 2:2 2:3 4:3"}
WIDTH=${WIDTH:-512} DEPTH=${DEPTH:-12} HEADS=${HEADS:-8} STEPS=${STEPS:-2} BATCH=${BATCH:-8}
METHOD=${METHOD:-dmd2} TEACHER=${TEACHER:-} REWARD=${REWARD:-} PROMPTS=${PROMPTS:-4} K=${K:-2}
EXTRA=${EXTRA:-}
OUT=${OUT:-/tmp/zero_memory}
case $CMD in
  train)
    [ -f "$DATA" ] || { echo "zero_memory: no dataset $DATA (amd data fmnist)" >&2; exit 2; }
    args=(train jobs/fmnist_teacher.cfg data="$DATA" model.width="$WIDTH" model.depth="$DEPTH" model.heads="$HEADS"
          train.batch="$BATCH") ;;
  distill)
    [ -e "$TEACHER" ] || { echo "zero_memory: CMD=distill needs TEACHER=<checkpoint or run folder>" >&2; exit 2; }
    args=(distill method="$METHOD" teacher="$TEACHER" train.prompts="$PROMPTS" amd.K="$K" fake_per_gen=2)
    if [ -n "$REWARD" ]; then args+=(reward.ckpt="$REWARD"); fi ;;
  *) echo "zero_memory: CMD=$CMD: expected train or distill" >&2; exit 2 ;;
esac
rm -rf "$OUT" && mkdir -p "$OUT"
echo "| ranks | zero | peak RSS per rank, largest (MB) | comm_bytes per step (rank 0) | comm_s per step (rank 0) | amd's start-up lines (rank 0) |"
echo "|---|---|---|---|---|---|"
for c in $CASES; do
  p=${c%%:*} z=${c##*:}
  run="$OUT/np${p}_z$z" log="$OUT/np${p}_z$z.log"
  # shellcheck disable=SC2086 # EXTRA is a list of key=value words
  # each rank appends its own line (O_APPEND: whole lines, where a shared stdout interleaves them)
  mpirun -np "$p" --oversubscribe --mca btl self,vader /usr/bin/time -a -o "$OUT/np${p}_z$z.rss" -f "peak_rss_kb %M" \
    "$AMD" "${args[@]}" \
    run="$run" train.steps="$STEPS" log.every=1 ckpt.every=1000000 zero="$z" threads=1 $EXTRA >"$log" 2>&1 ||
    { echo "zero_memory: the run failed, see $log" >&2; exit 1; }
  rss=$(awk '/^peak_rss_kb/{if ($2 > m) m = $2; k++} END {printf "%.0f", k == p ? m / 1024 : -1}' p="$p" "$OUT/np${p}_z$z.rss")
  lines=$(grep "bytes per rank\|bytes on rank" "$log" | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g')
  comm=$("${PY:-/usr/bin/python3}" - "$run/log.h5" <<'EOF'
import sys, h5py
t = h5py.File(sys.argv[1], "r")["train"]
if "comm_bytes" in t:  # the last step: the first may carry start-up work
    print("%d | %.3f" % (t["comm_bytes"][-1], t["comm_s"][-1]))
else:
    print("- | -")
EOF
)
  echo "| $p | $z | $rss | $comm | $lines |"
  rm -rf "$run"
done
