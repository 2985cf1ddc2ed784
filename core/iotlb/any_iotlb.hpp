// AnyIotlb: the type-erased (virtual) face of every registered design.
//
// The datapath is templated on the design so Translate() inlines; this adapter exists for the
// places where a virtual call is fine (Python, tools) and so that bench/iotlb can measure what
// dynamic dispatch itself costs. The implementations live in any_iotlb.cpp, a separate
// translation unit, so a caller can never devirtualise or inline through it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "core/iotlb/contract.hpp"

namespace vhostlab::iotlb {

class AnyIotlb {
 public:
  virtual ~AnyIotlb() = default;
  virtual std::string_view Name() const = 0;
  virtual InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) = 0;
  virtual std::size_t Invalidate(IovaRange r) = 0;
  virtual Translation Translate(uint64_t iova, uint64_t len, Perm perm) const = 0;
  virtual std::size_t Size() const = 0;
  virtual std::size_t MemoryBytes() const = 0;
  virtual void Clear() = 0;
  // Clear() then insert `entries` in order, through the design's bulk path when it has one.
  virtual void BulkLoad(std::span<const Entry> entries) = 0;
};

// A new, empty instance of the registered design called `name`; nullptr when there is none.
std::unique_ptr<AnyIotlb> MakeIotlb(std::string_view name);

}  // namespace vhostlab::iotlb
