// Command-line helpers shared by the `vhostlab` subcommands (see flags.hpp).
#include "tools/cli/flags.hpp"

#include <signal.h>

#include <cerrno>
#include <cstdlib>

#include "core/iotlb/registry.hpp"

namespace vhostlab::cli {

bool SplitOption(int argc, char** argv, int* i, std::string* name, std::string* value) {
  const auto eq = name->find('=');
  if (name->rfind("--", 0) == 0 && eq != std::string::npos) {
    *value = name->substr(eq + 1);
    name->resize(eq);
    return true;
  }
  if (*i + 1 >= argc) return false;
  *value = argv[++*i];
  return true;
}

bool ParseU64(const char* s, uint64_t* out) {
  if (!s[0] || s[0] < '0' || s[0] > '9') return false;  // strtoull would accept "-5" and " 5"
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = s.find(',', pos);
    if (comma == std::string::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
}

std::string DesignNamesJoined() {
  std::string designs;
  for (const auto& n : iotlb::DesignNames()) designs += (designs.empty() ? "" : ", ") + n;
  return designs;
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

Status ParsePollMode(const std::string& v, backend::PollMode* mode, uint32_t* spin_us) {
  if (v == "busy") {
    *mode = backend::PollMode::kBusy;
  } else if (v == "interrupt") {
    *mode = backend::PollMode::kInterrupt;
  } else if (v == "adaptive") {
    *mode = backend::PollMode::kAdaptive;
  } else if (v.rfind("adaptive:", 0) == 0) {
    uint64_t us = 0;
    if (!ParseU64(v.c_str() + 9, &us) || us == 0 || us > 1000000)
      return Error{"--poll adaptive:US needs US in 1..1000000 microseconds, not '" + v.substr(9) +
                   "'"};
    *mode = backend::PollMode::kAdaptive;
    *spin_us = static_cast<uint32_t>(us);
  } else {
    return Error{"--poll must be busy, adaptive[:US] or interrupt, not '" + v + "'"};
  }
  return {};
}

}  // namespace vhostlab::cli
