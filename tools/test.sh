#!/usr/bin/env bash
# Runs every vhostlab test on a fresh Debian 12 machine: installs dependencies (tools/setup.sh),
# builds (Release, build/), then runs the C++ tests (ctest: unit, Unix-socket integration, DPDK
# interop), the Python package tests (pytest) and the notebooks (headless). Fails on the first
# failure. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure --timeout 600)
