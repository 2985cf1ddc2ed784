// RunCounters: per-queue counter rows for run records (see run_counters.hpp).
//
// Readings of the threads attached to one (side, queue) are summed with SumReadings, then each
// side's queues are summed again for the queue -1 rows, so availability and multiplexing
// propagate the same way at both levels.
#include "core/counters/run_counters.hpp"

#include <cmath>
#include <limits>

namespace vhostlab::counters {
namespace {

void Emit(const std::string& side, int queue, const std::vector<Reading>& readings,
          const RunCounters::Work* work, std::vector<CounterRow>* out) {
  for (const Reading& r : readings) {
    auto row = [&](const std::string& name, double divisor, const std::string& unit) {
      CounterRow c;
      c.queue = queue;
      c.side = side;
      c.name = name;
      c.unit = unit;
      c.available = r.available;
      c.value = r.available ? r.value / divisor : std::numeric_limits<double>::quiet_NaN();
      c.note = r.note;
      out->push_back(std::move(c));
    };
    row(r.event, 1, r.unit);
    if (work && work->packets > 0) row(r.event + "/packet", work->packets, r.unit + "/packet");
    if (work && work->translations > 0) {
      row(r.event + "/translation", work->translations, r.unit + "/translation");
    }
  }
}

}  // namespace

Result<RunCounters> RunCounters::Create(const std::vector<std::string>& events) {
  auto session = Session::Create(events);
  if (!session) return session.error();
  return RunCounters(std::move(session.value()));
}

Status RunCounters::Attach(int tid, const std::string& side, int queue) {
  // A queue thread that has not published its tid yet reads as 0, which Session would take as
  // "the calling thread": refuse it instead of silently counting the wrong thread.
  if (tid <= 0) {
    return Error{"counters: " + side + " queue " + std::to_string(queue) + " has no thread id (" +
                 std::to_string(tid) + ")"};
  }
  if (Status s = session_.Attach(tid, side + "-q" + std::to_string(queue)); !s) return s;
  where_.emplace_back(side, queue);
  return Status::Ok();
}

Status RunCounters::Start() { return session_.Start(); }
Status RunCounters::Stop() { return session_.Stop(); }

Result<std::vector<CounterRow>> RunCounters::Rows(const WorkMap& work) const {
  auto all = session_.ReadAll();
  if (!all) return all.error();
  // (side, queue) -> readings of each thread there, in attach order.
  std::map<std::pair<std::string, int>, std::vector<std::vector<Reading>>> by_queue;
  for (size_t i = 0; i < all->size(); ++i) by_queue[where_[i]].push_back((*all)[i].readings);

  std::vector<CounterRow> out;
  std::map<std::string, std::vector<std::vector<Reading>>> by_side;
  std::map<std::string, Work> side_work;
  for (const auto& [key, parts] : by_queue) {
    const std::vector<Reading> sum = SumReadings(parts);
    auto w = work.find(key);
    Emit(key.first, key.second, sum, w == work.end() ? nullptr : &w->second, &out);
    by_side[key.first].push_back(sum);
    if (w != work.end()) {
      side_work[key.first].packets += w->second.packets;
      side_work[key.first].translations += w->second.translations;
    }
  }
  for (const auto& [side, parts] : by_side) {
    auto w = side_work.find(side);
    Emit(side, -1, SumReadings(parts), w == side_work.end() ? nullptr : &w->second, &out);
  }
  return out;
}

}  // namespace vhostlab::counters
