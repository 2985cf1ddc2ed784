#include "core/frontend/session.hpp"

#include <sys/socket.h>

#include <chrono>
#include <cinttypes>

#include "core/base/log.hpp"

namespace vhostlab::frontend {
namespace {

using protocol::Bit;
using protocol::Request;
namespace pf = protocol::protocol_feature;
namespace vf = protocol::feature;

// A backend that does not answer within this bound is broken or wedged; the run fails loudly
// instead of hanging.
constexpr int kReplyTimeoutMs = 10000;

std::string Name(Request r) { return std::string(protocol::RequestName(static_cast<uint32_t>(r))); }

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Session::~Session() { StopBackendChannel(); }

Result<std::unique_ptr<Session>> Session::Connect(const std::string& socket_path, int timeout_ms) {
  Result<UniqueFd> fd = protocol::ConnectUnix(socket_path, timeout_ms);
  if (!fd.ok()) return Error{"connect to backend at " + socket_path + ": " + fd.error().message};
  std::unique_ptr<Session> s(new Session());
  s->main_ = protocol::Channel(std::move(fd.value()));
  return s;
}

Result<protocol::Message> Session::ReadReplyLocked(Request request) {
  Result<protocol::Message> m = main_.Receive(kReplyTimeoutMs);
  if (!m.ok()) return Error{Name(request) + ": no reply: " + m.error().message};
  if (!m->problem.ok()) return Error{Name(request) + ": bad reply: " + m->problem.message()};
  if (m->request() != static_cast<uint32_t>(request) || !m->is_reply())
    return Error{Name(request) + ": expected its reply, received " +
                 std::string(protocol::RequestName(m->request())) +
                 (m->is_reply() ? " (reply)" : " (not a reply)")};
  return m;
}

Status Session::SendLocked(Request request, const void* payload, uint32_t size,
                           std::span<const int> fds, bool want_ack) {
  const bool ack = want_ack && negotiated_.reply_ack();
  uint32_t flags = protocol::kVersion | (ack ? protocol::kFlagNeedReply : 0);
  if (Status s = main_.Send(static_cast<uint32_t>(request), flags, payload, size, fds); !s.ok())
    return Error{Name(request) + ": " + s.message()};
  if (!ack) return {};
  Result<protocol::Message> reply = ReadReplyLocked(request);
  if (!reply.ok()) return reply.error();
  Result<protocol::U64Payload> v = reply->PayloadAs<protocol::U64Payload>();
  if (!v.ok()) return Error{Name(request) + " reply: " + v.error().message};
  if (v->value != 0)
    return Error{Name(request) + ": backend refused it (status " + std::to_string(v->value) + ")"};
  return {};
}

Result<protocol::Message> Session::CallLocked(Request request, const void* payload, uint32_t size) {
  if (Status s = main_.Send(static_cast<uint32_t>(request), protocol::kVersion, payload, size);
      !s.ok())
    return Error{Name(request) + ": " + s.message()};
  return ReadReplyLocked(request);
}

Status Session::Set(Request request, const void* payload, uint32_t size, std::span<const int> fds) {
  std::lock_guard<std::mutex> lock(mu_);
  return SendLocked(request, payload, size, fds, /*want_ack=*/true);
}

Status Session::Negotiate(bool iommu, uint32_t queue_pairs, uint64_t optional) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Status s = SendLocked(Request::kSetOwner, nullptr, 0, {}, false); !s.ok()) return s;
  auto get_u64 = [&](Request r) -> Result<uint64_t> {
    Result<protocol::Message> m = CallLocked(r, nullptr, 0);
    if (!m.ok()) return m.error();
    Result<protocol::U64Payload> v = m->PayloadAs<protocol::U64Payload>();
    if (!v.ok()) return v.error();
    return v->value;
  };
  Result<uint64_t> features = get_u64(Request::kGetFeatures);
  if (!features.ok()) return features.error();
  negotiated_.offered_features = *features;
  if (!(*features & Bit(vf::kVersion1)))
    return Error{"backend does not offer VIRTIO_F_VERSION_1 (offered " +
                 protocol::FeatureNames(*features) + ")"};
  if (iommu && !(*features & Bit(vf::kIommuPlatform)))
    return Error{"--iommu on, but the backend does not offer VIRTIO_F_IOMMU_PLATFORM (offered " +
                 protocol::FeatureNames(*features) + ")"};
  uint64_t ack =
      Bit(vf::kVersion1) | (iommu ? Bit(vf::kIommuPlatform) : 0) | (*features & optional);
  if (*features & Bit(vf::kProtocolFeatures)) {
    ack |= Bit(vf::kProtocolFeatures);
    Result<uint64_t> pfeat = get_u64(Request::kGetProtocolFeatures);
    if (!pfeat.ok()) return pfeat.error();
    negotiated_.offered_protocol = *pfeat;
    uint64_t want = Bit(pf::kReplyAck) | Bit(pf::kBackendReq) | Bit(pf::kMq);
    uint64_t set = *pfeat & want;
    protocol::U64Payload p{set};
    if (Status s = SendLocked(Request::kSetProtocolFeatures, &p, sizeof(p), {}, false); !s.ok())
      return s;
    negotiated_.protocol = set;
    if (set & Bit(pf::kMq)) {
      Result<uint64_t> qn = get_u64(Request::kGetQueueNum);
      if (!qn.ok()) return qn.error();
      negotiated_.queue_num = static_cast<uint32_t>(*qn);
    }
  }
  if (iommu &&
      !(negotiated_.protocol & Bit(pf::kReplyAck) && negotiated_.protocol & Bit(pf::kBackendReq)))
    return Error{
        "IOMMU support requires the reply-ack and backend-req protocol features; the "
        "backend offers " +
        protocol::ProtocolFeatureNames(negotiated_.offered_protocol)};
  if (queue_pairs > 1 && !(negotiated_.protocol & Bit(pf::kMq)))
    return Error{std::to_string(queue_pairs) + " queue pairs need the MQ protocol feature"};
  if (queue_pairs > negotiated_.queue_num)
    return Error{std::to_string(queue_pairs) + " queue pairs asked for, the backend offers " +
                 std::to_string(negotiated_.queue_num)};
  if (negotiated_.protocol & Bit(pf::kBackendReq)) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return Error{std::string("socketpair: ") + std::strerror(errno)};
    UniqueFd ours(sv[0]), theirs(sv[1]);
    int fd = theirs.get();
    if (Status s =
            SendLocked(Request::kSetBackendReqFd, nullptr, 0, std::span<const int>(&fd, 1), true);
        !s.ok())
      return s;
    backend_ = protocol::Channel(std::move(ours));
  }
  protocol::U64Payload f{ack};
  if (Status s = SendLocked(Request::kSetFeatures, &f, sizeof(f), {}, true); !s.ok()) return s;
  negotiated_.features = ack;
  VL_DEBUG("negotiated features %s, protocol features %s, %u queue pairs offered",
           protocol::FeatureNames(ack).c_str(),
           protocol::ProtocolFeatureNames(negotiated_.protocol).c_str(), negotiated_.queue_num);
  return {};
}

