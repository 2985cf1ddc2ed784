// The statistics of `vhostlab compare`: in which order each round visits the configurations,
// how each configuration's runs are judged against its backend's IOMMU-off runs, and the
// comparison's summary record (<profile>-compare.json).
//
// Fairness. Rates on a shared machine drift within a minute, and the first runs after start-up
// are slower (cold caches, page faults, CPU frequency, testpmd's first exec). So a comparison
//   - runs discarded warm-up runs before its first measured run, and
//   - rotates the order of the configurations from round to round (RoundOrder), so that every
//     configuration, the baseline included, visits early and late positions of a round and no
//     ratio is biased by where its two configurations sit.
//
// Judgement. A configuration's runs are tested against the baseline's with the Mann-Whitney U
// test (stats.hpp), two-sided at kAlpha. The ratio of medians is printed only when the test
// says the difference is real; a difference within noise reads "~1.00x (n.s.)". When the
// sample sizes cannot reach kAlpha at all (3 runs against 3: the smallest p is 0.1) the ratio
// is printed with "(untested)", since "n.s." would then say nothing about the data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/experiment/stats.hpp"

namespace vhostlab::experiment {

// Two-sided significance level of the comparison's U tests.
inline constexpr double kAlpha = 0.05;

// The order (indices into the plan) in which round `round` (0-based) of `rounds` visits
// `configurations` configurations: the plan rotated by an offset that spreads the rounds evenly
// over the possible rotations (every rotation once when rounds == configurations). Round 0 is
// the plan's own order.
std::vector<std::size_t> RoundOrder(std::size_t configurations, uint32_t round, uint32_t rounds);

// The smallest two-sided p the exact U test can give for samples of n1 and n2 distinct values:
// 2 / C(n1 + n2, n1), at most 1.
double SmallestPValue(std::size_t n1, std::size_t n2);

// One configuration of a comparison, with its measured runs.
struct ComparedConfig {
  std::string backend;  // self | dpdk
  std::string design;   // IOTLB design ("dpdk" for DPDK's own)
  bool iommu = true;
  std::string label;               // as on the progress line: off, hash, dpdk-off, dpdk
  std::vector<double> mpps;        // one per measured run, in round order
  std::vector<uint32_t> rounds;    // the round (0-based) of each run
  std::vector<uint32_t> positions; // its position (0-based) in each of those rounds
  std::vector<std::string> records;  // the run records' file names, when written
  int baseline = -1;  // index of this backend's IOMMU-off configuration; -1: this is it, or none
};

// A configuration judged against its baseline.
struct Judgement {
  double median = 0, min = 0, max = 0;  // Mpps over the configuration's runs; NaN without runs
  double ratio = 0;       // median / baseline median; NaN without a baseline
  MannWhitneyResult test;  // against the baseline's runs; p NaN for a baseline or without one
  bool testable = false;   // the sample sizes can reach kAlpha
  bool significant = false;  // testable and p < kAlpha
  std::string verdict;  // the table's "vs off" cell: "1.00x" (the baseline), "0.08x",
                        // "~1.00x (n.s.)", "0.08x (untested)", or "-"
};

Judgement Judge(const ComparedConfig& config, const ComparedConfig* baseline);

// The summary record of one profile's comparison (schema in compare.cpp), written by
// `vhostlab compare --json-dir` as <profile>-compare.json.
struct ComparisonSummary {
  std::string profile;
  uint32_t rounds = 0;       // rounds that ran
  uint32_t warmup_runs = 0;  // discarded runs per backend before round 1
  std::vector<std::string> warmup_labels;  // what the warm-up ran, in order
  std::vector<double> warmup_mpps;         // and what it measured (NaN: failed)
  std::vector<ComparedConfig> configs;     // in plan order
  std::vector<std::vector<std::size_t>> order;  // per round: plan indices in run order
  std::map<std::string, std::string> context;   // the machine (MachineContext())
};

std::string ComparisonToJson(const ComparisonSummary& summary);

}  // namespace vhostlab::experiment
