// RunExperiment: one front-end session against one backend, as one self-describing record.
//
// Backends: "self" runs backend::CreateBackend in this process on its own threads behind a real
// Unix socket in a fresh temp dir; "dpdk" spawns dpdk-testpmd (DpdkPeer); "socket:PATH"
// connects to a backend that is already listening. The front-end's queue threads are pinned
// away from the peer where the machine allows (testpmd's lcores share CPU 0; front-end queue q
// takes the q-th CPU counted from the last one). A watchdog sets the stop flag once
// timeout_seconds pass, so a run is bounded even against a wedged peer (setup messages have
// their own reply timeouts in Session).
//
// Metrics are tidy rows (queue -1 = whole run): the front-end's own counts, the vIOMMU's
// message counts and latency percentiles (unavailable, not 0, when there were no samples), and
// the backend's statistics when the backend runs in-process.
#include "core/experiment/run.hpp"

#include <hwloc.h>
#include <perfmon/pfmlib.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "core/backend/backend.hpp"
#include "core/base/log.hpp"
#include "core/counters/run_counters.hpp"
#include "core/experiment/dpdk_peer.hpp"
#include "core/frontend/frontend.hpp"

namespace vhostlab::experiment {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string Command(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    pclose(f);
  }
  return Trim(out);
}


std::vector<int> AllowedCpus() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

double Percentile(std::vector<uint64_t> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return static_cast<double>(v[std::min(v.size() - 1, i ? i - 1 : 0)]);
}

class Recorder {
 public:
  explicit Recorder(RunRecord* r) : r_(r) {}
  void Add(const std::string& side, const std::string& name, double value, const std::string& unit,
           int queue = -1) {
    r_->metrics.push_back(Metric{queue, side, name, value, unit, true, ""});
  }
  void AddLatency(const std::string& name, const std::vector<uint64_t>& samples) {
    for (auto [suffix, p] : {std::pair{"_p50", 0.5}, std::pair{"_p99", 0.99}}) {
      Metric m{-1, "frontend", name + suffix, Percentile(samples, p), "ns", !samples.empty(), ""};
      if (samples.empty()) {
        m.note = "unavailable: no samples in this run";
      }
      r_->metrics.push_back(m);
    }
    Add("frontend", name + "_samples", static_cast<double>(samples.size()), "count");
  }

 private:
  RunRecord* r_;
};

