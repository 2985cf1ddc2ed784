// DeviceRing / chain-walking tests on a plain in-process ring. The translator below is a real
// address map over a local buffer that answers at most up to the next 4 KiB boundary (like an
// IOTLB of 4 KiB entries), so every multi-page buffer is walked piece by piece.
#include "core/virtio/device_queue.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace vhostlab::virtio {
namespace {

using iotlb::Perm;

constexpr uint64_t kBase = 0x10000;  // device-visible address of mem[0]
constexpr uint64_t kPage = 4096;
constexpr uint32_t kNum = 16;

struct Fixture {
  Fixture() : mem(64 * kPage, 0) {
    for (std::size_t i = 0; i < mem.size(); ++i) mem[i] = static_cast<uint8_t>(i * 7);
    ring_mem.resize(DescBytes(kNum) + AvailBytes(kNum) + 8 + UsedBytes(kNum));
    desc = reinterpret_cast<Desc*>(ring_mem.data());
    avail = reinterpret_cast<struct Avail*>(ring_mem.data() + DescBytes(kNum));
    used = reinterpret_cast<Used*>(ring_mem.data() + ((DescBytes(kNum) + AvailBytes(kNum) + 7) & ~7));
    ring.Attach(desc, avail, used, kNum);
  }
  // The translator: [kBase, kBase + mem.size()) mapped, pages in `miss_pages` missing, pages in
  // `ro_pages` read-only.
  Xlate operator()(uint64_t addr, uint64_t len, Perm perm) const {
    if (addr < kBase || addr - kBase >= mem.size()) return {XlateStatus::kUnmapped, nullptr, 0};
    const uint64_t off = addr - kBase, page = off / kPage;
    for (uint64_t p : miss_pages)
      if (p == page) return {XlateStatus::kMiss, nullptr, 0};
    for (uint64_t p : ro_pages)
      if (p == page && perm == Perm::kWrite) return {XlateStatus::kAccessFail, nullptr, 0};
    const uint64_t n = std::min(len, granule - off % granule);
    return {XlateStatus::kOk, const_cast<uint8_t*>(mem.data()) + off, n};
  }
  void MakeAvail(uint16_t head) {
    avail->ring[avail->idx % kNum] = head;
    ++avail->idx;
  }
  ChainStatus Walk(uint16_t head, bool indirect = true) {
    return ring.Walk(head, indirect, *this, &chain, &fault, &scratch);
  }

