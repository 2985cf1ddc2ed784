// The invariant TSC as a clock: `lfence; rdtsc` timestamps and a calibrated frequency.
//
// Why the TSC: it is the cheapest clock on x86 (~22 ticks for rdtsc here vs ~51 for
// clock_gettime) and, when the CPU advertises an invariant TSC (CPUID 0x80000007 EDX bit 8, or
// constant_tsc + nonstop_tsc in /proc/cpuinfo), it ticks at a constant rate across frequency
// changes and idle states, so tick differences convert to nanoseconds with one factor.
//
// Invariants:
//  - ReadTsc() is ordered after every earlier load: `lfence` keeps rdtsc from executing before
//    the instructions that precede it (the measured region cannot leak past the timestamp).
//  - TscClock::Get() calibrates once per process (against CLOCK_MONOTONIC_RAW over ~20 ms,
//    taking the median of several windows) and never changes afterwards, so every conversion in
//    one process uses the same factor.
//  - When the TSC is not invariant the clock still works, but `invariant` is false and every
//    reading built on it says so in its note instead of pretending to be a wall clock.
#pragma once

#include <cstdint>
#include <string>

namespace vhostlab::counters {

#if defined(__x86_64__) || defined(__i386__)
inline uint64_t ReadTsc() {
  uint32_t lo, hi;
  asm volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return (uint64_t{hi} << 32) | lo;
}
inline constexpr bool kHaveTsc = true;
#else
uint64_t ReadTsc();  // falls back to CLOCK_MONOTONIC_RAW nanoseconds off x86
inline constexpr bool kHaveTsc = false;
#endif

struct TscClock {
  bool invariant = false;         // constant rate across P-/C-states (CPUID 0x80000007 EDX[8])
  double hz = 0;                  // ticks per second, calibrated
  double calibration_spread = 0;  // relative spread of the calibration windows (max-min)/median

  // The process-wide clock, calibrated on first use (takes ~20 ms once; thread-safe).
  static const TscClock& Get();

  double ToNanoseconds(uint64_t ticks) const { return hz > 0 ? ticks * 1e9 / hz : 0; }
  // One line for notes and `vhostlab counters`: "invariant TSC, 2.600 GHz (calibrated)".
  std::string Describe() const;
};

}  // namespace vhostlab::counters
