// list: the IOTLB as DPDK's vhost library keeps it (lib/vhost/iotlb.c): a singly linked list of
// entries sorted by first IOVA, walked linearly on every lookup, with a fixed capacity (2048 by
// default) and random eviction when full. This is the baseline every other design must beat.
//
// Invariants:
//  - The list is sorted by range.first and entries are pairwise disjoint, so a lookup can stop at
//    the first entry whose last >= iova: either it contains iova or nothing does.
//  - Nodes live in a NodePool (like DPDK's mempool) indexed by int32.
//  - Size() <= kCapacity after every operation. Insert() evicts random entries (a deterministic
//    xorshift sequence, so runs are repeatable) to make room and then reports kEvicted.
//  - Unlike DPDK, a translation joins the next entry only when its uaddr continues the previous
//    one (DPDK joins IOVA-adjacent entries without that check).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/common/node_pool.hpp"
#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

template <std::size_t kCap>
class BasicList final {
 public:
  static constexpr std::string_view kName = "list";
  static constexpr std::size_t kCapacity = kCap;
  static_assert(kCap >= 2, "an Insert may split one entry in two before adding its own");

  InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) {
    if (!IsValidInsert(r, perm)) return InsertStatus::kInvalidRange;
    Remove(r);
    InsertStatus status = InsertStatus::kOk;
    while (size_ >= kCap) {
      EvictRandom();
      status = InsertStatus::kEvicted;
    }
    // Walk to the predecessor (O(n), as DPDK does) and link the new node after it.
    int32_t prev = kNil;
    for (int32_t i = head_; i != kNil && nodes_[i].e.range.first < r.first; i = nodes_[i].next) prev = i;
    LinkAfter(prev, Entry{r, uaddr, perm});
    return status;
  }

  std::size_t Invalidate(IovaRange r) {
    if (r.first > r.last) return 0;
    return Remove(r);
  }

  Translation Translate(uint64_t iova, uint64_t len, Perm perm) const {
    return TranslateJoined(iova, len,
                           [&](uint64_t at, uint64_t rest) { return LookupOne(at, rest, perm); });
  }

  bool FindEntry(uint64_t iova, Entry* out) const {
    const int32_t i = Walk(iova);
    if (i == kNil) return false;
    *out = nodes_[i].e;
    return true;
  }

  std::size_t Size() const { return size_; }
  std::size_t MemoryBytes() const {
    return sizeof(*this) + nodes_.HeapBytes();
  }
  void Clear() {
    nodes_.Clear();
    head_ = kNil;
    size_ = 0;
  }

 private:
  static constexpr int32_t kNil = -1;
  struct Node {
    Entry e;
    int32_t next;
  };

  // The node containing iova, or kNil.
  int32_t Walk(uint64_t iova) const {
    for (int32_t i = head_; i != kNil; i = nodes_[i].next) {
      const Entry& e = nodes_[i].e;
      if (e.range.last >= iova) return e.range.first <= iova ? i : kNil;
    }
    return kNil;
  }

  Translation LookupOne(uint64_t iova, uint64_t len, Perm perm) const {
    const int32_t i = Walk(iova);
    return i == kNil ? Miss() : HitIn(nodes_[i].e, iova, len, perm);
  }

  // Links a new node holding `e` after `prev` (kNil: at the head). Returns its index.
  int32_t LinkAfter(int32_t prev, const Entry& e) {
    const int32_t n = nodes_.Allocate(Node{e, kNil});
    int32_t& link = prev == kNil ? head_ : nodes_[prev].next;
    nodes_[n].next = link;
    link = n;
    ++size_;
    return n;
  }

  // Unlinks the node after `prev` (kNil: the head) and returns the index that followed it.
  int32_t UnlinkAfter(int32_t prev) {
    int32_t& link = prev == kNil ? head_ : nodes_[prev].next;
    const int32_t n = link;
    link = nodes_[n].next;
    nodes_.Free(n);
    --size_;
    return link;
  }

  void EvictRandom() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    std::size_t steps = rng_ % size_;
    int32_t prev = kNil;
    int32_t i = head_;
    while (steps--) {
      prev = i;
      i = nodes_[i].next;
    }
    UnlinkAfter(prev);
  }

  // Removes the part of every entry inside r, trimming partial overlaps in place.
  std::size_t Remove(IovaRange r) {
    std::size_t touched = 0;
    int32_t prev = kNil;
    int32_t i = head_;
    while (i != kNil) {
      Entry& e = nodes_[i].e;
      if (e.range.last < r.first) {
        prev = i;
        i = nodes_[i].next;
        continue;
      }
      if (e.range.first > r.last) break;
      ++touched;
      const Entry old = e;
      if (old.range.first < r.first) {
        e.range.last = r.first - 1;  // the left remainder keeps this node and its position
        if (old.range.last > r.last) {
          LinkAfter(i, Entry{{r.last + 1, old.range.last},
                             old.uaddr + (r.last + 1 - old.range.first), old.perm});
          break;
        }
        prev = i;
        i = nodes_[i].next;
      } else if (old.range.last > r.last) {
        e.uaddr += r.last + 1 - old.range.first;
        e.range.first = r.last + 1;
        break;
      } else {
        i = UnlinkAfter(prev);
      }
    }
    return touched;
  }

  NodePool<Node> nodes_;
  int32_t head_ = kNil;
  std::size_t size_ = 0;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
};

// DPDK's IOTLB_CACHE_SIZE.
using List = BasicList<2048>;
static_assert(Design<List>);

}  // namespace vhostlab::iotlb
