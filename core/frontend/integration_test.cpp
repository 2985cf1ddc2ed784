// Integration: our front-end and our backend in SEPARATE processes over a real Unix socket.
//
// The backend runs in a forked child (backend::CreateBackend there, its own threads and its own
// mappings of the memfds it receives); the parent runs the front-end. When the parent closes the
// control pipe, the child stops its backend and sends back its counters, so the test can check
// that both sides saw the same IOTLB traffic. Every wait is bounded; nothing asserts speed.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/backend/backend.hpp"
#include "core/frontend/backend_process.hpp"
#include "core/frontend/frontend.hpp"

namespace vhostlab::frontend {
namespace {

FrontendConfig Config(const std::string& socket, Mapping mapping, uint64_t page_size = 4096) {
  FrontendConfig c;
  c.socket_path = socket;
  c.mapping = mapping;
  c.page_size = page_size;
  c.packets = 20000;
  c.ring_size = 256;
  c.scatter = true;
  c.stall_seconds = 10;
  return c;
}

// What must hold after every run against our backend: every packet back, byte-identical, none
// dropped, and the backend's view of the IOTLB traffic equal to ours.
void ExpectClean(const FrontendResult& r, const FrontendConfig& c, BackendProcess& backend) {
  uint64_t warmup = 0;
  for (const auto& q : r.queues) {
    warmup += q.warmup_packets;
    EXPECT_TRUE(q.error.empty()) << "queue " << q.queue_pair << ": " << q.error;
    EXPECT_EQ(q.tx_packets, q.rx_packets) << "queue " << q.queue_pair;
  }
  EXPECT_EQ(r.rx_packets(), c.packets);
  EXPECT_EQ(r.verify_errors(), 0u);
  EXPECT_EQ(r.drops(), 0u);
  EXPECT_EQ(r.misses_unresolved, 0u);
  EXPECT_EQ(r.backend_channel_errors, 0u);
  ChildStats s{};
  ASSERT_TRUE(backend.Finish(&s)) << "backend child did not report";
  EXPECT_EQ(s.iotlb_updates, r.viommu.updates) << "backend applied every UPDATE we sent";
  EXPECT_EQ(s.iotlb_invalidates, r.viommu.invalidates);
  EXPECT_EQ(s.drops, 0u) << "a miss must never drop a packet";
  EXPECT_EQ(s.rx_packets, c.packets + warmup) << "the warm-up's packets came back too";
}

TEST(FrontendBackendProcesses, StaticScatter4kVerifiesEveryByte) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  ASSERT_NE(backend.pid(), getpid());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->negotiated.iommu());
  // Rings + both pools pushed page by page at 4 KiB: one entry per page (transmit buffers of
  // 2 KiB; receive buffers of 1548 bytes, MRG_RXBUF being negotiated by default).
  EXPECT_TRUE(r->negotiated.mrg_rxbuf());
  EXPECT_GT(r->viommu.updates, 128u + 256u * kDefaultMrgBufferBytes / 4096);
  EXPECT_EQ(r->viommu.invalidates, 0u);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, ColdMappingMissesAreServed) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kCold);
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  // Only the used rings were pushed; everything else came from MISS answers.
  EXPECT_GT(r->viommu.misses_served, 0u);
  EXPECT_EQ(r->viommu.misses_served, r->viommu.miss_updates);
  EXPECT_EQ(r->viommu.updates, r->viommu.miss_updates + 2);
  EXPECT_EQ(r->misses_received, r->viommu.misses_served);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, StrictInvalidatesEveryBufferDuringTraffic) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStrict);
  c.packets = 5000;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  // One acked INVALIDATE per completed buffer, transmit and receive, while traffic runs.
  EXPECT_GE(r->viommu.invalidates, 2 * c.packets);
  EXPECT_EQ(r->viommu.invalidate_ack_ns.size(), r->viommu.invalidates);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, LazyBatchesInvalidations) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kLazy);
  c.packets = 5000;
  c.flush_batch = 64;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  uint64_t unmaps = 0;
  for (const auto& q : r->queues) unmaps += q.unmaps;
  EXPECT_GT(r->viommu.invalidates, 0u);
  EXPECT_LT(r->viommu.invalidates, unmaps) << "deferred invalidations are batched";
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, TwoMegPagesAndIommuOff) {
  {
    BackendProcess backend(1);
    ASSERT_TRUE(backend.ready());
    FrontendConfig c = Config(backend.socket(), Mapping::kStatic, 2ull << 20);
    auto r = RunFrontend(c);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ExpectClean(*r, c, backend);
  }
  {
    BackendProcess backend(1);
    ASSERT_TRUE(backend.ready());
    FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
    c.iommu = false;
    auto r = RunFrontend(c);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->negotiated.iommu());
    EXPECT_EQ(r->viommu.updates, 0u);
    ExpectClean(*r, c, backend);
  }
}

