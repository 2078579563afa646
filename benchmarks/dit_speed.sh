#!/usr/bin/env bash
# dit_speed.sh: the DiT training-step benchmark of the CPU backend and of PyTorch, back to back at
# the same thread count, then the ratios: C / PyTorch throughput, and the C model's GEMM FLOP/s
# over the OpenBLAS sgemm peak. Extra key=value arguments go to both programs (e.g. batch=32
# steps=20); AMD_PROFILE=1 adds the C per-op profile.
#   benchmarks/dit_speed.sh [threads=2] [device=cpu|cuda] [key=value ...]     (from the repository root)
# Needs `make bench` (or `make all`; device=cuda: `make CUDA=1`) and python3 with torch (Debian:
# python3-torch). With device=cuda and a torch that has no CUDA, the C side runs alone.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=$(nproc)
device=cpu
args=()
for a in "$@"; do
  case "$a" in
    threads=*) threads=${a#threads=} ;;
    device=*) device=${a#device=} ;;
    *) args+=("$a") ;;
  esac
done
args+=("device=$device")
# One thread pool each, of the same size: OpenMP (our loops and OpenBLAS, the OpenMP build) and
# torch's intra-op pool; no nested or extra BLAS threads.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

bin=build/benchmarks/dit_speed
[ "$device" = cuda ] && bin=build-cuda/benchmarks/dit_speed
[ -x "$bin" ] || { echo "dit_speed.sh: $bin missing; run 'make bench' (device=cuda: 'make CUDA=1') first" >&2; exit 1; }
python=/usr/bin/python3
"$python" -c "import torch" 2>/dev/null || { echo "dit_speed.sh: $python cannot import torch (apt-get install python3-torch)" >&2; exit 1; }
if [ "$device" = cuda ] && ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "== C (amd CUDA backend) alone: this torch has no CUDA device"
  "$bin" threads="$threads" "${args[@]}"
  exit 0
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== C (amd CPU backend), uptime: $(uptime)"
"$bin" threads="$threads" "${args[@]}" | tee "$out/c.txt"
echo
echo "== PyTorch, uptime: $(uptime)"
"$python" benchmarks/dit_speed_torch.py threads="$threads" "${args[@]}" | tee "$out/torch.txt"

field() { grep '^RESULT' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
c_ips=$(field "$out/c.txt" images_s) t_ips=$(field "$out/torch.txt" images_s)
c_ms=$(field "$out/c.txt" ms_step) t_ms=$(field "$out/torch.txt" ms_step)
c_min=$(field "$out/c.txt" ms_step_min) t_min=$(field "$out/torch.txt" ms_step_min)
c_busy=$(field "$out/c.txt" cpu_busy) t_busy=$(field "$out/torch.txt" cpu_busy)
c_cpu=$(field "$out/c.txt" cpu_ms_step) t_cpu=$(field "$out/torch.txt" cpu_ms_step)
c_np=$(field "$out/c.txt" params) t_np=$(field "$out/torch.txt" params)
frac=$(field "$out/c.txt" frac_peak) fideal=$(field "$out/c.txt" frac_ideal_gemm)
peak=$(field "$out/c.txt" sgemm_peak_gflop_s) gfs=$(field "$out/c.txt" gflop_s)
echo
echo "== summary ($threads threads)"
[ "$c_np" = "$t_np" ] && echo "parameters: $c_np in both" || echo "parameters DIFFER: C $c_np, PyTorch $t_np"
awk -v cm="$c_ms" -v tm="$t_ms" -v cn="$c_min" -v tn="$t_min" -v cb="$c_busy" -v tb="$t_busy" -v cc="$c_cpu" \
    -v tc="$t_cpu" -v ci="$c_ips" -v ti="$t_ips" -v g="$gfs" -v p="$peak" -v f="$frac" -v fi="$fideal" -v th="$threads" 'BEGIN {
  printf "ms/step (median): C %.1f, PyTorch %.1f; fastest step: C %.1f, PyTorch %.1f\n", cm, tm, cn, tn
  printf "CPU busy (1 = had the cores to itself): C %.2f, PyTorch %.2f\n", cb, tb
  printf "CPU time ms/step: C %.1f, PyTorch %.1f; PyTorch / C %.3f (at 1 thread the least load-sensitive)\n", cc, tc, tc / cc
  printf "throughput C / PyTorch: %.3f (%.1f vs %.1f images/s); on the fastest steps %.3f\n", ci / ti, ci, ti, tn / cn
  printf "C GEMM FLOP/s over the sgemm peak: %.1f / %.1f GFLOP/s = %.3f\n", g, p, f
  printf "fraction of the C step its GEMMs would take at the sgemm ceiling of each shape: %.3f\n", fi
  printf "RESULT threads=%d c_ms_step=%.2f torch_ms_step=%.2f c_over_torch=%.4f c_over_torch_min=%.4f " \
         "c_over_torch_cpu=%.4f c_frac_peak=%.4f\n", th, cm, tm, ci / ti, tn / cn, tc / cc, f
}'
