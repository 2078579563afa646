#!/usr/bin/env bash
# ZeRO communication of `amd train` (issue 18), from the log's per-step columns: for every
# "RANKS:ZERO:PREFETCH:WIDTH" of CASES, a DiT teacher of WIDTH x DEPTH on Fashion-MNIST runs STEPS
# steps of BATCH images, each rank under /usr/bin/time. Prints a markdown table: parameters n, the
# largest rank's peak RSS, the bytes rank 0 moved per step (the log's comm_bytes) against the cost
# model of DESIGN.md 7.2.1 (computed here from n and p: 2 collectives a step at zero=0 and 2, 3 at
# zero=1 and 3, each 4 (n - s) + 4 s (p - 1) bytes for rank 0's shard s), the step time and the
# seconds inside the collectives (means over the steps after the first, which carries start-up
# waits), the communication share, and at zero=3 the unit gathers' seconds in flight and waited for
# (from amd's last line). Prefetch 0 sets zero.prefetch=false: the share of the gather time the
# prefetch hides is 1 - comm_s(prefetch 1) / comm_s(prefetch 0). With CAP_MB, a row also says
# whether the peak fits under that many MB per rank (the largest DiT under a memory cap).
#   DATA=<fmnist train.h5> CASES="2:2:1:512 2:3:1:512 2:3:0:512" bash benchmarks/zero_comm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
AMD=${AMD:-./amd} PY=${PY:-/usr/bin/python3}
DATA=${DATA:-data/fmnist_train.h5}
CASES=${CASES:-"2:2:1:512 2:3:1:512 2:3:0:512"}
DEPTH=${DEPTH:-12} HEADS=${HEADS:-8} STEPS=${STEPS:-4} BATCH=${BATCH:-8} CAP_MB=${CAP_MB:-}
OUT=${OUT:-/tmp/zero_comm}
[ -f "$DATA" ] || { echo "zero_comm: no dataset $DATA (amd data fmnist)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT"
echo "| ranks | zero | prefetch | width x depth | n | peak RSS per rank, largest (MB)${CAP_MB:+ | fits $CAP_MB MB} | comm_bytes per step | cost model | step s | comm_s per step | comm share | gathers in flight / waited, s per step |"
echo "|---|---|---|---|---|---|${CAP_MB:+---|}---|---|---|---|---|---|"
for c in $CASES; do
  IFS=: read -r p z pf w <<<"$c"
  name="np${p}_z${z}_pf${pf}_w$w" prefetch=true
  [ "$pf" = 0 ] && prefetch=false
  # each rank appends its own line (O_APPEND: whole lines, where a shared stdout interleaves them)
  mpirun -np "$p" --oversubscribe --mca btl self,vader /usr/bin/time -a -o "$OUT/$name.rss" -f "peak_rss_kb %M" "$AMD" train \
    jobs/fmnist_teacher.cfg data="$DATA" run="$OUT/$name" model.width="$w" model.depth="$DEPTH" model.heads="$HEADS" \
    train.steps="$STEPS" train.batch="$BATCH" log.every=1 ckpt.every=1000000 zero="$z" zero.prefetch=$prefetch \
    threads=1 >"$OUT/$name.log" 2>&1 || { echo "zero_comm: the run failed, see $OUT/$name.log" >&2; exit 1; }
  rss=$(awk '/^peak_rss_kb/{if ($2 > m) m = $2; k++} END {printf "%.0f", k == p ? m / 1024 : -1}' p="$p" "$OUT/$name.rss")
  gathers=$(sed -n 's/.*unit gathers \([0-9.]*\) s in flight, \([0-9.]*\) s waited for.*/\1 \/ \2/p' "$OUT/$name.log")
  row=$("$PY" - "$OUT/$name/log.h5" "$OUT/$name.log" "$p" "$z" <<'EOF'
import re, sys, h5py, numpy as np
log, out, p, z = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
n = int(re.search(r"model dit: (\d+) parameters", open(out).read()).group(1))
t = h5py.File(log, "r")["train"]
s = min((n + 15) // 16 // p * 16, n)  # rank 0's shard (mpi/zero.c: zero_shard)
model = {0: 2, 1: 3, 2: 2, 3: 3}[z] * (4 * (n - s) + 4 * s * (p - 1))
step = np.diff(t["time"][:]).mean()  # steps 2.. (the first row's time includes start-up)
comm = t["comm_s"][1:].mean()
print("%d | %d | %d | %.2f | %.3f | %.0f%%" % (n, t["comm_bytes"][-1], model, step, comm, 100 * comm / step))
EOF
)
  n=${row%% *} rest=${row#* | }
  fits=""
  [ -n "$CAP_MB" ] && fits=" $([ "$rss" -le "$CAP_MB" ] && echo yes || echo no) |"
  echo "| $p | $z | $pf | $w x $DEPTH | $n | $rss |$fits $rest | ${gathers:--} |"
  rm -rf "${OUT:?}/$name"
done
