// Replay results as run records; see replay_records.hpp.
#include "core/experiment/replay_records.hpp"

#include "core/experiment/record_json.hpp"

namespace vhostlab::experiment {
namespace {

std::string Basename(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

RunRecord ReplayRecord(const std::string& trace_path, const trace::TraceSummary& s,
                       const trace::DesignReplay& d,
                       const std::map<std::string, std::string>& context) {
  RunRecord rec;
  rec.config.profile = "replay:" + Basename(trace_path);
  rec.config.backend = "replay";
  rec.config.iotlb = d.design;
  rec.config.mapping = "replay";
  rec.context = context;
  rec.context["trace"] = trace_path;
  rec.context["trace_records"] = std::to_string(s.records);
  rec.context["trace_truncated"] = s.truncated ? "yes" : "no";
  rec.context["replay_inner_repetitions"] = std::to_string(d.inner);
  if (!d.verified) rec.notes.push_back("verification failed: " + d.mismatch);
  auto add = [&](const std::string& name, double v, const std::string& unit,
                 const std::string& note = "") {
    Metric m;
    m.side = "replay";
    m.name = name;
    m.value = v;
    m.unit = unit;
    m.note = note;
    rec.metrics.push_back(m);
  };
  add("ns/translation", d.ns_per_translation.median, "ns", "median of rounds");
  add("ns/translation min", d.ns_per_translation.min, "ns");
  add("ns/translation max", d.ns_per_translation.max, "ns");
  add("ns/update", d.ns_per_update.median, "ns", "median of rounds");
  add("ns/invalidate", d.ns_per_invalidate.median, "ns", "median of rounds");
  add("translations", static_cast<double>(d.translations), "count");
  add("hits", static_cast<double>(d.hits), "count");
  add("misses", static_cast<double>(d.misses), "count");
  add("access_fails", static_cast<double>(d.access_fails), "count");
  add("updates", static_cast<double>(d.updates), "count");
  add("invalidates", static_cast<double>(d.invalidates), "count");
  add("max_entries", static_cast<double>(d.max_entries), "count");
  add("verified", d.verified ? 1 : 0, "bool", d.verified ? "" : d.mismatch);
  return rec;
}

}  // namespace

std::vector<RunRecord> ReplayRecords(const std::string& trace_path,
                                     const trace::TraceSummary& summary,
                                     const std::vector<trace::DesignReplay>& designs) {
  const auto context = MachineContext();
  std::vector<RunRecord> out;
  for (const auto& d : designs) out.push_back(ReplayRecord(trace_path, summary, d, context));
  return out;
}

std::string RecordsJson(const std::vector<RunRecord>& records) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const RunRecord& r : records) list.push_back(RunRecordJson(r));
  return DumpJson(list);
}

}  // namespace vhostlab::experiment
