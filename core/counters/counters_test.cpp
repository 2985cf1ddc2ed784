// Tests of the counter collector against the real kernel (no mocks): software events must count
// everywhere; hardware events either count or are unavailable with a reason, never 0 or
// silently missing; attaching to another thread counts that thread, not the caller.
#include "core/counters/counters.hpp"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "core/counters/run_counters.hpp"
#include "core/counters/tsc.hpp"

namespace vhostlab::counters {
namespace {

const Reading* Find(const std::vector<Reading>& readings, const std::string& name) {
  for (const Reading& r : readings) {
    if (r.event == name) return &r;
  }
  return nullptr;
}

double ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// Burns `ns` of this thread's CPU time (measured by the kernel, so it holds on a busy machine).
void SpinCpu(double ns) {
  const double until = ThreadCpuNs() + ns;
  volatile uint64_t x = 0;
  while (ThreadCpuNs() < until) {
    for (int i = 0; i < 1000; ++i) x = x + i;
  }
}

TEST(ResolveEvents, DefaultSetResolves) {
  auto specs = ResolveEvents({});
  ASSERT_TRUE(specs.ok()) << specs.error().message;
  ASSERT_EQ(specs->size(), DefaultEvents().size());
  for (const EventSpec& s : *specs) {
    EXPECT_FALSE(s.pfm_name.empty()) << s.name;
    EXPECT_FALSE(s.unit.empty()) << s.name;
  }
  EXPECT_EQ((*specs)[0].kind, EventKind::kHardware);  // cycles
  const auto task_clock = std::find_if(specs->begin(), specs->end(),
                                       [](const EventSpec& s) { return s.name == "task-clock"; });
  ASSERT_NE(task_clock, specs->end());
  EXPECT_EQ(task_clock->kind, EventKind::kSoftware);
  EXPECT_EQ(task_clock->unit, "ns");
  EXPECT_EQ(specs->back().kind, EventKind::kTsc);
}

TEST(ResolveEvents, LibpfmNamesPassThrough) {
  auto specs = ResolveEvents({"perf::PERF_COUNT_HW_CACHE_L1D:READ:MISS", "PAGE-FAULTS"});
  ASSERT_TRUE(specs.ok()) << specs.error().message;
  EXPECT_EQ((*specs)[0].kind, EventKind::kHardware);
  EXPECT_EQ((*specs)[1].kind, EventKind::kSoftware);
}

TEST(ResolveEvents, UnknownNameIsAnErrorNamingIt) {
  auto specs = ResolveEvents({"cycles", "no-such-event-xyz"});
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.error().message.find("no-such-event-xyz"), std::string::npos);
  auto tc = ThreadCounters::Open({"bogus-event"});
  ASSERT_FALSE(tc.ok());
  EXPECT_NE(tc.error().message.find("bogus-event"), std::string::npos);
}

TEST(ResolveEvents, DuplicateIsAnError) {
  auto specs = ResolveEvents({"task-clock", "task-clock"});
  ASSERT_FALSE(specs.ok());
  EXPECT_NE(specs.error().message.find("twice"), std::string::npos);
}

TEST(ThreadCounters, ReadBeforeStartIsAnError) {
  auto tc = ThreadCounters::Open({"task-clock"});
  ASSERT_TRUE(tc.ok()) << tc.error().message;
  EXPECT_FALSE(tc->Read().ok());
}

TEST(ThreadCounters, NonexistentThreadIsAnError) {
  auto tc = ThreadCounters::Open({"task-clock"}, 0x3fffffff);
  ASSERT_FALSE(tc.ok());
  EXPECT_NE(tc.error().message.find("tid"), std::string::npos);
}

TEST(ThreadCounters, DefaultSetOnCallingThread) {
  auto tc = ThreadCounters::Open({});
  ASSERT_TRUE(tc.ok()) << tc.error().message;
  EXPECT_EQ(tc->tid(), static_cast<int>(syscall(SYS_gettid)));
  ASSERT_TRUE(tc->Start().ok());
  // Fresh anonymous pages: each first touch is one page fault (THP is madvise-only here, and
  // the mapping is not madvised, so no huge page can hide them).
  constexpr size_t kPages = 64;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mem =
      mmap(nullptr, kPages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  for (size_t i = 0; i < kPages; ++i) static_cast<volatile char*>(mem)[i * page] = 1;
  SpinCpu(5e6);
  ASSERT_TRUE(tc->Stop().ok());
  munmap(mem, kPages * page);
  auto readings = tc->Read();
  ASSERT_TRUE(readings.ok()) << readings.error().message;
  ASSERT_EQ(readings->size(), DefaultEvents().size());

  for (const Reading& r : *readings) {
    if (r.available) {
      EXPECT_TRUE(std::isfinite(r.value)) << r.event;
    } else {
      // Never a silent zero: no value, and a reason.
      EXPECT_TRUE(std::isnan(r.value)) << r.event;
      EXPECT_EQ(r.note.rfind("unavailable", 0), 0u) << r.event << ": " << r.note;
    }
    if (r.kind == EventKind::kHardware && !HaveHardwarePmu()) {
      EXPECT_FALSE(r.available) << r.event;
      EXPECT_NE(r.note.find("no PMU"), std::string::npos) << r.note;
    }
  }
  const Reading* cycles = Find(*readings, "cycles");
  ASSERT_NE(cycles, nullptr);
  if (cycles->available) {
    EXPECT_GT(cycles->value, 0);
  }

  const Reading* task_clock = Find(*readings, "task-clock");
  ASSERT_TRUE(task_clock && task_clock->available) << (task_clock ? task_clock->note : "");
  EXPECT_GE(task_clock->value, 4e6);  // at least the 5 ms of CPU burnt above, minus clock skew
  const Reading* faults = Find(*readings, "page-faults");
  ASSERT_TRUE(faults && faults->available);
  EXPECT_GE(faults->value, kPages);
  const Reading* tsc = Find(*readings, "tsc");
  ASSERT_TRUE(tsc && tsc->available);
  EXPECT_GT(tsc->value, 0);
  EXPECT_EQ(tsc->unit, "ticks");
}

TEST(ThreadCounters, StoppedCountersStayStable) {
  auto tc = ThreadCounters::Open({"task-clock", "tsc"});
  ASSERT_TRUE(tc.ok());
  ASSERT_TRUE(tc->Start().ok());
  SpinCpu(1e6);
  ASSERT_TRUE(tc->Stop().ok());
  auto a = tc->Read();
  SpinCpu(2e6);
  auto b = tc->Read();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)[0].raw, (*b)[0].raw);
  EXPECT_EQ((*a)[1].raw, (*b)[1].raw);
}

