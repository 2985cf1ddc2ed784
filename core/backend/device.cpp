// Queue-pair workers: the datapath of the backend, templated on the IOTLB design.
//
// Each worker loops: (1) honour a pause request, (2) service its RX and TX queues for one burst,
// (3) Quiesce() (report a quiescent state, apply pending IOTLB operations), (4) when nothing
// moved, go Offline() and block on the kick eventfds (and its wake eventfd) with a timeout, then
// Online() again. Nothing is translated across (3) or (4): ring pointers are cached per IOTLB
// generation and re-translated whenever the reader's generation() moved, and buffer pointers
// live only inside one burst. That is what makes the INVALIDATE reply (sent after
// Replicated::Invalidate's grace period) a real guarantee.
//
// Address spaces (vhost-user spec, "IOMMU support"):
//   IOMMU on:  ring and descriptor addresses are IOVAs -> IOTLB (Translate, with the permission
//              the access needs) -> front-end uaddr -> memory table -> local pointer.
//   IOMMU off: ring addresses are front-end uaddrs -> memory table; descriptor addresses are
//              GPAs -> memory table.
// Every step answers for one contiguous piece; a buffer becomes a list of pieces. A ring part
// (desc table, avail ring, used ring) is used as one block: in place when its pieces are
// host-contiguous, else through a PageWindow of its pages (TranslateRing).
//
// Misses: a chain (or ring) that misses sends IOTLB MISS (iova, perm) and leaves the descriptor
// where it is; the queue is "stalled" until its reader's generation moves, then the SAME head is
// walked again (counted in `retries`). Nothing is dropped for a miss.
// Permission failures send ACCESS_FAIL and complete the chain as used with length 0 (the driver
// gets its buffer back and the error is counted); malformed chains are completed the same way.
// Loopback: a TX packet is forwarded only once an RX chain large enough for it is available;
// otherwise the TX chain stays available (back-pressure, never a drop). An RX chain too small for
// the packet (no MRG_RXBUF) is the one case a packet is dropped, and it is counted in `drops`.
#include "core/backend/device.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cinttypes>
#include <thread>

#include "core/base/log.hpp"
#include "core/base/seeded_regression.hpp"
#include "core/counters/tsc.hpp"
#include "core/iotlb/registry.hpp"
#include "core/iotlb/replicated.hpp"
#include "core/memory/fault_guard.hpp"
#include "core/memory/page_window.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::backend {

using iotlb::Perm;
using virtio::ChainFault;
using virtio::ChainStatus;
using virtio::Xlate;
using virtio::XlateStatus;

namespace {

constexpr int kIdleWaitMs = 50;      // safety net only: kicks and wake-ups end waits earlier
constexpr int kPollingWaitMs = 1;    // a queue without a kick fd (polling mode)
constexpr uint32_t kBurst = 32;      // chains per queue between quiescent states
constexpr uint32_t kLoggedErrorsPerQueue = 8;

// Call, err and wake fds are non-blocking eventfds (the session accepts nothing else): a write
// fails with EAGAIN only when the counter is at its maximum, i.e. a notification is pending
// anyway.
void Signal(int fd) {
  if (fd < 0) return;
  uint64_t one = 1;
  ssize_t r;
  do r = ::write(fd, &one, sizeof(one)); while (r < 0 && errno == EINTR);
}

// One read per POLLIN: an eventfd read returns (and resets) the whole count, which it returns.
uint64_t Drain(int fd) {
  uint64_t v = 0;
  ssize_t r;
  do r = ::read(fd, &v, sizeof(v)); while (r < 0 && errno == EINTR);
  return r == sizeof(v) ? v : 0;
}

}  // namespace

// ---- Device (design-independent part) -------------------------------------------------------

void WorkerControl::Wake() { Signal(wake.get()); }

Device::Device(const BackendOptions& options, Counters* counters, trace::Writer* recorder)
    : counters_(counters), recorder_(recorder), backend_channel_(counters, recorder) {
  const uint32_t queue_pairs = options.queue_pairs;
  config_.mode = options.mode;
  config_.poll = options.poll;
  config_.spin_ns = uint64_t{options.spin_us} * 1000;
  for (uint32_t i = 0; i < 2 * queue_pairs; ++i) {
    queues_.push_back(std::make_unique<QueueState>());
    queues_.back()->index = i;
  }
  for (uint32_t i = 0; i < queue_pairs; ++i) {
    controls_.push_back(std::make_unique<WorkerControl>());
    controls_.back()->wake = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }
}

std::vector<int> Device::WorkerTids() const {
  std::vector<int> out;
  for (const auto& c : controls_) out.push_back(c->tid.load());
  return out;
}

void Device::Pause(uint32_t pair) {
  WorkerControl& c = *controls_[pair];
  std::unique_lock<std::mutex> lock(c.mu);
  c.pause_requested.store(true, std::memory_order_release);
  c.Wake();
  c.cv.wait(lock, [&] { return c.paused || c.exited; });
}

void Device::Resume(uint32_t pair) {
  WorkerControl& c = *controls_[pair];
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.pause_requested.store(false, std::memory_order_release);
  }
  c.cv.notify_all();
}

