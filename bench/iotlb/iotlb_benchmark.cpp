// IOTLB micro-benchmarks (Google Benchmark). Names parse into columns:
//   BM_Translate/<design>/<dispatch inline|virtual>/<entries>/<pattern>/<page>
//   BM_Insert/<design>/<entries>             (filling an empty table up to <entries>)
//   BM_InsertInto/<design>/<entries>         (a new page into a table holding <entries>)
//   BM_Invalidate/<design>/<page|range|all>/<entries>
//   BM_ReplicaApply/<design>/<update|invalidate>/<ops>
//   BM_Contended/<design>/<readers>
// Every translate benchmark first checks each lookup of its workload against `reference` and
// refuses to time a design that disagrees (SkipWithError). "inline" calls the design's
// Translate() directly (templated, inlinable); "virtual" goes through AnyIotlb, whose
// implementation lives in another translation unit, to show what dynamic dispatch costs.
// Counters: bytes_per_entry (MemoryBytes()/Size()), entries, and for micro-caches the slow-path
// share (cache_miss_ratio). list is benchmarked only up to its capacity (2048, as DPDK): past
// it, DPDK's list evicts and thrashes, which is a miss-path effect, not a lookup cost.
// Control-path benchmarks check their effect (table sizes, operations applied) before timing too.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <string_view>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/iotlb/workload.hpp"
#include "core/iotlb/any_iotlb.hpp"
#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/reference/reference.hpp"
#include "core/iotlb/registry.hpp"
#include "core/iotlb/replicated.hpp"

