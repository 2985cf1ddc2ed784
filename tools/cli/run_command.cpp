// `vhostlab run`: one front-end session against one backend, printing a summary (and the full
// record as JSON with --json). Exit status: 0 when every packet came back byte-identical and
// none was dropped; 1 when data verification failed or packets were dropped; 2 for usage
// errors; 3 when the run could not be set up.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "core/backend/backend.hpp"
#include "core/base/log.hpp"
#include "core/experiment/profile.hpp"
#include "core/experiment/run.hpp"
#include "core/topology/cpuset.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

void Help(FILE* out) {
  std::fprintf(
      out,
      "usage: vhostlab run [--backend self|dpdk|socket:PATH] [--iotlb DESIGN] [--iommu on|off]\n"
      "                    [--mapping static|lazy|strict|cold] [--page-size 4k|2m]\n"
      "                    [--packets N | --seconds S] [--queues N] [--profile FILE|NAME]\n"
      "                    [--json FILE] [more options below]\n"
      "\n"
      "Runs vhostlab's front-end (it plays QEMU and the guest's virtio-net driver) against a\n"
      "vhost-user backend over a real Unix socket: guest memory in memfd regions, an emulated\n"
      "vIOMMU that sends IOTLB UPDATE/INVALIDATE and answers MISSes, numbered frames sent on\n"
      "each transmit queue and every received byte checked. Prints packets, Mpps, IOTLB\n"
      "traffic, drops and the verification result.\n"
      "\n"
      "options (defaults in brackets; a --profile sets the defaults, flags override it):\n"
      "  --backend B        [self] self: vhostlab's backend in this process (own threads, real\n"
      "                     socket in a temp dir); dpdk: spawn dpdk-testpmd with DPDK's vhost\n"
      "                     PMD (iommu-support=1, io forwarding); socket:PATH: connect to a\n"
      "                     backend already listening on PATH (e.g. `vhostlab backend`).\n"
      "  --iotlb DESIGN     [hash] IOTLB design of the self backend; available:\n"
      "                     %s.\n"
      "  --iommu on|off     [on] negotiate VIRTIO_F_IOMMU_PLATFORM: rings and buffers are IOVAs\n"
      "                     translated through the backend's device IOTLB.\n"
      "  --mapping M        [static] how the guest maps DMA: static (everything mapped before\n"
      "                     traffic), lazy (map per buffer, batched deferred invalidation like\n"
      "                     Linux's flush queue), strict (map before, unmap + INVALIDATE after\n"
      "                     every buffer), cold (nothing pushed but each used ring's page: the\n"
      "                     backend's MISSes drive every UPDATE, as with QEMU).\n"
      "  --page-size P      [4k] IOMMU page size: 4k or 2m (one IOTLB entry per page).\n"
      "  --packets N        [200000] packets to send (over all queue pairs).\n"
      "  --seconds S        run for S seconds instead of a packet count.\n"
      "  --queues N         [1] queue pairs (MQ), one pinned front-end thread each.\n"
      "  --ring-size N      [256] descriptors per ring (power of two, 8..4096).\n"
      "  --packet-size N    [64] frame bytes (virtio-net header excluded), 30..9000.\n"
      "  --packet-sizes L   a packet-size mix instead, e.g. 64,1500,9000: frame seq is\n"
      "                     L[seq %% n] bytes, each 30..9000 (with MRG_RXBUF, frames larger\n"
      "                     than a receive buffer arrive across several).\n"
      "  --event-idx on|off [on] ack VIRTIO_RING_F_EVENT_IDX when the backend offers it: the\n"
      "                     driver kicks only when avail_event asks and leaves used_event\n"
      "                     behind while it polls (off: used->flags / avail->flags).\n"
      "  --mrg-rxbuf on|off [on] ack VIRTIO_NET_F_MRG_RXBUF when offered: receive buffers of\n"
      "                     --rx-buffer-size bytes, a larger frame spans several (num_buffers).\n"
      "                     off: every receive buffer holds the largest frame.\n"
      "  --rx-buffer-size N [1548] MRG_RXBUF: bytes of each receive buffer, header included\n"
      "                     (1536 + 12, Linux's smallest mergeable buffer), 64..65536.\n"
      "  --seed N           [1] seed of the frame contents.\n"
      "  --poll P           [adaptive] how the self backend's workers wait: adaptive[:US] (poll\n"
      "                     US microseconds after the last work, 30 by default, with kicks\n"
      "                     suppressed, then sleep), busy (never sleep), interrupt (sleep at\n"
      "                     once). See `vhostlab backend --help`.\n"
      "  --mode M           [loopback] loopback: every frame comes back and is checked byte\n"
      "                     for byte; sink: the backend only consumes (self or socket:PATH\n"
      "                     running `vhostlab backend --mode sink`); with self, its checksum\n"
      "                     of every byte read must equal the sum of the bytes sent.\n"
      "  --scatter auto|on|off  [auto] place buffers on non-adjacent guest pages behind\n"
      "                     IOVA-contiguous mappings, half of them crossing an IOTLB entry.\n"
      "                     auto = on, except off for dpdk (DPDK 22.11 joins IOVA-adjacent\n"
      "                     entries without checking uaddrs; on shows that as verify errors).\n"
      "  --regions N        [2] guest memory regions (memfds) in SET_MEM_TABLE.\n"
      "  --hugepages        back guest memory with 2 MiB hugetlb pages (falls back to 4 KiB\n"
      "                     pages with a warning when the kernel has none reserved).\n"
      "  --flush-batch N    [256] lazy mapping: buffers per deferred invalidation batch.\n"
      "  --working-set SIZE [0] spread each queue pair's buffers over SIZE bytes of guest\n"
      "                     memory (e.g. 256m = 64 Ki 4 KiB pages, 1g at most; 0: only the\n"
      "                     ring's own buffers): posts fill the pages in a seeded random\n"
      "                     order, so translations cover the whole working set.\n"
      "  --storm-interval N [0] INVALIDATE storm (static or cold mapping): every N packets\n"
      "                     per queue, invalidate --storm-burst idle buffer pages (one acked\n"
      "                     INVALIDATE each) and map their IOVAs again onto other guest pages,\n"
      "                     as a guest reusing freed IOVAs does. 0: no storm.\n"
      "  --storm-burst N    [256] pages per storm burst, 1..4096 (256 = Linux's flush queue).\n"
      "  --cpus LIST        front-end queue threads' CPUs, e.g. 1 or 0,1 or 2-5 (hwloc list\n"
      "                     or 0x mask; queue q takes the q-th, wrapping) [automatic: from\n"
      "                     the last core down, away from the backend's and testpmd's].\n"
      "  --backend-cpus LIST  backend self: its workers' CPUs; dpdk: testpmd's lcores' CPU (the\n"
      "                     first); same syntax [automatic: from the first core up when every\n"
      "                     thread can have its own core and one is left for the control\n"
      "                     threads; otherwise self's workers float and testpmd takes the\n"
      "                     first CPU]. socket:PATH backends place their own threads.\n"
      "                     Each record's context says where every thread ran (placement).\n"
      "  --timeout S        [120] bound on the whole run; it is stopped (not failed) after S.\n"
      "  --testpmd PATH     [dpdk-testpmd] the testpmd binary for --backend dpdk.\n"
      "  --counters LIST    events counted on every queue thread over the traffic window,\n"
      "                     comma-separated [the collector's default set; `vhostlab counters`\n"
      "                     lists what this machine can count]. Rows go to the JSON record.\n"
      "  --profile P        load defaults from a TOML profile (a path, or NAME for\n"
      "                     profiles/NAME.toml); a profile with a [sweep] runs every point.\n"
      "  --json FILE        write the full record(s) (config, machine context, tidy metrics) as\n"
      "                     JSON; with several runs, a JSON array.\n"
      "  --verbose/--quiet  more / less logging on stderr.\n"
      "\n"
      "exit status: 0 all packets verified and none dropped; 1 verification failed or drops;\n"
      "2 usage error; 3 the run could not be set up (the message says why).\n",
      DesignNamesJoined().c_str());
}

