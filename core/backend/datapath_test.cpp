// Datapath tests: real traffic through the queue workers, over a real Unix socket, with guest
// memory in a memfd. Every received byte is verified; counters must show no drops. Covers
// IOMMU off (GPA descriptors), IOMMU on with pushed 4 KiB mappings, cold misses served by a
// vIOMMU thread, buffers across IOTLB entries whose host pages are not adjacent, INVALIDATEs
// during traffic, ACCESS_FAIL, malformed chains and rings outside mapped memory.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <mutex>

#include "core/backend/device.hpp"
#include "core/backend/test_frontend.hpp"
#include "core/backend/test_rig.hpp"
#include "core/iotlb/registry.hpp"
#include "core/memory/page_window.hpp"
#include "core/trace/replay.hpp"
#include "core/trace/trace.hpp"

namespace vhostlab::backend {
namespace {

using namespace testing;  // NOLINT: test helpers
TEST(DatapathTest, LoopbackWithoutIommuIsByteExact) {
  Rig rig(DeviceMode::kLoopback, false);
  rig.Start();
  rig.LoopbackAndVerify(300);
  uint64_t calls = 0;
  EXPECT_EQ(::read(rig.rx->call.get(), &calls, 8), 8) << "RX call eventfd signalled";
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.tx_packets, 300u);
  EXPECT_EQ(s.rx_packets, 300u);
  EXPECT_EQ(s.drops, 0u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.translations, 0u) << "no IOTLB without IOMMU_PLATFORM";
}

TEST(DatapathTest, LoopbackWithIommuStatic4kMappings) {
  Rig rig(DeviceMode::kLoopback, true);
  rig.fe.Setup(true);
  rig.MapRings();
  rig.Map(kTxBufs, 64 * kSlot, protocol::kIotlbPermRo);
  rig.Map(kRxBufs, 64 * kSlot, protocol::kIotlbPermWo);
  rig.AddQueues();
  rig.StartQueues();
  rig.LoopbackAndVerify(300);
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, 300u);
  EXPECT_GT(s.translations, 0u);
  EXPECT_EQ(s.iotlb_misses, 0u);
  EXPECT_EQ(s.drops, 0u);
  EXPECT_EQ(s.errors, 0u);
}

TEST(DatapathTest, ColdIommuMissesAreServedAndNothingIsDropped) {
  Rig rig(DeviceMode::kLoopback, true);
  rig.Start(true, MapMissedPage);
  rig.LoopbackAndVerify(200);
  rig.fe.StopMissServer();
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, 200u);
  EXPECT_GT(s.iotlb_misses, 0u);
  EXPECT_GT(s.retries, 0u) << "missed descriptors were retried";
  EXPECT_EQ(s.drops, 0u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_GT(rig.fe.misses_seen.load(), 0u);
  EXPECT_EQ(rig.be->backend->Stats().misses_sent, rig.fe.misses_seen.load());
}

// QEMU 7.2 sends SET_VRING_ENABLE for every ring right after SET_PROTOCOL_FEATURES and before
// SET_FEATURES, and never again before traffic. The rings must be enabled by those messages.
TEST(DatapathTest, QemuOrderEnablesRingsBeforeSetFeatures) {
  Rig rig(DeviceMode::kLoopback, true);
  ASSERT_TRUE(rig.fe.SendP(Request::kSetProtocolFeatures,
                           protocol::U64Payload{rig.fe.ProtocolFeatures()}).ok());
  for (uint32_t q = 0; q < 2; ++q)
    ASSERT_EQ(rig.fe.Call(Request::kSetVringEnable, protocol::VringState{q, 1}).value(), 0u);
  rig.fe.Setup(true);
  rig.fe.StartMissServer(MapMissedPage);
  rig.AddQueues();
  rig.StartQueues(/*enable=*/false);
  rig.LoopbackAndVerify(50);
  rig.fe.StopMissServer();
  EXPECT_EQ(rig.Stats().rx_packets, 50u);
  EXPECT_EQ(rig.be->backend->Stats().message_errors, 0u);
}

TEST(DatapathTest, BuffersAcrossEntriesWithNonAdjacentHostPages) {
  Rig rig(DeviceMode::kLoopback, true);
  rig.fe.Setup(true);
  rig.MapRings();
  // IOVA pages X, X+1 map to host pages in reverse order: a packet crossing the IOVA page
  // boundary must be split into two host pieces, never read as one contiguous run.
  constexpr uint64_t kTxIova = 0x5000'0000, kRxIova = 0x6000'0000;
  const uint64_t tx_host[2] = {kTxBufs + 3 * kPage, kTxBufs + 1 * kPage};
  const uint64_t rx_host[2] = {kRxBufs + 5 * kPage, kRxBufs + 2 * kPage};
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(rig.fe.Update(kTxIova + i * kPage, kPage, TestFrontend::Uaddr(tx_host[i]),
                            protocol::kIotlbPermRo).value(), 0u);
    ASSERT_EQ(rig.fe.Update(kRxIova + i * kPage, kPage, TestFrontend::Uaddr(rx_host[i]),
                            protocol::kIotlbPermWo).value(), 0u);
  }
  rig.AddQueues();
  rig.StartQueues();

  // Writes/reads `len` bytes at an IOVA through the two-page map.
  auto host = [&](const uint64_t pages[2], uint64_t base, uint64_t iova) {
    return rig.fe.mem() + pages[(iova - base) / kPage] + (iova - base) % kPage;
  };
  std::mt19937 rng(7);
  const uint32_t frame_len = 1400;
  const uint64_t tx_start = kTxIova + kPage - 700;  // header + frame straddle the boundary
  const uint64_t rx_start = kRxIova + kPage - 100;
  std::vector<uint8_t> packet(kHdr + frame_len, 0);
  for (std::size_t i = kHdr; i < packet.size(); ++i) packet[i] = static_cast<uint8_t>(rng());
  for (std::size_t i = 0; i < packet.size(); ++i) *host(tx_host, kTxIova, tx_start + i) = packet[i];
  rig.rx->Post({{rx_start, 2048, true}});
  rig.tx->Post({{tx_start, static_cast<uint32_t>(packet.size()), false}});
  ASSERT_TRUE(rig.rx->WaitUsed(1));
  ASSERT_EQ(rig.rx->TakeUsed().len, packet.size());
  for (std::size_t i = kHdr; i < packet.size(); ++i)
    ASSERT_EQ(*host(rx_host, kRxIova, rx_start + i), packet[i]) << "byte " << i;
  EXPECT_EQ(rig.Stats().errors, 0u);
}

