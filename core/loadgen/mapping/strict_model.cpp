// strict mapping: every completed buffer's window is unmapped and invalidated at once.
#include "core/loadgen/mapping/strict_model.hpp"

namespace vhostlab::loadgen {

Status StrictModel::UnmapPerBuffer(DmaSide side, uint32_t slot) {
  ++unmaps_;
  const Window& w = held_[side][slot];
  if (Status s = iommu_->Unmap(w.iova, w.pages, true); !s.ok()) return s;
  Free(side, w.iova);
  return {};
}

}  // namespace vhostlab::loadgen
