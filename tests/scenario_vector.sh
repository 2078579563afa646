#!/usr/bin/env bash
# The CPU tables' loops stay vectorized (benchmarks/scalar_loops.sh, docs/DESIGN.md section 2.2):
# in each of the three ops_cpu objects the only functions with scalar and no packed float
# arithmetic are the known ones (sums in double in a fixed order, which the bits depend on, and
# tiny ops). AdamW was such a function until -fno-math-errno (its sqrtf kept errno, so the loop
# called the library per element, 3 times slower); a new one fails here with its name. The scan is
# also run on a small object compiled both ways, and must list the loop only with errno kept.
source "$(dirname "$0")/lib.sh"
S=$SCRATCH
known=" dmd_grad sum_squares mse_forward_backward flow_interpolate softplus_forward_backward timestep_embedding "
for o in build/src/ops_cpu.o build/src/ops_cpu_avx2.o build/src/ops_cpu_avx512.o; do
  name=vectorized_$(basename "$o" .o)
  if ! out=$(bash benchmarks/scalar_loops.sh "$o" 2>&1); then fail "$name" "scalar_loops.sh failed: $out"; continue; fi
  extra=""
  for f in $(awk '/ scalar$/ {print $1}' <<<"$out"); do
    base=${f%%._omp_fn.*}
    base=${base#cpu_}
    [[ "$known" == *" $base "* ]] || extra="$extra $f"
  done
  if [ -z "$extra" ]; then pass "$name"; else fail "$name" "scalar loops not in the known list:$extra"; fi
done
# the scan itself: an AdamW-like loop with sqrtf, compiled with errno kept and without
cat >"$S/loop.c" <<'EOF'
#include <math.h>
void step(float *restrict p, const float *restrict g, float *restrict v, long n) {
#pragma omp simd
  for (long i = 0; i < n; i++) {
    v[i] = 0.999f * v[i] + 0.001f * g[i] * g[i];
    p[i] -= 0.01f * g[i] / (sqrtf(v[i]) + 1e-8f);
  }
}
EOF
gcc -std=c11 -O2 -fopenmp -mavx512f -mprefer-vector-width=512 -fmath-errno -c -o "$S/errno.o" "$S/loop.c"
gcc -std=c11 -O2 -fopenmp -mavx512f -mprefer-vector-width=512 -fno-math-errno -c -o "$S/noerrno.o" "$S/loop.c"
with=$(bash benchmarks/scalar_loops.sh "$S/errno.o")
without=$(bash benchmarks/scalar_loops.sh "$S/noerrno.o")
if grep -q '^  step ' <<<"$with" && ! grep -q '^  step ' <<<"$without"; then pass scalar_loops_catches_errno_sqrtf
else fail scalar_loops_catches_errno_sqrtf "errno kept: $(tr '\n' '|' <<<"$with"); -fno-math-errno: $(tr '\n' '|' <<<"$without")"; fi