TEST(DatapathTest, InvalidateDuringTrafficThenMissRetriesTheSameDescriptor) {
  Rig rig(DeviceMode::kSink, true);
  rig.fe.Setup(true);
  rig.MapRings();
  rig.tx = &rig.fe.AddQueue(1, kQueueSize, kTxRing);
  rig.fe.StartQueue(*rig.tx, [&](uint64_t off) { return rig.RingAddr(off); });
  std::mt19937 rng(3);
  uint64_t expected_sum = 0;
  // Strict mapping: map, send, unmap + INVALIDATE after every buffer.
  for (uint32_t i = 0; i < 100; ++i) {
    const uint32_t slot = i % 16;
    const std::vector<uint8_t> frame = rig.MakePacket(slot, rng);
    for (uint8_t b : frame) expected_sum += b;
    rig.Map(kTxBufs + slot * kSlot, kSlot, protocol::kIotlbPermRo);
    rig.tx->Post({{rig.Addr(kTxBufs + slot * kSlot), static_cast<uint32_t>(kHdr + frame.size()),
                   false}});
    ASSERT_TRUE(rig.tx->WaitUsed(1)) << "packet " << i;
    rig.tx->TakeUsed();
    ASSERT_EQ(rig.fe.Invalidate(kIovaBase + kTxBufs + slot * kSlot, kSlot).value(), 0u);
  }
  EXPECT_EQ(rig.Stats().checksum, expected_sum);
  EXPECT_EQ(rig.be->backend->Stats().iotlb_invalidates, 100u);

  // After the INVALIDATE was acknowledged, the old translation is gone: a buffer in the
  // invalidated page produces a MISS (not a read of stale memory), and the descriptor waits.
  const uint16_t used_before = rig.tx->UsedIdx();
  const std::vector<uint8_t> frame = rig.MakePacket(0, rng);
  uint64_t sum = 0;
  for (uint8_t b : frame) sum += b;
  rig.tx->Post({{rig.Addr(kTxBufs), static_cast<uint32_t>(kHdr + frame.size()), false}});
  auto m = rig.fe.backend_channel().Receive(kTimeoutMs);
  ASSERT_TRUE(m.ok()) << "expected a MISS: " << m.error().message;
  protocol::IotlbMsg miss;
  std::memcpy(&miss, m->payload.data(), sizeof(miss));
  EXPECT_EQ(miss.type, static_cast<uint8_t>(protocol::IotlbType::kMiss));
  EXPECT_EQ(miss.iova, kIovaBase + kTxBufs);
  EXPECT_EQ(miss.perm, protocol::kIotlbPermRo);
  EXPECT_FALSE(m->need_reply()) << "MISS never waits for a reply";
  EXPECT_EQ(rig.tx->UsedIdx(), used_before) << "a missed descriptor is neither used nor dropped";
  rig.Map(kTxBufs, kSlot, protocol::kIotlbPermRo);
  ASSERT_TRUE(rig.tx->WaitUsed(1));
  rig.tx->TakeUsed();
  EXPECT_EQ(rig.Stats().checksum, expected_sum + sum);
  EXPECT_GE(rig.Stats().retries, 1u);
  EXPECT_EQ(rig.Stats().drops, 0u);
}

// QEMU answers a MISS from its main loop, which can lag the backend by hundreds of
// microseconds. A second MISS for a page whose first MISS is still unanswered reaches QEMU after
// the first answer was used, the buffer completed and the page unmapped by a strict guest: QEMU
// then finds no mapping and injects a DMAR fault (seen with a Linux 6.1 guest). So other IOTLB
// traffic while a MISS is in flight must not make the backend ask for the same page again.
TEST(DatapathTest, OneMissPerPageInFlightWhateverElseTheIotlbDoes) {
  Rig rig(DeviceMode::kSink, true);
  rig.fe.Setup(true);
  rig.MapRings();
  rig.tx = &rig.fe.AddQueue(1, kQueueSize, kTxRing);
  rig.fe.StartQueue(*rig.tx, [&](uint64_t off) { return rig.RingAddr(off); });
  auto next_miss = [&](int timeout_ms) -> std::optional<protocol::IotlbMsg> {
    auto m = rig.fe.backend_channel().Receive(timeout_ms);
    if (!m.ok()) return std::nullopt;
    protocol::IotlbMsg msg;
    std::memcpy(&msg, m->payload.data(), sizeof(msg));
    return msg;
  };
  std::mt19937 rng(5);
  const std::vector<uint8_t> frame = rig.MakePacket(0, rng);
  const uint64_t buf = rig.Addr(kTxBufs);
  rig.tx->Post({{buf, static_cast<uint32_t>(kHdr + frame.size()), false}});
  auto first = next_miss(kTimeoutMs);
  ASSERT_TRUE(first.has_value()) << "the unmapped buffer must produce a MISS";
  ASSERT_EQ(first->iova, buf);

  // The vIOMMU is busy: meanwhile other pages are mapped and unmapped. The worker retries the
  // descriptor after each change (it may be one of them that it waits for)...
  for (uint32_t i = 1; i <= 4; ++i) {
    const uint64_t retries = rig.Stats().retries;
    rig.Map(kTxBufs + 32 * kSlot + i * kPage, kPage);
    ASSERT_EQ(rig.fe.Invalidate(kIovaBase + kTxBufs + 48 * kSlot, kPage).value(), 0u);
    ASSERT_TRUE(WaitFor([&] { return rig.Stats().retries > retries; })) << "round " << i;
  }
  // ...but never asks for the page whose MISS is in flight again.
  auto dup = next_miss(100);
  EXPECT_FALSE(dup.has_value()) << "second MISS for iova 0x" << std::hex << (dup ? dup->iova : 0)
                                << " while the first is unanswered";
  EXPECT_EQ(rig.be->backend->Stats().misses_sent, 1u);

  // The answer comes; the buffer is used; a strict guest unmaps the page. Nothing the backend
  // sent may still ask for it now (QEMU would find it unmapped).
  rig.Map(kTxBufs, kPage, protocol::kIotlbPermRo);
  ASSERT_TRUE(rig.tx->WaitUsed(1));
  rig.tx->TakeUsed();
  ASSERT_EQ(rig.fe.Invalidate(buf, kPage).value(), 0u);
  auto stale = next_miss(100);
  EXPECT_FALSE(stale.has_value()) << "stale MISS for iova 0x" << std::hex
                                  << (stale ? stale->iova : 0) << " after the page was unmapped";
  EXPECT_EQ(rig.Stats().drops, 0u);

  // The page mapped again later is asked for again: an answered MISS is no longer in flight.
  rig.tx->Post({{buf, static_cast<uint32_t>(kHdr + frame.size()), false}});
  auto again = next_miss(kTimeoutMs);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->iova, buf);
  rig.Map(kTxBufs, kPage, protocol::kIotlbPermRo);
  ASSERT_TRUE(rig.tx->WaitUsed(1));
}

// Pipelined misses: a burst of chains in unmapped pages gets all its MISSes at once, before
// the front-end answered any, so the vIOMMU answers them back to back.
TEST(DatapathTest, MissesOfABurstAreSentTogether) {
  Rig rig(DeviceMode::kSink, true);
  rig.fe.Setup(true);
  rig.MapRings();
  rig.tx = &rig.fe.AddQueue(1, kQueueSize, kTxRing);
  rig.fe.StartQueue(*rig.tx, [&](uint64_t off) { return rig.RingAddr(off); });
  std::mt19937 rng(17);
  constexpr uint32_t kChains = 8;
  for (uint32_t i = 0; i < kChains; ++i) {
    const std::vector<uint8_t> frame = rig.MakePacket(i, rng);
    rig.tx->Post({{rig.Addr(kTxBufs + i * kSlot), static_cast<uint32_t>(kHdr + frame.size()),
                   false}}, /*notify=*/i + 1 == kChains);
  }
  std::set<uint64_t> pages;
  while (pages.size() < kChains) {
    auto m = rig.fe.backend_channel().Receive(kTimeoutMs);
    ASSERT_TRUE(m.ok()) << "only " << pages.size() << " MISSes came without any answer";
    protocol::IotlbMsg miss;
    std::memcpy(&miss, m->payload.data(), sizeof(miss));
    ASSERT_EQ(miss.type, static_cast<uint8_t>(protocol::IotlbType::kMiss));
    EXPECT_TRUE(pages.insert(miss.iova & ~(kPage - 1)).second) << "page asked for twice";
  }
  for (uint32_t i = 0; i < kChains; ++i)
    EXPECT_TRUE(pages.count(kIovaBase + kTxBufs + i * kSlot)) << "chain " << i;
  rig.Map(kTxBufs, kChains * kSlot, protocol::kIotlbPermRo);
  ASSERT_TRUE(rig.tx->WaitUsed(kChains));
  EXPECT_EQ(rig.Stats().tx_packets, kChains);
  EXPECT_EQ(rig.Stats().drops, 0u);
}

