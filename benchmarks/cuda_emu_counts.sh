#!/usr/bin/env bash
# cuda_emu_counts.sh: what one step asks of the GPU, counted on the CPU emulator of the CUDA
# backend (make CUDA_EMU=1; CUDA_EMU_STATS): kernel launches, cuBLAS GEMMs, copies each way, host
# waits for the stream, device allocations; then the launches of a step by kernel. Each run is made
# twice, with N and 2N steps, and the difference divided by N is the per-step figure, so setup
# (loading, allocation, checkpoints) drops out. Counts, not timings: the emulator says nothing about
# speed. Prints two Markdown tables.
#   bash benchmarks/cuda_emu_counts.sh [scratch folder]      (about 45 s on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-benchmarks/out/cuda_emu_counts}
E=build-cuda-emu/amd
[ -x "$E" ] || make --no-print-directory CUDA_EMU=1 all >/dev/null
rm -rf "$S" && mkdir -p "$S"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
TOY="model.width=16 model.depth=1 model.temb_dim=8 train.batch=32 threads=1 device=cuda"
"$E" data toy2d out="$S/toy.h5" n=2000 modes=4 classes=2 >/dev/null

run_pair() { # name N command...: runs the command with train.steps=N and 2N
  local name=$1 n=$2; shift 2
  for k in 1 2; do
    local steps=$((k * n))
    CUDA_EMU_STATS="$S/$name.$k.stats" "$@" train.steps=$steps log.every=$steps ckpt.every=$steps \
      run="$S/$name.$k" >"$S/$name.$k.out" 2>&1 || { echo "$name failed: $(tail -c 300 "$S/$name.$k.out")"; exit 1; }
  done
  echo "$name $n" >>"$S/pairs"
}

run_pair toy_teacher 10 "$E" train data="$S/toy.h5" $TOY
for m in dmd dmd2 dmdr amd; do
  run_pair "toy_$m" 4 "$E" distill teacher="$S/toy_teacher.2" method=$m train.prompts=8 amd.K=4 threads=1 device=cuda
done
if [ -f data/fmnist_train.h5 ]; then
  run_pair dit_teacher 1 "$E" train jobs/fmnist_teacher.cfg train.batch=8 threads=1 device=cuda
  # distillation of a dit, with the classifier reward for dmdr and amd: a tiny teacher and reward
  # network of two steps each on the CPU backend (counts need no quality)
  IMG="model.width=32 model.depth=1 model.heads=2 model.patch=7 threads=1 optim.warmup=0 device=cpu"
  "$E" train data=data/fmnist_train.h5 run="$S/img_teacher" $IMG model.temb_dim=32 train.steps=2 train.batch=8 \
    ckpt.every=2 >"$S/img_teacher.out" 2>&1
  "$E" train task=reward data=data/fmnist_train.h5 test_data=data/fmnist_test.h5 run="$S/img_reward" $IMG \
    train.steps=2 train.batch=8 ckpt.every=2 >"$S/img_reward.out" 2>&1
  for m in dmd dmd2 dmdr amd; do
    reward=""
    case $m in dmdr | amd) reward="$S/img_reward" ;; esac
    run_pair "dit_$m" 2 "$E" distill teacher="$S/img_teacher" reward.ckpt="$reward" method=$m train.prompts=4 amd.K=2 \
      threads=1 device=cuda
  done
fi

/usr/bin/python3 - "$S" <<'PY'
import sys
S = sys.argv[1]
def stats(p):
    return {k: int(v) for k, v in (l.split() for l in open(p))}
keys = ("launch", "gemm", "memcpy_h2d", "memcpy_d2h", "memcpy_d2d", "host_wait")
print("| run | steps compared | " + " | ".join(k + "/step" for k in keys) + " | cudaMalloc/step | cudaMalloc total |")
print("|---|---|" + "---|" * (len(keys) + 2))
for line in open(S + "/pairs"):
    name, n = line.split(); n = int(n)
    a, b = stats(f"{S}/{name}.1.stats"), stats(f"{S}/{name}.2.stats")
    per = [(b[k] - a[k]) / n for k in keys]
    print(f"| {name} | {n} vs {2 * n} | " + " | ".join(f"{x:g}" for x in per)
          + f" | {(b['cudaMalloc'] - a['cudaMalloc']) / n:g} | {a['cudaMalloc']} |")
# where the launches go: the kernels of one step, most launched first, for the runs that have them
print("\n| run | launches/step by kernel (share of the step's launches) |\n|---|---|")
for line in open(S + "/pairs"):
    name, n = line.split(); n = int(n)
    if name not in ("dit_teacher", "dit_amd", "toy_amd"):
        continue
    a, b = stats(f"{S}/{name}.1.stats"), stats(f"{S}/{name}.2.stats")
    per = {k[len("launch."):]: (b[k] - a.get(k, 0)) / n for k in b if k.startswith("launch.")}
    total = sum(per.values())
    top = sorted(((v, k.replace("_kernel", "")) for k, v in per.items() if v > 0), reverse=True)[:8]
    rest = total - sum(v for v, _ in top)
    print(f"| {name} | " + ", ".join(f"{k} {v:g} ({100 * v / total:.0f}%)" for v, k in top)
          + f", others {rest:g} ({100 * rest / total:.0f}%) |")
PY
