// LatencyHistogram: a fixed-size, lock-free histogram of nanosecond durations, for percentiles
// of events recorded on a hot or control path from one thread and read from another.
//
// Buckets are log-linear: 8 sub-buckets per power of two, so a percentile is reported within
// 12.5% of the true value (the bucket's midpoint), from 1 ns to 2^63 ns, in 4 KiB. Recording is
// one relaxed atomic increment; reading sums the buckets (a consistent-enough snapshot for
// statistics: increments that race with a read are counted in the next read).
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>

namespace vhostlab {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 3;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = 64 * kSub;

  void Record(uint64_t ns) { buckets_[Index(ns)].fetch_add(1, std::memory_order_relaxed); }

  uint64_t Count() const {
    uint64_t n = 0;
    for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
  }

  // The p-th percentile (0 < p <= 100) in ns: the midpoint of the bucket that holds it; 0 when
  // nothing was recorded.
  double Percentile(double p) const {
    const uint64_t n = Count();
    if (n == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(n - 1)) + 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return (static_cast<double>(Lower(i)) + static_cast<double>(Upper(i))) / 2;
    }
    return static_cast<double>(Upper(kBuckets - 1));
  }

  // Bucket i holds [Lower(i), Upper(i)].
  static int Index(uint64_t ns) {
    if (ns < kSub) return static_cast<int>(ns);
    const int msb = 63 - std::countl_zero(ns);  // >= kSubBits
    const int shift = msb - kSubBits;
    const int sub = static_cast<int>((ns >> shift) & (kSub - 1));
    return (shift + 1) * kSub + sub;
  }
  static uint64_t Lower(int i) {
    if (i < kSub) return static_cast<uint64_t>(i);
    const int shift = i / kSub - 1;
    return (uint64_t{kSub} + static_cast<uint64_t>(i % kSub)) << shift;
  }
  static uint64_t Upper(int i) {
    if (i < kSub) return static_cast<uint64_t>(i);
    const int shift = i / kSub - 1;
    return Lower(i) + ((uint64_t{1} << shift) - 1);
  }

 private:
  std::atomic<uint64_t> buckets_[kBuckets] = {};
};

}  // namespace vhostlab
