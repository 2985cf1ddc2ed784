// `vhostlab compare`: the main comparison. On one profile's workload it runs our backend with
// the IOMMU off, then with the IOMMU on for each IOTLB design, then (with --with-dpdk) DPDK's
// vhost PMD with the IOMMU off and on, and prints one table: Mpps, the ratio to the same
// backend's IOMMU-off run, ns/packet, IOTLB traffic, drops and verification. Configurations run
// in rounds (--repeat, default 5) after discarded warm-up runs (--warmup), each round visiting
// every configuration once in a rotated order (experiment::RoundOrder), and the table shows
// medians: wall-clock rates on a shared 2-core machine swing by several x within a minute, and
// rounds spread that over all rows. Each configuration's runs are tested against the IOMMU-off
// runs with a Mann-Whitney U test (core/experiment/compare.hpp): a difference within noise reads
// "~1.00x (n.s.)". Every run's full record goes to --json-dir as
// <profile>-<backend>-<design>-iommu-<on|off>-r<round>.json (the plot scripts read them), and
// the comparison (order of every round, warm-up, medians, ratios, p-values) as
// <profile>-compare.json.
// `--profile all` does this for every profile in profiles/ in turn, one table each (a profile
// with a [sweep] contributes its first point, as with --profile NAME), with progress on stderr.
// Exit status 1 when any run failed verification or dropped packets.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/base/log.hpp"
#include "core/experiment/compare.hpp"
#include "core/experiment/profile.hpp"
#include "core/experiment/run.hpp"
#include "core/iotlb/registry.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

constexpr const char* kUsage =
    "usage: vhostlab compare [--profile NAME|FILE] [--designs all|D1,D2,...] [--with-dpdk]\n"
    "                        [--repeat N] [--warmup N] [--json-dir DIR]\n"
    "                        [--packets N | --seconds S]\n"
    "                        [--queues N] [--packet-size N | --packet-sizes L]\n"
    "                        [--mapping M] [--page-size 4k|2m] [--verbose|--quiet]\n";

constexpr const char* kDescription =
    "The main comparison: on one workload, runs vhostlab's backend with the IOMMU off (the\n"
    "baseline), then with the IOMMU on once per IOTLB design, then optionally DPDK's vhost PMD\n"
    "(dpdk-testpmd) with the IOMMU off and on, and prints one table. 'vs off' is the ratio of\n"
    "a configuration's median Mpps to the IOMMU-off median of the same backend, measured on\n"
    "the same machine in interleaved rounds: compare ratios, not absolute numbers, across\n"
    "machines. Each configuration's runs are tested against the IOMMU-off runs with a\n"
    "two-sided Mann-Whitney U test (column p); a difference with p >= 0.05 is within noise\n"
    "and reads '~1.00x (n.s.)'. With fewer than 4 rounds no difference can reach p < 0.05:\n"
    "the ratio then reads '(untested)'.\n";

constexpr const char* kFooter =
    "exit status: 0 every run verified with no drops; 1 some run failed verification or\n"
    "dropped packets (see the table); 2 usage error; 3 a run could not be set up.\n";

// The workload settings a comparison may override (the rest come from the profile).
const std::vector<std::string_view> kWorkloadSettings = {
    "packets",   "seconds",     "queue_pairs",  "mapping",   "page_size",
    "ring_size", "packet_size", "packet_sizes", "event_idx", "mrg_rxbuf", "traffic"};

int Usage(const std::string& why) {
  std::fprintf(stderr, "vhostlab compare: %s (see vhostlab compare --help)\n", why.c_str());
  return 2;
}

struct Options {
  std::vector<std::string> designs;
  bool with_dpdk = false;
  uint32_t repeat = 5;
  uint32_t warmup = 1;
  std::string json_dir;
};

