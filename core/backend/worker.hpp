// The loop of one queue-pair worker: the thread that owns queues 2k (RX) and 2k+1 (TX).
//
// Each pass: (1) honour a pause request, (2) service the pair for one burst (the translator makes
// the rings usable, the net device moves the chains), (3) flush the tallies and Quiesce() (report
// a quiescent state, apply pending IOTLB operations), (4) when nothing moved, poll on or sleep
// as the poll mode says. Nothing is translated across (3) or (4) (translator.hpp).
//
// Polling and notifications: while it polls the worker suppresses kicks (VRING_USED_F_NO_NOTIFY,
// or with EVENT_IDX an avail_event left behind). Before it sleeps it asks for kicks again and
// looks once more, since a chain made available while kicks were off came with none; then it
// goes Offline() and blocks on the kick eventfds and its wake eventfd with a timeout, and comes
// back Online(). A worker waiting for the IOTLB (a stalled queue) is woken by UPDATEs too
// (Device::WakeIotlbWaiters, through WorkerControl::waiting_for_iotlb and the IOTLB epoch).
#pragma once

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>

#include "core/backend/net_device.hpp"
#include "core/backend/translator.hpp"
#include "core/backend/worker_env.hpp"
#include "core/counters/tsc.hpp"
#include "core/memory/fault_guard.hpp"

namespace vhostlab::backend {

template <iotlb::Design D>
class Worker {
 public:
  explicit Worker(WorkerEnv<D> env) : net_(env), rx_(env.rx), tx_(env.tx) {}

  // The worker thread's body: passes until the device asks it to exit.
  void Run() {
    env().control.tid.store(static_cast<int>(::syscall(SYS_gettid)));
    AttachThread();
    const DeviceConfig& cfg = env().config;
    const uint64_t spin_ticks = static_cast<uint64_t>(
        static_cast<double>(cfg.spin_ns) * counters::TscClock::Get().hz / 1e9);
    uint64_t last_work = counters::ReadTsc();
    while (!HandlePause()) {
      const bool progress = ServicePair();
      FlushStats();
      reader_->Quiesce();
      if (progress) {
        if (cfg.poll != PollMode::kInterrupt) last_work = counters::ReadTsc();
        rearmed_ = false;
        continue;
      }
      if (cfg.poll == PollMode::kBusy ||
          (cfg.poll == PollMode::kAdaptive && counters::ReadTsc() - last_work < spin_ticks)) {
        // Polling: the driver need not kick (saves it a syscall, a guest a VM exit).
        SetNotifications(false);
        rearmed_ = false;
        __builtin_ia32_pause();
        continue;
      }
      // Before sleeping, ask for kicks again (whatever the ring's flags say: they live in
      // guest memory and may be left over) and look once more: a chain made available while
      // notifications were off came with no kick.
      if (!rearmed_) {
        SetNotifications(true);
        rearmed_ = true;
        continue;
      }
      Idle();
      last_work = counters::ReadTsc();  // a wake-up starts a new polling period
    }
    reader_.reset();  // unregisters this thread from RCU on this thread
  }

  // One pass of Run()'s loop body, without waiting (Device::RunWorkerPass).
  bool Pass() {
    if (!reader_) AttachThread();
    const bool progress = ServicePair();
    FlushStats();
    reader_->Quiesce();
    return progress;
  }

 private:
  using Reader = typename iotlb::Replicated<D>::Reader;

  QueueTranslator<D>& xl() { return net_.translator(); }
  WorkerEnv<D>& env() { return net_.translator().env(); }
  Tally& tally() { return net_.translator().tally(); }

  // Makes the calling thread this worker's: its IOTLB reader and its per-thread state.
  void AttachThread() {
    reader_ = env().iotlb.RegisterReader();
    xl().set_reader(reader_.get());
    faults_seen_ = memory::ThreadGuestMemoryFaults();  // also makes the thread's counter exist
    xl().set_ticks_per_us(
        std::max<uint64_t>(1, static_cast<uint64_t>(counters::TscClock::Get().hz / 1e6)));
  }

  // Returns true when the worker must exit.
  bool HandlePause() {
    WorkerControl& control = env().control;
    if (!control.pause_requested.load(std::memory_order_acquire)) return false;
    reader_->Offline();
    std::unique_lock<std::mutex> lock(control.mu);
    if (control.exit) {
      control.exited = true;
      control.cv.notify_all();
      lock.unlock();
      reader_->Online();
      return true;
    }
    control.paused = true;
    control.cv.notify_all();
    control.cv.wait(lock, [&] { return !control.pause_requested.load() || control.exit; });
    control.paused = false;
    const bool exit = control.exit;
    if (exit) {
      control.exited = true;
      control.cv.notify_all();
    }
    lock.unlock();
    reader_->Online();
    return exit;
  }

  // VRING_USED_F_NO_NOTIFY on both queues of the pair (rings that are attached now). Turning
  // notifications on always writes; turning them off only once per polling period (and again
  // for a ring attached since: it never had this period's NO_NOTIFY written).
  void SetNotifications(bool on) {
    if (xl().TakeRingAttached()) notifications_off_ = false;
    if (!on && notifications_off_) return;
    for (QueueState* q : {&rx_, &tx_})
      if (q->ring.attached()) q->ring.SetNotifications(on, env().config.event_idx);
    notifications_off_ = !on;
  }

