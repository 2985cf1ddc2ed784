// DpdkPeer: a dpdk-testpmd process serving DPDK's vhost PMD as the backend of one run.
//
// testpmd runs without hugepages (`--no-huge -m 512 --no-pci`), with its own --file-prefix (EAL
// instances must never share runtime state), its own socket in the run's temp dir, io
// forwarding on its single port (what arrives on queue q of the vhost port goes back out on
// queue q: loopback, frames unchanged), and `iommu-support=1` so it offers IOMMU_PLATFORM.
// Lifetime: Start() returns once the socket file exists (bounded), or an error with the tail of
// testpmd's output; Stop() sends SIGINT to the PID we forked (testpmd quits cleanly), waits a
// bounded time, then SIGKILLs it. Nothing but that PID is ever signalled.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/base/result.hpp"

namespace vhostlab::experiment {

struct DpdkOptions {
  std::string binary = "dpdk-testpmd";
  std::string socket_path;
  std::string log_path;     // testpmd's stdout + stderr
  std::string file_prefix;  // unique per instance
  uint32_t queues = 1;
  int cpu = 0;  // both EAL lcores (main + forwarding) run on this CPU
  int start_timeout_ms = 20000;
};

class DpdkPeer {
 public:
  ~DpdkPeer() { Stop(); }
  static Result<std::unique_ptr<DpdkPeer>> Start(const DpdkOptions& options);
  void Stop();
  // The last `bytes` of testpmd's output (for error messages).
  std::string LogTail(std::size_t bytes = 2000) const;
  // "DPDK 22.11.x" from EAL's version line, or empty.
  std::string Version() const;
  bool Running();

 private:
  DpdkPeer() = default;
  DpdkOptions options_;
  pid_t pid_ = -1;
};

// The path of `name` on $PATH (or `name` itself when it contains a slash and exists); empty
// when not found.
std::string FindOnPath(const std::string& name);

}  // namespace vhostlab::experiment
