// A type-erased IOTLB table for the Python module: one virtual call per operation, chosen by
// design name once at construction through iotlb::VisitDesign (the registry), so every design
// registered in core/iotlb/registry.hpp is reachable from Python without code here.
//
// This stays off the datapath: Python calls cost ~100 ns anyway. The batch call
// (TranslateBatch) runs its loop inside the concrete design (one virtual call per batch), so
// counters measured around it see the design, not the dispatch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/iotlb/contract.hpp"
#include "core/iotlb/registry.hpp"

namespace vhostlab::pybind {

struct BatchResult {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t access_fails = 0;
  uint64_t bytes = 0;  // sum of granted lengths (keeps the loop from being optimised away)
};

class AnyTable {
 public:
  virtual ~AnyTable() = default;
  virtual std::string_view Name() const = 0;
  virtual iotlb::InsertStatus Insert(iotlb::IovaRange r, uint64_t uaddr, iotlb::Perm p) = 0;
  virtual std::size_t Invalidate(iotlb::IovaRange r) = 0;
  virtual iotlb::Translation Translate(uint64_t iova, uint64_t len, iotlb::Perm p) const = 0;
  virtual std::size_t Size() const = 0;
  virtual std::size_t MemoryBytes() const = 0;
  virtual void Clear() = 0;
  virtual BatchResult TranslateBatch(const uint64_t* iovas, std::size_t n, uint64_t len,
                                     iotlb::Perm p) const = 0;
};

template <iotlb::Design D>
class Table final : public AnyTable {
 public:
  std::string_view Name() const override { return D::kName; }
  iotlb::InsertStatus Insert(iotlb::IovaRange r, uint64_t uaddr, iotlb::Perm p) override {
    return d_.Insert(r, uaddr, p);
  }
  std::size_t Invalidate(iotlb::IovaRange r) override { return d_.Invalidate(r); }
  iotlb::Translation Translate(uint64_t iova, uint64_t len, iotlb::Perm p) const override {
    return d_.Translate(iova, len, p);
  }
  std::size_t Size() const override { return d_.Size(); }
  std::size_t MemoryBytes() const override { return d_.MemoryBytes(); }
  void Clear() override { d_.Clear(); }
  BatchResult TranslateBatch(const uint64_t* iovas, std::size_t n, uint64_t len,
                             iotlb::Perm p) const override {
    BatchResult out;
    for (std::size_t i = 0; i < n; ++i) {
      const iotlb::Translation t = d_.Translate(iovas[i], len, p);
      switch (t.outcome) {
        case iotlb::Outcome::kHit:
          ++out.hits;
          out.bytes += t.len;
          break;
        case iotlb::Outcome::kMiss:
          ++out.misses;
          break;
        case iotlb::Outcome::kAccessFail:
          ++out.access_fails;
          break;
      }
    }
    return out;
  }

 private:
  D d_;
};

// nullptr when no registered design has this name (or it cannot be default-constructed).
inline std::unique_ptr<AnyTable> MakeTable(std::string_view name) {
  std::unique_ptr<AnyTable> out;
  iotlb::VisitDesign(name, [&]<typename D>() {
    if constexpr (std::is_default_constructible_v<D>) out = std::make_unique<Table<D>>();
  });
  return out;
}

}  // namespace vhostlab::pybind
