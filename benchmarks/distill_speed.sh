#!/usr/bin/env bash
# distill_speed.sh: amd's distillation step against its PyTorch peer (benchmarks/distill_torch.py),
# back to back on this machine at the same thread count: dmd2 and amd with the Fashion-MNIST
# settings of jobs/fmnist_*.cfg (DiT width 128, depth 4, 4 heads, patch 4, temb 128; reward
# classifier width 64, depth 2; 16 prompts x K 4; 2 fake updates per generator update; guidance 2;
# S = 1). Reports ms per generator update with its fake updates (the median over the timed steps),
# images per second (the global batch of 64 per step) and the peak resident memory of each process,
# as a markdown table.
#   benchmarks/distill_speed.sh [threads=1,2] [steps=20] [warmup=3] [methods=dmd2,amd] [precision=fp32]
#   (repository root). precision=bf16: amd's precision=bf16 (bf16 GEMM operands, float32 sums: AMX
#   tiles where the processor has them) against the peer under torch.autocast(cpu, bfloat16).
# The networks: a teacher and a reward classifier of those sizes trained one step on 512 random
# 28 x 28 images (the step's cost does not depend on the weights); both sides load the same
# checkpoints. amd runs with ema.decay=0 (the peer keeps no EMA), one rank, no checkpoint before the
# end; amd's times are the /train log's `time` column (seconds of training per row). Peak memory:
# the largest resident set of each process (getrusage of the child), set-up included.
# Needs `make all` and /usr/bin/python3 with torch, h5py and numpy (Debian: python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."

threads_list=1,2 steps=20 warmup=3 methods=dmd2,amd precision=fp32
for a in "$@"; do
  case "$a" in
    threads=*) threads_list=${a#threads=} ;;
    steps=*) steps=${a#steps=} ;;
    warmup=*) warmup=${a#warmup=} ;;
    methods=*) methods=${a#methods=} ;;
    precision=fp32 | precision=bf16) precision=${a#precision=} ;;
    *) echo "distill_speed.sh: unknown argument '$a' (threads=, steps=, warmup=, methods=, precision=fp32|bf16)" >&2; exit 2 ;;
  esac
done
amd=$PWD/amd
python=/usr/bin/python3
[ -x "$amd" ] || { echo "distill_speed.sh: $amd missing; run 'make all' first" >&2; exit 1; }
"$python" -c "import torch, h5py" 2>/dev/null || { echo "distill_speed.sh: $python cannot import torch and h5py (apt-get install python3-torch python3-h5py)" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# the command's largest resident set in MB as the last line of stderr: "peak_rss_mb N"
peak() {
  "$python" -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:])
print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0), file=sys.stderr)
sys.exit(r.returncode)' "$@"
}

"$python" - "$out" <<'PYEOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File(sys.argv[1] + "/raw.h5", "w") as f:
    f["images"] = rng.integers(0, 256, (512, 1, 28, 28)).astype(np.uint8)
    f["labels"] = rng.integers(0, 10, 512)
PYEOF
"$amd" data import in="$out/raw.h5" out="$out/data.h5" dataset=/images labels_dataset=/labels classes=10 >/dev/null
"$amd" train data="$out/data.h5" run="$out/teacher" model.width=128 model.depth=4 model.heads=4 model.patch=4 \
  model.temb_dim=128 train.steps=1 train.batch=8 threads=1 >"$out/teacher.log" 2>&1
"$amd" train task=reward data="$out/data.h5" test_data="$out/data.h5" run="$out/reward" model.width=64 model.depth=2 \
  model.heads=4 model.patch=4 train.steps=1 train.batch=8 threads=1 >"$out/reward.log" 2>&1
teacher=$out/teacher/ckpt_00000001.h5 reward=$out/reward/ckpt_00000001.h5
total=$((warmup + steps))
echo "== distill_speed: $steps timed steps after $warmup, threads $threads_list, methods $methods, precision $precision; uptime: $(uptime)"

rows=()
for threads in ${threads_list//,/ }; do
  # one pool each of the same size: OpenMP (amd's loops and OpenBLAS) and torch's intra-op threads
  export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
  for m in ${methods//,/ }; do
    run=$out/run_${m}_$threads
    peak "$amd" distill teacher="$teacher" reward.ckpt="$reward" method="$m" run="$run" train.prompts=16 amd.K=4 \
      fake_per_gen=2 guidance=2 train.steps=$total log.every=$total ckpt.every=$total ema.decay=0 threads="$threads" \
      precision="$precision" >"$out/amd_$m.log" 2>"$out/amd_$m.err" || { cat "$out/amd_$m.err" >&2; exit 1; }
    c_peak=$(sed -n 's/^peak_rss_mb //p' "$out/amd_$m.err")
    c_ms=$("$python" -c "import h5py, numpy as np, sys
t = h5py.File(sys.argv[1], 'r')['train/time'][:]
print('%.2f' % (1e3 * np.median(np.diff(t)[max(int(sys.argv[2]) - 1, 0):])))" "$run/log.h5" "$warmup")
    peak "$python" benchmarks/distill_torch.py --time "$teacher" "$reward" method="$m" threads="$threads" steps="$steps" \
      warmup="$warmup" precision="$precision" >"$out/torch_$m.log" 2>"$out/torch_$m.err" || { cat "$out/torch_$m.err" >&2; exit 1; }
    t_peak=$(sed -n 's/^peak_rss_mb //p' "$out/torch_$m.err")
    t_ms=$(grep '^RESULT' "$out/torch_$m.log" | tr ' ' '\n' | sed -n 's/^ms_step=//p')
    echo "$m, $threads threads: amd $c_ms ms, PyTorch $t_ms ms per generator update"
    rows+=("$(awk -v m="$m" -v th="$threads" -v cm="$c_ms" -v tm="$t_ms" -v cp="$c_peak" -v tp="$t_peak" 'BEGIN {
      printf "| %s | %d | %.1f | %.1f | %.3f | %.1f | %.1f | %.0f | %.0f |", m, th, cm, tm, tm / cm, 64000 / cm, 64000 / tm, cp, tp }')")
    echo "RESULT method=$m threads=$threads precision=$precision amd_ms_step=$c_ms torch_ms_step=$t_ms amd_peak_mb=$c_peak torch_peak_mb=$t_peak"
  done
done
echo
echo "| method | threads | amd ms/update | PyTorch ms/update | amd speed-up | amd images/s | PyTorch images/s | amd peak MB | PyTorch peak MB |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "uptime after: $(uptime)"
