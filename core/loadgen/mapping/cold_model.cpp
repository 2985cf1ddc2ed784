// cold mapping: static's page table, nothing pushed but the used rings.
#include "core/loadgen/mapping/cold_model.hpp"

namespace vhostlab::loadgen {

Status ColdModel::SetUp(const QueueDma& q) {
  for (int side : {kRx, kTx}) used_iova_[side] = q.rings[side].iova + q.rings[side].used_off;
  return StaticModel::SetUp(q);
}

Status ColdModel::OnDeviceStarted() {
  for (uint64_t iova : used_iova_)
    if (Status s = iommu_->Push(iova); !s.ok()) return s;
  return {};
}

}  // namespace vhostlab::loadgen
