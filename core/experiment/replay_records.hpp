// Replay results (core/trace/replay.hpp) as run records: one RunRecord per design, in the
// schema of `vhostlab run --json` (config.backend "replay", config.profile "replay:<trace>",
// side "replay" metrics), so vhostlab.load_results() and the notebooks read them like runs.
#pragma once

#include <string>
#include <vector>

#include "core/experiment/run.hpp"
#include "core/trace/replay.hpp"

namespace vhostlab::experiment {

std::vector<RunRecord> ReplayRecords(const std::string& trace_path,
                                     const trace::TraceSummary& summary,
                                     const std::vector<trace::DesignReplay>& designs);

// A JSON list of records (what `--json` files hold).
std::string RecordsJson(const std::vector<RunRecord>& records);

}  // namespace vhostlab::experiment
