// RunExperiment: one front-end session against one peer, as one self-describing record.
//
// The orchestration only; each concern lives in its own module:
//   peers/       the backend side (self: our backend in-process; dpdk: a spawned testpmd;
//                socket:PATH: an external backend), chosen by name (peers/registry.cpp);
//   placement    which CPUs the front-end queue threads, the peer's threads and the control
//                threads run on (one policy, bound through core/topology's hwloc binding);
//   recording    the tidy metric rows; machine_context: the machine and build context.
// The calling thread becomes the run's control thread for its duration: it is bound to the
// control CPUs (and restored afterwards), so the threads it starts (the front-end's
// supervising and backend-channel threads, the watchdog) inherit that placement, and the
// front-end's queue threads bind themselves to their own CPUs. A watchdog sets the stop flag
// once timeout_seconds pass, so a run is bounded even against a wedged peer (setup messages
// have their own reply timeouts in Session).
#include "core/experiment/run.hpp"

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <absl/strings/str_join.h>

#include "core/base/log.hpp"
#include "core/counters/run_counters.hpp"
#include "core/experiment/peers/peer.hpp"
#include "core/experiment/placement.hpp"
#include "core/experiment/recording.hpp"
#include "core/frontend/frontend.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::experiment {
namespace {

// Temp dir removed on scope exit (sockets and testpmd's log live there).
struct TempDir {
  std::string path;
  ~TempDir() {
    if (path.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Sets `stop` once `seconds` pass, unless cancelled first.
class Watchdog {
 public:
  Watchdog(std::atomic<bool>* stop, double seconds) {
    thread_ = std::thread([this, stop, seconds] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) {
        VL_WARN("run exceeded its %.0f s bound: stopping it", seconds);
        stop->store(true);
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Bounds a run: an external stop flag (Ctrl-C, Python) is forwarded into the run's own flag,
// and the watchdog sets it after timeout_seconds.
class RunStop {
 public:
  RunStop(std::atomic<bool>* external, double seconds)
      : external_(external), watchdog_(&stop_, seconds) {
    if (external_)
      forward_ = std::thread([this] {
        while (!done_.load()) {
          if (external_->load()) stop_.store(true);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
  }
  ~RunStop() {
    done_.store(true);
    if (forward_.joinable()) forward_.join();
  }
  std::atomic<bool>* flag() { return &stop_; }
  // True when the watchdog, not the caller, stopped the run.
  bool TimedOut() const { return stop_.load() && !(external_ && external_->load()); }

 private:
  std::atomic<bool>* external_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread forward_;
  Watchdog watchdog_;  // declared last: joined first, before the flag it sets goes away
};

Status CheckConfig(const RunConfig& config) {
  if (Result<frontend::Mapping> m = frontend::ParseMapping(config.mapping); !m.ok())
    return m.error();
  if (config.scatter != "auto" && config.scatter != "on" && config.scatter != "straddle" &&
      config.scatter != "off")
    return Error{"scatter must be auto, on, straddle or off, not '" + config.scatter + "'"};
  if (config.traffic != "stream" && config.traffic != "drain")
    return Error{"traffic must be stream or drain, not '" + config.traffic + "'"};
  if (config.mode != "loopback" && config.mode != "sink")
    return Error{"mode must be loopback or sink, not '" + config.mode + "'"};
  if (!(config.timeout_seconds > 0)) return Error{"timeout_seconds must be positive"};
  return {};
}

// The front-end's settings for this run (RunConfig is the user's view; FrontendConfig the
// front-end's, plus where the peer listens and where the queue threads go).
frontend::FrontendConfig FrontendConfigFor(const RunConfig& config, const Peer& peer,
                                           const Placement& placement) {
  frontend::FrontendConfig fc;
  fc.socket_path = peer.socket_path();
  fc.connect_timeout_ms = peer.connect_timeout_ms();
  fc.iommu = config.iommu;
  fc.mapping = frontend::ParseMapping(config.mapping).value();
  fc.page_size = config.page_size;
  fc.queue_pairs = config.queue_pairs;
  fc.ring_size = config.ring_size;
  fc.packet_size = config.packet_size;
  fc.packet_sizes = config.packet_sizes;
  fc.event_idx = config.event_idx;
  fc.mrg_rxbuf = config.mrg_rxbuf;
  fc.rx_buffer_size = config.rx_buffer_size;
  fc.packets = config.packets;
  fc.seconds = config.seconds;
  fc.burst = config.burst;
  fc.rate = config.rate;
  fc.drain = config.traffic == "drain";
  fc.warmup_packets = config.warmup_packets;
  fc.seed = config.seed;
  fc.scatter = config.scatter == "on";
  fc.straddle = config.scatter == "straddle" || config.scatter == "auto";
  fc.mem_regions = config.mem_regions;
  fc.hugetlb = config.hugepages;
  fc.flush_batch = config.flush_batch;
  fc.working_set = config.working_set;
  fc.storm_interval = config.storm_interval;
  fc.storm_burst = config.storm_burst;
  fc.progress = config.progress;
  fc.sink = config.mode == "sink";
  fc.cpus = placement.frontend;
  return fc;
}

// Hooks at the traffic window's edges: the placed threads' bindings are read back (so the
// record can say when one is not where it was planned), and counters run over the window on
// the front-end's queue threads and the peer's workers when they are in this process. Names are validated at creation (an unknown one fails the run); an
// unusable perf subsystem only costs the counter rows, with a note saying why.
class TrafficHooks {
 public:
  TrafficHooks(Result<counters::RunCounters> counters, RunRecord* rec)
      : counters_(std::move(counters)), rec_(rec) {}
  void Install(frontend::FrontendConfig* fc, const Peer* peer) {
    fc->on_traffic_start = [this, peer](const std::vector<int>& tids) {
      frontend_tids_ = tids;
      worker_tids_ = peer->WorkerTids();
      for (int tid : frontend_tids_) frontend_cpus_.push_back(topology::ThreadCpus(tid));
      for (int tid : worker_tids_) worker_cpus_.push_back(topology::ThreadCpus(tid));
      if (!counters_.ok()) return;
      for (std::size_t q = 0; q < tids.size(); ++q)
        Note(counters_->Attach(tids[q], "frontend", static_cast<int>(q)), "");
      std::vector<int> workers = peer->WorkerTids();
      for (std::size_t q = 0; q < workers.size(); ++q)
        Note(counters_->Attach(workers[q], "backend", static_cast<int>(q)), "");
      if (Status s = counters_->Start(); !s.ok()) return Note(s, "counters: ");
      counting_ = true;
    };
    fc->on_traffic_end = [this] {
      if (counting_) Note(counters_->Stop(), "counters: ");
    };
  }
  // Notes for every placed thread whose binding, read back from the kernel as traffic
  // started, is not what the placement planned (a refused binding was also logged). A thread
  // whose binding could not be read (no tid yet) is not judged.
  void CheckPlacement(const Placement& plan) const {
    for (std::size_t q = 0; q < frontend_cpus_.size() && q < plan.frontend.size(); ++q)
      if (!frontend_cpus_[q].empty() && frontend_cpus_[q] != std::vector<int>{plan.frontend[q]})
        rec_->notes.push_back("placement: front-end queue thread " + std::to_string(q) +
                              " runs on CPUs " + topology::FormatCpuList(frontend_cpus_[q]) +
                              ", not CPU " + std::to_string(plan.frontend[q]) + " as planned");
    for (std::size_t w = 0; w < worker_cpus_.size() && w < plan.backend.size(); ++w)
      if (!worker_cpus_[w].empty() && worker_cpus_[w] != plan.backend[w])
        rec_->notes.push_back("placement: backend worker " + std::to_string(w) +
                              " runs on CPUs " + topology::FormatCpuList(worker_cpus_[w]) +
                              ", not " + topology::FormatCpuList(plan.backend[w]) +
                              " as planned");
  }
  // The counters, when they counted this run's traffic window.
  const counters::RunCounters* counted() const { return counting_ ? &counters_.value() : nullptr; }

 private:
  void Note(const Status& s, const std::string& prefix) {
    if (!s.ok()) rec_->notes.push_back(prefix + s.message());
  }
  Result<counters::RunCounters> counters_;
  RunRecord* rec_;
  bool counting_ = false;
  std::vector<int> frontend_tids_, worker_tids_;
  std::vector<std::vector<int>> frontend_cpus_, worker_cpus_;  // read back at traffic start
};

PlacementRequest PlacementFor(const RunConfig& config, const PeerThreads& peer_threads) {
  PlacementRequest want;
  want.frontend_threads = config.queue_pairs;
  want.backend_threads = peer_threads.count;
  want.backend_floats_when_shared = peer_threads.float_when_shared;
  want.backend_label = peer_threads.label;
  want.frontend_cpus = config.cpus;
  want.backend_cpus = config.backend_cpus;
  return want;
}

// What the session negotiated and how the front-end laid out its buffers.
void RecordSessionContext(const frontend::FrontendConfig& fc, const frontend::FrontendResult& f,
                          RunRecord* rec) {
  rec->context["negotiated_features"] = protocol::FeatureNames(f.negotiated.features);
  rec->context["negotiated_protocol_features"] =
      protocol::ProtocolFeatureNames(f.negotiated.protocol);
  rec->context["scatter"] = fc.scatter ? "on" : fc.straddle ? "straddle" : "off";
  rec->context["event_idx"] = f.negotiated.event_idx() ? "on" : "off";
  rec->context["mrg_rxbuf"] = f.negotiated.mrg_rxbuf() ? "on" : "off";
  rec->context["rx_buffer_bytes"] = f.negotiated.mrg_rxbuf()
                                        ? std::to_string(frontend::MrgBufferBytes(fc))
                                        : "largest frame + header";
}

// Where every thread ran: "placement" names each one; "frontend_cpus" keeps its older form
// (the queue threads' CPUs in queue order); a placement that shares cores says so in a note.
void RecordPlacement(const frontend::FrontendConfig& fc, const Placement& placement,
                     const PeerThreads& peer_threads, RunRecord* rec) {
  rec->context["frontend_cpus"] = fc.cpus.empty() ? "unpinned" : absl::StrJoin(fc.cpus, ",");
  rec->context["placement"] = placement.Describe(peer_threads.label, peer_threads.per_queue);
  if (placement.shared) rec->notes.push_back("placement shares cores: " + placement.why_shared);
  // Drain traffic times the backend while the front-end watches: on one CPU they take turns.
  if (fc.drain && placement.CpuSharedByBothSides() >= 0)
    rec->notes.push_back("drain traffic with a front-end queue thread and a backend thread "
                         "pinned to one CPU: they take turns, so the drains time the "
                         "scheduler, not the backend");
}

// Why per-queue rates of this run cannot show how the datapath scales; empty when they can.
std::string ScalingCaveat(const RunConfig& config, const PeerThreads& threads,
                          const Placement& placement) {
  if (config.queue_pairs < 2) return "";
  if (threads.count && !threads.per_queue)
    return "the " + threads.label + " peer forwards every queue on one core";
  if (placement.shared)
    return std::to_string(config.queue_pairs) + " queue pairs need " +
           std::to_string(2 * config.queue_pairs + 1) +
           " cores (a front-end thread and a backend worker per pair, and the control "
           "threads) and the placement shares cores (" + std::to_string(placement.all.size()) +
           " CPUs here; see the placement note)";
  return "";
}

}  // namespace

double RunRecord::Get(const std::string& name, int queue) const {
  for (const auto& m : metrics)
    if (m.name == name && m.queue == queue && m.side != "backend") return m.value;
  for (const auto& m : metrics)
    if (m.name == name && m.queue == queue) return m.value;
  return std::nan("");
}

Result<RunRecord> RunExperiment(const RunConfig& config) {
  if (Status s = CheckConfig(config); !s.ok()) return s.error();
  Result<std::unique_ptr<Peer>> made = MakePeer(config);
  if (!made.ok()) return made.error();
  Peer& peer = **made;
  const PeerThreads peer_threads = peer.Threads();

  RunRecord rec;
  rec.config = config;
  rec.config.progress = nullptr;
  rec.config.stop = nullptr;
  rec.context = MachineContext();
  rec.context["backend"] = config.backend;
  peer.Annotate(&rec);

  Result<Placement> placement =
      PlanPlacement(PlacementFor(config, peer_threads), topology::AllowedCores());
  if (!placement.ok()) return placement.error();

  TempDir tmp;
  char tmpl[] = "/tmp/vhostlab-run-XXXXXX";
  if (!mkdtemp(tmpl)) return Error{std::string("mkdtemp: ") + std::strerror(errno)};
  tmp.path = tmpl;

  // From here on this thread is the run's control thread (see the top of the file).
  topology::ScopedThreadBinding control(placement->control);
  if (!control.status().ok()) rec.notes.push_back("placement: " + control.status().message());
  RunStop stop(config.stop, config.timeout_seconds);
  Result<counters::RunCounters> run_counters = counters::RunCounters::Create(config.counters);
  if (!run_counters.ok()) {
    if (!config.counters.empty()) return Error{"counters: " + run_counters.error().message};
    rec.notes.push_back("counters unavailable: " + run_counters.error().message);
  }
  TrafficHooks hooks(std::move(run_counters), &rec);
  if (Status s = peer.Start({tmp.path, placement->BackendWorkerCpus(), placement->control});
      !s.ok())
    return s.error();
  frontend::FrontendConfig fc = FrontendConfigFor(config, peer, *placement);
  fc.stop = stop.flag();
  hooks.Install(&fc, &peer);
  Result<frontend::FrontendResult> result = frontend::RunFrontend(fc);
  peer.Stop();
  if (!result.ok()) return Error{result.error().message + peer.ExplainFailure()};

  if (stop.TimedOut())
    rec.notes.push_back("the run hit its " + std::to_string(config.timeout_seconds) +
                        " s bound and was stopped early");
  RecordSessionContext(fc, *result, &rec);
  RecordPlacement(fc, *placement, peer_threads, &rec);
  hooks.CheckPlacement(*placement);
  peer.Report(*placement, &rec);

  const std::optional<backend::BackendStats> backend_stats = peer.Stats();
  if (backend_stats) RecordBackend(*backend_stats, &rec);
  RecordFrontend(*result, &rec);
  if (fc.sink) RecordSink(*result, backend_stats, &rec);
  if (const counters::RunCounters* counted = hooks.counted())
    RecordCounters(*counted, *result, backend_stats, &rec);
  RecordQueueScaling(config.queue_pairs, ScalingCaveat(config, peer_threads, *placement), &rec);
  return rec;
}

}  // namespace vhostlab::experiment
