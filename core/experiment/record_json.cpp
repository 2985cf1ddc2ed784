// RunRecord::ToJson: the record as one JSON object (schema_version, config, context, notes,
// metrics). Metrics that are unavailable carry "value": null and a note, never a fake 0; NaN
// and infinities are written as null too (JSON has no such numbers).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/experiment/json_text.hpp"
#include "core/experiment/run.hpp"

namespace vhostlab::experiment {

std::string JsonQuote(const std::string& s) {
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

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  // The shortest of 15 or 17 significant digits that reads back as the same double
  // (0.05, not 0.050000000000000003).
  char b[40];
  std::snprintf(b, sizeof(b), "%.15g", v);
  if (std::strtod(b, nullptr) != v) std::snprintf(b, sizeof(b), "%.17g", v);
  return b;
}

std::string RunRecord::ToJson() const {
  std::ostringstream o;
  const RunConfig& c = config;
  o << "{\n  \"schema_version\": " << kSchemaVersion << ",\n  \"config\": {";
  o << "\"profile\": " << JsonQuote(c.profile) << ", \"backend\": " << JsonQuote(c.backend)
    << ", \"iotlb\": " << JsonQuote(c.iotlb) << ", \"iommu\": " << (c.iommu ? "true" : "false")
    << ", \"mapping\": " << JsonQuote(c.mapping) << ", \"page_size\": " << c.page_size
    << ", \"packets\": " << c.packets << ", \"seconds\": " << JsonNumber(c.seconds)
    << ", \"queue_pairs\": " << c.queue_pairs << ", \"ring_size\": " << c.ring_size
    << ", \"packet_size\": " << c.packet_size << ", \"packet_sizes\": [";
  for (std::size_t i = 0; i < c.packet_sizes.size(); ++i) o << (i ? ", " : "") << c.packet_sizes[i];
  o << "], \"event_idx\": " << (c.event_idx ? "true" : "false")
    << ", \"mrg_rxbuf\": " << (c.mrg_rxbuf ? "true" : "false")
    << ", \"rx_buffer_size\": " << c.rx_buffer_size << ", \"mode\": " << JsonQuote(c.mode) << ", \"poll\": " << JsonQuote(c.poll)
    << ", \"seed\": " << c.seed << ", \"scatter\": " << JsonQuote(c.scatter)
    << ", \"mem_regions\": " << c.mem_regions
    << ", \"hugepages\": " << (c.hugepages ? "true" : "false")
    << ", \"flush_batch\": " << c.flush_batch << ", \"working_set\": " << c.working_set
    << ", \"storm_interval\": " << c.storm_interval << ", \"storm_burst\": " << c.storm_burst
    << ", \"timeout_seconds\": " << JsonNumber(c.timeout_seconds) << ", \"cpus\": [";
  for (std::size_t i = 0; i < c.cpus.size(); ++i) o << (i ? ", " : "") << c.cpus[i];
  o << "], \"counters\": [";
  for (std::size_t i = 0; i < c.counters.size(); ++i) o << (i ? ", " : "") << JsonQuote(c.counters[i]);
  o << "]},\n  \"context\": {";
  bool first = true;
  for (const auto& [k, v] : context) {
    o << (first ? "" : ", ") << JsonQuote(k) << ": " << JsonQuote(v);
    first = false;
  }
  o << "},\n  \"notes\": [";
  for (std::size_t i = 0; i < notes.size(); ++i) o << (i ? ", " : "") << JsonQuote(notes[i]);
  o << "],\n  \"metrics\": [";
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const Metric& m = metrics[i];
    o << (i ? ",\n    " : "\n    ") << "{\"queue\": " << m.queue << ", \"side\": " << JsonQuote(m.side)
      << ", \"name\": " << JsonQuote(m.name)
      << ", \"value\": " << (m.available ? JsonNumber(m.value) : "null")
      << ", \"unit\": " << JsonQuote(m.unit) << ", \"available\": " << (m.available ? "true" : "false")
      << ", \"note\": " << JsonQuote(m.note) << "}";
  }
  o << "\n  ]\n}\n";
  return o.str();
}

}  // namespace vhostlab::experiment