  void Idle() {
    constexpr int kIdleWaitMs = 50;    // safety net only: kicks and wake-ups end waits earlier
    constexpr int kPollingWaitMs = 1;  // a queue without a kick fd (polling mode)
    WorkerControl& control = env().control;
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = {control.wake.get(), POLLIN, 0};
    int timeout = kIdleWaitMs;
    for (QueueState* q : {&rx_, &tx_}) {
      if (!q->Active()) continue;
      if (q->kick) fds[n++] = {q->kick.get(), POLLIN, 0};
      if (q->kick_polling) timeout = kPollingWaitMs;
    }
    const bool waiting = rx_.stalled || tx_.stalled;
    control.waiting_for_iotlb.store(waiting, std::memory_order_seq_cst);
    if (waiting && env().iotlb_epoch.load(std::memory_order_seq_cst) != burst_epoch_)
      timeout = 0;  // the IOTLB changed since this burst began: retry now
    reader_->Offline();
    if (!control.pause_requested.load(std::memory_order_acquire)) ::poll(fds, n, timeout);
    for (nfds_t i = 0; i < n; ++i)
      if (fds[i].revents & POLLIN) tally().kicks += DrainEventFd(fds[i].fd) * (i > 0);
    reader_->Online();
    control.waiting_for_iotlb.store(false, std::memory_order_relaxed);
  }

  bool ServicePair() {
    burst_epoch_ = env().iotlb_epoch.load(std::memory_order_seq_cst);
    ++tally().passes;
    net_.BeginPass();
    bool progress = false;
    // Each burst takes at most kBurst chains per queue, so a guest that moves avail->idx in
    // the middle of one gains nothing; the index is read once per burst.
    const bool tx_ready = tx_.Active() && xl().EnsureRing(tx_) && xl().AvailInRange(tx_);
    if (env().config.mode == DeviceMode::kSink) {
      if (tx_ready) progress = net_.Burst();
    } else {
      // The RX avail index is read only when there is TX work: a poll that finds none then
      // reads one line the driver writes (the TX avail index), not two. Each read of a line
      // the driver has written since takes it from the driver's core, and the driver's next
      // store to it must take it back (its kick check waits for that store). The RX ring is
      // still made usable at once (its NO_NOTIFY, its MISSes).
      const bool rx_ring = rx_.Active() && xl().EnsureRing(rx_);
      if (tx_ready && rx_ring && tx_.ring.Pending() && xl().AvailInRange(rx_))
        progress = net_.Burst();
    }
    if (memory::ThreadGuestMemoryFaults() != faults_seen_) [[unlikely]] {
      GuestMemoryFaulted();
      return progress;
    }
    net_.Publish();
    return progress;
  }

  // A guest-memory access of this thread faulted (fault_guard.hpp: the page now reads as
  // zeros). Nothing of this burst is published; the pair's queues are broken.
  void GuestMemoryFaulted() {
    const uint64_t faults = memory::ThreadGuestMemoryFaults();
    env().counters.memory_faults.fetch_add(faults - faults_seen_, std::memory_order_relaxed);
    faults_seen_ = faults;
    // What the faulting burst saw were zeros, so it may already have broken a queue for
    // what it read; the fault is the cause, and it is what is reported.
    for (QueueState* q : {&rx_, &tx_}) {
      if (!q->started) continue;
      q->broken = false;
      xl().Break(*q, "guest memory faulted (SIGBUS: the front-end's memory file shrank, or cannot "
                    "be backed); nothing of this burst was published");
    }
  }

  void FlushStats() {
    auto add = [](std::atomic<uint64_t>& a, uint64_t& v) {
      if (v) a.fetch_add(v, std::memory_order_relaxed), v = 0;
    };
    QueueCounters& stats = env().stats;
    add(stats.tx_packets, tally().tx_packets);
    add(stats.tx_bytes, tally().tx_bytes);
    add(stats.rx_packets, tally().rx_packets);
    add(stats.rx_bytes, tally().rx_bytes);
    const uint64_t translations = tally().translations;
    add(stats.translations, tally().translations);
    add(stats.iotlb_misses, tally().misses);
    add(stats.retries, tally().retries);
    add(stats.access_fails, tally().access_fails);
    add(stats.drops, tally().drops);
    add(stats.errors, tally().errors);
    add(stats.checksum, tally().checksum);
    add(stats.kicks, tally().kicks);
    add(stats.rx_interrupts, tally().rx_interrupts);
    add(stats.tx_interrupts, tally().tx_interrupts);
    // Polls are flushed with the work they found (or every 4096): an atomic add per empty
    // poll would cost more than the poll.
    const bool flush_passes = tally().bursts || tally().passes >= 4096;
    add(stats.bursts, tally().bursts);
    if (flush_passes) add(stats.passes, tally().passes);
    // Designs with a micro-cache count their slow-path lookups; the rest of the
    // translations since the last flush were cache hits.
    if constexpr (requires(const D& d) { d.CacheMisses(); }) {
      const uint64_t cache_misses = reader_->table().CacheMisses();
      const uint64_t slow = cache_misses - cache_misses_seen_;
      cache_misses_seen_ = cache_misses;
      if (translations > slow)
        stats.cache_hits.fetch_add(translations - slow, std::memory_order_relaxed);
    }
  }

  NetDevice<D> net_;  // and through it the translator (xl()), the env and the tallies
  QueueState& rx_;
  QueueState& tx_;
  std::unique_ptr<Reader> reader_;
  uint64_t burst_epoch_ = 0;
  uint64_t faults_seen_ = 0;        // memory::ThreadGuestMemoryFaults() at the last burst
  uint64_t cache_misses_seen_ = 0;
  bool notifications_off_ = false;  // VRING_USED_F_NO_NOTIFY set while polling
  bool rearmed_ = false;            // notifications turned on since the last work: may sleep
};

}  // namespace vhostlab::backend
