// Peer "socket:PATH": a backend that is already listening on PATH (`vhostlab backend`, DPDK,
// anything spec-following). It is another process: nothing to start or stop, no threads of its
// own for us to place (`vhostlab backend --cpus` places ours) and no statistics but what the
// front-end sees.
#include "core/experiment/peers/peer.hpp"

namespace vhostlab::experiment {
namespace {

class SocketPeer final : public Peer {
 public:
  explicit SocketPeer(std::string path) : path_(std::move(path)) {}
  PeerThreads Threads() const override { return {0, true, "backend", true}; }
  Status Start(const PeerStart&) override { return {}; }
  std::string socket_path() const override { return path_; }
  // An external backend may still be coming up: a short grace period, not our own peers' 10 s.
  int connect_timeout_ms() const override { return 3000; }
  void Stop() override {}

 private:
  std::string path_;
};

}  // namespace

Result<std::unique_ptr<Peer>> MakeSocketPeer(const RunConfig&, const std::string& path) {
  if (path.empty()) return Error{"backend socket:PATH needs the socket's path after 'socket:'"};
  return std::unique_ptr<Peer>(new SocketPeer(path));
}

}  // namespace vhostlab::experiment
