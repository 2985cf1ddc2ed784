// Command-line helpers shared by the `vhostlab` subcommands (see flags.hpp).
#include "tools/cli/flags.hpp"

#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <signal.h>

#include <cstdio>
#include <memory>

#include "core/base/log.hpp"
#include "core/iotlb/registry.hpp"

namespace vhostlab::cli {
namespace {

// Options start at column 2, their descriptions at column 21 (as the hand-written help had
// it); descriptions that do not fit are wrapped by Wrap.
constexpr std::size_t kNameColumn = 21;

// CLI11's layout with vhostlab's order: usage first, then the description, options, footer.
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter(std::string usage, std::string description)
      : usage_(std::move(usage)), description_(std::move(description)) {
    column_width(kNameColumn);
  }
  std::string make_description(const CLI::App*) const override {
    return usage_ + "\n" + description_;
  }
  std::string make_usage(const CLI::App*, std::string) const override { return ""; }
  // The name and metavar only: the help text says what is required and allowed.
  std::string make_option_opts(const CLI::Option* opt) const override {
    const std::string type = opt->get_type_name();
    return type.empty() ? "" : " " + type;
  }

 private:
  std::string usage_;
  std::string description_;
};

}  // namespace

std::string Wrap(std::string_view text, std::size_t width) {
  std::string out, line;
  for (absl::string_view para : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    if (!out.empty() || !line.empty()) out += line + "\n";
    line.clear();
    for (absl::string_view word : absl::StrSplit(para, ' ', absl::SkipEmpty())) {
      if (!line.empty() && line.size() + 1 + word.size() > width) {
        out += line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + std::string(word);
    }
  }
  return out + line;
}

void Describe(CLI::App& app, std::string usage, std::string description, std::string footer,
              const std::string& group) {
  app.formatter(std::make_shared<HelpFormatter>(std::move(usage), std::move(description)));
  app.option_defaults()->group(group);
  app.set_help_flag("-h,--help", "print this help and exit");
  app.footer(std::move(footer));
}

int Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "vhostlab %s: %s (see vhostlab %s --help)\n", app.get_name().c_str(),
                 e.what(), app.get_name().c_str());
    return 2;
  }
  return -1;
}

void AddLogFlags(CLI::App& app, bool quiet_errors_only) {
  app.add_flag_callback("-v,--verbose", [] { LogThreshold() = LogLevel::kDebug; },
                        "more logging on stderr (every message, debug level)");
  app.add_flag_callback(
      "-q,--quiet",
      [quiet_errors_only] {
        LogThreshold() = quiet_errors_only ? LogLevel::kError : LogLevel::kWarn;
      },
      quiet_errors_only ? "less logging on stderr (errors only)"
                        : "less logging on stderr (warnings and errors)");
}

SettingFlags::SettingFlags(CLI::App& app, const experiment::RunConfig* defaults,
                           std::string group, const std::vector<std::string_view>& only)
    : app_(app) {
  for (const experiment::Setting& s : experiment::RunSettings()) {
    if (s.flag.empty()) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), s.name) == only.end()) continue;
    const std::string value = defaults ? s.Text(*defaults) : "";
    // A default worth showing: not empty, and not the 0 of a setting that excludes another
    // (seconds 0 means "count packets").
    const bool show = !value.empty() && !(value == "0" && !s.resets.empty()) &&
                      s.type != experiment::SettingType::kFlag;
    std::string help = (show ? "[" + value + "] " : "") + std::string(s.help);
    // The range, where the help does not say it (and where it is a useful number).
    if ((s.type == experiment::SettingType::kCount && s.max != UINT64_MAX) ||
        s.type == experiment::SettingType::kSize ||
        s.type == experiment::SettingType::kFrameSizes ||
        s.type == experiment::SettingType::kCpuList)
      help += " Takes " + s.Allowed() + ".";
    if (s.type == experiment::SettingType::kDesign) help += " Available: " + DesignNamesJoined() + ".";
    CLI::Option* opt;
    if (s.type == experiment::SettingType::kFlag) {
      opt = app.add_flag(std::string(s.flag))->description(Wrap(help));
    } else {
      // The table's parser is the check: the error names the value and what is allowed, CLI11
      // prefixes the flag.
      CLI::Validator check(
          [&s](std::string& v) {
            experiment::RunConfig probe;
            Status st = s.Parse(probe, v);
            return st.ok() ? std::string() : st.message();
          },
          "", std::string(s.name));
      opt = app.add_option(std::string(s.flag))
                ->description(Wrap(help))
                ->type_name(std::string(s.metavar))
                ->check(check)
                ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    opt->group(group);
    options_.emplace_back(opt, &s);
  }
}

Status SettingFlags::ApplyTo(experiment::RunConfig& config) const {
  for (const CLI::Option* given : app_.parse_order()) {
    for (const auto& [opt, s] : options_) {
      if (opt != given) continue;
      const std::string value =
          s->type == experiment::SettingType::kFlag ? "on" : opt->as<std::string>();
      if (Status st = s->Parse(config, value); !st.ok())
        return Error{std::string(s->flag) + ": " + st.message()};
    }
  }
  return {};
}

bool SettingFlags::Given(std::string_view name) const {
  for (const auto& [opt, s] : options_)
    if (s->name == name) return opt->count() > 0;
  return false;
}

std::string DesignNamesJoined() { return absl::StrJoin(iotlb::DesignNames(), ", "); }

std::vector<std::string> SplitList(const std::string& s) {
  return absl::StrSplit(s, ',', absl::SkipEmpty());
}

namespace {
// At namespace scope (not a function-local static) so the handler touches no init guard.
std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true); }
}  // namespace

std::atomic<bool>& StopFlag() { return g_stop; }

void CatchStopSignals() {
  signal(SIGINT, OnStopSignal);
  signal(SIGTERM, OnStopSignal);
}

}  // namespace vhostlab::cli
