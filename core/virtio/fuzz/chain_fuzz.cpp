// libFuzzer target: the device-side descriptor-chain walker (virtio/device_queue.hpp) over
// random ring memory.
//
// Input: byte 0 picks the queue size (2^(b % 8 + 1): 2..256), byte 1 the flags (bit 0: indirect
// descriptors negotiated; bits 1-2: which slice of guest memory misses or lacks permission);
// the rest is copied over a 64 KiB guest memory that holds the ring (desc table at 0, avail ring
// after it, used ring after that) and every buffer. The translator grants a piece inside guest
// memory with the permission asked for, answers MISS or ACCESS_FAIL on the slices the flags
// pick and "unmapped" outside it, splitting pieces at 4 KiB boundaries like a 4 KiB IOTLB.
// Every available head is walked; the walker must not read or write outside guest memory
// (ASan's redzones around the heap buffer catch it), must stay within kMaxPieces, and its
// totals must add up.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/virtio/device_queue.hpp"

namespace vhostlab::virtio {
namespace {

constexpr uint64_t kMem = 64 << 10;
constexpr uint64_t kPage = 4096;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "chain_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace
}  // namespace vhostlab::virtio

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace vhostlab::virtio;
  using vhostlab::iotlb::Perm;
  if (size < 2) return 0;
  const uint32_t num = 1u << (data[0] % 8 + 1);
  const uint8_t flags = data[1];
  const bool indirect = flags & 1;
  const uint64_t miss_page = (flags >> 1 & 3) == 1 ? 5 : ~uint64_t{0};
  const uint64_t deny_page = (flags >> 1 & 3) == 2 ? 6 : ~uint64_t{0};
  std::vector<uint8_t> mem(kMem);  // exactly kMem bytes on the heap: ASan sees any overrun
  std::memcpy(mem.data(), data + 2, std::min<std::size_t>(size - 2, kMem));
  const uint64_t avail_off = DescBytes(num);
  const uint64_t used_off = (avail_off + AvailBytes(num) + 3) & ~uint64_t{3};
  DeviceRing ring;
  ring.Attach(reinterpret_cast<Desc*>(mem.data()), reinterpret_cast<Avail*>(mem.data() + avail_off),
              reinterpret_cast<Used*>(mem.data() + used_off), num);

  auto translate = [&](uint64_t addr, uint64_t len, Perm perm) -> Xlate {
    if (addr >= kMem) return {XlateStatus::kUnmapped, nullptr, 0};
    const uint64_t page = addr / kPage;
    if (page == miss_page) return {XlateStatus::kMiss, nullptr, 0};
    if (page == deny_page && perm != Perm::kRead) return {XlateStatus::kAccessFail, nullptr, 0};
    const uint64_t n = std::min({len, kPage - addr % kPage, kMem - addr});
    return {XlateStatus::kOk, mem.data() + addr, n};
  };

  Chain chain;
  ChainFault fault;
  std::vector<Desc> scratch;
  const uint16_t avail = ring.AvailCount();
  for (uint16_t k = 0; k < std::min<uint32_t>(avail, num); ++k) {
    const ChainStatus s = ring.Walk(ring.HeadAt(k), indirect, translate, &chain, &fault, &scratch);
    if (s != ChainStatus::kOk) continue;
    Check(chain.readable.size() + chain.writable.size() <= kMaxPieces, "too many pieces");
    // An empty piece (a zero-length writable descriptor marks where writable ones begin) has
    // no memory; every other piece lies inside guest memory.
    auto inside = [&](const Piece& p) {
      return p.len == 0 || (p.ptr >= mem.data() && p.ptr + p.len <= mem.data() + kMem);
    };
    uint64_t r = 0, w = 0;
    for (const Piece& p : chain.readable) {
      Check(inside(p), "readable piece outside guest memory");
      r += p.len;
    }
    for (const Piece& p : chain.writable) {
      Check(inside(p), "writable piece outside guest memory");
      w += p.len;
    }
    Check(r == chain.readable_len && w == chain.writable_len, "lengths do not add up");
    // Touch what was granted, as the datapath does (copy out of readable, into writable).
    uint8_t sink[64];
    CopyFromPieces(chain.readable, 0, sink, std::min<uint64_t>(r, sizeof sink));
    for (const Piece& p : chain.writable)
      if (p.len) std::memset(p.ptr, 0, p.len);
    ring.PushUsed(chain.head, static_cast<uint32_t>(w));
  }
  ring.PublishUsed();
  return 0;
}
