// Counters: the backend's process-lifetime counters (messages, IOTLB traffic, per queue pair
// datapath counts), written by the control thread and the workers of successive connections and
// read by Backend::Stats().
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/base/latency_histogram.hpp"

namespace vhostlab::backend {

// Process-lifetime counters of one queue pair (the workers of successive connections add here).
struct QueueCounters {
  std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, rx_packets{0}, rx_bytes{0};
  std::atomic<uint64_t> translations{0}, cache_hits{0}, iotlb_misses{0}, retries{0};
  std::atomic<uint64_t> access_fails{0}, drops{0}, errors{0}, checksum{0};
  std::atomic<uint64_t> kicks{0}, rx_interrupts{0}, tx_interrupts{0}, bursts{0}, passes{0};
};

struct Counters {
  explicit Counters(uint32_t queue_pairs) : queues(queue_pairs) {}
  std::atomic<uint64_t> messages{0}, message_errors{0}, iotlb_updates{0}, iotlb_invalidates{0};
  std::atomic<uint64_t> misses_sent{0}, connections{0};
  std::atomic<uint64_t> iotlb_refused_full{0}, broken_queues{0}, memory_faults{0};
  // Control thread: from an IOTLB message received to its reply sent (the backend's share of
  // the front-end's ack latency).
  LatencyHistogram update_service_ns, invalidate_service_ns;
  std::vector<QueueCounters> queues;
};

}  // namespace vhostlab::backend
