// Tests of the run's placement policy on synthetic machines (1 to 16 cores, with and without SMT
// siblings): apart when there are enough cores, shared (and saying so) when there are not,
// explicit lists honoured and checked.
#include "core/experiment/placement.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace vhostlab::experiment {
namespace {

// n cores of one PU each, numbered 0..n-1; with smt, core i has PUs i and i + n.
std::vector<std::vector<int>> Machine(int n, bool smt = false) {
  std::vector<std::vector<int>> cores;
  for (int i = 0; i < n; ++i) cores.push_back(smt ? std::vector<int>{i, i + n} : std::vector<int>{i});
  return cores;
}

PlacementRequest Self(uint32_t queue_pairs) {
  PlacementRequest r;
  r.frontend_threads = queue_pairs;
  r.backend_threads = queue_pairs;
  return r;
}

TEST(Placement, EnoughCoresKeepEverySideApart) {
  auto p = PlanPlacement(Self(2), Machine(8));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_FALSE(p->shared) << p->why_shared;
  EXPECT_EQ(p->frontend, (std::vector<int>{7, 6}));  // from the top, as --cpus always defaulted
  ASSERT_EQ(p->backend.size(), 2u);
  EXPECT_EQ(p->backend[0], (std::vector<int>{0}));  // from the bottom
  EXPECT_EQ(p->backend[1], (std::vector<int>{1}));
  EXPECT_EQ(p->control, (std::vector<int>{2, 3, 4, 5}));  // whatever is left
  EXPECT_EQ(p->BackendWorkerCpus(), (std::vector<int>{0, 1}));
  EXPECT_EQ(p->Describe("backend"),
            "frontend q0:cpu7 q1:cpu6; backend q0:cpu0 q1:cpu1; control: cpu2-5");
}

TEST(Placement, TheSmallestMachineThatKeepsThemApart) {
  // One front-end thread, one worker and the control threads: three cores.
  auto p = PlanPlacement(Self(1), Machine(3));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->shared);
  EXPECT_EQ(p->frontend, (std::vector<int>{2}));
  EXPECT_EQ(p->backend[0], (std::vector<int>{0}));
  EXPECT_EQ(p->control, (std::vector<int>{1}));
}

TEST(Placement, SmtSiblingsAreNotUsedForPinnedThreads) {
  auto p = PlanPlacement(Self(2), Machine(6, true));  // PUs 0-11, core i = {i, i+6}
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->shared);
  EXPECT_EQ(p->frontend, (std::vector<int>{5, 4}));
  EXPECT_EQ(p->backend[0], (std::vector<int>{0}));
  EXPECT_EQ(p->backend[1], (std::vector<int>{1}));
  // Control threads get the left cores, both PUs each.
  EXPECT_EQ(p->control, (std::vector<int>{2, 3, 8, 9}));
}

TEST(Placement, TwoCpusShareAsBeforeAndSaySo) {
  auto p = PlanPlacement(Self(1), Machine(2));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->shared);
  EXPECT_NE(p->why_shared.find("2 CPUs (2 cores) for 1 front-end queue thread, 1 backend thread"),
            std::string::npos)
      << p->why_shared;
  EXPECT_NE(p->why_shared.find("takes 3 cores"), std::string::npos) << p->why_shared;
  EXPECT_EQ(p->frontend, (std::vector<int>{1}));
  EXPECT_EQ(p->backend[0], (std::vector<int>{0, 1}));  // the worker floats (see placement.hpp)
  EXPECT_TRUE(p->BackendWorkerCpus().empty());
  EXPECT_EQ(p->control, (std::vector<int>{0, 1}));
  EXPECT_EQ(p->Describe("backend"), "frontend q0:cpu1; backend q0:cpu0-1; control: cpu0-1");
}

TEST(Placement, ManyQueuesOnFewCoresWrapFromTheTop) {
  auto p = PlanPlacement(Self(4), Machine(2));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->shared);
  EXPECT_EQ(p->frontend, (std::vector<int>{1, 0, 1, 0}));
  EXPECT_EQ(p->backend.size(), 4u);
  EXPECT_NE(p->why_shared.find("takes 9 cores"), std::string::npos) << p->why_shared;
}

