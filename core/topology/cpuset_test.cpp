// Tests of CPU-list parsing (hwloc syntax, plain ordered lists, clear errors), the machine check
// and hwloc thread binding on the real machine (whatever its CPU count).
#include "core/topology/cpuset.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <thread>

namespace vhostlab::topology {
namespace {

TEST(ParseCpuList, HwlocListsAndMasks) {
  EXPECT_EQ(ParseCpuList("0-3,8").value(), (std::vector<int>{0, 1, 2, 3, 8}));
  EXPECT_EQ(ParseCpuList("8,0-1").value(), (std::vector<int>{0, 1, 8}));  // a set: sorted
  EXPECT_EQ(ParseCpuList(" 2-2 ").value(), (std::vector<int>{2}));
  EXPECT_EQ(ParseCpuList("0xf").value(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(ParseCpuList("0x1,0x0").value(), (std::vector<int>{32}));
}

TEST(ParseCpuList, PlainListsKeepTheirOrder) {
  EXPECT_EQ(ParseCpuList("1,0").value(), (std::vector<int>{1, 0}));
  EXPECT_EQ(ParseCpuList("3").value(), (std::vector<int>{3}));
  EXPECT_EQ(ParseCpuList("1,1,0").value(), (std::vector<int>{1, 1, 0}));
}

TEST(ParseCpuList, BadListsSayWhatIsWrong) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"", "empty"}, Case{"1,,2", "empty item"}, Case{"3-1", "backwards"},
                        Case{"2-", "not a range"}, Case{"a", "not a CPU id"},
                        Case{"-1", "not a range"}, Case{"1;2", "not a CPU id"},
                        Case{"99999999", "not a CPU id"}, Case{"0-70000", "not a range"},
                        Case{"0xzz", "hex digits"}, Case{"0x0", "names no CPU"}}) {
    auto r = ParseCpuList(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos)
        << c.text << ": " << r.error().message;
  }
}

TEST(FormatCpuList, RangesLikeHwloc) {
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 8}), "0-3,8");
  EXPECT_EQ(FormatCpuList({5}), "5");
  EXPECT_EQ(FormatCpuList({}), "");
}

TEST(AllowedCpus, AgreeWithTheKernel) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const std::vector<int> cpus = AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_EQ(static_cast<int>(cpus.size()), CPU_COUNT(&set));
  for (int c : cpus) EXPECT_TRUE(CPU_ISSET(c, &set)) << c;
  std::size_t in_cores = 0;
  for (const auto& core : AllowedCores()) {
    EXPECT_FALSE(core.empty());
    in_cores += core.size();
  }
  EXPECT_EQ(in_cores, cpus.size());
}

TEST(CheckCpusAllowed, ACpuOutsideTheMachineIsAClearError) {
  const std::vector<int> allowed = AllowedCpus();
  EXPECT_TRUE(CheckCpusAllowed(allowed, allowed, "cpus").ok());
  const int missing = kMaxCpuId;
  Status s = CheckCpusAllowed({allowed.front(), missing}, allowed, "--backend-cpus");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--backend-cpus: CPU " + std::to_string(missing) +
                             " is not available to this process (allowed: " +
                             FormatCpuList(allowed) + ")"),
            std::string::npos)
      << s.message();
}

TEST(Bind, EachAllowedCpuThenRestored) {
  const std::vector<int> cpus = AllowedCpus();
  // A fresh thread, so the test thread's own binding is left as it was.
  std::thread th([&] {
    const std::vector<int> before = ThisThreadCpus();
    for (int cpu : cpus) {
      {
        ScopedThreadBinding bind({cpu});
        ASSERT_TRUE(bind.status().ok()) << bind.status().message();
        EXPECT_EQ(ThisThreadCpus(), (std::vector<int>{cpu}));
        sched_yield();
        EXPECT_EQ(sched_getcpu(), cpu);
      }
      EXPECT_EQ(ThisThreadCpus(), before) << "restored after the scope";
    }
    EXPECT_FALSE(BindThisThreadToCpus({}).ok());
  });
  th.join();
}

}  // namespace
}  // namespace vhostlab::topology
