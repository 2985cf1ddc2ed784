// Each mapping model alone, against a recording fake of the vIOMMU (loadgen::IommuPort): what
// it maps and pushes up front, what a buffer's post and completion cost, the lazy batch, and
// the registry's names. The models against a real backend are core/frontend/integration_test.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/loadgen/mapping/no_iommu_model.hpp"
#include "core/loadgen/mapping/registry.hpp"
#include "core/protocol/messages.hpp"

namespace vhostlab::loadgen {
namespace {

constexpr uint64_t kPage = 4096;

// Records every call; fails the call numbered `fail_at` (0: never).
class RecordingIommu final : public IommuPort {
 public:
  struct Call {
    std::string op;  // map | unmap | invalidate | push
    uint64_t iova = 0;
    uint64_t count = 0;  // map, unmap: pages; invalidate: bytes
    uint8_t perm = 0;
    bool flag = false;  // map: push; unmap: invalidate
    std::vector<uint64_t> gpas;
  };
  Status Map(uint64_t iova, std::span<const uint64_t> gpas, uint8_t perm, bool push) override {
    return Record({"map", iova, gpas.size(), perm, push, {gpas.begin(), gpas.end()}});
  }
  Status Unmap(uint64_t iova, uint64_t pages, bool invalidate) override {
    return Record({"unmap", iova, pages, 0, invalidate, {}});
  }
  Status Invalidate(uint64_t iova, uint64_t size) override {
    return Record({"invalidate", iova, size, 0, false, {}});
  }
  Status Push(uint64_t iova) override { return Record({"push", iova, 0, 0, false, {}}); }

  std::vector<Call> calls;
  std::size_t fail_at = 0;

 private:
  Status Record(Call c) {
    calls.push_back(std::move(c));
    if (calls.size() == fail_at) return Error{"injected failure"};
    return {};
  }
};

// A queue pair of ring 8: rings of 2 pages each, pools of 6 guest pages (receive pool pages
// scattered like the driver's, transmit pool contiguous).
struct Queue {
  std::vector<uint64_t> rx_pages = {0x10000, 0x13000, 0x11000, 0x14000, 0x12000, 0x15000};
  std::vector<uint64_t> tx_pages = {0x20000, 0x21000, 0x22000, 0x23000, 0x24000, 0x25000};
  QueueDma dma;
  Queue() {
    dma.page_size = kPage;
    dma.ring_size = 8;
    dma.max_buffer_bytes = 2048;
    dma.window_area = 0x40000000000;
    dma.rings[kRx] = {0x4000000000, 0x1000, 2 * kPage - 100, kPage + 64};
    dma.rings[kTx] = {0x4000002000, 0x3000, 2 * kPage - 100, kPage + 64};
    dma.pools[kRx] = {&rx_pages, 0x4100000000, protocol::kIotlbPermRw};
    dma.pools[kTx] = {&tx_pages, 0x4200000000, protocol::kIotlbPermRo};
  }
};

std::unique_ptr<MappingModel> Make(Mapping m, IommuPort* iommu, MappingParams params = {}) {
  return MakeMappingModel(m, true, iommu, params);
}

TEST(MappingRegistry, NamesAliasAndFacts) {
  for (const char* n : {"static", "lazy", "strict", "cold"}) {
    Result<Mapping> m = ParseMapping(n);
    ASSERT_TRUE(m.ok()) << n;
    EXPECT_STREQ(MappingName(*m), n);
  }
  Result<Mapping> identity = ParseMapping("identity");
  ASSERT_TRUE(identity.ok());
  EXPECT_EQ(*identity, Mapping::kStatic);
  Result<Mapping> bad = ParseMapping("eager");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "unknown mapping 'eager' (static, lazy, strict, cold)");
  EXPECT_TRUE(DescribeMapping(Mapping::kStatic).fixed_iovas);
  EXPECT_TRUE(DescribeMapping(Mapping::kCold).fixed_iovas);
  EXPECT_FALSE(DescribeMapping(Mapping::kLazy).fixed_iovas);
  EXPECT_FALSE(DescribeMapping(Mapping::kStrict).fixed_iovas);
}

TEST(StaticModel, MapsAndPushesEverythingUpFrontAndNothingPerBuffer) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kStatic, &iommu);
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  ASSERT_EQ(iommu.calls.size(), 4u) << "two rings, two pools";
  for (int i : {0, 1}) {
    EXPECT_EQ(iommu.calls[i].op, "map");
    EXPECT_EQ(iommu.calls[i].iova, q.dma.rings[i].iova);
    EXPECT_EQ(iommu.calls[i].count, 2u) << "every page the ring touches";
    EXPECT_EQ(iommu.calls[i].gpas[1], q.dma.rings[i].gpa + kPage);
    EXPECT_EQ(iommu.calls[i].perm, protocol::kIotlbPermRw);
    EXPECT_TRUE(iommu.calls[i].flag) << "pushed";
  }
  EXPECT_EQ(iommu.calls[2].iova, q.dma.pools[kRx].static_iova);
  EXPECT_EQ(iommu.calls[2].gpas, q.rx_pages);
  EXPECT_EQ(iommu.calls[2].perm, protocol::kIotlbPermRw);
  EXPECT_EQ(iommu.calls[3].gpas, q.tx_pages);
  EXPECT_EQ(iommu.calls[3].perm, protocol::kIotlbPermRo) << "the device only reads transmit";
  EXPECT_TRUE(iommu.calls[3].flag);
  EXPECT_TRUE(m->pushes_updates());

  Result<uint64_t> a = m->MapBuffer(kTx, 3, 5000, 1000);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, q.dma.pools[kTx].static_iova + 5000);
  EXPECT_TRUE(m->UnmapBuffer(kTx, 3).ok());
  EXPECT_TRUE(m->OnDeviceStarted().ok());
  EXPECT_TRUE(m->Flush().ok());
  EXPECT_EQ(iommu.calls.size(), 4u) << "a buffer costs the IOMMU nothing";
  EXPECT_EQ(m->maps() + m->unmaps(), 0u);
}

