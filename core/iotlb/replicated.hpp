// Replicated<D>: the invalidation guarantee for any IOTLB design D.
//
// One control thread writes (UPDATE / INVALIDATE from the socket); one worker per queue reads
// (Translate on the datapath). Instead of making every design a concurrent data structure, each
// reader owns a private replica of D, so lookups take no lock and write no shared cache line,
// and any single-threaded design (including per-queue micro-caches) plugs in unchanged.
//
// Protocol:
//  - The writer applies each operation to a master copy (a Reference map, used to seed readers
//    that register later) and appends it to every reader's log under `mu_`, then raises that
//    reader's `pending_` flag.
//  - A reader calls Quiesce() between bursts: it first reports a quiescent state to liburcu-qsbr
//    (rcu_quiescent_state), then, if its flag is up, swaps out its log and applies it to its
//    replica, bumping its generation.
//  - Invalidate() appends, then waits for a grace period (synchronize_rcu). A grace period ends
//    only after every online reader has passed a quiescent state that began after the append;
//    that reader applies the log right after the quiescent state and before its next lookup.
//    So once Invalidate() returns (and the backend replies to the front-end), no reader uses the
//    old translation. Readers blocked in Offline() are not waited for: Online() applies the
//    log before the reader translates again.
//  - Insert() does not wait: readers pick UPDATEs up at their next Quiesce(); a queue that missed
//    retries when its generation() moves.
// Reclamation is trivial here (each replica frees its own nodes on its own thread); liburcu
// supplies the grace period and nothing is hand-rolled.
//
// Mutation testing: built with VHOSTLAB_MUTANT_NO_GRACE_PERIOD (test binaries *_mutant_test
// only, core/iotlb/CMakeLists.txt), Invalidate() returns without waiting for the grace period.
// The invalidation tests must then report violations: proof that they can see a broken
// guarantee.
//
// Threading: RegisterReader(), every Reader method and the Reader's destructor run on the
// reader's own thread (liburcu registration is per thread). Writer methods run on one thread at a
// time (the control thread); they may be called while readers run.
#pragma once

#include <urcu-qsbr.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/iotlb/contract.hpp"
#include "core/iotlb/reference/reference.hpp"

namespace vhostlab::iotlb {

template <Design D>
class Replicated {
  struct Op {
    bool invalidate;
    IovaRange range;
    uint64_t uaddr;
    Perm perm;
  };

 public:
  class Reader {
   public:
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    ~Reader() {
      {
        std::lock_guard<std::mutex> lock(parent_->mu_);
        auto& rs = parent_->readers_;
        rs.erase(std::remove(rs.begin(), rs.end(), this), rs.end());
      }
      if (offline_.load(std::memory_order_relaxed)) rcu_thread_online();
      rcu_unregister_thread();
    }

    // The replica to translate on. Valid until the next Quiesce()/Online().
    const D& table() const { return table_; }
    D& mutable_table() { return table_; }

    // Between bursts: report a quiescent state, then apply pending UPDATE/INVALIDATEs.
    void Quiesce() {
      rcu_quiescent_state();
      if (pending_.load(std::memory_order_acquire)) Drain();
    }
    // Around blocking waits (e.g. an idle queue sleeping on its kick fd).
    void Offline() {
      if (offline_.load(std::memory_order_relaxed)) return;
      rcu_thread_offline();
      offline_.store(true, std::memory_order_release);
    }
    void Online() {
      if (!offline_.load(std::memory_order_relaxed)) return;
      rcu_thread_online();
      offline_.store(false, std::memory_order_release);
      if (pending_.load(std::memory_order_acquire)) Drain();
    }
    // Changes whenever applied operations may have changed translations.
    uint64_t generation() const { return generation_; }
    // Whether operations published to this replica wait for its next Quiesce()/Online(): a
    // lookup that misses now may be answered by one of them (an UPDATE the writer already
    // acknowledged), so the caller can retry after applying them instead of asking again.
    bool HasPendingOps() const { return pending_.load(std::memory_order_acquire); }
    // The sequence number of the last writer operation this replica has applied (writer
    // operations are numbered 1, 2, ... in publish order; see Replicated::last_seq()).
    uint64_t applied_seq() const { return applied_seq_.load(std::memory_order_relaxed); }
    // Operations applied to this replica so far.
    uint64_t applied() const { return applied_; }

   private:
    friend class Replicated;
    explicit Reader(Replicated* parent) : parent_(parent) {}

