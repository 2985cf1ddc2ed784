// Calibration of the TSC against CLOCK_MONOTONIC_RAW (see tsc.hpp for the invariants).
//
// Each window reads (monotonic, tsc) at both ends of a ~4 ms busy wait; the rate is
// Δtsc / Δns. Five windows, median taken: a preemption inflates one window, not the median.
#include "core/counters/tsc.hpp"

#include <time.h>

#include <algorithm>
#include <array>
#include <cstdio>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace vhostlab::counters {
namespace {

uint64_t MonotonicRawNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

bool CpuHasInvariantTsc() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) || eax < 0x80000007u) return false;
  __get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx);
  return (edx >> 8) & 1u;
#else
  return false;
#endif
}

TscClock Calibrate() {
  TscClock clock;
  clock.invariant = kHaveTsc && CpuHasInvariantTsc();
  constexpr int kWindows = 5;
  constexpr uint64_t kWindowNs = 4'000'000;
  std::array<double, kWindows> rates{};
  for (double& rate : rates) {
    const uint64_t ns0 = MonotonicRawNs();
    const uint64_t t0 = ReadTsc();
    uint64_t ns1 = ns0;
    while (ns1 - ns0 < kWindowNs) ns1 = MonotonicRawNs();
    const uint64_t t1 = ReadTsc();
    rate = double(t1 - t0) * 1e9 / double(ns1 - ns0);
  }
  std::sort(rates.begin(), rates.end());
  clock.hz = rates[kWindows / 2];
  clock.calibration_spread = clock.hz > 0 ? (rates.back() - rates.front()) / clock.hz : 0;
  return clock;
}

}  // namespace

#if !(defined(__x86_64__) || defined(__i386__))
uint64_t ReadTsc() { return MonotonicRawNs(); }
#endif

const TscClock& TscClock::Get() {
  static const TscClock clock = Calibrate();  // C++ guarantees one thread-safe initialisation
  return clock;
}

std::string TscClock::Describe() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s TSC, %.3f GHz (calibrated against CLOCK_MONOTONIC_RAW)",
                invariant ? "invariant" : "NOT invariant", hz / 1e9);
  return buf;
}

}  // namespace vhostlab::counters
