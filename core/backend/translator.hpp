// The translator of one queue-pair worker: guest addresses to host pointers, for rings and for
// the buffers of the chains the worker walks, and what happens when that fails.
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
// Invariants:
//  - Nothing is translated across a quiescent state: ring pointers are cached per IOTLB
//    generation and re-translated whenever the reader's generation() moved (EnsureRing), and
//    buffer pointers live only inside one burst. That is what makes the INVALIDATE reply (sent
//    after Replicated::Invalidate's grace period) a real guarantee.
//  - Misses: a chain (or ring) that misses sends IOTLB MISS (iova, perm) and leaves the
//    descriptor where it is; the queue is "stalled" until its reader's generation moves, then the
//    SAME head is walked again (counted in `retries`). Nothing is dropped for a miss. The chains
//    published after it get their MISSes at once too (MissAhead), so the front-end answers them
//    back to back. MISSes that could not be sent are asked again after a back-off.
//  - A queue whose guest did what cannot be recovered from (the avail index moved past the
//    ring, guest memory faulted) is broken (Break): nothing more is processed until the control
//    thread reconfigures it, and its err eventfd is signalled.
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/backend/worker_env.hpp"
#include "core/counters/tsc.hpp"
#include "core/memory/page_window.hpp"
#include "core/virtio/device_queue.hpp"

namespace vhostlab::backend {

template <iotlb::Design D>
class QueueTranslator {
 public:
  using Reader = typename iotlb::Replicated<D>::Reader;

  explicit QueueTranslator(WorkerEnv<D> env) : env_(env) {}

  WorkerEnv<D>& env() { return env_; }
  // What the worker's bursts counted since the last Worker::FlushStats().
  Tally& tally() { return tally_; }

  // The calling thread's IOTLB reader (Worker::AttachThread); set before any other call.
  void set_reader(Reader* reader) { reader_ = reader; }
  void set_ticks_per_us(uint64_t t) { ticks_per_us_ = t; }

  // A buffer address (GPA, or IOVA with the IOMMU) for `perm`: its first contiguous piece.
  [[gnu::flatten]] virtio::Xlate Buffer(uint64_t addr, uint64_t len, iotlb::Perm perm) {
    using virtio::XlateStatus;
    const DeviceConfig& cfg = env_.config;
    memory::Span s;
    if (cfg.iommu) {
      ++tally_.translations;
      const iotlb::Translation t = reader_->table().Translate(addr, len, perm);
      if (env_.recorder) [[unlikely]]
        env_.recorder->Translation(current_queue_, addr, len, perm, t);
      if (t.outcome == iotlb::Outcome::kMiss) return {XlateStatus::kMiss, nullptr, 0};
      if (t.outcome == iotlb::Outcome::kAccessFail) return {XlateStatus::kAccessFail, nullptr, 0};
      if (!cfg.memory.LookupUaddr(t.uaddr, t.len, &s)) return {XlateStatus::kUnmapped, nullptr, 0};
      return {XlateStatus::kOk, s.ptr, s.len};
    }
    if (!cfg.memory.LookupGpa(addr, len, &s)) return {XlateStatus::kUnmapped, nullptr, 0};
    return {XlateStatus::kOk, s.ptr, s.len};
  }

  // (Re)translates the ring pointers of `q` if its config or the IOTLB generation changed.
  // Returns true when the ring is usable now. The MISSes of all three parts go out together.
  bool EnsureRing(QueueState& q) {
    using iotlb::Perm;
    const bool iommu = env_.config.iommu;
    const uint64_t gen = reader_->generation();
    if (!q.dirty && q.ring_ok && (!iommu || q.ring_generation == gen)) return true;
    if (q.stalled && q.stalled_generation == gen && !q.dirty && !ResendDue(q)) return false;
    if (q.stalled) ++tally_.retries;
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
          ++tally_.access_fails;
          (void)env_.channel.SendAccessFail(p.addr, p.len, p.perm);
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
    ring_attached_ = true;
    q.ring.Attach(reinterpret_cast<virtio::Desc*>(parts[0].ptr),
                  reinterpret_cast<virtio::Avail*>(parts[1].ptr),
                  reinterpret_cast<virtio::Used*>(parts[2].ptr), q.num);
    q.ring_ok = true;
    q.stalled = false;
    return true;
  }

