#!/usr/bin/env bash
# gpu_check.sh: the GPU checks and benchmarks of the CUDA backend (issue 6) in one run, on a GPU
# machine, from the bundle that benchmarks/gpu_bundle.sh made here (.gpu/, carried there):
#   1. the card (nvidia-smi) and that every library resolves;
#   2. test_cuda: per-op conformance CUDA against CPU, identical Philox, whole DiT, mlp, classifier
#      and AMD distillation steps;
#   3. scenario_cuda: the CUDA binary end to end (device=cuda/auto, 2 ranks, sample, distill);
#   4. the DiT training step on the GPU against the cuBLAS sgemm ceiling, with the per-kernel
#      profile, at batch 64 and 256, and with TF32; sampling images/s of teacher and student step
#      counts; PyTorch on the same card (torch's own python3 there) at the same sizes; and, when the
#      bundle has one (BASE=), the baseline commit's step beside this one's.
#   5. compute-sanitizer's memcheck, racecheck, initcheck and synccheck over test_cuda, as time allows.
# summary.txt goes to $OUT (the device tool's folder; /tmp/gpu_check otherwise), and each part's
# whole output to detail.tar.gz beside it, packed again at each part's start (the device tool brings
# back at most 8 files, and what a killed run left). Each part has its own time limit so that one
# hang leaves the rest measured; together they stay under 10 minutes (the device tool's limit).
# The bundle's setup is benchmarks/gpu_env.sh.
#   bash benchmarks/gpu_check.sh [quick]      (quick: parts 1-3 and batch 64 only)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
D=$(mktemp -d /tmp/gpu_check_detail.XXXXXX)
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
quick=${1:-}
t_start=$(date +%s)
stamp() {
  tar -czf "$OUT/detail.tar.gz" -C "$D" .
  echo "[$(($(date +%s) - t_start)) s] $*" | tee -a "$OUT/summary.txt"
}

stamp "1. machine (bundle of commit $(cat "$G/commit")$([ -f "$G/base_commit" ] && echo ", baseline $(cat "$G/base_commit")"))"
{ nvidia-smi; nvidia-smi -L; echo "cuda libraries from:$cuda_dirs"; echo "moved aside:$moved"; echo "python3: $PY";
  LD_LIBRARY_PATH="$libpath" ldd "$G/real/amd" "$G/real/test_cuda" | grep -E "not found|cublas|cudart" ; } \
  >"$D/machine.txt" 2>&1
grep -m1 -E "^GPU 0" "$D/machine.txt" | tee -a "$OUT/summary.txt"
grep "not found" "$D/machine.txt" | sort -u | tee -a "$OUT/summary.txt"

stamp "2. test_cuda"
timeout 120 "$G/bin/test_cuda" >"$D/test_cuda.txt" 2>&1
echo "test_cuda exit $?: $(grep -c '^PASS' "$D/test_cuda.txt") passed, $(grep -c '^FAIL' "$D/test_cuda.txt") failed," \
  "$(grep -c '^SKIP' "$D/test_cuda.txt") skipped" | tee -a "$OUT/summary.txt"
grep -E "^(FAIL|SKIP)" "$D/test_cuda.txt" | tee -a "$OUT/summary.txt"

stamp "3. scenario_cuda"
CUDA_AMD="$G/bin/amd" AMD="$G/bin/amd" PY="$PY" MPIRUN="$G/bin/mpirun --oversubscribe" timeout 100 bash tests/scenario_cuda.sh /tmp/gpu_scenario >"$D/scenario_cuda.txt" 2>&1
echo "scenario_cuda exit $?: $(grep -c '^PASS' "$D/scenario_cuda.txt") passed, $(grep -c '^FAIL' "$D/scenario_cuda.txt") failed" |
  tee -a "$OUT/summary.txt"
grep -E "^FAIL" "$D/scenario_cuda.txt" | cut -c1-300 | tee -a "$OUT/summary.txt"

batches="64 256"
[ "$quick" = quick ] && batches=64
for B in $batches; do
  stamp "4. DiT step on the GPU, batch $B (C, then PyTorch)"
  timeout 60 "$G/bin/dit_speed" device=cuda batch=$B steps=20 sample=1 >"$D/dit_cuda_b$B.txt" 2>&1
  grep -E "^RESULT" "$D/dit_cuda_b$B.txt" | tee -a "$OUT/summary.txt"
  # the per-kernel table, in a run of its own: the profiler waits for each op, which the timed
  # steps above must not pay
  AMD_PROFILE=1 timeout 30 "$G/bin/dit_speed" device=cuda batch=$B steps=5 ceiling=0 >"$D/dit_cuda_profile_b$B.txt" 2>&1
  AMD_TF32=1 timeout 30 "$G/bin/dit_speed" device=cuda batch=$B steps=20 ceiling=0 >"$D/dit_cuda_tf32_b$B.txt" 2>&1
  grep -E "^RESULT impl" "$D/dit_cuda_tf32_b$B.txt" | sed 's/^RESULT/RESULT_TF32/' | tee -a "$OUT/summary.txt"
  if [ -x "$G/real/dit_speed_base" ]; then # the baseline's step, then the current one's again, on this card
    for v in dit_speed_base dit_speed; do
      timeout 30 "$G/bin/$v" device=cuda batch=$B steps=20 ceiling=0 >"$D/${v}_again_b$B.txt" 2>&1
      grep -E "^RESULT impl" "$D/${v}_again_b$B.txt" | sed "s/^RESULT/RESULT_$v/" | tee -a "$OUT/summary.txt"
    done
  fi
  timeout 60 "$PY" benchmarks/dit_speed_torch.py device=cuda batch=$B steps=20 >"$D/dit_torch_b$B.txt" 2>&1
  grep -E "^RESULT|Error|error" "$D/dit_torch_b$B.txt" | tail -3 | tee -a "$OUT/summary.txt"
done
# 5. compute-sanitizer over test_cuda, in the time that is left (it runs the kernels many times
# slower): memcheck (out-of-bounds and misaligned accesses, CUDA API errors, leaks), racecheck
# (shared-memory races in the block reductions), initcheck (device memory read before written),
# synccheck (barriers that not every thread reaches)
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
for tool in memcheck racecheck initcheck synccheck; do
  left=$((420 - ($(date +%s) - t_start)))
  [ "$quick" != quick ] && [ -n "$CS" ] && [ "$left" -gt 30 ] || break
  stamp "5. compute-sanitizer $tool of test_cuda (limit $left s)"
  extra=""
  [ $tool = memcheck ] && extra="--leak-check full"
  LD_LIBRARY_PATH="$libpath" timeout "$left" "$CS" --tool $tool $extra "$G/real/test_cuda" >"$D/sanitizer_$tool.txt" 2>&1
  echo "$tool exit $?: $(grep -m1 -E "ERROR SUMMARY|RACECHECK SUMMARY" "$D/sanitizer_$tool.txt")," \
    "$(grep -c '^PASS' "$D/sanitizer_$tool.txt") tests passed" | tee -a "$OUT/summary.txt"
  grep -E "^(FAIL|SKIP)" "$D/sanitizer_$tool.txt" | head -5 | tee -a "$OUT/summary.txt"
done
stamp "done"
