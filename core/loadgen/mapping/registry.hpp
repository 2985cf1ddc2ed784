// The registry of mapping models: runtime choice by name, once per queue pair at set-up.
//
// Adding a model costs its files (a class with kId, kName, kAlias, kFixedIovas) plus its
// Mapping value (mapping_model.hpp) and one line in kMappings below; names, parsing, the error
// text listing the choices and the checks that depend on a model's facts all read the table.
#pragma once

#include <memory>
#include <string_view>

#include "core/base/result.hpp"
#include "core/loadgen/mapping/cold_model.hpp"
#include "core/loadgen/mapping/lazy_model.hpp"
#include "core/loadgen/mapping/static_model.hpp"
#include "core/loadgen/mapping/strict_model.hpp"
#include "core/loadgen/mapping_model.hpp"

namespace vhostlab::loadgen {

struct MappingInfo {
  Mapping id;
  std::string_view name;
  std::string_view alias;  // another accepted name ("" for none)
  // Buffers sit at fixed IOVAs for the whole run, so an INVALIDATE storm can recycle idle
  // pages under them.
  bool fixed_iovas;
  std::unique_ptr<MappingModel> (*make)(IommuPort* iommu, const MappingParams& params);
};

namespace internal {
template <typename M>
std::unique_ptr<MappingModel> Make(IommuPort* iommu, const MappingParams& params) {
  return std::make_unique<M>(iommu, params);
}
template <typename M>
constexpr MappingInfo Describe() {
  return {M::kId, M::kName, M::kAlias, M::kFixedIovas, &Make<M>};
}
}  // namespace internal

inline constexpr MappingInfo kMappings[] = {
    internal::Describe<StaticModel>(),
    internal::Describe<LazyModel>(),
    internal::Describe<StrictModel>(),
    internal::Describe<ColdModel>(),
};

// The model called `name` (or its alias); the error lists every name.
Result<Mapping> ParseMapping(std::string_view name);
const char* MappingName(Mapping m);
const MappingInfo& DescribeMapping(Mapping m);
// The model one queue pair uses: NoIommuModel when the IOMMU is off (addresses are GPAs,
// whatever was asked), else the registered one.
std::unique_ptr<MappingModel> MakeMappingModel(Mapping m, bool iommu, IommuPort* port,
                                               const MappingParams& params);

}  // namespace vhostlab::loadgen
