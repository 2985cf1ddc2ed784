// The Mann-Whitney U test against scipy.stats.mannwhitneyu 1.10.1 (defaults: two-sided,
// continuity correction, method "auto"); every expected (U, p) below was computed with it.
#include "core/experiment/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <vector>

namespace vhostlab::experiment {
namespace {

struct Case {
  const char* name;
  std::vector<double> x, y;
  double u1, p;
  bool exact;
};

// Names the case in test listings (ctest shows GetParam() otherwise as bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class MannWhitneyVsScipy : public ::testing::TestWithParam<Case> {};

TEST_P(MannWhitneyVsScipy, MatchesScipy) {
  const Case& c = GetParam();
  const MannWhitneyResult r = MannWhitneyU(c.x, c.y);
  EXPECT_DOUBLE_EQ(r.u1, c.u1);
  EXPECT_NEAR(r.p_value, c.p, 1e-12 + 1e-9 * c.p);
  EXPECT_EQ(r.exact, c.exact);
}

INSTANTIATE_TEST_SUITE_P(
    Stats, MannWhitneyVsScipy,
    ::testing::Values(
        // 5 against 5, fully separated: the smallest two-sided p, 2 / C(10, 5).
        Case{"separated", {1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}, 0, 0.007936507936507936, true},
        Case{"interleaved",
             {2.9, 3.1, 3.0, 3.3, 2.8},
             {2.7, 2.75, 3.05, 2.95, 2.85},
             19,
             0.2222222222222222,
             true},
        // Ties: the normal approximation with the tie-corrected variance.
        Case{"ties", {1, 2, 2, 3, 4}, {2, 3, 3, 5, 6}, 6, 0.19882894401644247, false},
        Case{"many_ties",
             {1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3},
             {2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4},
             31,
             0.007429101013761212,
             false},
        // Both samples larger than 8: the normal approximation even without ties.
        Case{"large",
             {0.0, 0.0123, 0.0494, 0.1111, 0.1975, 0.3086, 0.4444, 0.6049, 0.7901, 1.0},
             {0.013, 0.063, 0.113, 0.163, 0.213, 0.263, 0.313, 0.363, 0.413, 0.463, 0.513,
              0.563},
             58,
             0.9212120545847358,
             false},
        Case{"far_apart",
             {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
             {100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115,
              116, 117, 118, 119},
             0,
             6.795615128173358e-08,
             false},
        // One small sample is enough for the exact distribution.
        Case{"uneven",
             {0.5, 1.5, 2.5},
             {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
             6,
             0.025974025974025972,
             true},
        // Three rounds can never reach 0.05: the smallest p is 2 / C(6, 3).
        Case{"three_rounds", {1, 2, 3}, {4, 5, 6}, 0, 0.1, true},
        Case{"single", {1}, {2}, 0, 1.0, true},
        Case{"all_equal", {2, 2, 2}, {2, 2, 2}, 4.5, 1.0, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(MannWhitney, IsSymmetric) {
  const std::vector<double> a = {3.1, 2.9, 3.4, 3.0, 2.7}, b = {2.6, 2.8, 2.5, 3.05, 2.65};
  const MannWhitneyResult ab = MannWhitneyU(a, b), ba = MannWhitneyU(b, a);
  EXPECT_DOUBLE_EQ(ab.p_value, ba.p_value);
  EXPECT_DOUBLE_EQ(ab.u1 + ba.u1, 25.0);
}

TEST(MannWhitney, EmptyOrNanSampleHasNoPValue) {
  const std::vector<double> a = {1, 2}, none, with_nan = {1, std::nan("")};
  EXPECT_TRUE(std::isnan(MannWhitneyU(a, none).p_value));
  EXPECT_TRUE(std::isnan(MannWhitneyU(none, a).p_value));
  EXPECT_TRUE(std::isnan(MannWhitneyU(a, with_nan).p_value));
}

TEST(MannWhitney, MostExtremeArrangementHasTheSmallestP) {
  // The exact p of the most extreme arrangement is 2 / C(n1 + n2, n1) for several sizes,
  // including one large sample (the counting must not overflow or lose the tail).
  for (auto [n1, n2] : {std::pair{1, 1}, {2, 7}, {5, 5}, {8, 8}, {4, 60}}) {
    std::vector<double> x, y;
    for (int i = 0; i < n1; ++i) x.push_back(i);
    for (int i = 0; i < n2; ++i) y.push_back(1000 + i);
    const MannWhitneyResult r = MannWhitneyU(x, y);
    ASSERT_TRUE(r.exact);
    EXPECT_DOUBLE_EQ(r.u1, 0);
    const double choose = std::round(std::exp(std::lgamma(n1 + n2 + 1) - std::lgamma(n1 + 1) -
                                              std::lgamma(n2 + 1)));
    EXPECT_NEAR(r.p_value, std::min(1.0, 2 / choose), 1e-12) << n1 << " vs " << n2;
  }
}

TEST(Median, OddEvenAndEmpty) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_TRUE(std::isnan(Median({})));
}

}  // namespace
}  // namespace vhostlab::experiment
