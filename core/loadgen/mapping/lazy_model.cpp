// lazy mapping: unmap at completion, INVALIDATE in batches (see lazy_model.hpp).
#include "core/loadgen/mapping/lazy_model.hpp"

#include <algorithm>

namespace vhostlab::loadgen {

Status LazyModel::UnmapPerBuffer(DmaSide side, uint32_t slot) {
  ++unmaps_;
  const Window& w = held_[side][slot];
  if (Status s = iommu_->Unmap(w.iova, w.pages, false); !s.ok()) return s;
  flush_queue_.push_back({w, side});
  if (flush_queue_.size() >= params_.flush_batch) return Flush();
  return {};
}

Status LazyModel::Flush() {
  if (flush_queue_.empty()) return {};
  std::sort(flush_queue_.begin(), flush_queue_.end(),
            [](const Deferred& a, const Deferred& b) { return a.w.iova < b.w.iova; });
  // One INVALIDATE per run of adjacent freed windows of one side, from the first window's start
  // to the last one's mapped end: the unmapped tails and guard pages in between hold nothing,
  // so the range covers no live window, and windows handed out in FIFO order come back as long
  // runs.
  std::size_t i = 0;
  while (i < flush_queue_.size()) {
    const uint64_t start = flush_queue_[i].w.iova;
    uint64_t end = start + flush_queue_[i].w.pages * page_size_;
    std::size_t j = i + 1;
    while (j < flush_queue_.size() &&
           flush_queue_[j].w.iova == flush_queue_[j - 1].w.iova + stride() &&
           flush_queue_[j].side == flush_queue_[i].side) {
      end = flush_queue_[j].w.iova + flush_queue_[j].w.pages * page_size_;
      ++j;
    }
    if (Status s = iommu_->Invalidate(start, end - start); !s.ok()) return s;
    i = j;
  }
  for (const Deferred& d : flush_queue_) Free(d.side, d.w.iova);
  flush_queue_.clear();
  return {};
}

}  // namespace vhostlab::loadgen