    void Drain() {
      std::vector<Op> ops;
      {
        std::lock_guard<std::mutex> lock(parent_->mu_);
        ops.swap(log_);
        pending_.store(false, std::memory_order_relaxed);
      }
      for (const Op& op : ops) {
        if (op.invalidate) {
          table_.Invalidate(op.range);
        } else {
          (void)table_.Insert(op.range, op.uaddr, op.perm);
        }
      }
      applied_ += ops.size();
      applied_seq_.store(applied_seq_.load(std::memory_order_relaxed) + ops.size(),
                         std::memory_order_relaxed);
      ++generation_;
    }

    Replicated* parent_;
    D table_;
    std::vector<Op> log_;  // guarded by parent_->mu_
    alignas(64) std::atomic<bool> pending_{false};
    alignas(64) uint64_t generation_ = 0;
    uint64_t applied_ = 0;
    std::atomic<uint64_t> applied_seq_{0};  // written by the reader, read by MinAppliedSeq()
    // Written by the reader; read by MinAppliedSeq(): an offline reader applies the whole log
    // when it comes back online, before it translates again.
    std::atomic<bool> offline_{false};
  };

  Replicated() = default;
  Replicated(const Replicated&) = delete;
  Replicated& operator=(const Replicated&) = delete;
  ~Replicated() {
    // Every Reader must be gone first: they point back here.
    std::lock_guard<std::mutex> lock(mu_);
    if (!readers_.empty()) std::terminate();
  }

  // Registers the calling thread as a reader whose replica starts with every current entry.
  std::unique_ptr<Reader> RegisterReader() {
    rcu_register_thread();
    std::unique_ptr<Reader> r(new Reader(this));
    std::lock_guard<std::mutex> lock(mu_);
    master_.ForEach([&](const Entry& e) { (void)r->table_.Insert(e.range, e.uaddr, e.perm); });
    r->applied_seq_.store(published_, std::memory_order_relaxed);  // the snapshot holds them
    readers_.push_back(r.get());
    return r;
  }

  // An UPDATE: replaces whatever the range overlaps. Readers see it at their next Quiesce().
  InsertStatus Insert(IovaRange range, uint64_t uaddr, Perm perm) {
    std::lock_guard<std::mutex> lock(mu_);
    InsertStatus s = master_.Insert(range, uaddr, perm);
    if (s == InsertStatus::kInvalidRange) return s;
    Publish(Op{false, range, uaddr, perm});
    return s;
  }

  // An INVALIDATE: returns only after no reader can use a translation inside `range`.
  std::size_t Invalidate(IovaRange range) {
    std::size_t removed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      removed = master_.Invalidate(range);
      Publish(Op{true, range, 0, Perm::kNone});
    }
#ifndef VHOSTLAB_MUTANT_NO_GRACE_PERIOD
    synchronize_rcu();
#endif
    return removed;
  }

  // Waits until every online reader has passed a quiescent state (and so applied every
  // operation published before the call). Used after a batch of Inserts when the caller wants
  // them visible, and by tests.
  void Synchronize() { synchronize_rcu(); }

  std::size_t Size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return master_.Size();
  }
  // The sequence number of the last operation published (Insert/Invalidate that changed
  // something); 0 before the first.
  uint64_t last_seq() const {
    std::lock_guard<std::mutex> lock(mu_);
    return published_;
  }
  // The smallest applied_seq() over the online readers (last_seq() when there are none): every
  // operation up to it is visible to every reader, or will be before an offline one translates
  // again (Online() applies its log first). An idle queue does not hold the others back.
  uint64_t MinAppliedSeq() const {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t m = published_;
    for (const Reader* r : readers_)
      if (!r->offline_.load(std::memory_order_acquire)) m = std::min(m, r->applied_seq());
    return m;
  }
  std::size_t readers() const {
    std::lock_guard<std::mutex> lock(mu_);
    return readers_.size();
  }

 private:
  void Publish(const Op& op) {
    ++published_;
    for (Reader* r : readers_) {
      r->log_.push_back(op);
      r->pending_.store(true, std::memory_order_release);
    }
  }

  mutable std::mutex mu_;
  Reference master_;               // guarded by mu_
  uint64_t published_ = 0;         // operations published; guarded by mu_
  std::vector<Reader*> readers_;   // guarded by mu_
};

}  // namespace vhostlab::iotlb
