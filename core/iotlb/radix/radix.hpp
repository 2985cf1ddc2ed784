// radix: the IOTLB as a page table over the 64-bit IOVA space, with large-page leaves.
//
// Six levels of 512-slot nodes index IOVA bits [12+9l, 21+9l) for level l = 0..5 (level 5 uses
// only bits 57..63). A slot holds one of:
//  - 0: nothing mapped in the slot's block,
//  - a Node* (low bits 00): a table for the next level down,
//  - a leaf: the slot's whole block (4 KiB at level 0, 2 MiB at level 1, 1 GiB at level 2, ...
//    2^57 at level 5) lies inside one entry, like a huge-page PTE. When the uaddr of the block's
//    first byte is 8-byte aligned (always, in practice) the leaf is that uaddr with the
//    permission in the low bits (0b011 read, 0b101 write, 0b111 read-write), so a lookup ends
//    in the slot itself with no further memory access; otherwise it is an Entry* | 0b001.
//    An access that runs past the block simply continues in the next block (JoinPieces), which
//    maps the rest of the same entry with a contiguous uaddr,
//  - kPartial (level 0 only): the 4 KiB page is covered only partly, by one or more unaligned
//    entries; the lookup finishes in the ordered index.
// Each entry is mapped as the fewest aligned blocks that cover it (largest level first), plus a
// kPartial mark for its unaligned head and tail pages.
//
// Invariants:
//  - `index_` (an ordered map, first -> Entry) holds every entry, pairwise disjoint; Entry*
//    leaves point into its nodes (std::map nodes never move). Updates find overlaps through it.
//  - A level-0 slot is kPartial iff some entry covers part but not all of that page.
//  - Node::used counts the non-zero slots; a node other than the root is freed when it drops
//    to zero, so memory follows the mapped set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

class Radix final {
 public:
  static constexpr std::string_view kName = "radix";

  Radix() : root_(new Node{}), nodes_(1) {}
  ~Radix() { FreeTree(root_, kTopLevel); }
  Radix(const Radix& o) : Radix() {
    for (const auto& [first, e] : o.index_) Add(e);
  }
  Radix& operator=(const Radix& o) {
    if (this != &o) {
      Clear();
      for (const auto& [first, e] : o.index_) Add(e);
    }
    return *this;
  }

  InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) {
    if (!IsValidInsert(r, perm)) return InsertStatus::kInvalidRange;
    Remove(r);
    Add(Entry{r, uaddr, perm});
    return InsertStatus::kOk;
  }

  std::size_t Invalidate(IovaRange r) {
    return InvalidateClearingFull(*this, r, [this](IovaRange x) { return Remove(x); });
  }

  Translation Translate(uint64_t iova, uint64_t len, Perm perm) const {
    return TranslateJoined(iova, len,
                           [&](uint64_t at, uint64_t rest) { return LookupOne(at, rest, perm); });
  }

  // Side API for the micro-cache: the entry containing iova, or (for large entries) the part of
  // it in iova's radix block; either way a range that contains iova with the entry's mapping.
  bool FindEntry(uint64_t iova, Entry* out) const { return Find(iova, out); }

  std::size_t Size() const { return index_.size(); }
  std::size_t MemoryBytes() const {
    // libstdc++ red-black node: 4 words of header + key + Entry.
    return sizeof(*this) + nodes_ * sizeof(Node) +
           index_.size() * (4 * sizeof(void*) + sizeof(uint64_t) + sizeof(Entry));
  }
  void Clear() {
    FreeTree(root_, kTopLevel);
    root_ = new Node{};
    nodes_ = 1;
    index_.clear();
  }

 private:
  static constexpr int kTopLevel = 5;
  static constexpr uint64_t kPartial = 2;
  static constexpr uint64_t kLeafTag = 1;
  static constexpr uint64_t kInlinePermMask = 6;
  static constexpr uint64_t kTagMask = 7;
  static constexpr uint64_t kPageMask = 0xfff;

  struct Node {
    uint64_t slot[512];
    uint32_t used;
  };

  static constexpr int Shift(int level) { return 12 + 9 * level; }
  static constexpr std::size_t SlotIndex(uint64_t iova, int level) {
    return (iova >> Shift(level)) & 511;
  }

  // The entry containing iova, or the part of it that is iova's block (same uaddr mapping).
  bool Find(uint64_t iova, Entry* out) const {
    const Node* n = root_;
    for (int level = kTopLevel;; --level) {
      const uint64_t s = n->slot[SlotIndex(iova, level)];
      if (s & kLeafTag) {
        if (s & kInlinePermMask) {
          const uint64_t block_mask = (uint64_t{1} << Shift(level)) - 1;
          *out = Entry{{iova & ~block_mask, iova | block_mask}, s & ~kTagMask, InlinePerm(s)};
        } else {
          *out = *reinterpret_cast<const Entry*>(s & ~kTagMask);
        }
        return true;
      }
      if (s == 0) return false;
      if (s == kPartial) {
        const Entry* e = FindInIndex(iova);
        if (e) *out = *e;
        return e != nullptr;
      }
      n = reinterpret_cast<const Node*>(s);
    }
  }

  const Entry* FindInIndex(uint64_t iova) const {
    auto it = index_.upper_bound(iova);
    if (it == index_.begin()) return nullptr;
    --it;
    return iova <= it->second.range.last ? &it->second : nullptr;
  }

  Translation LookupOne(uint64_t iova, uint64_t len, Perm perm) const {
    const Node* n = root_;
    for (int level = kTopLevel;; --level) {
      const uint64_t s = n->slot[SlotIndex(iova, level)];
      if (s & kLeafTag) {
        if (!(s & kInlinePermMask)) return HitIn(*reinterpret_cast<const Entry*>(s & ~kTagMask), iova, len, perm);
        if (!Allows(InlinePerm(s), perm)) return AccessFail();
        const uint64_t block_mask = (uint64_t{1} << Shift(level)) - 1;
        const uint64_t avail_minus_one = block_mask - (iova & block_mask);
        const uint64_t granted = (len - 1 <= avail_minus_one) ? len : avail_minus_one + 1;
        return {Outcome::kHit, (s & ~kTagMask) + (iova & block_mask), granted};
      }
      if (s == 0) return Miss();
      if (s == kPartial) {
        const Entry* e = FindInIndex(iova);
        return e ? HitIn(*e, iova, len, perm) : Miss();
      }
      n = reinterpret_cast<const Node*>(s);
    }
  }

  static Perm InlinePerm(uint64_t s) { return static_cast<Perm>((s >> 1) & 3); }

  // The leaf for the block starting at `block_first` inside the stored entry `e`.
  static uint64_t Leaf(const Entry* e, uint64_t block_first) {
    const uint64_t uaddr = e->uaddr + (block_first - e->range.first);
    if ((uaddr & kTagMask) == 0) return uaddr | (static_cast<uint64_t>(e->perm) << 1) | kLeafTag;
    return reinterpret_cast<uint64_t>(e) | kLeafTag;
  }

  // Calls block(level, addr) for each aligned block fully inside r (largest first) and
  // partial(page) for each 4 KiB page r covers only in part.
  template <typename Block, typename Partial>
  static void Decompose(IovaRange r, Block&& block, Partial&& partial) {
    uint64_t cur = r.first;
    while (true) {
      if (cur & kPageMask) {
        partial(cur & ~kPageMask);
        const uint64_t page_last = cur | kPageMask;
        if (page_last >= r.last) return;
        cur = page_last + 1;
        continue;
      }
      const uint64_t rest_minus_one = r.last - cur;
      if (rest_minus_one < kPageMask) {
        partial(cur);
        return;
      }
      int level = 0;
      while (level < kTopLevel) {
        const uint64_t size_minus_one = (uint64_t{1} << Shift(level + 1)) - 1;
        if ((cur & size_minus_one) != 0 || rest_minus_one < size_minus_one) break;
        ++level;
      }
      block(level, cur);
      const uint64_t block_last = cur + ((uint64_t{1} << Shift(level)) - 1);
      if (block_last == r.last) return;
      cur = block_last + 1;
    }
  }

  // Sets the slot for `addr` at `level` to `value`, creating tables on the way down.
  void SetSlot(int level, uint64_t addr, uint64_t value) {
    Node* n = root_;
    for (int l = kTopLevel; l > level; --l) {
      uint64_t& s = n->slot[SlotIndex(addr, l)];
      if (s == 0) {
        s = reinterpret_cast<uint64_t>(new Node{});
        ++nodes_;
        ++n->used;
      }
      n = reinterpret_cast<Node*>(s);
    }
    uint64_t& s = n->slot[SlotIndex(addr, level)];
    if (s == 0) ++n->used;
    s = value;
  }

  // Clears the slot for `addr` at `level` and frees tables that become empty.
  void ClearSlot(int level, uint64_t addr) {
    Node* path[kTopLevel + 1];
    Node* n = root_;
    for (int l = kTopLevel; l > level; --l) {
      path[l] = n;
      const uint64_t s = n->slot[SlotIndex(addr, l)];
      if (s == 0 || (s & kTagMask)) return;  // not mapped at this depth
      n = reinterpret_cast<Node*>(s);
    }
    uint64_t& s = n->slot[SlotIndex(addr, level)];
    if (s == 0) return;
    s = 0;
    --n->used;
    for (int l = level; l < kTopLevel && n->used == 0; ++l) {
      Node* parent = path[l + 1];
      delete n;
      --nodes_;
      parent->slot[SlotIndex(addr, l + 1)] = 0;
      --parent->used;
      n = parent;
    }
  }

  void FreeTree(Node* n, int level) {
    if (level > 0) {
      for (uint64_t s : n->slot) {
        if (s != 0 && !(s & kTagMask)) FreeTree(reinterpret_cast<Node*>(s), level - 1);
      }
    }
    delete n;
  }

  void Add(const Entry& e) {
    const Entry* stored = &index_.emplace(e.range.first, e).first->second;
    static_assert(alignof(Entry) >= 8, "Entry* leaves need three free low bits");
    Decompose(
        e.range, [&](int level, uint64_t addr) { SetSlot(level, addr, Leaf(stored, addr)); },
        [&](uint64_t page) { SetSlot(0, page, kPartial); });
  }

  std::size_t Remove(IovaRange r) {
    std::vector<Entry> hit;
    auto it = index_.upper_bound(r.first);
    if (it != index_.begin() && std::prev(it)->second.range.last >= r.first) --it;
    for (; it != index_.end() && it->first <= r.last; ++it) hit.push_back(it->second);
    for (const Entry& e : hit) {
      index_.erase(e.range.first);
      std::vector<uint64_t> partial_pages;
      Decompose(
          e.range, [&](int level, uint64_t addr) { ClearSlot(level, addr); },
          [&](uint64_t page) { partial_pages.push_back(page); });
      // A partial page stays marked while another entry still covers part of it.
      for (uint64_t page : partial_pages) {
        if (!OverlapsIndex(IovaRange{page, page | kPageMask})) ClearSlot(0, page);
      }
    }
    for (const Entry& e : hit) ForEachRemainder(e, r, [&](const Entry& piece) { Add(piece); });
    return hit.size();
  }

  bool OverlapsIndex(IovaRange r) const {
    auto it = index_.upper_bound(r.last);
    if (it == index_.begin()) return false;
    --it;
    return it->second.range.last >= r.first;
  }

  Node* root_;
  std::size_t nodes_;
  std::map<uint64_t, Entry> index_;
};

static_assert(Design<Radix>);

}  // namespace vhostlab::iotlb
