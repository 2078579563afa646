#!/usr/bin/env bash
# Installs the Debian packages amd needs, only those missing, so it is cheap to call before every
# build. `make demo`, `make test` and .ci/run call it; it is not a general provisioning script.
set -euo pipefail

packages=(
  build-essential
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools python3-h5py python3-numpy
  libopenblas-openmp-dev
  libpng-dev zlib1g-dev
  python3-matplotlib
  dataset-fashion-mnist
  slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
