// microcache<Inner>: a small per-queue translation cache in front of any design, like Linux's
// per-virtqueue meta_iotlb but for data buffers too.
//
// The cache has kSets sets of kWays lines (kWays == 1: direct-mapped). A line caches, for one
// 4 KiB IOVA page, the part of one inner entry that lies in that page: the byte offsets [lo, hi]
// it covers, the uaddr of the page start (modulo 2^64) and the entry's permission. A hit needs a
// tag match, the line's generation equal to the cache's, the whole access inside [lo, hi] and the
// permission; anything else (a miss, an access crossing the page or the entry, a permission
// failure) takes the out-of-line slow path, which asks the inner design and refills the line.
//
// Invariants:
//  - A line's tag is its page number (52 bits) with the generation it was filled in on top
//    (12 bits), so the hit test is one 64-bit compare. Every Insert/Invalidate bumps generation_
//    before touching the inner design, so no line filled before an update can hit after it (an
//    O(1) flush). Every 4094 updates the generation wraps and the lines are cleared for real.
//  - A hit answers exactly what the inner design would: a line is filled only from the inner
//    entry containing the iova, clipped to the page.
//  - Translate() is const but fills lines: an instance belongs to ONE reader (a queue worker
//    owning a replica, as Replicated<D> arranges). It is not safe to share between readers.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

// A string usable as a template argument, so each instantiation can carry its registry name.
template <std::size_t N>
struct FixedName {
  char chars[N];
  constexpr FixedName(const char (&s)[N]) { std::copy_n(s, N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

template <FixedName kNameStr, Design Inner, std::size_t kSets, std::size_t kWays>
  requires HasFindEntry<Inner>
class MicroCache final {
 public:
  static constexpr std::string_view kName = kNameStr.view();
  static_assert(kSets > 0 && (kSets & (kSets - 1)) == 0, "kSets must be a power of two");
  static_assert(kWays >= 1 && kWays <= 8, "small associativity only: all ways are compared");

  MicroCache() { Flush(); }

  InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) {
    BumpGeneration();
    return inner_.Insert(r, uaddr, perm);
  }

  std::size_t Invalidate(IovaRange r) {
    BumpGeneration();
    return inner_.Invalidate(r);
  }

  Translation Translate(uint64_t iova, uint64_t len, Perm perm) const {
    const uint64_t page = iova >> 12;
    const uint64_t off = iova & 0xfff;
    const uint64_t tag = page | tag_generation_;
    const Line* set = &lines_[(page & (kSets - 1)) * kWays];
    for (std::size_t w = 0; w < kWays; ++w) {
      const Line& line = set[w];
      if (line.tag == tag && off >= line.lo && off + (len - 1) <= line.hi &&
          Allows(line.perm, perm)) {
        return {Outcome::kHit, line.uaddr_page + off, len};
      }
    }
    return SlowPath(iova, len, perm);
  }

  bool FindEntry(uint64_t iova, Entry* out) const { return inner_.FindEntry(iova, out); }

  std::size_t Size() const { return inner_.Size(); }
  std::size_t MemoryBytes() const { return sizeof(*this) - sizeof(inner_) + inner_.MemoryBytes(); }
  void Clear() {
    BumpGeneration();
    inner_.Clear();
  }

  // Slow-path entries (lookups that went to the inner design); hits = translations - misses.
  uint64_t CacheMisses() const { return misses_; }
  const Inner& inner() const { return inner_; }

 private:
  struct alignas(32) Line {
    uint64_t tag;         // (iova >> 12) | generation << 52
    uint64_t uaddr_page;  // uaddr of the page's first byte (mod 2^64)
    uint16_t lo;          // first covered byte offset in the page
    uint16_t hi;          // last covered byte offset in the page
    Perm perm;
  };
  static_assert(sizeof(Line) == 32, "two lines per 64-byte cache line");
  static constexpr int kGenerationShift = 52;
  static constexpr uint32_t kMaxGeneration = 4094;  // 4095 with page 2^52-1 is the empty tag

  // One inner lookup: find the entry, refill the line from it, and answer from it unless the
  // access runs past the entry (then the inner design joins the following pieces).
  [[gnu::noinline]] Translation SlowPath(uint64_t iova, uint64_t len, Perm perm) const {
    ++misses_;
    Entry e;
    if (!inner_.FindEntry(iova, &e)) return Miss();
    const uint64_t page_first = iova & ~uint64_t{0xfff};
    const uint64_t page_last = page_first | 0xfff;
    const uint64_t page = iova >> 12;
    Line* set = &lines_[(page & (kSets - 1)) * kWays];
    Line& line = set[kWays == 1 ? 0 : victim_[page & (kSets - 1)]++ % kWays];
    line.tag = page | tag_generation_;
    line.uaddr_page = e.uaddr - (e.range.first - page_first);
    line.lo = static_cast<uint16_t>(std::max(e.range.first, page_first) - page_first);
    line.hi = static_cast<uint16_t>(std::min(e.range.last, page_last) - page_first);
    line.perm = e.perm;
    const Translation t = HitIn(e, iova, len, perm);
    if (t.hit() && t.len < len) return inner_.Translate(iova, len, perm);
    return t;
  }

  void BumpGeneration() {
    if (++generation_ > kMaxGeneration) Flush();
    tag_generation_ = uint64_t{generation_} << kGenerationShift;
  }

  // Empty lines can never hit: their tag is no (page, generation) pair in use and lo > hi.
  void Flush() {
    for (Line& line : lines_) line = Line{~uint64_t{0}, 0, 1, 0, Perm::kNone};
    generation_ = 1;
    tag_generation_ = uint64_t{generation_} << kGenerationShift;
  }

  Inner inner_;
  uint32_t generation_ = 1;
  uint64_t tag_generation_ = uint64_t{1} << kGenerationShift;
  mutable uint64_t misses_ = 0;
  mutable std::array<Line, kSets * kWays> lines_;
  mutable std::array<uint8_t, kSets> victim_{};
};

}  // namespace vhostlab::iotlb
