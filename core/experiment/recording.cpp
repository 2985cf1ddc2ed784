// Recording of a run's metrics (see recording.hpp).
#include "core/experiment/recording.hpp"

#include <algorithm>
#include <cmath>

namespace vhostlab::experiment {
namespace {

double Percentile(std::vector<uint64_t> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return static_cast<double>(v[std::min(v.size() - 1, i ? i - 1 : 0)]);
}

class Recorder {
 public:
  explicit Recorder(RunRecord* r) : r_(r) {}
  void Add(const std::string& side, const std::string& name, double value, const std::string& unit,
           int queue = -1) {
    r_->metrics.push_back(Metric{queue, side, name, value, unit, true, ""});
  }
  void AddLatency(const std::string& name, const std::vector<uint64_t>& samples) {
    for (auto [suffix, p] : {std::pair{"_p50", 0.5}, std::pair{"_p99", 0.99}}) {
      Metric m{-1, "frontend", name + suffix, Percentile(samples, p), "ns", !samples.empty(), ""};
      if (samples.empty()) {
        m.note = "unavailable: no samples in this run";
      }
      r_->metrics.push_back(m);
    }
    Add("frontend", name + "_samples", static_cast<double>(samples.size()), "count");
  }

 private:
  RunRecord* r_;
};

}  // namespace

void RecordFrontend(const frontend::FrontendResult& f, RunRecord* rec) {
  Recorder r(rec);
  const double secs = static_cast<double>(f.traffic_ns) / 1e9;
  uint64_t tx = 0, bytes = 0, seq = 0, maps = 0, unmaps = 0, bursts = 0, storm_pages = 0;
  uint64_t storm_ns = 0, warmup = 0, kicks = 0, interrupts = 0, rx_buffers = 0;
  // Drain traffic: mpps is the backend's (queues drain side by side, so their rates add up);
  // loop_mpps is what stream traffic calls mpps.
  const bool drain = rec->config.traffic == "drain";
  double drain_mpps = 0;
  for (const auto& q : f.queues) {
    const int i = static_cast<int>(q.queue_pair);
    tx += q.tx_packets;
    bytes += q.rx_bytes;
    seq += q.sequence_errors;
    maps += q.maps;
    unmaps += q.unmaps;
    bursts += q.storm_bursts;
    storm_pages += q.storm_pages;
    storm_ns += q.storm_ns;
    warmup += q.warmup_packets;
    kicks += q.kicks;
    interrupts += q.interrupts;
    rx_buffers += q.rx_buffers;
    r.Add("frontend", "tx_packets", static_cast<double>(q.tx_packets), "packets", i);
    r.Add("frontend", "packets", static_cast<double>(q.rx_packets), "packets", i);
    r.Add("frontend", "bytes", static_cast<double>(q.rx_bytes), "bytes", i);
    double qs = static_cast<double>(q.elapsed_ns) / 1e9;
    const double loop_mpps = qs > 0 ? static_cast<double>(q.rx_packets) / qs / 1e6 : 0;
    if (drain) {
      // The backend's speed: packets over the time it had work (the drains).
      const double mpps = q.drain_ns ? q.drain_packets * 1e3 / static_cast<double>(q.drain_ns) : 0;
      drain_mpps += mpps;
      r.Add("frontend", "mpps", mpps, "Mpps", i);
      r.Add("frontend", "ns_per_packet", mpps > 0 ? 1e3 / mpps : 0, "ns", i);
      r.Add("frontend", "loop_mpps", loop_mpps, "Mpps", i);
      r.Add("frontend", "drain_ms", static_cast<double>(q.drain_ns) / 1e6, "ms", i);
    } else {
      r.Add("frontend", "mpps", loop_mpps, "Mpps", i);
      r.Add("frontend", "ns_per_packet",
            q.rx_packets ? static_cast<double>(q.elapsed_ns) / static_cast<double>(q.rx_packets)
                         : 0,
            "ns", i);
    }
    r.Add("frontend", "drops", static_cast<double>(q.drops), "packets", i);
    r.Add("frontend", "verify_errors", static_cast<double>(q.verify_errors), "packets", i);
    r.Add("frontend", "sequence_errors", static_cast<double>(q.sequence_errors), "packets", i);
    r.Add("frontend", "dma_maps", static_cast<double>(q.maps), "count", i);
    r.Add("frontend", "dma_unmaps", static_cast<double>(q.unmaps), "count", i);
    r.Add("frontend", "storm_bursts", static_cast<double>(q.storm_bursts), "count", i);
    r.Add("frontend", "storm_pages", static_cast<double>(q.storm_pages), "pages", i);
    r.Add("frontend", "storm_ms", static_cast<double>(q.storm_ns) / 1e6, "ms", i);
    r.Add("frontend", "kicks", static_cast<double>(q.kicks), "count", i);
    r.Add("frontend", "interrupts", static_cast<double>(q.interrupts), "count", i);
    r.Add("frontend", "rx_buffers", static_cast<double>(q.rx_buffers), "count", i);
    if (!q.error.empty()) rec->notes.push_back("queue pair " + std::to_string(i) + ": " + q.error);
  }
  const uint64_t rx = f.rx_packets();
  r.Add("run", "seconds", secs, "s");
  r.Add("run", "setup_ms", static_cast<double>(f.setup_ns) / 1e6, "ms");
  r.Add("run", "warmup_ms", static_cast<double>(f.warmup_ns) / 1e6, "ms");
  r.Add("frontend", "warmup_packets", static_cast<double>(warmup), "packets");
  r.Add("frontend", "tx_packets", static_cast<double>(tx), "packets");
  r.Add("frontend", "packets", static_cast<double>(rx), "packets");
  r.Add("frontend", "bytes", static_cast<double>(bytes), "bytes");
  const double loop_mpps = secs > 0 ? static_cast<double>(rx) / secs / 1e6 : 0;
  if (drain) {
    if (drain_mpps == 0 && rx > 0)
      rec->notes.push_back(
          "drain traffic: no drain could be timed (every ring was complete at the front-end's "
          "first look: the backend ran while the front-end did not, e.g. on its CPU); mpps is "
          "0, loop_mpps is the loop's rate");
    r.Add("frontend", "mpps", drain_mpps, "Mpps");
    r.Add("frontend", "ns_per_packet", drain_mpps > 0 ? 1e3 / drain_mpps : 0, "ns");
    r.Add("frontend", "loop_mpps", loop_mpps, "Mpps");
  } else {
    r.Add("frontend", "mpps", loop_mpps, "Mpps");
    r.Add("frontend", "ns_per_packet",
          rx ? static_cast<double>(f.traffic_ns) / static_cast<double>(rx) : 0, "ns");
  }
  r.Add("frontend", "drops", static_cast<double>(f.drops()), "packets");
  r.Add("frontend", "verify_errors", static_cast<double>(f.verify_errors() - seq), "packets");
  r.Add("frontend", "sequence_errors", static_cast<double>(seq), "packets");
  r.Add("frontend", "dma_maps", static_cast<double>(maps), "count");
  r.Add("frontend", "dma_unmaps", static_cast<double>(unmaps), "count");
  r.Add("frontend", "storm_bursts", static_cast<double>(bursts), "count");
  r.Add("frontend", "storm_pages", static_cast<double>(storm_pages), "pages");
  r.Add("frontend", "storm_ms", static_cast<double>(storm_ns) / 1e6, "ms");
  // Notifications as the driver sees them: kick eventfd writes it made and call eventfd signals
  // it found (it polls), per packet sent, so every backend is measured the same way.
  r.Add("frontend", "kicks", static_cast<double>(kicks), "count");
  r.Add("frontend", "interrupts", static_cast<double>(interrupts), "count");
  if (tx) {
    r.Add("frontend", "kicks_per_packet", static_cast<double>(kicks) / static_cast<double>(tx),
          "ratio");
    r.Add("frontend", "interrupts_per_packet",
          static_cast<double>(interrupts) / static_cast<double>(tx), "ratio");
  }
  // Used receive entries per verified packet: 1, or more with MRG_RXBUF and large frames.
  r.Add("frontend", "rx_buffers", static_cast<double>(rx_buffers), "count");
  r.Add("frontend", "event_idx", f.negotiated.event_idx() ? 1 : 0, "bool");
  r.Add("frontend", "mrg_rxbuf", f.negotiated.mrg_rxbuf() ? 1 : 0, "bool");
  r.Add("frontend", "iotlb_updates", static_cast<double>(f.viommu.updates), "messages");
  r.Add("frontend", "iotlb_miss_updates", static_cast<double>(f.viommu.miss_updates), "messages");
  r.Add("frontend", "iotlb_invalidates", static_cast<double>(f.viommu.invalidates), "messages");
  r.Add("frontend", "misses_received", static_cast<double>(f.misses_received), "messages");
  r.Add("frontend", "misses_served", static_cast<double>(f.viommu.misses_served), "messages");
  r.Add("frontend", "misses_unmapped", static_cast<double>(f.viommu.misses_unmapped), "messages");
  r.Add("frontend", "backend_channel_errors", static_cast<double>(f.backend_channel_errors),
        "messages");
  r.AddLatency("update_ack_ns", f.viommu.update_ack_ns);
  r.AddLatency("invalidate_ack_ns", f.viommu.invalidate_ack_ns);
  r.AddLatency("miss_service_ns", f.viommu.miss_service_ns);
  r.Add("frontend", "guest_hugetlb", f.hugetlb ? 1 : 0, "bool");
  if (!f.notes.empty()) rec->notes.push_back(f.notes);
}

void RecordBackend(const backend::BackendStats& b, RunRecord* rec) {
  Recorder r(rec);
  r.Add("backend", "messages", static_cast<double>(b.messages), "messages");
  r.Add("backend", "message_errors", static_cast<double>(b.message_errors), "messages");
  r.Add("backend", "iotlb_updates", static_cast<double>(b.iotlb_updates), "messages");
  r.Add("backend", "iotlb_invalidates", static_cast<double>(b.iotlb_invalidates), "messages");
  r.Add("backend", "misses_sent", static_cast<double>(b.misses_sent), "messages");
  if (b.iotlb_updates) {
    r.Add("backend", "update_service_ns_p50", b.update_service_p50_ns, "ns");
    r.Add("backend", "update_service_ns_p99", b.update_service_p99_ns, "ns");
  }
  if (b.iotlb_invalidates) {
    r.Add("backend", "invalidate_service_ns_p50", b.invalidate_service_p50_ns, "ns");
    r.Add("backend", "invalidate_service_ns_p99", b.invalidate_service_p99_ns, "ns");
  }
  uint64_t drops = 0, kicks = 0, interrupts = 0, packets = 0, bursts = 0, passes = 0;
  for (const auto& q : b.queues) {
    const int i = static_cast<int>(q.queue_pair);
    drops += q.drops;
    r.Add("backend", "tx_packets", static_cast<double>(q.tx_packets), "packets", i);
    r.Add("backend", "rx_packets", static_cast<double>(q.rx_packets), "packets", i);
    r.Add("backend", "translations", static_cast<double>(q.translations), "count", i);
    r.Add("backend", "cache_hits", static_cast<double>(q.cache_hits), "count", i);
    r.Add("backend", "iotlb_misses", static_cast<double>(q.iotlb_misses), "count", i);
    r.Add("backend", "retries", static_cast<double>(q.retries), "count", i);
    r.Add("backend", "access_fails", static_cast<double>(q.access_fails), "count", i);
    r.Add("backend", "drops", static_cast<double>(q.drops), "packets", i);
    r.Add("backend", "errors", static_cast<double>(q.errors), "count", i);
    r.Add("backend", "kicks", static_cast<double>(q.kicks), "count", i);
    r.Add("backend", "interrupts", static_cast<double>(q.rx_interrupts + q.tx_interrupts),
          "count", i);
    r.Add("backend", "bursts", static_cast<double>(q.bursts), "count", i);
    r.Add("backend", "passes", static_cast<double>(q.passes), "count", i);
    kicks += q.kicks;
    bursts += q.bursts;
    passes += q.passes;
    interrupts += q.rx_interrupts + q.tx_interrupts;
    packets += q.rx_packets ? q.rx_packets : q.tx_packets;
  }
  r.Add("backend", "drops", static_cast<double>(drops), "packets");
  // Notifications the device took and gave (kick eventfd wake-ups, call eventfd signals), per
  // packet: what EVENT_IDX and polling save.
  if (packets) {
    r.Add("backend", "kicks_per_packet", static_cast<double>(kicks) / packets, "ratio");
    r.Add("backend", "interrupts_per_packet", static_cast<double>(interrupts) / packets, "ratio");
    // Packets a worker pass moved on average: a backend that catches up with the driver
    // moves few per pass, and each pass costs its ring-index cache-line transfers.
    if (bursts)
      r.Add("backend", "packets_per_burst", static_cast<double>(packets) / bursts, "ratio");
    // The share of the worker's passes that found work: near 1, the backend is the slower side
    // of the loop; low, it waits for the driver.
    if (passes)
      r.Add("backend", "busy_passes", static_cast<double>(bursts) / passes, "ratio");
  }
}

void RecordSink(const frontend::FrontendResult& f,
                const std::optional<backend::BackendStats>& backend_stats, RunRecord* rec) {
  // Sink mode cannot check bytes on the way back; the in-process backend's checksum of every
  // frame byte it read must equal the sum of what we sent.
  Recorder r(rec);
  r.Add("frontend", "sent_byte_sum", static_cast<double>(f.sent_byte_sum()), "sum");
  if (!backend_stats) {
    rec->notes.push_back("sink mode against an external backend: bytes not verified");
    return;
  }
  uint64_t got = 0;
  for (const auto& q : backend_stats->queues) got += q.checksum;
  const bool match = got == f.sent_byte_sum();
  r.Add("backend", "checksum", static_cast<double>(got), "sum");
  r.Add("run", "sink_checksum_match", match ? 1 : 0, "bool");
  if (!match) {
    for (auto& m : rec->metrics)
      if (m.side == "frontend" && m.name == "verify_errors" && m.queue == -1) m.value += 1;
    rec->notes.push_back(
        "sink checksum mismatch: the backend read bytes other than those "
        "sent");
  }
}

void RecordCounters(const counters::RunCounters& run_counters, const frontend::FrontendResult& f,
                    const std::optional<backend::BackendStats>& backend_stats, RunRecord* rec) {
  counters::RunCounters::WorkMap work;
  for (const auto& q : f.queues)
    work[{"frontend", static_cast<int>(q.queue_pair)}].packets = static_cast<double>(q.rx_packets);
  if (backend_stats)
    for (const auto& q : backend_stats->queues)
      work[{"backend", static_cast<int>(q.queue_pair)}] = {static_cast<double>(q.tx_packets),
                                                           static_cast<double>(q.translations)};
  Result<std::vector<counters::CounterRow>> rows = run_counters.Rows(work);
  if (!rows.ok()) {
    rec->notes.push_back("counters: " + rows.error().message);
    return;
  }
  for (const auto& row : *rows)
    rec->metrics.push_back(Metric{row.queue, row.side, "counter:" + row.name,
                                  row.available ? row.value : std::nan(""), row.unit,
                                  row.available, row.note});
}

void RecordQueueScaling(uint32_t queue_pairs, const std::string& not_measurable,
                        RunRecord* rec) {
  if (queue_pairs < 2) return;
  Metric m{-1, "run", "mpps_per_queue", rec->Get("mpps") / queue_pairs, "Mpps", true, ""};
  if (!not_measurable.empty()) {
    m.value = std::nan("");
    m.available = false;
    m.note = "unavailable: " + not_measurable;
    rec->notes.push_back("queue scaling not measured: " + not_measurable);
  }
  rec->metrics.push_back(m);
}

}  // namespace vhostlab::experiment
