#!/usr/bin/env bash
# Peak resident memory per rank of `amd train` at each ZeRO stage (issue 18): a DiT teacher of
# WIDTH x DEPTH (default 512 x 12, about 56 M parameters) on Fashion-MNIST, STEPS steps of BATCH
# images, for every "RANKS:ZERO" pair of CASES, each rank under /usr/bin/time; prints a markdown
# table of the largest rank's peak RSS beside amd's own start-up line (its bytes per rank of
# parameters, gradients, moments and gathered buffers), to compare with DESIGN.md 7.2.1's model.
#   bash benchmarks/zero_memory.sh [DATA=data/fmnist_train.h5] [CASES="2:0 2:1 2:2 2:3 4:3"]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
DATA=${DATA:-data/fmnist_train.h5}
CASES=${CASES:-"1:0 2:0 2:1 2:2 2:3 4:3"}
WIDTH=${WIDTH:-512} DEPTH=${DEPTH:-12} HEADS=${HEADS:-8} STEPS=${STEPS:-2} BATCH=${BATCH:-8}
OUT=${OUT:-/tmp/zero_memory}
[ -f "$DATA" ] || { echo "zero_memory: no dataset $DATA (amd data fmnist)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT"
echo "| ranks | zero | peak RSS per rank, largest (MB) | amd's start-up line (teacher, rank 0) |"
echo "|---|---|---|---|"
for c in $CASES; do
  p=${c%%:*} z=${c##*:}
  log="$OUT/np${p}_z$z.log"
  mpirun -np "$p" --oversubscribe --mca btl self,vader /usr/bin/time -f "peak_rss_kb %M" ./amd train \
    jobs/fmnist_teacher.cfg data="$DATA" run="$OUT/np${p}_z$z" model.width="$WIDTH" model.depth="$DEPTH" \
    model.heads="$HEADS" train.steps="$STEPS" train.batch="$BATCH" log.every=1 ckpt.every=1000000 zero="$z" \
    threads=1 >"$log" 2>&1 || { echo "zero_memory: the run failed, see $log" >&2; exit 1; }
  rss=$(awk '/^peak_rss_kb/{if ($2 > m) m = $2} END {printf "%.0f", m / 1024}' "$log")
  line=$(grep -m1 "bytes per rank" "$log" | sed 's/^ *//')
  echo "| $p | $z | $rss | $line |"
  rm -rf "$OUT/np${p}_z$z"
done
