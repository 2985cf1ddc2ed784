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

}  // namespace vhostlab::iotlb
