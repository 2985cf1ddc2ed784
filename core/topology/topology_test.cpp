// Tests of the hwloc topology snapshot and binding on the real machine: the numbers must agree
// with what the kernel says (sysconf, sched_getaffinity), whatever the machine.
#include "core/topology/topology.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

namespace vhostlab::topology {
namespace {

TEST(Topology, AgreesWithTheKernel) {
  auto t = Topology::Load();
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->pus(), sysconf(_SC_NPROCESSORS_ONLN));
  ASSERT_GE(t->cores().size(), 1u);
  EXPECT_GE(t->packages(), 1);
  std::set<int> pus;
  for (size_t i = 0; i < t->cores().size(); ++i) {
    const CoreInfo& c = t->cores()[i];
    EXPECT_EQ(c.index, static_cast<int>(i));
    ASSERT_FALSE(c.pus.empty());
    for (int pu : c.pus) EXPECT_TRUE(pus.insert(pu).second) << "PU " << pu << " in two cores";
  }
  EXPECT_EQ(static_cast<int>(pus.size()), t->pus());
  ASSERT_GE(t->numa_nodes().size(), 1u);
  EXPECT_GT(t->numa_nodes()[0].local_memory_bytes, 0u);
}

TEST(Topology, CachesHaveSizesAndSharing) {
  auto t = Topology::Load();
  ASSERT_TRUE(t.ok());
  bool have_l1d = false;
  for (const CacheInfo& c : t->caches()) {
    EXPECT_GE(c.level, 1);
    EXPECT_GT(c.size_bytes, 0u);
    EXPECT_FALSE(c.cores.empty()) << "L" << c.level << " shared by no core";
    EXPECT_FALSE(c.pus.empty());
    if (c.level == 1 && c.type == "data") {
      have_l1d = true;
      EXPECT_EQ(c.cores.size(), 1u);  // an L1d belongs to one core
      EXPECT_TRUE(c.line_bytes == 64 || c.line_bytes == 128) << c.line_bytes;
    }
  }
  EXPECT_TRUE(have_l1d);
  EXPECT_NE(t->Describe().find("L1d"), std::string::npos);
}

TEST(Topology, BindThisThreadToEachCore) {
  auto t = Topology::Load();
  ASSERT_TRUE(t.ok());
  for (const CoreInfo& core : t->cores()) {
    // A fresh thread per core, so the test thread's own affinity is left as it was.
    std::thread th([&] {
      Status s = t->BindThisThreadToCore(core.index);
      ASSERT_TRUE(s.ok()) << s.message();
      cpu_set_t set;
      CPU_ZERO(&set);
      ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof set, &set), 0);
      EXPECT_EQ(CPU_COUNT(&set), static_cast<int>(core.pus.size()));
      for (int pu : core.pus) EXPECT_TRUE(CPU_ISSET(pu, &set));
      sched_yield();
      const int cpu = Topology::CurrentCpu();
      EXPECT_NE(std::find(core.pus.begin(), core.pus.end(), cpu), core.pus.end()) << cpu;
    });
    th.join();
  }
}

TEST(Topology, BindOutOfRangeIsAnError) {
  auto t = Topology::Load();
  ASSERT_TRUE(t.ok());
  Status s = t->BindThisThreadToCore(static_cast<int>(t->cores().size()));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("out of range"), std::string::npos);
  EXPECT_FALSE(t->BindThisThreadToCore(-1).ok());
}

TEST(Topology, ContextNamesTheBasics) {
  auto t = Topology::Load();
  ASSERT_TRUE(t.ok());
  auto ctx = t->Context();
  ASSERT_GE(ctx.size(), 4u);
  EXPECT_EQ(ctx[1].first, "cores");
  EXPECT_EQ(ctx[1].second, std::to_string(t->cores().size()));
}

TEST(FormatBytes, PowersOfTwo) {
  EXPECT_EQ(FormatBytes(48 * 1024), "48 KiB");
  EXPECT_EQ(FormatBytes(2 * 1024 * 1024), "2 MiB");
  EXPECT_EQ(FormatBytes(1000), "1000 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
}

}  // namespace
}  // namespace vhostlab::topology