TEST(DatapathTest, WrongPermissionSendsAccessFailAndCompletesWithZeroLength) {
  Rig rig(DeviceMode::kSink, true);
  rig.fe.Setup(true);
  rig.MapRings();
  rig.Map(kTxBufs, kSlot, protocol::kIotlbPermWo);  // device must read: WO is not enough
  rig.Map(kTxBufs + kSlot, kSlot, protocol::kIotlbPermRo);
  rig.tx = &rig.fe.AddQueue(1, kQueueSize, kTxRing);
  rig.fe.StartQueue(*rig.tx, [&](uint64_t off) { return rig.RingAddr(off); });
  std::mt19937 rng(5);
  rig.MakePacket(0, rng);
  rig.tx->Post({{rig.Addr(kTxBufs), 200, false}});
  ASSERT_TRUE(rig.tx->WaitUsed(1));
  EXPECT_EQ(rig.tx->TakeUsed().len, 0u);
  auto m = rig.fe.backend_channel().Receive(kTimeoutMs);
  ASSERT_TRUE(m.ok());
  protocol::IotlbMsg fail;
  std::memcpy(&fail, m->payload.data(), sizeof(fail));
  EXPECT_EQ(fail.type, static_cast<uint8_t>(protocol::IotlbType::kAccessFail));
  EXPECT_EQ(fail.iova, kIovaBase + kTxBufs);
  EXPECT_EQ(fail.perm, protocol::kIotlbPermRo);
  EXPECT_EQ(rig.Stats().access_fails, 1u);
  // The queue keeps working.
  rig.MakePacket(1, rng);
  rig.tx->Post({{rig.Addr(kTxBufs + kSlot), 200, false}});
  ASSERT_TRUE(rig.tx->WaitUsed(1));
  rig.tx->TakeUsed();
  EXPECT_EQ(rig.Stats().tx_packets, 1u);
}

// Malformed chains in sink mode (IOMMU off): each is completed with length 0 and counted, and a
// good packet right after it is consumed and checksummed.
class MalformedChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rig_.fe.Setup(false, /*indirect=*/true);
    rig_.tx = &rig_.fe.AddQueue(1, kQueueSize, kTxRing);
    rig_.fe.StartQueue(*rig_.tx, [](uint64_t off) { return TestFrontend::Uaddr(off); });
  }
  // Makes `head` available and expects it back with length 0, counted as an error.
  void ExpectRefused(uint16_t head, const char* what) {
    const uint64_t errors = rig_.Stats().errors;
    rig_.tx->PostHead(head);
    ASSERT_TRUE(rig_.tx->WaitUsed(1)) << what;
    const virtio::UsedElem e = rig_.tx->TakeUsed();
    EXPECT_EQ(e.len, 0u) << what;
    EXPECT_EQ(rig_.Stats().errors, errors + 1) << what;
    ExpectGoodPacket();
  }
  void ExpectGoodPacket() {
    std::mt19937 rng(good_++);
    const std::vector<uint8_t> frame = rig_.MakePacket(60, rng);
    uint64_t sum = 0;
    for (uint8_t b : frame) sum += b;
    const uint64_t before = rig_.Stats().checksum;
    const uint16_t head = 200;
    rig_.tx->desc[head] = {rig_.Addr(kTxBufs + 60 * kSlot), static_cast<uint32_t>(kHdr + frame.size()),
                           0, 0};
    rig_.tx->PostHead(head);
    ASSERT_TRUE(rig_.tx->WaitUsed(1));
    rig_.tx->TakeUsed();
    EXPECT_EQ(rig_.Stats().checksum, before + sum);
  }
  virtio::Desc& D(uint16_t i) { return rig_.tx->desc[i]; }
  uint64_t Buf() const { return rig_.Addr(kTxBufs); }
  // An indirect table at guest offset kTxBufs + 8 pages.
  virtio::Desc* Table() { return reinterpret_cast<virtio::Desc*>(rig_.fe.mem() + kTxBufs + 8 * kPage); }
  uint64_t TableAddr() const { return rig_.Addr(kTxBufs + 8 * kPage); }

  Rig rig_{DeviceMode::kSink, false};
  uint32_t good_ = 100;
};

TEST_F(MalformedChainTest, DescriptorLoop) {
  D(0) = {Buf(), 64, virtio::kDescFNext, 1};
  D(1) = {Buf(), 64, virtio::kDescFNext, 0};
  ExpectRefused(0, "two descriptors pointing at each other");
}

TEST_F(MalformedChainTest, HeadAndNextOutOfRange) {
  ExpectRefused(kQueueSize + 10, "head index beyond the queue");
  D(2) = {Buf(), 64, virtio::kDescFNext, kQueueSize};
  ExpectRefused(2, "next index beyond the queue");
}

TEST_F(MalformedChainTest, BufferOutsideMappedMemory) {
  D(3) = {kGpa + kMemSize - 16, 64, 0, 0};
  ExpectRefused(3, "buffer running past the only region");
  D(4) = {0x10, 64, 0, 0};
  ExpectRefused(4, "buffer below every region");
  D(5) = {~uint64_t{0} - 8, 64, 0, 0};
  ExpectRefused(5, "buffer whose address wraps");
}

TEST_F(MalformedChainTest, ReadableAfterWritableAndShortHeader) {
  D(6) = {Buf(), 64, virtio::kDescFWrite | virtio::kDescFNext, 7};
  D(7) = {Buf(), 64, 0, 0};
  ExpectRefused(6, "device-readable after device-writable");
  D(8) = {Buf(), 8, 0, 0};
  ExpectRefused(8, "TX chain shorter than the virtio-net header");
}

TEST_F(MalformedChainTest, BadIndirectTables) {
  virtio::Desc* t = Table();
  t[0] = {Buf(), 64, 0, 0};
  D(10) = {TableAddr(), 0, virtio::kDescFIndirect, 0};
  ExpectRefused(10, "indirect table of length 0");
  D(11) = {TableAddr(), 17, virtio::kDescFIndirect, 0};
  ExpectRefused(11, "indirect length not a multiple of 16");
  D(12) = {TableAddr(), 16, virtio::kDescFIndirect | virtio::kDescFNext, 13};
  ExpectRefused(12, "INDIRECT together with NEXT");
  t[0] = {TableAddr(), 16, virtio::kDescFIndirect, 0};
  D(14) = {TableAddr(), 16, virtio::kDescFIndirect, 0};
  ExpectRefused(14, "nested indirect");
  t[0] = {Buf(), 64, virtio::kDescFNext, 1};
  t[1] = {Buf(), 64, virtio::kDescFNext, 0};
  D(15) = {TableAddr(), 32, virtio::kDescFIndirect, 0};
  ExpectRefused(15, "loop inside an indirect table");
  t[0] = {Buf(), 64, virtio::kDescFNext, 5};
  D(16) = {TableAddr(), 32, virtio::kDescFIndirect, 0};
  ExpectRefused(16, "indirect next beyond the table");
  D(17) = {kGpa + kMemSize - 16, 32, virtio::kDescFIndirect, 0};
  ExpectRefused(17, "indirect table outside mapped memory");
}

