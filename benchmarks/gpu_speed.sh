#!/usr/bin/env bash
# gpu_speed.sh: issue 19's GPU table in one run on one card. amd against PyTorch on the same GPU:
#   teacher  the DiT training step of dit_speed (width 256, depth 6, 4 heads, patch 4, temb 256,
#            28 x 28, batch 256): dit_speed against dit_speed_torch.py;
#   dmd2, amd  the distillation step with the Fashion-MNIST settings of distill_speed.sh (DiT width
#            128, depth 4, 4 heads, patch 4, temb 128; reward classifier width 64, depth 2; 16
#            prompts x K 4; 2 fake updates per generator update; guidance 2; S = 1): amd distill
#            against distill_torch.py, ms per generator update with its fake updates.
# amd in precision fp32, tf32 and bf16, each with cuda.graphs off and on; PyTorch eager fp32, bf16
# autocast, and bf16 autocast under torch.compile (last, as its compilation takes the most time).
# First, on a GPU, test_cuda of the same build (its summary lines: the bf16 bounds, the fused
# attention against the unfused path, the graph replays).
# One table with every row's ms, images/s and the speed-up of amd's rows over each PyTorch row,
# all from this run (benchmarks/gpu_speed_table.py), to $OUT/table.md; each run's output to
# $OUT/detail.tar.gz, packed again after each run, so a run killed at its limit leaves the rest.
# Every run has its own time limit and a run that would start after LIMIT seconds (default 450) is
# skipped and says so: the whole stays under 8 minutes on an H100.
#   bash benchmarks/gpu_speed.sh            on the GPU machine, from the bundle of gpu_bundle.sh
#                                           (carried as .gpu; nothing is built there)
#   DRY=1 bash benchmarks/gpu_speed.sh      here: every step at tiny sizes, amd on the CUDA emulator
#                                           (build-cuda-emu/, `make CUDA_EMU=1 all
#                                           build-cuda-emu/benchmarks/dit_speed`), PyTorch on the
#                                           CPU; checks the commands, the parsing and the table, not
#                                           speed (torch.compile rows need PyTorch 2)
# The networks: a teacher and a reward classifier of those sizes trained one step on 512 random
# 28 x 28 images (a step's cost does not depend on the weights); amd and PyTorch load the same
# checkpoints. amd distills with ema.decay=0 (the peer keeps no EMA), one rank; its times are the
# /train log's `time` column, the median step after the warm-up.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=${DRY:-0}
OUT=${OUT:-/tmp/gpu_speed}
LIMIT=${LIMIT:-450}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/gpu_speed_work.XXXXXX)
D=$W/detail
mkdir -p "$D"
rows=$OUT/rows.txt
: >"$rows"
: >"$OUT/summary.txt"
t_start=$(date +%s)

if [ "$DRY" = 1 ]; then
  AMD=$PWD/build-cuda-emu/amd DIT=$PWD/build-cuda-emu/benchmarks/dit_speed PY=/usr/bin/python3 TDEV=cpu
  [ -x "$AMD" ] && [ -x "$DIT" ] || { echo "gpu_speed.sh DRY=1: needs make CUDA_EMU=1 all build-cuda-emu/benchmarks/dit_speed" >&2; exit 1; }
  TEACHER="img=28 patch=7 width=32 depth=1 heads=2 temb=32 batch=4"
  NET="model.width=32 model.depth=1 model.heads=2 model.patch=7 model.temb_dim=32"
  RNET="model.width=16 model.depth=1 model.heads=2 model.patch=7"
  PROMPTS=2 KK=2 STEPS=2 WARMUP=2 THREADS=1 TO=300 TO_COMPILE=300
else
  source benchmarks/gpu_env.sh
  AMD=$G/bin/amd DIT=$G/bin/dit_speed TDEV=cuda
  TEACHER="img=28 patch=4 width=256 depth=6 heads=4 temb=256 batch=256"
  NET="model.width=128 model.depth=4 model.heads=4 model.patch=4 model.temb_dim=128"
  RNET="model.width=64 model.depth=2 model.heads=4 model.patch=4"
  PROMPTS=16 KK=4 STEPS=20 WARMUP=3 THREADS=4 TO=60 TO_COMPILE=150
  nvidia-smi -L | tee -a "$OUT/summary.txt"
