#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs dependencies, builds, then compares the
# IOTLB designs on the default profile (IOMMU off, each design, DPDK's vhost PMD off and on),
# prints the table, writes one JSON record per run and a plot into results/latest/.
# Extra arguments go to `vhostlab compare` (e.g. --profile strict, --designs radix,hash).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target vhostlab vhostlab_python

out=results/latest
rm -rf "$out"
mkdir -p "$out"
dpdk=()
command -v dpdk-testpmd >/dev/null && dpdk=(--with-dpdk)
./build/vhostlab compare --profile default "${dpdk[@]}" --json-dir "$out" "$@" | tee "$out/table.txt"
PYTHONPATH=build/pybind /usr/bin/python3 tools/plot_compare.py "$out"
