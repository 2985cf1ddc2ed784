// `vhostlab counters`: which hardware/software counters work on this machine, and why not.
//
// Each event is resolved by libpfm4 and opened alone on this thread, counted over a short loop,
// and printed with its status: a sample value when it counts, the reason when it does not
// ("unavailable: no PMU" in VMs without a virtual PMU). Unknown names are listed as errors and
// make the exit status 1, so scripts can check an event list before a long run.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/counters/counters.hpp"
#include "core/counters/tsc.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

constexpr const char* kUsage = "usage: vhostlab counters [--events NAME,NAME,...]\n";

constexpr const char* kDescription =
    "Lists the counters the collector can read on this machine and why the others do not.\n"
    "Without --events it checks the default set every run collects:\n"
    "  hardware: cycles, instructions, branch-misses, L1-dcache-load-misses, LLC-load-misses,\n"
    "            dTLB-load-misses (need a hardware PMU; VMs often have none)\n"
    "  software: task-clock, page-faults, context-switches, cpu-migrations (kernel counted)\n"
    "  tsc:      the invariant TSC (lfence; rdtsc), calibrated against CLOCK_MONOTONIC_RAW\n"
    "Other names go to libpfm4 as written (e.g. perf::PERF_COUNT_HW_CACHE_L1D:READ:MISS).\n\n"
    "Each event is opened alone with perf_event_open on this thread and counted over a short\n"
    "loop. STATUS is 'ok' with the sample value, or the reason it cannot count (from errno:\n"
    "'unavailable: no PMU', permission denied with perf_event_paranoid, not supported).\n"
    "Unavailable counters are never reported as 0 by vhostlab.\n";

constexpr const char* kFooter = "Exit status: 0, or 1 when a name is unknown to libpfm4.\n";

int RunCounters(int argc, char** argv) {
  std::string events_arg;
  CLI::App app("", "counters");
  Describe(app, kUsage, kDescription, kFooter);
  app.add_option("--events", events_arg, "comma-separated event names (default: the default set).")
      ->type_name("LIST");
  if (const int status = Parse(app, argc, argv); status >= 0) return status;
  const std::vector<std::string> events = SplitList(events_arg);
  const auto& tsc = counters::TscClock::Get();
  std::printf("hardware PMU: %s; perf_event_paranoid=%d; %s\n\n",
              counters::HaveHardwarePmu() ? "present" : "none (software events and TSC only)",
              counters::PerfEventParanoid(), tsc.Describe().c_str());
  std::printf("%-24s %-9s %-16s %s\n", "EVENT", "KIND", "SAMPLE", "STATUS");
  int unknown = 0;
  int ok = 0;
  const auto statuses = counters::ProbeEvents(events);
  for (const counters::EventStatus& st : statuses) {
    char sample[48] = "-";
    if (st.available) std::snprintf(sample, sizeof sample, "%.0f %s", st.sample, st.unit.c_str());
    const bool is_unknown = st.pfm_name.empty() && !st.available;
    unknown += is_unknown;
    ok += st.available;
    std::printf("%-24s %-9s %-16s %s\n", st.name.c_str(),
                is_unknown ? "?" : counters::EventKindName(st.kind), sample,
                st.available ? ("ok  (" + st.pfm_name + ")").c_str() : st.reason.c_str());
  }
  std::printf("\n%d of %zu events count here.\n", ok, statuses.size());
  if (auto resolved = counters::ResolveEvents(events))
    std::printf("grouping: %s\n", counters::DescribeGrouping(*resolved).c_str());
  return unknown ? 1 : 0;
}

const Command kCounters{"counters", "list the counters that work here and why others don't",
                        &RunCounters};

}  // namespace
}  // namespace vhostlab::cli
