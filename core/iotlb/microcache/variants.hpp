// The micro-cache configurations the lab registers and benchmarks.
//
// Both geometries hold 256 lines (8 KiB, a sixth of L1d): direct-mapped (256 sets x 1 way) is the
// cheapest hit; 4-way set-associative (64 sets x 4 ways) survives the page-number conflicts of a
// ring's buffers. bench/iotlb measures both (BM_Translate .../hotset); the registered
// "microcache-<inner>" names use the geometry that measured faster, the other keeps a "-dm" or
// "-4way" suffix and is benchmarked and conformance-tested too.
#pragma once

#include "core/iotlb/hash/hash.hpp"
#include "core/iotlb/microcache/microcache.hpp"
#include "core/iotlb/radix/radix.hpp"

namespace vhostlab::iotlb {

using MicroCacheHash = MicroCache<"microcache-hash", Hash, 64, 4>;
using MicroCacheRadix = MicroCache<"microcache-radix", Radix, 64, 4>;
using MicroCacheHashDirect = MicroCache<"microcache-hash-dm", Hash, 256, 1>;

static_assert(Design<MicroCacheHash>);
static_assert(Design<MicroCacheRadix>);
static_assert(Design<MicroCacheHashDirect>);

}  // namespace vhostlab::iotlb
