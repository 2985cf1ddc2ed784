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
            core/backend/backend_datapath_test core/backend/backend_hostile_test
            core/frontend/frontend_integration_test
            core/iotlb/iotlb_differential_test)
cmake --build build-asan -j"$(nproc)" --target vhostlab "${asan_tests[@]##*/}"
for t in "${asan_tests[@]}"; do
  echo "asan: $t"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "build-asan/$t" --gtest_brief=1
done
# Fuzzing (libFuzzer, clang, ASan + UBSan over the whole library): each target for a bounded
# time from its committed seed corpus (tools/make_fuzz_seeds.py), in a scratch copy. A crash,
# leak, sanitizer report or timeout fails the run and leaves the reproducer in build-fuzz/.
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DVHOSTLAB_FUZZ=ON -DVHOSTLAB_SANITIZE=ON -DVHOSTLAB_BUILD_PYTHON=OFF \
      -DVHOSTLAB_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target iotlb_fuzz chain_fuzz session_fuzz
fuzz_seconds=${VHOSTLAB_FUZZ_SECONDS:-60}
# target | binary | corpus | max input bytes
for spec in "iotlb core/iotlb/iotlb_fuzz core/iotlb/fuzz/corpus 4096" \
            "chain core/virtio/chain_fuzz core/virtio/fuzz/corpus 16384" \
            "session core/backend/fuzz/session_fuzz core/backend/fuzz/corpus 4096"; do
  read -r name bin corpus max_len <<<"$spec"
  work="build-fuzz/corpus-$name"
  rm -rf "$work" && mkdir -p "$work" && cp "$corpus"/* "$work"/
  echo "fuzz: $name for ${fuzz_seconds}s"
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "./$bin" -max_total_time="$fuzz_seconds" -max_len="$max_len" -timeout=20 \
              -rss_limit_mb=4096 -print_final_stats=1 "corpus-$name" 2>&1 | tail -n 25)
done
echo "all tests passed"
