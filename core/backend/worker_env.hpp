// What a queue-pair worker's three parts share: the device state they reach (WorkerEnv), the
// per-burst tallies they count into (Tally), and the eventfd and logging helpers.
//
// A worker (worker.hpp) is three parts, each in its own file, all templated on the IOTLB design
// D so that the hot path inlines:
//   worker.hpp      the loop: pause handshake, RCU quiescent states, polling and sleeping,
//                   notification suppression, flushing the tallies into the shared counters;
//   translator.hpp  addresses: rings and buffers through the IOTLB and the memory table, chain
//                   walks, MISSes (pipelined, resent after a back-off), stalls and broken queues;
//   net_device.hpp  virtio-net: a burst of TX chains forwarded into RX chains (loopback, with
//                   MRG_RXBUF) or consumed (sink), used elements and interrupts.
// All three run on the worker's thread only; nothing here is shared with another thread except
// through WorkerEnv's atomics and the BackendChannel (which has its own lock).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "core/backend/backend_channel.hpp"
#include "core/backend/device.hpp"
#include "core/backend/stats.hpp"
#include "core/base/log.hpp"
#include "core/iotlb/replicated.hpp"
#include "core/trace/trace.hpp"

namespace vhostlab::backend {

// The device state one worker reaches. Config and queues change only while the worker is paused
// (device.hpp); the IOTLB is read through the worker's own Replicated<D>::Reader.
template <iotlb::Design D>
struct WorkerEnv {
  const DeviceConfig& config;
  WorkerControl& control;
  Counters& counters;
  QueueCounters& stats;  // this pair's
  QueueState& rx;
  QueueState& tx;
  iotlb::Replicated<D>& iotlb;
  const std::atomic<uint64_t>& iotlb_epoch;  // Device::iotlb_epoch_
  BackendChannel& channel;
  trace::Writer* recorder;  // may be null: --record
};

// Counted on the worker's thread during a burst, added to the shared QueueCounters by
// Worker::FlushStats() between bursts (one atomic add per non-zero tally, not per packet).
struct Tally {
  uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0, translations = 0;
  uint64_t misses = 0, retries = 0, access_fails = 0, drops = 0, errors = 0, checksum = 0;
  uint64_t kicks = 0, rx_interrupts = 0, tx_interrupts = 0;
  uint64_t bursts = 0;  // passes that published used elements
  uint64_t passes = 0;  // every pass, including the polls that found nothing
};

// Call, err and wake fds are non-blocking eventfds (the session accepts nothing else): a write
// fails with EAGAIN only when the counter is at its maximum, i.e. a notification is pending
// anyway.
inline void SignalEventFd(int fd) {
  if (fd < 0) return;
  uint64_t one = 1;
  ssize_t r;
  do r = ::write(fd, &one, sizeof(one)); while (r < 0 && errno == EINTR);
}

// One read per POLLIN: an eventfd read returns (and resets) the whole count, which it returns.
inline uint64_t DrainEventFd(int fd) {
  uint64_t v = 0;
  ssize_t r;
  do r = ::read(fd, &v, sizeof(v)); while (r < 0 && errno == EINTR);
  return r == sizeof(v) ? v : 0;
}

// A queue's errors are logged as warnings up to kLoggedErrorsPerQueue, then at debug level: a
// guest that breaks every chain must not flood the log.
inline constexpr uint32_t kLoggedErrorsPerQueue = 8;
template <typename... Args>
void LogQueueError(QueueState& q, const char* fmt, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  if (q.logged_errors < kLoggedErrorsPerQueue) {
    ++q.logged_errors;
    VL_WARN("queue %u: %s%s", q.index, buf,
            q.logged_errors == kLoggedErrorsPerQueue ? " (further errors on this queue are "
                                                       "logged at debug level)" : "");
  } else {
    VL_DEBUG("queue %u: %s", q.index, buf);
  }
}

// Chains per queue between quiescent states: a burst.
inline constexpr uint32_t kBurst = 32;

}  // namespace vhostlab::backend