TEST_F(MalformedChainTest, GoodIndirectChainIsRead) {
  std::mt19937 rng(9);
  const std::vector<uint8_t> frame = rig_.MakePacket(0, rng);
  uint64_t sum = 0;
  for (uint8_t b : frame) sum += b;
  virtio::Desc* t = Table();
  t[0] = {Buf(), static_cast<uint32_t>(kHdr), virtio::kDescFNext, 1};
  t[1] = {Buf() + kHdr, static_cast<uint32_t>(frame.size()), 0, 0};
  D(20) = {TableAddr(), 32, virtio::kDescFIndirect, 0};
  rig_.tx->PostHead(20);
  ASSERT_TRUE(rig_.tx->WaitUsed(1));
  rig_.tx->TakeUsed();
  EXPECT_EQ(rig_.Stats().checksum, sum);
  EXPECT_EQ(rig_.Stats().errors, 0u);
}

// A ring of 1024 spans 4 IOVA pages (desc), 1 (avail) and 2 (used); QEMU answers one page per
// MISS. Every page a ring part needs is asked for (all at once), and the ring then runs.
TEST(DatapathRingTest, MultiPageRingsUnderMissDrivenMapping) {
  Rig rig(DeviceMode::kLoopback, true);
  rig.queue_size = 1024;
  rig.Start(true, MapMissedPage);
  rig.LoopbackAndVerify(100);
  rig.fe.StopMissServer();
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, 100u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.drops, 0u);
  // Two queues, each 4 desc pages + the avail/used pages, at least.
  EXPECT_GE(rig.fe.misses_seen.load(), 2u * 5);
}

// A Linux guest behind an IOMMU maps scattered guest pages at contiguous IOVAs for its rings
// (dma_alloc_coherent with iommu-dma). Such rings run, every byte verified, through a window.
TEST(DatapathRingTest, RingsWhoseHostPagesAreScatteredRunThroughAWindow) {
  Rig rig(DeviceMode::kLoopback, true);
  rig.queue_size = 1024;
  rig.fe.Setup(true);
  // Both rings' IOVA pages: page i of each ring maps to host page (i * 5) mod 11 of a spare
  // area laid out so that no two consecutive IOVA pages are host-adjacent.
  constexpr uint64_t kSpare = 0x40000;
  const uint64_t pages = (DriverQueue::Footprint(1024) + kPage - 1) / kPage;
  ASSERT_LE(pages, 11u);
  auto host_page = [&](uint64_t ring, uint64_t i) {
    return kSpare + (ring ? 0x20000 : 0) + ((i * 5) % 11) * kPage;
  };
  for (uint64_t ring = 0; ring < 2; ++ring)
    for (uint64_t i = 0; i < pages; ++i)
      ASSERT_EQ(rig.fe.Update(kIovaBase + (ring ? kTxRing : kRxRing) + i * kPage, kPage,
                              TestFrontend::Uaddr(host_page(ring, i)), protocol::kIotlbPermRw)
                    .value(), 0u);
  rig.Map(kTxBufs, 64 * kSlot);
  rig.Map(kRxBufs, 64 * kSlot);
  rig.AddQueues();
  // The driver sees its rings as the guest kernel does: contiguous (its own window over the
  // same scattered pages), while the backend finds them scattered behind the IOTLB.
  memory::PageWindow driver_view[2];
  for (uint64_t ring = 0; ring < 2; ++ring) {
    std::vector<uint8_t*> host;
    for (uint64_t i = 0; i < pages; ++i) host.push_back(rig.fe.mem() + host_page(ring, i));
    auto w = memory::PageWindow::Build(host, true);
    ASSERT_TRUE(w.ok()) << w.error().message;
    driver_view[ring] = std::move(*w);
    DriverQueue* q = ring ? rig.tx : rig.rx;
    uint8_t* base = driver_view[ring].data();
    std::memset(base, 0, DriverQueue::Footprint(1024));
    q->desc = reinterpret_cast<virtio::Desc*>(base);
    q->avail = reinterpret_cast<virtio::Avail*>(base + (q->avail_off() - q->off));
    q->used = reinterpret_cast<virtio::Used*>(base + (q->used_off() - q->off));
  }
  rig.StartQueues();
  rig.LoopbackAndVerify(300);
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, 300u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.drops, 0u);
}

// A ring page that cannot be shown in a window (its IOVA page maps to a host address that is
// not page-aligned) is refused with a clear error; the backend serves on, and a proper mapping
// runs the waiting packet.
TEST(DatapathRingTest, RingPageThatCannotBeWindowedIsRefusedUntilRemapped) {
  Rig rig(DeviceMode::kSink, true);
  rig.queue_size = 1024;
  rig.fe.Setup(true);
  DriverQueue& tx = rig.fe.AddQueue(1, 1024, kTxRing);
  rig.tx = &tx;
  const uint64_t pages = (DriverQueue::Footprint(1024) + kPage - 1) / kPage;
  for (uint64_t i = 0; i < pages; ++i)
    ASSERT_EQ(rig.fe.Update(kIovaBase + kTxRing + i * kPage, kPage,
                            TestFrontend::Uaddr(kTxRing + i * kPage + (i == 2 ? 0x80 : 0)),
                            protocol::kIotlbPermRw).value(), 0u);
  rig.Map(kTxBufs, kSlot, protocol::kIotlbPermRo);
  rig.fe.StartQueue(tx, [&](uint64_t off) { return rig.RingAddr(off); });
  std::mt19937 rng(13);
  const std::vector<uint8_t> frame = rig.MakePacket(0, rng);
  tx.Post({{rig.Addr(kTxBufs), static_cast<uint32_t>(kHdr + frame.size()), false}});
  ASSERT_TRUE(WaitFor([&] { return rig.Stats().errors > 0; })) << "ring error counted";
  EXPECT_EQ(tx.UsedIdx(), 0) << "nothing was read through the broken ring";
  EXPECT_TRUE(rig.fe.Alive());
  ASSERT_EQ(rig.fe.Update(kIovaBase + kTxRing + 2 * kPage, kPage,
                          TestFrontend::Uaddr(kTxRing + 2 * kPage), protocol::kIotlbPermRw)
                .value(), 0u);
  ASSERT_TRUE(tx.WaitUsed(1));
  EXPECT_EQ(rig.Stats().tx_packets, 1u);
}

TEST(DatapathRingTest, RingOutsideMappedMemoryStallsUntilFixed) {
  Rig rig(DeviceMode::kSink, false);
  rig.fe.Setup(false);
  DriverQueue& tx = rig.fe.AddQueue(1, kQueueSize, kTxRing);
  rig.tx = &tx;
  // Ring addresses given as GPAs (a classic front-end bug): outside every region in uaddr space.
  rig.fe.StartQueue(tx, [](uint64_t off) { return TestFrontend::Gpa(off); });
  std::mt19937 rng(11);
  const std::vector<uint8_t> frame = rig.MakePacket(0, rng);
  tx.Post({{rig.Addr(kTxBufs), static_cast<uint32_t>(kHdr + frame.size()), false}});
  ASSERT_TRUE(WaitFor([&] { return rig.Stats().errors > 0; })) << "ring error counted";
  EXPECT_EQ(tx.UsedIdx(), 0) << "nothing outside mapped memory was touched";
  EXPECT_TRUE(rig.fe.Alive());
  // Correct addresses: the queue runs and consumes the packet that was waiting.
  protocol::VringAddr a{};
  a.index = 1;
  a.desc_user_addr = TestFrontend::Uaddr(tx.desc_off());
  a.avail_user_addr = TestFrontend::Uaddr(tx.avail_off());
  a.used_user_addr = TestFrontend::Uaddr(tx.used_off());
  ASSERT_EQ(rig.fe.Call(Request::kSetVringAddr, a).value(), 0u);
  ASSERT_TRUE(tx.WaitUsed(1));
  EXPECT_EQ(rig.Stats().tx_packets, 1u);
}

