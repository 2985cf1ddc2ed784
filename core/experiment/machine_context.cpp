// MachineContext (see machine_context.hpp). VHOSTLAB_BUILD_TYPE is defined for this file only
// (core/experiment/CMakeLists.txt), so a build-type change rebuilds one object.
#include "core/experiment/machine_context.hpp"

#include <hwloc.h>
#include <perfmon/pfmlib.h>
#include <sys/utsname.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <fstream>

namespace vhostlab::experiment {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// The command's standard output, trimmed; empty when it cannot run.
std::string Command(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    pclose(f);
  }
  return Trim(out);
}

}  // namespace

std::map<std::string, std::string> MachineContext() {
  std::map<std::string, std::string> c;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      c["cpu_model"] = Trim(line.substr(line.find(':') + 1));
      break;
    }
  }
  c["cpus_online"] = std::to_string(sysconf(_SC_NPROCESSORS_ONLN));
  struct utsname u;
  if (uname(&u) == 0) {
    c["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.version;
    c["machine"] = u.machine;
    c["hostname"] = u.nodename;
  }
#if defined(__clang__)
  c["compiler"] = std::string("clang ") + __VERSION__;
#elif defined(__GNUC__)
  c["compiler"] = std::string("gcc ") + __VERSION__;
#else
  c["compiler"] = __VERSION__;
#endif
#ifdef VHOSTLAB_BUILD_TYPE
  c["build_type"] = VHOSTLAB_BUILD_TYPE;
#endif
#ifdef NDEBUG
  c["assertions"] = "off";
#else
  c["assertions"] = "on";
#endif
  c["vhostlab_version"] = VHOSTLAB_VERSION;
  std::string sha = Command("git -C '" VHOSTLAB_SOURCE_DIR "' rev-parse HEAD 2>/dev/null");
  c["git_sha"] = sha.empty() ? "unknown" : sha;
  if (!sha.empty())
    c["git_dirty"] = Command("git -C '" VHOSTLAB_SOURCE_DIR
                             "' status --porcelain --untracked-files=no 2>/dev/null")
                             .empty()
                         ? "no"
                         : "yes";
  unsigned hw = hwloc_get_api_version();
  c["hwloc_api_version"] = std::to_string(hw >> 16) + "." + std::to_string((hw >> 8) & 0xff) + "." +
                           std::to_string(hw & 0xff);
  c["tomlplusplus_version"] = std::to_string(TOML_LIB_MAJOR) + "." +
                              std::to_string(TOML_LIB_MINOR) + "." + std::to_string(TOML_LIB_PATCH);
  c["libpfm_api_version"] =
      std::to_string(LIBPFM_VERSION >> 16) + "." + std::to_string(LIBPFM_VERSION & 0xffff);
  // liburcu has no version macro: the Debian packages the build used say it (and DPDK's).
  std::string packages = Command(
      "dpkg-query -W -f='${Package}=${Version} ' liburcu-dev libhwloc-dev libpfm4-dev "
      "libtomlplusplus-dev dpdk 2>/dev/null");
  if (!packages.empty()) c["debian_packages"] = packages;
  char when[64];
  std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  c["date_utc"] = when;
  return c;
}

}  // namespace vhostlab::experiment
