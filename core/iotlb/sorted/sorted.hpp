// sorted: the IOTLB as a sorted array of entries with a fast predecessor search.
//
// Two search layouts over the same storage, chosen by template parameter and measured against each
// other in bench/iotlb (BM_Translate/sorted vs sorted-eytzinger):
//  - kBranchFree: binary search over the array of range.first values whose loop body is a
//    conditional move (no unpredictable branch), prefetching both possible next probes.
//  - kEytzinger: the same keys copied in BFS (Eytzinger) order, so the first levels of the search
//    share cache lines and the next 4 levels can be prefetched with one line; rebuilt in O(n)
//    after every update.
//
// Invariants:
//  - firsts_[i] == entries_[i].range.first; both sorted ascending; entries pairwise disjoint, so
//    the entry that may contain iova is the one with the greatest first <= iova.
//  - kEytzinger only: eyt_[1..n] is firsts_ in BFS order and eyt_rank_[k] is the sorted index of
//    eyt_[k]; eyt_[0] is unused. Both are rebuilt at the end of every mutation.
//  - Updates patch the array in place (memmove, O(n)); BulkLoad() builds it in O(n log n).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

enum class SortedSearch { kBranchFree, kEytzinger };

// The layout registered as "sorted": the one that measured faster in BM_Translate (see the
// README table); the other stays available as "sorted-branchfree" / "sorted-eytzinger".
inline constexpr SortedSearch kRegisteredSortedSearch = SortedSearch::kBranchFree;

template <SortedSearch kSearch>
class BasicSorted final {
 public:
  static constexpr std::string_view kName =
      kSearch == kRegisteredSortedSearch
          ? "sorted"
          : (kSearch == SortedSearch::kBranchFree ? "sorted-branchfree" : "sorted-eytzinger");

  InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) {
    if (!IsValidInsert(r, perm)) return InsertStatus::kInvalidRange;
    RemoveNoRebuild(r);
    const std::size_t at = UpperBound(r.first);
    firsts_.insert(firsts_.begin() + at, r.first);
    entries_.insert(entries_.begin() + at, Entry{r, uaddr, perm});
    Rebuild();
    return InsertStatus::kOk;
  }

  std::size_t Invalidate(IovaRange r) {
    if (r.first > r.last) return 0;
    const std::size_t n = RemoveNoRebuild(r);
    if (n) Rebuild();
    return n;
  }

  Translation Translate(uint64_t iova, uint64_t len, Perm perm) const {
    return TranslateJoined(iova, len,
                           [&](uint64_t at, uint64_t rest) { return LookupOne(at, rest, perm); });
  }

  bool FindEntry(uint64_t iova, Entry* out) const {
    const std::size_t i = Predecessor(iova);
    if (i == kNone || entries_[i].range.last < iova) return false;
    *out = entries_[i];
    return true;
  }

  // Replaces the contents with `entries` (later ones win where they overlap).
  void BulkLoad(std::span<const Entry> entries) {
    Clear();
    if (SortedAndDisjoint(entries)) {
      entries_.assign(entries.begin(), entries.end());
      firsts_.reserve(entries.size());
      for (const Entry& e : entries) firsts_.push_back(e.range.first);
      Rebuild();
      return;
    }
    for (const Entry& e : entries) {
      if (!IsValidInsert(e.range, e.perm)) continue;
      RemoveNoRebuild(e.range);
      const std::size_t at = UpperBound(e.range.first);
      firsts_.insert(firsts_.begin() + at, e.range.first);
      entries_.insert(entries_.begin() + at, e);
    }
    Rebuild();
  }

  std::size_t Size() const { return entries_.size(); }
  std::size_t MemoryBytes() const {
    return sizeof(*this) + firsts_.capacity() * sizeof(uint64_t) +
           entries_.capacity() * sizeof(Entry) + eyt_.capacity() * sizeof(uint64_t) +
           eyt_rank_.capacity() * sizeof(uint32_t);
  }
  void Clear() {
    firsts_.clear();
    entries_.clear();
    eyt_.clear();
    eyt_rank_.clear();
  }

  // The lookup of one entry, for designs that use a sorted array as their fallback store.
  Translation LookupOne(uint64_t iova, uint64_t len, Perm perm) const {
    const std::size_t i = Predecessor(iova);
    if (i == kNone || entries_[i].range.last < iova) return Miss();
    return HitIn(entries_[i], iova, len, perm);
  }

  // Visits every entry in IOVA order.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Entry& e : entries_) f(e);
  }

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};

  // Index of the first entry with first > key.
  std::size_t UpperBound(uint64_t key) const {
    return static_cast<std::size_t>(std::upper_bound(firsts_.begin(), firsts_.end(), key) -
                                    firsts_.begin());
  }

  // Index of the entry with the greatest first <= iova, or kNone.
  std::size_t Predecessor(uint64_t iova) const {
    const std::size_t n = firsts_.size();
    if (n == 0) return kNone;
    if constexpr (kSearch == SortedSearch::kBranchFree) {
      const uint64_t* base = firsts_.data();
      if (iova < base[0]) return kNone;
      std::size_t len = n;
      while (len > 1) {
        const std::size_t half = len / 2;
        __builtin_prefetch(base + half / 2);
        __builtin_prefetch(base + half + half / 2);
        base = (base[half] <= iova) ? base + half : base;  // compiles to cmov
        len -= half;
      }
      return static_cast<std::size_t>(base - firsts_.data());
    } else {
      const uint64_t* eyt = eyt_.data();
      std::size_t k = 1;
      while (k <= n) {
        __builtin_prefetch(eyt + k * 16);  // 16 keys = 2 lines: the subtree 4 levels down
        k = 2 * k + (eyt[k] <= iova);
      }
      // Undo the trailing right turns: k becomes the first key > iova (0: none).
      k >>= __builtin_ffsll(static_cast<long long>(~k));
      const std::size_t upper = k == 0 ? n : eyt_rank_[k];
      return upper == 0 ? kNone : upper - 1;
    }
  }

  // Removes the part of every entry inside r from the arrays; the caller rebuilds the index.
  std::size_t RemoveNoRebuild(IovaRange r) {
    std::size_t lo = UpperBound(r.first);
    if (lo > 0 && entries_[lo - 1].range.last >= r.first) --lo;
    std::size_t hi = lo;
    while (hi < entries_.size() && entries_[hi].range.first <= r.last) ++hi;
    if (hi == lo) return 0;
    Entry pieces[2];
    std::size_t n_pieces = 0;
    ForEachRemainder(entries_[lo], r, [&](const Entry& p) {
      if (p.range.first < r.first) pieces[n_pieces++] = p;
    });
    ForEachRemainder(entries_[hi - 1], r, [&](const Entry& p) {
      if (p.range.first > r.last) pieces[n_pieces++] = p;
    });
    entries_.erase(entries_.begin() + lo, entries_.begin() + hi);
    firsts_.erase(firsts_.begin() + lo, firsts_.begin() + hi);
    entries_.insert(entries_.begin() + lo, pieces, pieces + n_pieces);
    for (std::size_t i = 0; i < n_pieces; ++i) {
      firsts_.insert(firsts_.begin() + lo + i, pieces[i].range.first);
    }
    return hi - lo;
  }

  void Rebuild() {
    if constexpr (kSearch == SortedSearch::kEytzinger) {
      const std::size_t n = firsts_.size();
      eyt_.assign(n + 1, 0);
      eyt_rank_.assign(n + 1, 0);
      std::size_t next = 0;
      // In-order walk of the implicit tree (k -> 2k, 2k+1) assigns sorted keys in order.
      std::size_t k = 1;
      std::vector<std::size_t> stack;
      while (k <= n || !stack.empty()) {
        while (k <= n) {
          stack.push_back(k);
          k = 2 * k;
        }
        k = stack.back();
        stack.pop_back();
        eyt_[k] = firsts_[next];
        eyt_rank_[k] = static_cast<uint32_t>(next);
        ++next;
        k = 2 * k + 1;
      }
    }
  }

  std::vector<uint64_t> firsts_;
  std::vector<Entry> entries_;
  std::vector<uint64_t> eyt_;
  std::vector<uint32_t> eyt_rank_;
};

using SortedBranchFree = BasicSorted<SortedSearch::kBranchFree>;
using SortedEytzinger = BasicSorted<SortedSearch::kEytzinger>;
using Sorted = BasicSorted<kRegisteredSortedSearch>;
using SortedOther = BasicSorted<kRegisteredSortedSearch == SortedSearch::kBranchFree
                                    ? SortedSearch::kEytzinger
                                    : SortedSearch::kBranchFree>;
static_assert(Design<SortedBranchFree>);
static_assert(Design<SortedEytzinger>);

}  // namespace vhostlab::iotlb
