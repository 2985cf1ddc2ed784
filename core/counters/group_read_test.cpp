// DecodeGroupRead and the hardware grouping on synthetic group reads: these paths run only on a
// machine with a PMU, so they are tested here on buffers laid out as the kernel lays them out.
#include "core/counters/group_read.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace vhostlab::counters {
namespace {

// [nr, time_enabled, time_running, {value, id} x nr]
std::vector<uint64_t> GroupBuffer(uint64_t enabled, uint64_t running,
                                  const std::vector<std::pair<uint64_t, uint64_t>>& value_id) {
  std::vector<uint64_t> b{value_id.size(), enabled, running};
  for (auto [v, id] : value_id) {
    b.push_back(v);
    b.push_back(id);
  }
  return b;
}

Result<std::vector<MemberReading>> Decode(const std::vector<uint64_t>& ids,
                                          const std::vector<uint64_t>& buf) {
  return DecodeGroupRead(ids, buf.data(), buf.size() * sizeof(uint64_t));
}

TEST(DecodeGroupRead, FullyScheduledGroupIsExact) {
  auto r = Decode({11, 12}, GroupBuffer(1000, 1000, {{500, 11}, {7, 12}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE((*r)[0].available);
  EXPECT_FALSE((*r)[0].multiplexed);
  EXPECT_EQ((*r)[0].value, 500);
  EXPECT_EQ((*r)[1].value, 7);
  EXPECT_EQ((*r)[1].running_fraction, 1);
  EXPECT_TRUE((*r)[0].note.empty());
}

TEST(DecodeGroupRead, MultiplexedGroupIsScaledAndSaysSo) {
  auto r = Decode({1, 2}, GroupBuffer(1000, 250, {{100, 1}, {40, 2}}));
  ASSERT_TRUE(r.ok());
  for (const MemberReading& m : *r) {
    EXPECT_TRUE(m.available);
    EXPECT_TRUE(m.multiplexed);
    EXPECT_DOUBLE_EQ(m.running_fraction, 0.25);
    EXPECT_NE(m.note.find("multiplexed: counted 25.0%"), std::string::npos) << m.note;
  }
  EXPECT_DOUBLE_EQ((*r)[0].value, 400);
  EXPECT_EQ((*r)[0].raw, 100u);
  EXPECT_DOUBLE_EQ((*r)[1].value, 160);
}

TEST(DecodeGroupRead, NeverScheduledGroupHasNoValueNotZero) {
  auto r = Decode({1, 2}, GroupBuffer(5000, 0, {{0, 1}, {0, 2}}));
  ASSERT_TRUE(r.ok());
  for (const MemberReading& m : *r) {
    EXPECT_FALSE(m.available);
    EXPECT_TRUE(std::isnan(m.value));
    EXPECT_NE(m.note.find("never scheduled"), std::string::npos);
  }
}

TEST(DecodeGroupRead, NothingElapsedIsAnExactZero) {
  auto r = Decode({1}, GroupBuffer(0, 0, {{0, 1}}));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].available);
  EXPECT_EQ((*r)[0].value, 0);
}

TEST(DecodeGroupRead, PartialGroupMarksTheMissingMemberUnavailable) {
  // Member 2 failed to attach (or was removed): the kernel lists only 1 and 3.
  auto r = Decode({1, 2, 3}, GroupBuffer(100, 100, {{10, 1}, {30, 3}}));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].available);
  EXPECT_EQ((*r)[0].value, 10);
  EXPECT_FALSE((*r)[1].available);
  EXPECT_TRUE(std::isnan((*r)[1].value));
  EXPECT_NE((*r)[1].note.find("missing from its group's read"), std::string::npos);
  EXPECT_EQ((*r)[2].value, 30);
}

TEST(DecodeGroupRead, MembersAreFoundByIdNotPosition) {
  auto r = Decode({7, 9}, GroupBuffer(10, 10, {{90, 9}, {70, 7}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].value, 70);
  EXPECT_EQ((*r)[1].value, 90);
}

TEST(DecodeGroupRead, TornOrInconsistentReadsAreErrors) {
  const auto full = GroupBuffer(10, 10, {{1, 1}, {2, 2}});
  EXPECT_FALSE(DecodeGroupRead(std::vector<uint64_t>{1, 2}, full.data(), 16).ok());  // header cut
  // nr says 2 pairs, the buffer holds 1.
  EXPECT_FALSE(DecodeGroupRead(std::vector<uint64_t>{1, 2}, full.data(), 5 * 8).ok());
  auto running_gt_enabled = GroupBuffer(10, 11, {{1, 1}});
  EXPECT_FALSE(Decode({1}, running_gt_enabled).ok());
  EXPECT_EQ(GroupReadBytes(2), full.size() * sizeof(uint64_t));
}

TEST(HardwareGrouping, GroupsFitThePmuWithTheWatchdogCounterTaken) {
  EXPECT_EQ(HardwareGroupSize(1), 3);
  EXPECT_EQ(HardwareGroupSize(0), 4);
  const auto g = PlanHardwareGroups(6, HardwareGroupSize(1));  // the default set: 6 hardware
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0], (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(g[1], (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(PlanHardwareGroups(5, 4).back(), (std::vector<int>{4}));
  EXPECT_TRUE(PlanHardwareGroups(0, 3).empty());
  for (const auto& group : PlanHardwareGroups(13, 3)) EXPECT_LE(group.size(), 3u);
}

}  // namespace
}  // namespace vhostlab::counters
