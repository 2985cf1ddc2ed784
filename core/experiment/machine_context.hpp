// The machine and build context every record carries: CPU model, kernel, compiler, build type,
// git sha and dirtiness of the source tree, and the versions of the libraries the build used
// (hwloc, toml++, libpfm4 from their headers; liburcu and DPDK from the Debian packages, as
// they have no version macro). `vhostlab run` and `vhostlab replay` records both use it.
//
// It runs `git` and `dpkg-query` (popen) once per call: tens of milliseconds, outside any timed
// region. A missing tool leaves its keys out ("git_sha" is "unknown"), never fails.
#pragma once

#include <map>
#include <string>

namespace vhostlab::experiment {

std::map<std::string, std::string> MachineContext();

}  // namespace vhostlab::experiment
