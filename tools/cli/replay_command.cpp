// `vhostlab replay`: replays a recorded IOTLB trace (`vhostlab backend --record`) on IOTLB
// designs, verifies every translation against `reference`, and ranks the designs.
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/experiment/replay_records.hpp"
#include "core/iotlb/registry.hpp"
#include "core/trace/replay.hpp"
#include "core/trace/trace.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

constexpr const char* kUsage =
    "usage: vhostlab replay TRACE [--designs all|A,B,...] [--repeat N] [--json FILE]\n";

constexpr const char* kDescription =
    "Replays an IOTLB trace recorded by `vhostlab backend --record TRACE` (any front-end:\n"
    "QEMU with a vIOMMU guest, DPDK virtio-user, `vhostlab run`) on each design, in the\n"
    "recorded order: every UPDATE and INVALIDATE, a fresh table at each connection, and every\n"
    "translation the datapath asked for. Each translation is checked against `reference`; a\n"
    "design that answers one differently fails (exit status 1, with the record that shows\n"
    "it). Then each design is timed: ns per translation (each run of consecutive translations\n"
    "timed as a block, the timer's own cost subtracted; the stream repeated to at least\n"
    "200,000 steps per round), ns per UPDATE and per INVALIDATE (each timed alone), median\n"
    "(min..max) of N rounds.\n";

constexpr const char* kFooter =
    "The trace format is documented in core/trace/trace.hpp; vhostlab.load_trace() reads it.\n"
    "example:\n"
    "  vhostlab replay results/traces/qemu-strict-1024.vltrace --designs all\n";

int RunReplay(int argc, char** argv) {
  std::string path, json, designs_arg = "all";
  trace::ReplayOptions options;
  CLI::App app("", "replay");
  Describe(app, kUsage, kDescription, kFooter);
  app.add_option("TRACE", path, "the trace file (`vhostlab backend --record`).")
      ->type_name("")
      ->required();
  app.add_option("--designs", designs_arg,
                 Wrap("comma-separated design names, or all (default). Available: " +
                      DesignNamesJoined() + "."))
      ->type_name("LIST");
  app.add_option("--repeat", options.repeat, "timing rounds (default 5, 1..1000).")
      ->type_name("N")
      ->check(CLI::Range(1, 1000).description(""));
  app.add_option("--json", json,
                 Wrap("write one run record per design (the `vhostlab run --json` schema: "
                      "config.backend \"replay\", config.profile \"replay:<trace>\"), a JSON "
                      "list that vhostlab.load_results() reads into the usual DataFrame."))
      ->type_name("FILE");
  if (const int status = Parse(app, argc, argv); status >= 0) return status;
  const std::vector<std::string> designs =
      designs_arg == "all" ? std::vector<std::string>{} : SplitList(designs_arg);
  options.designs = designs.empty() ? iotlb::DesignNames() : designs;
  auto t = trace::Read(path);
  if (!t) {
    std::fprintf(stderr, "vhostlab replay: %s\n", t.error().message.c_str());
    return 1;
  }
  const trace::TraceSummary s = trace::Summarize(*t);
  std::printf("trace %s: %" PRIu64 " records over %.3f s%s\n", path.c_str(), s.records,
              s.duration_s, s.truncated ? " (TRUNCATED at the record limit)" : "");
  std::printf("  %" PRIu64 " UPDATE, %" PRIu64 " INVALIDATE, %" PRIu64 " MISS, %" PRIu64
              " connection(s), %" PRIu64 " memory regions\n",
              s.updates, s.invalidates, s.misses, s.connects, s.mem_regions);
  std::printf("  %" PRIu64 " translations on %" PRIu64 " queue(s), recorded live as %" PRIu64
              " hits, %" PRIu64 " misses, %" PRIu64 " access failures\n",
              s.translations, s.queues, s.recorded_hits, s.recorded_misses,
              s.recorded_access_fails);
  std::fflush(stdout);
  auto progress = [](const std::string& name) {
    std::fprintf(stderr, "replaying on %s...\n", name.c_str());
  };
  auto r = trace::Replay(*t, options, progress);
  if (!r) {
    std::fprintf(stderr, "vhostlab replay: %s\n", r.error().message.c_str());
    return 2;
  }
  std::vector<trace::DesignReplay> ranked = *r;
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    if (a.verified != b.verified) return a.verified;
    return a.ns_per_translation.median < b.ns_per_translation.median;
  });
  const double best = ranked.empty() ? 0 : ranked.front().ns_per_translation.median;
  std::printf("\n%-4s %-18s %-9s %10s %17s %8s %9s %9s %8s %8s %7s\n", "rank", "design", "verified",
              "ns/xlate", "(min..max)", "vs best", "ns/update", "ns/inval", "hits", "misses",
              "entries");
  int rank = 0, failed = 0;
  for (const auto& d : ranked) {
    char range[40];
    std::snprintf(range, sizeof(range), "(%.2f..%.2f)", d.ns_per_translation.min,
                  d.ns_per_translation.max);
    std::printf("%-4d %-18s %-9s %10.2f %17s %7.2fx %9.1f %9.1f %8" PRIu64 " %8" PRIu64
                " %7" PRIu64 "\n",
                ++rank, d.design.c_str(), d.verified ? "OK" : "FAILED", d.ns_per_translation.median,
                range, best > 0 ? d.ns_per_translation.median / best : 1.0,
                d.ns_per_update.median, d.ns_per_invalidate.median, d.hits, d.misses,
                d.max_entries);
    if (!d.verified) ++failed;
  }
  for (const auto& d : ranked)
    if (!d.verified) std::printf("%s: %s\n", d.design.c_str(), d.mismatch.c_str());
  std::printf("(%" PRIu64 " translations per pass, %u rounds; every translation checked against "
              "reference)\n", s.translations, options.repeat);
  if (!json.empty()) {
    std::ofstream f(json);
    f << experiment::RecordsJson(experiment::ReplayRecords(path, s, *r));
    if (!f) {
      std::fprintf(stderr, "vhostlab replay: cannot write %s\n", json.c_str());
      return 1;
    }
    std::printf("wrote %s\n", json.c_str());
  }
  return failed ? 1 : 0;
}

const Command kReplay{"replay", "replay a recorded IOTLB trace on every design, verified",
                      &RunReplay};

}  // namespace
}  // namespace vhostlab::cli
