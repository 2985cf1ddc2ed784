// The backend's device: per-connection queue state, the queue-pair workers and the IOTLB they
// translate through. The session (session.cpp) owns one Device per connection and changes it only
// through this interface.
//
// Threads and ownership:
//  - The control thread (the session) writes DeviceConfig and a QueueState only while the worker
//    that owns it is paused (PauseGuard); a paused worker is offline for RCU and touches nothing.
//    The pause handshake (mutex + condition variable) orders those writes before the worker's
//    next reads, so the queue state itself needs no lock.
//  - Worker k owns queues 2k (RX) and 2k+1 (TX) and runs Worker<D> (worker.hpp), templated on the
//    IOTLB design D chosen once by name when the device is made (iotlb::VisitDesign).
//  - IOTLB UPDATE/INVALIDATE go to iotlb::Replicated<D> and never pause anyone: Invalidate()
//    returns only after every worker passed a quiescent state, which is the invalidation
//    guarantee the INVALIDATE reply promises.
//  - BackendChannel (the SET_BACKEND_REQ_FD socket) is shared by all workers for MISS and
//    ACCESS_FAIL; writes are serialized by its mutex, and at most one MISS per page is in
//    flight until a worker has applied the UPDATE that answered it (SendMiss).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <functional>
#include <unordered_map>
#include <vector>

#include "core/backend/backend.hpp"
#include "core/backend/backend_channel.hpp"
#include "core/backend/stats.hpp"
#include "core/base/latency_histogram.hpp"
#include "core/base/unique_fd.hpp"
#include "core/iotlb/contract.hpp"
#include "core/memory/memory_table.hpp"
#include "core/memory/page_window.hpp"
#include "core/protocol/channel.hpp"
#include "core/trace/trace.hpp"
#include "core/virtio/device_queue.hpp"

namespace vhostlab::backend {

struct DeviceConfig {
  uint64_t features = 0;  // negotiated virtio features
  bool iommu = false;     // VIRTIO_F_IOMMU_PLATFORM negotiated: ring + buffer addresses are IOVAs
  bool indirect = false;  // VIRTIO_RING_F_INDIRECT_DESC negotiated
  bool event_idx = false; // VIRTIO_RING_F_EVENT_IDX negotiated: used_event / avail_event
  bool mrg_rxbuf = false; // VIRTIO_NET_F_MRG_RXBUF negotiated: a frame may span RX chains
  DeviceMode mode = DeviceMode::kLoopback;
  PollMode poll = PollMode::kAdaptive;  // fixed when the device is made
  uint64_t spin_ns = 0;
  memory::MemoryTable memory;
};

// One virtqueue. Config fields are written by the control thread while the owning worker is
// paused; the runtime fields belong to the worker.
struct QueueState {
  uint32_t index = 0;
  // Config.
  uint32_t num = 0;  // 0 until SET_VRING_NUM
  bool addr_set = false;
  protocol::VringAddr addr{};
  UniqueFd kick, call, err;
  bool kick_polling = false;  // SET_VRING_KICK with the no-fd bit: poll without notifications
  bool started = false;       // a kick was set and GET_VRING_BASE has not stopped it since
  bool enabled = false;       // SET_VRING_ENABLE (or enabled at start without PROTOCOL_FEATURES)
  // Runtime (worker), reset by the control thread when config changes (dirty = true).
  virtio::DeviceRing ring;
  // Host-contiguous views of desc/avail/used when their pages are scattered in host memory.
  memory::PageWindow windows[3];
  bool dirty = true;           // ring pointers must be (re)translated
  bool ring_ok = false;        // ring pointers valid for ring_generation
  uint64_t ring_generation = 0;
  bool stalled = false;        // waiting for the IOTLB to change (miss or untranslatable ring)
  uint64_t stalled_generation = 0;
  uint64_t resend_at = 0;      // TSC: a MISS of this stall could not be sent; walk again then
  uint32_t resend_backoff_us = 0;
  // Broken: the guest did something the queue cannot recover from by itself (moved the avail
  // index past the ring, its memory faulted). Nothing is processed until the control thread
  // reconfigures the queue (Reconfigured()); the err eventfd was signalled.
  bool broken = false;
  uint16_t missed_ahead = 0;   // chains from the head whose misses were sent while stalled
  uint32_t logged_errors = 0;  // rate limit for per-queue error logs

