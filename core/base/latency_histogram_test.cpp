#include "core/base/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace vhostlab {
namespace {

TEST(LatencyHistogram, BucketsCoverEveryValueOnce) {
  for (uint64_t v : {0ull, 1ull, 7ull, 8ull, 9ull, 15ull, 16ull, 1000ull, 123456789ull,
                     ~0ull >> 1, ~0ull}) {
    const int i = LatencyHistogram::Index(v);
    ASSERT_GE(i, 0);
    ASSERT_LT(i, LatencyHistogram::kBuckets) << v;
    EXPECT_LE(LatencyHistogram::Lower(i), v) << v;
    EXPECT_GE(LatencyHistogram::Upper(i), v) << v;
  }
  for (int i = 1; i < LatencyHistogram::kBuckets; ++i)
    EXPECT_EQ(LatencyHistogram::Lower(i), LatencyHistogram::Upper(i - 1) + 1) << i;
}

TEST(LatencyHistogram, PercentilesWithinABucketOfTheTruth) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(50), 0);
  std::mt19937_64 rng(1);
  std::vector<uint64_t> v(100000);
  for (auto& x : v) x = 1000 + rng() % 100000;
  for (uint64_t x : v) h.Record(x);
  std::sort(v.begin(), v.end());
  EXPECT_EQ(h.Count(), v.size());
  for (double p : {50.0, 90.0, 99.0}) {
    const double truth = static_cast<double>(v[static_cast<size_t>(p / 100 * (v.size() - 1))]);
    EXPECT_NEAR(h.Percentile(p), truth, truth * 0.125) << p;
  }
}

}  // namespace
}  // namespace vhostlab
