// `vhostlab compare`: the main comparison. On one profile's workload it runs our backend with
// the IOMMU off, then with the IOMMU on for each IOTLB design, then (with --with-dpdk) DPDK's
// vhost PMD with the IOMMU off and on, and prints one table: Mpps, the ratio to the same
// backend's IOMMU-off run, ns/packet, IOTLB traffic, drops and verification. Configurations run
// in rounds (--repeat, default 3), each round visiting every configuration in the same order, and
// the table shows medians: wall-clock rates on a shared 2-core machine swing by several x within
// a minute, and rounds spread that over all rows. Every run's full record goes to --json-dir as
// <profile>-<backend>-<design>-iommu-<on|off>-r<round>.json (the plot scripts read them).
// Exit status 1 when any run failed verification or dropped packets.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/base/log.hpp"
#include "core/experiment/profile.hpp"
#include "core/experiment/run.hpp"
#include "core/iotlb/registry.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

void Help(FILE* out) {
  std::fprintf(
      out,
      "usage: vhostlab compare [--profile NAME|FILE] [--designs all|D1,D2,...] [--with-dpdk]\n"
      "                        [--repeat N] [--json-dir DIR] [--packets N | --seconds S]\n"
      "                        [--queues N]\n"
      "                        [--mapping M] [--page-size 4k|2m] [--verbose|--quiet]\n"
      "\n"
      "The main comparison: on one workload, runs vhostlab's backend with the IOMMU off (the\n"
      "baseline), then with the IOMMU on once per IOTLB design, then optionally DPDK's vhost PMD\n"
      "(dpdk-testpmd) with the IOMMU off and on, and prints one table. 'vs off' is the ratio of\n"
      "a run's Mpps to the IOMMU-off run of the same backend, measured minutes apart on the same\n"
      "machine: compare ratios, not absolute numbers, across machines.\n"
      "\n"
      "options (defaults in brackets):\n"
      "  --profile P     [default] workload profile: profiles/P.toml or a path. Its first run\n"
      "                  (after any [sweep]) is the workload.\n"
      "  --designs LIST  [all] IOTLB designs to run, comma-separated. Available: %s.\n"
      "  --with-dpdk     also run DPDK's vhost PMD (needs dpdk-testpmd on PATH).\n"
      "  --repeat N      [3] rounds: each round runs every configuration once, in order; the\n"
      "                  table shows medians over rounds and the min..max range.\n"
      "  --json-dir DIR  write every run's record as JSON into DIR (created if missing), one\n"
      "                  file per run: <profile>-<backend>-<design>-iommu-<on|off>-r<round>.json\n"
      "  --packets N, --seconds S, --queues N, --mapping M, --page-size P\n"
      "                  override the profile's workload (see `vhostlab run --help`).\n"
      "  --verbose/--quiet  more / less logging on stderr (default: warnings only).\n"
      "\n"
      "exit status: 0 every run verified with no drops; 1 some run failed verification or\n"
      "dropped packets (see the table); 2 usage error; 3 a run could not be set up.\n",
      DesignNamesJoined().c_str());
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "vhostlab compare: %s (see vhostlab compare --help)\n", why.c_str());
  return 2;
}

struct Row {
  experiment::RunConfig config;
  experiment::RunRecord record;
};