// A worker thread that publishes its tid, waits for `go`, burns CPU, and waits for `done`.
struct Worker {
  std::atomic<int> tid{0};
  std::atomic<bool> go{false};
  std::atomic<bool> finished{false};
  std::thread thread;
  explicit Worker(double spin_ns) {
    thread = std::thread([this, spin_ns] {
      tid = static_cast<int>(syscall(SYS_gettid));
      while (!go) std::this_thread::yield();
      SpinCpu(spin_ns);
      finished = true;
    });
    while (tid == 0) std::this_thread::yield();
  }
  void RunToEnd() {
    go = true;
    while (!finished) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Worker() {
    go = true;
    thread.join();
  }
};

TEST(ThreadCounters, AttachToAnotherThreadCountsThatThread) {
  Worker worker(30e6);
  auto theirs = ThreadCounters::Open({"task-clock", "context-switches"}, worker.tid);
  auto mine = ThreadCounters::Open({"task-clock"});
  ASSERT_TRUE(theirs.ok()) << theirs.error().message;
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(theirs->tid(), worker.tid.load());
  ASSERT_TRUE(theirs->Start().ok());
  ASSERT_TRUE(mine->Start().ok());
  worker.RunToEnd();  // the caller sleeps meanwhile
  ASSERT_TRUE(theirs->Stop().ok());
  ASSERT_TRUE(mine->Stop().ok());
  auto t = theirs->Read();
  auto m = mine->Read();
  ASSERT_TRUE(t.ok() && m.ok());
  ASSERT_TRUE((*t)[0].available);
  EXPECT_GE((*t)[0].value, 25e6);           // the worker's 30 ms of CPU
  EXPECT_LT((*m)[0].value, (*t)[0].value);  // the sleeping caller burnt less than the worker
  EXPECT_TRUE((*t)[1].available);
}

TEST(Session, SumsOverAttachedThreads) {
  Worker a(10e6), b(10e6);
  auto session = Session::Create({"task-clock", "cycles", "tsc"});
  ASSERT_TRUE(session.ok()) << session.error().message;
  ASSERT_TRUE(session->Attach(a.tid, "worker-a").ok());
  ASSERT_TRUE(session->Attach(b.tid, "worker-b").ok());
  EXPECT_FALSE(session->Attach(0x3fffffff, "ghost").ok());
  EXPECT_EQ(session->threads(), 2u);
  ASSERT_TRUE(session->Start().ok());
  a.RunToEnd();
  b.RunToEnd();
  ASSERT_TRUE(session->Stop().ok());
  auto all = session->ReadAll();
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].label, "worker-a");
  EXPECT_EQ((*all)[1].tid, b.tid.load());
  std::vector<std::vector<Reading>> parts;
  for (const auto& tr : *all) parts.push_back(tr.readings);
  const std::vector<Reading> sum = SumReadings(parts);
  ASSERT_EQ(sum.size(), 3u);
  EXPECT_DOUBLE_EQ(sum[0].value, parts[0][0].value + parts[1][0].value);
  EXPECT_GE(sum[0].value, 18e6);
  // cycles: available in the sum only if available on both threads.
  EXPECT_EQ(sum[1].available, parts[0][1].available && parts[1][1].available);
  if (!sum[1].available) {
    EXPECT_TRUE(std::isnan(sum[1].value));
  }
  // tsc is a wall clock: the longest window, not a total.
  EXPECT_DOUBLE_EQ(sum[2].value, std::max(parts[0][2].value, parts[1][2].value));
}

