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
# wanted but not needed: PyTorch for the peer of the distillation step (tests/scenario_peer.sh, which
# is skipped without it) and the fixture scripts; a failed install is tried again after a reboot only
optional=(python3-torch)
optional_stamp=/tmp/amd-setup-optional-failed

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_opt=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
[ -e "$optional_stamp" ] || for p in "${optional[@]}"; do installed "$p" || missing_opt+=("$p"); done
[ ${#missing[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]} ${missing_opt[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
[ ${#missing[@]} -eq 0 ] ||
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ ${#missing_opt[@]} -gt 0 ] &&
  ! $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing_opt[@]}" >/dev/null; then
  echo "setup: the optional ${missing_opt[*]} could not be installed; the tests that need it are skipped"
  touch "$optional_stamp"
fi
echo "setup: done"
