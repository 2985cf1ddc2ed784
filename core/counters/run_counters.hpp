// Counters over the threads of one experiment run, as tidy rows per queue and per unit of work.
//
// RunExperiment attaches every queue thread it knows -- the backend's workers
// (Backend::WorkerTids(), one per queue pair) and the front-end's queue threads -- with a side
// ("backend" / "frontend") and a queue index, starts the session when traffic starts, stops it
// when traffic ends, and asks for rows with the work each queue did (packets, translations).
//
// Rows (fields mirror experiment::Metric, so the conversion is a field-by-field copy):
//   (side, queue, "<event>")              the count over the traffic window      unit: event's
//   (side, queue, "<event>/packet")       divided by that queue's packets        unit: "<u>/packet"
//   (side, queue, "<event>/translation")  divided by its IOTLB translations      "<u>/translation"
// and the same with queue -1 for each side's sum over queues (tsc: the longest window, it is a
// wall clock). A per-unit row exists only where the work count is positive.
// Invariant: an event unavailable on any thread of a (side, queue) is unavailable in every row
// built from it (value NaN, the reason in note); it never becomes 0.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/base/result.hpp"
#include "core/counters/counters.hpp"

namespace vhostlab::counters {

struct CounterRow {
  int queue = -1;
  std::string side;
  std::string name;
  double value = 0;
  std::string unit;
  bool available = true;
  std::string note;
};

class RunCounters {
 public:
  // Events as in ResolveEvents (empty = the default set); unknown names are an error.
  static Result<RunCounters> Create(const std::vector<std::string>& events);

  // `tid` must be a real kernel tid (> 0): RunCounters counts queue threads, never the caller.
  Status Attach(int tid, const std::string& side, int queue);
  Status Start();
  Status Stop();

  struct Work {
    double packets = 0;
    double translations = 0;
  };
  using WorkMap = std::map<std::pair<std::string, int>, Work>;  // (side, queue) -> work
  Result<std::vector<CounterRow>> Rows(const WorkMap& work) const;

  size_t threads() const { return where_.size(); }

 private:
  explicit RunCounters(Session session) : session_(std::move(session)) {}
  Session session_;
  std::vector<std::pair<std::string, int>> where_;  // (side, queue) per attached thread
};

}  // namespace vhostlab::counters
