// Without an IOMMU (VIRTIO_F_IOMMU_PLATFORM not negotiated) the device takes guest-physical
// addresses: nothing is mapped, and a buffer's address is its GPA. Not a named model: the
// registry picks it whenever the IOMMU is off, whatever mapping was asked for.
// Invariant: the pools are guest-contiguous (the driver does not scatter them without an
// IOMMU), so pool offset `off` is at page_gpa[0] + off.
#pragma once

#include "core/loadgen/mapping_model.hpp"

namespace vhostlab::loadgen {

class NoIommuModel final : public MappingModel {
 public:
  NoIommuModel() : MappingModel(nullptr) {}

  // Buffers are then answered inline at their GPA (fixed_base_ + off).
  Status SetUp(const QueueDma& q) override {
    for (int side : {kRx, kTx}) fixed_base_[side] = (*q.pools[side].page_gpa)[0];
    return {};
  }
  bool pushes_updates() const override { return false; }
};

}  // namespace vhostlab::loadgen
