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


}  // namespace vhostlab::cli
