// static (alias identity): everything the device will touch is mapped and pushed before
// traffic: both rings, and both buffer pools at fixed IOVAs (receive RW, transmit RO like a
// DMA_TO_DEVICE mapping). Posting and completing a buffer costs the IOMMU nothing.
// Invariant: a buffer at pool offset `off` is always at pool.static_iova + off, so an
// INVALIDATE storm may recycle idle pages under it (kFixedIovas).
#pragma once

#include <string_view>

#include "core/loadgen/mapping_model.hpp"

namespace vhostlab::loadgen {

class StaticModel : public MappingModel {
 public:
  static constexpr Mapping kId = Mapping::kStatic;
  static constexpr std::string_view kName = "static";
  static constexpr std::string_view kAlias = "identity";
  static constexpr bool kFixedIovas = true;

  StaticModel(IommuPort* iommu, const MappingParams& params) : StaticModel(iommu, params, true) {}

  // Buffers are then answered inline at pool.static_iova + off (fixed_base_).
  Status SetUp(const QueueDma& q) override;
  bool pushes_updates() const final { return push_; }

 protected:
  // `push`: whether the pages mapped up front are pushed (cold: only the page table is filled).
  StaticModel(IommuPort* iommu, const MappingParams& params, bool push)
      : MappingModel(iommu), params_(params), push_(push) {}

  MappingParams params_;
  bool push_;
};

}  // namespace vhostlab::loadgen
