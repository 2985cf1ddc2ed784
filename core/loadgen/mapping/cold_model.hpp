// cold: the guest's page table is as complete as static's, but nothing is pushed except each
// ring's used page once the device has started (as QEMU does): every other translation reaches
// the device as a MISS answer, and so do the pages an INVALIDATE storm re-maps.
#pragma once

#include <string_view>

#include "core/loadgen/mapping/static_model.hpp"

namespace vhostlab::loadgen {

class ColdModel final : public StaticModel {
 public:
  static constexpr Mapping kId = Mapping::kCold;
  static constexpr std::string_view kName = "cold";
  static constexpr std::string_view kAlias = "";
  static constexpr bool kFixedIovas = true;

  ColdModel(IommuPort* iommu, const MappingParams& params) : StaticModel(iommu, params, false) {}

  Status SetUp(const QueueDma& q) override;
  Status OnDeviceStarted() override;

 private:
  uint64_t used_iova_[2] = {0, 0};  // each ring's used ring, pushed unasked
};

}  // namespace vhostlab::loadgen