  // Whether a ring was attached since the last call: it has never had the current polling
  // period's NO_NOTIFY written (Worker::SetNotifications).
  bool TakeRingAttached() {
    const bool attached = ring_attached_;
    ring_attached_ = false;
    return attached;
  }

  // Reads the avail index for this burst (DeviceRing::RefreshAvail). More chains available than
  // the ring holds means the guest moved avail->idx by more than it can (QEMU: "Guest moved
  // index"): the queue is broken, nothing is consumed.
  bool AvailInRange(QueueState& q) {
    const uint16_t n = q.ring.RefreshAvail();
    if (n <= q.num) [[likely]] return true;
    Break(q, "the guest moved the available index %u entries past the last one used, on a "
             "ring of %u",
          n, q.num);
    return false;
  }

  // Walks the next available chain of `q`. On a miss the queue stalls (MISS sent).
  virtio::ChainStatus WalkNext(QueueState& q, virtio::Chain* chain, virtio::ChainFault* fault) {
    using virtio::ChainStatus;
    if (q.stalled) {
      // The ring itself is translated; a stalled chain is retried once the IOTLB moved.
      // Meanwhile chains published since get their misses sent ahead too.
      if (q.stalled_generation == reader_->generation() && !ResendDue(q)) {
        if (q.ring.attached() && q.missed_ahead < kBurst && q.ring.Pending() > q.missed_ahead)
          MissAhead(q, q.missed_ahead);
        fresh_miss_ = false;
        return ChainStatus::kMiss;
      }
      q.stalled = false;
      ++tally_.retries;
    }
    current_queue_ = static_cast<uint16_t>(q.index);
    auto translate = [this](uint64_t a, uint64_t l, iotlb::Perm p) { return Buffer(a, l, p); };
    const ChainStatus s = q.ring.Walk(q.ring.NextHead(), env_.config.indirect, translate, chain,
                                      fault, &indirect_);
    if (s == ChainStatus::kMiss) {
      q.stalled = true;
      q.stalled_generation = reader_->generation();
      if (MissMayBeStale()) {
        // Walked again once the pending operations are applied (they move the generation).
        q.missed_ahead = 0;
        fresh_miss_ = false;
        return s;
      }
      ++tally_.misses;
      NoteMiss(env_.channel.SendMiss(fault->addr, fault->perm, current_queue_,
                                     reader_->applied_seq()));
      q.missed_ahead = 1;
      MissAhead(q, 1);
      ScheduleResend(q);
    }
    fresh_miss_ = s == ChainStatus::kMiss;
    return s;
  }
  // Whether the last WalkNext walked and missed (not a stalled retry).
  bool fresh_miss() const { return fresh_miss_; }

  // Pipelined misses: the chains published after the one that missed (up to a burst) are
  // walked too, and the first missing page of each gets its MISS now, so the front-end
  // answers them back to back instead of one round trip per chain. Nothing is consumed, and
  // only chains the driver published (below the burst's avail index) are read.
  void MissAhead(QueueState& q, uint16_t first) {
    if (MissMayBeStale()) return;
    const uint16_t avail = q.ring.Pending();
    const uint16_t end = static_cast<uint16_t>(std::min<uint32_t>(avail, kBurst));
    for (uint16_t k = first; k < end; ++k)
      if (WalkAhead(q, k, &ahead_chain_) == virtio::ChainStatus::kMiss)
        NoteMiss(SendAheadMiss());
    q.missed_ahead = std::max(q.missed_ahead, end);
  }

  // Walks the chain `k` places after q's next head (k < Pending()) into `chain`, without
  // consuming or stalling anything; a fault is in ahead_fault().
  virtio::ChainStatus WalkAhead(QueueState& q, uint16_t k, virtio::Chain* chain) {
    current_queue_ = static_cast<uint16_t>(q.index);
    auto translate = [this](uint64_t a, uint64_t l, iotlb::Perm p) { return Buffer(a, l, p); };
    return q.ring.Walk(q.ring.HeadAt(k), env_.config.indirect, translate, chain, &ahead_fault_,
                       &ahead_indirect_);
  }
  const virtio::ChainFault& ahead_fault() const { return ahead_fault_; }
  // The MISS for ahead_fault() (a WalkAhead that missed).
  // Callers check MissMayBeStale() first.
  BackendChannel::MissResult SendAheadMiss() {
    return env_.channel.SendMiss(ahead_fault_.addr, ahead_fault_.perm, current_queue_,
                                 reader_->applied_seq());
  }