  bool Active() const { return started && enabled && num && addr_set && !broken; }
  // Control thread, worker paused: the config changed, ring pointers must be re-translated and
  // a broken queue gets another chance.
  void Reconfigured() {
    dirty = true;
    broken = false;
  }
};

// Pause handshake with one worker.
struct WorkerControl {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> pause_requested{false};
  bool paused = false;     // guarded by mu
  bool exit = false;       // guarded by mu
  bool exited = false;     // guarded by mu
  std::atomic<bool> waiting_for_iotlb{false};
  std::atomic<int> tid{0};
  UniqueFd wake;           // eventfd: pause/exit requests and IOTLB changes interrupt idle waits
  void Wake();
};

class Device {
 public:
  Device(const BackendOptions& options, Counters* counters, trace::Writer* recorder);
  virtual ~Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // UPDATE: the caller has validated the message and that [uaddr, uaddr + size) is mapped.
  virtual iotlb::InsertStatus IotlbUpdate(iotlb::IovaRange range, uint64_t uaddr,
                                          iotlb::Perm perm) = 0;
  // INVALIDATE: returns once no worker can use a translation inside `range`.
  virtual void IotlbInvalidate(iotlb::IovaRange range) = 0;
  virtual std::string_view design() const = 0;
  // Live entries in the master copy (what --iotlb-max-entries caps).
  virtual std::size_t IotlbEntries() const = 0;
  // Caller-driven devices only (MakeDevice with WorkerThreads::kCallerDriven): the calling thread
  // runs one pass of worker `pair`'s loop (one burst on each of its queues, counters flushed,
  // quiescent state reported and pending IOTLB operations applied) and never waits. The first
  // call registers the calling thread as the pair's IOTLB reader; every later call and the
  // device's destruction must happen on that thread. Returns whether anything moved.
  virtual bool RunWorkerPass(uint32_t pair) = 0;

  uint32_t queue_pairs() const { return static_cast<uint32_t>(controls_.size()); }
  uint32_t queue_count() const { return 2 * queue_pairs(); }
  QueueState& queue(uint32_t i) { return *queues_[i]; }
  DeviceConfig& config() { return config_; }
  BackendChannel& backend_channel() { return backend_channel_; }
  std::vector<int> WorkerTids() const;

  // Blocks until worker `pair` is paused (offline, touching nothing); Resume lets it go.
  void Pause(uint32_t pair);
  void Resume(uint32_t pair);
  void PauseAll();
  void ResumeAll();

  class PauseGuard {
   public:
    PauseGuard(Device* d, int pair) : d_(d), pair_(pair) {
      pair_ < 0 ? d_->PauseAll() : d_->Pause(static_cast<uint32_t>(pair_));
    }
    ~PauseGuard() { pair_ < 0 ? d_->ResumeAll() : d_->Resume(static_cast<uint32_t>(pair_)); }
    PauseGuard(const PauseGuard&) = delete;
    PauseGuard& operator=(const PauseGuard&) = delete;

   private:
    Device* d_;
    int pair_;
  };

 protected:
  // Wakes workers that wait for the IOTLB to change (after an UPDATE).
  void WakeIotlbWaiters();
  void StopWorkers();  // asks every worker to exit and waits; DeviceImpl joins the threads

  DeviceConfig config_;
  // Bumped (seq_cst) after every UPDATE/INVALIDATE is published to the replicas. A worker that
  // is about to sleep while waiting for the IOTLB compares it with the value it saw before its
  // burst, and WakeIotlbWaiters() reads the workers' waiting flags after bumping it: one of the
  // two always sees the other, so no UPDATE is slept through.
  std::atomic<uint64_t> iotlb_epoch_{0};
  Counters* counters_;
  trace::Writer* recorder_;  // may be null: --record
  BackendChannel backend_channel_;
  std::vector<std::unique_ptr<QueueState>> queues_;
  std::vector<std::unique_ptr<WorkerControl>> controls_;
};

// kStart: one thread per queue pair runs its worker. kCallerDriven: no thread is started and the
// caller runs the workers' passes itself (Device::RunWorkerPass): the deterministic per-packet
// instruction gate (bench/gate/datapath_gate.cpp) drives the real datapath this way.
enum class WorkerThreads { kStart, kCallerDriven };

// Makes a device whose workers use the IOTLB design options.iotlb (a name from
// iotlb::DesignNames()), in options.mode with options.queue_pairs, waiting as options.poll says.
// `recorder` (may be null) receives every translation the workers ask for and every MISS.
Result<std::unique_ptr<Device>> MakeDevice(const BackendOptions& options, Counters* counters,
                                           trace::Writer* recorder = nullptr,
                                           WorkerThreads threads = WorkerThreads::kStart);

}  // namespace vhostlab::backend
