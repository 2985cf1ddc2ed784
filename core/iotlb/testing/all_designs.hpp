// Every design the tests cover: the registered ones plus the variants that are only benchmarked
// (the slower sorted layout, the other micro-cache geometry), as a GoogleTest type list.
#pragma once

#include <gtest/gtest.h>

#include "core/iotlb/registry.hpp"

namespace vhostlab::iotlb::testing {

template <typename List, typename... Extra>
struct WithExtras;
template <Design... Ds, typename... Extra>
struct WithExtras<DesignList<Ds...>, Extra...> {
  using Types = ::testing::Types<Ds..., Extra...>;
};

using AllTestedDesigns =
    WithExtras<AllDesigns, SortedOther, MicroCacheHashDirect>::Types;

// Prints the design's registry name as the typed-test suffix.
struct DesignNameGenerator {
  template <typename D>
  static std::string GetName(int) {
    std::string name(D::kName);
    for (char& c : name) {
      if (c == '-') c = '_';
    }
    return name;
  }
};

}  // namespace vhostlab::iotlb::testing