namespace vhostlab::bench {
namespace {

using namespace vhostlab::iotlb;

// Designs are benchmarked with everything registered plus the variants kept only for comparison.
template <typename F>
void ForEachBenchDesign(F&& f) {
  ForEachDesign(f);
  f.template operator()<SortedOther>();
  f.template operator()<MicroCacheHashDirect>();
}

template <typename D>
constexpr bool IsRegistered() {
  return []<Design... Ds>(DesignList<Ds...>) {
    return (std::is_same_v<D, Ds> || ...);
  }(AllDesigns{});
}

template <typename D>
constexpr std::size_t CapacityOf() {
  if constexpr (requires { D::kCapacity; }) {
    return D::kCapacity;
  } else {
    return ~std::size_t{0};
  }
}

// The workload and its reference table, shared by consecutive benchmarks (one slot: benchmarks
// are registered so that all designs for one workload run back to back).
struct Prepared {
  std::string key;
  Workload w;
  Reference ref;
};

const Prepared& GetWorkload(std::size_t n, PageKind page, Pattern pattern) {
  static std::unique_ptr<Prepared> slot;
  const std::string key = std::to_string(n) + PageName(page) + PatternName(pattern);
  if (!slot || slot->key != key) {
    slot.reset();
    auto p = std::make_unique<Prepared>();
    p->key = key;
    p->w = MakeWorkload(n, page, pattern);
    for (const Entry& e : p->w.entries) p->ref.Insert(e.range, e.uaddr, e.perm);
    slot = std::move(p);
  }
  return *slot;
}

// Checks every lookup of the workload against the reference; "" when all agree.
template <typename T>
std::string Verify(const T& table, const Prepared& p) {
  for (uint64_t iova : p.w.iovas) {
    const Translation want = p.ref.Translate(iova, Workload::kLen, Perm::kRead);
    const Translation got = table.Translate(iova, Workload::kLen, Perm::kRead);
    if (got.outcome != want.outcome || got.uaddr != want.uaddr || got.len != want.len) {
      char buf[128];
      std::snprintf(buf, sizeof(buf), "translation of 0x%llx disagrees with reference",
                    static_cast<unsigned long long>(iova));
      return buf;
    }
  }
  return "";
}

template <typename T>
void TimeLookups(benchmark::State& state, const T& table, const Workload& w) {
  const uint64_t* iovas = w.iovas.data();
  const std::size_t mask = w.iovas.size() - 1;
  std::size_t i = 0;
  for (auto _ : state) {
    const Translation t = table.Translate(iovas[i], Workload::kLen, Perm::kRead);
    benchmark::DoNotOptimize(t);
    i = (i + 1) & mask;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

template <Design D>
void TranslateInline(benchmark::State& state, std::size_t n, PageKind page, Pattern pattern) {
  const Prepared& p = GetWorkload(n, page, pattern);
  auto table = std::make_unique<D>();
  Fill(*table, p.w.entries);
  if (const std::string err = Verify(*table, p); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  uint64_t misses_before = 0;
  if constexpr (requires { table->CacheMisses(); }) misses_before = table->CacheMisses();
  TimeLookups(state, *table, p.w);
  state.counters["entries"] = static_cast<double>(table->Size());
  state.counters["bytes_per_entry"] =
      static_cast<double>(table->MemoryBytes()) / static_cast<double>(table->Size());
  if constexpr (requires { table->CacheMisses(); }) {
    state.counters["cache_miss_ratio"] =
        static_cast<double>(table->CacheMisses() - misses_before) /
        static_cast<double>(std::max<int64_t>(1, state.iterations()));
  }
}

void TranslateVirtual(benchmark::State& state, std::string name, std::size_t n, PageKind page,
                      Pattern pattern) {
  const Prepared& p = GetWorkload(n, page, pattern);
  std::unique_ptr<AnyIotlb> table = MakeIotlb(name);
  table->BulkLoad(p.w.entries);
  if (const std::string err = Verify(*table, p); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  TimeLookups(state, *table, p.w);
  state.counters["entries"] = static_cast<double>(table->Size());
}

template <Design D>
void Insert(benchmark::State& state, std::size_t n) {
  Workload w = MakeWorkload(n, PageKind::k4K, Pattern::kUniform);
  std::mt19937_64 rng(7);
  std::shuffle(w.entries.begin(), w.entries.end(), rng);  // arrival order is not IOVA order
  auto table = std::make_unique<D>();
  for (auto _ : state) {
    state.PauseTiming();
    table->Clear();
    state.ResumeTiming();
    for (const Entry& e : w.entries) benchmark::DoNotOptimize(table->Insert(e.range, e.uaddr, e.perm));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

// A table of `n` random 4 KiB pages plus a pool of `fresh` other pages of the same window (holes
// the table does not map), for timing UPDATEs of new pages into a table of a given size.
struct TableAndFresh {
  std::vector<Entry> table;  // sorted by first IOVA
  std::vector<Entry> fresh;  // random order, disjoint from `table`
};

TableAndFresh SplitFresh(std::size_t n, std::size_t fresh) {
  std::vector<Entry> all = MakeWorkload(n + fresh, PageKind::k4K, Pattern::kUniform).entries;
  std::mt19937_64 rng(13);
  std::shuffle(all.begin(), all.end(), rng);
  TableAndFresh out;
  out.fresh.assign(all.end() - static_cast<std::ptrdiff_t>(fresh), all.end());
  all.resize(n);
  std::sort(all.begin(), all.end(),
            [](const Entry& a, const Entry& b) { return a.range.first < b.range.first; });
  out.table = std::move(all);
  return out;
}

// ns per UPDATE of a page the table does not hold, into a table holding `n` entries (the steady
// state of a strict-mode guest: map, use, unmap). Each iteration inserts the next 64 pages of a
// 1024-page pool and removes them again untimed, so the table stays at `n` entries.
template <Design D>
void InsertInto(benchmark::State& state, std::size_t n) {
  constexpr std::size_t kBatch = 64;
  constexpr std::size_t kPool = 1024;
  const TableAndFresh t = SplitFresh(n, kPool);
  auto table = std::make_unique<D>();
  Fill(*table, t.table);
  // One untimed round first: every pool page must become translatable and go away again.
  for (const Entry& e : t.fresh) {
    if (table->Insert(e.range, e.uaddr, e.perm) != InsertStatus::kOk ||
        table->Translate(e.range.first, Workload::kLen, Perm::kRead).uaddr != e.uaddr) {
      state.SkipWithError("an UPDATE of a fresh page did not take effect");
      return;
    }
    table->Invalidate(e.range);
  }
  if (table->Size() != n) {
    state.SkipWithError("the table did not return to its size after invalidating fresh pages");
    return;
  }
  std::size_t next = 0;
  for (auto _ : state) {
    const Entry* batch = t.fresh.data() + next;
    for (std::size_t i = 0; i < kBatch; ++i) {
      benchmark::DoNotOptimize(table->Insert(batch[i].range, batch[i].uaddr, batch[i].perm));
    }
    state.PauseTiming();
    for (std::size_t i = 0; i < kBatch; ++i) table->Invalidate(batch[i].range);
    next = (next + kBatch) % kPool;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatch));
  state.counters["entries"] = static_cast<double>(n);
}

enum class InvalidateKind { kPage, kRange, kAll };

template <Design D>
void Invalidate(benchmark::State& state, InvalidateKind kind, std::size_t n) {
  const Workload w = MakeWorkload(n, PageKind::k4K, Pattern::kUniform);
  auto table = std::make_unique<D>();
  Fill(*table, w.entries);
  constexpr std::size_t kBatch = 64;
  std::mt19937_64 rng(11);
  int64_t ops = 0;
  for (auto _ : state) {
    switch (kind) {
      case InvalidateKind::kPage: {
        std::size_t picks[kBatch];
        for (auto& pick : picks) pick = rng() % n;
        for (std::size_t pick : picks) benchmark::DoNotOptimize(table->Invalidate(w.entries[pick].range));
        state.PauseTiming();
        for (std::size_t pick : picks) {
          const Entry& e = w.entries[pick];
          table->Insert(e.range, e.uaddr, e.perm);
        }
        state.ResumeTiming();
        ops += kBatch;
        break;
      }
      case InvalidateKind::kRange: {
        // One INVALIDATE covering kBatch consecutive entries (and the holes between them).
        const std::size_t lo = rng() % (n > kBatch ? n - kBatch : 1);
        const std::size_t hi = std::min(n, lo + kBatch) - 1;
        benchmark::DoNotOptimize(
            table->Invalidate({w.entries[lo].range.first, w.entries[hi].range.last}));
        state.PauseTiming();
        for (std::size_t i = lo; i <= hi; ++i) {
          table->Insert(w.entries[i].range, w.entries[i].uaddr, w.entries[i].perm);
        }
        state.ResumeTiming();
        ops += 1;
        break;
      }
      case InvalidateKind::kAll: {
        benchmark::DoNotOptimize(table->Invalidate(kFullRange));
        state.PauseTiming();
        Fill(*table, w.entries);
        state.ResumeTiming();
        ops += 1;
        break;
      }
    }
  }
  state.SetItemsProcessed(ops);
}

// The replica log apply: what a worker pays in Replicated<D>::Reader to apply `batch` logged
// operations to its replica of a 16 Ki-entry table (ns per operation = the one call that runs
// Drain(), divided by `batch`). The benchmark thread is both writer and the one reader:
//  - update: `batch` UPDATEs of fresh pages are logged (Insert() does not wait), then the timed
//    Quiesce() applies them;
//  - invalidate: the reader goes Offline() (so the writer's grace period does not wait for its
//    own thread), `batch` INVALIDATEs of mapped pages are logged, then the timed Online() applies
//    them. Online() and Quiesce() apply the log with the same Drain(); Online() is what a worker
//    calls when it wakes.
// The operations are undone untimed after each iteration, so every iteration sees 16 Ki entries.
enum class LogOp { kUpdate, kInvalidate };

inline constexpr std::size_t kReplicaEntries = 16384;

template <Design D>
void ReplicaApply(benchmark::State& state, LogOp op, std::size_t batch) {
  constexpr std::size_t kEntries = kReplicaEntries;
  constexpr std::size_t kPool = 1024;
  const TableAndFresh t = SplitFresh(kEntries, kPool);
  Replicated<D> rep;
  for (const Entry& e : t.table) rep.Insert(e.range, e.uaddr, e.perm);
  auto reader = rep.RegisterReader();  // registers this thread with liburcu-qsbr
  std::mt19937_64 rng(17);
  std::size_t next = 0;
  std::string error;
  for (auto _ : state) {
    const uint64_t applied_before = reader->applied();
    std::chrono::steady_clock::time_point t0, t1;
    if (op == LogOp::kUpdate) {
      for (std::size_t i = 0; i < batch; ++i) {
        const Entry& e = t.fresh[(next + i) % kPool];
        rep.Insert(e.range, e.uaddr, e.perm);
      }
      t0 = std::chrono::steady_clock::now();
      reader->Quiesce();
      t1 = std::chrono::steady_clock::now();
      reader->Offline();
      for (std::size_t i = 0; i < batch; ++i) rep.Invalidate(t.fresh[(next + i) % kPool].range);
      reader->Online();
      next = (next + batch) % kPool;
    } else {
      const std::size_t first = rng() % (kEntries - batch + 1);
      reader->Offline();
      for (std::size_t i = first; i < first + batch; ++i) rep.Invalidate(t.table[i].range);
      t0 = std::chrono::steady_clock::now();
      reader->Online();
      t1 = std::chrono::steady_clock::now();
      for (std::size_t i = first; i < first + batch; ++i) {
        rep.Insert(t.table[i].range, t.table[i].uaddr, t.table[i].perm);
      }
      reader->Quiesce();
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    // Each timed call applied exactly `batch` operations; undoing them applied `batch` more.
    if (reader->applied() - applied_before != 2 * batch || reader->table().Size() != kEntries) {
      error = "the replica did not apply exactly the logged operations";
      break;
    }
  }
  reader.reset();  // unregisters this thread before `rep` goes away
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.counters["ops_per_apply"] = static_cast<double>(batch);
  state.counters["entries"] = static_cast<double>(kEntries);
}

// Nearest-rank percentile (q in (0, 1]) of `v`, which it sorts.
double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<std::size_t>(rank, 1)) - 1];
}

// N reader threads translate through their Replicated<D> replicas (quiescing every 64 lookups)
// while the benchmark thread remaps and invalidates pages of the same table. Reported: reader
// ns per lookup (manual time = reader wall time / lookups per reader) and the INVALIDATE ack
// latency including its grace period, from one sample per INVALIDATE: mean (invalidate_us), p50
// and p99 (invalidate_ack_p50_us, invalidate_ack_p99_us).
template <Design D>
void Contended(benchmark::State& state, int n_readers) {
  const Workload w = MakeWorkload(2048, PageKind::k4K, Pattern::kUniform);
  for (auto _ : state) {
    Replicated<D> rep;
    for (const Entry& e : w.entries) rep.Insert(e.range, e.uaddr, e.perm);
    std::atomic<bool> stop{false};
    std::atomic<int> ready{0};
    std::atomic<uint64_t> lookups{0};
    std::atomic<uint64_t> hits{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < n_readers; ++r) {
      readers.emplace_back([&, r] {
        auto reader = rep.RegisterReader();
        ready.fetch_add(1);
        const std::size_t mask = w.iovas.size() - 1;
        std::size_t i = static_cast<std::size_t>(r) * 4096;
        uint64_t local = 0;
        uint64_t local_hits = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          reader->Quiesce();
          for (int k = 0; k < 64; ++k) {
            const Translation t = reader->table().Translate(w.iovas[i], Workload::kLen, Perm::kRead);
            local_hits += t.hit();
            i = (i + 1) & mask;
          }
          local += 64;
        }
        lookups.fetch_add(local);
        hits.fetch_add(local_hits);
      });
    }
    while (ready.load() != n_readers) std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    const auto until = start + std::chrono::milliseconds(200);
    std::mt19937_64 rng(3);
    std::vector<double> ack_us;
    ack_us.reserve(1 << 16);
    while (std::chrono::steady_clock::now() < until) {
      const Entry& e = w.entries[rng() % w.entries.size()];
      const auto t0 = std::chrono::steady_clock::now();
      rep.Invalidate(e.range);
      ack_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      rep.Insert(e.range, e.uaddr, e.perm);
    }
    stop = true;
    for (auto& t : readers) t.join();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_reader = static_cast<double>(lookups.load()) / n_readers;
    state.SetIterationTime(elapsed / per_reader);  // seconds per lookup of one reader
    double ack_sum_us = 0;
    for (double us : ack_us) ack_sum_us += us;
    state.counters["invalidate_us"] = ack_sum_us / static_cast<double>(ack_us.size());
    state.counters["invalidates"] = static_cast<double>(ack_us.size());
    state.counters["invalidate_ack_p50_us"] = Percentile(ack_us, 0.50);
    state.counters["invalidate_ack_p99_us"] = Percentile(ack_us, 0.99);
    state.counters["hit_ratio"] =
        static_cast<double>(hits.load()) / static_cast<double>(std::max<uint64_t>(1, lookups.load()));
  }
}

// "a/b/c": built with append (GCC 12's -Wrestrict misfires on chains of operator+).
std::string Path(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) {
    if (!out.empty()) out += '/';
    out.append(part);
  }
  return out;
}

void RegisterAll() {
  const std::size_t kEntries[] = {16, 256, 2048, 16384, 262144};
  const PageKind kPages[] = {PageKind::k4K, PageKind::k2M, PageKind::kMixed};
  const Pattern kPatterns[] = {Pattern::kSeq, Pattern::kUniform, Pattern::kZipf, Pattern::kHotset};
  for (std::size_t n : kEntries) {
    for (PageKind page : kPages) {
      for (Pattern pattern : kPatterns) {
        const std::string entries = std::to_string(n);
        ForEachBenchDesign([&]<Design D>() {
          if (n > CapacityOf<D>()) return;
          const std::string design(D::kName);
          benchmark::RegisterBenchmark(
              Path({"BM_Translate", design, "inline", entries, PatternName(pattern), PageName(page)})
                  .c_str(),
                                       [=](benchmark::State& s) { TranslateInline<D>(s, n, page, pattern); });
          if constexpr (IsRegistered<D>()) {
            benchmark::RegisterBenchmark(
                Path({"BM_Translate", design, "virtual", entries, PatternName(pattern),
                      PageName(page)})
                    .c_str(),
                [=](benchmark::State& s) { TranslateVirtual(s, design, n, page, pattern); });
          }
        });
      }
    }
  }
  ForEachBenchDesign([&]<Design D>() {
    const std::string design(D::kName);
    for (std::size_t n : {std::size_t{1024}, std::size_t{16384}}) {
      if (n > CapacityOf<D>()) continue;
      benchmark::RegisterBenchmark(Path({"BM_Insert", design, std::to_string(n)}).c_str(),
                                   [=](benchmark::State& s) { Insert<D>(s, n); })
          ->Unit(benchmark::kMicrosecond);
    }
    for (std::size_t n : {std::size_t{1024}, std::size_t{16384}, std::size_t{65536},
                          std::size_t{262144}}) {
      if (n + 64 > CapacityOf<D>()) continue;  // list: at most 2048 entries, as DPDK
      benchmark::RegisterBenchmark(Path({"BM_InsertInto", design, std::to_string(n)}).c_str(),
                                   [=](benchmark::State& s) { InsertInto<D>(s, n); });
    }
    for (std::size_t n : {std::size_t{1024}, std::size_t{16384}, std::size_t{65536},
                          std::size_t{262144}}) {
      if (n > CapacityOf<D>()) continue;
      for (auto [kind, kind_name] : {std::pair{InvalidateKind::kPage, "page"},
                                     std::pair{InvalidateKind::kRange, "range"},
                                     std::pair{InvalidateKind::kAll, "all"}}) {
        auto* b = benchmark::RegisterBenchmark(
            Path({"BM_Invalidate", design, kind_name, std::to_string(n)}).c_str(),
            [=](benchmark::State& s) { Invalidate<D>(s, kind, n); });
        // The untimed refill after each range/full invalidate costs far more than the timed
        // part; a fixed iteration count keeps the run bounded (the library would otherwise run
        // until the *timed* part alone reached min_time). Larger tables refill more slowly
        // (sorted: an O(n) memmove per entry), so they get fewer iterations.
        const int scale = n <= 16384 ? 1 : (n <= 65536 ? 10 : 40);
        if (kind == InvalidateKind::kRange) b->Iterations(2000 / scale);
        if (kind == InvalidateKind::kAll) b->Iterations(100 / std::min(scale, 10));
      }
    }
    // The replica holds 16 Ki entries: beyond list's capacity (2048, as DPDK), so list is left out.
    for (auto [op, op_name] : {std::pair{LogOp::kUpdate, "update"},
                               std::pair{LogOp::kInvalidate, "invalidate"}}) {
      for (std::size_t batch : {std::size_t{1}, std::size_t{64}, std::size_t{1024}}) {
        if (kReplicaEntries > CapacityOf<D>()) continue;
        // About 16 Ki logged operations per run (at least 16 applies): bounded whatever the
        // design's per-operation cost, and the untimed undo costs as much as the timed apply.
        benchmark::RegisterBenchmark(
            Path({"BM_ReplicaApply", design, op_name, std::to_string(batch)}).c_str(),
            [=](benchmark::State& s) { ReplicaApply<D>(s, op, batch); })
            ->UseManualTime()
            ->Iterations(
                static_cast<benchmark::IterationCount>(std::max<std::size_t>(16, 16384 / batch)));
      }
    }
    for (int readers : {1, 2}) {
      benchmark::RegisterBenchmark(Path({"BM_Contended", design, std::to_string(readers)}).c_str(),
                                   [=](benchmark::State& s) { Contended<D>(s, readers); })
          ->UseManualTime()
          ->Iterations(1);
    }
  });
}

}  // namespace
}  // namespace vhostlab::bench

int main(int argc, char** argv) {
  vhostlab::bench::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("vhostlab_version", VHOSTLAB_VERSION);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
