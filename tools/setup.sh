#!/usr/bin/env bash
# Installs everything vhostlab needs from Debian 12's archive (idempotent: a second run only
# checks). Used by both README commands and by .ci/run. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ninja-build
  clang-14 libclang-rt-14-dev valgrind
  libgtest-dev libgmock-dev libbenchmark-dev
  libhwloc-dev hwloc libpfm4-dev liburcu-dev libabsl-dev libtomlplusplus-dev
  nlohmann-json3-dev libcli11-dev
  dpdk dpdk-dev
  qemu-system-x86 cpio xz-utils zstd
  pybind11-dev python3-dev python3-numpy python3-pandas python3-matplotlib python3-scipy
  python3-pytest python3-tqdm python3-nbclient python3-ipykernel jupyter-nbconvert jupyter-notebook
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