void RecordFrontend(const frontend::FrontendResult& f, RunRecord* rec) {
  Recorder r(rec);
  const double secs = static_cast<double>(f.traffic_ns) / 1e9;
  uint64_t tx = 0, bytes = 0, seq = 0, maps = 0, unmaps = 0, bursts = 0, storm_pages = 0;
  uint64_t storm_ns = 0, warmup = 0, kicks = 0, interrupts = 0, rx_buffers = 0;
  for (const auto& q : f.queues) {
    const int i = static_cast<int>(q.queue_pair);
    tx += q.tx_packets;
    bytes += q.rx_bytes;
    seq += q.sequence_errors;
    maps += q.maps;
    unmaps += q.unmaps;
    bursts += q.storm_bursts;
    storm_pages += q.storm_pages;
    storm_ns += q.storm_ns;
    warmup += q.warmup_packets;
    kicks += q.kicks;
    interrupts += q.interrupts;
    rx_buffers += q.rx_buffers;
    r.Add("frontend", "tx_packets", static_cast<double>(q.tx_packets), "packets", i);
    r.Add("frontend", "packets", static_cast<double>(q.rx_packets), "packets", i);
    r.Add("frontend", "bytes", static_cast<double>(q.rx_bytes), "bytes", i);
    double qs = static_cast<double>(q.elapsed_ns) / 1e9;
    r.Add("frontend", "mpps", qs > 0 ? static_cast<double>(q.rx_packets) / qs / 1e6 : 0, "Mpps", i);
    r.Add("frontend", "ns_per_packet",
          q.rx_packets ? static_cast<double>(q.elapsed_ns) / static_cast<double>(q.rx_packets) : 0,
          "ns", i);
    r.Add("frontend", "drops", static_cast<double>(q.drops), "packets", i);
    r.Add("frontend", "verify_errors", static_cast<double>(q.verify_errors), "packets", i);
    r.Add("frontend", "sequence_errors", static_cast<double>(q.sequence_errors), "packets", i);
    r.Add("frontend", "dma_maps", static_cast<double>(q.maps), "count", i);
    r.Add("frontend", "dma_unmaps", static_cast<double>(q.unmaps), "count", i);
    r.Add("frontend", "storm_bursts", static_cast<double>(q.storm_bursts), "count", i);
    r.Add("frontend", "storm_pages", static_cast<double>(q.storm_pages), "pages", i);
    r.Add("frontend", "storm_ms", static_cast<double>(q.storm_ns) / 1e6, "ms", i);
    r.Add("frontend", "kicks", static_cast<double>(q.kicks), "count", i);
    r.Add("frontend", "interrupts", static_cast<double>(q.interrupts), "count", i);
    r.Add("frontend", "rx_buffers", static_cast<double>(q.rx_buffers), "count", i);
    if (!q.error.empty()) rec->notes.push_back("queue pair " + std::to_string(i) + ": " + q.error);
  }
  const uint64_t rx = f.rx_packets();
  r.Add("run", "seconds", secs, "s");
  r.Add("run", "setup_ms", static_cast<double>(f.setup_ns) / 1e6, "ms");
  r.Add("run", "warmup_ms", static_cast<double>(f.warmup_ns) / 1e6, "ms");
  r.Add("frontend", "warmup_packets", static_cast<double>(warmup), "packets");
  r.Add("frontend", "tx_packets", static_cast<double>(tx), "packets");
  r.Add("frontend", "packets", static_cast<double>(rx), "packets");
  r.Add("frontend", "bytes", static_cast<double>(bytes), "bytes");
  r.Add("frontend", "mpps", secs > 0 ? static_cast<double>(rx) / secs / 1e6 : 0, "Mpps");
  r.Add("frontend", "ns_per_packet",
        rx ? static_cast<double>(f.traffic_ns) / static_cast<double>(rx) : 0, "ns");
  r.Add("frontend", "drops", static_cast<double>(f.drops()), "packets");
  r.Add("frontend", "verify_errors", static_cast<double>(f.verify_errors() - seq), "packets");
  r.Add("frontend", "sequence_errors", static_cast<double>(seq), "packets");
  r.Add("frontend", "dma_maps", static_cast<double>(maps), "count");
  r.Add("frontend", "dma_unmaps", static_cast<double>(unmaps), "count");
  r.Add("frontend", "storm_bursts", static_cast<double>(bursts), "count");
  r.Add("frontend", "storm_pages", static_cast<double>(storm_pages), "pages");
  r.Add("frontend", "storm_ms", static_cast<double>(storm_ns) / 1e6, "ms");
  // Notifications as the driver sees them: kick eventfd writes it made and call eventfd signals
  // it found (it polls), per packet sent, so every backend is measured the same way.
  r.Add("frontend", "kicks", static_cast<double>(kicks), "count");
  r.Add("frontend", "interrupts", static_cast<double>(interrupts), "count");
  if (tx) {
    r.Add("frontend", "kicks_per_packet", static_cast<double>(kicks) / static_cast<double>(tx),
          "ratio");
    r.Add("frontend", "interrupts_per_packet",
          static_cast<double>(interrupts) / static_cast<double>(tx), "ratio");
  }
  // Used receive entries per verified packet: 1, or more with MRG_RXBUF and large frames.
  r.Add("frontend", "rx_buffers", static_cast<double>(rx_buffers), "count");
  r.Add("frontend", "event_idx", f.negotiated.event_idx() ? 1 : 0, "bool");
  r.Add("frontend", "mrg_rxbuf", f.negotiated.mrg_rxbuf() ? 1 : 0, "bool");
  r.Add("frontend", "iotlb_updates", static_cast<double>(f.viommu.updates), "messages");
  r.Add("frontend", "iotlb_miss_updates", static_cast<double>(f.viommu.miss_updates), "messages");
  r.Add("frontend", "iotlb_invalidates", static_cast<double>(f.viommu.invalidates), "messages");
  r.Add("frontend", "misses_received", static_cast<double>(f.misses_received), "messages");
  r.Add("frontend", "misses_served", static_cast<double>(f.viommu.misses_served), "messages");
  r.Add("frontend", "misses_unmapped", static_cast<double>(f.viommu.misses_unmapped), "messages");
  r.Add("frontend", "backend_channel_errors", static_cast<double>(f.backend_channel_errors),
        "messages");
  r.AddLatency("update_ack_ns", f.viommu.update_ack_ns);
  r.AddLatency("invalidate_ack_ns", f.viommu.invalidate_ack_ns);
  r.AddLatency("miss_service_ns", f.viommu.miss_service_ns);
  r.Add("frontend", "guest_hugetlb", f.hugetlb ? 1 : 0, "bool");
  if (!f.notes.empty()) rec->notes.push_back(f.notes);
}