void Device::PauseAll() {
  // Request all first so the workers park in parallel.
  for (auto& c : controls_) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->pause_requested.store(true, std::memory_order_release);
    c->Wake();
  }
  for (uint32_t i = 0; i < controls_.size(); ++i) Pause(i);
}

void Device::ResumeAll() {
  for (uint32_t i = 0; i < controls_.size(); ++i) Resume(i);
}

void Device::WakeIotlbWaiters() {
  iotlb_epoch_.fetch_add(1, std::memory_order_seq_cst);
  for (auto& c : controls_)
    if (c->waiting_for_iotlb.load(std::memory_order_seq_cst)) c->Wake();
}

void Device::StopWorkers() {
  for (auto& c : controls_) {
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->exit = true;
      c->pause_requested.store(true, std::memory_order_release);
    }
    c->cv.notify_all();
    c->Wake();
  }
}

// ---- DeviceImpl<D>: the templated datapath --------------------------------------------------

namespace {

template <iotlb::Design D>
class DeviceImpl final : public Device {
 public:
  DeviceImpl(const BackendOptions& options, Counters* counters, trace::Writer* recorder,
             WorkerThreads threads)
      : Device(options, counters, recorder) {
    backend_channel_.SetMinApplied([this] { return iotlb_.MinAppliedSeq(); });
    if (threads == WorkerThreads::kCallerDriven) {
      caller_driven_.resize(options.queue_pairs);
      return;
    }
    for (uint32_t p = 0; p < options.queue_pairs; ++p) {
      // Placement (BackendOptions::worker_cpus): each worker binds itself before it runs.
      const int cpu = options.worker_cpus.empty()
                          ? -1
                          : options.worker_cpus[p % options.worker_cpus.size()];
      threads_.emplace_back([this, p, cpu] {
        if (cpu >= 0)
          if (Status s = topology::BindThisThreadToCpus({cpu}); !s.ok())
            VL_WARN("worker %u: %s", p, s.message().c_str());
        Worker(this, p).Run();
      });
    }
  }
  ~DeviceImpl() override {
    StopWorkers();
    for (auto& t : threads_) t.join();
  }

  iotlb::InsertStatus IotlbUpdate(iotlb::IovaRange range, uint64_t uaddr, Perm perm) override {
    iotlb::InsertStatus s = iotlb_.Insert(range, uaddr, perm);
    backend_channel_.NoteUpdate(range, iotlb_.last_seq());
    WakeIotlbWaiters();
    return s;
  }
  void IotlbInvalidate(iotlb::IovaRange range) override {
    iotlb_.Invalidate(range);
    WakeIotlbWaiters();
  }
  std::string_view design() const override { return D::kName; }
  std::size_t IotlbEntries() const override { return iotlb_.Size(); }
  bool RunWorkerPass(uint32_t pair) override {
    if (pair >= caller_driven_.size()) return false;  // a device with worker threads
    auto& w = caller_driven_[pair];
    if (!w) w = std::make_unique<Worker>(this, pair);
    return w->Pass();
  }

 private:
  using Reader = typename iotlb::Replicated<D>::Reader;

  class Worker {
   public:
    Worker(DeviceImpl* dev, uint32_t pair)
        : dev_(dev),
          control_(*dev->controls_[pair]),
          stats_(dev->counters_->queues[pair]),
          rx_(dev->queue(2 * pair)),
          tx_(dev->queue(2 * pair + 1)) {}