TEST(FrontendBackendProcesses, TwoQueuePairsFromTwoThreads) {
  BackendProcess backend(2);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.queue_pairs = 2;
  c.cpus = {0, 1};
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->queues.size(), 2u);
  for (const auto& q : r->queues) EXPECT_EQ(q.rx_packets, c.packets / 2);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, VerificationCatchesAWrongTranslation) {
  // The checker must be able to fail: with two transmit pages swapped in the vIOMMU, the device
  // faithfully forwards bytes from the wrong guest page and the front-end must notice.
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.packets = 2000;
  c.inject_swapped_pages = true;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->verify_errors(), 0u);
  EXPECT_LT(r->queues[0].rx_packets, c.packets);
}

TEST(FrontendBackendProcesses, WorkingSetSpreadsBuffersOverEveryPage) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.working_set = 8ull << 20;  // 2048 pages of 4 KiB, 8x what a ring of 256 needs
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  // Both pools pushed page by page, and a warm-up lap over every buffer position first.
  EXPECT_GE(r->viommu.updates, 2048u);
  EXPECT_GE(r->queues[0].warmup_packets, (8ull << 20) / 2 / 2048 - 2);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, StormInvalidatesAndRemapsIdlePagesDuringTraffic) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.working_set = 4ull << 20;
  c.storm_interval = 1000;
  c.storm_burst = 64;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const QueueResult& q = r->queues[0];
  EXPECT_GE(q.storm_bursts, c.packets / c.storm_interval - 1);
  EXPECT_GT(q.storm_pages, q.storm_bursts * c.storm_burst / 2) << "most of each burst was idle";
  // One acked INVALIDATE and one UPDATE per recycled page, on top of the initial pushes.
  EXPECT_EQ(r->viommu.invalidates, q.storm_pages);
  EXPECT_EQ(r->viommu.invalidate_ack_ns.size(), r->viommu.invalidates);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, ColdStormIsServedByMisses) {
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kCold);
  c.working_set = 4ull << 20;
  c.storm_interval = 2000;
  c.storm_burst = 32;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->queues[0].storm_pages, 0u);
  // Nothing pushed but the used rings: the remapped pages come back as MISS answers.
  EXPECT_EQ(r->viommu.updates, r->viommu.miss_updates + 2);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, VerificationCatchesAStaleTranslationAfterARemap) {
  // The storm's check must be able to fail: pages moved in the guest's table without an
  // INVALIDATE leave the backend translating to the old pages.
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.working_set = 4ull << 20;
  c.storm_interval = 1000;
  c.storm_burst = 64;
  c.inject_silent_storm = true;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->verify_errors(), 0u);
  EXPECT_EQ(r->viommu.invalidates, 0u);
}

TEST(FrontendBackendProcesses, SinkModeBackendReadsExactlyTheBytesSent) {
  BackendProcess backend(1, backend::DeviceMode::kSink);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kCold);
  c.sink = true;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rx_packets(), c.packets);
  EXPECT_GT(r->viommu.misses_served, 0u);
  ChildStats s{};
  ASSERT_TRUE(backend.Finish(&s));
  EXPECT_EQ(s.tx_packets, c.packets);
  EXPECT_EQ(s.rx_packets, 0u);
  EXPECT_EQ(s.checksum, r->sent_byte_sum()) << "every frame byte read through the IOTLB";
  EXPECT_EQ(s.drops, 0u);
}

