// One experiment run: a front-end driving a backend with a workload, producing one
// self-describing record (config + machine context + tidy metrics). Used by `vhostlab run`,
// by the Python module (`vhostlab.run(...)`) and by the main comparison.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/experiment/machine_context.hpp"

namespace vhostlab::experiment {

struct RunConfig {
  std::string profile = "adhoc";    // profile name, when the run came from profiles/*.toml
  std::string backend = "self";     // self | dpdk | socket:PATH
  std::string iotlb = "hash";       // design name (backend self only); iotlb::kDefaultDesign
  std::string poll = "adaptive";    // backend self: busy | adaptive[:US] | interrupt
  bool iommu = true;
  std::string mapping = "static";  // static | lazy | strict | cold
  uint64_t page_size = 4096;       // 4096 or 2 MiB
  uint64_t packets = 0;            // per run; 0 = use `seconds`
  double seconds = 0;
  // The front-end's traffic runner: packets per queue posted per pass at most (1..4096), a
  // target rate in packets/s per queue (0: open loop), untimed packets per queue first.
  uint32_t burst = 32;
  uint64_t rate = 0;
  // stream: the ring kept full, Mpps of the whole loop; drain: whole rings posted and drained
  // by the backend alone, Mpps of the backend's busy time (the front-end waits meanwhile).
  std::string traffic = "stream";
  uint64_t warmup_packets = 0;
  uint32_t queue_pairs = 1;
  uint32_t ring_size = 256;
  uint32_t packet_size = 64;      // bytes of frame (virtio-net header excluded)
  // A packet-size mix (frame seq is packet_sizes[seq % n] bytes, each 30..9000); empty: every
  // frame is packet_size bytes.
  std::vector<uint32_t> packet_sizes;
  // Optional virtio features the front-end acks when the backend offers them.
  bool event_idx = true;        // VIRTIO_RING_F_EVENT_IDX
  bool mrg_rxbuf = true;        // VIRTIO_NET_F_MRG_RXBUF
  uint32_t rx_buffer_size = 0;  // MRG_RXBUF: bytes per receive buffer; 0 = 1536 + 12 (Linux)
  std::string mode = "loopback";  // loopback | sink (backend self)
  uint64_t seed = 1;
  std::vector<std::string> counters;  // event names for the counter collector; empty = default
  // Front-end knobs (defaults suit the main comparison).
  std::string scatter = "auto";  // auto | on | straddle | off: on = IOVA-contiguous buffers
                                 // over non-adjacent guest pages; straddle = half the buffers
                                 // cross a page, pages in IOVA order; auto = straddle, for
                                 // every peer (one layout for every row of a comparison)
  uint32_t mem_regions = 2;      // guest memory regions in SET_MEM_TABLE
  bool hugepages = false;        // guest memory on 2 MiB hugetlb pages when available
  uint32_t flush_batch = 256;    // lazy mapping: windows per deferred invalidation batch
  uint64_t working_set = 0;      // bytes each queue pair's buffers spread over; 0 = the ring's
  uint64_t storm_interval = 0;   // INVALIDATE storm: packets per queue between bursts; 0 = none
  uint32_t storm_burst = 256;    // INVALIDATE storm: pages invalidated and remapped per burst
  std::vector<int> cpus;         // front-end queue threads' CPUs; empty = automatic
  std::vector<int> backend_cpus; // self: workers' CPUs; dpdk: testpmd's CPU; empty = automatic
  double timeout_seconds = 120;  // whole-run bound (setup + traffic + teardown)
  std::string dpdk_testpmd = "dpdk-testpmd";  // backend dpdk: the binary to spawn
  // Optional: called from the run's control thread with progress in [0, 1].
  std::function<void(double)> progress;
  // Optional: set to true from elsewhere to stop the run early (results stay valid).
  std::atomic<bool>* stop = nullptr;
};

// One row of the tidy result: queue -1 means the whole run.
struct Metric {
  int queue = -1;
  std::string side;  // "frontend" | "backend" | "run"
  std::string name;
  double value = 0;
  std::string unit;
  bool available = true;  // false: value meaningless, see note (e.g. "unavailable: no PMU")
  std::string note;
};

struct RunRecord {
  static constexpr int kSchemaVersion = 1;
  RunConfig config;
  std::map<std::string, std::string> context;  // machine, compiler, git sha, build type, ...
  std::vector<Metric> metrics;
  std::vector<std::string> notes;  // fallbacks taken, queues that stopped early, peer warnings
  // Convenience lookup of a whole-run metric; NaN when absent.
  double Get(const std::string& name, int queue = -1) const;
  std::string ToJson() const;
};

Result<RunRecord> RunExperiment(const RunConfig& config);

}  // namespace vhostlab::experiment
