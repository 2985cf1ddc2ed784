// reference: the IOTLB as an ordered map keyed by the first IOVA of each entry.
//
// The oracle for the conformance and differential tests of every other design: it favours
// obviousness over speed. Non-overlap is kept by trimming on Insert/Invalidate, so the entry that
// may contain `iova` is always the one with the greatest first <= iova.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>

#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

class Reference final {
 public:
  static constexpr std::string_view kName = "reference";

  InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) {
    if (r.first > r.last || perm == Perm::kNone) return InsertStatus::kInvalidRange;
    Remove(r);
    map_.emplace(r.first, Value{r.last, uaddr, perm});
    return InsertStatus::kOk;
  }

  std::size_t Invalidate(IovaRange r) {
    if (r.first > r.last) return 0;
    return Remove(r);
  }

  Translation Translate(uint64_t iova, uint64_t len, Perm perm) const {
    return JoinPieces(iova, len, LookupOne(iova, len, perm),
                      [&](uint64_t at, uint64_t rest) { return LookupOne(at, rest, perm); });
  }

  std::size_t Size() const { return map_.size(); }
  std::size_t MemoryBytes() const {
    // libstdc++ red-black node: 4 words of header + key + value.
    return sizeof(*this) + map_.size() * (4 * sizeof(void*) + sizeof(uint64_t) + sizeof(Value));
  }
  void Clear() { map_.clear(); }

  // Visits every entry in IOVA order (tests and introspection only).
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [first, v] : map_) f(Entry{{first, v.last}, v.uaddr, v.perm});
  }

 private:
  struct Value {
    uint64_t last;
    uint64_t uaddr;
    Perm perm;
  };

  Translation LookupOne(uint64_t iova, uint64_t len, Perm perm) const {
    auto it = map_.upper_bound(iova);
    if (it == map_.begin()) return Miss();
    --it;
    const Value& v = it->second;
    if (iova > v.last) return Miss();
    if (!Allows(v.perm, perm)) return AccessFail();
    const uint64_t avail_minus_one = v.last - iova;  // may be 2^64 - 1: keep it minus one
    const uint64_t granted = (len - 1 <= avail_minus_one) ? len : avail_minus_one + 1;
    return {Outcome::kHit, v.uaddr + (iova - it->first), granted};
  }

  // Removes the part of every entry inside r; keeps the parts outside (trimming).
  std::size_t Remove(IovaRange r) {
    std::size_t touched = 0;
    auto it = map_.upper_bound(r.first);
    if (it != map_.begin()) --it;
    while (it != map_.end() && it->first <= r.last) {
      const uint64_t first = it->first;
      const Value v = it->second;
      if (v.last < r.first) {
        ++it;
        continue;
      }
      it = map_.erase(it);
      ++touched;
      if (first < r.first) map_.emplace(first, Value{r.first - 1, v.uaddr, v.perm});
      if (v.last > r.last) {
        it = map_.emplace(r.last + 1, Value{v.last, v.uaddr + (r.last + 1 - first), v.perm}).first;
        ++it;
      }
    }
    return touched;
  }

  std::map<uint64_t, Value> map_;
};

static_assert(Design<Reference>);

}  // namespace vhostlab::iotlb
