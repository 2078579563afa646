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
#   5. compute-sanitizer memcheck over test_cuda, if time is left.
# summary.txt goes to $OUT (the device tool's folder; /tmp/gpu_check otherwise), and each part's
# whole output to detail.tar.gz beside it, packed again at each part's start (the device tool brings
# back at most 8 files, and what a killed run left). Each part has its own time limit so that one hang leaves the rest measured;
# together they stay under 10 minutes (the device tool's 10-minute command limit).
#   bash benchmarks/gpu_check.sh [quick]      (quick: parts 1-3 and batch 64 only)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
SUM=$OUT
D=$(mktemp -d /tmp/gpu_check_detail.XXXXXX)
mkdir -p "$OUT"
G=$PWD/.gpu
[ -d "$G/real" ] || { echo "gpu_check: no .gpu/ bundle here; run benchmarks/gpu_bundle.sh on the build machine and carry .gpu" >&2; exit 1; }
quick=${1:-}
t_start=$(date +%s)
stamp() {
  tar -czf "$SUM/detail.tar.gz" -C "$D" .
  echo "[$(($(date +%s) - t_start)) s] $*" | tee -a "$SUM/summary.txt"
}

tar -xJf "$G/lib.tar.xz" -C "$G"
# Open MPI's run-time tree at its Debian paths. The GPU image may hold another Open MPI there (its
# mca_pmix_ext3x.so wanted a newer PMIx than ours, and orted died on it): move that aside first, so
# that no component of another build is loaded
moved=""
for p in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi \
  /usr/share/pmix /etc/openmpi /usr/bin/orted /usr/bin/orterun; do
  [ -e "$p" ] && [ ! -e "$p.image" ] && mv "$p" "$p.image" && moved="$moved $p"
done
tar -xJf "$G/mpi.tar.xz" -C /
# CUDA's runtime and cuBLAS of this machine: the toolkit's, else the ones pip put beside PyTorch
cuda_dirs=""
for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
  f=$(ls /usr/local/cuda/lib64/$so 2>/dev/null || find /usr/local /usr/lib /opt -name "$so" 2>/dev/null | head -1)
  [ -n "$f" ] && case ":$cuda_dirs:" in *":$(dirname "$f"):"*) ;; *) cuda_dirs="$cuda_dirs:$(dirname "$f")" ;; esac
done
libpath="$G/lib$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# wrappers: the bundle's libraries for our programs and Open MPI's, not for python3
mkdir -p "$G/bin"
for b in $(ls "$G/real"); do
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libpath" "$G/real/$b" >"$G/bin/$b"
done
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec /usr/bin/orterun "$@"\n' "$libpath" >"$G/bin/mpirun"
chmod +x "$G/bin/"*
# one node and no ssh there: Open MPI's `isolated` launcher starts orted for singleton MPI_Init and
# mpirun (tried in a chroot holding only glibc, libstdc++, CUDA and the bundle)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm=isolated
PY=$(command -v python3)

stamp "1. machine (bundle of commit $(cat "$G/commit")$([ -f "$G/base_commit" ] && echo ", baseline $(cat "$G/base_commit")"))"
{ nvidia-smi; nvidia-smi -L; echo "cuda libraries from:$cuda_dirs"; echo "moved aside:$moved"; echo "python3: $PY";
  LD_LIBRARY_PATH="$libpath" ldd "$G/real/amd" "$G/real/test_cuda" | grep -E "not found|cublas|cudart" ; } \
  >"$D/machine.txt" 2>&1
grep -m1 -E "^GPU 0" "$D/machine.txt" | tee -a "$SUM/summary.txt"
grep "not found" "$D/machine.txt" | sort -u | tee -a "$SUM/summary.txt"

stamp "2. test_cuda"
timeout 120 "$G/bin/test_cuda" >"$D/test_cuda.txt" 2>&1
echo "test_cuda exit $?: $(grep -c '^PASS' "$D/test_cuda.txt") passed, $(grep -c '^FAIL' "$D/test_cuda.txt") failed," \
  "$(grep -c '^SKIP' "$D/test_cuda.txt") skipped" | tee -a "$SUM/summary.txt"
