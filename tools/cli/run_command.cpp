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
#include <vector>

#include "core/base/log.hpp"
#include "core/experiment/profile.hpp"
#include "core/experiment/record_json.hpp"
#include "core/experiment/run.hpp"
#include "core/topology/cpuset.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

constexpr const char* kUsage =
    "usage: vhostlab run [--backend self|dpdk|socket:PATH] [--iotlb DESIGN] [--iommu on|off]\n"
    "                    [--mapping static|lazy|strict|cold] [--page-size 4k|2m]\n"
    "                    [--packets N | --seconds S] [--queues N] [--profile FILE|NAME]\n"
    "                    [--json FILE] [more options below]\n";

constexpr const char* kDescription =
    "Runs vhostlab's front-end (it plays QEMU and the guest's virtio-net driver) against a\n"
    "vhost-user backend over a real Unix socket: guest memory in memfd regions, an emulated\n"
    "vIOMMU that sends IOTLB UPDATE/INVALIDATE and answers MISSes, numbered frames sent on\n"
    "each transmit queue and every received byte checked. Prints packets, Mpps, IOTLB\n"
    "traffic, drops and the verification result.\n";

constexpr const char* kFooter =
    "exit status: 0 all packets verified and none dropped; 1 verification failed or drops;\n"
    "2 usage error; 3 the run could not be set up (the message says why).\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "vhostlab run: %s (see vhostlab run --help)\n", why.c_str());
  return 2;
}

// What `vhostlab run` runs without a profile: RunConfig's defaults and 200000 packets.
experiment::RunConfig CliDefaults() {
  experiment::RunConfig c;
  c.packets = 200000;
  return c;
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
  if (c.traffic == "drain")
    std::printf("  rate         %.3f Mpps  (%.1f ns/packet) while the backend drained whole rings "
                "alone; the whole loop: %.3f Mpps\n",
                get("mpps"), get("ns_per_packet"), get("loop_mpps"));
  else
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
  CLI::App app("", "run");
  const std::string group =
      "options (defaults in brackets; a --profile sets the defaults, flags override it)";
  Describe(app, kUsage, kDescription, kFooter, group);
  const experiment::RunConfig defaults = CliDefaults();
  SettingFlags settings(app, &defaults, group);
  app.add_option("--profile", profile,
                 Wrap("load defaults from a TOML profile (a path, or NAME for profiles/NAME.toml); "
                      "a profile with a [sweep] runs every point."))
      ->type_name("P")
      ->group(group);
  app.add_option("--json", json,
                 Wrap("write the full record(s) (config, machine context, tidy metrics) as JSON; "
                      "with several runs, a JSON array."))
      ->type_name("FILE")
      ->group(group);
  AddLogFlags(app, /*quiet_errors_only=*/false);
  if (const int status = Parse(app, argc, argv); status >= 0) return status;

  std::vector<experiment::RunConfig> runs;
  if (!profile.empty()) {
    auto p = experiment::LoadProfile(profile);
    if (!p.ok()) {
      std::fprintf(stderr, "vhostlab run: %s\n", p.error().message.c_str());
      return 2;
    }
    runs = p->runs;
  } else {
    runs.push_back(CliDefaults());
  }
  for (auto& c : runs) {
    if (Status st = settings.ApplyTo(c); !st.ok()) return Usage(st.message());
    // A CPU this machine does not offer is a usage error here, before any set-up (the table
    // checks only the list's form, so that a profile reads the same everywhere).
    const std::vector<int> allowed = topology::AllowedCpus();
    for (const auto& [cpus, flag] : {std::pair{&c.cpus, "--cpus"},
                                     std::pair{&c.backend_cpus, "--backend-cpus"}})
      if (Status st = topology::CheckCpusAllowed(*cpus, allowed, flag); !st.ok())
        return Usage(st.message());
  }

  CatchStopSignals();
  std::atomic<bool>& stop = StopFlag();
  int status = 0;
  nlohmann::ordered_json records = nlohmann::ordered_json::array();
  std::vector<experiment::RunRecord> done;
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
    records.push_back(experiment::RunRecordJson(*rec));
    done.push_back(std::move(*rec));
  }
  PrintQueueScaling(done);
  if (!json.empty()) {
    std::ofstream out(json);
    out << experiment::DumpJson(runs.size() == 1 && records.size() == 1 ? records.front()
                                                                      : records);
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
