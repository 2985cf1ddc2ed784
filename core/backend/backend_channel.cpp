// BackendChannel; see backend_channel.hpp.
#include "core/backend/backend_channel.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>

#include "core/base/log.hpp"

namespace vhostlab::backend {

using iotlb::Perm;

namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

void BackendChannel::Set(UniqueFd fd) {
  // A front-end that stops reading must not wedge a worker forever: bound each send.
  timeval tv{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::lock_guard<std::mutex> lock(mu_);
  channel_ = protocol::Channel(std::move(fd));
  in_flight_.clear();  // a new channel: nothing the old one carried will be answered
  warned_no_channel_ = false;
}

bool BackendChannel::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return channel_.valid();
}

Status BackendChannel::SendIotlb(uint64_t iova, uint64_t size, Perm perm, uint8_t type) {
  protocol::IotlbMsg m{};
  m.iova = iova;
  m.size = size;
  m.perm = static_cast<uint8_t>(perm);
  m.type = type;
  if (!channel_.valid()) {
    if (!warned_no_channel_) {
      VL_WARN("cannot send IOTLB %s for iova 0x%" PRIx64 ": no backend channel "
              "(SET_BACKEND_REQ_FD missing); the queue keeps retrying",
              type == 1 ? "MISS" : "ACCESS_FAIL", iova);
      warned_no_channel_ = true;
    }
    return Error{"no backend channel"};
  }
  // DPDK and QEMU agree: backend-initiated IOTLB messages carry no need_reply. Never wait for
  // room: the caller is a worker, online for RCU.
  return channel_.TrySend(static_cast<uint32_t>(protocol::BackendRequest::kIotlbMsg),
                          protocol::kVersion, &m, sizeof(m));
}

std::vector<BackendChannel::InFlight>::iterator BackendChannel::FirstInFlightFrom(uint64_t page) {
  return std::lower_bound(in_flight_.begin(), in_flight_.end(), page,
                          [](const InFlight& e, uint64_t p) { return e.page < p; });
}

BackendChannel::MissResult BackendChannel::SendMiss(uint64_t iova, Perm perm, uint16_t queue,
                                                   uint64_t applied_seq) {
  constexpr std::size_t kForgetAnsweredAt = 256;
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t page = iova >> 12;
  auto it = FirstInFlightFrom(page);
  if (it != in_flight_.end() && it->page == page) {
    // Unanswered, or answered by an UPDATE this worker has not applied yet: whatever
    // permission is asked now, that answer comes first (QEMU always grants RW); the queue
    // retries once it is applied.
    if (it->answered == 0 || applied_seq < it->answered) return MissResult::kInFlight;
    it = in_flight_.erase(it);  // answered and applied, and it still misses: ask again
  }
  if (in_flight_.size() >= kForgetAnsweredAt && min_applied_) {
    const uint64_t everyone = min_applied_();
    std::erase_if(in_flight_, [&](const InFlight& e) { return e.answered && e.answered <= everyone; });
    it = FirstInFlightFrom(page);
    if (in_flight_.size() < kMaxMissesInFlight) warned_full_ = false;
  }
  if (in_flight_.size() >= kMaxMissesInFlight) {
    if (!warned_full_) {
      VL_WARN("IOTLB MISS iova 0x%" PRIx64 ": %zu MISSes are unanswered; no new MISS is sent "
              "until the front-end answers some", iova, in_flight_.size());
      warned_full_ = true;
    }
    return MissResult::kNotSent;
  }
  Status s = SendIotlb(iova, 1, perm, static_cast<uint8_t>(protocol::IotlbType::kMiss));
  if (!s.ok()) {
    if (channel_.valid())
      VL_DEBUG("IOTLB MISS iova 0x%" PRIx64 ": %s; asked again later", iova, s.message().c_str());
    return MissResult::kNotSent;
  }
  in_flight_.insert(it, InFlight{page, 0});
  counters_->misses_sent.fetch_add(1, std::memory_order_relaxed);
  if (recorder_) recorder_->Add(trace::RecordType::kMiss, iova, 1, 0, perm, queue);
  VL_DEBUG("sent IOTLB MISS iova 0x%" PRIx64 " perm %s", iova, PermName(perm));
  return MissResult::kSent;
}

void BackendChannel::NoteUpdate(iotlb::IovaRange range, uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (in_flight_.empty()) return;
  const uint64_t first = range.first >> 12, last = range.last >> 12;
  auto it = FirstInFlightFrom(first);
  for (; it != in_flight_.end() && it->page <= last; ++it) it->answered = seq;
}

Status BackendChannel::SendAccessFail(uint64_t iova, uint64_t size, Perm perm) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t now = NowNs();
  if (now - access_fail_window_ns_ >= 1'000'000'000) {
    access_fail_window_ns_ = now;
    access_fails_in_window_ = 0;
  }
  if (++access_fails_in_window_ > kAccessFailsPerSecond) return Error{"rate-limited"};
  if (recorder_) recorder_->Add(trace::RecordType::kAccessFail, iova, size, 0, perm);
  return SendIotlb(iova, size, perm, static_cast<uint8_t>(protocol::IotlbType::kAccessFail));
}

}  // namespace vhostlab::backend