TEST(StaticModel, SwappedPagesInjection) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kStatic, &iommu, {256, true});
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  EXPECT_EQ(iommu.calls[3].gpas[0], q.tx_pages[1]);
  EXPECT_EQ(iommu.calls[3].gpas[1], q.tx_pages[0]);
  EXPECT_EQ(iommu.calls[2].gpas, q.rx_pages) << "receive pool untouched";
}

TEST(ColdModel, FillsThePageTablePushesOnlyTheUsedRings) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kCold, &iommu);
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  ASSERT_EQ(iommu.calls.size(), 4u);
  for (const auto& c : iommu.calls) EXPECT_FALSE(c.flag) << "nothing pushed at set-up";
  EXPECT_FALSE(m->pushes_updates()) << "storm re-maps are left to MISSes too";
  ASSERT_TRUE(m->OnDeviceStarted().ok());
  ASSERT_EQ(iommu.calls.size(), 6u);
  for (int i : {0, 1}) {
    EXPECT_EQ(iommu.calls[4 + i].op, "push");
    EXPECT_EQ(iommu.calls[4 + i].iova, q.dma.rings[i].iova + q.dma.rings[i].used_off);
  }
  Result<uint64_t> a = m->MapBuffer(kRx, 0, 100, 64);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, q.dma.pools[kRx].static_iova + 100);
}

TEST(StrictModel, MapsBeforeUnmapsAndInvalidatesAfterEveryBuffer) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kStrict, &iommu);
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  ASSERT_EQ(iommu.calls.size(), 2u) << "only the rings up front";
  // A buffer straddling pool pages 0 and 1 (scattered: guest pages 0x10000 and 0x13000).
  Result<uint64_t> a = m->MapBuffer(kRx, 5, kPage - 32, 1548);
  ASSERT_TRUE(a.ok());
  const auto& map = iommu.calls.back();
  EXPECT_EQ(map.op, "map");
  EXPECT_EQ(map.iova, q.dma.window_area) << "the first receive window";
  EXPECT_EQ(map.gpas, (std::vector<uint64_t>{0x10000, 0x13000}));
  EXPECT_EQ(map.perm, protocol::kIotlbPermRw);
  EXPECT_TRUE(map.flag);
  EXPECT_EQ(*a, map.iova + kPage - 32);
  ASSERT_TRUE(m->UnmapBuffer(kRx, 5).ok());
  const auto& unmap = iommu.calls.back();
  EXPECT_EQ(unmap.op, "unmap");
  EXPECT_EQ(unmap.iova, map.iova);
  EXPECT_EQ(unmap.count, 2u);
  EXPECT_TRUE(unmap.flag) << "INVALIDATE at once, acked";
  EXPECT_EQ(m->maps(), 1u);
  EXPECT_EQ(m->unmaps(), 1u);
  // Transmit windows are RO, in their own area, and freed windows are reused last (FIFO).
  Result<uint64_t> t = m->MapBuffer(kTx, 0, 0, 100);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(iommu.calls.back().perm, protocol::kIotlbPermRo);
  EXPECT_GE(*t, q.dma.window_area + (1ull << 32));
  Result<uint64_t> r2 = m->MapBuffer(kRx, 5, 0, 100);
  ASSERT_TRUE(r2.ok());
  EXPECT_NE(*r2 & ~(kPage - 1), map.iova) << "the window just freed waits behind the others";
}

TEST(StrictModel, RunsOutOfWindowsWithAClearError) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kStrict, &iommu, {4, false});
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  const uint32_t windows = 2 * 8 + 4 + 16;
  for (uint32_t i = 0; i < windows; ++i) ASSERT_TRUE(m->MapBuffer(kTx, i % 8, 0, 64).ok()) << i;
  Result<uint64_t> none = m->MapBuffer(kTx, 0, 0, 64);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, "IOVA windows exhausted");
}