  // A miss while this worker's replica still has operations to apply may be answered by one of
  // them: the front-end maps a buffer (UPDATE, acknowledged once published to every replica)
  // before it posts the chain, and this worker applies the UPDATE only at its next quiescent
  // state. It is not asked for: the queue stalls, the pending operations move the generation,
  // and the chain is walked again. (Asking would make the front-end answer a MISS for a page
  // it mapped long ago, or, in strict mode, had already unmapped again by the time it reads
  // it: an unresolved MISS.)
  bool MissMayBeStale() const { return reader_->HasPendingOps(); }

  template <typename... Args>
  void Break(QueueState& q, const char* fmt, Args... args) {
    char why[320];
    std::snprintf(why, sizeof(why), fmt, args...);
    q.broken = true;
    q.ring_ok = false;
    ++tally_.errors;
    env_.counters.broken_queues.fetch_add(1, std::memory_order_relaxed);
    VL_ERROR("queue %u: %s; the queue is broken until the front-end sets it up again (err "
             "eventfd signalled)", q.index, why);
    SignalEventFd(q.err.get());
  }

 private:
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
  RingXlate TranslateRing(uint64_t addr, uint64_t len, iotlb::Perm perm,
                          memory::PageWindow* window) {
    constexpr uint64_t kPage = memory::kWindowPage;
    const DeviceConfig& cfg = env_.config;
    const uint64_t first_page = addr & ~(kPage - 1);
    std::vector<uint8_t*>& pages = ring_pages_;
    pages.clear();
    uint8_t* start = nullptr;
    bool missed = false, contiguous = true;
    for (uint64_t done = 0; done < len;) {
      const uint64_t a = addr + done;
      uint64_t uaddr = a, n = len - done;
      if (cfg.iommu) {
        ++tally_.translations;
        const iotlb::Translation t = reader_->table().Translate(a, n, perm);
        if (env_.recorder) [[unlikely]]
          env_.recorder->Translation(current_queue_, a, n, perm, t);
        if (t.outcome == iotlb::Outcome::kAccessFail) return {RingXlate::kAccessFail, nullptr, a};
        if (t.outcome == iotlb::Outcome::kMiss) {
          if (!MissMayBeStale()) {
            ++tally_.misses;
            NoteMiss(env_.channel.SendMiss(a, perm, current_queue_, reader_->applied_seq()));
          }
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
    const bool writable = perm != iotlb::Perm::kRead;
    if (!window->Shows(pages, writable)) {
      auto w = memory::PageWindow::Build(pages, writable);
      if (!w) return {RingXlate::kNotContiguous, nullptr, addr, w.error().message};
      *window = std::move(*w);
      VL_DEBUG("queue %u: ring part at 0x%" PRIx64 " spans %zu scattered host pages: mapped "
               "through a window", current_queue_, addr, pages.size());
    }
    return {RingXlate::kOk, window->data() + (addr - first_page), 0};
  }

  bool RingError(QueueState& q, const char* part, uint64_t addr, uint64_t len, const char* why) {
    ++tally_.errors;
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

  WorkerEnv<D> env_;
  Tally tally_;
  Reader* reader_ = nullptr;
  uint64_t ticks_per_us_ = 1;
  uint16_t current_queue_ = 0;  // the virtqueue being translated for (for --record)
  bool miss_unsent_ = false;    // a MISS of the current walk could not be sent
  bool fresh_miss_ = false;     // the last WalkNext walked and missed (not a stalled retry)
  bool ring_attached_ = false;  // a ring was attached since TakeRingAttached()
  virtio::Chain ahead_chain_;
  virtio::ChainFault ahead_fault_;
  std::vector<virtio::Desc> ahead_indirect_;
  std::vector<virtio::Desc> indirect_;
  std::vector<uint8_t*> ring_pages_;  // TranslateRing scratch
};

}  // namespace vhostlab::backend
