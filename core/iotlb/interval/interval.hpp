// interval: the IOTLB as Linux's vhost keeps it (drivers/vhost/iotlb.c): an interval tree, i.e.
// a balanced search tree keyed by range.first where every node also stores the largest
// range.last in its subtree ("subtree_last", the augmentation of include/linux/interval_tree.h).
//
// Linux augments a red-black tree; this is an AVL tree (same O(log n) bounds, simpler to keep
// augmented during rotations). Nodes live in a NodePool indexed by int32 for locality.
//
// Invariants:
//  - BST order on range.first; |height(left) - height(right)| <= 1 at every node.
//  - subtree_last(n) = max(n.last, subtree_last(left), subtree_last(right)).
//  - Entries are pairwise disjoint, so a stabbing query finds at most one entry; the search is
//    interval_tree_subtree_search(): go left while the left subtree reaches iova.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/common/node_pool.hpp"
#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

class Interval final {
 public:
  static constexpr std::string_view kName = "interval";

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

  bool FindEntry(uint64_t iova, Entry* out) const {
    const int32_t n = Stab(iova);
    if (n == kNil) return false;
    *out = nodes_[n].e;
    return true;
  }

  std::size_t Size() const { return size_; }
  std::size_t MemoryBytes() const {
    return sizeof(*this) + nodes_.HeapBytes();
  }
  void Clear() {
    nodes_.Clear();
    root_ = kNil;
    size_ = 0;
  }

 private:
  static constexpr int32_t kNil = -1;
  struct Node {
    Entry e;
    uint64_t subtree_last;
    int32_t left;
    int32_t right;
    int32_t height;
  };

  // interval_tree_subtree_search() specialised to a point query.
  int32_t Stab(uint64_t iova) const {
    int32_t n = root_;
    if (n == kNil || nodes_[n].subtree_last < iova) return kNil;
    while (true) {
      const Node& node = nodes_[n];
      if (node.left != kNil && iova <= nodes_[node.left].subtree_last) {
        n = node.left;
        continue;
      }
      if (node.e.range.first > iova) return kNil;
      if (iova <= node.e.range.last) return n;
      if (node.right == kNil || nodes_[node.right].subtree_last < iova) return kNil;
      n = node.right;
    }
  }

  Translation LookupOne(uint64_t iova, uint64_t len, Perm perm) const {
    const int32_t n = Stab(iova);
    return n == kNil ? Miss() : HitIn(nodes_[n].e, iova, len, perm);
  }

  int32_t Height(int32_t n) const { return n == kNil ? 0 : nodes_[n].height; }

  void Update(int32_t n) {
    Node& node = nodes_[n];
    node.height = 1 + std::max(Height(node.left), Height(node.right));
    uint64_t last = node.e.range.last;
    if (node.left != kNil) last = std::max(last, nodes_[node.left].subtree_last);
    if (node.right != kNil) last = std::max(last, nodes_[node.right].subtree_last);
    node.subtree_last = last;
  }

  int32_t RotateRight(int32_t n) {
    const int32_t l = nodes_[n].left;
    nodes_[n].left = nodes_[l].right;
    nodes_[l].right = n;
    Update(n);
    Update(l);
    return l;
  }

  int32_t RotateLeft(int32_t n) {
    const int32_t r = nodes_[n].right;
    nodes_[n].right = nodes_[r].left;
    nodes_[r].left = n;
    Update(n);
    Update(r);
    return r;
  }

  int32_t Balance(int32_t n) {
    Update(n);
    const int32_t bf = Height(nodes_[n].left) - Height(nodes_[n].right);
    if (bf > 1) {
      const int32_t l = nodes_[n].left;
      if (Height(nodes_[l].left) < Height(nodes_[l].right)) nodes_[n].left = RotateLeft(l);
      return RotateRight(n);
    }
    if (bf < -1) {
      const int32_t r = nodes_[n].right;
      if (Height(nodes_[r].right) < Height(nodes_[r].left)) nodes_[n].right = RotateRight(r);
      return RotateLeft(n);
    }
    return n;
  }

  int32_t InsertAt(int32_t n, int32_t x) {
    if (n == kNil) return x;
    if (nodes_[x].e.range.first < nodes_[n].e.range.first) {
      const int32_t l = InsertAt(nodes_[n].left, x);
      nodes_[n].left = l;
    } else {
      const int32_t r = InsertAt(nodes_[n].right, x);
      nodes_[n].right = r;
    }
    return Balance(n);
  }

  // Detaches the minimum of subtree n into *min; returns the new subtree root.
  int32_t DetachMin(int32_t n, int32_t* min) {
    if (nodes_[n].left == kNil) {
      *min = n;
      return nodes_[n].right;
    }
    const int32_t l = DetachMin(nodes_[n].left, min);
    nodes_[n].left = l;
    return Balance(n);
  }

  int32_t EraseAt(int32_t n, uint64_t first) {
    if (n == kNil) return kNil;
    if (first < nodes_[n].e.range.first) {
      const int32_t l = EraseAt(nodes_[n].left, first);
      nodes_[n].left = l;
    } else if (first > nodes_[n].e.range.first) {
      const int32_t r = EraseAt(nodes_[n].right, first);
      nodes_[n].right = r;
    } else {
      const int32_t l = nodes_[n].left;
      const int32_t r = nodes_[n].right;
      nodes_.Free(n);
      --size_;
      if (l == kNil) return r;
      if (r == kNil) return l;
      int32_t m = kNil;
      const int32_t rest = DetachMin(r, &m);
      nodes_[m].left = l;
      nodes_[m].right = rest;
      return Balance(m);
    }
    return Balance(n);
  }

  void Add(const Entry& e) {
    const int32_t x = nodes_.Allocate(Node{e, e.range.last, kNil, kNil, 1});
    ++size_;
    root_ = InsertAt(root_, x);
  }

  // Appends every entry overlapping r, in IOVA order (pruned by subtree_last and by first).
  void Collect(int32_t n, IovaRange r, std::vector<Entry>* out) const {
    if (n == kNil || nodes_[n].subtree_last < r.first) return;
    const Node& node = nodes_[n];
    Collect(node.left, r, out);
    if (node.e.range.first > r.last) return;
    if (node.e.range.last >= r.first) out->push_back(node.e);
    Collect(node.right, r, out);
  }

  std::size_t Remove(IovaRange r) {
    std::vector<Entry> hit;
    Collect(root_, r, &hit);
    for (const Entry& e : hit) root_ = EraseAt(root_, e.range.first);
    for (const Entry& e : hit) ForEachRemainder(e, r, [&](const Entry& piece) { Add(piece); });
    return hit.size();
  }

  NodePool<Node> nodes_;
  int32_t root_ = kNil;
  std::size_t size_ = 0;
};

static_assert(Design<Interval>);

}  // namespace vhostlab::iotlb