TEST(Placement, ABusyPollingPeerStaysPinnedAndTheFrontEndAvoidsIt) {
  PlacementRequest r;
  r.frontend_threads = 2;
  r.backend_threads = 1;
  r.backend_floats_when_shared = false;
  r.backend_label = "testpmd";
  auto p = PlanPlacement(r, Machine(2));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->shared);
  EXPECT_EQ(p->backend[0], (std::vector<int>{0}));
  EXPECT_EQ(p->frontend, (std::vector<int>{1, 1}));  // never on testpmd's CPU
  EXPECT_EQ(p->BackendWorkerCpus(), (std::vector<int>{0}));
  EXPECT_EQ(p->Describe("testpmd", false), "frontend q0:cpu1 q1:cpu1; testpmd t0:cpu0; control: cpu0-1");
  auto one = PlanPlacement(r, Machine(1));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->frontend, (std::vector<int>{0, 0}));  // nowhere else to go
}

TEST(Placement, AnExternalPeerIsNotPlaced) {
  PlacementRequest r;
  r.frontend_threads = 1;
  auto p = PlanPlacement(r, Machine(2));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->shared);
  EXPECT_EQ(p->Describe("backend"), "frontend q0:cpu1; backend: not placed (external); control: cpu0");
  r.backend_cpus = {0};
  auto bad = PlanPlacement(r, Machine(2));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("not ours to place"), std::string::npos);
}

TEST(Placement, ExplicitListsAreHonouredAndTheRestPlannedAround) {
  PlacementRequest r = Self(2);
  r.frontend_cpus = {3, 2};
  auto p = PlanPlacement(r, Machine(8));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->shared);
  EXPECT_EQ(p->frontend, (std::vector<int>{3, 2}));
  EXPECT_EQ(p->backend[0], (std::vector<int>{0}));
  EXPECT_EQ(p->backend[1], (std::vector<int>{1}));
  EXPECT_EQ(p->control, (std::vector<int>{4, 5, 6, 7}));
  r.backend_cpus = {5};  // two workers on one CPU: shared, and said
  p = PlanPlacement(r, Machine(8));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->shared);
  EXPECT_NE(p->why_shared.find("2 backend threads on 1 CPU (backend_cpus)"), std::string::npos)
      << p->why_shared;
  EXPECT_EQ(p->backend[1], (std::vector<int>{5}));
  r.backend_cpus = {3, 4};  // overlaps the front-end
  p = PlanPlacement(r, Machine(8));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->shared);
  EXPECT_NE(p->why_shared.find("share CPU 3"), std::string::npos) << p->why_shared;
}

TEST(Placement, CpusOutsideTheMachineAreErrors) {
  PlacementRequest r = Self(1);
  r.frontend_cpus = {9};
  auto p = PlanPlacement(r, Machine(2));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message, "cpus: CPU 9 is not available to this process (allowed: 0-1)");
  r.frontend_cpus.clear();
  r.backend_cpus = {2};
  p = PlanPlacement(r, Machine(2));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("backend_cpus: CPU 2"), std::string::npos);
  EXPECT_FALSE(PlanPlacement(Self(1), {}).ok());
}

// Every thread of every plan has a CPU of the machine, on 1..16 cores and 1..8 queue pairs.
TEST(Placement, EveryThreadIsPlacedOnTheMachine) {
  for (int n = 1; n <= 16; ++n) {
    for (uint32_t q = 1; q <= 8; ++q) {
      auto p = PlanPlacement(Self(q), Machine(n));
      ASSERT_TRUE(p.ok());
      ASSERT_EQ(p->frontend.size(), q);
      ASSERT_EQ(p->backend.size(), q);
      EXPECT_FALSE(p->control.empty());
      EXPECT_EQ(p->shared, n < static_cast<int>(2 * q + 1)) << n << " cores, " << q << " pairs";
      std::set<int> used;
      for (int c : p->frontend) {
        EXPECT_GE(c, 0);
        EXPECT_LT(c, n);
        used.insert(c);
      }
      if (!p->shared) {
        for (const auto& b : p->backend) {
          ASSERT_EQ(b.size(), 1u);
          EXPECT_TRUE(used.insert(b.front()).second) << "apart means one core each";
        }
        for (int c : p->control) EXPECT_FALSE(used.count(c));
      }
    }
  }
}

}  // namespace
}  // namespace vhostlab::experiment
