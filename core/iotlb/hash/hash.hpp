// hash: the IOTLB keyed by page number, one probe per page size in use.
//
// An entry that is exactly one naturally aligned page of 4 KiB, 2 MiB or 1 GiB (what a vIOMMU
// sends almost always) lives in a hash table keyed by its first IOVA. A lookup probes the table
// once per page size that currently has entries, with key `iova & ~(size - 1)`, smallest size
// first. Everything else (unaligned entries, odd sizes, the pieces left after trimming a page)
// lives in a sorted-array fallback that is searched only when it is non-empty.
//
// Invariants:
//  - Table and fallback together hold pairwise disjoint entries; every table entry is an aligned
//    page, so its first IOVA is a unique key (two entries with the same first would overlap).
//  - page_count_[s] is the number of table entries of page size kPageSizes[s]; a size with no
//    entries costs no probe.
//  - Any probe result is re-checked (first <= iova <= last), so a 4 KiB entry found while
//    probing with a 2 MiB key is never mistaken for a 2 MiB page.
//
// The table is a template parameter: OpenAddressingTable (linear probing, backward-shift
// deletion, load <= 1/2, 32-byte slots) or AbslTable (absl::flat_hash_map, the well-known point
// of comparison).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/base/seeded_regression.hpp"
#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/contract.hpp"
#include "core/iotlb/sorted/sorted.hpp"

namespace vhostlab::iotlb {

// Linear probing over a power-of-two array of Entry slots; an empty slot has range.first == ~0
// (never the first IOVA of an aligned page). Backward-shift deletion keeps every key reachable
// from its home slot without tombstones.
class OpenAddressingTable {
 public:
  static constexpr std::string_view kName = "hash";

  const Entry* Find(uint64_t key) const {
    const Entry* slots = slots_.data();
    for (std::size_t i = Home(key);; i = (i + 1) & mask_) {
      const uint64_t k = slots[i].range.first;
      if (k == key) return &slots[i];
      if (k == kEmpty) return nullptr;
    }
  }

  void Insert(const Entry& e) {
    if ((size_ + 1) * 2 > slots_.size()) Grow();
    std::size_t i = Home(e.range.first);
    while (slots_[i].range.first != kEmpty) i = (i + 1) & mask_;
    slots_[i] = e;
    ++size_;
  }

  void Erase(uint64_t key) {
    std::size_t i = Home(key);
    while (slots_[i].range.first != key) i = (i + 1) & mask_;
    for (std::size_t j = (i + 1) & mask_; slots_[j].range.first != kEmpty; j = (j + 1) & mask_) {
      const std::size_t home = Home(slots_[j].range.first);
      // Move slot j back into the hole at i unless its home lies cyclically in (i, j].
      const bool home_in_between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
      if (!home_in_between) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].range.first = kEmpty;
    --size_;
  }

  template <typename F>
  void ForEach(F&& f) const {
    for (const Entry& e : slots_) {
      if (e.range.first != kEmpty) f(e);
    }
  }

  std::size_t Size() const { return size_; }
  std::size_t MemoryBytes() const { return slots_.capacity() * sizeof(Entry); }
  void Clear() {
    slots_ = std::vector<Entry>(kMinSlots, EmptySlot());  // gives the memory back, unlike assign()
    mask_ = kMinSlots - 1;
    shift_ = 64 - std::countr_zero(kMinSlots);
    size_ = 0;
  }

  OpenAddressingTable() { Clear(); }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static constexpr std::size_t kMinSlots = 16;
  static constexpr Entry EmptySlot() { return Entry{{kEmpty, 0}, 0, Perm::kNone}; }

  // Fibonacci hashing of the 4 KiB page number: the top bits of the product are well mixed even
  // when keys are 2 MiB or 1 GiB aligned.
  std::size_t Home(uint64_t key) const {
    return static_cast<std::size_t>(((key >> 12) * 0x9e3779b97f4a7c15ull) >> shift_);
  }

  void Grow() {
    std::vector<Entry> old = std::move(slots_);
    const std::size_t n = old.size() * 2;
    slots_.assign(n, EmptySlot());
    mask_ = n - 1;
    shift_ = 64 - std::countr_zero(n);
    size_ = 0;
    for (const Entry& e : old) {
      if (e.range.first != kEmpty) Insert(e);
    }
  }

  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
  int shift_ = 64;
  std::size_t size_ = 0;
};

// The same interface over absl::flat_hash_map (SwissTable: SIMD group probing, 7-bit tags).
class AbslTable {
 public:
  static constexpr std::string_view kName = "hash-absl";

