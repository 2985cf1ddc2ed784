// Rig: a backend (in-process, or another process's socket) plus a TestFrontend with one RX and
// one TX queue laid out in guest memory, and a loopback check that verifies every byte
// (test-only; shared by the datapath and hostile-peer tests).
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend/test_frontend.hpp"

namespace vhostlab::backend::testing {

using Seg = DriverQueue::Seg;

inline constexpr uint64_t kPage = 4096;
inline constexpr uint64_t kIovaBase = 0x1'0000'0000;  // IOVA of guest offset 0 in "identity" mappings
inline constexpr uint64_t kRxRing = 0, kTxRing = 0x10000;
inline constexpr uint64_t kTxBufs = 0x100000, kRxBufs = 0x300000, kSlot = 0x1000;
inline constexpr uint32_t kQueueSize = 256;
inline constexpr uint64_t kHdr = sizeof(virtio::NetHdr);

// The vIOMMU's answer to any MISS in the identity-style layout Rig::Map() pushes: the missed
// 4 KiB page, read-write, whatever access was asked for.
inline TestFrontend::Mapping MapMissedPage(uint64_t iova, uint8_t) {
  const uint64_t page = iova & ~(kPage - 1);
  return TestFrontend::Mapping{page, kPage, TestFrontend::Uaddr(page - kIovaBase),
                               protocol::kIotlbPermRw};
}

struct Rig {
  // In-process backend.
  Rig(DeviceMode mode, bool iommu_on, uint32_t pairs = 1, const std::string& design = "reference",
      const std::string& record = "")
      : be(std::make_unique<BackendUnderTest>(mode, pairs, design, record)),
        fe(be->path),
        iommu(iommu_on) {}
  // A backend that already listens on `socket_path` (another process).
  Rig(const std::string& socket_path, bool iommu_on) : fe(socket_path), iommu(iommu_on) {}

  // Descriptor address of guest offset `off`: a GPA, or an IOVA with the IOMMU on.
  uint64_t Addr(uint64_t off) const { return iommu ? kIovaBase + off : TestFrontend::Gpa(off); }
  uint64_t RingAddr(uint64_t off) const { return iommu ? kIovaBase + off : TestFrontend::Uaddr(off); }

  // Pushes identity-style 4 KiB UPDATEs (IOVA kIovaBase + off -> uaddr of off) for [off, off+len).
  void Map(uint64_t off, uint64_t len, uint8_t perm = protocol::kIotlbPermRw) {
    for (uint64_t p = off & ~(kPage - 1); p < off + len; p += kPage) {
      auto r = fe.Update(kIovaBase + p, kPage, TestFrontend::Uaddr(p), perm);
      ASSERT_TRUE(r.ok() && *r == 0) << "UPDATE of offset " << p;
    }
  }
  void MapRings() {
    Map(kRxRing, DriverQueue::Footprint(kQueueSize));
    Map(kTxRing, DriverQueue::Footprint(kQueueSize));
  }

  // `resolve`, when given, starts a vIOMMU thread answering MISS messages once the backend
  // channel exists and before any queue starts.
  void Start(bool indirect = true,
             std::function<TestFrontend::Mapping(uint64_t, uint8_t)> resolve = nullptr) {
    fe.Setup(iommu, indirect, features);
    if (resolve) fe.StartMissServer(resolve);
    AddQueues();
    StartQueues();
  }

  // RX queue 0 and TX queue 1 with `queue_size` entries, laid out at kRxRing and kTxRing.
  void AddQueues() {
    rx = &fe.AddQueue(0, queue_size, kRxRing);
    tx = &fe.AddQueue(1, queue_size, kTxRing);
  }
  // Starts both at their RingAddr() (ENABLE left out when `enable` is false).
  void StartQueues(bool enable = true) {
    auto ring = [this](uint64_t off) { return RingAddr(off); };
    fe.StartQueue(*rx, ring, enable);
    fe.StartQueue(*tx, ring, enable);
  }

  // Writes header + frame for TX slot `i` and returns the frame.
  std::vector<uint8_t> MakePacket(uint32_t i, std::mt19937& rng) {
    std::uniform_int_distribution<uint32_t> len(60, 1514);
    std::vector<uint8_t> frame(len(rng));
    for (auto& b : frame) b = static_cast<uint8_t>(rng());
    uint8_t* p = fe.mem() + kTxBufs + i * kSlot;
    std::memset(p, 0, kHdr);
    std::memcpy(p + kHdr, frame.data(), frame.size());
    return frame;
  }

  // Sends `n` packets through loopback and verifies each received byte.
  void LoopbackAndVerify(uint32_t n, uint32_t seed = 1) {
    std::mt19937 rng(seed);
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t slot = i % 64;
      rx->Post({{Addr(kRxBufs + slot * kSlot), 2048, true}});
      const std::vector<uint8_t> frame = MakePacket(slot, rng);
      // Header and frame in separate descriptors, as Linux's virtio-net does.
      tx->Post({{Addr(kTxBufs + slot * kSlot), static_cast<uint32_t>(kHdr), false},
                {Addr(kTxBufs + slot * kSlot + kHdr), static_cast<uint32_t>(frame.size()), false}});
      ASSERT_TRUE(tx->WaitUsed(1)) << "TX packet " << i << " not consumed";
      ASSERT_TRUE(rx->WaitUsed(1)) << "RX packet " << i << " not delivered";
      const virtio::UsedElem t = tx->TakeUsed();
      const virtio::UsedElem r = rx->TakeUsed();
      EXPECT_EQ(t.len, 0u);
      ASSERT_EQ(r.len, kHdr + frame.size()) << "packet " << i;
      const uint8_t* got = fe.mem() + kRxBufs + slot * kSlot;
      virtio::NetHdr hdr;
      std::memcpy(&hdr, got, kHdr);
      EXPECT_EQ(hdr.num_buffers, 1);
      EXPECT_EQ(hdr.flags, 0);
      ASSERT_EQ(std::memcmp(got + kHdr, frame.data(), frame.size()), 0) << "packet " << i;
    }
  }

  QueueStats Stats(uint32_t pair = 0) { return be->backend->Stats().queues[pair]; }

  std::unique_ptr<BackendUnderTest> be;
  TestFrontend fe;
  bool iommu;
  uint32_t queue_size = kQueueSize;
  uint64_t features = 0;  // extra virtio features Start() acks (EVENT_IDX, MRG_RXBUF)
  DriverQueue* rx = nullptr;
  DriverQueue* tx = nullptr;
};

}  // namespace vhostlab::backend::testing
