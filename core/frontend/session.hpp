// Session: the front-end end of one vhost-user connection (what QEMU's hw/virtio/vhost-user.c
// does), plus the backend channel that the backend uses to send IOTLB MISSes.
//
// Threads and ordering:
//  - Every main-channel exchange (send, and read the reply when one is expected) happens under
//    `mu_`, so the control thread, the queue threads (lazy/strict mapping) and the miss-service
//    thread may all send: requests and replies can never interleave on the socket.
//  - When REPLY_ACK is negotiated, every "set" request goes out with need_reply and its u64
//    status is checked (non-zero = the backend refused it), as QEMU does for SET_MEM_TABLE,
//    SET_BACKEND_REQ_FD and IOTLB_MSG.
//  - The backend channel is a socketpair handed over with SET_BACKEND_REQ_FD. A thread serves
//    it: for a MISS it calls the miss handler (which sends the UPDATE on the main channel FIRST)
//    and only then answers the MISS, and only if the backend set need_reply (DPDK does not).
//  - The backend never waits for us on the main channel, so holding `mu_` while waiting for a
//    reply cannot deadlock with a MISS in flight: the miss thread just queues on `mu_`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/base/result.hpp"
#include "core/protocol/channel.hpp"
#include "core/protocol/messages.hpp"

namespace vhostlab::frontend {

struct Negotiated {
  uint64_t offered_features = 0;
  uint64_t features = 0;  // what SET_FEATURES acked
  uint64_t offered_protocol = 0;
  uint64_t protocol = 0;
  uint32_t queue_num = 1;  // GET_QUEUE_NUM, when MQ is offered
  bool iommu() const { return features & protocol::Bit(protocol::feature::kIommuPlatform); }
  bool reply_ack() const { return protocol & protocol::Bit(protocol::protocol_feature::kReplyAck); }
  bool event_idx() const { return features & protocol::Bit(protocol::feature::kRingEventIdx); }
  bool mrg_rxbuf() const { return features & protocol::Bit(protocol::feature::kNetFMrgRxbuf); }
};

class Session {
 public:
  // Returns true when the MISS was resolved (an UPDATE was sent and acked).
  using MissHandler = std::function<bool(const protocol::IotlbMsg&)>;

  ~Session();
  static Result<std::unique_ptr<Session>> Connect(const std::string& socket_path, int timeout_ms);

  // SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_BACKEND_REQ_FD (when
  // BACKEND_REQ is offered), SET_FEATURES. With `iommu`, the backend must offer
  // IOMMU_PLATFORM, REPLY_ACK and BACKEND_REQ (QEMU refuses otherwise, and so do we).
  // `optional`: feature bits (EVENT_IDX, MRG_RXBUF) acked when the backend offers them, as a
  // guest driver acks what it supports; negotiated().features says which were.
  Status Negotiate(bool iommu, uint32_t queue_pairs, uint64_t optional = 0);
  const Negotiated& negotiated() const { return negotiated_; }

  // Starts the backend-channel thread (after Negotiate, before any ring is enabled).
  void StartBackendChannel(MissHandler handler);

  Status SetMemTable(const protocol::MemoryTable& table, std::span<const int> fds);
  Status SetVringNum(uint32_t index, uint32_t num);
  Status SetVringBase(uint32_t index, uint32_t base);
  Status SetVringAddr(const protocol::VringAddr& addr);
  Status SetVringFd(protocol::Request which, uint32_t index, int fd);  // KICK / CALL
  Status SetVringEnable(uint32_t index, bool enable);
  Result<uint32_t> GetVringBase(uint32_t index);

  // IOTLB UPDATE / INVALIDATE with need_reply; `ack_ns` gets the send->reply latency.
  Status IotlbUpdate(uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm, uint64_t* ack_ns);
  Status IotlbInvalidate(uint64_t iova, uint64_t size, uint64_t* ack_ns);

  // Backend-channel counters (read after StopBackendChannel or racy-but-monotonic).
  uint64_t misses_received() const { return misses_received_.load(); }
  uint64_t misses_unresolved() const { return misses_unresolved_.load(); }
  uint64_t backend_channel_errors() const { return backend_errors_.load(); }
  void StopBackendChannel();

 private:
  Session() = default;
  // Sends one request; when `want_ack` and REPLY_ACK is negotiated, sets need_reply and checks
  // the u64 status. Caller holds mu_.
  Status SendLocked(protocol::Request request, const void* payload, uint32_t size,
                    std::span<const int> fds, bool want_ack);
  // Sends a request whose reply carries a value (GET_*). Caller holds mu_.
  Result<protocol::Message> CallLocked(protocol::Request request, const void* payload,
                                       uint32_t size);
  Result<protocol::Message> ReadReplyLocked(protocol::Request request);
  Status Set(protocol::Request request, const void* payload, uint32_t size,
             std::span<const int> fds = {});
  Status Iotlb(const protocol::IotlbMsg& msg, uint64_t* ack_ns);
  void ServeBackendChannel();

  std::mutex mu_;
  protocol::Channel main_;
  protocol::Channel backend_;  // our end of the socketpair
  Negotiated negotiated_;
  MissHandler miss_handler_;
  std::thread backend_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> misses_received_{0}, misses_unresolved_{0}, backend_errors_{0};
};

}  // namespace vhostlab::frontend
