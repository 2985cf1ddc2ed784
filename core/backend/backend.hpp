// The vhost-user backend (the spec's "slave"): a virtio-net device with a device IOTLB.
//
// Public API used by the CLI (`vhostlab backend`), by `vhostlab run --backend self` (which runs
// it in-process on its own threads, over a real Unix socket), by tests and by the Python module.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::backend {

enum class DeviceMode { kLoopback, kSink };

// How queue workers (and the control thread) wait for work.
//  - kInterrupt: sleep on the kick eventfds as soon as one pass moves nothing; every kick and
//    every control message is a wake-up.
//  - kAdaptive: keep polling for `spin_us` after the last work (rings, and the socket for the
//    control thread), with guest notifications suppressed (VRING_USED_F_NO_NOTIFY) while
//    polling, then sleep as kInterrupt does. A burst of traffic or of IOTLB messages pays no
//    wake-up; an idle backend costs nothing after spin_us.
//  - kBusy: workers never sleep (like DPDK's PMD); the control thread behaves as in kAdaptive.
enum class PollMode { kInterrupt, kAdaptive, kBusy };
const char* PollModeName(PollMode m);
// Parses "busy", "interrupt", "adaptive" or "adaptive:US" (US in 1..1000000); the error says
// what is accepted. `spin_us` is set only by "adaptive:US".
Status ParsePollMode(const std::string& v, PollMode* mode, uint32_t* spin_us);

struct BackendOptions {
  std::string socket_path;
  bool client = false;              // connect to the front-end's socket instead of listening
  std::string iotlb = "hash";       // a name from iotlb::DesignNames(); iotlb::kDefaultDesign
  DeviceMode mode = DeviceMode::kLoopback;
  uint32_t queue_pairs = 1;         // offered with MQ; GET_QUEUE_NUM answers this
  bool serve_forever = true;        // keep accepting after a front-end disconnects
  PollMode poll = PollMode::kAdaptive;
  // Virtio features offered besides the fixed set (and acked only if the front-end wants
  // them): VIRTIO_RING_F_EVENT_IDX and VIRTIO_NET_F_MRG_RXBUF, on by default as in QEMU, DPDK
  // and Linux vhost; off for comparison.
  bool event_idx = true;
  bool mrg_rxbuf = true;
  // kAdaptive: polling time after the last work. 30 us measured best on 2-vCPU VMs (strict,
  // lazy and cold profiles; bench/README.md): longer spins steal the vCPU the front-end needs.
  uint32_t spin_us = 30;
  // Records the IOTLB traffic and every datapath translation to this file (core/trace/), from
  // Start() to Stop(); empty: no recording.
  std::string record_path;
  uint64_t record_limit = 10'000'000;  // records (40 bytes each); recording stops there
  // Live IOTLB entries one front-end may hold (session-wide; each is kept in the master copy
  // and in every worker's replica). An UPDATE past it is refused (non-zero reply) and counted.
  uint64_t iotlb_max_entries = 256 * 1024;
  // A front-end that half-sends a message and goes quiet, or stops reading replies, is
  // disconnected after this long (ms), so the next front-end is served.
  int peer_timeout_ms = 3000;
  // Placement (OS CPU ids, checked by the caller against the machine): worker p is bound to
  // worker_cpus[p % size] (core/topology, hwloc), the control thread to the set control_cpus.
  // Empty: not bound (threads inherit the creating thread's binding).
  std::vector<int> worker_cpus;
  std::vector<int> control_cpus;
};

// Per queue-pair datapath statistics (summed over the pair's queues).
struct QueueStats {
  uint32_t queue_pair = 0;
  uint64_t tx_packets = 0;   // packets the guest transmitted that the device consumed
  uint64_t tx_bytes = 0;
  uint64_t rx_packets = 0;   // packets written into guest receive buffers
  uint64_t rx_bytes = 0;
  uint64_t translations = 0; // IOTLB Translate() calls
  uint64_t cache_hits = 0;   // micro-cache hits, where the design has one
  uint64_t iotlb_misses = 0; // misses that sent (or joined) a MISS
  uint64_t retries = 0;      // descriptors retried after a miss (never dropped)
  uint64_t access_fails = 0; // ACCESS_FAIL sent
  uint64_t drops = 0;        // must stay 0
  uint64_t errors = 0;       // malformed descriptors / chains refused
  uint64_t checksum = 0;     // sink mode: sum of payload bytes read
  uint64_t kicks = 0;          // guest notifications the workers woke up for (kick eventfds)
  uint64_t rx_interrupts = 0;  // call eventfd signals (RX queue; TX queue below)
  uint64_t tx_interrupts = 0;
  uint64_t bursts = 0;  // worker passes that completed chains (published used elements)
  uint64_t passes = 0;  // worker passes, including the polls that found nothing
};

struct BackendStats {
  uint64_t messages = 0;
  uint64_t message_errors = 0;  // refused messages (non-zero reply or logged)
  uint64_t iotlb_updates = 0;
  uint64_t iotlb_invalidates = 0;
  uint64_t misses_sent = 0;
  uint64_t connections = 0;
  uint64_t iotlb_refused_full = 0;  // UPDATEs refused at iotlb_max_entries
  uint64_t broken_queues = 0;       // queues marked broken (guest moved index, memory fault)
  uint64_t memory_faults = 0;       // guest-memory accesses that faulted (SIGBUS) and were survived
  // IOTLB UPDATE / INVALIDATE service time on the control thread, message received to reply
  // sent, in ns (0 when none was served). An INVALIDATE's includes its grace period.
  double update_service_p50_ns = 0, update_service_p99_ns = 0;
  double invalidate_service_p50_ns = 0, invalidate_service_p99_ns = 0;
  std::vector<QueueStats> queues;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Starts serving on its own control thread; returns once the socket is listening (server
  // mode) or connected (client mode).
  virtual Status Start() = 0;
  // Stops workers and the control thread; idempotent.
  virtual void Stop() = 0;
  virtual BackendStats Stats() const = 0;
  // Thread ids of the queue workers (for counters), in queue-pair order.
  virtual std::vector<int> WorkerTids() const = 0;
  // Records written to the trace so far (0 without --record).
  virtual uint64_t RecordedEvents() const = 0;
};

Result<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options);

}  // namespace vhostlab::backend
