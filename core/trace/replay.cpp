// Trace replay on IOTLB designs; the method is described in replay.hpp.
#include "core/trace/replay.hpp"

#include <absl/strings/str_join.h>

#include <set>

#include "core/iotlb/registry.hpp"
#include "core/trace/replay_design.hpp"

namespace vhostlab::trace {

TraceSummary Summarize(const Trace& trace) {
  TraceSummary s;
  s.records = trace.records.size();
  s.truncated = trace.truncated();
  std::set<uint16_t> queues;
  for (const Record& r : trace.records) {
    switch (r.type) {
      case RecordType::kUpdate: ++s.updates; break;
      case RecordType::kInvalidate: ++s.invalidates; break;
      case RecordType::kMiss: ++s.misses; break;
      case RecordType::kConnect: ++s.connects; break;
      case RecordType::kMemRegion: ++s.mem_regions; break;
      case RecordType::kTranslate:
        ++s.translations;
        queues.insert(r.queue);
        if (r.outcome == 0) ++s.recorded_hits;
        else if (r.outcome == 1) ++s.recorded_misses;
        else ++s.recorded_access_fails;
        break;
      default: break;
    }
  }
  s.queues = queues.size();
  if (!trace.records.empty()) s.duration_s = trace.records.back().t_ns * 1e-9;
  return s;
}

Result<std::vector<DesignReplay>> Replay(const Trace& trace, const ReplayOptions& options,
                                         void (*progress)(const std::string&)) {
  const std::vector<replay_internal::Step> steps = replay_internal::Compile(trace);
  std::vector<DesignReplay> out;
  for (const std::string& name : options.designs) {
    if (progress) progress(name);
    const bool found = iotlb::VisitDesign(name, [&]<iotlb::Design D>() {
      out.push_back(ReplayDesign<D>(steps, options));
    });
    if (!found) {
      return Error{"unknown IOTLB design '" + name +
                   "' (available: " + absl::StrJoin(iotlb::DesignNames(), ", ") + ")"};
    }
  }
  return out;
}

}  // namespace vhostlab::trace
