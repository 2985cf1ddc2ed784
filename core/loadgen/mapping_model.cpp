// The parts every mapping model shares (see mapping_model.hpp).
#include "core/loadgen/mapping_model.hpp"

#include "core/protocol/messages.hpp"

namespace vhostlab::loadgen {

Status MappingModel::MapRings(const QueueDma& q, bool push) {
  std::vector<uint64_t> pages;  // set-up only: one vector per ring
  for (const DmaRing& r : q.rings) {
    pages.clear();
    for (uint64_t off = 0; off < r.bytes; off += q.page_size) pages.push_back(r.gpa + off);
    if (Status s = iommu_->Map(r.iova, pages, protocol::kIotlbPermRw, push); !s.ok()) return s;
  }
  return {};
}

}  // namespace vhostlab::loadgen
