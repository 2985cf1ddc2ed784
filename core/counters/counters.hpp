// The counter collector: named events -> libpfm4 encodings -> perf_event_open groups per thread.
//
// Algorithm:
//  1. ResolveEvents() turns each user name into a perf_event_attr with libpfm4
//     (pfm_get_os_event_encoding, PFM_OS_PERF_EVENT_EXT). A short table maps the friendly
//     default names ("cycles", "dTLB-load-misses", ...) to libpfm's generic perf:: names; any
//     other name goes to libpfm as written (e.g. "perf::PERF_COUNT_HW_CACHE_L1D:READ:MISS" or a
//     core PMU event on machines whose PMU libpfm knows). "tsc" is the invariant TSC, read with
//     `lfence; rdtsc` (tsc.hpp). A name libpfm does not know is an error naming it.
//  2. ThreadCounters::Open(events, tid) opens one perf group per PMU (the core PMU's hardware
//     and cache events in one group, software events in another: a group must live on one PMU),
//     on one thread (tid 0 = the calling thread). The first event of a group that opens becomes
//     its leader (opened disabled); later ones join it. An event that cannot be opened is kept,
//     marked unavailable with the reason from errno ("unavailable: no PMU" when the kernel has no
//     hardware PMU driver, as in these VMs) and the rest of the group still counts (partial
//     groups).
//  3. Start() resets and enables each group at once (PERF_IOC_FLAG_GROUP); Stop() disables.
//     Read() reads each group with PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING |
//     ID in one read(): one consistent snapshot per group.
//
// Invariants:
//  - An unavailable event never carries a value: `available` is false, `value` is NaN, `note`
//    says why. Nothing is reported as 0 unless the kernel counted 0.
//  - Multiplexing is detected (time_running < time_enabled), scaled (raw * enabled / running)
//    and reported (`multiplexed`, `running_fraction`, a note). An event that never ran while
//    enabled (running == 0 < enabled) is unavailable, not 0.
//  - Every perf fd is owned by a UniqueFd; closing a ThreadCounters closes its events.
//  - Nothing here allocates or prints between Start() and Stop(); Read() may run concurrently
//    with the measured thread (it only reads the kernel's counters).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::counters {

enum class EventKind { kHardware, kSoftware, kTsc };
const char* EventKindName(EventKind kind);

// A resolved event (the perf_event_attr stays inside counters.cpp).
struct EventSpec {
  std::string name;      // as requested
  std::string pfm_name;  // libpfm's fully qualified name ("perf::PERF_COUNT_HW_CPU_CYCLES:...")
  EventKind kind = EventKind::kHardware;
  std::string unit;  // "count", "ns" (task-clock), "ticks" (tsc)
};

// The default set: cycles, instructions, branch-misses, L1-dcache-load-misses, LLC-load-misses,
// dTLB-load-misses, task-clock, page-faults, context-switches, cpu-migrations, tsc.
const std::vector<std::string>& DefaultEvents();

// Resolves names with libpfm4. Errors: an unknown name ("unknown event 'foo' (libpfm4: event
// not found)"), a duplicate, or libpfm failing to initialise. An empty list means DefaultEvents().
Result<std::vector<EventSpec>> ResolveEvents(const std::vector<std::string>& names);

// One event's value over the counting window of one thread (or a sum over threads).
struct Reading {
  std::string event;
  EventKind kind = EventKind::kHardware;
  double value = 0;  // scaled when multiplexed; NaN when !available
  uint64_t raw = 0;  // unscaled kernel count (tsc: ticks); meaningless when !available
  std::string unit;
  bool available = false;
  bool multiplexed = false;
  double running_fraction = 1;  // time_running / time_enabled (1 when never multiplexed)
  std::string note;             // why unavailable; multiplexing; the TSC's rate
};

class ThreadCounters {
 public:
  // Opens `events` (empty = DefaultEvents()) on thread `tid` (0 = the calling thread).
  // Fails only for unknown names or a thread that does not exist; events the machine cannot
  // count are opened as unavailable readings.
  static Result<ThreadCounters> Open(const std::vector<std::string>& events, int tid = 0);

  ThreadCounters(ThreadCounters&&) noexcept;
  ThreadCounters& operator=(ThreadCounters&&) noexcept;
  ~ThreadCounters();

  Status Start();  // reset + enable every group, take the start TSC
  Status Stop();   // disable every group, take the stop TSC; Read() afterwards is stable
  // Values since Start() (up to Stop() when stopped, up to now while running), in the order
  // the events were requested. Error before the first Start().
  Result<std::vector<Reading>> Read() const;

  int tid() const;  // the thread's kernel tid (resolved from 0 at Open)
  const std::vector<EventSpec>& events() const;

 private:
  struct Impl;
  explicit ThreadCounters(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Counters over several threads: the backend's queue workers (Backend::WorkerTids()), the
// front-end's threads, or the calling thread, each with a label.
class Session {
 public:
  static Result<Session> Create(const std::vector<std::string>& events);

  Status Attach(int tid, const std::string& label);  // tid 0 = the calling thread
  Status Start();
  Status Stop();

  struct ThreadReading {
    std::string label;
    int tid = 0;
    std::vector<Reading> readings;
  };
  Result<std::vector<ThreadReading>> ReadAll() const;

  size_t threads() const { return threads_.size(); }
  const std::vector<std::string>& event_names() const { return names_; }

 private:
  explicit Session(std::vector<std::string> names) : names_(std::move(names)) {}
  std::vector<std::string> names_;
  std::vector<std::pair<std::string, ThreadCounters>> threads_;
};

// Adds the same event over threads (e.g. all queue workers of a run). A sum is available only
// when every part is; multiplexed when any part is; for "tsc" (a wall clock, not a per-thread
// count) the sum is the longest window, not the total.
std::vector<Reading> SumReadings(const std::vector<std::vector<Reading>>& per_thread);

// What `vhostlab counters` prints: for each event, whether it counts on this machine and why
// not. Each event is opened alone on the calling thread and counted over a short busy loop.
// Unknown names come back as unavailable with the libpfm error, not as an Error, so one bad
// name does not hide the rest.
struct EventStatus {
  std::string name;
  std::string pfm_name;
  EventKind kind = EventKind::kHardware;
  bool available = false;
  std::string reason;  // empty when available
  double sample = 0;   // the value over the probe loop (NaN when unavailable)
  std::string unit;
};
std::vector<EventStatus> ProbeEvents(const std::vector<std::string>& names);

// The threads of process `pid` (0 = this process) with their names (/proc/PID/task/*/comm), in
// tid order: how to find another process's workers to attach to, e.g. dpdk-testpmd's forwarding
// lcores ("rte-worker-N"). Error when the process does not exist.
struct ThreadInfo {
  int tid = 0;
  std::string name;
};
Result<std::vector<ThreadInfo>> ListThreads(int pid = 0);

// How ThreadCounters::Open groups `events`: hardware events split into groups a real PMU can
// schedule (HardwareGroupSize(), group_read.hpp), software events in one group; the TSC is no
// perf event. One line, for `vhostlab counters` and run records.
std::string DescribeGrouping(const std::vector<EventSpec>& events);

// Whether the kernel exposes a hardware PMU (/sys/bus/event_source/devices/cpu*), and
// /proc/sys/kernel/perf_event_paranoid (-100 when unreadable).
bool HaveHardwarePmu();
int PerfEventParanoid();

}  // namespace vhostlab::counters
