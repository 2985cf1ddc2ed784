// strict: map before every buffer, unmap + INVALIDATE (acked) after it completes, as Linux's
// strict IOMMU mode does: the device can never touch a buffer the guest has taken back.
#pragma once

#include <string_view>

#include "core/loadgen/mapping/window_model.hpp"

namespace vhostlab::loadgen {

class StrictModel final : public WindowModel {
 public:
  static constexpr Mapping kId = Mapping::kStrict;
  static constexpr std::string_view kName = "strict";
  static constexpr std::string_view kAlias = "";
  static constexpr bool kFixedIovas = false;

  using WindowModel::WindowModel;

 private:
  Status UnmapPerBuffer(DmaSide side, uint32_t slot) override;
};

}  // namespace vhostlab::loadgen
