// Experiment layer: profile parsing (every shipped profile loads; typos are errors with a line),
// RunExperiment against the in-process backend (record, metrics, JSON) and its error paths.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>

#include "core/experiment/dpdk_peer.hpp"
#include "core/experiment/profile.hpp"
#include "core/experiment/run.hpp"

namespace vhostlab::experiment {
namespace {

TEST(Profile, EveryShippedProfileLoads) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(VHOSTLAB_SOURCE_DIR "/profiles")) {
    if (e.path().extension() != ".toml") continue;
    ++n;
    auto p = LoadProfile(e.path().string());
    ASSERT_TRUE(p.ok()) << e.path() << ": " << p.error().message;
    EXPECT_FALSE(p->description.empty()) << e.path();
    for (const auto& r : p->runs) EXPECT_TRUE(r.packets > 0 || r.seconds > 0) << e.path();
  }
  EXPECT_GE(n, 5);
  auto d = LoadProfile("default");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->base.profile, "default");
}

TEST(Profile, WorkloadKeysApply) {
  auto p = ParseProfile(R"(
name = "t"
description = "x"
[workload]
queues = 2
ring_size = 512
page_size = "2m"
mapping = "lazy"
iommu = false
packets = 77
cpus = [1, 0]
)",
                        "t.toml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  const RunConfig& c = p->base;
  EXPECT_EQ(c.queue_pairs, 2u);
  EXPECT_EQ(c.ring_size, 512u);
  EXPECT_EQ(c.page_size, 2ull << 20);
  EXPECT_EQ(c.mapping, "lazy");
  EXPECT_FALSE(c.iommu);
  EXPECT_EQ(c.packets, 77u);
  EXPECT_EQ(c.cpus, (std::vector<int>{1, 0}));
  EXPECT_EQ(c.profile, "t");
  ASSERT_EQ(p->runs.size(), 1u);
}

TEST(Profile, SweepExpandsCartesianProduct) {
  auto p = ParseProfile(R"(
[workload]
packets = 10
[sweep]
page_size = ["4k", "2m"]
mapping = ["static", "cold", "lazy"]
)",
                        "s.toml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(p->runs.size(), 6u);
  EXPECT_EQ(p->runs[0].page_size, 4096u);
  EXPECT_EQ(p->runs[0].mapping, "static");
  EXPECT_EQ(p->runs[5].page_size, 2ull << 20);
  EXPECT_EQ(p->runs[5].mapping, "lazy");
}

TEST(Profile, ErrorsNameTheFileLineAndKey) {
  auto p = ParseProfile("[workload]\npackets = 1\npakets = 2\n", "typo.toml");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("typo.toml:3"), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("pakets"), std::string::npos);
  EXPECT_FALSE(ParseProfile("[workload]\npage_size = \"1g\"\n", "x").ok());
  EXPECT_FALSE(ParseProfile("[workload]\nqueues = \"two\"\n", "x").ok());
  EXPECT_FALSE(ParseProfile("[workloads]\n", "x").ok());
  EXPECT_FALSE(ParseProfile("[sweep]\nmapping = []\n", "x").ok());
  EXPECT_FALSE(ParseProfile("[workload\n", "x").ok());
  EXPECT_FALSE(LoadProfile("no-such-profile").ok());
}

TEST(RunExperiment, SelfBackendRecordIsComplete) {
  RunConfig c;
  c.backend = "self";
  c.packets = 20000;
  c.timeout_seconds = 60;
  double last_progress = -1;
  c.progress = [&](double f) { last_progress = f; };
  auto r = RunExperiment(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->Get("packets"), 20000);
  EXPECT_EQ(r->Get("verify_errors"), 0);
  EXPECT_EQ(r->Get("drops"), 0);
  EXPECT_GT(r->Get("mpps"), 0);
  EXPECT_GT(r->Get("iotlb_updates"), 0);
  EXPECT_EQ(r->Get("packets", 0), 20000);
  EXPECT_TRUE(std::isnan(r->Get("no_such_metric")));
  // No invalidation happened: its latency is unavailable, not zero.
  bool saw_unavailable = false;
  for (const auto& m : r->metrics)
    if (m.name == "invalidate_ack_ns_p50") saw_unavailable = !m.available && !m.note.empty();
  EXPECT_TRUE(saw_unavailable);
  // Counter rows for both sides; anything unavailable says why and carries no number.
  int counter_rows = 0;
  for (const auto& m : r->metrics) {
    if (m.name.rfind("counter:", 0) != 0) continue;
    ++counter_rows;
    if (!m.available) {
      EXPECT_FALSE(m.note.empty()) << m.name;
      EXPECT_TRUE(std::isnan(m.value)) << m.name;
    }
  }
  EXPECT_GT(counter_rows, 0);
  bool saw_backend = false;
  for (const auto& m : r->metrics) saw_backend |= m.side == "backend";
  EXPECT_TRUE(saw_backend);
  for (const char* k : {"cpu_model", "kernel", "compiler", "git_sha", "hostname", "build_type"})
    EXPECT_TRUE(r->context.count(k)) << k;
  std::string json = r->ToJson();
  EXPECT_NE(json.find("\"schema_version\": 1"), std::string::npos);
  EXPECT_NE(json.find("\"name\": \"mpps\""), std::string::npos);
  EXPECT_NE(json.find("\"value\": null"), std::string::npos);
  EXPECT_GE(last_progress, 0.0);
}

TEST(RunExperiment, StopFlagEndsATimedRunEarly) {
  RunConfig c;
  c.backend = "self";
  c.seconds = 60;
  std::atomic<bool> stop{true};
  c.stop = &stop;
  auto r = RunExperiment(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_LT(r->Get("seconds"), 30);
  EXPECT_EQ(r->Get("verify_errors"), 0);
  EXPECT_EQ(r->Get("drops"), 0);
}

TEST(RunExperiment, SinkModeChecksMatch) {
  RunConfig c;
  c.mode = "sink";
  c.packets = 10000;
  c.timeout_seconds = 60;
  auto r = RunExperiment(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->Get("packets"), 10000);
  EXPECT_EQ(r->Get("sink_checksum_match"), 1);
  EXPECT_EQ(r->Get("verify_errors"), 0);
}

TEST(RunExperiment, ClearErrors) {
  RunConfig c;
  c.packets = 10;
  c.backend = "qemu";
  auto r = RunExperiment(c);
  EXPECT_FALSE(r.ok());
  c.backend = "self";
  c.counters = {"no-such-event"};
  r = RunExperiment(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no-such-event"), std::string::npos) << r.error().message;
  c.counters.clear();
  c.mapping = "eager";
  EXPECT_FALSE(RunExperiment(c).ok());
  c.mapping = "static";
  c.backend = "dpdk";
  c.dpdk_testpmd = "/nonexistent/dpdk-testpmd";
  r = RunExperiment(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not found"), std::string::npos) << r.error().message;
  c.backend = "socket:/nonexistent/vhost.sock";
  c.timeout_seconds = 30;
  r = RunExperiment(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("connect"), std::string::npos) << r.error().message;
}

TEST(PageSize, Parse) {
  EXPECT_EQ(ParsePageSize("4k").value(), 4096u);
  EXPECT_EQ(ParsePageSize("2M").value(), 2ull << 20);
  EXPECT_FALSE(ParsePageSize("1g").ok());
  EXPECT_EQ(PageSizeName(4096), "4k");
  EXPECT_EQ(PageSizeName(2ull << 20), "2m");
}

}  // namespace
}  // namespace vhostlab::experiment
