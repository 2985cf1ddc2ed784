// The registry of peers: one line per peer in kKinds. Each peer's factory lives in its own file
// (self.cpp, dpdk.cpp, socket.cpp) and is declared here, next to its line.
#include <string>

#include "core/experiment/peers/peer.hpp"

namespace vhostlab::experiment {

Result<std::unique_ptr<Peer>> MakeSelfPeer(const RunConfig& config, const std::string& argument);
Result<std::unique_ptr<Peer>> MakeDpdkPeer(const RunConfig& config, const std::string& argument);
Result<std::unique_ptr<Peer>> MakeSocketPeer(const RunConfig& config, const std::string& argument);

const std::vector<PeerKind>& PeerKinds() {
  static const std::vector<PeerKind> kKinds = {
      {"self", false, &MakeSelfPeer, "vhostlab's backend in this process, on its own threads"},
      {"dpdk", false, &MakeDpdkPeer, "DPDK's vhost PMD in a spawned dpdk-testpmd"},
      {"socket", true, &MakeSocketPeer, "a backend already listening on PATH"},
  };
  return kKinds;
}

std::string PeerNamesJoined() {
  const auto& kinds = PeerKinds();
  std::string s;
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    if (i) s += i + 1 == kinds.size() ? " or " : ", ";
    s += std::string(kinds[i].name) + (kinds[i].takes_argument ? ":PATH" : "");
  }
  return s;
}

Result<std::unique_ptr<Peer>> MakePeer(const RunConfig& config) {
  const std::string& spec = config.backend;
  const std::size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  for (const PeerKind& k : PeerKinds()) {
    if (k.name != name || k.takes_argument != (colon != std::string::npos)) continue;
    return k.make(config, colon == std::string::npos ? "" : spec.substr(colon + 1));
  }
  return Error{"unknown backend '" + spec + "' (" + PeerNamesJoined() + ")"};
}

}  // namespace vhostlab::experiment