// The front-end's bounds (RunFrontend validates them too; here they are usage errors).
constexpr uint64_t kMaxWorkingSet = 1ull << 30;
constexpr uint64_t kMaxStormInterval = 1ull << 32;
constexpr uint64_t kMaxStormBurst = 4096;

struct Overrides {
  std::vector<std::pair<std::string, std::string>> kv;  // applied in order after the profile
};

int Usage(const std::string& why) {
  std::fprintf(stderr, "vhostlab run: %s (see vhostlab run --help)\n", why.c_str());
  return 2;
}

// Applies one command-line option to a RunConfig; an error message on a bad value.
std::string Apply(experiment::RunConfig& c, const std::string& k, const std::string& v) {
  uint64_t n = 0;
  if (k == "--backend")
    c.backend = v;
  else if (k == "--iotlb")
    c.iotlb = v;
  else if (k == "--iommu") {
    if (v != "on" && v != "off") return "--iommu takes on or off";
    c.iommu = v == "on";
  } else if (k == "--mapping")
    c.mapping = v;
  else if (k == "--page-size") {
    auto p = experiment::ParsePageSize(v);
    if (!p.ok()) return p.error().message;
    c.page_size = *p;
  } else if (k == "--packets") {
    if (!ParseU64(v.c_str(), &n) || n == 0) return "--packets takes a positive integer";
    c.packets = n;
    c.seconds = 0;
  } else if (k == "--seconds") {
    char* end = nullptr;
    double s = std::strtod(v.c_str(), &end);
    if (!end || *end || !(s > 0)) return "--seconds takes a positive number";
    c.seconds = s;
    c.packets = 0;
  } else if (k == "--queues" || k == "--ring-size" || k == "--packet-size" || k == "--seed" ||
             k == "--regions" || k == "--flush-batch") {
    if (!ParseU64(v.c_str(), &n)) return k + " takes a non-negative integer";
    if (k != "--seed" && n > UINT32_MAX)
      return k + " " + v + " is out of range (at most " + std::to_string(UINT32_MAX) + ")";
    if (k == "--queues") c.queue_pairs = static_cast<uint32_t>(n);
    if (k == "--ring-size") c.ring_size = static_cast<uint32_t>(n);
    if (k == "--packet-size") c.packet_size = static_cast<uint32_t>(n);
    if (k == "--seed") c.seed = n;
    if (k == "--regions") c.mem_regions = static_cast<uint32_t>(n);
    if (k == "--flush-batch") c.flush_batch = static_cast<uint32_t>(n);
  } else if (k == "--working-set") {
    auto bytes = experiment::ParseSize(v);
    if (!bytes.ok()) return "--working-set: " + bytes.error().message;
    if (*bytes > kMaxWorkingSet)
      return "--working-set " + v + " is out of range (0..1g per queue pair)";
    c.working_set = *bytes;
  } else if (k == "--storm-interval") {
    if (!ParseU64(v.c_str(), &n) || n > kMaxStormInterval)
      return "--storm-interval takes 0..4294967296 packets (0: no storm)";
    c.storm_interval = n;
  } else if (k == "--storm-burst") {
    if (!ParseU64(v.c_str(), &n) || n == 0 || n > kMaxStormBurst)
      return "--storm-burst takes 1..4096 pages";
    c.storm_burst = static_cast<uint32_t>(n);
  } else if (k == "--packet-sizes") {
    auto sizes = experiment::ParsePacketSizes(v);
    if (!sizes.ok()) return "--packet-sizes: " + sizes.error().message;
    c.packet_sizes = *sizes;
  } else if (k == "--event-idx" || k == "--mrg-rxbuf") {
    if (v != "on" && v != "off") return k + " takes on or off";
    (k == "--event-idx" ? c.event_idx : c.mrg_rxbuf) = v == "on";
  } else if (k == "--rx-buffer-size") {
    if (!ParseU64(v.c_str(), &n) || n < 64 || n > 65536)
      return "--rx-buffer-size takes 64..65536 bytes";
    c.rx_buffer_size = static_cast<uint32_t>(n);
  } else if (k == "--scatter")
    c.scatter = v;
  else if (k == "--mode") {
    if (v != "loopback" && v != "sink") return "--mode takes loopback or sink";
    c.mode = v;
  } else if (k == "--poll") {
    backend::PollMode mode;
    uint32_t spin_us = 0;
    if (Status s = backend::ParsePollMode(v, &mode, &spin_us); !s.ok()) return "--" + s.message();
    c.poll = v;
  } else if (k == "--timeout") {
    char* end = nullptr;
    double s = std::strtod(v.c_str(), &end);
    if (!end || *end || !(s > 0)) return "--timeout takes a positive number of seconds";
    c.timeout_seconds = s;
  } else if (k == "--testpmd")
    c.dpdk_testpmd = v;
  else if (k == "--cpus" || k == "--backend-cpus") {
    // A plain list keeps its order (queue q takes the q-th); ranges and masks are hwloc's.
    // Every CPU must be one this process may use.
    auto parsed = topology::ParseCpuList(v);
    if (!parsed.ok()) return k + ": " + parsed.error().message;
    const std::vector<int>& cpus = *parsed;
    if (Status s = topology::CheckCpusAllowed(cpus, topology::AllowedCpus(), k); !s.ok())
      return s.message();
    (k == "--cpus" ? c.cpus : c.backend_cpus) = cpus;
  } else if (k == "--counters") {
    c.counters.clear();
    for (const std::string& item : SplitCommas(v))
      if (!item.empty()) c.counters.push_back(item);
  } else if (k == "--hugepages")
    c.hugepages = true;
  else
    return "unknown option " + k;
  return "";
}

