// The Peer interface: the backend side of one run, whatever serves it. RunExperiment starts a
// peer, points the front-end at its socket, runs the traffic, stops it and records what it can
// tell. Peers are chosen by RunConfig::backend ("NAME" or "NAME:ARGUMENT") through the registry
// in registry.cpp: a new peer costs its file and one line there, nothing in RunExperiment.
//
// Lifetime, all on RunExperiment's thread: Make (validates the config; nothing started) ->
// Annotate (context known before the run) -> Start (returns once the socket is served) ->
// [the front-end runs; WorkerTids() may be read from its supervising thread] -> Stop
// (idempotent; also done by the destructor) -> Stats / ExplainFailure / Report.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend/backend.hpp"
#include "core/base/result.hpp"
#include "core/experiment/placement.hpp"
#include "core/experiment/run.hpp"

namespace vhostlab::experiment {

// The peer's threads that the run's placement policy places (placement.hpp).
struct PeerThreads {
  uint32_t count = 0;             // 0: not ours to place (an external backend)
  bool float_when_shared = true;  // false: they busy-poll and stay pinned even on few cores
  std::string label = "backend";  // how the placement names them ("backend", "testpmd")
  // Whether the peer runs one thread per queue pair, so that per-queue rates can show scaling.
  bool per_queue = true;
};

// What a peer gets to start.
struct PeerStart {
  std::string run_dir;            // the run's temp dir (sockets, logs), removed after the run
  std::vector<int> thread_cpus;   // CPU of placed thread i (Placement); empty: they float
  std::vector<int> control_cpus;  // CPUs for the peer's control threads; empty: anywhere
};

class Peer {
 public:
  virtual ~Peer() = default;
  virtual PeerThreads Threads() const = 0;
  // Context (and notes) the record carries whatever happens in the run.
  virtual void Annotate(RunRecord* /*rec*/) const {}
  virtual Status Start(const PeerStart& start) = 0;
  virtual std::string socket_path() const = 0;
  // How long the front-end retries connecting: our own peers listen before Start returns, an
  // external one gets a short grace period.
  virtual int connect_timeout_ms() const { return 10000; }
  // Kernel tids of the threads that move packets, in queue-pair order (counters attach to
  // them); empty when they are not in this process.
  virtual std::vector<int> WorkerTids() const { return {}; }
  virtual void Stop() = 0;
  // After Stop: the peer's own statistics, when it has them (our in-process backend).
  virtual std::optional<backend::BackendStats> Stats() const { return std::nullopt; }
  // After Stop, when the front-end failed: what the peer can add (e.g. testpmd's output).
  virtual std::string ExplainFailure() const { return ""; }
  // After a successful run: context about where the peer ran and what it was.
  virtual void Report(const Placement& /*placement*/, RunRecord* /*rec*/) const {}
};

using PeerFactory = Result<std::unique_ptr<Peer>> (*)(const RunConfig& config,
                                                      const std::string& argument);

struct PeerKind {
  std::string_view name;
  bool takes_argument;  // "socket:PATH"
  PeerFactory make;
  std::string_view summary;
};

// Every registered peer, in registration order.
const std::vector<PeerKind>& PeerKinds();
// "self, dpdk or socket:PATH" (for error messages and help).
std::string PeerNamesJoined();
// The peer RunConfig::backend names, made (not started); errors name what is accepted.
Result<std::unique_ptr<Peer>> MakePeer(const RunConfig& config);

}  // namespace vhostlab::experiment
