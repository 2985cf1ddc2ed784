// Records as nlohmann-json values (record_json.cpp), for writers that put several into one
// document (a list of runs, a replay's records) instead of joining JSON text by hand.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/experiment/run.hpp"

namespace vhostlab::experiment {

nlohmann::ordered_json RunRecordJson(const RunRecord& record);

// The text every JSON file of vhostlab gets: two-space indent, a final newline, and bytes that
// are not UTF-8 (a context string read from a tool's output) replaced rather than throwing.
std::string DumpJson(const nlohmann::ordered_json& doc);

}  // namespace vhostlab::experiment
