#!/usr/bin/env bash
# benchmarks/dit_speed's gemm_only=1 (the step's GEMMs alone, every other op skipped: the floor of
# the teacher step that no fusion goes below; benchmarks/RESULTS.md, "The step's GEMMs alone") on a
# tiny DiT, seconds: the mode runs the same GEMM FLOPs as the full step (the profiler counts them
# by the calls, so a step that skipped its GEMMs would fail here) and prints its RESULT line.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
bin=build/benchmarks/dit_speed
tiny=(img=8 patch=4 width=32 depth=2 heads=2 temb=32 batch=4 steps=2 warmup=1 ceiling=0 threads=1)
if ! OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$bin" "${tiny[@]}" gemm_only=1 >"$S/on.txt" 2>&1; then
  fail gemm_only_runs "dit_speed gemm_only=1 failed: $(tail -3 "$S/on.txt")"
else
  pass gemm_only_runs
fi
if grep -q "GEMM FLOPs/step: .* in the full step (equal)" "$S/on.txt"; then pass gemm_only_same_flops
else fail gemm_only_same_flops "$(grep 'GEMM FLOPs/step' "$S/on.txt" | tr '\n' '|')"; fi
if grep -Eq '^RESULT gemm_only=1 threads=1 ms_step=[0-9.]+ ' "$S/on.txt"; then pass gemm_only_result_line
else fail gemm_only_result_line "no RESULT gemm_only=1 line"; fi
