// Channel: one end of a vhost-user Unix socket, sending and receiving whole messages with fds.
//
// A message is a 12-byte header, `size` payload bytes, and up to kMaxFds SCM_RIGHTS fds that
// arrive with the header's recvmsg (spec: "the file descriptors are passed ... as ancillary
// data"). Every byte received is untrusted:
//   - A connection-level failure (EOF, short read, I/O error, a header that cannot be resynced)
//     is a Result error: the caller closes the connection.
//   - A message that was read completely but is unusable (bad version bits, payload over
//     kMaxPayload, too many fds) comes back as a Message whose `problem` is set; its payload is
//     consumed and its fds closed, so the stream stays in sync and the caller can reply with an
//     error and keep serving.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/base/unique_fd.hpp"
#include "core/protocol/messages.hpp"

namespace vhostlab::protocol {

struct Message {
  Header header{};
  std::array<uint8_t, kMaxPayload> payload{};
  std::vector<UniqueFd> fds;
  Status problem;  // set when the message was read but must be refused as a whole

  uint32_t request() const { return header.request; }
  bool need_reply() const { return header.flags & kFlagNeedReply; }
  bool is_reply() const { return header.flags & kFlagReply; }

  // Copies the payload as T when its size is exactly sizeof(T) (or at least `min` bytes for
  // variable-size payloads); otherwise a clear error with the message name and sizes.
  template <typename T>
  Result<T> PayloadAs(std::size_t min = sizeof(T)) const {
    if (header.size < min || header.size > sizeof(T)) {
      return Error{std::string(RequestName(header.request)) + ": payload is " +
                   std::to_string(header.size) + " bytes, expected " +
                   (min == sizeof(T) ? std::to_string(sizeof(T))
                                     : std::to_string(min) + ".." + std::to_string(sizeof(T)))};
    }
    T out{};
    std::memcpy(&out, payload.data(), header.size);
    return out;
  }
};

class Channel {
 public:
  Channel() = default;
  explicit Channel(UniqueFd socket) : socket_(std::move(socket)) {}

  bool valid() const { return socket_.valid(); }
  // Bounds every blocking send, and every read of the rest of a message once its first byte
  // arrived, to `ms` (SO_SNDTIMEO / SO_RCVTIMEO): a peer that half-sends a message and goes
  // quiet, or stops reading replies, ends the connection with a "timed out" error instead of
  // holding this thread forever.
  Status SetIoTimeout(int ms);
  int fd() const { return socket_.get(); }
  void Close() { socket_.Reset(); }

  // Sends header + payload (+ fds) in one sendmsg; retries partial writes and EINTR.
  Status Send(uint32_t request, uint32_t flags, const void* payload, uint32_t size,
              std::span<const int> fds = {});
  // As Send, but never waits for room: when the socket buffer is full nothing is sent and the
  // error says "would block" (a small message goes whole or not at all on a Unix stream
  // socket; a partial send is finished within the I/O timeout).
  Status TrySend(uint32_t request, uint32_t flags, const void* payload, uint32_t size);
  template <typename T>
  Status SendPayload(uint32_t request, uint32_t flags, const T& payload,
                     std::span<const int> fds = {}) {
    return Send(request, flags, &payload, sizeof(T), fds);
  }
  // Replies to `request` with a u64 (REPLY_ACK status, GET_* answers).
  Status ReplyU64(uint32_t request, uint64_t value) {
    U64Payload p{value};
    return SendPayload(request, kVersion | kFlagReply, p);
  }

  // Blocks until one whole message arrives (or `timeout_ms` passes, when >= 0: a Result error
  // whose message starts with "timeout").
  Result<Message> Receive(int timeout_ms = -1);

 private:
  Status ReadExact(void* buf, std::size_t len);
  Status SendMsg(uint32_t request, uint32_t flags, const void* payload, uint32_t size,
                 std::span<const int> fds, bool dont_wait);
  UniqueFd socket_;
};

// Unix socket helpers. Paths longer than sun_path are an error, not a truncation.
Result<UniqueFd> ListenUnix(const std::string& path);  // unlinks a stale socket file first
Result<UniqueFd> AcceptUnix(int listen_fd, int timeout_ms = -1);
// Connects, retrying until `timeout_ms` passes (the peer may still be creating the socket).
Result<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms = 0);

}  // namespace vhostlab::protocol