    void Run() {
      control_.tid.store(static_cast<int>(::syscall(SYS_gettid)));
      AttachThread();
      const DeviceConfig& cfg = dev_->config_;
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

    // One pass of Run()'s loop body, without waiting (RunWorkerPass).
    bool Pass() {
      if (!reader_) AttachThread();
      const bool progress = ServicePair();
      FlushStats();
      reader_->Quiesce();
      return progress;
    }

   private:
    // Makes the calling thread this worker's: its IOTLB reader and its per-thread state.
    void AttachThread() {
      reader_ = dev_->iotlb_.RegisterReader();
      faults_seen_ = memory::ThreadGuestMemoryFaults();  // also makes the thread's counter exist
      ticks_per_us_ = std::max<uint64_t>(1, static_cast<uint64_t>(counters::TscClock::Get().hz / 1e6));
    }

    // Returns true when the worker must exit.
    bool HandlePause() {
      if (!control_.pause_requested.load(std::memory_order_acquire)) return false;
      reader_->Offline();
      std::unique_lock<std::mutex> lock(control_.mu);
      if (control_.exit) {
        control_.exited = true;
        control_.cv.notify_all();
        lock.unlock();
        reader_->Online();
        return true;
      }
      control_.paused = true;
      control_.cv.notify_all();
      control_.cv.wait(lock, [&] { return !control_.pause_requested.load() || control_.exit; });
      control_.paused = false;
      const bool exit = control_.exit;
      if (exit) {
        control_.exited = true;
        control_.cv.notify_all();
      }
      lock.unlock();
      reader_->Online();
      return exit;
    }

    // VRING_USED_F_NO_NOTIFY on both queues of the pair (rings that are attached now). Turning
    // notifications on always writes; turning them off only once per polling period.
    void SetNotifications(bool on) {
      if (!on && notifications_off_) return;
      for (QueueState* q : {&rx_, &tx_})
        if (q->ring.attached()) q->ring.SetNotifications(on, dev_->config_.event_idx);
      notifications_off_ = !on;
    }

    void Idle() {
      pollfd fds[3];
      nfds_t n = 0;
      fds[n++] = {control_.wake.get(), POLLIN, 0};
      int timeout = kIdleWaitMs;
      for (QueueState* q : {&rx_, &tx_}) {
        if (!q->Active()) continue;
        if (q->kick) fds[n++] = {q->kick.get(), POLLIN, 0};
        if (q->kick_polling) timeout = kPollingWaitMs;
      }
      const bool waiting = rx_.stalled || tx_.stalled;
      control_.waiting_for_iotlb.store(waiting, std::memory_order_seq_cst);
      if (waiting && dev_->iotlb_epoch_.load(std::memory_order_seq_cst) != burst_epoch_)
        timeout = 0;  // the IOTLB changed since this burst began: retry now
      reader_->Offline();
      if (!control_.pause_requested.load(std::memory_order_acquire)) ::poll(fds, n, timeout);
      for (nfds_t i = 0; i < n; ++i)
        if (fds[i].revents & POLLIN) kicks_ += Drain(fds[i].fd) * (i > 0);
      reader_->Online();
      control_.waiting_for_iotlb.store(false, std::memory_order_relaxed);
    }

    // ---- translation ----

    // A buffer address (GPA, or IOVA with the IOMMU) for `perm`.
    Xlate TranslateBuffer(uint64_t addr, uint64_t len, Perm perm) {
      const DeviceConfig& cfg = dev_->config_;
      memory::Span s;
      if (cfg.iommu) {
        ++translations_;
        const iotlb::Translation t = reader_->table().Translate(addr, len, perm);
        if (dev_->recorder_) [[unlikely]]
          dev_->recorder_->Translation(current_queue_, addr, len, perm, t);
        if (t.outcome == iotlb::Outcome::kMiss) return {XlateStatus::kMiss, nullptr, 0};
        if (t.outcome == iotlb::Outcome::kAccessFail) return {XlateStatus::kAccessFail, nullptr, 0};
        if (!cfg.memory.LookupUaddr(t.uaddr, t.len, &s)) return {XlateStatus::kUnmapped, nullptr, 0};
        return {XlateStatus::kOk, s.ptr, s.len};
      }
      if (!cfg.memory.LookupGpa(addr, len, &s)) return {XlateStatus::kUnmapped, nullptr, 0};
      return {XlateStatus::kOk, s.ptr, s.len};
    }

    // A ring part (desc table, avail or used ring) at `addr` (uaddr, or IOVA with the IOMMU).
    // It may span several IOTLB entries (a 1024-entry desc table is 4 pages of 4 KiB, and
    // QEMU answers one page per MISS): every missing page gets its MISS now, all at once. When
    // every page translates, the part is used in place if its host pieces follow each other;
    // otherwise (a Linux guest's rings are contiguous in IOVA space only) through `window`, a
    // host-contiguous mapping of exactly those pages (memory/page_window.hpp).
    struct RingXlate {
      enum Status : uint8_t { kOk, kMiss, kAccessFail, kUnmapped, kNotContiguous } status;
      uint8_t* ptr = nullptr;
      uint64_t at = 0;     // the address that failed
      std::string why{};   // kNotContiguous: what could not be mapped
    };
    RingXlate TranslateRing(uint64_t addr, uint64_t len, Perm perm, memory::PageWindow* window) {
      constexpr uint64_t kPage = memory::kWindowPage;
      const DeviceConfig& cfg = dev_->config_;
      const uint64_t first_page = addr & ~(kPage - 1);
      std::vector<uint8_t*>& pages = ring_pages_;
      pages.clear();
      uint8_t* start = nullptr;
      bool missed = false, contiguous = true;
      for (uint64_t done = 0; done < len;) {
        const uint64_t a = addr + done;
        uint64_t uaddr = a, n = len - done;
        if (cfg.iommu) {
          ++translations_;
          const iotlb::Translation t = reader_->table().Translate(a, n, perm);
          if (dev_->recorder_) [[unlikely]]
            dev_->recorder_->Translation(current_queue_, a, n, perm, t);
          if (t.outcome == iotlb::Outcome::kAccessFail) return {RingXlate::kAccessFail, nullptr, a};
          if (t.outcome == iotlb::Outcome::kMiss) {
            ++misses_;
            NoteMiss(dev_->backend_channel_.SendMiss(a, perm, current_queue_,
                                                     reader_->applied_seq()));
            missed = true;
            done += kPage - (a & (kPage - 1));
            continue;
          }
          uaddr = t.uaddr;
          n = t.len;
        }
        memory::Span s;
        if (!cfg.memory.LookupUaddr(uaddr, n, &s)) return {RingXlate::kUnmapped, nullptr, a};
        if (!start) start = s.ptr - done;
        else if (s.ptr != start + done) contiguous = false;
        if (!missed) {
          // The host page of every IOVA page this piece touches (the first may begin before
          // `a`); a page already listed must come out the same.
          const uint64_t in_page = a & (kPage - 1);
          for (uint64_t k = 0; k * kPage < in_page + s.len; ++k) {
            uint8_t* host = s.ptr - in_page + k * kPage;
            const uint64_t index = (a - first_page) / kPage + k;
            if (index < pages.size()) {
              if (pages[index] != host)
                return {RingXlate::kNotContiguous, nullptr, a,
                        "one IOVA page maps to two host places"};
            } else {
              pages.push_back(host);
            }
          }
        }
        done += s.len;
      }
      if (missed) return {RingXlate::kMiss, nullptr, addr};
      if (contiguous) return {RingXlate::kOk, start, 0};
      const bool writable = perm != Perm::kRead;
      if (!window->Shows(pages, writable)) {
        auto w = memory::PageWindow::Build(pages, writable);
        if (!w) return {RingXlate::kNotContiguous, nullptr, addr, w.error().message};
        *window = std::move(*w);
        VL_DEBUG("queue %u: ring part at 0x%" PRIx64 " spans %zu scattered host pages: mapped "
                 "through a window", current_queue_, addr, pages.size());
      }
      return {RingXlate::kOk, window->data() + (addr - first_page), 0};
    }

    // (Re)translates the ring pointers of `q` if its config or the IOTLB generation changed.
    // Returns true when the ring is usable now. The MISSes of all three parts go out together.
    bool EnsureRing(QueueState& q) {
      const bool iommu = dev_->config_.iommu;
      const uint64_t gen = reader_->generation();
      if (!q.dirty && q.ring_ok && (!iommu || q.ring_generation == gen)) return true;
      if (q.stalled && q.stalled_generation == gen && !q.dirty && !ResendDue(q)) return false;
      if (q.stalled) ++retries_;
      q.dirty = false;
      q.ring_ok = false;
      q.ring_generation = gen;
      current_queue_ = static_cast<uint16_t>(q.index);
      struct Part {
        const char* name;
        uint64_t addr;
        uint64_t len;
        Perm perm;
        uint8_t* ptr;
      } parts[3] = {
          {"desc", q.addr.desc_user_addr, virtio::DescBytes(q.num), Perm::kRead, nullptr},
          {"avail", q.addr.avail_user_addr, virtio::AvailBytes(q.num), Perm::kRead, nullptr},
          {"used", q.addr.used_user_addr, virtio::UsedBytes(q.num), Perm::kWrite, nullptr},
      };
      bool missed = false;
      for (Part& p : parts) {
        if (p.addr + (p.len - 1) < p.addr) return RingError(q, p.name, p.addr, p.len, "wraps");
        const RingXlate t = TranslateRing(p.addr, p.len, p.perm, &q.windows[&p - parts]);
        char why[256];
        switch (t.status) {
          case RingXlate::kOk:
            p.ptr = t.ptr;
            break;
          case RingXlate::kMiss:
            missed = true;
            break;
          case RingXlate::kAccessFail:
            ++access_fails_;
            (void)dev_->backend_channel_.SendAccessFail(p.addr, p.len, p.perm);
            std::snprintf(why, sizeof(why), "lacks the IOTLB permission it needs (%s) at 0x%" PRIx64,
                          PermName(p.perm), t.at);
            return RingError(q, p.name, p.addr, p.len, why);
          case RingXlate::kUnmapped:
            std::snprintf(why, sizeof(why), "is outside every memory region at 0x%" PRIx64, t.at);
            return RingError(q, p.name, p.addr, p.len, why);
          case RingXlate::kNotContiguous:
            std::snprintf(why, sizeof(why),
                          "spans host pages that cannot be shown as one block at 0x%" PRIx64
                          ": %s", t.at, t.why.c_str());
            return RingError(q, p.name, p.addr, p.len, why);
        }
      }
      if (missed) {
        Stall(q);
        ScheduleResend(q);
        return false;
      }
      // The ring is read and written with atomics: its host pointers must be aligned as the
      // spec aligns the guest addresses (a region mapped at an odd offset breaks that).
      static constexpr uintptr_t kAlign[3] = {16, 2, 4};
      for (const Part& p : parts)
        if (reinterpret_cast<uintptr_t>(p.ptr) % kAlign[&p - parts])
          return RingError(q, p.name, p.addr, p.len,
                           "has a host address that is not aligned (the memory region's "
                           "mmap_offset misaligns it)");
      // A ring attached now has never had this polling period's NO_NOTIFY written: the next
      // polling pass writes it (an idle pass before any ring existed recorded "off" for none).
      notifications_off_ = false;
      q.ring.Attach(reinterpret_cast<virtio::Desc*>(parts[0].ptr),
                    reinterpret_cast<virtio::Avail*>(parts[1].ptr),
                    reinterpret_cast<virtio::Used*>(parts[2].ptr), q.num);
      q.ring_ok = true;
      q.stalled = false;
      return true;
    }

    bool RingError(QueueState& q, const char* part, uint64_t addr, uint64_t len, const char* why) {
      ++errors_;
      LogQueueError(q, "%s ring at 0x%" PRIx64 " (%" PRIu64 " bytes) %s; queue stalled until the "
                    "IOTLB or the ring config changes", part, addr, len, why);
      Stall(q);
      return false;
    }

    void Stall(QueueState& q) {
      q.stalled = true;
      q.stalled_generation = reader_->generation();
      q.ring.Detach();
      q.ring_ok = false;
    }

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

    // Walks the next available chain of `q`. On a miss the queue stalls (MISS sent).
    ChainStatus WalkNext(QueueState& q, virtio::Chain* chain, ChainFault* fault) {
      if (q.stalled) {
        // The ring itself is translated; a stalled chain is retried once the IOTLB moved.
        // Meanwhile chains published since get their misses sent ahead too.
        if (q.stalled_generation == reader_->generation() && !ResendDue(q)) {
          if (q.ring.attached() && q.missed_ahead < kBurst && q.ring.AvailCount() > q.missed_ahead)
            MissAhead(q, q.missed_ahead);
          fresh_miss_ = false;
          return ChainStatus::kMiss;
        }
        q.stalled = false;
        ++retries_;
      }
      current_queue_ = static_cast<uint16_t>(q.index);
      auto translate = [this](uint64_t a, uint64_t l, Perm p) { return TranslateBuffer(a, l, p); };
      const ChainStatus s = q.ring.Walk(q.ring.NextHead(), dev_->config_.indirect, translate, chain,
                                        fault, &indirect_);
      if (s == ChainStatus::kMiss) {
        ++misses_;
        NoteMiss(dev_->backend_channel_.SendMiss(fault->addr, fault->perm, current_queue_,
                                                 reader_->applied_seq()));
        q.stalled = true;
        q.stalled_generation = reader_->generation();
        q.missed_ahead = 1;
        MissAhead(q, 1);
        ScheduleResend(q);
      }
      fresh_miss_ = s == ChainStatus::kMiss;
      return s;
    }

    // Pipelined misses: the chains published after the one that missed (up to a burst) are
    // walked too, and the first missing page of each gets its MISS now, so the front-end
    // answers them back to back instead of one round trip per chain. Nothing is consumed, and
    // only chains the driver published (below avail->idx) are read.
    void MissAhead(QueueState& q, uint16_t first) {
      const uint16_t avail = q.ring.AvailCount();
      const uint16_t end = static_cast<uint16_t>(std::min<uint32_t>(avail, kBurst));
      current_queue_ = static_cast<uint16_t>(q.index);
      auto translate = [this](uint64_t a, uint64_t l, Perm p) { return TranslateBuffer(a, l, p); };
      for (uint16_t k = first; k < end; ++k) {
        const ChainStatus s = q.ring.Walk(q.ring.HeadAt(k), dev_->config_.indirect, translate,
                                          &ahead_chain_, &ahead_fault_, &ahead_indirect_);
        if (s == ChainStatus::kMiss)
          NoteMiss(dev_->backend_channel_.SendMiss(ahead_fault_.addr, ahead_fault_.perm,
                                                   current_queue_, reader_->applied_seq()));
      }
      q.missed_ahead = std::max(q.missed_ahead, end);
    }

    // Completes the chain at the head of `q` with `len` and consumes it.
    void Complete(QueueState& q, uint16_t head, uint32_t len) {
      q.ring.PushUsed(head, len);
      q.ring.Consume();
      if (&q == &rx_) rx_pushed_ = true; else tx_pushed_ = true;
    }

    // Handles a chain that can never succeed: ACCESS_FAIL or malformed. Completed with len 0.
    // `head` is the head the chain was walked from (never read again from guest memory).
    void Reject(QueueState& q, uint16_t head, ChainStatus s, const ChainFault& fault) {
      ++errors_;
      if (s == ChainStatus::kAccessFail) {
        ++access_fails_;
        (void)dev_->backend_channel_.SendAccessFail(fault.addr, fault.len, fault.perm);
      }
      LogQueueError(q, "chain at head %u refused (%s): %s; completed with length 0", head,
                    s == ChainStatus::kAccessFail ? "ACCESS_FAIL" : "malformed", fault.why.c_str());
      Complete(q, head, 0);
    }

    bool ServicePair() {
      burst_epoch_ = dev_->iotlb_epoch_.load(std::memory_order_seq_cst);
      rx_pushed_ = tx_pushed_ = false;
      bool progress = false;
      // Each burst takes at most kBurst chains per queue, so a guest that moves avail->idx in
      // the middle of one gains nothing; the index is checked once per burst.
      const bool tx_ready = tx_.Active() && EnsureRing(tx_) && AvailInRange(tx_);
      if (dev_->config_.mode == DeviceMode::kSink) {
        if (tx_ready) progress = SinkBurst();
      } else {
        const bool rx_ready = rx_.Active() && EnsureRing(rx_) && AvailInRange(rx_);
        if (tx_ready && rx_ready) progress = LoopbackBurst();
      }
      if (memory::ThreadGuestMemoryFaults() != faults_seen_) [[unlikely]] {
        GuestMemoryFaulted();
        return progress;
      }
      Publish(rx_, rx_pushed_);
      Publish(tx_, tx_pushed_);
      return progress;
    }

    // A guest-memory access of this thread faulted (fault_guard.hpp: the page now reads as
    // zeros). Nothing of this burst is published; the pair's queues are broken.
    void GuestMemoryFaulted() {
      const uint64_t faults = memory::ThreadGuestMemoryFaults();
      dev_->counters_->memory_faults.fetch_add(faults - faults_seen_, std::memory_order_relaxed);
      faults_seen_ = faults;
      // What the faulting burst saw were zeros, so it may already have broken a queue for
      // what it read; the fault is the cause, and it is what is reported.
      for (QueueState* q : {&rx_, &tx_}) {
        if (!q->started) continue;
        q->broken = false;
        Break(*q, "guest memory faulted (SIGBUS: the front-end's memory file shrank, or cannot "
                  "be backed); nothing of this burst was published");
      }
    }

    // More chains available than the ring holds means the guest moved avail->idx by more than
    // it can (QEMU: "Guest moved index"): the queue is broken, nothing is consumed.
    bool AvailInRange(QueueState& q) {
      const uint16_t n = q.ring.AvailCount();
      if (n <= q.num) [[likely]] return true;
      Break(q, "the guest moved the available index %u entries past the last one used, on a "
               "ring of %u",
            n, q.num);
      return false;
    }

    template <typename... Args>
    void Break(QueueState& q, const char* fmt, Args... args) {
      char why[320];
      std::snprintf(why, sizeof(why), fmt, args...);
      q.broken = true;
      q.ring_ok = false;
      ++errors_;
      dev_->counters_->broken_queues.fetch_add(1, std::memory_order_relaxed);
      VL_ERROR("queue %u: %s; the queue is broken until the front-end sets it up again (err "
               "eventfd signalled)", q.index, why);
      Signal(q.err.get());
    }

    // MISSes that could not be sent (backend channel full or missing) are asked again after a
    // back-off: 1 ms, doubling up to 50 ms (the idle wait), as long as sends keep failing.
    void NoteMiss(BackendChannel::MissResult r) {
      if (r == BackendChannel::MissResult::kNotSent) miss_unsent_ = true;
    }
    void ScheduleResend(QueueState& q) {
      if (!miss_unsent_) {
        q.resend_at = 0;
        q.resend_backoff_us = 0;
        return;
      }
      miss_unsent_ = false;
      q.resend_backoff_us = q.resend_backoff_us ? std::min<uint32_t>(2 * q.resend_backoff_us, 50'000)
                                                : 1000;
      q.resend_at = counters::ReadTsc() + q.resend_backoff_us * ticks_per_us_;
    }
    bool ResendDue(QueueState& q) {
      if (!q.resend_at || counters::ReadTsc() < q.resend_at) return false;
      q.resend_at = 0;
      return true;
    }

    void Publish(QueueState& q, bool pushed) {
      if (!pushed || q.broken) return;
      q.ring.PublishUsed();
      if (q.call && q.ring.NeedInterrupt(dev_->config_.event_idx)) {
        Signal(q.call.get());
        ++(&q == &rx_ ? rx_interrupts_ : tx_interrupts_);
      }
    }

    static constexpr uint64_t kHdr = sizeof(virtio::NetHdr);

    bool SinkBurst() {
      bool progress = false;
      for (uint32_t i = 0; i < kBurst && tx_.ring.AvailCount(); ++i) {
        const ChainStatus s = WalkNext(tx_, &tx_chain_, &fault_);
        if (s == ChainStatus::kMiss) break;
        progress = true;
        if (s != ChainStatus::kOk) {
          Reject(tx_, tx_chain_.head, s, fault_);
          continue;
        }
        if (!TxFrameOk()) continue;
        uint64_t sum = 0, skip = kHdr;
        for (const virtio::Piece& p : tx_chain_.readable) {
          const uint64_t from = std::min<uint64_t>(skip, p.len);
          skip -= from;
          for (uint64_t b = from; b < p.len; ++b) sum += p.ptr[b];
        }
        checksum_ += sum;
        VHOSTLAB_SEEDED_WORK(VHOSTLAB_SEEDED_PACKET_WORK);
        ++tx_packets_;
        tx_bytes_ += tx_chain_.readable_len - kHdr;
        Complete(tx_, tx_chain_.head, 0);
      }
      return progress;
    }

    // A TX frame is a header plus at most kMaxFrame bytes (virtio-net without GSO); anything
    // else is refused before a byte is copied.
    static constexpr uint64_t kMaxFrame = 64 * 1024;
    bool TxFrameOk() {
      if (tx_chain_.readable_len >= kHdr && tx_chain_.readable_len - kHdr <= kMaxFrame)
        [[likely]] return true;
      fault_.why = "TX chain of " + std::to_string(tx_chain_.readable_len) +
                   " device-readable bytes is not a 12-byte virtio-net header plus a frame of "
                   "at most " + std::to_string(kMaxFrame) + " bytes";
      Reject(tx_, tx_chain_.head, ChainStatus::kMalformed, fault_);
      return false;
    }

    bool LoopbackBurst() {
      bool progress = false;
      for (uint32_t i = 0; i < kBurst && tx_.ring.AvailCount(); ++i) {
        const ChainStatus s = WalkNext(tx_, &tx_chain_, &fault_);
        if (s == ChainStatus::kMiss) {
          // A new miss: the RX buffers these packets will need get their misses now too.
          if (fresh_miss_ && rx_.ring.attached() && !rx_.stalled) MissAhead(rx_, 0);
          break;
        }
        if (s != ChainStatus::kOk) {
          progress = true;
          Reject(tx_, tx_chain_.head, s, fault_);
          continue;
        }
        if (!TxFrameOk()) {
          progress = true;
          continue;
        }
        const uint64_t frame = tx_chain_.readable_len - kHdr;
        // Find an RX chain; malformed / refused ones are completed and skipped.
        // At most a burst of refused RX chains per TX packet, and never more than the ring.
        ChainStatus rs = ChainStatus::kMalformed;
        for (uint32_t tries = 0; tries < kBurst && rx_.ring.AvailCount(); ++tries) {
          rs = WalkNext(rx_, &rx_chain_, &fault_);
          if (rs != ChainStatus::kMalformed && rs != ChainStatus::kAccessFail) break;
          progress = true;
          Reject(rx_, rx_chain_.head, rs, fault_);
          rs = ChainStatus::kMalformed;
        }
        if (rs != ChainStatus::kOk) break;  // no RX buffer yet, or it missed: TX stays queued
        progress = true;
        if (rx_chain_.writable_len < kHdr + frame) [[unlikely]] {
          if (!dev_->config_.mrg_rxbuf) {
            ++drops_;
            ++errors_;
            LogQueueError(rx_, "RX chain at head %u holds %" PRIu64 " bytes, packet needs %"
                          PRIu64 " (MRG_RXBUF was not negotiated); packet dropped",
                          rx_chain_.head, rx_chain_.writable_len, kHdr + frame);
            Complete(tx_, tx_chain_.head, 0);
            continue;
          }
          const MergeStatus m = ReceiveMerged(frame);
          if (m == MergeStatus::kWait) break;  // more RX buffers (or their mappings) to come
          if (m == MergeStatus::kDropped) Complete(tx_, tx_chain_.head, 0);
          continue;
        }
        // Header: no offloads are negotiated, so the received header is all zero but for
        // num_buffers (one buffer). The frame is copied byte for byte.
        virtio::NetHdr hdr{};
        hdr.num_buffers = 1;
        if (rx_chain_.writable[0].len >= kHdr) [[likely]]
          std::memcpy(rx_chain_.writable[0].ptr, &hdr, kHdr);  // a fixed 12-byte store
        else
          virtio::CopyToPieces(reinterpret_cast<const uint8_t*>(&hdr), kHdr, rx_chain_.writable, 0);
        virtio::CopyPieces(tx_chain_.readable, kHdr, rx_chain_.writable, kHdr, frame);
        VHOSTLAB_SEEDED_WORK(VHOSTLAB_SEEDED_PACKET_WORK);
        ++tx_packets_;
        tx_bytes_ += frame;
        ++rx_packets_;
        rx_bytes_ += frame;
        Complete(rx_, rx_chain_.head, static_cast<uint32_t>(kHdr + frame));
        Complete(tx_, tx_chain_.head, 0);
      }
      return progress;
    }

    // VIRTIO_NET_F_MRG_RXBUF: a frame larger than the RX chain at the head (rx_chain_, already
    // walked) continues in the chains after it. The chains it needs are walked first and
    // nothing is consumed unless the whole frame fits: header (num_buffers = chains used) and
    // frame are then copied across them, and each chain is completed with the bytes it got.
    // kWait: not enough RX chains yet, or one of them missed (MISS sent): the TX packet waits.
    // kDropped: the frame cannot be received (a chain after the head is refused, or it would
    // need more than kMaxMergedBuffers chains); counted as a drop and an error.
    enum class MergeStatus : uint8_t { kDone, kWait, kDropped };
    static constexpr uint32_t kMaxMergedBuffers = 64;
    MergeStatus ReceiveMerged(uint64_t frame) {
      const uint64_t need = kHdr + frame;
      uint64_t have = rx_chain_.writable_len;
      uint32_t chains = 1;
      const uint16_t avail = rx_.ring.AvailCount();
      current_queue_ = static_cast<uint16_t>(rx_.index);
      auto translate = [this](uint64_t a, uint64_t l, Perm p) { return TranslateBuffer(a, l, p); };
      while (have < need) {
        if (chains == kMaxMergedBuffers || chains == rx_.num) {
          ++drops_;
          ++errors_;
          LogQueueError(rx_, "a frame of %" PRIu64 " bytes needs more than %u RX buffers; packet "
                        "dropped", frame, chains);
          return MergeStatus::kDropped;
        }
        if (chains >= avail) return MergeStatus::kWait;
        if (merged_.size() < chains) merged_.resize(chains);
        virtio::Chain& c = merged_[chains - 1];
        const ChainStatus s = rx_.ring.Walk(rx_.ring.HeadAt(static_cast<uint16_t>(chains)),
                                            dev_->config_.indirect, translate, &c, &ahead_fault_,
                                            &ahead_indirect_);
        if (s == ChainStatus::kMiss) {
          ++misses_;
          // Not stalled: the chains are walked again at the next burst, which asks again if
          // this MISS could not be sent.
          (void)dev_->backend_channel_.SendMiss(ahead_fault_.addr, ahead_fault_.perm,
                                                current_queue_, reader_->applied_seq());
          return MergeStatus::kWait;
        }
        if (s != ChainStatus::kOk) {
          ++drops_;
          ++errors_;
          LogQueueError(rx_, "RX chain %u after the head cannot take a merged frame (%s); packet "
                        "dropped", chains, ahead_fault_.why.c_str());
          return MergeStatus::kDropped;
        }
        have += c.writable_len;
        ++chains;
      }
      virtio::NetHdr hdr{};
      hdr.num_buffers = static_cast<uint16_t>(chains);
      virtio::CopyToPieces(reinterpret_cast<const uint8_t*>(&hdr), kHdr, rx_chain_.writable, 0);
      uint64_t src = kHdr, left = frame;
      const uint64_t first = std::min<uint64_t>(left, rx_chain_.writable_len - kHdr);
      virtio::CopyPieces(tx_chain_.readable, src, rx_chain_.writable, kHdr, first);
      src += first;
      left -= first;
      Complete(rx_, rx_chain_.head, static_cast<uint32_t>(kHdr + first));
      for (uint32_t k = 0; k + 1 < chains; ++k) {
        const virtio::Chain& c = merged_[k];
        const uint64_t n = std::min<uint64_t>(left, c.writable_len);
        virtio::CopyPieces(tx_chain_.readable, src, c.writable, 0, n);
        src += n;
        left -= n;
        Complete(rx_, c.head, static_cast<uint32_t>(n));
      }
      ++tx_packets_;
      tx_bytes_ += frame;
      ++rx_packets_;
      rx_bytes_ += frame;
      Complete(tx_, tx_chain_.head, 0);
      return MergeStatus::kDone;
    }

    void FlushStats() {
      auto add = [](std::atomic<uint64_t>& a, uint64_t& v) {
        if (v) a.fetch_add(v, std::memory_order_relaxed), v = 0;
      };
      add(stats_.tx_packets, tx_packets_);
      add(stats_.tx_bytes, tx_bytes_);
      add(stats_.rx_packets, rx_packets_);
      add(stats_.rx_bytes, rx_bytes_);
      flushed_translations_ = translations_;
      add(stats_.translations, translations_);
      add(stats_.iotlb_misses, misses_);
      add(stats_.retries, retries_);
      add(stats_.access_fails, access_fails_);
      add(stats_.drops, drops_);
      add(stats_.errors, errors_);
      add(stats_.checksum, checksum_);
      add(stats_.kicks, kicks_);
      add(stats_.rx_interrupts, rx_interrupts_);
      add(stats_.tx_interrupts, tx_interrupts_);
      // Designs with a micro-cache count their slow-path lookups; the rest of the
      // translations since the last flush were cache hits.
      if constexpr (requires(const D& d) { d.CacheMisses(); }) {
        const uint64_t cache_misses = reader_->table().CacheMisses();
        const uint64_t slow = cache_misses - cache_misses_seen_;
        cache_misses_seen_ = cache_misses;
        if (flushed_translations_ > slow)
          stats_.cache_hits.fetch_add(flushed_translations_ - slow, std::memory_order_relaxed);
      }
    }

    DeviceImpl* dev_;
    WorkerControl& control_;
    QueueCounters& stats_;
    QueueState& rx_;
    QueueState& tx_;
    std::unique_ptr<Reader> reader_;
    virtio::Chain tx_chain_, rx_chain_, ahead_chain_;
    std::vector<virtio::Chain> merged_;  // RX chains after the head that a merged frame uses
    ChainFault ahead_fault_;
    std::vector<virtio::Desc> ahead_indirect_;
    ChainFault fault_;
    std::vector<virtio::Desc> indirect_;
    bool rx_pushed_ = false, tx_pushed_ = false;
    uint64_t tx_packets_ = 0, tx_bytes_ = 0, rx_packets_ = 0, rx_bytes_ = 0, translations_ = 0;
    uint64_t misses_ = 0, retries_ = 0, access_fails_ = 0, drops_ = 0, errors_ = 0, checksum_ = 0;
    uint64_t flushed_translations_ = 0, cache_misses_seen_ = 0;
    uint64_t kicks_ = 0, rx_interrupts_ = 0, tx_interrupts_ = 0;
    uint64_t burst_epoch_ = 0;
    uint16_t current_queue_ = 0;  // the virtqueue being translated for (for --record)
    uint64_t faults_seen_ = 0;        // memory::ThreadGuestMemoryFaults() at the last burst
    uint64_t ticks_per_us_ = 1;
    bool miss_unsent_ = false;        // a MISS of the current walk could not be sent
    bool notifications_off_ = false;  // VRING_USED_F_NO_NOTIFY set while polling
    bool fresh_miss_ = false;         // the last WalkNext walked and missed (not a stalled retry)
    bool rearmed_ = false;            // notifications turned on since the last work: may sleep
    std::vector<uint8_t*> ring_pages_;  // TranslateRing scratch
  };

  iotlb::Replicated<D> iotlb_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Worker>> caller_driven_;  // before iotlb_ goes: readers first
};

}  // namespace

Result<std::unique_ptr<Device>> MakeDevice(const BackendOptions& options, Counters* counters,
                                           trace::Writer* recorder, WorkerThreads threads) {
  const std::string_view design = options.iotlb;
  std::unique_ptr<Device> device;
  const bool found = iotlb::VisitDesign(design, [&]<iotlb::Design D>() {
    device = std::make_unique<DeviceImpl<D>>(options, counters, recorder, threads);
  });
  if (!found) {
    std::string names;
    for (const auto& n : iotlb::DesignNames()) names += (names.empty() ? "" : ", ") + n;
    return Error{"unknown IOTLB design '" + std::string(design) + "' (available: " + names + ")"};
  }
  return device;
}

}  // namespace vhostlab::backend
