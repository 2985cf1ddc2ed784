// The backend session: the vhost-user control path, one message at a time, from a table.
//
// Dispatch. HandlerTable::kAll (constexpr; ids checked unique at compile time) maps each request
// id to {name, handler, fd policy, reply policy}. Dispatch() refuses, before any handler runs:
// messages the channel already flagged (bad version bits, oversized payloads, too many fds),
// unknown or unsupported ids, and a wrong number of fds where the table fixes it (none, one, at
// most one; per region and the vring no-fd bit depend on the payload). Handlers validate their payload (protocol::*::Validate plus backend-state checks such as
// queue index and mapped memory) and return Result<Reply>. Every refusal is logged with the
// message name and why, counted in message_errors, and the session keeps serving.
//
// Replies (vhost-user spec, "Communication" and "REPLY_ACK"):
//  - Requests with a defined reply (GET_*) always get one, even when refused before the handler
//    ran (bad version bits, oversized payload); on failure the reply is a u64 ~0 (so the
//    front-end sees a size or value it cannot take as an answer, and the stream
//    stays in sync).
//  - Other requests with need_reply get a u64 (0 success, 1 failure) when REPLY_ACK was
//    negotiated; IOTLB_MSG gets one whenever need_reply is set (QEMU always sets it, with or
//    without REPLY_ACK); unknown ids and refused messages get a u64 1 whenever need_reply is set.
//
// Address translation invariants (what is translated through what):
//  - VIRTIO_F_IOMMU_PLATFORM negotiated: SET_VRING_ADDR addresses and descriptor addresses are
//    IOVAs, translated ONLY through the IOTLB (iotlb::Replicated<D>, one replica per worker) and
//    then from front-end uaddr to a local pointer through the memory table.
//  - Not negotiated: ring addresses are front-end uaddrs, descriptor addresses GPAs; both go
//    through the memory table only (standard vhost-user). IOTLB messages are still accepted.
//  - An UPDATE is accepted only when every byte of [uaddr, uaddr + size) lies in the memory
//    table; the datapath checks again at use, since the table may change afterwards.
//
// The invalidation guarantee: an INVALIDATE is applied with Replicated::Invalidate, which returns
// after a liburcu-qsbr grace period, i.e. after every worker passed a quiescent state and applied
// the invalidation to its replica (workers cache ring pointers per replica generation and buffer
// pointers only within one burst). Only then is the reply sent.
//
// Misses: the control thread never waits for anything from the front-end. Workers send MISS on
// the backend channel and retry the same descriptor when their replica's generation moves (the
// front-end's UPDATE arrives here first, is inserted, and wakes the waiting workers).
//
// Ring state: a handler that changes a queue pauses that queue's worker (all workers for
// device-wide changes: SET_FEATURES, SET_MEM_TABLE, ADD/REM_MEM_REG) and marks the ring dirty so
// its pointers are re-translated. GET_VRING_BASE stops the ring (it restarts on the next
// SET_VRING_KICK) and answers the next available index to process.
#include "core/backend/session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/base/log.hpp"

