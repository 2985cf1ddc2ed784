// RunRecord::ToJson: the record as one JSON object (schema_version, config, context, notes,
// metrics). Metrics that are unavailable carry "value": null and a note, never a fake 0; NaN
// and infinities are written as null too (JSON has no such numbers).
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/experiment/run.hpp"

namespace vhostlab::experiment {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof(b), "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string Number(double v) {
  if (!std::isfinite(v)) return "null";
  char b[40];
  std::snprintf(b, sizeof(b), "%.17g", v);
  return b;
}

}  // namespace

std::string RunRecord::ToJson() const {
  std::ostringstream o;
  const RunConfig& c = config;
  o << "{\n  \"schema_version\": " << kSchemaVersion << ",\n  \"config\": {";
  o << "\"profile\": " << Quote(c.profile) << ", \"backend\": " << Quote(c.backend)
    << ", \"iotlb\": " << Quote(c.iotlb) << ", \"iommu\": " << (c.iommu ? "true" : "false")
    << ", \"mapping\": " << Quote(c.mapping) << ", \"page_size\": " << c.page_size
    << ", \"packets\": " << c.packets << ", \"seconds\": " << Number(c.seconds)
    << ", \"queue_pairs\": " << c.queue_pairs << ", \"ring_size\": " << c.ring_size
    << ", \"packet_size\": " << c.packet_size << ", \"mode\": " << Quote(c.mode) << ", \"poll\": " << Quote(c.poll)
    << ", \"seed\": " << c.seed << ", \"scatter\": " << Quote(c.scatter)
    << ", \"mem_regions\": " << c.mem_regions
    << ", \"hugepages\": " << (c.hugepages ? "true" : "false")
    << ", \"flush_batch\": " << c.flush_batch << ", \"working_set\": " << c.working_set
    << ", \"storm_interval\": " << c.storm_interval << ", \"storm_burst\": " << c.storm_burst
    << ", \"timeout_seconds\": " << Number(c.timeout_seconds) << ", \"cpus\": [";
  for (std::size_t i = 0; i < c.cpus.size(); ++i) o << (i ? ", " : "") << c.cpus[i];
  o << "], \"counters\": [";
  for (std::size_t i = 0; i < c.counters.size(); ++i) o << (i ? ", " : "") << Quote(c.counters[i]);
  o << "]},\n  \"context\": {";
  bool first = true;
  for (const auto& [k, v] : context) {
    o << (first ? "" : ", ") << Quote(k) << ": " << Quote(v);
    first = false;
  }
  o << "},\n  \"notes\": [";
  for (std::size_t i = 0; i < notes.size(); ++i) o << (i ? ", " : "") << Quote(notes[i]);
  o << "],\n  \"metrics\": [";
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const Metric& m = metrics[i];
    o << (i ? ",\n    " : "\n    ") << "{\"queue\": " << m.queue << ", \"side\": " << Quote(m.side)
      << ", \"name\": " << Quote(m.name)
      << ", \"value\": " << (m.available ? Number(m.value) : "null")
      << ", \"unit\": " << Quote(m.unit) << ", \"available\": " << (m.available ? "true" : "false")
      << ", \"note\": " << Quote(m.note) << "}";
  }
  o << "\n  ]\n}\n";
  return o.str();
}

}  // namespace vhostlab::experiment