fi
"$PY" -c "import torch, h5py, numpy" || { echo "gpu_speed.sh: $PY cannot import torch, h5py and numpy" >&2; exit 1; }
echo "gpu_speed: commit $(git rev-parse --short HEAD 2>/dev/null || cat .gpu/commit), torch $("$PY" -c 'import torch; print(torch.__version__)')" |
  tee -a "$OUT/summary.txt"

# may_run WORKLOAD RUN NEED: whether a run expected to take NEED seconds still fits in LIMIT (else
# its row says "skipped"); packs what ran so far. limit TO: the run's time limit, TO or what is left
# of LIMIT + 20 s, whichever is less
may_run() {
  tar -czf "$OUT/detail.tar.gz" -C "$D" .
  local used=$(($(date +%s) - t_start))
  if [ $((used + $3)) -gt "$LIMIT" ]; then
    echo "[$used s] skip $1 $2: past the time limit" | tee -a "$OUT/summary.txt"
    echo "ROW $1 $2 skipped" >>"$rows"
    return 1
  fi
  echo "[$used s] $1 $2" | tee -a "$OUT/summary.txt"
}
limit() {
  local left=$((LIMIT + 20 - ($(date +%s) - t_start)))
  left=$((left < 1 ? 1 : left)) # timeout 0 would mean no limit
  echo $(($1 < left ? $1 : left))
}
field() { grep '^RESULT' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# row WORKLOAD RUN MS IMAGES_PER_S [GFLOP_S FRAC_OF_PEAK]: one line of the table (no ms: failed)
row() { echo "ROW $1 $2 ${3:-failed} ${4:-0} ${5:-0} ${6:-0}" >>"$rows"; }
has_compile() { "$PY" -c "import torch, sys; sys.exit(not hasattr(torch, 'compile'))"; }

# ---- the runs ----------------------------------------------------------------------------------
# amd's DiT training step in precision $1, graphs $2 (the GEMM ceilings measured in fp32 and bf16)
amd_teacher() {
  local prec=$1 g=$2 label=amd-$1$([ "$2" = 1 ] && echo +graphs) ceiling=0 f=$D/teacher_amd_$1_g$2.txt
  may_run teacher "$label" 15 || return
  [ "$g" = 0 ] && [ "$prec" != tf32 ] && [ "$DRY" != 1 ] && ceiling=1
  timeout "$(limit "$TO")" "$DIT" device=cuda precision=$prec graphs=$g $TEACHER steps=$((STEPS + 10)) \
    warmup=$WARMUP ceiling=$ceiling threads=$THREADS >"$f" 2>&1
  row teacher "$label" "$(field "$f" ms_step)" "$(field "$f" images_s)" "$(field "$f" gflop_s)" \
    "$([ $ceiling = 1 ] && field "$f" frac_peak)"
}

# PyTorch's: precision $1, torch.compile $2
torch_teacher() {
  local label=torch-$1$([ "$2" = 1 ] && echo +compile) to=$([ "$2" = 1 ] && echo "$TO_COMPILE" || echo "$TO")
  local f=$D/teacher_torch_$1_c$2.txt
  may_run teacher "$label" $([ "$2" = 1 ] && echo 90 || echo 20) || return
  if [ "$2" = 1 ] && ! has_compile; then
    echo "ROW teacher $label n/a" >>"$rows"
    return
  fi
  timeout "$(limit "$to")" "$PY" benchmarks/dit_speed_torch.py device=$TDEV precision=$1 compile=$2 $TEACHER \
    steps=$((STEPS + 10)) warmup=$WARMUP threads=$THREADS >"$f" 2>&1
  row teacher "$label" "$(field "$f" ms_step)" "$(field "$f" images_s)"
}

# the distillation's networks: a teacher and a reward classifier trained one step on random images
distill_networks() {
  "$PY" - "$W" <<'PYEOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File(sys.argv[1] + "/raw.h5", "w") as f:
    f["images"] = rng.integers(0, 256, (512, 1, 28, 28)).astype(np.uint8)
    f["labels"] = rng.integers(0, 10, 512)
PYEOF
  "$AMD" data import in="$W/raw.h5" out="$W/data.h5" dataset=/images labels_dataset=/labels classes=10 &&
    "$AMD" train data="$W/data.h5" run="$W/teacher" $NET train.steps=1 train.batch=8 threads=$THREADS device=cuda &&
    "$AMD" train task=reward data="$W/data.h5" test_data="$W/data.h5" run="$W/reward" $RNET train.steps=1 \
      train.batch=8 threads=$THREADS device=cuda
}

# amd's distillation step: method $1, precision $2, graphs $3
amd_distill() {
  local label=amd-$2$([ "$3" = 1 ] && echo +graphs) run=$W/run_$1_$2_$3 f=$D/$1_amd_$2_g$3.txt ms
  may_run "$1" "$label" 10 || return
  timeout "$(limit "$TO")" "$AMD" distill teacher="$teacher" reward.ckpt="$reward" method=$1 run="$run" \
    train.prompts=$PROMPTS amd.K=$KK fake_per_gen=2 guidance=2 train.steps=$((WARMUP + STEPS)) \
    log.every=$((WARMUP + STEPS)) ckpt.every=$((WARMUP + STEPS)) ema.decay=0 threads=$THREADS device=cuda \
    precision=$2 cuda.graphs=$3 >"$f" 2>&1
  ms=$("$PY" -c "import h5py, numpy as np, sys
t = h5py.File(sys.argv[1], 'r')['train/time'][:]
print('%.3f' % (1e3 * np.median(np.diff(t)[max(int(sys.argv[2]) - 1, 0):])))" "$run/log.h5" "$WARMUP" 2>>"$f")
  row "$1" "$label" "$ms" "$(awk -v ms="$ms" -v b=$((PROMPTS * KK)) 'BEGIN { if (ms > 0) printf "%.1f", b * 1000 / ms }')"
}

# PyTorch's: method $1, precision $2, torch.compile $3
torch_distill() {
  local label=torch-$2$([ "$3" = 1 ] && echo +compile) to=$([ "$3" = 1 ] && echo "$TO_COMPILE" || echo "$TO")
  local f=$D/$1_torch_$2_c$3.txt
  may_run "$1" "$label" $([ "$3" = 1 ] && echo 90 || echo 20) || return
  if [ "$3" = 1 ] && ! has_compile; then
    echo "ROW $1 $label n/a" >>"$rows"
    return
  fi
  timeout "$(limit "$to")" "$PY" benchmarks/distill_torch.py --time "$teacher" "$reward" method=$1 prompts=$PROMPTS \
    K=$KK fake_per_gen=2 guidance=2 steps=$STEPS warmup=$WARMUP threads=$THREADS device=$TDEV precision=$2 \
    compile=$3 >"$f" 2>&1
  row "$1" "$label" "$(field "$f" ms_step)" "$(field "$f" images_s)"
}

# first this build's conformance on the card (bf16 GEMMs, the fused attention and graphs have their
# cases there), then amd and eager PyTorch, torch.compile (the slowest to start) last
if [ "$DRY" != 1 ]; then
  may_run conformance test_cuda 30 &&
    { timeout "$(limit 90)" "$G/bin/test_cuda" >"$D/test_cuda.txt" 2>&1
      echo "test_cuda exit $?: $(grep -c '^PASS' "$D/test_cuda.txt") passed, $(grep -c '^FAIL' "$D/test_cuda.txt") failed" |
        tee -a "$OUT/summary.txt"
      grep -E "^FAIL|gemm bf16 NN 40x48x256|dit bf16|attention (backward )?fused vs unfused B 2 T 49 NH 4 hs 64 \[out 0\]|graph" \
        "$D/test_cuda.txt" | head -20 | tee -a "$OUT/summary.txt"; }
fi
for prec in fp32 tf32 bf16; do
  for g in 0 1; do amd_teacher $prec $g; done
done
torch_teacher fp32 0
torch_teacher bf16 0
teacher=$W/teacher/ckpt_00000001.h5 reward=$W/reward/ckpt_00000001.h5
if may_run distillation networks 20 && distill_networks >"$D/networks.txt" 2>&1; then
  for m in dmd2 amd; do
    for prec in fp32 tf32 bf16; do
      for g in 0 1; do amd_distill $m $prec $g; done
    done
    torch_distill $m fp32 0
    torch_distill $m bf16 0
  done
  torch_teacher bf16 1
  for m in dmd2 amd; do torch_distill $m bf16 1; done
else
  echo "gpu_speed: no distillation rows (networks not made: $(tail -c 300 "$D/networks.txt" 2>/dev/null))" | tee -a "$OUT/summary.txt"
  torch_teacher bf16 1
fi
tar -czf "$OUT/detail.tar.gz" -C "$D" .
"$PY" benchmarks/gpu_speed_table.py "$rows" >"$OUT/table.md"
tee -a "$OUT/summary.txt" <"$OUT/table.md"
echo "[$(($(date +%s) - t_start)) s] done" | tee -a "$OUT/summary.txt"
rm -rf "$W"