// Every profile in profiles/ (the source tree's, else the current directory's), by name.
std::vector<std::string> AllProfiles() {
  std::vector<std::string> names;
  for (const std::string& dir :
       {std::string(VHOSTLAB_SOURCE_DIR) + "/profiles", std::string("profiles")}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
      if (e.path().extension() == ".toml") names.push_back(e.path().string());
    if (!names.empty()) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The label of a configuration on the progress line and in <profile>-compare.json.
std::string Label(const experiment::RunConfig& c) {
  if (c.backend == "dpdk") return c.iommu ? "dpdk" : "dpdk-off";
  return c.iommu ? c.iotlb : "off";
}

// The configurations of one comparison, in plan order: our backend with the IOMMU off (the
// baseline), then one per design, then DPDK's off and on.
std::vector<experiment::RunConfig> Plan(const experiment::RunConfig& base, const Options& o) {
  std::vector<experiment::RunConfig> plan;
  auto add = [&](const std::string& backend, const std::string& design, bool iommu) {
    experiment::RunConfig c = base;
    c.backend = backend;
    c.iotlb = design;
    c.iommu = iommu;
    // The baseline is the same traffic without an IOMMU: nothing to invalidate, so no storm.
    if (!iommu) c.storm_interval = 0;
    plan.push_back(c);
  };
  add("self", "reference", false);
  for (const auto& d : o.designs) add("self", d, true);
  if (o.with_dpdk) {
    add("dpdk", "dpdk", false);
    add("dpdk", "dpdk", true);
  }
  return plan;
}

void PrintWorkload(const experiment::Profile& p, const experiment::RunConfig& base) {
  std::string extras;
  if (base.working_set)
    extras += ", working set " + std::to_string(base.working_set >> 20) + " MiB";
  if (base.storm_interval)
    extras += ", storm of " + std::to_string(base.storm_burst) + " pages every " +
              std::to_string(base.storm_interval) + " packets";
  extras += base.traffic == "drain"
                ? ", drain traffic (Mpps: each backend timed alone on whole rings)"
                : ", stream traffic (Mpps: the whole loop)";
  if (!base.event_idx) extras += ", EVENT_IDX not acked";
  if (!base.mrg_rxbuf) extras += ", MRG_RXBUF not acked";
  if (base.mrg_rxbuf && base.rx_buffer_size)
    extras += ", " + std::to_string(base.rx_buffer_size) + "-byte mergeable receive buffers";
  std::printf(
      "profile %s: %s\nworkload: %u queue pair(s), ring %u, %s-byte frames, %s, "
      "mapping %s, %s IOMMU pages%s\n\n",
      p.name.c_str(), p.description.c_str(), base.queue_pairs, base.ring_size,
      experiment::FrameSizesName(base).c_str(),
      base.packets ? (std::to_string(base.packets) + " packets").c_str()
                   : (std::to_string(base.seconds) + " s").c_str(),
      base.mapping.c_str(), experiment::PageSizeName(base.page_size).c_str(), extras.c_str());
  std::fflush(stdout);
}

// What the table shows of a configuration besides its Mpps (which the summary keeps).
struct Cell {
  std::vector<double> ns;
  double updates = 0, misses = 0, invals = 0, drops = 0, verify = 0, packets = 0;
  bool failed = false;
  std::string error;
};

// One comparison's measurements: the summary (configurations with their Mpps, round order,
// warm-up) and a Cell per configuration.
struct Comparison {
  std::vector<experiment::RunConfig> plan;
  experiment::ComparisonSummary summary;
  std::vector<Cell> cells;
};

Comparison StartComparison(const experiment::Profile& p, const experiment::RunConfig& base,
                           const Options& o) {
  Comparison cmp;
  cmp.plan = Plan(base, o);
  cmp.cells.resize(cmp.plan.size());
  cmp.summary.profile = p.name;
  cmp.summary.warmup_runs = o.warmup;
  const auto& plan = cmp.plan;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    experiment::ComparedConfig cc;
    cc.backend = plan[i].backend;
    cc.design = plan[i].backend == "dpdk" ? "dpdk" : plan[i].iotlb;
    cc.iommu = plan[i].iommu;
    cc.label = Label(plan[i]);
    for (std::size_t b = 0; b < plan.size(); ++b)
      if (plan[i].iommu && !plan[b].iommu && plan[b].backend == plan[i].backend)
        cc.baseline = static_cast<int>(b);
    cmp.summary.configs.push_back(std::move(cc));
  }
  return cmp;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The discarded runs before the first round: each backend's IOMMU-off configuration warms
// that backend's whole path (process start, memory, caches).
void WarmUp(Comparison& cmp, const Options& o, const std::string& label) {
  if (!o.warmup) return;
  std::atomic<bool>& stop = StopFlag();
  const auto t_start = std::chrono::steady_clock::now();
  std::fprintf(stderr, "%swarm-up (discarded):", label.c_str());
  for (const experiment::RunConfig& w : cmp.plan) {
    if (w.iommu) continue;
    for (uint32_t k = 0; k < o.warmup && !stop.load(); ++k) {
      experiment::RunConfig c = w;
      c.stop = &stop;
      std::fprintf(stderr, " %s", Label(c).c_str());
      auto r = experiment::RunExperiment(c);
      if (!r.ok()) std::fprintf(stderr, "(failed)");
      cmp.summary.warmup_labels.push_back(Label(c));
      cmp.summary.warmup_mpps.push_back(r.ok() ? r->Get("mpps") : std::nan(""));
    }
  }
  std::fprintf(stderr, " (%.0f s)\n", Seconds(t_start));
}

// The measured rounds: every configuration once per round, in an order rotated from round to
// round, so that slow drifts, bursts of load from other processes and the cost of coming first
// spread over all configurations instead of hitting one (compare.hpp). Writes each run's
// record when asked.
void RunRounds(Comparison& cmp, const experiment::Profile& p, const Options& o,
               const std::string& label) {
  std::atomic<bool>& stop = StopFlag();
  const auto t_start = std::chrono::steady_clock::now();
  for (uint32_t round = 0; round < o.repeat && !stop.load(); ++round) {
    const std::vector<std::size_t> order =
        experiment::RoundOrder(cmp.plan.size(), round, o.repeat);
    cmp.summary.order.push_back(order);
    cmp.summary.rounds = round + 1;
    std::fprintf(stderr, "%sround %u/%u:", label.c_str(), round + 1, o.repeat);
    for (std::size_t pos = 0; pos < order.size() && !stop.load(); ++pos) {
      const std::size_t i = order[pos];
      experiment::RunConfig c = cmp.plan[i];
      c.stop = &stop;
      std::fprintf(stderr, " %s", Label(c).c_str());
      auto r = experiment::RunExperiment(c);
      Cell& cell = cmp.cells[i];
      if (!r.ok()) {
        std::fprintf(stderr, "(failed)");
        cell.failed = true;
        cell.error = r.error().message;
        continue;
      }
      experiment::ComparedConfig& cc = cmp.summary.configs[i];
      cc.mpps.push_back(r->Get("mpps"));
      cc.rounds.push_back(round);
      cc.positions.push_back(static_cast<uint32_t>(pos));
      cell.ns.push_back(r->Get("ns_per_packet"));
      cell.updates = r->Get("iotlb_updates");
      cell.misses += r->Get("misses_received");
      cell.invals += r->Get("iotlb_invalidates");
      cell.drops += r->Get("drops");
      cell.verify += r->Get("verify_errors") + r->Get("sequence_errors");
      cell.packets += r->Get("packets");
      std::string name;
      if (!o.json_dir.empty()) {
        name = p.name + "-" + c.backend + "-" + cc.design + "-iommu-" + (c.iommu ? "on" : "off") +
               "-r" + std::to_string(round + 1) + ".json";
        r->context["compare_round"] = std::to_string(round + 1);
        r->context["compare_position"] = std::to_string(pos + 1);
        r->context["compare_warmup_runs"] = std::to_string(o.warmup);
        std::ofstream out(std::filesystem::path(o.json_dir) / name);
        out << r->ToJson();
      }
      cc.records.push_back(name);
    }
    std::fprintf(stderr, " (%.0f s)\n", Seconds(t_start));
  }
}

// The table: one row per configuration, judged against its baseline. Returns 0, 1 (drops or
// verification) or 3 (a run could not be set up).
int PrintTable(const Comparison& cmp, const Options& o) {
  std::printf("%-7s %-17s %-5s %8s %14s  %-16s %6s %9s %8s %7s %7s %8s  %s\n", "backend", "iotlb",
              "iommu", "Mpps", "(min..max)", "vs off", "p", "ns/pkt", "updates", "misses",
              "invals", "drops", "verify");
  int status = 0;
  const auto& configs = cmp.summary.configs;
  for (std::size_t i = 0; i < cmp.plan.size(); ++i) {
    const experiment::RunConfig& c = cmp.plan[i];
    const experiment::ComparedConfig& cc = configs[i];
    const Cell& cell = cmp.cells[i];
    const std::string design = c.backend == "dpdk" ? "dpdk(list)" : (c.iommu ? c.iotlb : "-");
    if (cell.failed) {
      std::printf("%-7s %-17s %-5s  run failed: %s\n", c.backend.c_str(), design.c_str(),
                  c.iommu ? "on" : "off", cell.error.c_str());
      status = 3;
      continue;
    }
    if (cc.mpps.empty()) continue;
    const experiment::Judgement j =
        experiment::Judge(cc, cc.baseline >= 0 ? &configs[cc.baseline] : nullptr);
    const bool ok = cell.verify == 0 && cell.drops == 0 && cell.packets > 0;
    if (!ok && status == 0) status = 1;
    char range[48], pval[16] = "-";
    std::snprintf(range, sizeof(range), "(%.2f..%.2f)", j.min, j.max);
    if (std::isfinite(j.test.p_value))
      std::snprintf(pval, sizeof(pval), j.test.p_value < 0.001 ? "<0.001" : "%.3f",
                    j.test.p_value);
    std::printf("%-7s %-17s %-5s %8.3f %14s  %-16s %6s %9.1f %8.0f %7.0f %7.0f %8.0f  %s\n",
                c.backend.c_str(), design.c_str(), c.iommu ? "on" : "off", j.median, range,
                j.verdict.c_str(), pval, experiment::Median(cell.ns), cell.updates, cell.misses,
                cell.invals, cell.drops, ok ? "OK" : (cell.verify ? "FAILED" : "drops"));
  }
  std::printf(
      "\nMpps and ns/pkt: medians over %u round(s), each round in a rotated order, after %u "
      "discarded warm-up run(s) per backend.\n"
      "vs off: ratio of medians to the same backend's IOMMU-off runs, shown when a two-sided "
      "Mann-Whitney U test\n(p) rejects equality at %.2f; '~1.00x (n.s.)': within noise; "
      "'(untested)': too few rounds to reach p < %.2f.\nmisses, invals, drops: totals.\n",
      cmp.summary.rounds, o.warmup, experiment::kAlpha, experiment::kAlpha);
  std::fflush(stdout);
  return status;
}

// One profile's comparison: warm-up, rounds, table, and the summary record when asked.
// `label` prefixes the progress lines on stderr ("[3/12 strict] "). Returns PrintTable's status.
int CompareProfile(const experiment::Profile& p, const experiment::RunConfig& base,
                   const Options& o, const std::string& label) {
  PrintWorkload(p, base);
  Comparison cmp = StartComparison(p, base, o);
  WarmUp(cmp, o, label);
  RunRounds(cmp, p, o, label);
  const int status = PrintTable(cmp, o);
  if (!o.json_dir.empty()) {
    cmp.summary.context = experiment::MachineContext();
    std::ofstream out(std::filesystem::path(o.json_dir) / (p.name + "-compare.json"));
    out << experiment::ComparisonToJson(cmp.summary);
  }
  return status;
}

int RunCompare(int argc, char** argv) {
  std::string profile = "default", designs_arg = "all";
  Options o;
  LogThreshold() = LogLevel::kWarn;
  CLI::App app("", "compare");
  const std::string group = "options (defaults in brackets)";
  Describe(app, kUsage, kDescription, kFooter, group);
  app.add_option("--profile", profile,
                 Wrap("[default] workload profile: profiles/P.toml or a path. Its first run "
                      "(after any [sweep]) is the workload. 'all': every profile in profiles/, "
                      "in name order, one table each (overrides apply to each)."))
      ->type_name("P")
      ->group(group);
  app.add_option("--designs", designs_arg,
                 Wrap("[all] IOTLB designs to run, comma-separated. Available: " +
                      DesignNamesJoined() + "."))
      ->type_name("LIST")
      ->group(group);
  app.add_flag("--with-dpdk", o.with_dpdk,
               "also run DPDK's vhost PMD (needs dpdk-testpmd on PATH).")
      ->group(group);
  app.add_option("--repeat", o.repeat,
                 Wrap("[5] rounds, 1..100: each round runs every configuration once; round r "
                      "runs them in an order rotated by about r/N of the list, so that no "
                      "configuration is always first or last. The table shows medians over "
                      "rounds and the min..max range."))
      ->type_name("N")
      ->check(CLI::Range(1, 100).description(""))
      ->group(group);
  app.add_option("--warmup", o.warmup,
                 Wrap("[1] discarded runs of each backend's IOMMU-off configuration before the "
                      "first round, 0..100 (0: none)."))
      ->type_name("N")
      ->check(CLI::Range(0, 100).description(""))
      ->group(group);
  app.add_option("--json-dir", o.json_dir,
                 Wrap("write every run's record as JSON into DIR (created if missing), one file "
                      "per run: <profile>-<backend>-<design>-iommu-<on|off>-r<round>.json, and "
                      "<profile>-compare.json: each round's order, the warm-up, medians, ratios "
                      "and p-values."))
      ->type_name("DIR")
      ->group(group);
  // The workload flags override the profile's workload (see `vhostlab run --help`); their
  // checks run before anything does.
  SettingFlags workload(app, nullptr, "workload (overrides the profile's; see vhostlab run --help)",
                        kWorkloadSettings);
  AddLogFlags(app, /*quiet_errors_only=*/true);
  if (const int status = Parse(app, argc, argv); status >= 0) return status;
  {
    experiment::RunConfig probe;
    if (Status st = workload.ApplyTo(probe); !st.ok()) return Usage(st.message());
  }
  std::vector<std::string> all = iotlb::DesignNames();
  if (designs_arg == "all") {
    o.designs = all;
  } else {
    o.designs = SplitList(designs_arg);
  }
  for (const auto& d : o.designs)
    if (std::find(all.begin(), all.end(), d) == all.end())
      return Usage("unknown design '" + d + "' (vhostlab designs lists them)");

  // Every profile is loaded (and checked) before the first run: a typo in the last one must
  // not surface an hour into `--profile all`.
  std::vector<experiment::Profile> profiles;
  std::vector<std::string> names =
      profile == "all" ? AllProfiles() : std::vector<std::string>{profile};
  if (names.empty()) return Usage("no profiles found in " VHOSTLAB_SOURCE_DIR "/profiles");
  for (const auto& name : names) {
    auto p = experiment::LoadProfile(name);
    if (!p.ok()) {
      std::fprintf(stderr, "vhostlab compare: %s\n", p.error().message.c_str());
      return 2;
    }
    profiles.push_back(std::move(*p));
  }
  if (!o.json_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.json_dir, ec);
    if (ec) return Usage("cannot create " + o.json_dir + ": " + ec.message());
  }

  CatchStopSignals();
  int status = 0;
  const auto t_start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < profiles.size() && !StopFlag().load(); ++i) {
    experiment::RunConfig base = profiles[i].runs.front();
    if (Status st = workload.ApplyTo(base); !st.ok()) return Usage(st.message());
    std::string label;
    if (profiles.size() > 1) {
      // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "[" + std::to_string(...).
      label += '[';
      label += std::to_string(i + 1) + "/" + std::to_string(profiles.size());
      label += ' ' + profiles[i].name + "] ";
      std::fprintf(
          stderr, "%sstarting (%.0f s elapsed)\n", label.c_str(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
      if (i) std::printf("\n");
      std::printf("== %s ==\n", profiles[i].name.c_str());
    }
    const int s = CompareProfile(profiles[i], base, o, label);
    // 3 (a run could not be set up) outranks 1 (drops or verification).
    status = std::max(status, s);
  }
  if (!o.json_dir.empty()) std::printf("\nrecords written to %s/\n", o.json_dir.c_str());
  return status;
}

const Command kCompare{"compare", "the main comparison: IOMMU off vs each IOTLB design (and DPDK)",
                       &RunCompare};

}  // namespace
}  // namespace vhostlab::cli