  std::vector<uint8_t> mem;
  std::vector<uint8_t> ring_mem;
  Desc* desc;
  struct Avail* avail;
  Used* used;
  DeviceRing ring;
  Chain chain;
  ChainFault fault;
  std::vector<Desc> scratch;
  std::vector<uint64_t> miss_pages, ro_pages;
  uint64_t granule = kPage;  // the translator answers at most up to the next granule boundary
};

TEST(DeviceRingTest, WalksReadableThenWritableIntoPagePieces) {
  Fixture f;
  f.desc[0] = {kBase + kPage - 100, 300, kDescFNext, 1};     // crosses one page boundary
  f.desc[1] = {kBase + 10 * kPage, 2 * kPage + 1, kDescFWrite, 0};  // three pages
  ASSERT_EQ(f.Walk(0), ChainStatus::kOk) << f.fault.why;
  EXPECT_EQ(f.chain.readable_len, 300u);
  EXPECT_EQ(f.chain.writable_len, 2 * kPage + 1);
  ASSERT_EQ(f.chain.readable.size(), 2u);
  EXPECT_EQ(f.chain.readable[0].len, 100u);
  EXPECT_EQ(f.chain.readable[1].len, 200u);
  EXPECT_EQ(f.chain.writable.size(), 3u);
  std::vector<uint8_t> out(300);
  EXPECT_EQ(CopyFromPieces(f.chain.readable, 0, out.data(), out.size()), 300u);
  EXPECT_EQ(0, std::memcmp(out.data(), f.mem.data() + kPage - 100, 300));
}

TEST(DeviceRingTest, MissReportsAddressAndPermissionAndConsumesNothing) {
  Fixture f;
  f.miss_pages = {3};
  f.desc[4] = {kBase + 3 * kPage - 8, 64, kDescFWrite, 0};
  f.MakeAvail(4);
  ASSERT_EQ(f.ring.AvailCount(), 1);
  ASSERT_EQ(f.Walk(f.ring.NextHead()), ChainStatus::kMiss);
  EXPECT_EQ(f.fault.addr, kBase + 3 * kPage) << "the first byte that is not covered";
  EXPECT_EQ(f.fault.perm, Perm::kWrite);
  EXPECT_EQ(f.ring.AvailCount(), 1) << "nothing consumed: the same head is retried";
  f.miss_pages.clear();
  EXPECT_EQ(f.Walk(f.ring.NextHead()), ChainStatus::kOk);
}

TEST(DeviceRingTest, AccessFailAndUnmapped) {
  Fixture f;
  f.ro_pages = {5};
  f.desc[0] = {kBase + 5 * kPage, 64, kDescFWrite, 0};
  EXPECT_EQ(f.Walk(0), ChainStatus::kAccessFail);
  EXPECT_EQ(f.fault.perm, Perm::kWrite);
  f.desc[0] = {kBase + 5 * kPage, 64, 0, 0};
  EXPECT_EQ(f.Walk(0), ChainStatus::kOk) << "reading a read-only page is fine";
  f.desc[0] = {kBase - 64, 64, 0, 0};
  EXPECT_EQ(f.Walk(0), ChainStatus::kMalformed);
  EXPECT_NE(f.fault.why.find("outside mapped memory"), std::string::npos);
}

TEST(DeviceRingTest, IndirectOnlyWhenNegotiatedAndTranslatedPiecewise) {
  Fixture f;
  // The indirect table itself straddles a page boundary.
  const uint64_t table_off = 7 * kPage - 16;
  Desc table[2] = {{kBase + 20 * kPage, 12, kDescFNext, 1}, {kBase + 21 * kPage, 100, 0, 0}};
  std::memcpy(f.mem.data() + table_off, table, sizeof(table));
  f.desc[2] = {kBase + table_off, 32, kDescFIndirect, 0};
  EXPECT_EQ(f.Walk(2, /*indirect=*/false), ChainStatus::kMalformed);
  ASSERT_EQ(f.Walk(2, true), ChainStatus::kOk) << f.fault.why;
  EXPECT_EQ(f.chain.readable_len, 112u);
  EXPECT_EQ(f.chain.descriptors, 2u);
  f.miss_pages = {7};
  EXPECT_EQ(f.Walk(2, true), ChainStatus::kMiss) << "the table is translated too";
  EXPECT_EQ(f.fault.perm, Perm::kRead);
}

TEST(DeviceRingTest, TooManyPiecesIsMalformed) {
  // A translator that answers 8 bytes at a time turns one 8 KiB buffer into 1024 pieces: fine.
  // One more piece is refused, so a hostile chain cannot make the worker allocate without bound.
  Fixture f;
  f.granule = 8;
  f.desc[0] = {kBase, static_cast<uint32_t>(8 * kMaxPieces), 0, 0};
  ASSERT_EQ(f.Walk(0), ChainStatus::kOk) << f.fault.why;
  EXPECT_EQ(f.chain.readable.size(), kMaxPieces);
  f.desc[0].len += 1;
  EXPECT_EQ(f.Walk(0), ChainStatus::kMalformed);
  EXPECT_NE(f.fault.why.find("pieces"), std::string::npos) << f.fault.why;
}

TEST(DeviceRingTest, UsedRingWrapsAndPublishes) {
  Fixture f;
  f.ring.set_last_avail(65535);
  f.ring.set_used_idx(65535);
  f.avail->idx = 65535;
  f.MakeAvail(3);
  f.MakeAvail(4);
  EXPECT_EQ(f.ring.AvailCount(), 2) << "free-running u16 indices wrap";
  EXPECT_EQ(f.ring.NextHead(), 3);
  f.ring.PushUsed(3, 10);
  f.ring.Consume();
  EXPECT_EQ(f.ring.NextHead(), 4);
  f.ring.PushUsed(4, 20);
  f.ring.Consume();
  EXPECT_EQ(f.used->idx, 0) << "not visible before PublishUsed";
  f.ring.PublishUsed();
  EXPECT_EQ(f.used->idx, 1);
  EXPECT_EQ(f.used->ring[65535 % kNum].id, 3u);
  EXPECT_EQ(f.used->ring[0].len, 20u);
  EXPECT_EQ(f.ring.AvailCount(), 0);
}

TEST(DeviceRingTest, CopyPiecesAcrossDifferentSplits) {
  std::vector<uint8_t> a(100), b(100, 0);
  std::iota(a.begin(), a.end(), 0);
  std::vector<Piece> src{{a.data(), 30}, {a.data() + 30, 70}};
  std::vector<Piece> dst{{b.data(), 55}, {b.data() + 55, 5}, {b.data() + 60, 40}};
  EXPECT_EQ(CopyPieces(src, 10, dst, 5, 80), 80u);
  for (int i = 0; i < 80; ++i) ASSERT_EQ(b[5 + i], 10 + i);
  EXPECT_EQ(CopyPieces(src, 90, dst, 0, 50), 10u) << "source runs out";
}

}  // namespace
}  // namespace vhostlab::virtio