Status Session::SetMemTable(const protocol::MemoryTable& table, std::span<const int> fds) {
  return Set(Request::kSetMemTable, &table, 8 + 32 * table.nregions, fds);
}

Status Session::SetVringNum(uint32_t index, uint32_t num) {
  protocol::VringState s{index, num};
  return Set(Request::kSetVringNum, &s, sizeof(s));
}

Status Session::SetVringBase(uint32_t index, uint32_t base) {
  protocol::VringState s{index, base};
  return Set(Request::kSetVringBase, &s, sizeof(s));
}

Status Session::SetVringAddr(const protocol::VringAddr& addr) {
  return Set(Request::kSetVringAddr, &addr, sizeof(addr));
}

Status Session::SetVringFd(Request which, uint32_t index, int fd) {
  protocol::U64Payload p{index};
  return Set(which, &p, sizeof(p), std::span<const int>(&fd, 1));
}

Status Session::SetVringEnable(uint32_t index, bool enable) {
  protocol::VringState s{index, enable ? 1u : 0u};
  return Set(Request::kSetVringEnable, &s, sizeof(s));
}

Result<uint32_t> Session::GetVringBase(uint32_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  protocol::VringState s{index, 0};
  Result<protocol::Message> m = CallLocked(Request::kGetVringBase, &s, sizeof(s));
  if (!m.ok()) return m.error();
  Result<protocol::VringState> r = m->PayloadAs<protocol::VringState>();
  if (!r.ok()) return r.error();
  return r->num;
}

