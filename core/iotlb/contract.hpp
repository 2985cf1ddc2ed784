// The IOTLB contract: what every design under core/iotlb/<design>/ satisfies.
//
// An IOTLB maps IOVA ranges to front-end user addresses (uaddr) with permissions, exactly as
// VHOST_USER_IOTLB_MSG UPDATE/INVALIDATE describe them (vhost-user spec, "IOMMU support").
//
// Invariants every design keeps:
//  - Ranges are inclusive [first, last]; first <= last always. `iova + size` may wrap in the
//    protocol, so the protocol layer converts (iova, size) to [iova, iova + size - 1] and refuses
//    size 0 and ranges that wrap past 2^64 - 1 before they reach a design.
//  - Entries never overlap: Insert() first removes (or trims) whatever the new range overlaps
//    (an UPDATE replaces what it overlaps; lazy-flush guests remap without an INVALIDATE).
//  - Invalidate() removes every entry that overlaps the range, trimming partial overlaps; the
//    full range [0, 2^64 - 1] empties the table.
//  - Translate(iova, len, perm) answers for the *first piece* of [iova, iova + len): on a hit,
//    `uaddr` is the address of `iova` and `len` the longest prefix whose every byte is covered,
//    with `perm`, by entries whose uaddrs are contiguous (an access may span entries only where
//    the front-end side is really contiguous). The caller asks again for the rest. A miss means
//    `iova` itself is not covered; an access failure means it is covered without `perm`.
//  - Entries are not assumed aligned or uniform (4 KiB, 2 MiB, 1 GiB, or anything).
//
// Designs are final classes without virtuals. Stats and introspection go through the side
// functions below (Size(), MemoryBytes()), never through the hot Translate() path.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vhostlab::iotlb {

enum class Perm : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };

// True when `granted` includes every access right in `wanted`.
constexpr bool Allows(Perm granted, Perm wanted) {
  return (static_cast<uint8_t>(granted) & static_cast<uint8_t>(wanted)) ==
         static_cast<uint8_t>(wanted);
}

struct IovaRange {
  uint64_t first;
  uint64_t last;  // inclusive
  constexpr bool Overlaps(const IovaRange& o) const { return first <= o.last && o.first <= last; }
  constexpr bool Contains(uint64_t iova) const { return first <= iova && iova <= last; }
  // Number of bytes minus one (the full range has 2^64 bytes, which does not fit a u64).
  constexpr uint64_t SizeMinusOne() const { return last - first; }
  friend constexpr bool operator==(const IovaRange&, const IovaRange&) = default;
};

inline constexpr IovaRange kFullRange{0, ~uint64_t{0}};

struct Entry {
  IovaRange range;
  uint64_t uaddr;  // front-end user address of range.first
  Perm perm;
  friend constexpr bool operator==(const Entry&, const Entry&) = default;
};

enum class Outcome : uint8_t { kHit, kMiss, kAccessFail };

struct Translation {
  Outcome outcome;
  uint64_t uaddr;  // valid on kHit: front-end address of the requested iova
  uint64_t len;    // valid on kHit: contiguous bytes granted, 1 <= len <= requested len
  bool hit() const { return outcome == Outcome::kHit; }
};

constexpr Translation Miss() { return {Outcome::kMiss, 0, 0}; }
constexpr Translation AccessFail() { return {Outcome::kAccessFail, 0, 0}; }

enum class InsertStatus : uint8_t {
  kOk,
  kInvalidRange,  // first > last, or perm none
  kEvicted,       // inserted, but a capacity-limited design evicted an older entry to do so
};

// The contract. `len` passed to Translate is >= 1 and iova + len - 1 does not wrap.
template <typename T>
concept Design = requires(T t, const T ct, IovaRange r, uint64_t u, Perm p) {
  { T::kName } -> std::convertible_to<std::string_view>;
  { t.Insert(r, u, p) } -> std::same_as<InsertStatus>;
  { t.Invalidate(r) } -> std::same_as<std::size_t>;  // entries removed or trimmed
  { ct.Translate(u, u, p) } -> std::same_as<Translation>;
  { ct.Size() } -> std::same_as<std::size_t>;           // live entries
  { ct.MemoryBytes() } -> std::same_as<std::size_t>;    // heap + inline bytes, for stats
  { t.Clear() };
};

// Joins the hit for [iova, ...) in `first` with whatever follows, for designs that find one
// entry at a time: keeps extending while the next entry starts right after the covered prefix,
// grants `perm`, and its uaddr continues the previous one. `next(iova)` returns the Translation of
// a single-entry lookup at `iova` for up to `remaining` bytes.
template <typename LookupOne>
inline Translation JoinPieces(uint64_t iova, uint64_t len, Translation first, LookupOne&& next) {
  if (!first.hit()) return first;
  uint64_t covered = first.len;
  while (covered < len) {
    const uint64_t at = iova + covered;
    const Translation t = next(at, len - covered);
    if (!t.hit() || t.uaddr != first.uaddr + covered) break;
    covered += t.len;
  }
  first.len = covered;
  return first;
}

}  // namespace vhostlab::iotlb
