// The registry of IOTLB designs: runtime choice by name, once, when a queue is set up.
//
// Adding a design costs its folder plus one line in `AllDesigns` below. Everything that picks a
// design at runtime (backend queue workers, benchmarks, the Python module) goes through
// VisitDesign(), which instantiates the caller's template for the chosen design, so the datapath
// stays templated and inlined.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/iotlb/contract.hpp"
#include "core/iotlb/hash/hash.hpp"
#include "core/iotlb/interval/interval.hpp"
#include "core/iotlb/list/list.hpp"
#include "core/iotlb/microcache/variants.hpp"
#include "core/iotlb/radix/radix.hpp"
#include "core/iotlb/reference/reference.hpp"
#include "core/iotlb/sorted/sorted.hpp"

namespace vhostlab::iotlb {

template <Design... Ds>
struct DesignList {};

using AllDesigns = DesignList<Reference,
                              List,
                              Interval,
                              Sorted,
                              Hash,
                              HashAbsl,
                              Radix,
                              MicroCacheHash,
                              MicroCacheRadix>;

namespace internal {
template <typename F, Design... Ds>
bool Visit(DesignList<Ds...>, std::string_view name, F&& f) {
  return ((Ds::kName == name ? (f.template operator()<Ds>(), true) : false) || ...);
}
template <Design... Ds>
std::vector<std::string> Names(DesignList<Ds...>) {
  return {std::string(Ds::kName)...};
}
}  // namespace internal

// Calls `f.template operator()<D>()` for the design named `name`; false when no design has it.
template <typename F>
bool VisitDesign(std::string_view name, F&& f) {
  return internal::Visit(AllDesigns{}, name, f);
}

// Calls `f.template operator()<D>()` for every design, in registration order.
template <typename F>
void ForEachDesign(F&& f) {
  [&]<Design... Ds>(DesignList<Ds...>) { (f.template operator()<Ds>(), ...); }(AllDesigns{});
}

inline std::vector<std::string> DesignNames() { return internal::Names(AllDesigns{}); }

// The design `vhostlab backend` and `vhostlab run` use unless told otherwise: the one that
// measured fastest across the workloads (translate-only tables from 16 to 256 Ki entries, the
// end-to-end profiles, and the replayed traces of real QEMU guests; README and
// results/traces/). `reference` stays the oracle of the tests.
inline constexpr std::string_view kDefaultDesign = "hash";

// What each design is for, in one line (for `vhostlab designs`).
inline std::string_view DesignSummary(std::string_view name) {
  struct Row {
    std::string_view name, summary;
  };
  static constexpr Row kRows[] = {
      {"reference", "ordered map (std::map); the oracle every other design is checked against"},
      {"list", "DPDK's sorted list walked linearly, 2048 entries max: the baseline to beat"},
      {"interval", "Linux vhost's interval tree (augmented red-black tree)"},
      {"sorted", "sorted array, branch-free binary search; cheap to read, costly to update"},
      {"hash", "page-number hash, one probe per page size: fastest overall (the default)"},
      {"hash-absl", "the same page hash on absl::flat_hash_map (SwissTable)"},
      {"radix", "page-table-like radix tree: flat lookup cost at any table size"},
      {"microcache-hash", "per-queue 4-way micro-cache in front of hash: for hot buffer sets"},
      {"microcache-radix", "per-queue 4-way micro-cache in front of radix: for hot buffer sets"},
  };
  for (const Row& r : kRows)
    if (r.name == name) return r.summary;
  return "";
}

}  // namespace vhostlab::iotlb
