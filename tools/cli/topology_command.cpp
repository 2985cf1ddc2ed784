// `vhostlab topology`: the machine as hwloc sees it (cores, PUs, caches, NUMA), i.e. what the
// load generator pins its threads to and what run records describe.
#include <cstdio>

#include "core/topology/topology.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

int RunTopology(int argc, char** argv) {
  CLI::App app("", "topology");
  Describe(app, "usage: vhostlab topology\n",
           "Prints the machine's topology from hwloc: packages, cores with their OS cpu\n"
           "numbers, NUMA nodes with their memory, and every cache (level, size, line size,\n"
           "associativity, which cores share it). Core numbers are the logical indices the\n"
           "load generator pins queue threads to.\n",
           "");
  if (const int status = Parse(app, argc, argv); status >= 0) return status;
  auto topo = topology::Topology::Load();
  if (!topo) {
    std::fprintf(stderr, "vhostlab topology: %s\n", topo.error().message.c_str());
    return 1;
  }
  std::fputs(topo->Describe().c_str(), stdout);
  return 0;
}

const Command kTopology{"topology", "show cores, caches and NUMA nodes (hwloc)", &RunTopology};

}  // namespace
}  // namespace vhostlab::cli
