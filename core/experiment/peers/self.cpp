// Peer "self": vhostlab's backend (backend::CreateBackend) in this process, on its own control
// thread and one worker thread per queue pair, listening on a socket in the run's temp dir.
// Its workers are placed by the run's policy (BackendOptions::worker_cpus), its control thread
// goes to the control CPUs, and its statistics become the record's backend rows.
#include "core/experiment/peers/peer.hpp"

#include <absl/strings/str_join.h>

#include "core/topology/cpuset.hpp"

namespace vhostlab::experiment {
namespace {

class SelfPeer final : public Peer {
 public:
  explicit SelfPeer(backend::BackendOptions options) : options_(std::move(options)) {}
  ~SelfPeer() override { Stop(); }

  PeerThreads Threads() const override { return {options_.queue_pairs, true, "backend", true}; }

  void Annotate(RunRecord* rec) const override {
    rec->context["backend_poll"] = std::string(backend::PollModeName(options_.poll)) +
                                   (options_.poll == backend::PollMode::kAdaptive
                                        ? ":" + std::to_string(options_.spin_us) + "us"
                                        : "");
  }

  Status Start(const PeerStart& start) override {
    options_.socket_path = start.run_dir + "/vhost.sock";
    options_.worker_cpus = start.thread_cpus;
    options_.control_cpus = start.control_cpus;
    Result<std::unique_ptr<backend::Backend>> be = backend::CreateBackend(options_);
    if (!be.ok()) return Error{"backend self: " + be.error().message};
    if (Status s = (*be)->Start(); !s.ok()) return Error{"backend self: " + s.message()};
    backend_ = std::move(*be);
    return {};
  }
  std::string socket_path() const override { return options_.socket_path; }
  std::vector<int> WorkerTids() const override {
    return backend_ ? backend_->WorkerTids() : std::vector<int>{};
  }
  void Stop() override {
    if (backend_ && !stopped_) {
      backend_->Stop();
      stopped_ = true;
    }
  }
  std::optional<backend::BackendStats> Stats() const override {
    if (!backend_) return std::nullopt;
    return backend_->Stats();
  }
  void Report(const Placement& placement, RunRecord* rec) const override {
    const std::vector<int> cpus = placement.BackendWorkerCpus();
    rec->context["backend_cpus"] = cpus.empty() ? "unpinned" : absl::StrJoin(cpus, ",");
  }

 private:
  backend::BackendOptions options_;
  std::unique_ptr<backend::Backend> backend_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<Peer>> MakeSelfPeer(const RunConfig& config, const std::string&) {
  backend::BackendOptions bo;
  bo.iotlb = config.iotlb;
  bo.mode = config.mode == "sink" ? backend::DeviceMode::kSink : backend::DeviceMode::kLoopback;
  bo.queue_pairs = config.queue_pairs;
  bo.serve_forever = false;
  if (Status s = backend::ParsePollMode(config.poll, &bo.poll, &bo.spin_us); !s.ok())
    return s.error();
  return std::unique_ptr<Peer>(new SelfPeer(std::move(bo)));
}

}  // namespace vhostlab::experiment
