// Round order, judgement and the summary record of `vhostlab compare` (see compare.hpp).
//
// The summary record (<profile>-compare.json), schema_version 1:
//   {"schema_version": 1, "kind": "vhostlab-compare", "profile", "metric": "mpps",
//    "rounds", "alpha", "test",
//    "warmup": {"runs_per_backend", "runs": [{"label", "mpps"}]},
//    "order": [[label, ...] per round, in the order the round ran them],
//    "configurations": [{"backend", "iotlb", "iommu", "label", "baseline" (label or null),
//        "runs": [{"round", "position", "mpps", "record"}],   (round and position 1-based)
//        "median_mpps", "min_mpps", "max_mpps", "ratio", "u", "p_value", "exact",
//        "testable", "significant", "verdict"}],
//    "context": {machine}}
// Numbers that do not exist (the baseline's own p, a failed run) are null. Written with
// nlohmann-json.
#include "core/experiment/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/experiment/record_json.hpp"

namespace vhostlab::experiment {

std::vector<std::size_t> RoundOrder(std::size_t configurations, uint32_t round, uint32_t rounds) {
  std::vector<std::size_t> order(configurations);
  if (!configurations) return order;
  // Fewer rounds than configurations: offsets spread evenly over 0..k-1 (k = 12, 5 rounds:
  // 0, 2, 4, 7, 9). Otherwise every rotation in turn.
  const std::size_t offset =
      rounds && rounds < configurations
          ? static_cast<std::size_t>(round) * configurations / rounds
          : round % configurations;
  for (std::size_t i = 0; i < configurations; ++i) order[i] = (i + offset) % configurations;
  return order;
}

double SmallestPValue(std::size_t n1, std::size_t n2) {
  if (!n1 || !n2) return 1;
  // C(n1 + n2, n1) as a product of ratios (exact enough: it is only compared with kAlpha).
  double choose = 1;
  for (std::size_t i = 1; i <= std::min(n1, n2); ++i)
    choose = choose * static_cast<double>(n1 + n2 - std::min(n1, n2) + i) / static_cast<double>(i);
  return std::min(1.0, 2 / choose);
}

Judgement Judge(const ComparedConfig& config, const ComparedConfig* baseline) {
  Judgement j;
  const double nan = std::nan("");
  j.median = Median(config.mpps);
  j.min = config.mpps.empty() ? nan : *std::min_element(config.mpps.begin(), config.mpps.end());
  j.max = config.mpps.empty() ? nan : *std::max_element(config.mpps.begin(), config.mpps.end());
  j.ratio = nan;
  j.test.p_value = nan;
  const double base = baseline ? Median(baseline->mpps) : nan;
  // One assignment of the verdict from a buffer (GCC 12 warns falsely, -Wrestrict, on
  // assigning string literals to it in the branches).
  char verdict[48] = "-";
  if (!baseline) {  // the baseline itself, or a backend without one
    if (!config.iommu && !config.mpps.empty()) {
      j.ratio = 1;
      std::snprintf(verdict, sizeof(verdict), "1.00x");
    }
  } else if (!config.mpps.empty() && base > 0) {
    j.ratio = j.median / base;
    j.test = MannWhitneyU(config.mpps, baseline->mpps);
    j.testable = SmallestPValue(config.mpps.size(), baseline->mpps.size()) < kAlpha;
    j.significant = j.testable && j.test.p_value < kAlpha;
    if (j.significant)
      std::snprintf(verdict, sizeof(verdict), "%.2fx", j.ratio);
    else if (j.testable)
      std::snprintf(verdict, sizeof(verdict), "~1.00x (n.s.)");
    else
      std::snprintf(verdict, sizeof(verdict), "%.2fx (untested)", j.ratio);
  }
  j.verdict = verdict;
  return j;
}

std::string ComparisonToJson(const ComparisonSummary& s) {
  using Json = nlohmann::ordered_json;
  auto number = [](double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); };
  Json o;
  o["schema_version"] = 1;
  o["kind"] = "vhostlab-compare";
  o["profile"] = s.profile;
  o["metric"] = "mpps";
  o["rounds"] = s.rounds;
  o["alpha"] = kAlpha;
  o["test"] =
      "Mann-Whitney U, two-sided, each configuration's runs against its backend's IOMMU-off "
      "runs (exact without ties when a sample has at most 8 runs, else normal approximation "
      "with tie and continuity corrections)";
  Json warmup = Json::array();
  for (std::size_t i = 0; i < s.warmup_labels.size(); ++i)
    warmup.push_back({{"label", s.warmup_labels[i]},
                      {"mpps", number(i < s.warmup_mpps.size() ? s.warmup_mpps[i] : NAN)}});
  o["warmup"] = {{"runs_per_backend", s.warmup_runs}, {"runs", std::move(warmup)}};
  Json order = Json::array();
  for (const std::vector<std::size_t>& round : s.order) {
    Json labels = Json::array();
    for (std::size_t idx : round) labels.push_back(s.configs[idx].label);
    order.push_back(std::move(labels));
  }
  o["order"] = std::move(order);
  Json configs = Json::array();
  for (const ComparedConfig& c : s.configs) {
    const ComparedConfig* base = c.baseline >= 0 ? &s.configs[c.baseline] : nullptr;
    const Judgement j = Judge(c, base);
    Json runs = Json::array();
    for (std::size_t k = 0; k < c.mpps.size(); ++k) {
      const bool has_record = k < c.records.size() && !c.records[k].empty();
      runs.push_back({{"round", k < c.rounds.size() ? c.rounds[k] + 1 : 0},
                      {"position", k < c.positions.size() ? c.positions[k] + 1 : 0},
                      {"mpps", number(c.mpps[k])},
                      {"record", has_record ? Json(c.records[k]) : Json(nullptr)}});
    }
    configs.push_back({{"backend", c.backend},
                       {"iotlb", c.design},
                       {"iommu", c.iommu},
                       {"label", c.label},
                       {"baseline", base ? Json(base->label) : Json(nullptr)},
                       {"runs", std::move(runs)},
                       {"median_mpps", number(j.median)},
                       {"min_mpps", number(j.min)},
                       {"max_mpps", number(j.max)},
                       {"ratio", number(j.ratio)},
                       {"u", base ? number(j.test.u1) : Json(nullptr)},
                       {"p_value", number(j.test.p_value)},
                       {"exact", base && j.test.exact},
                       {"testable", j.testable},
                       {"significant", j.significant},
                       {"verdict", j.verdict}});
  }
  o["configurations"] = std::move(configs);
  o["context"] = s.context;
  return DumpJson(o);
}

}  // namespace vhostlab::experiment
