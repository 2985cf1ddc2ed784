// `vhostlab designs`: lists the registered IOTLB designs.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/iotlb/registry.hpp"
#include "tools/cli/command.hpp"

namespace vhostlab::cli {
namespace {

int RunDesigns(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("usage: vhostlab designs\n\nLists the IOTLB designs a backend queue can use "
                  "(--iotlb NAME in `vhostlab backend` and `vhostlab run`),\nwhat each is for, "
                  "and marks the default with '*'.\n");
      return 0;
    }
    std::fprintf(stderr, "vhostlab designs: unexpected argument '%s'\n", argv[i]);
    return 2;
  }
  for (const auto& name : iotlb::DesignNames())
    std::printf("%s %-17s %s\n", name == iotlb::kDefaultDesign ? "*" : " ", name.c_str(),
                std::string(iotlb::DesignSummary(name)).c_str());
  return 0;
}

const Command kDesigns{"designs", "list the IOTLB designs", &RunDesigns};

}  // namespace
}  // namespace vhostlab::cli
