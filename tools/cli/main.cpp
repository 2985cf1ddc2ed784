// vhostlab: a lab for the device IOTLB of vhost-user backends. See README.md.
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/cli/command.hpp"

namespace vhostlab::cli {

std::map<std::string, CommandInfo>& Commands() {
  static std::map<std::string, CommandInfo> commands;
  return commands;
}

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: vhostlab <command> [options]   (vhostlab <command> --help for details)\n\n"
               "vhostlab compares IOTLB designs for vhost-user backends (VHOST_USER_IOTLB_MSG):\n"
               "a backend with swappable IOTLBs, a front-end that plays QEMU + the guest driver,\n"
               "and a counter collector.\n\ncommands:\n");
  for (const auto& [name, info] : Commands())
    std::fprintf(out, "  %-10s %s\n", name.c_str(), info.summary.c_str());
}

}  // namespace
}  // namespace vhostlab::cli

int main(int argc, char** argv) {
  using namespace vhostlab::cli;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("vhostlab %s\n", VHOSTLAB_VERSION);
    return 0;
  }
  auto it = Commands().find(argv[1]);
  if (it == Commands().end()) {
    std::fprintf(stderr, "vhostlab: unknown command '%s'\n\n", argv[1]);
    Usage(stderr);
    return 2;
  }
  return it->second.run(argc - 1, argv + 1);
}