  const Entry* Find(uint64_t key) const {
    const auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  void Insert(const Entry& e) { map_.emplace(e.range.first, e); }
  void Erase(uint64_t key) { map_.erase(key); }
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [key, e] : map_) f(e);
  }
  std::size_t Size() const { return map_.size(); }
  std::size_t MemoryBytes() const {
    // One control byte plus one slot per bucket.
    return map_.bucket_count() * (1 + sizeof(std::pair<const uint64_t, Entry>));
  }
  void Clear() { map_.clear(); }

 private:
  absl::flat_hash_map<uint64_t, Entry> map_;
};

template <typename Table>
class BasicHash final {
 public:
  static constexpr std::string_view kName = Table::kName;
  static constexpr uint64_t kPageSizes[3] = {uint64_t{1} << 12, uint64_t{1} << 21, uint64_t{1} << 30};

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
    VHOSTLAB_SEEDED_WORK(VHOSTLAB_SEEDED_LOOKUP_WORK);
    return TranslateJoined(iova, len,
                           [&](uint64_t at, uint64_t rest) { return LookupOne(at, rest, perm); });
  }

  bool FindEntry(uint64_t iova, Entry* out) const {
    const Entry* e = FindInTable(iova);
    if (e) {
      *out = *e;
      return true;
    }
    return fallback_.Size() != 0 && fallback_.FindEntry(iova, out);
  }

  std::size_t Size() const { return table_.Size() + fallback_.Size(); }
  std::size_t MemoryBytes() const {
    return sizeof(*this) + table_.MemoryBytes() + fallback_.MemoryBytes() - sizeof(fallback_);
  }
  void Clear() {
    table_.Clear();
    fallback_.Clear();
    for (auto& c : page_count_) c = 0;
  }

 private:
  // Index into kPageSizes when e is exactly one aligned page, else -1.
  static int PageClass(const Entry& e) {
    for (int s = 0; s < 3; ++s) {
      const uint64_t size = kPageSizes[s];
      if ((e.range.first & (size - 1)) == 0 && e.range.SizeMinusOne() == size - 1) return s;
    }
    return -1;
  }

  const Entry* FindInTable(uint64_t iova) const {
    for (int s = 0; s < 3; ++s) {
      if (page_count_[s] == 0) continue;
      const Entry* e = table_.Find(iova & ~(kPageSizes[s] - 1));
      if (e && iova <= e->range.last) return e;
    }
    return nullptr;
  }

  Translation LookupOne(uint64_t iova, uint64_t len, Perm perm) const {
    if (const Entry* e = FindInTable(iova)) return HitIn(*e, iova, len, perm);
    if (fallback_.Size() == 0) return Miss();
    return fallback_.LookupOne(iova, len, perm);
  }

  void Add(const Entry& e) {
    const int s = PageClass(e);
    if (s < 0) {
      fallback_.Insert(e.range, e.uaddr, e.perm);
      return;
    }
    table_.Insert(e);
    ++page_count_[s];
  }

  std::size_t Remove(IovaRange r) {
    std::vector<Entry> hit;
    // Probe page by page while that is cheaper than scanning the whole table.
    uint64_t probes = 0;
    for (int s = 0; s < 3; ++s) {
      if (page_count_[s] == 0) continue;
      const int shift = std::countr_zero(kPageSizes[s]);
      probes += (r.last >> shift) - (r.first >> shift) + 1;
    }
    if (probes <= table_.Size()) {
      for (int s = 0; s < 3; ++s) {
        if (page_count_[s] == 0) continue;
        const uint64_t size = kPageSizes[s];
        for (uint64_t key = r.first & ~(size - 1);; key += size) {
          const Entry* e = table_.Find(key);
          if (e && PageClass(*e) == s && e->range.Overlaps(r)) hit.push_back(*e);
          if (key >= (r.last & ~(size - 1))) break;
        }
      }
    } else {
      table_.ForEach([&](const Entry& e) {
        if (e.range.Overlaps(r)) hit.push_back(e);
      });
    }
    for (const Entry& e : hit) {
      table_.Erase(e.range.first);
      --page_count_[PageClass(e)];
    }
    for (const Entry& e : hit) ForEachRemainder(e, r, [&](const Entry& piece) { Add(piece); });
    return hit.size() + (fallback_.Size() ? fallback_.Invalidate(r) : 0);
  }

  Table table_;
  SortedBranchFree fallback_;
  std::size_t page_count_[3] = {0, 0, 0};
};

using Hash = BasicHash<OpenAddressingTable>;
using HashAbsl = BasicHash<AbslTable>;
static_assert(Design<Hash>);
static_assert(Design<HashAbsl>);

}  // namespace vhostlab::iotlb
