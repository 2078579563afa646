# gpu_env.sh: sourced by benchmarks/gpu_check.sh and gpu_fmnist.sh on the GPU machine, in the
# repository root. Unpacks the bundle that benchmarks/gpu_bundle.sh made (.gpu/, carried there) and
# sets up: G (the bundle), $G/bin/<program> (each bundled program, with the bundle's libraries and
# the machine's CUDA runtime and cuBLAS), $G/bin/mpirun, libpath, PY (the machine's python3) and Open
# MPI's environment for one node without ssh. `moved` names what it moved aside.
G=$PWD/.gpu
[ -d "$G/real" ] || { echo "gpu_env: no .gpu/ bundle here; run benchmarks/gpu_bundle.sh on the build machine and carry .gpu" >&2; exit 1; }
tar -xJf "$G/lib.tar.xz" -C "$G"
# Open MPI's run-time tree at its Debian paths. The GPU image may hold another Open MPI there (its
# mca_pmix_ext3x.so wanted a newer PMIx than ours, and orted died on it): move that aside first, so
# that no component of another build is loaded
moved=""
for p in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi \
  /usr/share/pmix /etc/openmpi /usr/bin/orted /usr/bin/orterun; do
  [ -e "$p" ] && [ ! -e "$p.image" ] && mv "$p" "$p.image" && moved="$moved $p"
done
[ -e /usr/bin/orted ] || tar -xJf "$G/mpi.tar.xz" -C /
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
