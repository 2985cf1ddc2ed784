// Peer "dpdk": DPDK's vhost PMD in a dpdk-testpmd process we spawn (DpdkPeer in
// core/experiment/dpdk_peer.hpp manages the process), io forwarding, iommu-support=1. Its two
// EAL lcores busy-poll and share one CPU, which the run's placement pins (the bottom one when
// cores are few, as before). testpmd forwards every queue on that one core, so per-queue rates
// against it show no scaling. Its IOTLB joins IOVA-adjacent entries without checking uaddrs,
// so `--scatter on` (non-adjacent guest pages) shows verify errors; "auto" (straddle) is fine.
#include <unistd.h>

#include <filesystem>

#include "core/experiment/dpdk_peer.hpp"
#include "core/experiment/peers/peer.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::experiment {
namespace {

class TestpmdPeer final : public Peer {
 public:
  explicit TestpmdPeer(const RunConfig& config) : config_(config) {}

  PeerThreads Threads() const override { return {1, false, "testpmd", false}; }
  void Annotate(RunRecord* rec) const override {
    if (config_.scatter == "on")
      rec->notes.push_back(
          "scatter on with DPDK: its IOTLB joins IOVA-adjacent entries without "
          "checking their uaddrs, so verify errors are expected");
  }

  Status Start(const PeerStart& start) override {
    DpdkOptions o;
    o.binary = config_.dpdk_testpmd;
    o.socket_path = start.run_dir + "/vhost.sock";
    o.log_path = start.run_dir + "/testpmd.log";
    // Unique per run: the pid and the temp dir's random suffix ("vhostlab-run-XXXXXX").
    o.file_prefix = "vhostlab-" + std::to_string(getpid()) + "-" +
                    std::filesystem::path(start.run_dir).filename().string().substr(12);
    o.queues = config_.queue_pairs;
    if (!start.thread_cpus.empty()) {
      o.cpu = start.thread_cpus.front();
    } else {
      const std::vector<int> cpus = topology::AllowedCpus();
      o.cpu = cpus.empty() ? 0 : cpus.front();
    }
    cpu_ = o.cpu;
    socket_path_ = o.socket_path;
    Result<std::unique_ptr<DpdkPeer>> peer = DpdkPeer::Start(o);
    if (!peer.ok()) return Error{"backend dpdk: " + peer.error().message};
    peer_ = std::move(*peer);
    return {};
  }
  std::string socket_path() const override { return socket_path_; }
  void Stop() override {
    if (peer_) peer_->Stop();
  }
  std::string ExplainFailure() const override {
    return peer_ ? "\n--- dpdk-testpmd output (tail) ---\n" + peer_->LogTail(1500) : "";
  }
  void Report(const Placement&, RunRecord* rec) const override {
    if (!peer_) return;
    std::string version = peer_->Version();
    if (!version.empty()) rec->context["dpdk_version"] = version;
    rec->context["dpdk_cpu"] = std::to_string(cpu_);
  }

 private:
  RunConfig config_;
  std::unique_ptr<DpdkPeer> peer_;
  std::string socket_path_;
  int cpu_ = 0;
};

}  // namespace

Result<std::unique_ptr<Peer>> MakeDpdkPeer(const RunConfig& config, const std::string&) {
  if (config.mode == "sink")
    return Error{"sink mode needs a sink backend: testpmd's io forwarding always loops back"};
  return std::unique_ptr<Peer>(new TestpmdPeer(config));
}

}  // namespace vhostlab::experiment