TEST(DatapathRingTest, GetVringBaseAfterTrafficAndRestart) {
  Rig rig(DeviceMode::kLoopback, false);
  rig.Start();
  rig.LoopbackAndVerify(10);
  ASSERT_TRUE(rig.fe.SendP(Request::kGetVringBase, protocol::VringState{1, 0}).ok());
  auto m = rig.fe.Receive();
  ASSERT_TRUE(m.ok());
  protocol::VringState s;
  std::memcpy(&s, m->payload.data(), sizeof(s));
  EXPECT_EQ(s.num, 10u) << "the next TX descriptor to process";
  // Restart TX from where it stopped: kick again and traffic continues.
  ASSERT_EQ(rig.fe.Call(Request::kSetVringBase, protocol::VringState{1, s.num}).value(), 0u);
  ASSERT_EQ(rig.fe.Call(Request::kSetVringKick, protocol::U64Payload{1}, {rig.tx->kick.get()})
                .value(), 0u);
  rig.LoopbackAndVerify(10, 2);
  EXPECT_EQ(rig.Stats().rx_packets, 20u);
}

// VIRTIO_NET_F_MRG_RXBUF: a frame larger than one RX buffer continues in the buffers after it;
// the first one's header says how many (num_buffers), each used element how much it got. Frames
// from 60 bytes to 64 KiB into 1536-byte buffers (Linux's smallest mergeable size), every byte
// checked; with the IOMMU, every buffer's page misses first.
class MergeableRxTest : public ::testing::TestWithParam<bool> {};

TEST_P(MergeableRxTest, FramesLargerThanOneRxBufferArriveWholeAcrossBuffers) {
  const bool iommu = GetParam();
  Rig rig(DeviceMode::kLoopback, iommu);
  rig.features = Bit(protocol::feature::kNetFMrgRxbuf);
  rig.Start(true, iommu ? MapMissedPage : nullptr);
  constexpr uint32_t kRxBuf = 1536, kRxSlots = 128;
  constexpr uint64_t kRxArea = 0x400000, kTxFrame = 0x100000;
  std::map<uint16_t, uint32_t> slot_of;  // RX head -> its buffer slot
  uint32_t next_slot = 0;
  auto post_rx = [&] {
    const uint32_t slot = next_slot++ % kRxSlots;
    slot_of[rig.rx->Post({{rig.Addr(kRxArea + slot * kRxBuf), kRxBuf, true}})] = slot;
  };
  for (uint32_t i = 0; i < 64; ++i) post_rx();
  std::mt19937 rng(11);
  const uint32_t sizes[] = {60, 1500, 1524, 1525, 3000, 9000, 9000, 4000, 65536, 60, 9000};
  for (uint32_t size : sizes) {
    std::vector<uint8_t> frame(size);
    for (auto& b : frame) b = static_cast<uint8_t>(rng());
    std::memset(rig.fe.mem() + kTxFrame, 0, kHdr);
    std::memcpy(rig.fe.mem() + kTxFrame + kHdr, frame.data(), size);
    rig.tx->Post({{rig.Addr(kTxFrame), static_cast<uint32_t>(kHdr), false},
                  {rig.Addr(kTxFrame + kHdr), size, false}});
    ASSERT_TRUE(rig.tx->WaitUsed(1)) << "frame of " << size;
    rig.tx->TakeUsed();
    const uint32_t buffers = static_cast<uint32_t>((kHdr + size + kRxBuf - 1) / kRxBuf);
    ASSERT_TRUE(rig.rx->WaitUsed(static_cast<uint16_t>(buffers))) << "frame of " << size;
    std::vector<uint8_t> got;
    uint32_t num_buffers = 0;
    for (uint32_t k = 0; k < buffers; ++k) {
      const virtio::UsedElem e = rig.rx->TakeUsed();
      ASSERT_TRUE(slot_of.count(static_cast<uint16_t>(e.id)));
      const uint8_t* p = rig.fe.mem() + kRxArea + slot_of[static_cast<uint16_t>(e.id)] * kRxBuf;
      ASSERT_LE(e.len, kRxBuf);
      if (k == 0) {
        virtio::NetHdr hdr;
        std::memcpy(&hdr, p, kHdr);
        num_buffers = hdr.num_buffers;
        got.insert(got.end(), p + kHdr, p + e.len);
      } else {
        got.insert(got.end(), p, p + e.len);
      }
      post_rx();
    }
    EXPECT_EQ(num_buffers, buffers) << "frame of " << size;
    ASSERT_EQ(got, frame) << "frame of " << size;
  }
  rig.fe.StopMissServer();
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, std::size(sizes));
  EXPECT_EQ(s.drops, 0u);
  EXPECT_EQ(s.errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(IommuOffOn, MergeableRxTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "iommu" : "no_iommu"; });

// With MRG_RXBUF every receive buffer must hold at least the 12-byte header (virtio 1.x
// 5.1.6.3.1). A chain smaller than that is refused (completed with length 0, an error counted),
// never written past its end nor reported as holding the frame; the frame waits for the next
// chain and arrives whole.
TEST(DatapathTest, WithMergeableRxAChainSmallerThanTheHeaderIsRefused) {
  Rig rig(DeviceMode::kLoopback, false);
  rig.features = Bit(protocol::feature::kNetFMrgRxbuf);
  rig.Start();
  std::memset(rig.fe.mem() + kRxBufs, 0xee, 64);
  const uint16_t tiny = rig.rx->Post({{rig.Addr(kRxBufs), 4, true}});
  std::mt19937 rng(5);
  const std::vector<uint8_t> frame = rig.MakePacket(0, rng);
  std::memset(rig.fe.mem() + kTxBufs, 0, kHdr);
  std::memcpy(rig.fe.mem() + kTxBufs + kHdr, frame.data(), frame.size());
  rig.tx->Post({{rig.Addr(kTxBufs), static_cast<uint32_t>(kHdr + frame.size()), false}});
  ASSERT_TRUE(rig.rx->WaitUsed(1));
  const virtio::UsedElem refused = rig.rx->TakeUsed();
  EXPECT_EQ(refused.id, tiny);
  EXPECT_EQ(refused.len, 0u) << "nothing reported written into a 4-byte buffer";
  EXPECT_EQ(rig.fe.mem()[kRxBufs + 4], 0xee) << "nothing written past its end";
  EXPECT_EQ(rig.Stats().rx_packets, 0u);
  rig.rx->Post({{rig.Addr(kRxBufs + kSlot), 2048, true}});
  ASSERT_TRUE(rig.rx->WaitUsed(1));
  const virtio::UsedElem e = rig.rx->TakeUsed();
  ASSERT_EQ(e.len, kHdr + frame.size());
  const uint8_t* p = rig.fe.mem() + kRxBufs + kSlot;
  EXPECT_EQ(std::vector<uint8_t>(p + kHdr, p + e.len), frame);
  EXPECT_EQ(rig.Stats().rx_packets, 1u);
  EXPECT_EQ(rig.Stats().errors, 1u);
  EXPECT_EQ(rig.Stats().drops, 0u);
}

