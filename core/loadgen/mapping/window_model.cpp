// Per-buffer IOVA windows for the lazy and strict models (see window_model.hpp).
#include "core/loadgen/mapping/window_model.hpp"

#include <algorithm>

namespace vhostlab::loadgen {
namespace {
uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

void WindowRing::Reset(uint32_t capacity) {
  slots_.assign(capacity, 0);
  head_ = 0;
  count_ = 0;
}

uint32_t WindowRing::Pop() {
  const uint32_t w = slots_[head_];
  head_ = head_ + 1 == slots_.size() ? 0 : head_ + 1;
  --count_;
  return w;
}

void WindowRing::Push(uint32_t window) {
  uint64_t at = uint64_t{head_} + count_;
  if (at >= slots_.size()) at -= slots_.size();
  slots_[at] = window;
  ++count_;
}

Status WindowModel::SetUp(const QueueDma& q) {
  if (Status s = MapRings(q, true); !s.ok()) return s;
  page_size_ = q.page_size;
  window_pages_ = (q.max_buffer_bytes + page_size_ - 1) / page_size_ + 2;
  stride_ = window_pages_ * page_size_;
  const uint64_t windows = 2ull * q.ring_size + params_.flush_batch + 16;
  base_[kRx] = q.window_area;
  base_[kTx] = base_[kRx] + RoundUp(windows * stride_, 1ull << 32);
  for (int side : {kRx, kTx}) {
    page_gpa_[side] = q.pools[side].page_gpa;
    perm_[side] = q.pools[side].perm;
    free_[side].Reset(static_cast<uint32_t>(windows));
    for (uint64_t w = 0; w < windows; ++w) free_[side].Push(static_cast<uint32_t>(w));
    held_[side].assign(q.ring_size, Window{});
  }
  return {};
}

Result<uint64_t> WindowModel::MapPerBuffer(DmaSide side, uint32_t slot, uint64_t off, uint32_t len) {
  if (free_[side].empty())
    if (Status s = Reclaim(); !s.ok()) return s.error();
  if (free_[side].empty()) return Error{"IOVA windows exhausted"};
  Window& held = held_[side][slot];
  const uint64_t first = off / page_size_, last = (off + len - 1) / page_size_;
  held.iova = base_[side] + free_[side].Pop() * stride_;
  held.pages = last - first + 1;
  if (Status s = iommu_->Map(
          held.iova, std::span<const uint64_t>(page_gpa_[side]->data() + first, held.pages),
          perm_[side], true);
      !s.ok())
    return s.error();
  ++maps_;
  return held.iova + off % page_size_;
}

}  // namespace vhostlab::loadgen
