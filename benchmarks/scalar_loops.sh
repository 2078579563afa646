#!/usr/bin/env bash
# scalar_loops.sh: which functions of the CPU backend the compiler left without vector arithmetic.
# For each object (default: the three ops_cpu tables of build/), every function (OpenMP bodies
# included, as name._omp_fn.N) with at least `min` scalar float or double arithmetic instructions
# (add, sub, mul, div, sqrt, min, max on one element: v...ss / v...sd) and no packed ones
# (v...ps / v...pd on xmm, ymm or zmm). An element-wise loop listed here is a missed vectorization
# (AdamW was one: sqrtf kept errno, so the loop called the library per element, 3 times slower;
# see the Makefile's CFLAGS). Expected here: the reductions summed in double in a fixed order
# (dmd_grad, sum_squares, mse), whose order the bits depend on, and one-off scalars (a scale).
#   benchmarks/scalar_loops.sh [min=3] [object.o ...]       (repository root, after `make`)
set -euo pipefail
cd "$(dirname "$0")/.."
min=3
objs=()
for a in "$@"; do
  case "$a" in
    min=*) min=${a#min=} ;;
    *.o) objs+=("$a") ;;
    *) echo "scalar_loops.sh: unknown argument '$a' (min=N, object files)" >&2; exit 2 ;;
  esac
done
[ ${#objs[@]} -gt 0 ] || objs=(build/src/ops_cpu.o build/src/ops_cpu_avx2.o build/src/ops_cpu_avx512.o)
command -v objdump >/dev/null || { echo "scalar_loops.sh: objdump missing (apt-get install binutils)" >&2; exit 1; }
for o in "${objs[@]}"; do
  [ -f "$o" ] || { echo "scalar_loops.sh: $o missing; run 'make' first" >&2; exit 1; }
  echo "== $o: functions with >= $min scalar and no packed float arithmetic"
  objdump -d --no-show-raw-insn "$o" | awk -v min="$min" '
    />:$/ { name = $2; sub(/^</, "", name); sub(/>:$/, "", name); seen[name] = 1 }
    /\t(v)?(add|sub|mul|div|sqrt|min|max)p[sd][ \t]/ { packed[name]++ }
    /\t(v)?(add|sub|mul|div|sqrt|min|max)s[sd][ \t]/ { scalar[name]++ }
    END {
      n = 0
      for (f in seen) if (scalar[f] >= min && !packed[f]) { printf "  %-48s %4d scalar\n", f, scalar[f]; n++ }
      if (!n) print "  (none)"
    }' | sort
done