// EVENT_IDX and MRG_RXBUF, each acked or not (our backend offers both): every packet comes
// back byte-identical either way, the features negotiated are the ones asked for, and the
// notification counts are what the ring flags promise.
TEST(FrontendBackendProcesses, EventIdxAndMrgRxbufOnAndOff) {
  for (bool event_idx : {false, true}) {
    for (bool mrg : {false, true}) {
      SCOPED_TRACE(std::string("event_idx ") + (event_idx ? "on" : "off") + ", mrg_rxbuf " +
                   (mrg ? "on" : "off"));
      BackendProcess backend(1);
      ASSERT_TRUE(backend.ready());
      FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
      c.packets = 5000;
      c.event_idx = event_idx;
      c.mrg_rxbuf = mrg;
      c.packet_sizes = {64, 1500, 9000};
      auto r = RunFrontend(c);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->negotiated.event_idx(), event_idx);
      EXPECT_EQ(r->negotiated.mrg_rxbuf(), mrg);
      const QueueResult& q = r->queues[0];
      // 9000-byte frames take 6 buffers of 1548 bytes, the others one.
      EXPECT_EQ(q.rx_buffers, mrg ? c.packets / 3 * 8 + 2 : c.packets);
      EXPECT_EQ(q.rx_bytes, (64 + 1500 + 9000) * (c.packets / 3) + 64 + 1500);
      // Without EVENT_IDX the driver sets NO_INTERRUPT; with it, used_event stays behind and
      // the device may signal once per 65536 used entries of each ring.
      EXPECT_LE(q.interrupts, event_idx ? 2 * (2 * q.rx_buffers / 65536 + 1) : 0u);
      EXPECT_LE(q.kicks, 2 * q.tx_packets) << "at most one kick per ring per packet";
      ExpectClean(*r, c, backend);
    }
  }
}

TEST(FrontendBackendProcesses, MergeableBuffersSmallerThanAnyFrame) {
  // 256-byte receive buffers: every frame but the 64-byte one spans several, up to 36.
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.packets = 3000;
  c.packet_sizes = {64, 245, 1500, 9000, 777};
  c.rx_buffer_size = 256;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->negotiated.mrg_rxbuf());
  // Buffers per frame: ceil((12 + size) / 256) = 1, 2, 6, 36, 4.
  EXPECT_EQ(r->queues[0].rx_buffers, (1 + 2 + 6 + 36 + 4) * (c.packets / 5));
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, VerificationCatchesAWrongTranslationInMergedFrames) {
  // The reassembled check must be able to fail too: 9000-byte frames read by the device from
  // swapped transmit pages arrive across 6 buffers each, and the front-end must notice.
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStatic);
  c.packets = 600;
  c.packet_sizes = {9000, 64};
  c.scatter = false;  // transmit slot 0 then starts on page 0 (with scatter, past page 1)
  c.inject_swapped_pages = true;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->negotiated.mrg_rxbuf());
  EXPECT_GT(r->verify_errors(), 0u);
  EXPECT_LT(r->queues[0].rx_packets, c.packets);
}

TEST(FrontendBackendProcesses, JumboMixWithMappingsPerBuffer) {
  // Strict mapping with merged frames: every receive buffer of a frame is unmapped (acked
  // INVALIDATE) before the frame is read, and mapped afresh when posted again.
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStrict);
  c.packets = 1000;
  c.packet_sizes = {9000, 64};
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(r->viommu.invalidates, c.packets + r->queues[0].rx_buffers);
  ExpectClean(*r, c, backend);
}

TEST(FrontendBackendProcesses, TrafficRunnerSettings) {
  // A target rate, small bursts and an untimed warm-up: every packet still comes back checked,
  // the warm-up's packets are not counted, and the schedule bounds the run's length from below.
  BackendProcess backend(1);
  ASSERT_TRUE(backend.ready());
  FrontendConfig c = Config(backend.socket(), Mapping::kStrict);
  c.packets = 2000;
  c.rate = 20000;  // packet k no earlier than k / 20000 s after the start: the last at 100 ms
  c.burst = 4;
  c.warmup_packets = 300;
  auto r = RunFrontend(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->queues[0].warmup_packets, 300u);
  EXPECT_GE(r->queues[0].elapsed_ns, 99'000'000u);
  ExpectClean(*r, c, backend);
  c.burst = 0;
  EXPECT_FALSE(RunFrontend(c).ok());
  c.burst = 32;
  c.rate = -1;
  EXPECT_FALSE(RunFrontend(c).ok());
}

}  // namespace
}  // namespace vhostlab::frontend
