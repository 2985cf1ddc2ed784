// Median and the Mann-Whitney U test; the method and its reference (scipy) are in stats.hpp.
#include "core/experiment/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace vhostlab::experiment {
namespace {

// Samples at most this large (either one) get the exact null distribution when untied, as in
// scipy's method "auto".
constexpr std::size_t kExactMaxSize = 8;

// P(U >= u) under the null hypothesis for samples of m and n distinct values. The number of
// arrangements with U = k is the coefficient of q^k in the Gaussian binomial
// [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i); after step i the polynomial is
// [n+i choose i]_q, whose coefficients are non-negative integers.
double ExactUpperTail(std::size_t m, std::size_t n, double u) {
  if (m > n) std::swap(m, n);  // the distribution is symmetric in m and n
  std::vector<double> c(m * n + 1, 0.0);
  c[0] = 1;
  for (std::size_t i = 1; i <= m; ++i) {
    // Multiply by (1 - q^(n+i)), then divide by (1 - q^i) (a running sum with stride i).
    for (std::size_t k = c.size(); k-- > n + i;) c[k] -= c[k - n - i];
    for (std::size_t k = i; k < c.size(); ++k) c[k] += c[k - i];
  }
  const double total = std::accumulate(c.begin(), c.end(), 0.0);
  double tail = 0;
  for (std::size_t k = 0; k < c.size(); ++k)
    if (static_cast<double>(k) >= u) tail += c[k];
  return tail / total;
}

}  // namespace

double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

MannWhitneyResult MannWhitneyU(std::span<const double> x, std::span<const double> y) {
  MannWhitneyResult r;
  const std::size_t n1 = x.size(), n2 = y.size(), n = n1 + n2;
  auto is_nan = [](double v) { return std::isnan(v); };
  if (!n1 || !n2 || std::any_of(x.begin(), x.end(), is_nan) ||
      std::any_of(y.begin(), y.end(), is_nan)) {
    r.p_value = std::nan("");
    return r;
  }
  // Pool, sort, and give each run of equal values its average rank (1-based).
  std::vector<std::pair<double, bool>> pooled;  // (value, from x)
  pooled.reserve(n);
  for (double v : x) pooled.emplace_back(v, true);
  for (double v : y) pooled.emplace_back(v, false);
  std::sort(pooled.begin(), pooled.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  double rank_sum_x = 0, tie_term = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && pooled[j].first == pooled[i].first) ++j;
    const double t = static_cast<double>(j - i);
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (std::size_t k = i; k < j; ++k)
      if (pooled[k].second) rank_sum_x += rank;
    tie_term += t * t * t - t;
    i = j;
  }
  const double dn1 = static_cast<double>(n1), dn2 = static_cast<double>(n2);
  r.u1 = rank_sum_x - dn1 * (dn1 + 1) / 2;
  const double u = std::max(r.u1, dn1 * dn2 - r.u1);
  r.exact = (n1 <= kExactMaxSize || n2 <= kExactMaxSize) && tie_term == 0;
  double p;
  if (r.exact) {
    p = 2 * ExactUpperTail(n1, n2, u);
  } else {
    const double dn = static_cast<double>(n);
    const double sigma = std::sqrt(dn1 * dn2 / 12 * ((dn + 1) - tie_term / (dn * (dn - 1))));
    const double numerator = u - dn1 * dn2 / 2 - 0.5;  // continuity correction
    // sigma == 0: every value equal; numerator is then -0.5 and the upper tail is 1.
    const double z = sigma > 0 ? numerator / sigma : -INFINITY;
    p = std::erfc(z / std::sqrt(2.0));  // 2 * P(Z > z)
  }
  r.p_value = std::clamp(p, 0.0, 1.0);
  return r;
}

}  // namespace vhostlab::experiment
