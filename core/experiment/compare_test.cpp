// The comparison's round order, its verdicts and its summary record.
#include "core/experiment/compare.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace vhostlab::experiment {
namespace {

TEST(RoundOrder, EveryRoundRunsEveryConfigurationOnce) {
  for (std::size_t k : {1, 2, 3, 7, 12}) {
    for (uint32_t rounds : {1u, 3u, 5u, 12u, 20u}) {
      for (uint32_t r = 0; r < rounds; ++r) {
        std::vector<std::size_t> order = RoundOrder(k, r, rounds);
        ASSERT_EQ(order.size(), k);
        std::sort(order.begin(), order.end());
        for (std::size_t i = 0; i < k; ++i) EXPECT_EQ(order[i], i);
      }
    }
  }
}

TEST(RoundOrder, FirstRoundIsThePlanAndTheBaselineMovesAfterIt) {
  EXPECT_EQ(RoundOrder(4, 0, 5), (std::vector<std::size_t>{0, 1, 2, 3}));
  // The baseline (index 0) is not first in every round.
  std::set<std::size_t> positions;
  for (uint32_t r = 0; r < 5; ++r) {
    const auto order = RoundOrder(12, r, 5);
    positions.insert(std::find(order.begin(), order.end(), 0) - order.begin());
  }
  EXPECT_EQ(positions.size(), 5u) << "five rounds put the baseline at five positions";
}

TEST(RoundOrder, AsManyRoundsAsConfigurationsIsALatinSquare) {
  const std::size_t k = 6;
  std::vector<std::set<std::size_t>> seen_at(k);  // per configuration: positions taken
  for (uint32_t r = 0; r < k; ++r) {
    const auto order = RoundOrder(k, r, k);
    for (std::size_t pos = 0; pos < k; ++pos) seen_at[order[pos]].insert(pos);
  }
  for (const auto& s : seen_at) EXPECT_EQ(s.size(), k);
}

TEST(RoundOrder, PositionsAreSpreadAcrossRounds) {
  // 12 configurations (the main job's), 5 rounds: every configuration's mean position is
  // within 1.5 of the middle of a round, where a fixed order puts the baseline at 0.
  const std::size_t k = 12;
  std::vector<double> sum(k, 0);
  for (uint32_t r = 0; r < 5; ++r) {
    const auto order = RoundOrder(k, r, 5);
    for (std::size_t pos = 0; pos < k; ++pos) sum[order[pos]] += static_cast<double>(pos);
  }
  for (std::size_t i = 0; i < k; ++i) EXPECT_NEAR(sum[i] / 5, (k - 1) / 2.0, 1.5) << i;
}

TEST(SmallestPValue, FourRoundsAreTheFewestThatCanReachAlpha) {
  EXPECT_DOUBLE_EQ(SmallestPValue(3, 3), 0.1);
  EXPECT_NEAR(SmallestPValue(4, 4), 2.0 / 70, 1e-15);
  EXPECT_NEAR(SmallestPValue(5, 5), 2.0 / 252, 1e-15);
  EXPECT_DOUBLE_EQ(SmallestPValue(1, 1), 1.0);
  EXPECT_DOUBLE_EQ(SmallestPValue(0, 5), 1.0);
  EXPECT_GE(SmallestPValue(3, 3), kAlpha);
  EXPECT_LT(SmallestPValue(4, 4), kAlpha);
}

ComparedConfig Config(const std::string& label, bool iommu, std::vector<double> mpps,
                      int baseline) {
  ComparedConfig c;
  c.backend = "self";
  c.design = iommu ? label : "reference";
  c.iommu = iommu;
  c.label = label;
  c.mpps = std::move(mpps);
  for (uint32_t r = 0; r < c.mpps.size(); ++r) {
    c.rounds.push_back(r);
    c.positions.push_back(r);
  }
  c.baseline = baseline;
  return c;
}

TEST(Judge, ANoiseSizedDifferenceIsNotSignificant) {
  // The case of issue 12: IOMMU on reads faster than off, within the runs' spread.
  const ComparedConfig off = Config("off", false, {2.77, 2.69, 2.84, 2.80, 2.75}, -1);
  const ComparedConfig hash = Config("hash", true, {2.91, 2.89, 2.92, 2.70, 2.81}, 0);
  const Judgement j = Judge(hash, &off);
  EXPECT_GT(j.ratio, 1.0);
  EXPECT_TRUE(j.testable);
  EXPECT_FALSE(j.significant);
  EXPECT_GE(j.test.p_value, kAlpha);
  EXPECT_EQ(j.verdict, "~1.00x (n.s.)");
}

TEST(Judge, ASeparatedDifferenceShowsItsRatio) {
  const ComparedConfig off = Config("off", false, {2.7, 2.8, 2.9, 2.6, 2.75}, -1);
  const ComparedConfig list = Config("list", true, {0.21, 0.22, 0.20, 0.19, 0.23}, 0);
  const Judgement j = Judge(list, &off);
  EXPECT_TRUE(j.significant);
  EXPECT_NEAR(j.test.p_value, 2.0 / 252, 1e-12);
  EXPECT_TRUE(j.test.exact);
  EXPECT_EQ(j.verdict, "0.08x");
  const Judgement b = Judge(off, nullptr);
  EXPECT_EQ(b.verdict, "1.00x");
  EXPECT_TRUE(std::isnan(b.test.p_value));
}

TEST(Judge, TooFewRoundsAreUntestedNotInsignificant) {
  const ComparedConfig off = Config("off", false, {2.6, 2.7, 2.8}, -1);
  const ComparedConfig list = Config("list", true, {0.21, 0.22, 0.20}, 0);
  const Judgement j = Judge(list, &off);
  EXPECT_FALSE(j.testable);
  EXPECT_FALSE(j.significant);
  EXPECT_NEAR(j.test.p_value, 0.1, 1e-12);
  EXPECT_EQ(j.verdict, "0.08x (untested)");
}

TEST(Judge, NoRunsOrNoBaselineRunsIsADash) {
  const ComparedConfig off = Config("off", false, {}, -1);
  const ComparedConfig hash = Config("hash", true, {2.9, 2.8}, 0);
  EXPECT_EQ(Judge(hash, &off).verdict, "-");
  EXPECT_EQ(Judge(off, nullptr).verdict, "-");
}

TEST(ComparisonToJson, CarriesOrderRunsAndPValues) {
  ComparisonSummary s;
  s.profile = "default";
  s.rounds = 5;
  s.warmup_runs = 1;
  s.warmup_labels = {"off"};
  s.warmup_mpps = {2.1};
  s.configs.push_back(Config("off", false, {2.7, 2.8, 2.9, 2.6, 2.75}, -1));
  s.configs.push_back(Config("list", true, {0.21, 0.22, 0.20, 0.19, 0.23}, 0));
  s.configs[1].records = {"a-r1.json", "", "", "", ""};
  for (uint32_t r = 0; r < 5; ++r) s.order.push_back(RoundOrder(2, r, 5));
  s.context["cpu"] = "test \"cpu\"";
  const std::string json = ComparisonToJson(s);
  EXPECT_NE(json.find("\"kind\": \"vhostlab-compare\""), std::string::npos);
  const auto doc = nlohmann::json::parse(json);
  const std::vector<nlohmann::json> order = doc["order"];
  ASSERT_EQ(order.size(), 5u);
  for (const auto& round : {nlohmann::json::array({"off", "list"}), nlohmann::json::array({"list", "off"})})
    EXPECT_NE(std::find(order.begin(), order.end(), round), order.end()) << round;
  EXPECT_NE(json.find("\"p_value\": 0.00793650793650"), std::string::npos) << json;
  EXPECT_NE(json.find("\"p_value\": null"), std::string::npos) << "the baseline has no p";
  EXPECT_NE(json.find("\"record\": \"a-r1.json\""), std::string::npos);
  EXPECT_NE(json.find("\"verdict\": \"0.08x\""), std::string::npos);
  EXPECT_NE(json.find("\"runs_per_backend\": 1"), std::string::npos);
  EXPECT_NE(json.find("test \\\"cpu\\\""), std::string::npos);
}

}  // namespace
}  // namespace vhostlab::experiment