TEST(ListThreads, FindsANamedThreadOfThisProcess) {
  Worker worker(1e6);
  pthread_setname_np(worker.thread.native_handle(), "vl-probe-thread");
  auto threads = ListThreads(0);
  ASSERT_TRUE(threads.ok()) << threads.error().message;
  bool found = false;
  for (const ThreadInfo& t : *threads) {
    if (t.tid == worker.tid) {
      found = true;
      EXPECT_EQ(t.name, "vl-probe-thread");
    }
  }
  EXPECT_TRUE(found);
  auto by_pid = ListThreads(static_cast<int>(getpid()));
  ASSERT_TRUE(by_pid.ok());
  EXPECT_GE(by_pid->size(), 2u);
  EXPECT_FALSE(ListThreads(0x3fffffff).ok());
  worker.RunToEnd();
}

TEST(SumReadings, UnavailableAndMultiplexedPropagate) {
  Reading ok{"cycles", EventKind::kHardware, 100, 100, "count", true, false, 1, ""};
  Reading muxed{"cycles",
                EventKind::kHardware,
                200,
                50,
                "count",
                true,
                true,
                0.25,
                "multiplexed: counted 25.0% of the time, scaled"};
  Reading gone{"cycles", EventKind::kHardware, NAN, 0, "count", false, false,
               1,        "unavailable: no PMU"};
  auto s1 = SumReadings({{ok}, {muxed}});
  EXPECT_DOUBLE_EQ(s1[0].value, 300);
  EXPECT_TRUE(s1[0].multiplexed);
  EXPECT_DOUBLE_EQ(s1[0].running_fraction, 0.25);
  auto s2 = SumReadings({{ok}, {gone}});
  EXPECT_FALSE(s2[0].available);
  EXPECT_TRUE(std::isnan(s2[0].value));
  EXPECT_EQ(s2[0].note, "unavailable: no PMU");
}

TEST(ProbeEvents, ReportsEveryEventWithAReason) {
  auto statuses = ProbeEvents({"task-clock", "cycles", "not-an-event", "tsc"});
  ASSERT_EQ(statuses.size(), 4u);
  EXPECT_TRUE(statuses[0].available) << statuses[0].reason;
  EXPECT_GT(statuses[0].sample, 0);
  if (!statuses[1].available) {
    EXPECT_FALSE(statuses[1].reason.empty());
    EXPECT_TRUE(std::isnan(statuses[1].sample));
  }
  EXPECT_FALSE(statuses[2].available);
  EXPECT_NE(statuses[2].reason.find("not-an-event"), std::string::npos);
  EXPECT_TRUE(statuses[3].available);
}

TEST(TscClock, CalibratedAndConsistentWithSleep) {
  const TscClock& clock = TscClock::Get();
  EXPECT_GT(clock.hz, 1e8);
  EXPECT_LT(clock.hz, 1e10);
  EXPECT_EQ(&clock, &TscClock::Get());  // calibrated once
  const uint64_t t0 = ReadTsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const uint64_t t1 = ReadTsc();
  ASSERT_GT(t1, t0);
  // A sleep lasts at least what was asked for; the upper bound only catches a wrong factor.
  EXPECT_GE(clock.ToNanoseconds(t1 - t0), 19e6);
  EXPECT_LT(clock.ToNanoseconds(t1 - t0), 2e9);
  EXPECT_NE(clock.Describe().find("GHz"), std::string::npos);
}

