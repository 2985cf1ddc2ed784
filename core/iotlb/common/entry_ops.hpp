// Small helpers every design shares: answering a hit from one entry, joining per-entry lookups
// into one Translate, invalidating with a full-range shortcut, trimming an entry around an
// invalidated range, and the optional side APIs (FindEntry, BulkLoad) benchmarks and the
// micro-cache use when a design offers them.
//
// All arithmetic is on inclusive ranges so that an entry ending at 2^64 - 1 never overflows:
// sizes are carried "minus one" and uaddr offsets wrap modulo 2^64 exactly like the front-end's
// own pointer arithmetic would.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

// The hit for `iova` inside entry `e` (which must contain it): up to `len` bytes, never past
// e.range.last. `len` >= 1.
inline Translation HitIn(const Entry& e, uint64_t iova, uint64_t len, Perm perm) {
  if (!Allows(e.perm, perm)) return AccessFail();
  const uint64_t avail_minus_one = e.range.last - iova;
  const uint64_t granted = (len - 1 <= avail_minus_one) ? len : avail_minus_one + 1;
  return {Outcome::kHit, e.uaddr + (iova - e.range.first), granted};
}

// Calls add(Entry) for the parts of `e` that lie outside `r` (zero, one or two pieces), keeping
// each piece's uaddr consistent with the original mapping. `e` must overlap `r`.
template <typename Add>
inline void ForEachRemainder(const Entry& e, IovaRange r, Add&& add) {
  if (e.range.first < r.first) add(Entry{{e.range.first, r.first - 1}, e.uaddr, e.perm});
  if (e.range.last > r.last) {
    add(Entry{{r.last + 1, e.range.last}, e.uaddr + (r.last + 1 - e.range.first), e.perm});
  }
}

// The Translate of a design that answers one entry at a time: `lookup_one(iova, len)` answers
// the first piece and JoinPieces extends it while the following pieces continue the mapping.
// A template taking the design's own lambda, so the lookup stays inlined into its Translate.
template <typename LookupOne>
inline Translation TranslateJoined(uint64_t iova, uint64_t len, LookupOne&& lookup_one) {
  return JoinPieces(iova, len, lookup_one(iova, len), lookup_one);
}

// The Invalidate of a design whose Clear() is cheaper than trimming every entry: an empty range
// touches nothing, the full range (a guest's global flush) clears `d` and reports every entry as
// touched, and any other range goes to `remove(r)`, which returns how many entries it touched.
template <typename D, typename Remove>
inline std::size_t InvalidateClearingFull(D& d, IovaRange r, Remove&& remove) {
  if (r.first > r.last) return 0;
  if (r == kFullRange) {
    const std::size_t n = d.Size();
    d.Clear();
    return n;
  }
  return remove(r);
}

constexpr bool IsValidInsert(IovaRange r, Perm perm) { return r.first <= r.last && perm != Perm::kNone; }

// Optional side API: the entry containing `iova` (no joining), or any part of it that still
// contains `iova` (with the matching uaddr). The micro-cache needs it to cache a whole page's
// worth of an entry rather than one access.
template <typename T>
concept HasFindEntry = requires(const T ct, uint64_t u, Entry* out) {
  { ct.FindEntry(u, out) } -> std::same_as<bool>;
};

// Optional side API: replace the contents with `entries` in one go (designs whose per-insert cost
// is O(n), like the Eytzinger layout, would otherwise make large set-ups quadratic).
template <typename T>
concept HasBulkLoad = requires(T t, std::span<const Entry> es) { t.BulkLoad(es); };

// Clears `d` and inserts `entries` (in order, so later entries replace earlier overlapping ones).
template <Design D>
void Fill(D& d, std::span<const Entry> entries) {
  if constexpr (HasBulkLoad<D>) {
    d.BulkLoad(entries);
  } else {
    d.Clear();
    for (const Entry& e : entries) d.Insert(e.range, e.uaddr, e.perm);
  }
}

// True when `entries` are valid, sorted by first IOVA and pairwise disjoint (the fast BulkLoad input).
inline bool SortedAndDisjoint(std::span<const Entry> entries) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!IsValidInsert(entries[i].range, entries[i].perm)) return false;
    if (i > 0 && entries[i].range.first <= entries[i - 1].range.last) return false;
  }
  return true;
}

}  // namespace vhostlab::iotlb