int RunCompare(int argc, char** argv) {
  std::string profile = "default", designs_arg = "all", json_dir;
  bool with_dpdk = false;
  uint32_t repeat = 3;
  std::vector<std::pair<std::string, std::string>> overrides;
  LogThreshold() = LogLevel::kWarn;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Help(stdout);
      return 0;
    }
    if (a == "--with-dpdk") {
      with_dpdk = true;
      continue;
    }
    if (a == "--verbose") {
      LogThreshold() = LogLevel::kDebug;
      continue;
    }
    if (a == "--quiet") {
      LogThreshold() = LogLevel::kError;
      continue;
    }
    std::string v;
    if (!SplitOption(argc, argv, &i, &a, &v)) return Usage(a + " needs a value");
    if (a == "--repeat") {
      char* end = nullptr;
      repeat = static_cast<uint32_t>(std::strtoul(v.c_str(), &end, 10));
      if (*end || repeat == 0 || repeat > 100) return Usage("--repeat takes 1..100");
    } else if (a == "--profile")
      profile = v;
    else if (a == "--designs")
      designs_arg = v;
    else if (a == "--json-dir")
      json_dir = v;
    else if (a == "--packets" || a == "--seconds" || a == "--queues" || a == "--mapping" ||
             a == "--page-size")
      overrides.emplace_back(a, v);
    else
      return Usage("unknown option " + a);
  }
  auto p = experiment::LoadProfile(profile);
  if (!p.ok()) {
    std::fprintf(stderr, "vhostlab compare: %s\n", p.error().message.c_str());
    return 2;
  }
  experiment::RunConfig base = p->runs.front();
  for (const auto& [k, v] : overrides) {
    char* end = nullptr;
    if (k == "--packets") {
      base.seconds = 0;
      if (!ParseU64(v.c_str(), &base.packets) || !base.packets)
        return Usage("--packets takes a positive integer");
    } else if (k == "--seconds") {
      base.seconds = std::strtod(v.c_str(), &end);
      base.packets = 0;
      if (*end || !(base.seconds > 0)) return Usage("--seconds takes a positive number");
    } else if (k == "--queues") {
      uint64_t n = 0;
      if (!ParseU64(v.c_str(), &n) || n == 0 || n > UINT32_MAX)
        return Usage("--queues takes a positive integer");
      base.queue_pairs = static_cast<uint32_t>(n);
    } else if (k == "--mapping") {
      base.mapping = v;
    } else if (k == "--page-size") {
      auto ps = experiment::ParsePageSize(v);
      if (!ps.ok()) return Usage(ps.error().message);
      base.page_size = *ps;
    }
  }
  std::vector<std::string> all = iotlb::DesignNames();
  std::vector<std::string> designs;
  if (designs_arg == "all") {
    designs = all;
  } else {
    for (auto& d : SplitCommas(designs_arg))
      if (!d.empty()) designs.push_back(std::move(d));
  }
  for (const auto& d : designs)
    if (std::find(all.begin(), all.end(), d) == all.end())
      return Usage("unknown design '" + d + "' (vhostlab designs lists them)");
  if (!json_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(json_dir, ec);
    if (ec) return Usage("cannot create " + json_dir + ": " + ec.message());
  }

  std::vector<experiment::RunConfig> plan;
  auto add = [&](const std::string& backend, const std::string& design, bool iommu) {
    experiment::RunConfig c = base;
    c.backend = backend;
    c.iotlb = design;
    c.iommu = iommu;
    plan.push_back(c);
  };
  add("self", "reference", false);
  for (const auto& d : designs) add("self", d, true);
  if (with_dpdk) {
    add("dpdk", "dpdk", false);
    add("dpdk", "dpdk", true);
  }

  CatchStopSignals();
  std::atomic<bool>& stop = StopFlag();
  std::printf(
      "profile %s: %s\nworkload: %u queue pair(s), ring %u, %u-byte frames, %s, "
      "mapping %s, %s IOMMU pages\n\n",
      p->name.c_str(), p->description.c_str(), base.queue_pairs, base.ring_size, base.packet_size,
      base.packets ? (std::to_string(base.packets) + " packets").c_str()
                   : (std::to_string(base.seconds) + " s").c_str(),
      base.mapping.c_str(), experiment::PageSizeName(base.page_size).c_str());
  // Rounds: every configuration once per round, in the same order, so slow drifts and bursts
  // of load from other processes spread over all configurations instead of hitting one.
  struct Cell {
    std::vector<double> mpps, ns;
    double updates = 0, misses = 0, invals = 0, drops = 0, verify = 0, packets = 0;
    bool failed = false;
    std::string error;
  };
  std::vector<Cell> cells(plan.size());
  for (uint32_t round = 0; round < repeat && !stop.load(); ++round) {
    std::fprintf(stderr, "round %u/%u:", round + 1, repeat);
    for (std::size_t i = 0; i < plan.size() && !stop.load(); ++i) {
      experiment::RunConfig c = plan[i];
      c.stop = &stop;
      std::fprintf(stderr, " %s",
                   c.backend == "dpdk" ? "dpdk" : (c.iommu ? c.iotlb.c_str() : "off"));
      auto r = experiment::RunExperiment(c);
      Cell& cell = cells[i];
      if (!r.ok()) {
        cell.failed = true;
        cell.error = r.error().message;
        continue;
      }
      cell.mpps.push_back(r->Get("mpps"));
      cell.ns.push_back(r->Get("ns_per_packet"));
      cell.updates = r->Get("iotlb_updates");
      cell.misses += r->Get("misses_received");
      cell.invals += r->Get("iotlb_invalidates");
      cell.drops += r->Get("drops");
      cell.verify += r->Get("verify_errors") + r->Get("sequence_errors");
      cell.packets += r->Get("packets");
      if (!json_dir.empty()) {
        std::string name = p->name + "-" + c.backend + "-" +
                           (c.backend == "dpdk" ? "dpdk" : c.iotlb) + "-iommu-" +
                           (c.iommu ? "on" : "off") + "-r" + std::to_string(round + 1) + ".json";
        std::ofstream out(std::filesystem::path(json_dir) / name);
        out << r->ToJson();
      }
    }
    std::fprintf(stderr, "\n");
  }

  auto median = [](std::vector<double> v) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::printf("%-7s %-17s %-5s %8s %14s %7s %9s %8s %7s %7s %8s  %s\n", "backend", "iotlb", "iommu",
              "Mpps", "(min..max)", "vs off", "ns/pkt", "updates", "misses", "invals", "drops",
              "verify");
  int status = 0;
  double off_self = std::nan(""), off_dpdk = std::nan("");
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const experiment::RunConfig& c = plan[i];
    const Cell& cell = cells[i];
    const std::string design = c.backend == "dpdk" ? "dpdk(list)" : (c.iommu ? c.iotlb : "-");
    if (cell.failed) {
      std::printf("%-7s %-17s %-5s  run failed: %s\n", c.backend.c_str(), design.c_str(),
                  c.iommu ? "on" : "off", cell.error.c_str());
      status = 3;
      continue;
    }
    if (cell.mpps.empty()) continue;
    const double mpps = median(cell.mpps);
    double& off = c.backend == "dpdk" ? off_dpdk : off_self;
    if (!c.iommu) off = mpps;
    const bool ok = cell.verify == 0 && cell.drops == 0 && cell.packets > 0;
    if (!ok && status == 0) status = 1;
    char ratio[16] = "-", range[48];
    if (std::isfinite(off) && off > 0) std::snprintf(ratio, sizeof(ratio), "%.2fx", mpps / off);
    std::snprintf(range, sizeof(range), "(%.2f..%.2f)",
                  *std::min_element(cell.mpps.begin(), cell.mpps.end()),
                  *std::max_element(cell.mpps.begin(), cell.mpps.end()));
    std::printf("%-7s %-17s %-5s %8.3f %14s %7s %9.1f %8.0f %7.0f %7.0f %8.0f  %s\n",
                c.backend.c_str(), design.c_str(), c.iommu ? "on" : "off", mpps, range, ratio,
                median(cell.ns), cell.updates, cell.misses, cell.invals, cell.drops,
                ok ? "OK" : (cell.verify ? "FAILED" : "drops"));
  }
  std::printf("\nMpps and ns/pkt: medians over %u round(s); misses, invals, drops: totals.\n",
              repeat);
  if (!json_dir.empty()) std::printf("\nrecords written to %s/\n", json_dir.c_str());
  return status;
}

const Command kCompare{"compare", "the main comparison: IOMMU off vs each IOTLB design (and DPDK)",
                       &RunCompare};

}  // namespace
}  // namespace vhostlab::cli