const CounterRow* FindRow(const std::vector<CounterRow>& rows, const std::string& side, int queue,
                          const std::string& name) {
  for (const CounterRow& r : rows) {
    if (r.side == side && r.queue == queue && r.name == name) return &r;
  }
  return nullptr;
}

TEST(RunCounters, RowsPerQueuePerPacketAndPerTranslation) {
  Worker backend_q0(10e6), backend_q1(10e6), frontend_q0(5e6);
  auto rc = RunCounters::Create({"task-clock", "cycles", "tsc"});
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  ASSERT_TRUE(rc->Attach(backend_q0.tid, "backend", 0).ok());
  ASSERT_TRUE(rc->Attach(backend_q1.tid, "backend", 1).ok());
  ASSERT_TRUE(rc->Attach(frontend_q0.tid, "frontend", 0).ok());
  EXPECT_FALSE(rc->Attach(0x3fffffff, "backend", 2).ok());
  EXPECT_FALSE(rc->Attach(0, "backend", 2).ok());  // an unpublished tid, not "the caller"
  EXPECT_EQ(rc->threads(), 3u);
  ASSERT_TRUE(rc->Start().ok());
  backend_q0.RunToEnd();
  backend_q1.RunToEnd();
  frontend_q0.RunToEnd();
  ASSERT_TRUE(rc->Stop().ok());

  RunCounters::WorkMap work;
  work[{"backend", 0}] = {1000, 3000};
  work[{"backend", 1}] = {500, 1500};
  work[{"frontend", 0}] = {1500, 0};
  auto rows = rc->Rows(work);
  ASSERT_TRUE(rows.ok()) << rows.error().message;

  const CounterRow* q0 = FindRow(*rows, "backend", 0, "task-clock");
  const CounterRow* q0_pkt = FindRow(*rows, "backend", 0, "task-clock/packet");
  const CounterRow* q0_tr = FindRow(*rows, "backend", 0, "task-clock/translation");
  ASSERT_TRUE(q0 && q0_pkt && q0_tr);
  EXPECT_GE(q0->value, 9e6);
  EXPECT_DOUBLE_EQ(q0_pkt->value, q0->value / 1000);
  EXPECT_DOUBLE_EQ(q0_tr->value, q0->value / 3000);
  EXPECT_EQ(q0_pkt->unit, "ns/packet");
  EXPECT_EQ(q0_tr->unit, "ns/translation");

  // Side totals: sum over queues, divided by the summed work.
  const CounterRow* q1 = FindRow(*rows, "backend", 1, "task-clock");
  const CounterRow* total = FindRow(*rows, "backend", -1, "task-clock");
  const CounterRow* total_pkt = FindRow(*rows, "backend", -1, "task-clock/packet");
  ASSERT_TRUE(q1 && total && total_pkt);
  EXPECT_DOUBLE_EQ(total->value, q0->value + q1->value);
  EXPECT_DOUBLE_EQ(total_pkt->value, total->value / 1500);

  // No translations on the front-end: no per-translation row rather than a division by zero.
  EXPECT_NE(FindRow(*rows, "frontend", 0, "task-clock/packet"), nullptr);
  EXPECT_EQ(FindRow(*rows, "frontend", 0, "task-clock/translation"), nullptr);

  // Unavailable stays unavailable in every derived row.
  for (const CounterRow& r : *rows) {
    if (r.name.rfind("cycles", 0) != 0) continue;
    if (!r.available) {
      EXPECT_TRUE(std::isnan(r.value)) << r.name;
      EXPECT_FALSE(r.note.empty()) << r.name;
    }
    if (!HaveHardwarePmu()) {
      EXPECT_FALSE(r.available) << r.name;
    }
  }
}

TEST(RunCounters, UnknownEventIsAnError) {
  auto rc = RunCounters::Create({"cycles", "definitely-not-an-event"});
  ASSERT_FALSE(rc.ok());
  EXPECT_NE(rc.error().message.find("definitely-not-an-event"), std::string::npos);
}

}  // namespace
}  // namespace vhostlab::counters
