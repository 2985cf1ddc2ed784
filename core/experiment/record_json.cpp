// RunRecord::ToJson: the record as one JSON object (schema_version, config, context, notes,
// metrics), written with nlohmann-json. The "config" object comes from the run-settings table
// (settings.hpp: every setting by field name, in table order). Metrics that are unavailable
// carry "value": null and a note, never a fake 0; NaN and infinities are written as null too
// (JSON has no such numbers; nlohmann writes a non-finite double as null).
#include <nlohmann/json.hpp>

#include "core/experiment/record_json.hpp"
#include "core/experiment/settings.hpp"

namespace vhostlab::experiment {

nlohmann::ordered_json RunRecordJson(const RunRecord& record) {
  nlohmann::ordered_json o;
  o["schema_version"] = RunRecord::kSchemaVersion;
  o["config"] = ConfigJson(record.config);
  o["context"] = record.context;
  o["notes"] = record.notes;
  nlohmann::ordered_json metrics = nlohmann::ordered_json::array();
  for (const Metric& m : record.metrics) {
    metrics.push_back({{"queue", m.queue},
                       {"side", m.side},
                       {"name", m.name},
                       {"value", m.available ? nlohmann::ordered_json(m.value) : nullptr},
                       {"unit", m.unit},
                       {"available", m.available},
                       {"note", m.note}});
  }
  o["metrics"] = std::move(metrics);
  return o;
}

std::string DumpJson(const nlohmann::ordered_json& doc) {
  return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string RunRecord::ToJson() const { return DumpJson(RunRecordJson(*this)); }

}  // namespace vhostlab::experiment
