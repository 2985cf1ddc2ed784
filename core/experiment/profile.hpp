// Workload profiles: profiles/<name>.toml -> RunConfig(s).
//
// A profile has an optional `name` and `description`, a [workload] table whose keys are the
// run settings' profile keys (core/experiment/settings.hpp: queues, ring_size, packet_size,
// packet_sizes, packets or seconds, mapping, page_size, iommu, ... - every row with a key; each
// value is checked by the setting's own parser), and an optional [sweep] table
// where any workload key takes an array: the profile then expands to the cartesian product, in
// key order. Every unknown key, wrong type or bad value (including an integer too large for its
// field) is an error naming the file, line and key: a typo never silently runs the default.
#pragma once

#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/experiment/run.hpp"

namespace vhostlab::experiment {

struct Profile {
  std::string name;
  std::string description;
  std::string path;
  RunConfig base;               // [workload] applied to the defaults
  std::vector<RunConfig> runs;  // base expanded by [sweep] (just `base` without one)
};

// `name_or_path`: a file path, or a bare name looked up as profiles/<name>.toml in the source
// tree (VHOSTLAB_SOURCE_DIR) and the current directory.
Result<Profile> LoadProfile(const std::string& name_or_path);
Result<Profile> ParseProfile(const std::string& toml_text, const std::string& source_name);

// "4k" / "2m" / "4096" / "2097152" -> bytes; only 4 KiB and 2 MiB are supported.
Result<uint64_t> ParsePageSize(const std::string& text);
std::string PageSizeName(uint64_t bytes);

// "64,1500,9000" -> {64, 1500, 9000} (a packet-size mix; the front-end checks the range), and
// back; an empty mix reads as `packet_size` alone.
Result<std::vector<uint32_t>> ParsePacketSizes(const std::string& text);
std::string FrameSizesName(const RunConfig& config);

// "268435456" / "256m" / "256MiB" / "64k" / "1g" -> bytes (binary units; the working set).
Result<uint64_t> ParseSize(const std::string& text);

}  // namespace vhostlab::experiment