// Without MRG_RXBUF negotiated, a frame larger than the RX buffer is dropped and counted.
TEST(DatapathTest, WithoutMergeableRxAFrameLargerThanTheBufferIsDropped) {
  Rig rig(DeviceMode::kLoopback, false);
  rig.Start();
  rig.rx->Post({{rig.Addr(kRxBufs), 1536, true}});
  rig.tx->Post({{rig.Addr(kTxBufs), static_cast<uint32_t>(kHdr + 3000), false}});
  ASSERT_TRUE(rig.tx->WaitUsed(1));
  ASSERT_TRUE(WaitFor([&] { return rig.Stats().drops == 1; }));
}

// VIRTIO_RING_F_EVENT_IDX: the device signals the call eventfd only when used->idx passes the
// driver's used_event, and when it goes to sleep it writes avail_event (the next chain it will
// look at) so that the driver's next chain kicks it.
TEST(DatapathTest, EventIdxInterruptsAtUsedEventAndAsksForKicksAtAvailEvent) {
  Rig rig(DeviceMode::kLoopback, false);
  rig.features = Bit(protocol::feature::kRingEventIdx);
  rig.fe.Setup(false, true, rig.features);
  rig.AddQueues();
  rig.rx->avail->flags = 0;
  rig.rx->avail->ring[kQueueSize] = 3;  // used_event: interrupt once used->idx passes 3
  rig.StartQueues();
  std::mt19937 rng(3);
  auto one_packet = [&](uint32_t i) {
    rig.rx->Post({{rig.Addr(kRxBufs + i * kSlot), 2048, true}});
    const std::vector<uint8_t> frame = rig.MakePacket(i, rng);
    rig.tx->Post({{rig.Addr(kTxBufs + i * kSlot), static_cast<uint32_t>(kHdr + frame.size()),
                   false}});
    ASSERT_TRUE(rig.rx->WaitUsed(1));
    rig.rx->TakeUsed();
  };
  uint64_t v;
  for (uint32_t i = 0; i < 3; ++i) one_packet(i);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_NE(::read(rig.rx->call.get(), &v, 8), 8) << "no interrupt before used->idx passes 3";
  one_packet(3);
  ASSERT_TRUE(WaitFor([&] { return ::read(rig.rx->call.get(), &v, 8) == 8; }))
      << "an interrupt once used->idx went from 3 to 4";
  // Idle now: the worker rearms kicks by writing avail_event = the next chain it will take.
  auto avail_event = [&](DriverQueue& q) {
    auto* at = reinterpret_cast<uint8_t*>(q.used) + 4 + sizeof(virtio::UsedElem) * q.num;
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(at)).load(std::memory_order_acquire);
  };
  ASSERT_TRUE(WaitFor([&] { return avail_event(*rig.tx) == 4; })) << avail_event(*rig.tx);
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, 4u);
  EXPECT_EQ(s.rx_interrupts, 1u);
}

// A busy-polling worker suppresses kicks (VRING_USED_F_NO_NOTIFY) on rings that appear after it
// started: its first passes, before any ring existed, must not count as "notifications off".
TEST(DatapathTest, BusyPollingSuppressesKicksOnRingsThatAppearLater) {
  BackendUnderTest be(DeviceMode::kLoopback, 1, "reference", "", PollMode::kBusy);
  TestFrontend fe(be.path);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // idle passes, no ring yet
  fe.Setup(false);
  DriverQueue& rx = fe.AddQueue(0, kQueueSize, kRxRing);
  DriverQueue& tx = fe.AddQueue(1, kQueueSize, kTxRing);
  fe.StartQueue(rx, [](uint64_t off) { return TestFrontend::Uaddr(off); });
  fe.StartQueue(tx, [](uint64_t off) { return TestFrontend::Uaddr(off); });
  for (DriverQueue* q : {&rx, &tx})
    EXPECT_TRUE(WaitFor([&] {
      return std::atomic_ref<uint16_t>(q->used->flags).load() & virtio::kUsedFNoNotify;
    })) << "queue " << q->index << ": no NO_NOTIFY while the worker busy-polls";
}

// The in-flight rule of MISSes, step by step: a MISS is asked once; an UPDATE answers it only
// for a worker that applied that UPDATE (until then its log holds the answer); a worker that
// applied it and still misses asks again.
// A BackendChannel on one end of a socket pair; `peer` is the front-end's end.
class BackendChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ch.Set(UniqueFd(sv[0]));
    peer = UniqueFd(sv[1]);
  }
  static constexpr auto kSent = BackendChannel::MissResult::kSent;
  static constexpr auto kInFlight = BackendChannel::MissResult::kInFlight;
  static constexpr auto kNotSent = BackendChannel::MissResult::kNotSent;
  Counters counters{1};
  BackendChannel ch{&counters, nullptr};
  UniqueFd peer;
};

TEST_F(BackendChannelTest, AMissIsAskedAgainOnlyByAWorkerThatAppliedItsAnswer) {
  const uint64_t x = 0xfffd14c0;
  EXPECT_EQ(ch.SendMiss(x, iotlb::Perm::kWrite, 0, /*applied_seq=*/7), kSent);
  EXPECT_EQ(ch.SendMiss(x, iotlb::Perm::kWrite, 0, 7), kInFlight) << "unanswered: in flight";
  EXPECT_EQ(ch.SendMiss(x + 0x100, iotlb::Perm::kRead, 0, 7), kInFlight)
      << "same page, other perm";
  ch.NoteUpdate({0x1000, 0x1fff}, 8);
  EXPECT_EQ(ch.SendMiss(x, iotlb::Perm::kWrite, 0, 8), kInFlight)
      << "an UPDATE elsewhere answers nothing";
  ch.NoteUpdate({x & ~0xfffull, (x & ~0xfffull) + 0xfff}, 9);
  EXPECT_EQ(ch.SendMiss(x, iotlb::Perm::kWrite, 0, 8), kInFlight)
      << "answered by UPDATE 9, which this worker has not applied: its log has the answer";
  EXPECT_EQ(ch.SendMiss(x, iotlb::Perm::kWrite, 0, 9), kSent)
      << "applied and still missing: ask again";
  EXPECT_EQ(counters.misses_sent.load(), 2u);
}

