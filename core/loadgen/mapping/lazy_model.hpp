// lazy: each buffer gets a fresh window mapped at post time; a completed window is unmapped at
// once but invalidated later, flush_batch windows at a time (Linux's flush queue), and only
// then reused. A flush sends one INVALIDATE per run of IOVA-adjacent windows of one side.
// Invariant: a window is back in the free list only after an acked INVALIDATE covered it; the
// runs' ranges span only freed windows and their unmapped tails and guards, never a live one.
#pragma once

#include <string_view>
#include <vector>

#include "core/loadgen/mapping/window_model.hpp"

namespace vhostlab::loadgen {

class LazyModel final : public WindowModel {
 public:
  static constexpr Mapping kId = Mapping::kLazy;
  static constexpr std::string_view kName = "lazy";
  static constexpr std::string_view kAlias = "";
  static constexpr bool kFixedIovas = false;

  LazyModel(IommuPort* iommu, const MappingParams& params) : WindowModel(iommu, params) {
    flush_queue_.reserve(params.flush_batch);
  }

  Status Flush() override;

 private:
  Status UnmapPerBuffer(DmaSide side, uint32_t slot) override;
  Status Reclaim() override { return Flush(); }

  struct Deferred {
    Window w;
    DmaSide side;
  };
  std::vector<Deferred> flush_queue_;  // unmapped, not yet invalidated (< flush_batch)
};

}  // namespace vhostlab::loadgen
