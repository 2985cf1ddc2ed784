// Lookups over the mapping-model table (registry.hpp).
#include "core/loadgen/mapping/registry.hpp"

#include <string>
#include <absl/strings/str_join.h>

#include "core/loadgen/mapping/no_iommu_model.hpp"

namespace vhostlab::loadgen {

// Every id appears once: DescribeMapping's lookup relies on it.
static_assert([] {
  for (std::size_t i = 0; i < std::size(kMappings); ++i)
    for (std::size_t j = i + 1; j < std::size(kMappings); ++j)
      if (kMappings[i].id == kMappings[j].id || kMappings[i].name == kMappings[j].name)
        return false;
  return true;
}(), "mapping ids and names must be unique");

Result<Mapping> ParseMapping(std::string_view name) {
  for (const MappingInfo& m : kMappings)
    if (name == m.name || (!m.alias.empty() && name == m.alias)) return m.id;
  const std::string names = absl::StrJoin(kMappings, ", ", [](std::string* out, const MappingInfo& m) {
    out->append(m.name);
  });
  return Error{"unknown mapping '" + std::string(name) + "' (" + names + ")"};
}

const MappingInfo& DescribeMapping(Mapping m) {
  for (const MappingInfo& info : kMappings)
    if (info.id == m) return info;
  return kMappings[0];  // unreachable for a valid enum value (every id is registered)
}

const char* MappingName(Mapping m) { return DescribeMapping(m).name.data(); }

std::unique_ptr<MappingModel> MakeMappingModel(Mapping m, bool iommu, IommuPort* port,
                                               const MappingParams& params) {
  if (!iommu) return std::make_unique<NoIommuModel>();
  return DescribeMapping(m).make(port, params);
}

}  // namespace vhostlab::loadgen
