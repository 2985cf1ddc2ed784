// BackendChannel: the SET_BACKEND_REQ_FD socket, backend -> front-end (IOTLB MISS and
// ACCESS_FAIL), shared by every worker of a device; see the class comment for the MISS rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "core/backend/stats.hpp"
#include "core/base/result.hpp"
#include "core/base/unique_fd.hpp"
#include "core/iotlb/contract.hpp"
#include "core/protocol/channel.hpp"
#include "core/trace/trace.hpp"

namespace vhostlab::backend {

// "RO", "WO", "RW" or "none", for logs.
inline const char* PermName(iotlb::Perm p) {
  switch (p) {
    case iotlb::Perm::kRead: return "RO";
    case iotlb::Perm::kWrite: return "WO";
    case iotlb::Perm::kReadWrite: return "RW";
    default: return "none";
  }
}

// The backend channel: backend -> front-end messages (MISS, ACCESS_FAIL).
class BackendChannel {
 public:
  BackendChannel(Counters* counters, trace::Writer* recorder)
      : counters_(counters), recorder_(recorder) {}
  void Set(UniqueFd fd);
  bool connected() const;
  // Sends IOTLB MISS (iova, perm) unless a MISS for the same 4 KiB page is still in flight,
  // i.e. was sent and no UPDATE covering it has arrived since. Never waits for an answer (the
  // front-end answers with an UPDATE on the main socket). Returns true when a message went out.
  //
  // Why at most one MISS per page in flight: the front-end may process a MISS long after it was
  // sent (QEMU reads the backend channel from its main loop, which waits while a vCPU holds the
  // BQL). A second MISS for a page the first one already got answered can reach it after the
  // guest used the buffer and unmapped the page; QEMU then finds no mapping and injects a DMAR
  // fault into the guest. So a MISS is re-sent only after its answer came, never on any other
  // IOTLB change (an INVALIDATE does not cancel a MISS the front-end still holds).
  //
  // "Its answer came" means: the worker asking has applied the UPDATE that answered it. The
  // control thread inserts an UPDATE into the workers' logs at once but each worker applies its
  // log only between bursts; a worker that missed the page again in that window would ask a
  // second time for an answer it already has. `applied_seq` is the asking worker's
  // Replicated::Reader::applied_seq().
  //
  // Sends never wait: a front-end that does not read its backend channel must not block a
  // worker (which would hold up every INVALIDATE's grace period). A MISS that could not go out
  // (socket full, no channel, too many in flight) is not remembered, so the queue asks again
  // after a back-off (kNotSent).
  enum class MissResult : uint8_t { kSent, kInFlight, kNotSent };
  MissResult SendMiss(uint64_t iova, iotlb::Perm perm, uint16_t queue, uint64_t applied_seq);
  // Sends IOTLB ACCESS_FAIL (iova, size, perm), at most kAccessFailsPerSecond (the rest are
  // counted by the caller but not sent: a guest can make every chain fail).
  Status SendAccessFail(uint64_t iova, uint64_t size, iotlb::Perm perm);
  static constexpr uint32_t kAccessFailsPerSecond = 256;
  // Called by the control thread after every UPDATE (writer sequence number `seq`), before
  // workers are woken: the MISSes it covers are answered once a worker has applied `seq`.
  void NoteUpdate(iotlb::IovaRange range, uint64_t seq);
  // Answered entries every worker has applied are forgotten when the table grows;
  // `min_applied` returns the smallest applied_seq over the workers.
  void SetMinApplied(std::function<uint64_t()> min_applied) { min_applied_ = std::move(min_applied); }

  // A front-end that never answers cannot make this table grow without bound: at the cap, no
  // new MISS is sent (the queue waits, and it is logged).
  static constexpr std::size_t kMaxMissesInFlight = 4096;

 private:
  Status SendIotlb(uint64_t iova, uint64_t size, iotlb::Perm perm, uint8_t type);
  Counters* counters_;
  trace::Writer* recorder_;  // may be null
  mutable std::mutex mu_;
  protocol::Channel channel_;                         // guarded by mu_
  // The 4 KiB pages of the MISSes sent, sorted by page (binary search; an UPDATE marks the
  // pages it covers as one range). A vector and not a node-based map: a MISS allocates nothing
  // once it has grown (it is on the cold datapath), and the table is small (at most
  // kMaxMissesInFlight). Guarded by mu_.
  struct InFlight {
    uint64_t page;
    uint64_t answered;  // 0 while unanswered, else the seq of the last UPDATE that covered it
  };
  std::vector<InFlight> in_flight_;
  // The first entry of in_flight_ whose page is >= `page` (mu_ held).
  std::vector<InFlight>::iterator FirstInFlightFrom(uint64_t page);
  std::function<uint64_t()> min_applied_;
  bool warned_no_channel_ = false;                    // guarded by mu_
  bool warned_full_ = false;                          // guarded by mu_
  uint64_t access_fail_window_ns_ = 0;                // guarded by mu_: rate limit
  uint32_t access_fails_in_window_ = 0;               // guarded by mu_
};

}  // namespace vhostlab::backend