TEST(LazyModel, UnmapsAtOnceInvalidatesInBatches) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kLazy, &iommu, {4, false});
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  std::vector<uint64_t> iovas;
  for (uint32_t slot = 0; slot < 4; ++slot) {
    Result<uint64_t> a = m->MapBuffer(kTx, slot, 0, 64);
    ASSERT_TRUE(a.ok());
    iovas.push_back(*a);
  }
  for (uint32_t slot = 0; slot < 3; ++slot) ASSERT_TRUE(m->UnmapBuffer(kTx, slot).ok());
  for (const auto& c : iommu.calls) {
    EXPECT_NE(c.op, "invalidate") << "deferred until the batch is full";
    if (c.op == "unmap") {
      EXPECT_FALSE(c.flag) << "unmapped without an INVALIDATE";
    }
  }
  ASSERT_TRUE(m->UnmapBuffer(kTx, 3).ok());
  // Four adjacent windows: one INVALIDATE from the first window to the last one's mapped end.
  const auto& inv = iommu.calls.back();
  ASSERT_EQ(inv.op, "invalidate");
  EXPECT_EQ(inv.iova, iovas[0]);
  EXPECT_EQ(inv.iova + inv.count, iovas[3] + kPage);
  EXPECT_EQ(m->unmaps(), 4u);
  // End of run: what is left in the queue is flushed; an empty queue sends nothing.
  ASSERT_TRUE(m->MapBuffer(kRx, 0, 0, 64).ok());
  ASSERT_TRUE(m->UnmapBuffer(kRx, 0).ok());
  const std::size_t before = iommu.calls.size();
  ASSERT_TRUE(m->Flush().ok());
  ASSERT_EQ(iommu.calls.size(), before + 1);
  EXPECT_EQ(iommu.calls.back().op, "invalidate");
  ASSERT_TRUE(m->Flush().ok());
  EXPECT_EQ(iommu.calls.size(), before + 1);
}

TEST(LazyModel, ExhaustedWindowsFlushTheQueueInsteadOfFailing) {
  RecordingIommu iommu;
  Queue q;
  auto m = Make(Mapping::kLazy, &iommu, {64, false});
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  const uint32_t windows = 2 * 8 + 64 + 16;
  // 63 buffers completed (queued, one short of a batch), then every other window held.
  for (uint32_t i = 0; i < 63; ++i) {
    ASSERT_TRUE(m->MapBuffer(kTx, 0, 0, 64).ok()) << i;
    ASSERT_TRUE(m->UnmapBuffer(kTx, 0).ok()) << i;
  }
  for (uint32_t i = 63; i < windows; ++i) ASSERT_TRUE(m->MapBuffer(kTx, 1, 0, 64).ok()) << i;
  for (const auto& c : iommu.calls) ASSERT_NE(c.op, "invalidate");
  // No window is free: the model flushes its queue rather than fail.
  ASSERT_TRUE(m->MapBuffer(kTx, 2, 0, 64).ok());
  bool flushed = false;
  for (const auto& c : iommu.calls) flushed |= c.op == "invalidate";
  EXPECT_TRUE(flushed);
  EXPECT_EQ(iommu.calls.back().op, "map");
}

TEST(Models, AnIommuFailureIsReturned) {
  for (Mapping mapping : {Mapping::kStatic, Mapping::kLazy, Mapping::kStrict, Mapping::kCold}) {
    RecordingIommu iommu;
    Queue q;
    iommu.fail_at = 3;
    auto m = Make(mapping, &iommu);
    Status s = m->SetUp(q.dma);
    if (DescribeMapping(mapping).fixed_iovas) {
      ASSERT_FALSE(s.ok()) << MappingName(mapping);
      EXPECT_EQ(s.message(), "injected failure");
    } else {
      ASSERT_TRUE(s.ok());
      Result<uint64_t> a = m->MapBuffer(kRx, 0, 0, 64);
      ASSERT_FALSE(a.ok()) << MappingName(mapping);
      EXPECT_EQ(a.error().message, "injected failure");
    }
  }
}

TEST(NoIommuModel, BuffersAreAtTheirGuestPhysicalAddresses) {
  RecordingIommu iommu;
  Queue q;
  auto m = MakeMappingModel(Mapping::kStrict, false, &iommu, {});
  ASSERT_TRUE(m->SetUp(q.dma).ok());
  Result<uint64_t> a = m->MapBuffer(kTx, 1, 6000, 64);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, q.tx_pages[0] + 6000);
  EXPECT_TRUE(m->UnmapBuffer(kTx, 1).ok());
  EXPECT_TRUE(m->Flush().ok());
  EXPECT_TRUE(iommu.calls.empty()) << "without an IOMMU nothing is mapped";
}

}  // namespace
}  // namespace vhostlab::loadgen
