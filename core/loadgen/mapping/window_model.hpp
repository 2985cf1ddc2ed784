// The common part of the per-buffer models (lazy, strict): each posted buffer gets a fresh IOVA
// window, mapped (one UPDATE per page) before the buffer is posted, and given back once the
// model has unmapped and invalidated it.
//
// Layout (kept bit for bit from the driver it came from, so traces and records compare):
// `windows` = 2 * ring + flush_batch + 16 windows per side (every slot in flight plus a full
// flush queue), each `window_pages` = ceil(max_buffer / page) + 2 pages: a buffer spans at most
// ceil(slot / page) + 1 pages, and one more, never mapped, is a guard so no INVALIDATE range
// ends exactly where a live window starts (DPDK 22.11's cache_remove also drops an entry that
// starts right at iova + size). Receive windows start at window_area, transmit windows at the
// next 4 GiB boundary after them.
// Free windows are handed out in FIFO order from a fixed-capacity ring (no allocation per
// buffer), so windows freed together come back as long IOVA runs.
#pragma once

#include <cstdint>
#include <vector>

#include "core/loadgen/mapping_model.hpp"

namespace vhostlab::loadgen {

// A FIFO of window numbers with room for every window of one side.
class WindowRing {
 public:
  void Reset(uint32_t capacity);
  bool empty() const { return count_ == 0; }
  uint32_t Pop();
  void Push(uint32_t window);

 private:
  std::vector<uint32_t> slots_;
  uint32_t head_ = 0, count_ = 0;
};

class WindowModel : public MappingModel {
 public:
  WindowModel(IommuPort* iommu, const MappingParams& params)
      : MappingModel(iommu), params_(params) {
    per_buffer_ = true;
  }

  Status SetUp(const QueueDma& q) override;
  bool pushes_updates() const final { return true; }

 protected:
  struct Window {
    uint64_t iova = 0;
    uint64_t pages = 0;  // mapped pages (the rest of the window stays unmapped)
  };
  Result<uint64_t> MapPerBuffer(DmaSide side, uint32_t slot, uint64_t off, uint32_t len) override;
  // Called when a side has no free window left: a model that holds windows back (lazy) gives
  // them back here.
  virtual Status Reclaim() { return {}; }
  void Free(DmaSide side, uint64_t iova) {
    free_[side].Push(static_cast<uint32_t>((iova - base_[side]) / stride_));
  }
  uint64_t stride() const { return stride_; }

  MappingParams params_;
  uint64_t page_size_ = 4096;
  std::vector<Window> held_[2];  // per side, per slot: the window mapped for its buffer

 private:
  const std::vector<uint64_t>* page_gpa_[2] = {nullptr, nullptr};
  uint8_t perm_[2] = {0, 0};
  uint64_t base_[2] = {0, 0};
  uint64_t window_pages_ = 0, stride_ = 0;
  WindowRing free_[2];
};

}  // namespace vhostlab::loadgen
