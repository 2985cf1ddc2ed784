// Command-line helpers shared by the `vhostlab` subcommands: the `--name=value` / `--name value`
// option split, comma-separated lists, the design list for --help texts, and the stop flag that
// SIGINT/SIGTERM raise so a long run ends cleanly (RunConfig::stop) instead of being killed.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>


namespace vhostlab::cli {

// Splits the option argv[*i] into name and value: "--name=value" in one argument, or the value
// as the next argument (then *i advances past it). On entry *name is argv[*i]. Returns false,
// leaving *name as it was, when the value is missing.
bool SplitOption(int argc, char** argv, int* i, std::string* name, std::string* value);

// Splits at every comma, keeping empty items: "a,,b" is {"a", "", "b"} and "" is {""}. Callers
// decide whether an empty item is an error or is skipped.
std::vector<std::string> SplitCommas(const std::string& s);

// Parses a decimal u64: digits only (no sign, no trailing text, no overflow).
bool ParseU64(const char* s, uint64_t* out);

// The registered IOTLB designs as "a, b, c", for --help texts.
std::string DesignNamesJoined();

// Set by SIGINT/SIGTERM once CatchStopSignals() has run; pass its address as RunConfig::stop.
std::atomic<bool>& StopFlag();
void CatchStopSignals();

}  // namespace vhostlab::cli
