// Session: one front-end connection, served by the control thread through a dispatch table.
// See session.cpp for the protocol invariants.
#pragma once

#include <cstdint>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "core/backend/backend.hpp"
#include "core/backend/device.hpp"
#include "core/protocol/channel.hpp"

namespace vhostlab::backend {

// Features this backend offers (exact values, so front-ends and tests can check them).
// EVENT_IDX and MRG_RXBUF are offered unless turned off (BackendOptions).
uint64_t OfferedFeatures(uint32_t queue_pairs, bool event_idx = true, bool mrg_rxbuf = true);
uint64_t OfferedProtocolFeatures();

class Session {
 public:
  // `counters` outlives the session (it is the Backend's).
  // `recorder` (may be null) outlives the session too.
  static Result<std::unique_ptr<Session>> Create(protocol::Channel channel,
                                                 const BackendOptions& options,
                                                 Counters* counters,
                                                 trace::Writer* recorder = nullptr);
  ~Session();

  // Serves messages until the front-end disconnects, a connection-level error happens, or
  // `stop_fd` (an eventfd, may be -1) becomes readable. Returns why it stopped.
  std::string Serve(int stop_fd);

  // Safe from any thread, also while RESET_OWNER rebuilds the device (empty then).
  std::vector<int> WorkerTids() const;

  struct Reply;
  struct Handler;

 private:
  Session(protocol::Channel channel, const BackendOptions& options, Counters* counters,
          trace::Writer* recorder, std::unique_ptr<Device> device);
  void RecordMemoryTable();
  // Handles one message, replying as the spec (and the handler table) says.
  Status Dispatch(protocol::Message& m);
  Status ResetState();  // a fresh device: RESET_OWNER, and the state a new connection starts in
  Status CheckQueue(uint32_t index, const char* what) const;
  void LogRefusal(const std::string& name, const std::string& why);

  // Handlers (one per request; each small). Defined in session.cpp.
  Result<Reply> GetFeatures(protocol::Message& m);
  Result<Reply> SetFeatures(protocol::Message& m);
  Result<Reply> SetOwner(protocol::Message& m);
  Result<Reply> ResetOwner(protocol::Message& m);
  Result<Reply> GetProtocolFeatures(protocol::Message& m);
  Result<Reply> SetProtocolFeatures(protocol::Message& m);
  Result<Reply> SetMemTable(protocol::Message& m);
  Result<Reply> SetVringNum(protocol::Message& m);
  Result<Reply> SetVringAddr(protocol::Message& m);
  Result<Reply> SetVringBase(protocol::Message& m);
  Result<Reply> GetVringBase(protocol::Message& m);
  Result<Reply> SetVringKick(protocol::Message& m);
  Result<Reply> SetVringCall(protocol::Message& m);
  Result<Reply> SetVringErr(protocol::Message& m);
  Result<Reply> GetQueueNum(protocol::Message& m);
  Result<Reply> SetVringEnable(protocol::Message& m);
  Result<Reply> SetBackendReqFd(protocol::Message& m);
  Result<Reply> IotlbMsg(protocol::Message& m);
  Result<Reply> GetMaxMemSlots(protocol::Message& m);
  Result<Reply> AddMemReg(protocol::Message& m);
  Result<Reply> RemMemReg(protocol::Message& m);
  Result<Reply> SetStatus(protocol::Message& m);
  Result<Reply> GetStatus(protocol::Message& m);

  // SET_VRING_KICK/CALL/ERR share the u64 + optional fd format.
  struct VringFd {
    uint32_t index;
    UniqueFd fd;  // invalid when the no-fd bit is set
  };
  Result<VringFd> ParseVringFd(protocol::Message& m);

  static const Handler* FindHandler(uint32_t request);
  friend struct HandlerTable;  // session.cpp: the constexpr table of handlers

  protocol::Channel channel_;
  BackendOptions options_;
  Counters* counters_;
  trace::Writer* recorder_;
  // Written only by the control thread, under device_mu_ (WorkerTids reads it from others).
  mutable std::mutex device_mu_;
  std::unique_ptr<Device> device_;
  // Refusals logged in full: the first kLoggedRefusals, then one per second with a count of
  // those left out (a front-end cannot flood the log).
  uint64_t refusals_ = 0, refusals_unlogged_ = 0;
  std::chrono::steady_clock::time_point last_refusal_log_{};
  bool warned_iotlb_full_ = false;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_features_ = 0;
  bool features_set_ = false;
  bool protocol_features_set_ = false;  // SET_PROTOCOL_FEATURES received
  bool owner_ = false;
  uint8_t status_ = 0;
};

}  // namespace vhostlab::backend
