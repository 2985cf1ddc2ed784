#include "core/protocol/channel.hpp"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace vhostlab::protocol {
namespace {

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

Result<sockaddr_un> MakeAddr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return Error{"socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof(addr.sun_path) - 1) + " bytes"};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

Status Channel::SetIoTimeout(int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  if (::setsockopt(socket_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
      ::setsockopt(socket_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
    return Error{Errno("setsockopt(SO_SNDTIMEO/SO_RCVTIMEO)")};
  return {};
}

Status Channel::Send(uint32_t request, uint32_t flags, const void* payload, uint32_t size,
                     std::span<const int> fds) {
  return SendMsg(request, flags, payload, size, fds, false);
}

Status Channel::TrySend(uint32_t request, uint32_t flags, const void* payload, uint32_t size) {
  return SendMsg(request, flags, payload, size, {}, true);
}

Status Channel::SendMsg(uint32_t request, uint32_t flags, const void* payload, uint32_t size,
                        std::span<const int> fds, bool dont_wait) {
  if (!socket_) return Error{"send on a closed channel"};
  if (fds.size() > kMaxFds) return Error{"too many fds to send"};
  Header h{request, flags, size};
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<void*>(payload), size}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = size ? 2 : 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  std::size_t total = sizeof(h) + size, sent = 0;
  while (sent < total) {
    // Only the first sendmsg may decline to wait: once part of a message is out, the rest must
    // follow (bounded by SO_SNDTIMEO) or the stream is out of sync.
    const int wait_flag = dont_wait && sent == 0 ? MSG_DONTWAIT : 0;
    ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | wait_flag);
    if (n < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_flag) return Error{"would block"};
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (sent) Close();  // half a message went out: the stream cannot be resynchronised
        return Error{"sendmsg: timed out (the peer does not read)"};
      }
      return Error{Errno("sendmsg")};
    }
    sent += static_cast<std::size_t>(n);
    // Partial write: drop the ancillary data (already sent) and advance the iovecs.
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    std::size_t skip = static_cast<std::size_t>(n);
    while (msg.msg_iovlen && skip >= msg.msg_iov[0].iov_len) {
      skip -= msg.msg_iov[0].iov_len;
      ++msg.msg_iov;
      --msg.msg_iovlen;
    }
    if (msg.msg_iovlen) {
      msg.msg_iov[0].iov_base = static_cast<char*>(msg.msg_iov[0].iov_base) + skip;
      msg.msg_iov[0].iov_len -= skip;
    }
  }
  return {};
}

Status Channel::ReadExact(void* buf, std::size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len) {
    ssize_t n = ::recv(socket_.get(), p, len, 0);
    if (n == 0) return Error{"peer closed the connection mid-message"};
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return Error{"timed out waiting for the rest of a message"};
      return Error{Errno("recv")};
    }
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return {};
}

Result<Message> Channel::Receive(int timeout_ms) {
  if (!socket_) return Error{"receive on a closed channel"};
  if (timeout_ms >= 0) {
    pollfd pfd{socket_.get(), POLLIN, 0};
    int r;
    do r = ::poll(&pfd, 1, timeout_ms); while (r < 0 && errno == EINTR);
    if (r < 0) return Error{Errno("poll")};
    if (r == 0) return Error{"timeout waiting for a message"};
  }
  Message m;
  iovec iov{&m.header, sizeof(m.header)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFds + 8))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n == 0) return Error{"peer closed the connection"};
  if (n < 0) return Error{Errno("recvmsg")};

  // Take ownership of every fd first, so none leaks whatever happens next.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      m.fds.emplace_back(fd);
    }
  }
  if (static_cast<std::size_t>(n) < sizeof(m.header)) {
    if (Status s = ReadExact(reinterpret_cast<char*>(&m.header) + n, sizeof(m.header) - n); !s.ok())
      return Error{"truncated header: " + s.message()};
  }
  const std::string name(RequestName(m.header.request));
  if (m.header.size > kMaxPayload) {
    // Consume and discard so the stream stays in sync, up to a bound past which we give up.
    constexpr uint32_t kMaxDiscard = 1u << 20;
    if (m.header.size > kMaxDiscard)
      return Error{name + ": payload size " + std::to_string(m.header.size) +
                   " is absurd; closing the connection"};
    std::vector<char> sink(m.header.size);
    if (Status s = ReadExact(sink.data(), sink.size()); !s.ok()) return Error{s.message()};
    m.problem = Error{name + ": payload of " + std::to_string(m.header.size) +
                      " bytes exceeds the " + std::to_string(kMaxPayload) + "-byte cap"};
    m.header.size = 0;
    m.fds.clear();
    return m;
  }
  if (m.header.size) {
    if (Status s = ReadExact(m.payload.data(), m.header.size); !s.ok())
      return Error{name + ": " + s.message()};
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    m.fds.clear();
    m.problem = Error{name + ": more fds than the " + std::to_string(kMaxFds) + " allowed"};
  } else if (m.fds.size() > kMaxFds) {
    m.fds.clear();
    m.problem = Error{name + ": " + std::to_string(m.fds.size()) + " fds, at most " +
                      std::to_string(kMaxFds) + " allowed"};
  } else if ((m.header.flags & kVersionMask) != kVersion) {
    m.problem = Error{name + ": version bits " + std::to_string(m.header.flags & kVersionMask) +
                      ", expected 1"};
  } else if (m.header.flags & ~kKnownFlags) {
    m.problem = Error{name + ": unknown flag bits set"};
  }
  return m;
}

Result<UniqueFd> ListenUnix(const std::string& path) {
  auto addr = MakeAddr(path);
  if (!addr) return addr.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error{Errno("socket")};
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) < 0)
    return Error{Errno(("bind " + path).c_str())};
  if (::listen(fd.get(), 4) < 0) return Error{Errno("listen")};
  return fd;
}

Result<UniqueFd> AcceptUnix(int listen_fd, int timeout_ms) {
  if (timeout_ms >= 0) {
    pollfd pfd{listen_fd, POLLIN, 0};
    int r;
    do r = ::poll(&pfd, 1, timeout_ms); while (r < 0 && errno == EINTR);
    if (r < 0) return Error{Errno("poll")};
    if (r == 0) return Error{"timeout waiting for a connection"};
  }
  int fd;
  do fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC); while (fd < 0 && errno == EINTR);
  if (fd < 0) return Error{Errno("accept")};
  return UniqueFd(fd);
}

Result<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms) {
  auto addr = MakeAddr(path);
  if (!addr) return addr.error();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error{Errno("socket")};
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) == 0) return fd;
    if (std::chrono::steady_clock::now() >= deadline)
      return Error{Errno(("connect " + path).c_str())};
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace vhostlab::protocol
