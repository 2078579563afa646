#!/usr/bin/env bash
# How much `make demo`'s result moves from machine to machine. Another CPU runs other sgemm kernels
# (OpenBLAS picks them by CPU model), whose float rounding differs in the last bits, and a training
# run amplifies those bits. This runs the whole demo (jobs/demo.sh: data, teacher, AMD student) once
# per OpenBLAS kernel family, forced with OPENBLAS_CORETYPE, on this one machine, and prints the
# AMD student's metrics per family and their spread. A kernel the CPU cannot run is skipped.
#
#   bash benchmarks/demo_spread.sh [CORETYPE ...]     (default: SkylakeX Haswell Sandybridge Nehalem)
#
# Output under runs/demo_spread/<coretype>/ (each a complete demo folder) and the table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(SkylakeX Haswell Sandybridge Nehalem)
mkdir -p runs/demo_spread
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
args=()
for t in "${types[@]}"; do
  case $t in
    SkylakeX|Cooperlake) need=avx512f ;;
    Haswell|Zen) need=avx2 ;;
    Sandybridge) need=avx ;;
    *) need=sse2 ;;
  esac
  if ! grep -qw "$need" <<<"$flags"; then
    echo "demo_spread: $t skipped: this CPU lacks $need"
    continue
  fi
  echo "== OPENBLAS_CORETYPE=$t"
  OPENBLAS_CORETYPE=$t DEMO_DIR="runs/demo_spread/$t" bash jobs/demo.sh >"runs/demo_spread/$t.log" 2>&1 ||
    { echo "demo_spread: the demo failed with $t; see runs/demo_spread/$t.log" >&2; exit 1; }
  args+=("$t=runs/demo_spread/$t/amd_1_eval.h5")
done
[ ${#args[@]} -gt 0 ] || { echo "demo_spread: no kernel family ran" >&2; exit 1; }
/usr/bin/python3 - "${args[@]}" <<'PY'
import sys, h5py, numpy as np
keys = ["coverage", "off_manifold", "mass_error", "wrong_class", "sliced_w1", "log_density"]
rows = []
for a in sys.argv[1:]:
    name, _, path = a.partition("=")
    with h5py.File(path, "r") as f:
        rows.append((name, [float(f["eval"][k][0]) for k in keys]))
print("\nAMD student (EMA), 1 step, per OpenBLAS kernel family:\n")
print("| OPENBLAS_CORETYPE | " + " | ".join(keys) + " |")
print("|---|" + "---|" * len(keys))
for name, v in rows:
    print(f"| {name} | " + " | ".join(f"{x:.4f}" for x in v) + " |")
m = np.array([v for _, v in rows])
print("| min .. max | " + " | ".join(f"{lo:.4f} .. {hi:.4f}" for lo, hi in zip(m.min(0), m.max(0))) + " |")
PY
