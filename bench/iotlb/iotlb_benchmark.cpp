// IOTLB micro-benchmarks (Google Benchmark). Names parse into columns:
//   BM_Translate/<design>/<dispatch inline|virtual>/<entries>/<pattern>/<page>
//   BM_Insert/<design>/<entries>
//   BM_Invalidate/<design>/<page|range|all>/<entries>
//   BM_Contended/<design>/<readers>
// Every translate benchmark first checks each lookup of its workload against `reference` and
// refuses to time a design that disagrees (SkipWithError). "inline" calls the design's
// Translate() directly (templated, inlinable); "virtual" goes through AnyIotlb, whose
// implementation lives in another translation unit, to show what dynamic dispatch costs.
// Counters: bytes_per_entry (MemoryBytes()/Size()), entries, and for micro-caches the slow-path
// share (cache_miss_ratio). list is benchmarked only up to its capacity (2048, as DPDK): past
// it, DPDK's list evicts and thrashes, which is a miss-path effect, not a lookup cost.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
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

// N reader threads translate through their Replicated<D> replicas (quiescing every 64 lookups)
// while the benchmark thread remaps and invalidates pages of the same table. Reported: reader
// ns per lookup (manual time = reader wall time / lookups per reader) and the mean INVALIDATE
// latency including its grace period (invalidate_us).
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
    uint64_t invalidates = 0;
    double invalidate_ns = 0;
    while (std::chrono::steady_clock::now() < until) {
      const Entry& e = w.entries[rng() % w.entries.size()];
      const auto t0 = std::chrono::steady_clock::now();
      rep.Invalidate(e.range);
      invalidate_ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      ++invalidates;
      rep.Insert(e.range, e.uaddr, e.perm);
    }
    stop = true;
    for (auto& t : readers) t.join();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_reader = static_cast<double>(lookups.load()) / n_readers;
    state.SetIterationTime(elapsed / per_reader);  // seconds per lookup of one reader
    state.counters["invalidate_us"] = invalidate_ns / 1e3 / static_cast<double>(invalidates);
    state.counters["invalidates"] = static_cast<double>(invalidates);
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
      for (auto [kind, kind_name] : {std::pair{InvalidateKind::kPage, "page"},
                                     std::pair{InvalidateKind::kRange, "range"},
                                     std::pair{InvalidateKind::kAll, "all"}}) {
        auto* b = benchmark::RegisterBenchmark(
            Path({"BM_Invalidate", design, kind_name, std::to_string(n)}).c_str(),
            [=](benchmark::State& s) { Invalidate<D>(s, kind, n); });
        // The untimed refill after each range/full invalidate costs far more than the timed
        // part; a fixed iteration count keeps the run bounded (the library would otherwise run
        // until the *timed* part alone reached min_time).
        if (kind == InvalidateKind::kRange) b->Iterations(2000);
        if (kind == InvalidateKind::kAll) b->Iterations(100);
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
