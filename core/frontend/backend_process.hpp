// Test support: our backend in a forked child process, serving a real Unix socket in a temp
// directory, for tests whose front-end runs in the parent (integration_test, alloc_test).
//
// The child runs backend::CreateBackend with its own threads and its own mappings of the memfds
// it receives. When the parent closes the control pipe (Finish, or the destructor), the child
// stops its backend and sends back its counters, so a test can check that both sides saw the
// same traffic. Every wait is bounded.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include "core/backend/backend.hpp"

namespace vhostlab::frontend {

struct ChildStats {
  uint64_t iotlb_updates, iotlb_invalidates, misses_sent, drops, errors, rx_packets, tx_packets,
      checksum;
};

class BackendProcess {
 public:
  // serve_forever: the child's backend takes one connection after another (one per run).
  explicit BackendProcess(uint32_t queue_pairs,
                          backend::DeviceMode mode = backend::DeviceMode::kLoopback,
                          bool serve_forever = false) {
    char tmpl[] = "/tmp/vhostlab-itest-XXXXXX";
    dir_ = mkdtemp(tmpl);
    socket_ = dir_ + "/backend.sock";
    int ctl[2], res[2];
    if (pipe(ctl) != 0 || pipe(res) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(ctl[1]);
      close(res[0]);
      backend::BackendOptions o;
      o.socket_path = socket_;
      o.queue_pairs = queue_pairs;
      o.mode = mode;
      o.serve_forever = serve_forever;
      auto b = backend::CreateBackend(o);
      char ok = (b.ok() && (*b)->Start().ok()) ? 1 : 0;
      if (write(res[1], &ok, 1) != 1 || !ok) _exit(1);
      char c;
      while (read(ctl[0], &c, 1) > 0) {
      }
      (*b)->Stop();
      backend::BackendStats s = (*b)->Stats();
      ChildStats cs{s.iotlb_updates, s.iotlb_invalidates, s.misses_sent, 0, 0, 0, 0, 0};
      for (const auto& q : s.queues) {
        cs.drops += q.drops;
        cs.errors += q.errors;
        cs.rx_packets += q.rx_packets;
        cs.tx_packets += q.tx_packets;
        cs.checksum += q.checksum;
      }
      _exit(write(res[1], &cs, sizeof(cs)) == sizeof(cs) ? 0 : 1);
    }
    close(ctl[0]);
    close(res[1]);
    ctl_ = ctl[1];
    res_ = res[0];
    char ok = 0;
    pollfd p{res_, POLLIN, 0};
    ready_ = poll(&p, 1, 10000) == 1 && read(res_, &ok, 1) == 1 && ok == 1;
  }

  ~BackendProcess() {
    if (ctl_ >= 0) close(ctl_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (res_ >= 0) close(res_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }

  // Stops the child's backend and returns its counters (bounded wait).
  bool Finish(ChildStats* out) {
    close(ctl_);
    ctl_ = -1;
    pollfd p{res_, POLLIN, 0};
    bool got = poll(&p, 1, 15000) == 1 && read(res_, out, sizeof(*out)) == sizeof(*out);
    int status = 0;
    for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return got;
  }

 private:
  std::string dir_, socket_;
  pid_t pid_ = -1;
  int ctl_ = -1, res_ = -1;
  bool ready_ = false;
};

}  // namespace vhostlab::frontend