namespace vhostlab::backend {

using protocol::Bit;
using protocol::Message;
using protocol::Request;

namespace feature = protocol::feature;
namespace protocol_feature = protocol::protocol_feature;

namespace {

constexpr int kNetFCtrlVq = 17;
constexpr int kNetFMq = 22;
constexpr uint32_t kMaxMemSlots = 8;
constexpr uint64_t kLoggedRefusals = 16;

std::string Fmt(const char* fmt, auto... args) {
  char buf[384];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

// Kick, call and err fds must be eventfds (as QEMU, DPDK and Linux vhost use): a pipe can block
// a reader forever or kill a writer with SIGPIPE. They are made non-blocking, so that neither a
// drained kick nor a call counter someone filled to its maximum can block a worker.
Status AdoptEventfd(int fd, const char* what, uint32_t index) {
  char link[64];
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
  if (n < 0 || std::string_view(link, static_cast<std::size_t>(n)) != "anon_inode:[eventfd]")
    return Error{Fmt("%s: queue %u: the fd is not an eventfd (%.*s); only eventfds are accepted",
                     what, index, n < 0 ? 7 : static_cast<int>(n), n < 0 ? "unknown" : link)};
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return Error{Fmt("%s: queue %u: cannot make the eventfd non-blocking: %s", what, index,
                     std::strerror(errno))};
  return {};
}

}  // namespace

uint64_t OfferedFeatures(uint32_t queue_pairs, bool event_idx, bool mrg_rxbuf) {
  uint64_t f = Bit(feature::kVersion1) | Bit(feature::kIommuPlatform) |
               Bit(feature::kProtocolFeatures) | Bit(feature::kRingIndirectDesc);
  if (event_idx) f |= Bit(feature::kRingEventIdx);
  if (mrg_rxbuf) f |= Bit(feature::kNetFMrgRxbuf);
  // Multiqueue virtio-net needs VIRTIO_NET_F_MQ, which the spec ties to CTRL_VQ; the control
  // queue itself is emulated by the front-end (QEMU, virtio-user) and never reaches a backend.
  if (queue_pairs > 1) f |= Bit(kNetFCtrlVq) | Bit(kNetFMq);
  return f;
}

uint64_t OfferedProtocolFeatures() {
  return Bit(protocol_feature::kMq) | Bit(protocol_feature::kReplyAck) |
         Bit(protocol_feature::kBackendReq) | Bit(protocol_feature::kConfigureMemSlots) |
         Bit(protocol_feature::kStatus);
}

struct Session::Reply {
  uint32_t size = 0;  // 0: no payload (an ack-able request)
  alignas(8) uint8_t bytes[48] = {};
  template <typename T>
  static Reply Of(const T& v) {
    static_assert(sizeof(T) <= sizeof(bytes));
    Reply r;
    r.size = sizeof(T);
    std::memcpy(r.bytes, &v, sizeof(T));
    return r;
  }
  static Reply U64(uint64_t v) { return Of(protocol::U64Payload{v}); }
};

// How many fds a request carries. Dispatch() checks kNone, kOne and kAtMostOne before the handler
// runs; the two that depend on the payload are checked where the payload is read.
enum class FdPolicy : uint8_t {
  kNone,       // no fd
  kOne,        // exactly one (SET_BACKEND_REQ_FD, ADD_MEM_REG)
  kAtMostOne,  // none or one (REM_MEM_REG: QEMU attaches the region's fd; it is not needed)
  kVring,      // one, or none when the u64's no-fd bit is set (SET_VRING_KICK/CALL/ERR)
  kPerRegion,  // one per region of the table (SET_MEM_TABLE: MemoryTable::Build)
};

// What a request is answered with (see the file comment).
enum class ReplyPolicy : uint8_t {
  kPayload,    // a defined reply payload (GET_*), always; a u64 ~0 when refused
  kAck,        // a u64 status when need_reply is set and REPLY_ACK was negotiated
  kAckAlways,  // a u64 status whenever need_reply is set (IOTLB_MSG: QEMU sets it regardless)
};

struct Session::Handler {
  Request id;
  const char* name;
  Result<Reply> (Session::*fn)(Message&);
  FdPolicy fds;
  ReplyPolicy reply;
};

// Requests a net backend with IOMMU handles (vhost-user-iotlb-facts.md) + CONFIGURE_MEM_SLOTS +
// STATUS. Anything else (SET_LOG_*, SEND_RARP, NET_SET_MTU, GET/SET_CONFIG, RESET_DEVICE, ...) is
// answered as unsupported: none of their protocol features is offered.
// A friend of Session (the handlers are private); constexpr, so the ids are checked below.
struct HandlerTable {
  using F = FdPolicy;
  using R = ReplyPolicy;
  static constexpr Session::Handler kAll[] = {
      {Request::kGetFeatures, "GET_FEATURES", &Session::GetFeatures, F::kNone, R::kPayload},
      {Request::kSetFeatures, "SET_FEATURES", &Session::SetFeatures, F::kNone, R::kAck},
      {Request::kSetOwner, "SET_OWNER", &Session::SetOwner, F::kNone, R::kAck},
      {Request::kResetOwner, "RESET_OWNER", &Session::ResetOwner, F::kNone, R::kAck},
      {Request::kSetMemTable, "SET_MEM_TABLE", &Session::SetMemTable, F::kPerRegion, R::kAck},
      {Request::kSetVringNum, "SET_VRING_NUM", &Session::SetVringNum, F::kNone, R::kAck},
      {Request::kSetVringAddr, "SET_VRING_ADDR", &Session::SetVringAddr, F::kNone, R::kAck},
      {Request::kSetVringBase, "SET_VRING_BASE", &Session::SetVringBase, F::kNone, R::kAck},
      {Request::kGetVringBase, "GET_VRING_BASE", &Session::GetVringBase, F::kNone, R::kPayload},
      {Request::kSetVringKick, "SET_VRING_KICK", &Session::SetVringKick, F::kVring, R::kAck},
      {Request::kSetVringCall, "SET_VRING_CALL", &Session::SetVringCall, F::kVring, R::kAck},
      {Request::kSetVringErr, "SET_VRING_ERR", &Session::SetVringErr, F::kVring, R::kAck},
      {Request::kGetProtocolFeatures, "GET_PROTOCOL_FEATURES", &Session::GetProtocolFeatures,
       F::kNone, R::kPayload},
      {Request::kSetProtocolFeatures, "SET_PROTOCOL_FEATURES", &Session::SetProtocolFeatures,
       F::kNone, R::kAck},
      {Request::kGetQueueNum, "GET_QUEUE_NUM", &Session::GetQueueNum, F::kNone, R::kPayload},
      {Request::kSetVringEnable, "SET_VRING_ENABLE", &Session::SetVringEnable, F::kNone, R::kAck},
      {Request::kSetBackendReqFd, "SET_BACKEND_REQ_FD", &Session::SetBackendReqFd,
       F::kOne, R::kAck},
      {Request::kIotlbMsg, "IOTLB_MSG", &Session::IotlbMsg, F::kNone, R::kAckAlways},
      {Request::kGetMaxMemSlots, "GET_MAX_MEM_SLOTS", &Session::GetMaxMemSlots,
       F::kNone, R::kPayload},
      {Request::kAddMemReg, "ADD_MEM_REG", &Session::AddMemReg, F::kOne, R::kAck},
      {Request::kRemMemReg, "REM_MEM_REG", &Session::RemMemReg, F::kAtMostOne, R::kAck},
      {Request::kSetStatus, "SET_STATUS", &Session::SetStatus, F::kNone, R::kAck},
      {Request::kGetStatus, "GET_STATUS", &Session::GetStatus, F::kNone, R::kPayload},
  };
};

constexpr bool IdsUnique(const Session::Handler* t, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j)
      if (t[i].id == t[j].id) return false;
  return true;
}
static_assert(IdsUnique(HandlerTable::kAll, std::size(HandlerTable::kAll)),
              "two handlers for one request id");

const Session::Handler* Session::FindHandler(uint32_t request) {
  for (const Handler& h : HandlerTable::kAll)
    if (static_cast<uint32_t>(h.id) == request) return &h;
  return nullptr;
}

Result<std::unique_ptr<Session>> Session::Create(protocol::Channel channel,
                                                 const BackendOptions& options,
                                                 Counters* counters, trace::Writer* recorder) {
  auto device = MakeDevice(options, counters, recorder);
  if (!device) return device.error();
  if (Status s = channel.SetIoTimeout(options.peer_timeout_ms); !s.ok()) return s.error();
  if (recorder) recorder->Add(trace::RecordType::kConnect, 0, 0, 0, iotlb::Perm::kNone);
  return std::unique_ptr<Session>(
      new Session(std::move(channel), options, counters, recorder, std::move(*device)));
}

Session::Session(protocol::Channel channel, const BackendOptions& options, Counters* counters,
                 trace::Writer* recorder, std::unique_ptr<Device> device)
    : channel_(std::move(channel)),
      options_(options),
      counters_(counters),
      recorder_(recorder),
      device_(std::move(device)) {}

void Session::RecordMemoryTable() {
  if (!recorder_) return;
  recorder_->Add(trace::RecordType::kMemReset, 0, 0, 0, iotlb::Perm::kNone);
  for (const memory::Region& r : device_->config().memory.regions())
    recorder_->Add(trace::RecordType::kMemRegion, r.gpa, r.size, r.uaddr, iotlb::Perm::kReadWrite);
}

Session::~Session() = default;

std::vector<int> Session::WorkerTids() const {
  std::lock_guard<std::mutex> lock(device_mu_);
  return device_ ? device_->WorkerTids() : std::vector<int>{};
}

Status Session::ResetState() {
  std::lock_guard<std::mutex> lock(device_mu_);
  device_.reset();  // joins the old workers before the new ones register
  auto device = MakeDevice(options_, counters_, recorder_);
  if (!device) return device.error();  // Serve ends the session: it has no device
  device_ = std::move(*device);
  if (recorder_) recorder_->Add(trace::RecordType::kConnect, 0, 0, 0, iotlb::Perm::kNone);
  acked_features_ = acked_protocol_features_ = 0;
  features_set_ = protocol_features_set_ = owner_ = false;
  status_ = 0;
  return {};
}

std::string Session::Serve(int stop_fd) {
  // After each message the control thread keeps polling the socket for a while (not in
  // kInterrupt mode): QEMU and our front-end send IOTLB messages in bursts and wait for each
  // reply, and on a VM a thread that sleeps pays a wake-up (an IPI and a VM exit, tens of us)
  // per message.
  const bool spin = options_.poll != PollMode::kInterrupt;
  const auto spin_for = std::chrono::microseconds(options_.spin_us);
  for (;;) {
    pollfd fds[2] = {{channel_.fd(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const nfds_t nfds = stop_fd >= 0 ? 2 : 1;
    int r = 0;
    if (spin) {
      const auto until = std::chrono::steady_clock::now() + spin_for;
      do r = ::poll(fds, nfds, 0);
      while (r == 0 && std::chrono::steady_clock::now() < until);
    }
    if (r == 0) r = ::poll(fds, nfds, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return std::string("poll: ") + std::strerror(errno);
    }
    if (stop_fd >= 0 && (fds[1].revents & POLLIN)) return "backend stopping";
    auto m = channel_.Receive(0);
    if (!m) return m.error().message;
    const auto received = std::chrono::steady_clock::now();
    counters_->messages.fetch_add(1, std::memory_order_relaxed);
    if (Status s = Dispatch(*m); !s.ok()) return "cannot reply: " + s.message();
    if (!device_) return "the device could not be rebuilt after RESET_OWNER";
    if (m->request() == static_cast<uint32_t>(Request::kIotlbMsg) &&
        m->payload.size() >= sizeof(protocol::IotlbMsg)) {
      const uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - received).count());
      const uint8_t type = m->payload[offsetof(protocol::IotlbMsg, type)];
      if (type == static_cast<uint8_t>(protocol::IotlbType::kUpdate))
        counters_->update_service_ns.Record(ns);
      else if (type == static_cast<uint8_t>(protocol::IotlbType::kInvalidate))
        counters_->invalidate_service_ns.Record(ns);
    }
  }
}

Status Session::Dispatch(Message& m) {
  const Handler* h = FindHandler(m.request());
  const std::string name(protocol::RequestName(m.request()));
  // Whether REPLY_ACK applies is decided by the state the request arrived in (RESET_OWNER
  // clears the negotiated protocol features but is still acknowledged).
  const bool reply_ack = acked_protocol_features_ & Bit(protocol_feature::kReplyAck);
  Result<Reply> result = Error{""};
  if (!m.problem.ok()) {
    result = m.problem.error();
  } else if (!h) {
    result = Error{Fmt("%s (id %u): %s", name.c_str(), m.request(),
                       name == "UNKNOWN" ? "unknown request id"
                                         : "not supported by this backend (its feature is not "
                                           "offered)")};
  } else if (h->fds == FdPolicy::kNone && !m.fds.empty()) {
    result = Error{Fmt("%s: carries %zu fds, takes none", h->name, m.fds.size())};
  } else if (h->fds == FdPolicy::kOne && m.fds.size() != 1) {
    result = Error{Fmt("%s: %zu fds, expected exactly one", h->name, m.fds.size())};
  } else if (h->fds == FdPolicy::kAtMostOne && m.fds.size() > 1) {
    result = Error{Fmt("%s: %zu fds, expected at most one", h->name, m.fds.size())};
  } else {
    VL_DEBUG("<- %s flags 0x%x size %u fds %zu", h->name, m.header.flags, m.header.size,
             m.fds.size());
    result = (this->*(h->fn))(m);
  }
  m.fds.clear();  // fds a handler did not take are closed now

  const bool ok = result.ok();
  if (!ok) {
    counters_->message_errors.fetch_add(1, std::memory_order_relaxed);
    LogRefusal(name, result.error().message);
  }
  if (h && h->reply == ReplyPolicy::kPayload) {
    if (ok) return channel_.Send(m.request(), protocol::kVersion | protocol::kFlagReply,
                                 result->bytes, result->size);
    return channel_.ReplyU64(m.request(), ~uint64_t{0});
  }
  if (!m.need_reply()) return {};
  const bool always = h && h->reply == ReplyPolicy::kAckAlways;
  if (ok && !reply_ack && !always) return {};
  if (!ok && !reply_ack && !always && h && m.problem.ok()) {
    // need_reply without REPLY_ACK on a known request: the front-end expects no reply.
    return {};
  }
  return channel_.ReplyU64(m.request(), ok ? 0 : 1);
}

void Session::LogRefusal(const std::string& name, const std::string& why) {
  const auto now = std::chrono::steady_clock::now();
  if (++refusals_ <= kLoggedRefusals) {
    VL_WARN("refused %s: %s%s", name.c_str(), why.c_str(),
            refusals_ == kLoggedRefusals ? " (from now on at most one refusal per second is "
                                           "logged)" : "");
    last_refusal_log_ = now;
  } else if (now - last_refusal_log_ >= std::chrono::seconds(1)) {
    VL_WARN("refused %s: %s (and %" PRIu64 " refusals since the last one logged)", name.c_str(),
            why.c_str(), refusals_unlogged_);
    refusals_unlogged_ = 0;
    last_refusal_log_ = now;
  } else {
    ++refusals_unlogged_;
    VL_DEBUG("refused %s: %s", name.c_str(), why.c_str());
  }
}

Status Session::CheckQueue(uint32_t index, const char* what) const {
  if (index >= device_->queue_count())
    return Error{Fmt("%s: queue index %u out of range (this backend has %u queues)", what, index,
                     device_->queue_count())};
  return {};
}

// ---- Features -------------------------------------------------------------------------------

Result<Session::Reply> Session::GetFeatures(Message&) {
  return Reply::U64(OfferedFeatures(options_.queue_pairs, options_.event_idx, options_.mrg_rxbuf));
}

Result<Session::Reply> Session::SetFeatures(Message& m) {
  auto p = m.PayloadAs<protocol::U64Payload>();
  if (!p) return p.error();
  const uint64_t offered = OfferedFeatures(options_.queue_pairs, options_.event_idx, options_.mrg_rxbuf);
  if (p->value & ~offered)
    return Error{Fmt("SET_FEATURES: 0x%" PRIx64 " includes bits not offered (%s)", p->value,
                     protocol::FeatureNames(p->value & ~offered).c_str())};
  Device::PauseGuard pause(device_.get(), -1);
  acked_features_ = p->value;
  features_set_ = true;
  DeviceConfig& cfg = device_->config();
  cfg.features = p->value;
  cfg.iommu = p->value & Bit(feature::kIommuPlatform);
  cfg.indirect = p->value & Bit(feature::kRingIndirectDesc);
  cfg.event_idx = p->value & Bit(feature::kRingEventIdx);
  cfg.mrg_rxbuf = p->value & Bit(feature::kNetFMrgRxbuf);
  // Without PROTOCOL_FEATURES rings start enabled (spec: "Ring states").
  const bool enabled_at_start = !(p->value & Bit(feature::kProtocolFeatures));
  for (uint32_t i = 0; i < device_->queue_count(); ++i) {
    QueueState& q = device_->queue(i);
    if (enabled_at_start) q.enabled = true;
    q.Reconfigured();
  }
  VL_INFO("negotiated features 0x%" PRIx64 ": %s (IOTLB %s)", p->value,
          protocol::FeatureNames(p->value).c_str(), cfg.iommu ? "on" : "off");
  return Reply{};
}

Result<Session::Reply> Session::GetProtocolFeatures(Message&) {
  return Reply::U64(OfferedProtocolFeatures());
}

Result<Session::Reply> Session::SetProtocolFeatures(Message& m) {
  auto p = m.PayloadAs<protocol::U64Payload>();
  if (!p) return p.error();
  if (p->value & ~OfferedProtocolFeatures())
    return Error{Fmt("SET_PROTOCOL_FEATURES: 0x%" PRIx64 " includes bits not offered (%s)",
                     p->value,
                     protocol::ProtocolFeatureNames(p->value & ~OfferedProtocolFeatures()).c_str())};
  acked_protocol_features_ = p->value;
  protocol_features_set_ = true;
  VL_INFO("negotiated protocol features 0x%" PRIx64 ": %s", p->value,
          protocol::ProtocolFeatureNames(p->value).c_str());
  return Reply{};
}

Result<Session::Reply> Session::SetOwner(Message& m) {
  if (m.header.size) return Error{Fmt("SET_OWNER: payload of %u bytes, expected none", m.header.size)};
  owner_ = true;
  return Reply{};
}

Result<Session::Reply> Session::ResetOwner(Message& m) {
  if (m.header.size)
    return Error{Fmt("RESET_OWNER: payload of %u bytes, expected none", m.header.size)};
  if (Status s = ResetState(); !s.ok()) return s.error();
  VL_INFO("RESET_OWNER: device state reset");
  return Reply{};
}

// ---- Memory ---------------------------------------------------------------------------------

Result<Session::Reply> Session::SetMemTable(Message& m) {
  auto p = m.PayloadAs<protocol::MemoryTable>(8);
  if (!p) return p.error();
  auto table = memory::MemoryTable::Build(*p, m.header.size, std::move(m.fds));
  if (!table) return table.error();
  Device::PauseGuard pause(device_.get(), -1);
  device_->config().memory = std::move(*table);
  for (uint32_t i = 0; i < device_->queue_count(); ++i) device_->queue(i).Reconfigured();
  RecordMemoryTable();
  for (const memory::Region& r : device_->config().memory.regions())
    VL_DEBUG("region gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64, r.gpa, r.size,
             r.uaddr);
  return Reply{};
}

Result<Session::Reply> Session::GetMaxMemSlots(Message& m) {
  if (m.header.size && m.header.size != 8)
    return Error{Fmt("GET_MAX_MEM_SLOTS: payload of %u bytes", m.header.size)};
  return Reply::U64(kMaxMemSlots);
}

Result<Session::Reply> Session::AddMemReg(Message& m) {
  auto p = m.PayloadAs<protocol::SingleMemoryRegion>();
  if (!p) return p.error();
  auto table = device_->config().memory.WithRegion(p->region, std::move(m.fds[0]), kMaxMemSlots);
  if (!table) return table.error();
  Device::PauseGuard pause(device_.get(), -1);
  device_->config().memory = std::move(*table);
  for (uint32_t i = 0; i < device_->queue_count(); ++i) device_->queue(i).Reconfigured();
  RecordMemoryTable();
  return Reply{};
}

Result<Session::Reply> Session::RemMemReg(Message& m) {
  auto p = m.PayloadAs<protocol::SingleMemoryRegion>();
  if (!p) return p.error();
  // QEMU attaches the region's fd to REM_MEM_REG too (FdPolicy::kAtMostOne); it is closed.
  auto table = device_->config().memory.WithoutRegion(p->region);
  if (!table) return table.error();
  Device::PauseGuard pause(device_.get(), -1);
  device_->config().memory = std::move(*table);
  for (uint32_t i = 0; i < device_->queue_count(); ++i) device_->queue(i).Reconfigured();
  RecordMemoryTable();
  return Reply{};
}

// ---- Rings ----------------------------------------------------------------------------------

Result<Session::Reply> Session::SetVringNum(Message& m) {
  auto p = m.PayloadAs<protocol::VringState>();
  if (!p) return p.error();
  if (Status s = CheckQueue(p->index, "SET_VRING_NUM"); !s.ok()) return s.error();
  if (!virtio::ValidQueueSize(p->num))
    return Error{Fmt("SET_VRING_NUM: queue %u size %u (must be a power of two, 1..%u)", p->index,
                     p->num, virtio::kMaxQueueSize)};
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  QueueState& q = device_->queue(p->index);
  q.num = p->num;
  q.Reconfigured();
  return Reply{};
}

Result<Session::Reply> Session::SetVringAddr(Message& m) {
  auto p = m.PayloadAs<protocol::VringAddr>();
  if (!p) return p.error();
  if (Status s = p->Validate(); !s.ok()) return s.error();
  if (Status s = CheckQueue(p->index, "SET_VRING_ADDR"); !s.ok()) return s.error();
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  QueueState& q = device_->queue(p->index);
  q.addr = *p;
  q.addr_set = true;
  q.Reconfigured();
  q.stalled = false;
  return Reply{};
}

Result<Session::Reply> Session::SetVringBase(Message& m) {
  auto p = m.PayloadAs<protocol::VringState>();
  if (!p) return p.error();
  if (Status s = CheckQueue(p->index, "SET_VRING_BASE"); !s.ok()) return s.error();
  if (p->num > 0xffff)
    return Error{Fmt("SET_VRING_BASE: queue %u base %u does not fit a split ring's u16 index",
                     p->index, p->num)};
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  QueueState& q = device_->queue(p->index);
  // Every consumed chain is completed at once (no in-flight descriptors), so the used index
  // equals the next available index.
  q.ring.set_last_avail(static_cast<uint16_t>(p->num));
  q.ring.set_used_idx(static_cast<uint16_t>(p->num));
  q.Reconfigured();
  q.stalled = false;
  return Reply{};
}

Result<Session::Reply> Session::GetVringBase(Message& m) {
  auto p = m.PayloadAs<protocol::VringState>();
  if (!p) return p.error();
  if (Status s = CheckQueue(p->index, "GET_VRING_BASE"); !s.ok()) return s.error();
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  QueueState& q = device_->queue(p->index);
  q.started = false;  // spec: GET_VRING_BASE stops the ring
  q.kick.Reset();
  q.kick_polling = false;
  q.Reconfigured();
  q.stalled = false;
  q.ring.Detach();
  protocol::VringState out{p->index, q.ring.last_avail()};
  VL_DEBUG("queue %u stopped at base %u", p->index, out.num);
  return Reply::Of(out);
}

Result<Session::VringFd> Session::ParseVringFd(Message& m) {
  const std::string name(protocol::RequestName(m.request()));
  auto p = m.PayloadAs<protocol::U64Payload>();
  if (!p) return p.error();
  const uint64_t v = p->value;
  if (v & ~(protocol::kVringIndexMask | protocol::kVringNoFdMask))
    return Error{Fmt("%s: unknown bits in 0x%" PRIx64, name.c_str(), v)};
  const uint32_t index = static_cast<uint32_t>(v & protocol::kVringIndexMask);
  if (Status s = CheckQueue(index, name.c_str()); !s.ok()) return s.error();
  const bool no_fd = v & protocol::kVringNoFdMask;
  if (no_fd && !m.fds.empty())
    return Error{Fmt("%s: queue %u sets the no-fd bit but carries %zu fds", name.c_str(), index,
                     m.fds.size())};
  if (!no_fd && m.fds.size() != 1)
    return Error{Fmt("%s: queue %u carries %zu fds, expected exactly one", name.c_str(), index,
                     m.fds.size())};
  if (!no_fd)
    if (Status s = AdoptEventfd(m.fds[0].get(), name.c_str(), index); !s.ok()) return s.error();
  return VringFd{index, no_fd ? UniqueFd() : std::move(m.fds[0])};
}

Result<Session::Reply> Session::SetVringKick(Message& m) {
  auto p = ParseVringFd(m);
  if (!p) return p.error();
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  QueueState& q = device_->queue(p->index);
  q.kick_polling = !p->fd.valid();
  q.kick = std::move(p->fd);
  q.started = true;  // spec: the ring starts when a kick is set
  q.Reconfigured();
  return Reply{};
}

Result<Session::Reply> Session::SetVringCall(Message& m) {
  auto p = ParseVringFd(m);
  if (!p) return p.error();
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  device_->queue(p->index).call = std::move(p->fd);
  return Reply{};
}

Result<Session::Reply> Session::SetVringErr(Message& m) {
  auto p = ParseVringFd(m);
  if (!p) return p.error();
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  device_->queue(p->index).err = std::move(p->fd);
  return Reply{};
}

Result<Session::Reply> Session::GetQueueNum(Message& m) {
  if (m.header.size && m.header.size != 8)
    return Error{Fmt("GET_QUEUE_NUM: payload of %u bytes", m.header.size)};
  // Queue *pairs*, as QEMU's vhost-user net and DPDK count them.
  return Reply::U64(options_.queue_pairs);
}

Result<Session::Reply> Session::SetVringEnable(Message& m) {
  auto p = m.PayloadAs<protocol::VringState>();
  if (!p) return p.error();
  // The spec allows SET_VRING_ENABLE once PROTOCOL_FEATURES is negotiated. QEMU sends it
  // before SET_FEATURES (at vhost_dev_init, after SET_PROTOCOL_FEATURES), and its order is
  // legal: a front-end that sent SET_PROTOCOL_FEATURES saw PROTOCOL_FEATURES offered and is
  // negotiating it. Refused only when the features were acked without it (rings are then
  // enabled at start) or before any protocol feature negotiation.
  const bool negotiating = features_set_ ? (acked_features_ & Bit(feature::kProtocolFeatures))
                                         : protocol_features_set_;
  if (!negotiating)
    return Error{"SET_VRING_ENABLE: only valid once PROTOCOL_FEATURES is negotiated (features "
                 "were acked without it, or SET_PROTOCOL_FEATURES was never sent)"};
  if (Status s = CheckQueue(p->index, "SET_VRING_ENABLE"); !s.ok()) return s.error();
  if (p->num > 1)
    return Error{Fmt("SET_VRING_ENABLE: queue %u state %u (0 or 1)", p->index, p->num)};
  Device::PauseGuard pause(device_.get(), static_cast<int>(p->index / 2));
  QueueState& q = device_->queue(p->index);
  q.enabled = p->num == 1;
  q.Reconfigured();
  return Reply{};
}

// ---- Backend channel and IOTLB ----------------------------------------------------------------

Result<Session::Reply> Session::SetBackendReqFd(Message& m) {
  if (m.header.size) return Error{Fmt("SET_BACKEND_REQ_FD: payload of %u bytes", m.header.size)};
  if (!(acked_protocol_features_ & Bit(protocol_feature::kBackendReq)))
    return Error{"SET_BACKEND_REQ_FD: BACKEND_REQ was not negotiated"};
  device_->backend_channel().Set(std::move(m.fds[0]));
  return Reply{};
}

Result<Session::Reply> Session::IotlbMsg(Message& m) {
  auto p = m.PayloadAs<protocol::IotlbMsg>();
  if (!p) return p.error();
  if (Status s = p->Validate(); !s.ok()) return s.error();
  const iotlb::IovaRange range{p->iova, p->Last()};
  if (p->type == static_cast<uint8_t>(protocol::IotlbType::kUpdate)) {
    if (device_->IotlbEntries() >= options_.iotlb_max_entries) {
      counters_->iotlb_refused_full.fetch_add(1, std::memory_order_relaxed);
      if (!warned_iotlb_full_) {
        warned_iotlb_full_ = true;
        VL_ERROR("the IOTLB is full: this front-end holds %" PRIu64 " entries (--iotlb-max-entries);"
                 " further UPDATEs are refused until it invalidates some", options_.iotlb_max_entries);
      }
      return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 ": the IOTLB is full (%" PRIu64 " entries)",
                       p->iova, options_.iotlb_max_entries)};
    }
    if (!device_->config().memory.CoversUaddr(p->uaddr, p->size))
      return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 " size 0x%" PRIx64 ": uaddr 0x%" PRIx64
                       " is not inside the memory table",
                       p->iova, p->size, p->uaddr)};
    const auto s = device_->IotlbUpdate(range, p->uaddr, static_cast<iotlb::Perm>(p->perm));
    if (s == iotlb::InsertStatus::kInvalidRange)
      return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 ": refused by the IOTLB", p->iova)};
    counters_->iotlb_updates.fetch_add(1, std::memory_order_relaxed);
    if (recorder_)
      recorder_->Add(trace::RecordType::kUpdate, p->iova, p->size, p->uaddr,
                     static_cast<iotlb::Perm>(p->perm));
    return Reply{};
  }
  if (recorder_)
    recorder_->Add(trace::RecordType::kInvalidate, p->iova, p->size, 0, iotlb::Perm::kNone);
  device_->IotlbInvalidate(range);  // returns after every worker quiesced
  counters_->iotlb_invalidates.fetch_add(1, std::memory_order_relaxed);
  return Reply{};
}

// ---- Status ---------------------------------------------------------------------------------

Result<Session::Reply> Session::SetStatus(Message& m) {
  auto p = m.PayloadAs<protocol::U64Payload>();
  if (!p) return p.error();
  if (p->value > 0xff) return Error{Fmt("SET_STATUS: 0x%" PRIx64 " is not a u8 status", p->value)};
  status_ = static_cast<uint8_t>(p->value);
  return Reply{};
}

Result<Session::Reply> Session::GetStatus(Message& m) {
  if (m.header.size && m.header.size != 8)
    return Error{Fmt("GET_STATUS: payload of %u bytes", m.header.size)};
  return Reply::U64(status_);
}

}  // namespace vhostlab::backend