void PrintSummary(const experiment::RunRecord& r) {
  const auto& c = r.config;
  auto get = [&](const char* name) { return r.Get(name); };
  std::printf("backend %s%s  iommu %s  mapping %s  page %s  queues %u  ring %u  frame %s B\n",
              c.backend.c_str(), c.backend == "self" ? (" (iotlb " + c.iotlb + ")").c_str() : "",
              c.iommu ? "on" : "off", c.iommu ? c.mapping.c_str() : "-",
              experiment::PageSizeName(c.page_size).c_str(), c.queue_pairs, c.ring_size,
              experiment::FrameSizesName(c).c_str());
  std::printf(c.mode == "sink" ? "  packets      %.0f consumed of %.0f sent in %.3f s\n"
                               : "  packets      %.0f received of %.0f sent in %.3f s\n",
              get("packets"), get("tx_packets"), get("seconds"));
  std::printf("  rate         %.3f Mpps  (%.1f ns/packet)\n", get("mpps"), get("ns_per_packet"));
  auto ctx = [&](const char* key) {
    auto it = r.context.find(key);
    return it == r.context.end() ? std::string("?") : it->second;
  };
  std::printf(
      "  features     EVENT_IDX %s, MRG_RXBUF %s (receive buffers: %s bytes, %.2f per packet)\n",
      ctx("event_idx").c_str(), ctx("mrg_rxbuf").c_str(), ctx("rx_buffer_bytes").c_str(),
      get("packets") > 0 ? get("rx_buffers") / get("packets") : 0.0);
  std::printf("  notify       %.4f kicks, %.6f interrupts per packet (driver's count)\n",
              get("kicks_per_packet"), get("interrupts_per_packet"));
  if (c.queue_pairs > 1) {
    for (uint32_t q = 0; q < c.queue_pairs; ++q)
      std::printf("    queue %-4u %.0f packets, %.3f Mpps, %.0f drops, %.0f verify errors\n", q,
                  r.Get("packets", q), r.Get("mpps", q), r.Get("drops", q),
                  r.Get("verify_errors", q) + r.Get("sequence_errors", q));
    const double per_queue = r.Get("mpps_per_queue");
    if (std::isnan(per_queue))
      std::printf("  per queue    not measured: too few cores to scale (see the notes)\n");
    else
      std::printf("  per queue    %.3f Mpps (run rate / %u queue pairs)\n", per_queue,
                  c.queue_pairs);
  }
  std::printf("  placement    %s\n", ctx("placement").c_str());
  std::printf(
      "  iotlb        %.0f updates (%.0f answering misses), %.0f invalidations, %.0f "
      "misses received (%.0f unresolved)\n",
      get("iotlb_updates"), get("iotlb_miss_updates"), get("iotlb_invalidates"),
      get("misses_received"), get("misses_unmapped"));
  auto lat = [&](const char* label, const std::string& name) {
    double p50 = r.Get(name + "_p50"), p99 = r.Get(name + "_p99");
    if (r.Get(name + "_samples") > 0)
      std::printf("  %-12s p50 %.1f us  p99 %.1f us\n", label, p50 / 1e3, p99 / 1e3);
  };
  if (get("storm_bursts") > 0)
    std::printf("  storm        %.0f bursts: %.0f pages invalidated and mapped again (%.0f ms)\n",
                get("storm_bursts"), get("storm_pages"), get("storm_ms"));
  lat("update ack", "update_ack_ns");
  lat("inval ack", "invalidate_ack_ns");
  lat("miss service", "miss_service_ns");
  // The backend's own share of the acks (self backend: message received to reply sent).
  if (!std::isnan(r.Get("update_service_ns_p50")) || !std::isnan(r.Get("invalidate_service_ns_p50")))
    std::printf("  backend      update service p50 %.1f us p99 %.1f us, invalidate service p50 "
                "%.1f us p99 %.1f us\n",
                r.Get("update_service_ns_p50") / 1e3, r.Get("update_service_ns_p99") / 1e3,
                r.Get("invalidate_service_ns_p50") / 1e3, r.Get("invalidate_service_ns_p99") / 1e3);
  std::printf("  drops        %.0f\n", get("drops"));
  double ve = get("verify_errors"), se = get("sequence_errors");
  if (c.mode == "sink") {
    double match = r.Get("sink_checksum_match");
    std::printf("  verify       %s\n",
                std::isnan(match) ? "not checked (external sink backend)"
                : match == 1      ? "OK: the backend's checksum equals the bytes sent"
                                  : "FAILED: the backend's checksum differs from the bytes sent");
  } else {
    std::printf("  verify       %s (%.0f byte mismatches, %.0f sequence errors)\n",
                ve == 0 && se == 0 ? "OK: every received byte matched" : "FAILED", ve, se);
  }
  for (const auto& n : r.notes) std::printf("  note: %s\n", n.c_str());
}

