// static mapping: rings and both pools mapped (and, unless cold, pushed) before traffic.
#include "core/loadgen/mapping/static_model.hpp"

#include <utility>
#include <vector>

#include "core/protocol/messages.hpp"

namespace vhostlab::loadgen {

Status StaticModel::SetUp(const QueueDma& q) {
  if (Status s = MapRings(q, push_); !s.ok()) return s;
  for (int side : {kRx, kTx}) fixed_base_[side] = q.pools[side].static_iova;
  const DmaPool& rx = q.pools[kRx];
  if (Status s = iommu_->Map(rx.static_iova, *rx.page_gpa, rx.perm, push_); !s.ok()) return s;
  const DmaPool& tx = q.pools[kTx];
  std::vector<uint64_t> tx_pages = *tx.page_gpa;
  if (params_.swap_tx_pages && tx_pages.size() >= 2) std::swap(tx_pages[0], tx_pages[1]);
  return iommu_->Map(tx.static_iova, tx_pages, tx.perm, push_);
}

}  // namespace vhostlab::loadgen
