// The deterministic instruction-count driver for the CI gate (no Google Benchmark: its iteration
// counts depend on time, so they are not repeatable under valgrind).
//
// For every registered design and each of a few fixed workloads (bench/iotlb/workload.hpp, fixed
// seed) it fills the table, checks every lookup against `reference`, and then runs exactly
// --lookups translations. Only that loop is measured: under `valgrind --tool=callgrind
// --collect-atstart=no` the callgrind client requests switch collection on around the loop and
// dump one profile part per (design, workload), named "<design>/<workload>". Outside valgrind the
// requests are no-ops and the driver just prints what it ran (a smoke test of the same code).
// bench/gate/iotlb_gate.py runs it, turns the parts into instructions per lookup, and compares
// them with the committed baseline.
#include <valgrind/callgrind.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "bench/iotlb/workload.hpp"
#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/reference/reference.hpp"
#include "core/iotlb/registry.hpp"

namespace vhostlab::bench {
namespace {

using namespace vhostlab::iotlb;

struct GateWorkload {
  const char* name;
  std::size_t entries;
  PageKind page;
  Pattern pattern;
};

constexpr GateWorkload kWorkloads[] = {
    {"2048-uniform-4k", 2048, PageKind::k4K, Pattern::kUniform},
    {"2048-hotset-4k", 2048, PageKind::k4K, Pattern::kHotset},
    {"16384-zipf-mixed", 16384, PageKind::kMixed, Pattern::kZipf},
};

template <Design D>
[[gnu::noinline]] uint64_t RunLookups(const D& table, const Workload& w, std::size_t lookups) {
  uint64_t sum = 0;
  const std::size_t mask = w.iovas.size() - 1;
  for (std::size_t i = 0; i < lookups; ++i) {
    const Translation t = table.Translate(w.iovas[i & mask], Workload::kLen, Perm::kRead);
    sum += t.uaddr + t.len;
  }
  return sum;
}

template <Design D>
bool RunDesign(const GateWorkload& gw, const Workload& w, const Reference& ref,
               std::size_t lookups) {
  if constexpr (requires { D::kCapacity; }) {
    if (gw.entries > D::kCapacity) return true;
  }
  auto table = std::make_unique<D>();
  Fill(*table, w.entries);
  // Check exactly the lookups the loop will time (all of them under valgrind is slow for list).
  for (std::size_t i = 0; i < std::min(lookups, w.iovas.size()); ++i) {
    const uint64_t iova = w.iovas[i];
    const Translation a = table->Translate(iova, Workload::kLen, Perm::kRead);
    const Translation b = ref.Translate(iova, Workload::kLen, Perm::kRead);
    if (a.outcome != b.outcome || a.uaddr != b.uaddr || a.len != b.len) {
      std::fprintf(stderr, "%s/%s: lookup of 0x%llx disagrees with reference\n",
                   std::string(D::kName).c_str(), gw.name, static_cast<unsigned long long>(iova));
      return false;
    }
  }
  const std::string part = std::string(D::kName) + "/" + gw.name;
  CALLGRIND_ZERO_STATS;
  CALLGRIND_TOGGLE_COLLECT;
  const uint64_t sum = RunLookups(*table, w, lookups);
  CALLGRIND_TOGGLE_COLLECT;
  CALLGRIND_DUMP_STATS_AT(part.c_str());
  std::printf("%s lookups=%zu checksum=%llu\n", part.c_str(), lookups,
              static_cast<unsigned long long>(sum));
  return true;
}

}  // namespace
}  // namespace vhostlab::bench

int main(int argc, char** argv) {
  using namespace vhostlab::bench;
  std::size_t lookups = 20000;
  const char* only = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--lookups=", 10)) {
      lookups = std::strtoull(argv[i] + 10, nullptr, 10);
    } else if (!std::strncmp(argv[i], "--design=", 9)) {
      only = argv[i] + 9;
    } else if (!std::strcmp(argv[i], "--list")) {
      for (const std::string& name : vhostlab::iotlb::DesignNames()) std::printf("%s\n", name.c_str());
      return 0;
    } else {
      std::fprintf(stderr,
                   "usage: iotlb_gate [--lookups=N] [--design=NAME] [--list]\n"
                   "Runs N translations per registered design and workload; under callgrind each\n"
                   "(design, workload) loop is dumped as its own profile part.\n");
      return std::strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  bool ok = true;
  for (const GateWorkload& gw : kWorkloads) {
    const Workload w = MakeWorkload(gw.entries, gw.page, gw.pattern);
    Reference ref;
    for (const Entry& e : w.entries) ref.Insert(e.range, e.uaddr, e.perm);
    ForEachDesign([&]<Design D>() {
      if (only && D::kName != only) return;
      ok &= RunDesign<D>(gw, w, ref, lookups);
    });
  }
  return ok ? 0 : 1;
}