grep -E "^(FAIL|SKIP)" "$D/test_cuda.txt" | tee -a "$SUM/summary.txt"

stamp "3. scenario_cuda"
CUDA_AMD="$G/bin/amd" AMD="$G/bin/amd" PY="$PY" MPIRUN="$G/bin/mpirun --oversubscribe" timeout 100 bash tests/scenario_cuda.sh /tmp/gpu_scenario >"$D/scenario_cuda.txt" 2>&1
echo "scenario_cuda exit $?: $(grep -c '^PASS' "$D/scenario_cuda.txt") passed, $(grep -c '^FAIL' "$D/scenario_cuda.txt") failed" |
  tee -a "$SUM/summary.txt"
grep -E "^FAIL" "$D/scenario_cuda.txt" | cut -c1-300 | tee -a "$SUM/summary.txt"

batches="64 256"
[ "$quick" = quick ] && batches=64
for B in $batches; do
  stamp "4. DiT step on the GPU, batch $B (C, then PyTorch)"
  timeout 60 "$G/bin/dit_speed" device=cuda batch=$B steps=20 sample=1 >"$D/dit_cuda_b$B.txt" 2>&1
  grep -E "^RESULT" "$D/dit_cuda_b$B.txt" | tee -a "$SUM/summary.txt"
  # the per-kernel table, in a run of its own: the profiler waits for each op, which the timed
  # steps above must not pay
  AMD_PROFILE=1 timeout 30 "$G/bin/dit_speed" device=cuda batch=$B steps=5 ceiling=0 >"$D/dit_cuda_profile_b$B.txt" 2>&1
  AMD_TF32=1 timeout 30 "$G/bin/dit_speed" device=cuda batch=$B steps=20 ceiling=0 >"$D/dit_cuda_tf32_b$B.txt" 2>&1
  grep -E "^RESULT impl" "$D/dit_cuda_tf32_b$B.txt" | sed 's/^RESULT/RESULT_TF32/' | tee -a "$SUM/summary.txt"
  if [ -x "$G/real/dit_speed_base" ]; then # the baseline's step, then the current one's again, on this card
    for v in dit_speed_base dit_speed; do
      timeout 30 "$G/bin/$v" device=cuda batch=$B steps=20 ceiling=0 >"$D/${v}_again_b$B.txt" 2>&1
      grep -E "^RESULT impl" "$D/${v}_again_b$B.txt" | sed "s/^RESULT/RESULT_$v/" | tee -a "$SUM/summary.txt"
    done
  fi
  timeout 60 "$PY" benchmarks/dit_speed_torch.py device=cuda batch=$B steps=20 >"$D/dit_torch_b$B.txt" 2>&1
  grep -E "^RESULT|Error|error" "$D/dit_torch_b$B.txt" | tail -3 | tee -a "$SUM/summary.txt"
done
# 5. compute-sanitizer's memcheck over test_cuda, in the time that is left (it runs the kernels many
# times slower): out-of-bounds and misaligned accesses, and CUDA API errors, in every op it covers
left=$((420 - ($(date +%s) - t_start)))
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
if [ "$quick" != quick ] && [ -n "$CS" ] && [ "$left" -gt 60 ]; then
  stamp "5. compute-sanitizer memcheck of test_cuda (limit $left s)"
  LD_LIBRARY_PATH="$libpath" timeout "$left" "$CS" --tool memcheck --leak-check full "$G/real/test_cuda" \
    >"$D/sanitizer.txt" 2>&1
  echo "memcheck exit $?: $(grep -m1 -E "ERROR SUMMARY" "$D/sanitizer.txt")" | tee -a "$SUM/summary.txt"
  grep -E "^(FAIL|SKIP)" "$D/sanitizer.txt" | head -5 | tee -a "$SUM/summary.txt"
fi
stamp "done"
