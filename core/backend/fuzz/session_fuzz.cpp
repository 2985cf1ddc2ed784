// libFuzzer target: the message parser and the session state machine (core/protocol +
// core/backend/session.cpp) fed a random message stream, fds included.
//
// The input is a sequence of records: [request u8][flags u8][size u8][fd u8][size bytes of
// payload]. Each becomes one vhost-user message on a real socketpair: request % 48 (every id
// and some unknown ones), a header with version 1 and need_reply from flags bit 0 (bit 1 sets a
// bogus flag bit), the payload, and, by `fd % 6`, no fd, a memfd of 0, 4 KiB or 1 MiB, an
// eventfd, or a pipe. The whole stream is written, the write side shut down, and the session
// serves it to the end on this thread (its queue workers are real threads, as in the backend).
// Payloads shorter than a message's struct are zero-extended with probability 1/2 (flags bit 2)
// so that well-formed messages, not only refused ones, reach the state machine.
// The session must answer or refuse every message and stop at EOF; ASan/UBSan catch the rest.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/backend/session.hpp"
#include "core/base/log.hpp"

namespace vhostlab::backend {
namespace {

int MakeFd(uint8_t kind, std::vector<int>* keep) {
  switch (kind % 6) {
    case 1:
    case 2:
    case 3: {
      const int fd = ::memfd_create("fuzz", MFD_CLOEXEC);
      const off_t sizes[] = {0, 4096, 1 << 20};
      if (fd >= 0 && ::ftruncate(fd, sizes[kind % 6 - 1]) != 0) {
        ::close(fd);
        return -1;
      }
      return fd;
    }
    case 4:
      return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    case 5: {
      int p[2];
      if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
      keep->push_back(p[1]);
      return p[0];
    }
    default:
      return -1;
  }
}

}  // namespace
}  // namespace vhostlab::backend

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::signal(SIGPIPE, SIG_IGN);
  vhostlab::LogThreshold() = vhostlab::LogLevel::kError;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace vhostlab;
  using namespace vhostlab::backend;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  protocol::Channel frontend{UniqueFd(sv[0])};
  // The stream is written before the session reads it: a big send buffer keeps that from
  // blocking (inputs are capped by -max_len).
  int buf = 4 << 20;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  std::vector<int> keep;
  std::size_t at = 0;
  uint8_t payload[protocol::kMaxPayload];
  while (at + 4 <= size) {
    const uint8_t request = data[at], flags = data[at + 1], len = data[at + 2], fd_kind = data[at + 3];
    at += 4;
    const std::size_t n = std::min<std::size_t>(len, size - at);
    std::memset(payload, 0, sizeof payload);
    std::memcpy(payload, data + at, n);
    at += n;
    // Zero-extended to the common struct sizes so well-formed messages happen too.
    uint32_t wire = static_cast<uint32_t>(n);
    if (flags & 4) wire = n <= 8 ? 8 : n <= 40 ? 40 : n <= 72 ? 72 : static_cast<uint32_t>(n);
    uint32_t hdr_flags = protocol::kVersion | ((flags & 1) ? protocol::kFlagNeedReply : 0) |
                         ((flags & 2) ? (1u << 5) : 0);
    std::vector<int> fds;
    if (const int fd = MakeFd(fd_kind, &keep); fd >= 0) fds.push_back(fd);
    (void)frontend.Send(request % 48, hdr_flags, payload, wire, fds);
    for (int fd : fds) ::close(fd);
  }
  ::shutdown(sv[0], SHUT_WR);

  BackendOptions options;
  options.iotlb = "reference";
  options.queue_pairs = 2;
  options.poll = PollMode::kInterrupt;
  Counters counters(options.queue_pairs);
  auto session = Session::Create(protocol::Channel(UniqueFd(sv[1])), options, &counters);
  if (session.ok()) (*session)->Serve(-1);
  for (int fd : keep) ::close(fd);
  return 0;
}