// A front-end that does not read its backend channel: sends never wait. A MISS that could not
// go out is not remembered as in flight, so it is asked again once there is room (a lost MISS
// used to stall its queue forever).
TEST_F(BackendChannelTest, AMissThatCouldNotBeSentIsAskedAgain) {
  uint64_t page = 0;
  while (ch.SendMiss(page << 12, iotlb::Perm::kRead, 0, 0) == kSent) ++page;  // fills the socket
  ASSERT_GT(page, 0u);
  const uint64_t lost = page << 12;
  EXPECT_EQ(ch.SendMiss(lost, iotlb::Perm::kRead, 0, 0), kNotSent);
  EXPECT_EQ(ch.SendMiss(lost, iotlb::Perm::kRead, 0, 0), kNotSent) << "still no room";
  char buf[65536];
  while (::recv(peer.get(), buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
  EXPECT_EQ(ch.SendMiss(lost, iotlb::Perm::kRead, 0, 0), kSent);
  EXPECT_EQ(ch.SendMiss(lost, iotlb::Perm::kRead, 0, 0), kInFlight);
  // ACCESS_FAILs never wait either, and at most kAccessFailsPerSecond go out.
  uint32_t ok = 0;
  for (int i = 0; i < 10000; ++i) ok += ch.SendAccessFail(0x1000, 8, iotlb::Perm::kWrite).ok();
  EXPECT_LE(ok, BackendChannel::kAccessFailsPerSecond * 2);
}

// Answered MISSes that every online worker has applied are forgotten: a long cold run over more
// distinct pages than the in-flight cap never stops asking (an idle, offline worker does not
// hold the table up: it applies its whole log before it translates again).
TEST_F(BackendChannelTest, AnsweredMissesAreForgottenOnceEveryWorkerAppliedThem) {
  std::atomic<bool> stop{false};
  std::thread drain([&] {  // the front-end reads what the backend sends
    char buf[4096];
    while (!stop) (void)::recv(peer.get(), buf, sizeof(buf), MSG_DONTWAIT);
  });
  uint64_t seq = 0;
  ch.SetMinApplied([&] { return seq; });
  const uint64_t pages = 2 * BackendChannel::kMaxMissesInFlight;
  uint64_t sent = 0;
  for (uint64_t p = 0; p < pages; ++p) {
    BackendChannel::MissResult r;
    while ((r = ch.SendMiss(p << 12, iotlb::Perm::kRead, 0, seq)) == kNotSent)
      std::this_thread::yield();  // the socket is full for a moment: a worker asks again later
    sent += r == kSent;
    ++seq;
    ch.NoteUpdate({p << 12, (p << 12) + 0xfff}, seq);
  }
  stop = true;
  drain.join();
  EXPECT_EQ(sent, pages);
}

// A strict guest behind QEMU on two queue pairs at once: each buffer's page is mapped only while
// the buffer belongs to the device (the same few IOVA pages are reused, as Linux's IOVA
// allocator does), and a MISS is answered only while its page is mapped: QEMU answers nothing
// otherwise and injects a DMAR fault into the guest. The backend must never ask outside that
// window, however the two workers, the control thread and the answers interleave.
TEST(DatapathMultiQueueTest, StrictGuestOnTwoPairsNeverGetsAMissForAnUnmappedPage) {
  BackendUnderTest be(DeviceMode::kLoopback, 2, "hash");
  TestFrontend fe(be.path);
  fe.Setup(true);
  std::vector<DriverQueue*> q;
  for (uint32_t i = 0; i < 4; ++i) q.push_back(&fe.AddQueue(i, 64, i * 0x8000));
  for (uint64_t off = 0; off < 4 * 0x8000; off += kPage)
    ASSERT_EQ(fe.Update(kIovaBase + off, kPage, TestFrontend::Uaddr(off), protocol::kIotlbPermRw)
                  .value(), 0u);
  std::mutex mu;
  std::set<uint64_t> mapped;  // IOVA pages the guest has mapped now
  std::atomic<uint64_t> faults{0};
  fe.StartMissServer([&](uint64_t iova, uint8_t) {
    const uint64_t page = iova & ~(kPage - 1);
    std::lock_guard<std::mutex> lock(mu);
    if (!mapped.count(page)) {
      ++faults;
      return TestFrontend::Mapping{0, 0, 0, 0};
    }
    return TestFrontend::Mapping{page, kPage, TestFrontend::Uaddr(page - kIovaBase),
                                 protocol::kIotlbPermRw};
  });
  for (DriverQueue* d : q) fe.StartQueue(*d, [](uint64_t off) { return kIovaBase + off; });
  constexpr uint32_t kPackets = 150;
  auto guest = [&](uint32_t pair) {
    for (uint32_t i = 0; i < kPackets; ++i) {
      const uint64_t slot = pair * 8 + i % 3;
      const uint64_t tx = kTxBufs + slot * kSlot, rx = kRxBufs + slot * kSlot;
      std::memset(fe.mem() + tx, 0, kHdr);
      std::memset(fe.mem() + tx + kHdr, static_cast<int>(i), 64);
      {
        std::lock_guard<std::mutex> lock(mu);
        mapped.insert(kIovaBase + tx);
        mapped.insert(kIovaBase + rx);
      }
      q[2 * pair]->Post({{kIovaBase + rx, 2048, true}});
      q[2 * pair + 1]->Post({{kIovaBase + tx, static_cast<uint32_t>(kHdr + 64), false}});
      if (!q[2 * pair]->WaitUsed(1) || !q[2 * pair + 1]->WaitUsed(1)) return;
      q[2 * pair]->TakeUsed();
      q[2 * pair + 1]->TakeUsed();
      if (fe.mem()[rx + kHdr + 63] != static_cast<uint8_t>(i)) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        mapped.erase(kIovaBase + tx);
        mapped.erase(kIovaBase + rx);
      }
      (void)fe.Invalidate(kIovaBase + tx, kPage);
      (void)fe.Invalidate(kIovaBase + rx, kPage);
    }
  };
  std::thread t0(guest, 0), t1(guest, 1);
  t0.join();
  t1.join();
  fe.StopMissServer();
  const BackendStats s = be.backend->Stats();
  EXPECT_EQ(s.queues[0].rx_packets, kPackets);
  EXPECT_EQ(s.queues[1].rx_packets, kPackets);
  EXPECT_EQ(faults.load(), 0u) << "MISSes for pages the guest had not mapped (QEMU: DMAR faults)";
  EXPECT_EQ(s.queues[0].drops + s.queues[1].drops, 0u);
}

TEST(DatapathMultiQueueTest, EveryPairForwardsOnItsOwnWorker) {
  BackendUnderTest be(DeviceMode::kLoopback, 2);
  TestFrontend fe(be.path);
  fe.Setup(false);
  std::vector<DriverQueue*> q;
  for (uint32_t i = 0; i < 4; ++i) q.push_back(&fe.AddQueue(i, 64, i * 0x8000));
  for (DriverQueue* d : q) fe.StartQueue(*d, [](uint64_t off) { return TestFrontend::Uaddr(off); });
  for (uint32_t pair = 0; pair < 2; ++pair) {
    for (uint32_t i = 0; i < 20; ++i) {
      const uint64_t tx = kTxBufs + (pair * 32 + i) * kSlot, rx = kRxBufs + (pair * 32 + i) * kSlot;
      std::memset(fe.mem() + tx, 0, kHdr);
      std::memset(fe.mem() + tx + kHdr, static_cast<int>(pair * 100 + i), 100);
      q[2 * pair]->Post({{TestFrontend::Gpa(rx), 2048, true}});
      q[2 * pair + 1]->Post({{TestFrontend::Gpa(tx), static_cast<uint32_t>(kHdr + 100), false}});
    }
    ASSERT_TRUE(q[2 * pair]->WaitUsed(20));
    for (uint32_t i = 0; i < 20; ++i) {
      const uint8_t* got = fe.mem() + kRxBufs + (pair * 32 + i) * kSlot + kHdr;
      for (int b = 0; b < 100; ++b) ASSERT_EQ(got[b], pair * 100 + i);
    }
  }
  const BackendStats s = be.backend->Stats();
  ASSERT_EQ(s.queues.size(), 2u);
  EXPECT_EQ(s.queues[0].rx_packets, 20u);
  EXPECT_EQ(s.queues[1].rx_packets, 20u);
  const std::vector<int> tids = be.backend->WorkerTids();
  ASSERT_EQ(tids.size(), 2u);
  EXPECT_GT(tids[0], 0);
  EXPECT_GT(tids[1], 0);
  EXPECT_NE(tids[0], tids[1]);
}

// Front-end and backend in separate processes: the `vhostlab backend` CLI serves IOMMU traffic
// with cold misses (4 KiB mappings pushed only as answers to MISS) and INVALIDATEs between
// rounds; every byte is verified here and the backend's own counters (printed when it stops)
// must show the packets, the misses, and no drops or errors.
TEST(SeparateProcessTest, CliBackendServesIommuTrafficWithMissesAndInvalidates) {
  const std::string dir = TempDir();
  const std::string sock = dir + "/backend.sock";
  Child backend({VHOSTLAB_CLI, "backend", "--socket", sock, "--mode", "loopback", "--iotlb",
                 "reference"},
                dir + "/backend.out");
  struct stat st;
  ASSERT_TRUE(WaitFor([&] { return ::stat(sock.c_str(), &st) == 0 || !backend.Running(); }));
  ASSERT_TRUE(backend.Running()) << backend.Output();
  {
    Rig rig(sock, true);
    rig.Start(true, MapMissedPage);
    for (uint32_t round = 0; round < 3; ++round) {
      rig.LoopbackAndVerify(50, round + 10);
      ASSERT_EQ(rig.fe.Invalidate(kIovaBase + kTxBufs, 0x400000).value(), 0u);
    }
    rig.fe.StopMissServer();
    EXPECT_GT(rig.fe.misses_seen.load(), 0u);
  }
  backend.Stop(SIGTERM);
  const std::string out = backend.Output();
  auto rows = BackendRows(out, 1);
  EXPECT_EQ(rows[0]["rx_pkts"], 150u) << out;
  EXPECT_GT(rows[0]["misses"], 0u) << out;
  EXPECT_EQ(rows[0]["drops"], 0u);
  EXPECT_EQ(rows[0]["errors"], 0u);
  EXPECT_NE(out.find("IOTLB on"), std::string::npos) << "negotiated features are logged";
  ::unlink((dir + "/backend.out").c_str());
  ::rmdir(dir.c_str());
}

// Seeded random descriptor tables (random addresses, lengths, flags, next indices, indirect
// tables full of random bytes, pages mapped with random permissions; misses anywhere in IOVA
// space are answered with a random guest page). Every chain must come back used: consumed,
// refused with ACCESS_FAIL, or refused as malformed — never lost, never a crash (run under ASan).
class RandomChainTest : public ::testing::TestWithParam<bool> {};

TEST_P(RandomChainTest, EveryRandomChainIsCompleted) {
  const bool iommu = GetParam();
  Rig rig(DeviceMode::kSink, iommu);
  std::mt19937_64 rng(42);
  std::mt19937_64 miss_rng(43);
  rig.fe.Setup(iommu, true);
  if (iommu) {
    // Rings and buffer pages are mapped before the vIOMMU thread starts answering misses with
    // random pages (a ring must never be remapped to garbage).
    rig.MapRings();
    const uint8_t perms[] = {protocol::kIotlbPermRo, protocol::kIotlbPermWo, protocol::kIotlbPermRw};
    for (uint64_t p = kTxBufs; p < kTxBufs + 64 * kPage; p += kPage)
      ASSERT_EQ(rig.fe.Update(kIovaBase + p, kPage, TestFrontend::Uaddr(p), perms[rng() % 3]).value(),
                0u);
    rig.fe.StartMissServer([&miss_rng](uint64_t iova, uint8_t) {
      const uint64_t page = iova & ~(kPage - 1);
      const uint64_t target = (miss_rng() % (kMemSize / kPage)) * kPage;
      return TestFrontend::Mapping{page, kPage, TestFrontend::Uaddr(target),
                                   static_cast<uint8_t>(1 + miss_rng() % 3)};
    });
  }
  rig.tx = &rig.fe.AddQueue(1, kQueueSize, kTxRing);
  rig.fe.StartQueue(*rig.tx, [&](uint64_t off) { return rig.RingAddr(off); });
  for (uint64_t i = 0; i < 64 * kPage; i += 8) {
    const uint64_t v = rng();
    std::memcpy(rig.fe.mem() + kTxBufs + i, &v, 8);
  }
  auto random_addr = [&]() -> uint64_t {
    switch (rng() % 8) {
      case 0: return rng();                                     // anywhere
      case 1: return rig.Addr(kMemSize - rng() % 64);           // near the end of memory
      default: return rig.Addr(kTxBufs + rng() % (64 * kPage));  // mostly in the buffer pages
    }
  };
  uint16_t flags_choices[] = {0, virtio::kDescFNext, virtio::kDescFWrite,
                              virtio::kDescFNext | virtio::kDescFWrite, virtio::kDescFIndirect,
                              virtio::kDescFIndirect | virtio::kDescFNext};
  for (int round = 0; round < 20; ++round) {
    for (uint32_t d = 0; d < kQueueSize; ++d) {
      const uint16_t flags = flags_choices[rng() % 6];
      uint32_t len = static_cast<uint32_t>(rng() % 3000);
      if ((flags & virtio::kDescFIndirect) && rng() % 2) len = 16 * (1 + rng() % 8);
      rig.tx->desc[d] = {random_addr(), len, flags, static_cast<uint16_t>(rng() % (kQueueSize + 4))};
    }
    // Indirect tables point into the (random) buffer pages; some are made well-formed.
    for (int t = 0; t < 8; ++t) {
      auto* table = reinterpret_cast<virtio::Desc*>(rig.fe.mem() + kTxBufs + t * kPage);
      for (int k = 0; k < 4; ++k)
        table[k] = {random_addr(), static_cast<uint32_t>(rng() % 2000),
                    static_cast<uint16_t>(k < 3 ? virtio::kDescFNext : 0), static_cast<uint16_t>(k + 1)};
    }
    for (int c = 0; c < 64; ++c)
      rig.tx->PostHead(static_cast<uint16_t>(rng() % (kQueueSize + 2)), c == 63);
    ASSERT_TRUE(rig.tx->WaitUsed(64))
        << "round " << round << ": used idx " << rig.tx->UsedIdx() << ", misses served "
        << rig.fe.misses_seen.load() << ", backend misses " << rig.Stats().iotlb_misses
        << ", retries " << rig.Stats().retries << ", misses sent "
        << rig.be->backend->Stats().misses_sent;
    for (int c = 0; c < 64; ++c) rig.tx->TakeUsed();
  }
  EXPECT_TRUE(rig.fe.Alive());
  const QueueStats s = rig.Stats();
  EXPECT_GT(s.errors, 0u);
  EXPECT_EQ(s.drops, 0u);
  rig.fe.StopMissServer();
}

INSTANTIATE_TEST_SUITE_P(IommuOffOn, RandomChainTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "iommu" : "no_iommu"; });

// Every registered IOTLB design behind the same datapath: cold misses served, strict
// invalidation after each packet, every byte verified.
class DesignDatapathTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DesignDatapathTest, ColdMissesAndInvalidationsWithEveryByteVerified) {
  Rig rig(DeviceMode::kLoopback, true, 1, GetParam());
  rig.Start(true, MapMissedPage);
  for (uint32_t round = 0; round < 4; ++round) {
    rig.LoopbackAndVerify(40, round + 1);
    // Drop every buffer mapping; the rings stay mapped and the next round misses again.
    ASSERT_EQ(rig.fe.Invalidate(kIovaBase + kTxBufs, 0x400000).value(), 0u);
  }
  rig.fe.StopMissServer();
  const QueueStats s = rig.Stats();
  EXPECT_EQ(s.rx_packets, 160u);
  EXPECT_GT(s.retries, 0u);
  EXPECT_EQ(s.drops, 0u);
  EXPECT_EQ(s.errors, 0u);
  if (GetParam().rfind("microcache", 0) == 0) {
    EXPECT_GT(s.cache_hits, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(AllDesigns, DesignDatapathTest,
                         ::testing::ValuesIn(iotlb::DesignNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace vhostlab::backend
