#!/usr/bin/env bash
# gpu_bundle.sh: packs into .gpu/ (ignored by git) what the CUDA checks need on a GPU machine that
# has the NVIDIA driver, CUDA and PyTorch but none of this project's Debian packages (the device
# machines of this workplace): the `make CUDA=1` binaries, every shared library they and Open MPI's
# run time load except glibc, the compiler runtime and CUDA's own libraries (xz-compressed), and
# Open MPI's and PMIx's run-time files (components, help texts, orted, orterun), which singleton
# MPI_Init and mpirun look for at their absolute Debian paths. benchmarks/gpu_check.sh unpacks and
# runs it there. Size: about 25 MB.
# BASE=<commit> also builds dit_speed at that commit (in a temporary git worktree) as dit_speed_base,
# which gpu_check.sh times beside the current one on the same card, for a before/after ratio.
#   bash benchmarks/gpu_bundle.sh        (then carry .gpu to the GPU machine)
#   BASE=HEAD~3 bash benchmarks/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make CUDA=1 all >/dev/null
rm -rf .gpu
mkdir -p .gpu/real .gpu/lib
bins=(build-cuda/amd build-cuda/tests/test_cuda build-cuda/benchmarks/dit_speed)
cp "${bins[@]}" .gpu/real/
if [ -n "${BASE:-}" ]; then
  wt=$(mktemp -d /tmp/gpu_bundle_base.XXXXXX)
  git worktree add -q --detach "$wt" "$BASE"
  make -C "$wt" CUDA=1 build-cuda/benchmarks/dit_speed >/dev/null
  cp "$wt/build-cuda/benchmarks/dit_speed" .gpu/real/dit_speed_base
  git -C "$wt" rev-parse HEAD >.gpu/base_commit
  git worktree remove --force "$wt"
fi
ompi=/usr/lib/x86_64-linux-gnu/openmpi pmix=/usr/lib/x86_64-linux-gnu/pmix2
# every library that the binaries, orted, orterun and the MCA components resolve to, less those the
# GPU machine has its own of (glibc, libgcc_s, libstdc++, the CUDA driver, runtime and cuBLAS)
ldd "${bins[@]}" /usr/bin/orted /usr/bin/orterun "$ompi"/lib/openmpi3/*.so "$pmix"/lib/pmix/*.so 2>/dev/null |
  awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|libgcc_s|libstdc\+\+|libcuda|libcudart|libcublas|libcublasLt|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" .gpu/lib/; done
tar -cJf .gpu/lib.tar.xz -C .gpu lib
rm -rf .gpu/lib
# Open MPI's and PMIx's run-time trees, to be unpacked at / without replacing anything there
paths=()
for p in "$ompi" "$pmix" /usr/share/openmpi /usr/share/pmix /etc/openmpi /usr/bin/orted /usr/bin/orterun; do
  [ -e "$p" ] && paths+=("${p#/}")
done
tar -cJf .gpu/mpi.tar.xz -C / "${paths[@]}"
git rev-parse HEAD >.gpu/commit
du -sh .gpu
echo "gpu_bundle: .gpu/ holds $(ls .gpu/real | tr '\n' ' ')built from $(cat .gpu/commit)"
