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
# Every test's output is kept (JUnit) so that every skip is printed with its reason, and any skip
# not in tools/skips_allowed.txt fails the run (tools/check_skips.py).
(cd build && ctest --output-on-failure --timeout 600 --output-junit ctest-junit.xml \
                   --test-output-size-passed 262144 --test-output-size-failed 262144)
/usr/bin/python3 tools/check_skips.py build/ctest-junit.xml

# Everything that parses untrusted input (socket messages, rings, descriptor chains, IOTLB
# entries) once more under AddressSanitizer + UndefinedBehaviorSanitizer.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVHOSTLAB_SANITIZE=ON \
      -DVHOSTLAB_BUILD_PYTHON=OFF -DVHOSTLAB_BUILD_BENCH=OFF >/dev/null
asan_tests=(core/protocol/protocol_test core/memory/memory_table_test
            core/backend/virtio_device_queue_test core/backend/backend_session_test
            core/backend/backend_datapath_test core/frontend/frontend_integration_test
            core/iotlb/iotlb_differential_test)
cmake --build build-asan -j"$(nproc)" --target vhostlab "${asan_tests[@]##*/}"
for t in "${asan_tests[@]}"; do
  echo "asan: $t"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "build-asan/$t" --gtest_brief=1
done
echo "all tests passed"
