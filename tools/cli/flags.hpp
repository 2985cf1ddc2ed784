// Command-line helpers shared by the `vhostlab` subcommands, over CLI11 (libcli11-dev): the help
// layout every subcommand uses, parsing with vhostlab's exit codes (0 after --help, 2 with a
// one-line message for any usage error), the run-setting flags generated from the settings
// table (core/experiment/settings.hpp), the design list for --help texts, and the stop flag
// that SIGINT/SIGTERM raise so a long run ends cleanly (RunConfig::stop) instead of being
// killed.
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.hpp"
#include "core/experiment/run.hpp"
#include "core/experiment/settings.hpp"

namespace vhostlab::cli {

// The help layout: `usage` (the synopsis lines, pre-formatted), `description` (pre-formatted
// paragraphs), then the options in two columns (descriptions wrapped to the terminal width by
// Wrap), then `footer` (exit status, examples). Also installs -h/--help. Options go under the
// heading `group` unless they name another.
void Describe(CLI::App& app, std::string usage, std::string description, std::string footer,
              const std::string& group = "options");

// Text wrapped at word boundaries to `width` columns (lines after the first are indented by the
// help formatter). Explicit newlines are kept.
std::string Wrap(std::string_view text, std::size_t width = 72);

// Parses argv (argv[0] is the subcommand's name). Returns -1 to go on, or the exit status:
// 0 after printing --help, 2 after printing "vhostlab <command>: <why> (see vhostlab <command>
// --help)" for an unknown option, a missing or bad value, or a failed check.
int Parse(CLI::App& app, int argc, char** argv);

// --verbose (debug logging) and --quiet (`quiet` level and above only).
void AddLogFlags(CLI::App& app, bool quiet_errors_only);

// The run-setting flags: one per table row that has a flag (or, with `only` non-empty, the
// rows named there), with the table's help text, `defaults`' value in brackets (none when
// `defaults` is null: e.g. a profile supplies them), and the table's
// parser as the check, so a bad value is a usage error naming the flag and the allowed range.
class SettingFlags {
 public:
  SettingFlags(CLI::App& app, const experiment::RunConfig* defaults, std::string group,
               const std::vector<std::string_view>& only = {});
  // Applies the flags given, in command-line order (a later --seconds beats an earlier
  // --packets), to `config`.
  Status ApplyTo(experiment::RunConfig& config) const;
  bool Given(std::string_view name) const;

 private:
  CLI::App& app_;
  std::vector<std::pair<const CLI::Option*, const experiment::Setting*>> options_;
};

// The registered IOTLB designs as "a, b, c", for --help texts.
std::string DesignNamesJoined();

// "a,,b" -> {"a", "b"}: a comma-separated list without its empty items.
std::vector<std::string> SplitList(const std::string& s);

// Set by SIGINT/SIGTERM once CatchStopSignals() has run; pass its address as RunConfig::stop.
std::atomic<bool>& StopFlag();
void CatchStopSignals();

}  // namespace vhostlab::cli
