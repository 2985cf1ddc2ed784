// Subcommand registry of the `vhostlab` CLI. Each subcommand lives in its own
// tools/cli/<name>_command.cpp and registers itself with one static Command object:
//
//   static const cli::Command kDesigns{"designs", "list the IOTLB designs", &RunDesigns};
//
// A subcommand receives argv starting at its own name and returns the process exit status.
// Every subcommand answers --help.
#pragma once

#include <map>
#include <string>

namespace vhostlab::cli {

using CommandFn = int (*)(int argc, char** argv);

struct CommandInfo {
  std::string summary;
  CommandFn run;
};

std::map<std::string, CommandInfo>& Commands();

struct Command {
  Command(const char* name, const char* summary, CommandFn run) {
    Commands()[name] = CommandInfo{summary, run};
  }
};

}  // namespace vhostlab::cli
