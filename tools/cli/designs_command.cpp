// `vhostlab designs`: lists the registered IOTLB designs.
#include <cstdio>
#include <string>

#include "core/iotlb/registry.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

int RunDesigns(int argc, char** argv) {
  CLI::App app("", "designs");
  Describe(app, "usage: vhostlab designs\n",
           "Lists the IOTLB designs a backend queue can use (--iotlb NAME in `vhostlab backend`\n"
           "and `vhostlab run`), what each is for, and marks the default with '*'.\n",
           "");
  if (const int status = Parse(app, argc, argv); status >= 0) return status;
  for (const auto& name : iotlb::DesignNames())
    std::printf("%s %-17s %s\n", name == iotlb::kDefaultDesign ? "*" : " ", name.c_str(),
                std::string(iotlb::DesignSummary(name)).c_str());
  return 0;
}

const Command kDesigns{"designs", "list the IOTLB designs", &RunDesigns};

}  // namespace
}  // namespace vhostlab::cli
