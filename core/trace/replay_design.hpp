// The replay of one design, templated on it (used by replay.cpp for every registered design,
// and by tests with a design of their own). The method is described in replay.hpp.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/counters/tsc.hpp"
#include "core/iotlb/contract.hpp"
#include "core/iotlb/testing/differential.hpp"
#include "core/trace/replay.hpp"

namespace vhostlab::trace {
namespace replay_internal {


using iotlb::IovaRange;
using iotlb::Perm;
using iotlb::testing::Op;

// One step of the stream: an IOTLB operation, a translation, or a fresh table.
struct Step {
  enum class Kind : uint8_t { kInsert, kInvalidate, kTranslate, kClear } kind;
  IovaRange range;  // translate: range.first is the iova
  uint64_t uaddr;
  uint64_t len;
  Perm perm;
  std::size_t record;  // index in the trace, for messages
};

inline IovaRange RangeOf(uint64_t iova, uint64_t size) {
  const uint64_t last = iova + (size - 1);
  return {iova, last < iova ? ~uint64_t{0} : last};
}

inline std::vector<Step> Compile(const Trace& trace) {
  std::vector<Step> steps;
  steps.reserve(trace.records.size());
  for (std::size_t i = 0; i < trace.records.size(); ++i) {
    const Record& r = trace.records[i];
    const Perm perm = static_cast<Perm>(r.perm);
    switch (r.type) {
      case RecordType::kUpdate:
        steps.push_back({Step::Kind::kInsert, RangeOf(r.iova, r.size), r.uaddr, 0, perm, i});
        break;
      case RecordType::kInvalidate:
        steps.push_back({Step::Kind::kInvalidate, RangeOf(r.iova, r.size), 0, 0, perm, i});
        break;
      case RecordType::kTranslate:
        steps.push_back({Step::Kind::kTranslate, {r.iova, r.iova}, 0, r.size, perm, i});
        break;
      case RecordType::kConnect:
        steps.push_back({Step::Kind::kClear, {}, 0, 0, Perm::kNone, i});
        break;
      default:
        break;  // MISS, ACCESS_FAIL and the memory table do not change the IOTLB
    }
  }
  return steps;
}

inline Range3 SummarizeRounds(std::vector<double> v) {
  Range3 r;
  if (v.empty()) return r;
  std::sort(v.begin(), v.end());
  r.min = v.front();
  r.max = v.back();
  r.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return r;
}

// The TSC ticks of an empty timed region (median of many), subtracted from each timed op.
inline uint64_t TimerOverheadTicks() {
  std::vector<uint64_t> v(1001);
  for (auto& x : v) {
    const uint64_t t0 = counters::ReadTsc();
    x = counters::ReadTsc() - t0;
  }
  std::nth_element(v.begin(), v.begin() + 500, v.end());
  return v[500];
}

}  // namespace replay_internal

// Replays the compiled trace on design D (see replay.hpp for the method). Templated so tests
// can replay on a design outside the registry.
template <iotlb::Design D>
DesignReplay ReplayDesign(const std::vector<replay_internal::Step>& steps,
                          const ReplayOptions& options) {
  using namespace replay_internal;  // NOLINT: this file's own helpers
  DesignReplay out;
  out.design = std::string(D::kName);

  // 1. Verification against reference, and the design's own answers.
  {
    using Diff = iotlb::testing::Differential<D>;
    auto diff = std::make_unique<Diff>();
    out.verified = true;
    for (const Step& s : steps) {
      std::string err;
      switch (s.kind) {
        case Step::Kind::kClear:
          diff = std::make_unique<Diff>();
          ++out.connects;
          break;
        case Step::Kind::kInsert:
          ++out.updates;
          err = diff->Apply(Op{Op::Kind::kInsert, s.range, s.uaddr, 0, s.perm});
          break;
        case Step::Kind::kInvalidate:
          ++out.invalidates;
          err = diff->Apply(Op{Op::Kind::kInvalidate, s.range, 0, 0, s.perm});
          break;
        case Step::Kind::kTranslate: {
          ++out.translations;
          err = diff->CheckTranslate(s.range.first, s.len, s.perm);
          const iotlb::Translation t = diff->design().Translate(s.range.first, s.len, s.perm);
          if (t.outcome == iotlb::Outcome::kHit) ++out.hits;
          else if (t.outcome == iotlb::Outcome::kMiss) ++out.misses;
          else ++out.access_fails;
          break;
        }
      }
      out.max_entries = std::max<uint64_t>(out.max_entries, diff->design().Size());
      if (!err.empty() && out.verified) {
        out.verified = false;
        out.mismatch = "record " + std::to_string(s.record) + ": " + err;
      }
    }
  }

  // 2. Timing. Each UPDATE and INVALIDATE is timed alone, each run of consecutive
  // translations as one block; the timer's own cost (an empty timed block) is subtracted from
  // the sums. A round replays the whole stream `inner` times, each on a fresh table.
  const counters::TscClock& clock = counters::TscClock::Get();
  const uint64_t overhead = TimerOverheadTicks();
  const uint64_t n = std::max<std::size_t>(steps.size(), 1);
  out.inner = static_cast<uint32_t>(
      std::clamp<uint64_t>((options.min_steps_per_round + n - 1) / n, 1, 100000));
  uint64_t sink = 0;
  struct Sums {
    uint64_t xlate = 0, xlate_blocks = 0, upd = 0, inv = 0;
  };
  auto pass = [&](Sums* sums) {
    auto d = std::make_unique<D>();
    for (std::size_t i = 0; i < steps.size();) {
      const Step& s = steps[i];
      if (s.kind == Step::Kind::kTranslate) {
        std::size_t j = i;
        const uint64_t a = counters::ReadTsc();
        for (; j < steps.size() && steps[j].kind == Step::Kind::kTranslate; ++j) {
          const iotlb::Translation t = d->Translate(steps[j].range.first, steps[j].len,
                                                    steps[j].perm);
          sink += t.uaddr + t.len;
        }
        sums->xlate += counters::ReadTsc() - a;
        ++sums->xlate_blocks;
        i = j;
        continue;
      }
      const uint64_t a = counters::ReadTsc();
      if (s.kind == Step::Kind::kInsert) {
        (void)d->Insert(s.range, s.uaddr, s.perm);
        sums->upd += counters::ReadTsc() - a;
      } else if (s.kind == Step::Kind::kInvalidate) {
        (void)d->Invalidate(s.range);
        sums->inv += counters::ReadTsc() - a;
      } else {
        d->Clear();
      }
      ++i;
    }
  };
  auto net_ns = [&](uint64_t ticks, uint64_t timed_blocks, uint64_t ops) {
    const uint64_t cost = timed_blocks * overhead;
    return ticks > cost ? clock.ToNanoseconds(ticks - cost) / static_cast<double>(ops) : 0.0;
  };
  std::vector<double> xlate_ns, upd_ns, inv_ns;
  for (uint32_t round = 0; round < std::max<uint32_t>(options.repeat, 1); ++round) {
    Sums sums;
    for (uint32_t k = 0; k < out.inner; ++k) pass(&sums);
    const uint64_t reps = out.inner;
    if (out.translations)
      xlate_ns.push_back(net_ns(sums.xlate, sums.xlate_blocks, reps * out.translations));
    if (out.updates) upd_ns.push_back(net_ns(sums.upd, reps * out.updates, reps * out.updates));
    if (out.invalidates)
      inv_ns.push_back(net_ns(sums.inv, reps * out.invalidates, reps * out.invalidates));
  }
  asm volatile("" ::"r"(sink));  // keep the translations
  out.ns_per_translation = SummarizeRounds(xlate_ns);
  out.ns_per_update = SummarizeRounds(upd_ns);
  out.ns_per_invalidate = SummarizeRounds(inv_ns);
  return out;
}


}  // namespace vhostlab::trace