// After a sweep whose runs differ in queue pairs (profiles/mq.toml): one line per run with its
// Mpps and the Mpps per queue pair, or why that is not a scaling figure on this machine.
void PrintQueueScaling(const std::vector<experiment::RunRecord>& records) {
  bool varies = false;
  for (const auto& r : records) varies |= r.config.queue_pairs != records.front().config.queue_pairs;
  if (!varies) return;
  std::printf("\nqueue scaling (%s):\n  queues   Mpps      per queue\n",
              records.front().config.profile.c_str());
  for (const auto& r : records) {
    const double per_queue =
        r.config.queue_pairs > 1 ? r.Get("mpps_per_queue") : r.Get("mpps");
    if (std::isnan(per_queue))
      std::printf("  %-8u %-9.3f not measured: too few cores for 2 threads per queue pair\n",
                  r.config.queue_pairs, r.Get("mpps"));
    else
      std::printf("  %-8u %-9.3f %.3f\n", r.config.queue_pairs, r.Get("mpps"), per_queue);
  }
}

int RunRun(int argc, char** argv) {
  std::string profile, json;
  Overrides ov;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Help(stdout);
      return 0;
    }
    if (a == "--verbose") {
      LogThreshold() = LogLevel::kDebug;
      continue;
    }
    if (a == "--quiet") {
      LogThreshold() = LogLevel::kWarn;
      continue;
    }
    if (a == "--hugepages") {
      ov.kv.emplace_back(a, "");
      continue;
    }
    std::string value;
    if (!SplitOption(argc, argv, &i, &a, &value)) return Usage(a + " needs a value");
    if (a == "--profile")
      profile = value;
    else if (a == "--json")
      json = value;
    else
      ov.kv.emplace_back(a, value);
  }

  std::vector<experiment::RunConfig> runs;
  if (!profile.empty()) {
    auto p = experiment::LoadProfile(profile);
    if (!p.ok()) {
      std::fprintf(stderr, "vhostlab run: %s\n", p.error().message.c_str());
      return 2;
    }
    runs = p->runs;
  } else {
    experiment::RunConfig c;
    c.packets = 200000;
    runs.push_back(c);
  }
  for (auto& c : runs)
    for (const auto& [k, v] : ov.kv)
      if (std::string err = Apply(c, k, v); !err.empty()) return Usage(err);

  CatchStopSignals();
  std::atomic<bool>& stop = StopFlag();
  int status = 0;
  std::string all_json;
  std::vector<experiment::RunRecord> records;
  for (std::size_t i = 0; i < runs.size() && !stop.load(); ++i) {
    experiment::RunConfig c = runs[i];
    c.stop = &stop;
    auto rec = experiment::RunExperiment(c);
    if (!rec.ok()) {
      std::fprintf(stderr, "vhostlab run: %s\n", rec.error().message.c_str());
      return 3;
    }
    if (i) std::printf("\n");
    PrintSummary(*rec);
    if (rec->Get("verify_errors") != 0 || rec->Get("sequence_errors") != 0 ||
        rec->Get("drops") != 0 || rec->Get("packets") == 0)
      status = 1;
    all_json += (all_json.empty() ? "" : ",\n") + rec->ToJson();
    records.push_back(std::move(*rec));
  }
  PrintQueueScaling(records);
  if (!json.empty()) {
    std::ofstream out(json);
    out << (runs.size() > 1 ? "[\n" + all_json + "]\n" : all_json);
    if (!out) {
      std::fprintf(stderr, "vhostlab run: cannot write %s\n", json.c_str());
      return 3;
    }
  }
  return status;
}

const Command kRun{"run", "drive a backend with the front-end and verify the traffic", &RunRun};

}  // namespace
}  // namespace vhostlab::cli
