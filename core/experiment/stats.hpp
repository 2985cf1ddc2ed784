// Statistics for comparisons of repeated measurements: the median and the Mann-Whitney U test
// (Wilcoxon rank-sum), the test google/benchmark's tools/compare.py uses for the same purpose.
//
// `vhostlab compare` has a handful of runs per configuration (5 by default) whose rates swing
// on a shared machine; the U test asks whether one configuration's runs tend to be larger than
// the baseline's without assuming a distribution. It matches scipy.stats.mannwhitneyu with its
// defaults (two-sided, continuity correction, method "auto"):
//   - exact when either sample has at most 8 values and no value occurs twice in the pooled
//     data: the null distribution of U is counted (coefficients of the Gaussian binomial
//     [n1+n2 choose n1]_q) and p = 2 P(U >= max(U1, U2)), clipped to 1;
//   - otherwise the normal approximation with the tie correction of the variance,
//     sigma^2 = n1 n2 / 12 ((n + 1) - sum(t^3 - t) / (n (n - 1))), and a continuity correction
//     of 0.5 towards the mean.
// With 5 runs against 5 the smallest two-sided p is 2/252 = 0.008; with 3 against 3 it is
// 2/20 = 0.1, so three rounds can never show a difference at the 0.05 level.
#pragma once

#include <span>
#include <vector>

namespace vhostlab::experiment {

// NaN for an empty sample.
double Median(std::vector<double> values);

struct MannWhitneyResult {
  double u1 = 0;       // U of the first sample: pairs (x, y) with x > y, plus half the ties
  double p_value = 1;  // two-sided; NaN when a sample is empty or holds a NaN
  bool exact = false;  // exact null distribution (else the normal approximation)
};

// Two-sided Mann-Whitney U test of `x` against `y` (see the file comment for the method).
MannWhitneyResult MannWhitneyU(std::span<const double> x, std::span<const double> y);

}  // namespace vhostlab::experiment