Status Session::Iotlb(const protocol::IotlbMsg& msg, uint64_t* ack_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t t0 = NowNs();
  // IOTLB messages always carry need_reply (QEMU does; REPLY_ACK is a precondition of IOMMU).
  Status s = SendLocked(Request::kIotlbMsg, &msg, sizeof(msg), {}, true);
  if (ack_ns) *ack_ns = NowNs() - t0;
  return s;
}

Status Session::IotlbUpdate(uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm,
                            uint64_t* ack_ns) {
  return Iotlb(protocol::IotlbMsg::Update(iova, size, uaddr, perm), ack_ns);
}

Status Session::IotlbInvalidate(uint64_t iova, uint64_t size, uint64_t* ack_ns) {
  return Iotlb(protocol::IotlbMsg::Invalidate(iova, size), ack_ns);
}

void Session::StartBackendChannel(MissHandler handler) {
  if (!backend_.valid() || backend_thread_.joinable()) return;
  miss_handler_ = std::move(handler);
  backend_thread_ = std::thread([this] { ServeBackendChannel(); });
}

void Session::StopBackendChannel() {
  stop_.store(true);
  if (backend_thread_.joinable()) backend_thread_.join();
}

void Session::ServeBackendChannel() {
  while (!stop_.load(std::memory_order_relaxed)) {
    // A short poll timeout so StopBackendChannel() is prompt.
    Result<protocol::Message> m = backend_.Receive(50);
    if (!m.ok()) {
      if (m.error().message.rfind("timeout", 0) == 0) continue;
      if (!stop_.load()) VL_DEBUG("backend channel closed: %s", m.error().message.c_str());
      return;
    }
    if (!m->problem.ok()) {
      ++backend_errors_;
      VL_WARN("backend channel: %s", m->problem.message().c_str());
      continue;
    }
    const uint32_t req = m->request();
    uint64_t status = 1;
    if (req == static_cast<uint32_t>(protocol::BackendRequest::kIotlbMsg)) {
      Result<protocol::IotlbMsg> msg = m->PayloadAs<protocol::IotlbMsg>();
      if (!msg.ok()) {
        ++backend_errors_;
        VL_WARN("backend channel: %s", msg.error().message.c_str());
      } else if (msg->type == static_cast<uint8_t>(protocol::IotlbType::kMiss)) {
        ++misses_received_;
        // The UPDATE goes out on the main channel (and is acked) before we answer the MISS.
        if (miss_handler_ && miss_handler_(*msg)) {
          status = 0;
        } else {
          ++misses_unresolved_;
        }
      } else if (msg->type == static_cast<uint8_t>(protocol::IotlbType::kAccessFail)) {
        ++backend_errors_;
        VL_WARN("backend reports IOTLB ACCESS_FAIL at IOVA 0x%" PRIx64 " perm %u", msg->iova,
                msg->perm);
      } else {
        ++backend_errors_;
        VL_WARN("backend channel: unexpected IOTLB message type %u", msg->type);
      }
    } else {
      ++backend_errors_;
      VL_WARN("backend channel: unhandled request %s (%u)",
              std::string(protocol::BackendRequestName(req)).c_str(), req);
    }
    if (m->need_reply()) {
      protocol::U64Payload p{status};
      if (Status s = backend_.Send(req, protocol::kVersion | protocol::kFlagReply, &p, sizeof(p));
          !s.ok())
        VL_WARN("backend channel reply: %s", s.message().c_str());
    }
  }
}

}  // namespace vhostlab::frontend
