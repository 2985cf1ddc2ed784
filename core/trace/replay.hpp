// Replay of a recorded IOTLB trace (trace.hpp) on IOTLB designs.
//
// For each design the trace's message stream (UPDATE, INVALIDATE, and a fresh table at every
// connection) and its translation requests are applied in recorded order:
//  1. verification: beside `reference` (iotlb::testing::Differential); the first translation on
//     which the design disagrees with the reference fails the design's replay;
//  2. timing, `repeat` rounds, each the whole stream `inner` times on a fresh table: every
//     UPDATE and INVALIDATE is timed alone and every run of consecutive translations as one
//     block (TSC; the cost of an empty timed block is subtracted from the sums). ns per
//     translation, UPDATE and INVALIDATE are medians over the rounds, with min..max.
// Hits, misses and access failures are the design's answers in the verification pass (the
// recorded outcome was the live backend's, whose replicas can lag the control thread by one
// grace period; replay uses the recorded order, so the two may differ slightly).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/trace/trace.hpp"

namespace vhostlab::trace {

struct ReplayOptions {
  std::vector<std::string> designs;  // names from iotlb::DesignNames()
  uint32_t repeat = 5;               // timing rounds
  uint64_t min_steps_per_round = 200000;  // the stream is repeated to at least this many steps
};

struct Range3 {  // median (min..max) over rounds
  double median = 0, min = 0, max = 0;
};

struct DesignReplay {
  std::string design;
  bool verified = false;
  std::string mismatch;  // the first disagreement with reference, with its record index
  uint64_t translations = 0, hits = 0, misses = 0, access_fails = 0;
  uint64_t updates = 0, invalidates = 0, connects = 0;
  uint64_t max_entries = 0;  // largest Size() seen
  Range3 ns_per_translation, ns_per_update, ns_per_invalidate;
  uint32_t inner = 1;        // stream repetitions per round
};

struct TraceSummary {
  uint64_t records = 0, updates = 0, invalidates = 0, misses = 0, translations = 0;
  uint64_t recorded_hits = 0, recorded_misses = 0, recorded_access_fails = 0;
  uint64_t connects = 0, mem_regions = 0, queues = 0;
  double duration_s = 0;
  bool truncated = false;
};

TraceSummary Summarize(const Trace& trace);

// Replays `trace` on every design in options.designs, in order; `progress` (may be null) is
// called with each design's name before it runs.
Result<std::vector<DesignReplay>> Replay(const Trace& trace, const ReplayOptions& options,
                                         void (*progress)(const std::string&) = nullptr);

}  // namespace vhostlab::trace