void RecordBackend(const backend::BackendStats& b, RunRecord* rec) {
  Recorder r(rec);
  r.Add("backend", "messages", static_cast<double>(b.messages), "messages");
  r.Add("backend", "message_errors", static_cast<double>(b.message_errors), "messages");
  r.Add("backend", "iotlb_updates", static_cast<double>(b.iotlb_updates), "messages");
  r.Add("backend", "iotlb_invalidates", static_cast<double>(b.iotlb_invalidates), "messages");
  r.Add("backend", "misses_sent", static_cast<double>(b.misses_sent), "messages");
  if (b.iotlb_updates) {
    r.Add("backend", "update_service_ns_p50", b.update_service_p50_ns, "ns");
    r.Add("backend", "update_service_ns_p99", b.update_service_p99_ns, "ns");
  }
  if (b.iotlb_invalidates) {
    r.Add("backend", "invalidate_service_ns_p50", b.invalidate_service_p50_ns, "ns");
    r.Add("backend", "invalidate_service_ns_p99", b.invalidate_service_p99_ns, "ns");
  }
  uint64_t drops = 0, kicks = 0, interrupts = 0, packets = 0;
  for (const auto& q : b.queues) {
    const int i = static_cast<int>(q.queue_pair);
    drops += q.drops;
    r.Add("backend", "tx_packets", static_cast<double>(q.tx_packets), "packets", i);
    r.Add("backend", "rx_packets", static_cast<double>(q.rx_packets), "packets", i);
    r.Add("backend", "translations", static_cast<double>(q.translations), "count", i);
    r.Add("backend", "cache_hits", static_cast<double>(q.cache_hits), "count", i);
    r.Add("backend", "iotlb_misses", static_cast<double>(q.iotlb_misses), "count", i);
    r.Add("backend", "retries", static_cast<double>(q.retries), "count", i);
    r.Add("backend", "access_fails", static_cast<double>(q.access_fails), "count", i);
    r.Add("backend", "drops", static_cast<double>(q.drops), "packets", i);
    r.Add("backend", "errors", static_cast<double>(q.errors), "count", i);
    r.Add("backend", "kicks", static_cast<double>(q.kicks), "count", i);
    r.Add("backend", "interrupts", static_cast<double>(q.rx_interrupts + q.tx_interrupts),
          "count", i);
    kicks += q.kicks;
    interrupts += q.rx_interrupts + q.tx_interrupts;
    packets += q.rx_packets ? q.rx_packets : q.tx_packets;
  }
  r.Add("backend", "drops", static_cast<double>(drops), "packets");
  // Notifications the device took and gave (kick eventfd wake-ups, call eventfd signals), per
  // packet: what EVENT_IDX and polling save.
  if (packets) {
    r.Add("backend", "kicks_per_packet", static_cast<double>(kicks) / packets, "ratio");
    r.Add("backend", "interrupts_per_packet", static_cast<double>(interrupts) / packets, "ratio");
  }
}

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

}  // namespace

