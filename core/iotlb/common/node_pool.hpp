// NodePool: the node storage of the linked designs (list, interval). Nodes live in one vector
// and link to each other by int32 index rather than by pointer: half the link size, nodes packed
// for locality, and copying a design copies its structure (like DPDK's mempool of IOTLB entries).
//
// Invariants: every index handed out by Allocate() and not yet given to Free() names a live node;
// `free_` holds exactly the indices of released slots, which Allocate() reuses before growing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vhostlab::iotlb {

template <typename Node>
class NodePool {
 public:
  Node& operator[](int32_t i) { return nodes_[i]; }
  const Node& operator[](int32_t i) const { return nodes_[i]; }

  // Stores `n` in a free slot (or a new one) and returns its index.
  int32_t Allocate(const Node& n) {
    if (!free_.empty()) {
      const int32_t i = free_.back();
      free_.pop_back();
      nodes_[i] = n;
      return i;
    }
    nodes_.push_back(n);
    return static_cast<int32_t>(nodes_.size() - 1);
  }

  // Releases slot `i` for reuse; the caller has already unlinked it.
  void Free(int32_t i) { free_.push_back(i); }

  // Heap bytes held (capacity, not just live nodes): what MemoryBytes() reports beyond sizeof.
  std::size_t HeapBytes() const {
    return nodes_.capacity() * sizeof(Node) + free_.capacity() * sizeof(int32_t);
  }

  void Clear() {
    nodes_.clear();
    free_.clear();
  }

 private:
  std::vector<Node> nodes_;
  std::vector<int32_t> free_;
};

}  // namespace vhostlab::iotlb
