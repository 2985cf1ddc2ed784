// IOTLB benchmark workloads: which entries a table holds and which IOVAs the datapath looks up.
//
// Entries model what a vIOMMU pushes: `n` single pages (4 KiB, 2 MiB, or a mix of 4 KiB / 2 MiB
// / 1 GiB) placed at random distinct slots of a window four times larger than needed (IOVA
// allocators leave holes), each mapped to a random page-aligned uaddr. Lookups are 64-byte
// accesses (a packet header) at a random offset inside an entry, the entry chosen by pattern:
//  - seq:     entries in IOVA order, one after another (a streaming scan),
//  - uniform: any entry, uniformly at random,
//  - zipf:    Zipf(0.99) popularity over the entries (a few hot buffers, a long tail),
//  - hotset:  32 entries cycled in order (the locality of a ring of in-flight buffers).
// Everything is generated from a fixed seed, so every design sees identical work.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/iotlb/contract.hpp"

namespace vhostlab::bench {

using iotlb::Entry;
using iotlb::Perm;

enum class PageKind { k4K, k2M, kMixed };
enum class Pattern { kSeq, kUniform, kZipf, kHotset };

inline const char* PageName(PageKind p) {
  switch (p) {
    case PageKind::k4K: return "4k";
    case PageKind::k2M: return "2m";
    case PageKind::kMixed: return "mixed";
  }
  return "?";
}

inline const char* PatternName(Pattern p) {
  switch (p) {
    case Pattern::kSeq: return "seq";
    case Pattern::kUniform: return "uniform";
    case Pattern::kZipf: return "zipf";
    case Pattern::kHotset: return "hotset";
  }
  return "?";
}

struct Workload {
  std::vector<Entry> entries;  // sorted by first IOVA, pairwise disjoint
  std::vector<uint64_t> iovas;  // lookup sequence; size is a power of two
  static constexpr uint64_t kLen = 64;
};

inline constexpr uint64_t k4K = uint64_t{1} << 12;
inline constexpr uint64_t k2M = uint64_t{1} << 21;
inline constexpr uint64_t k1G = uint64_t{1} << 30;

// `count` distinct random pages of `size` in a window of 4 * count pages starting at `base`.
inline void PlacePages(std::size_t count, uint64_t size, uint64_t base, std::mt19937_64& rng,
                       std::vector<Entry>* out) {
  if (count == 0) return;
  std::vector<uint32_t> slots(4 * count);
  std::iota(slots.begin(), slots.end(), 0u);
  std::shuffle(slots.begin(), slots.end(), rng);
  for (std::size_t i = 0; i < count; ++i) {
    const uint64_t first = base + slots[i] * size;
    const uint64_t uaddr = (0x7f0000000000ull + (rng() & 0xffffffffffull)) & ~(size - 1);
    out->push_back(Entry{{first, first + size - 1}, uaddr, Perm::kReadWrite});
  }
}

inline Workload MakeWorkload(std::size_t n, PageKind page, Pattern pattern, uint64_t seed = 1) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + n);
  Workload w;
  w.entries.reserve(n);
  switch (page) {
    case PageKind::k4K: PlacePages(n, k4K, 0x100000000ull, rng, &w.entries); break;
    case PageKind::k2M: PlacePages(n, k2M, 0x10000000000ull, rng, &w.entries); break;
    case PageKind::kMixed: {
      // 1/64 of the entries are 1 GiB pages, 1/8 are 2 MiB, the rest 4 KiB (at least one each).
      const std::size_t g = std::max<std::size_t>(1, n / 64);
      const std::size_t m = std::max<std::size_t>(1, n / 8);
      PlacePages(n - g - m, k4K, 0x100000000ull, rng, &w.entries);
      PlacePages(m, k2M, 0x10000000000ull, rng, &w.entries);
      PlacePages(g, k1G, 0x100000000000ull, rng, &w.entries);
      break;
    }
  }
  std::sort(w.entries.begin(), w.entries.end(),
            [](const Entry& a, const Entry& b) { return a.range.first < b.range.first; });

  std::size_t k = 1;
  while (k < std::max<std::size_t>(n, 65536)) k <<= 1;
  w.iovas.resize(k);
  std::vector<uint32_t> order(n);  // popularity rank -> entry (for zipf), hot entries
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<double> cdf;
  if (pattern == Pattern::kZipf) {
    cdf.resize(n);
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) cdf[i] = (sum += 1.0 / std::pow(double(i + 1), 0.99));
    for (double& c : cdf) c /= sum;
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::size_t hot = std::min<std::size_t>(n, 32);
  for (std::size_t j = 0; j < k; ++j) {
    std::size_t idx = 0;
    switch (pattern) {
      case Pattern::kSeq: idx = j % n; break;
      case Pattern::kUniform: idx = rng() % n; break;
      case Pattern::kZipf:
        idx = order[std::min<std::size_t>(
            n - 1, std::lower_bound(cdf.begin(), cdf.end(), unit(rng)) - cdf.begin())];
        break;
      case Pattern::kHotset: idx = order[j % hot]; break;
    }
    const Entry& e = w.entries[idx];
    const uint64_t span = e.range.last - e.range.first + 1 - Workload::kLen;
    w.iovas[j] = e.range.first + (rng() % (span + 1));
  }
  return w;
}

}  // namespace vhostlab::bench