std::map<std::string, std::string> MachineContext() {
  std::map<std::string, std::string> c;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      c["cpu_model"] = Trim(line.substr(line.find(':') + 1));
      break;
    }
  }
  c["cpus_online"] = std::to_string(sysconf(_SC_NPROCESSORS_ONLN));
  struct utsname u;
  if (uname(&u) == 0) {
    c["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.version;
    c["machine"] = u.machine;
    c["hostname"] = u.nodename;
  }
#if defined(__clang__)
  c["compiler"] = std::string("clang ") + __VERSION__;
#elif defined(__GNUC__)
  c["compiler"] = std::string("gcc ") + __VERSION__;
#else
  c["compiler"] = __VERSION__;
#endif
#ifdef VHOSTLAB_BUILD_TYPE
  c["build_type"] = VHOSTLAB_BUILD_TYPE;
#endif
#ifdef NDEBUG
  c["assertions"] = "off";
#else
  c["assertions"] = "on";
#endif
  c["vhostlab_version"] = VHOSTLAB_VERSION;
  std::string sha = Command("git -C '" VHOSTLAB_SOURCE_DIR "' rev-parse HEAD 2>/dev/null");
  c["git_sha"] = sha.empty() ? "unknown" : sha;
  if (!sha.empty())
    c["git_dirty"] = Command("git -C '" VHOSTLAB_SOURCE_DIR
                             "' status --porcelain --untracked-files=no 2>/dev/null")
                             .empty()
                         ? "no"
                         : "yes";
  unsigned hw = hwloc_get_api_version();
  c["hwloc_api_version"] = std::to_string(hw >> 16) + "." + std::to_string((hw >> 8) & 0xff) + "." +
                           std::to_string(hw & 0xff);
  c["tomlplusplus_version"] = std::to_string(TOML_LIB_MAJOR) + "." +
                              std::to_string(TOML_LIB_MINOR) + "." + std::to_string(TOML_LIB_PATCH);
  c["libpfm_api_version"] =
      std::to_string(LIBPFM_VERSION >> 16) + "." + std::to_string(LIBPFM_VERSION & 0xffff);
  // liburcu has no version macro: the Debian packages the build used say it (and DPDK's).
  std::string packages = Command(
      "dpkg-query -W -f='${Package}=${Version} ' liburcu-dev libhwloc-dev libpfm4-dev "
      "libtomlplusplus-dev dpdk 2>/dev/null");
  if (!packages.empty()) c["debian_packages"] = packages;
  char when[64];
  std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  c["date_utc"] = when;
  return c;
}

double RunRecord::Get(const std::string& name, int queue) const {
  for (const auto& m : metrics)
    if (m.name == name && m.queue == queue && m.side != "backend") return m.value;
  for (const auto& m : metrics)
    if (m.name == name && m.queue == queue) return m.value;
  return std::nan("");
}

Result<RunRecord> RunExperiment(const RunConfig& config) {
  Result<frontend::Mapping> mapping = frontend::ParseMapping(config.mapping);
  if (!mapping.ok()) return mapping.error();
  const bool is_self = config.backend == "self";
  const bool is_dpdk = config.backend == "dpdk";
  const bool is_socket = config.backend.rfind("socket:", 0) == 0;
  if (!is_self && !is_dpdk && !is_socket)
    return Error{"unknown backend '" + config.backend + "' (self, dpdk or socket:PATH)"};
  if (config.scatter != "auto" && config.scatter != "on" && config.scatter != "off")
    return Error{"scatter must be auto, on or off, not '" + config.scatter + "'"};
  if (config.mode != "loopback" && config.mode != "sink")
    return Error{"mode must be loopback or sink, not '" + config.mode + "'"};
  const bool sink = config.mode == "sink";
  if (sink && is_dpdk)
    return Error{"sink mode needs a sink backend: testpmd's io forwarding always loops back"};
  if (!(config.timeout_seconds > 0)) return Error{"timeout_seconds must be positive"};

  RunRecord rec;
  rec.config = config;
  rec.config.progress = nullptr;
  rec.config.stop = nullptr;
  rec.context = MachineContext();

  TempDir tmp;
  char tmpl[] = "/tmp/vhostlab-run-XXXXXX";
  if (!mkdtemp(tmpl)) return Error{std::string("mkdtemp: ") + std::strerror(errno)};
  tmp.path = tmpl;

  frontend::FrontendConfig fc;
  fc.socket_path = is_socket ? config.backend.substr(7) : tmp.path + "/vhost.sock";
  // Our own peers are listening before we connect; an external one gets a short grace period.
  fc.connect_timeout_ms = is_socket ? 3000 : 10000;
  fc.iommu = config.iommu;
  fc.mapping = *mapping;
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
  fc.warmup_packets = config.warmup_packets;
  fc.seed = config.seed;
  fc.scatter = config.scatter == "on" || (config.scatter == "auto" && !is_dpdk);
  fc.mem_regions = config.mem_regions;
  fc.hugetlb = config.hugepages;
  fc.flush_batch = config.flush_batch;
  fc.working_set = config.working_set;
  fc.storm_interval = config.storm_interval;
  fc.storm_burst = config.storm_burst;
  fc.progress = config.progress;
  fc.sink = sink;
  if (is_dpdk && config.scatter == "on")
    rec.notes.push_back(
        "scatter on with DPDK: its IOTLB joins IOVA-adjacent entries without "
        "checking their uaddrs, so verify errors are expected");

  std::vector<int> cpus = AllowedCpus();
  const int peer_cpu = cpus.empty() ? 0 : cpus.front();
  if (!config.cpus.empty()) {
    fc.cpus = config.cpus;
  } else if (!cpus.empty()) {
    // Queue q on the q-th CPU from the top: away from testpmd (first CPU) when there are two
    // or more.
    for (uint32_t q = 0; q < config.queue_pairs; ++q) {
      std::size_t n = cpus.size();
      std::size_t pick = (n - 1 - q % n);
      if (is_dpdk && n > 1 && cpus[pick] == peer_cpu) pick = n - 1;
      fc.cpus.push_back(cpus[pick]);
    }
  }

  std::atomic<bool> stop{false};
  fc.stop = &stop;
  // Forward an external stop into our flag.
  std::thread forward;
  std::atomic<bool> forward_done{false};
  if (config.stop) {
    forward = std::thread([&] {
      while (!forward_done.load()) {
        if (config.stop->load()) stop.store(true);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  struct JoinOnExit {
    std::thread& t;
    std::atomic<bool>& done;
    ~JoinOnExit() {
      done.store(true);
      if (t.joinable()) t.join();
    }
  } join_forward{forward, forward_done};
  Watchdog watchdog(&stop, config.timeout_seconds);

  // Counters over the traffic window: the front-end's queue threads and, for the in-process
  // backend, its queue workers. Names are validated here (an unknown one fails the run); an
  // unusable perf subsystem only costs the counter rows, with a note saying why.
  Result<counters::RunCounters> run_counters = counters::RunCounters::Create(config.counters);
  if (!run_counters.ok()) {
    if (!config.counters.empty()) return Error{"counters: " + run_counters.error().message};
    rec.notes.push_back("counters unavailable: " + run_counters.error().message);
  }
  backend::Backend* live_backend = nullptr;
  bool counting = false;
  // The in-process backend's workers stay where the scheduler puts them: pinning them away from
  // the front-end (one core each) measured 2x slower on the 2-vCPU VMs here, where the worker
  // sleeps on its kick eventfd when idle and each cross-core wake-up is an IPI (a VM exit).
  fc.on_traffic_start = [&](const std::vector<int>& tids) {
    if (!run_counters.ok()) return;
    for (std::size_t q = 0; q < tids.size(); ++q)
      if (Status s = run_counters->Attach(tids[q], "frontend", static_cast<int>(q)); !s.ok())
        rec.notes.push_back(s.message());
    if (live_backend) {
      std::vector<int> workers = live_backend->WorkerTids();
      for (std::size_t q = 0; q < workers.size(); ++q)
        if (Status s = run_counters->Attach(workers[q], "backend", static_cast<int>(q)); !s.ok())
          rec.notes.push_back(s.message());
    }
    if (Status s = run_counters->Start(); !s.ok()) {
      rec.notes.push_back("counters: " + s.message());
      return;
    }
    counting = true;
  };
  fc.on_traffic_end = [&] {
    if (counting) {
      if (Status s = run_counters->Stop(); !s.ok()) rec.notes.push_back("counters: " + s.message());
    }
  };

  rec.context["backend"] = config.backend;
  Result<frontend::FrontendResult> result = Error{"not run"};
  std::optional<backend::BackendStats> backend_stats;
  if (is_self) {
    backend::BackendOptions bo;
    bo.socket_path = fc.socket_path;
    bo.iotlb = config.iotlb;
    bo.mode = sink ? backend::DeviceMode::kSink : backend::DeviceMode::kLoopback;
    bo.queue_pairs = config.queue_pairs;
    bo.serve_forever = false;
    if (Status s = backend::ParsePollMode(config.poll, &bo.poll, &bo.spin_us); !s.ok())
      return s.error();
    rec.context["backend_poll"] =
        std::string(backend::PollModeName(bo.poll)) +
        (bo.poll == backend::PollMode::kAdaptive ? ":" + std::to_string(bo.spin_us) + "us" : "");
    Result<std::unique_ptr<backend::Backend>> be = backend::CreateBackend(bo);
    if (!be.ok()) return Error{"backend self: " + be.error().message};
    if (Status s = (*be)->Start(); !s.ok()) return Error{"backend self: " + s.message()};
    live_backend = be->get();
    result = frontend::RunFrontend(fc);
    (*be)->Stop();
    live_backend = nullptr;
    if (result.ok()) {
      backend_stats = (*be)->Stats();
      RecordBackend(*backend_stats, &rec);
    }
  } else if (is_dpdk) {
    DpdkOptions o;
    o.binary = config.dpdk_testpmd;
    o.socket_path = fc.socket_path;
    o.log_path = tmp.path + "/testpmd.log";
    o.file_prefix = "vhostlab-" + std::to_string(getpid()) + "-" +
                    std::filesystem::path(tmp.path).filename().string().substr(12);
    o.queues = config.queue_pairs;
    o.cpu = peer_cpu;
    Result<std::unique_ptr<DpdkPeer>> peer = DpdkPeer::Start(o);
    if (!peer.ok()) return Error{"backend dpdk: " + peer.error().message};
    result = frontend::RunFrontend(fc);
    std::string version = (*peer)->Version();
    if (!version.empty()) rec.context["dpdk_version"] = version;
    if (!result.ok()) {
      std::string tail = (*peer)->LogTail(1500);
      (*peer)->Stop();
      return Error{result.error().message + "\n--- dpdk-testpmd output (tail) ---\n" + tail};
    }
    (*peer)->Stop();
  } else {
    result = frontend::RunFrontend(fc);
  }
  if (!result.ok()) return result.error();
  if (stop.load() && !(config.stop && config.stop->load()))
    rec.notes.push_back("the run hit its " + std::to_string(config.timeout_seconds) +
                        " s bound and was stopped early");
  rec.context["negotiated_features"] = protocol::FeatureNames(result->negotiated.features);
  rec.context["negotiated_protocol_features"] =
      protocol::ProtocolFeatureNames(result->negotiated.protocol);
  rec.context["scatter"] = fc.scatter ? "on" : "off";
  rec.context["event_idx"] = result->negotiated.event_idx() ? "on" : "off";
  rec.context["mrg_rxbuf"] = result->negotiated.mrg_rxbuf() ? "on" : "off";
  rec.context["rx_buffer_bytes"] = result->negotiated.mrg_rxbuf()
                                       ? std::to_string(frontend::MrgBufferBytes(fc))
                                       : "largest frame + header";
  std::string cpu_list;
  for (int c : fc.cpus) cpu_list += (cpu_list.empty() ? "" : ",") + std::to_string(c);
  rec.context["frontend_cpus"] = cpu_list.empty() ? "unpinned" : cpu_list;
  if (is_dpdk) rec.context["dpdk_cpu"] = std::to_string(peer_cpu);
  if (is_self) rec.context["backend_cpus"] = "unpinned";
  RecordFrontend(*result, &rec);
  if (sink) {
    // Sink mode cannot check bytes on the way back; the in-process backend's checksum of every
    // frame byte it read must equal the sum of what we sent.
    Recorder r(&rec);
    r.Add("frontend", "sent_byte_sum", static_cast<double>(result->sent_byte_sum()), "sum");
    if (backend_stats) {
      uint64_t got = 0;
      for (const auto& q : backend_stats->queues) got += q.checksum;
      const bool match = got == result->sent_byte_sum();
      r.Add("backend", "checksum", static_cast<double>(got), "sum");
      r.Add("run", "sink_checksum_match", match ? 1 : 0, "bool");
      if (!match) {
        for (auto& m : rec.metrics)
          if (m.side == "frontend" && m.name == "verify_errors" && m.queue == -1) m.value += 1;
        rec.notes.push_back(
            "sink checksum mismatch: the backend read bytes other than those "
            "sent");
      }
    } else {
      rec.notes.push_back("sink mode against an external backend: bytes not verified");
    }
  }
  if (counting) {
    counters::RunCounters::WorkMap work;
    for (const auto& q : result->queues)
      work[{"frontend", static_cast<int>(q.queue_pair)}].packets =
          static_cast<double>(q.rx_packets);
    if (backend_stats)
      for (const auto& q : backend_stats->queues)
        work[{"backend", static_cast<int>(q.queue_pair)}] = {static_cast<double>(q.tx_packets),
                                                             static_cast<double>(q.translations)};
    Result<std::vector<counters::CounterRow>> rows = run_counters->Rows(work);
    if (!rows.ok()) {
      rec.notes.push_back("counters: " + rows.error().message);
    } else {
      for (const auto& row : *rows)
        rec.metrics.push_back(Metric{row.queue, row.side, "counter:" + row.name,
                                     row.available ? row.value : std::nan(""), row.unit,
                                     row.available, row.note});
    }
  }
  return rec;
}

}  // namespace vhostlab::experiment
