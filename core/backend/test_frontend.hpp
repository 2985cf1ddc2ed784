// TestFrontend: a small raw-message vhost-user front-end for the backend's tests (test-only).
//
// It owns real guest memory (a memfd, mmapped here and passed to the backend with SCM_RIGHTS),
// talks over a real Unix socket, and plays the driver side of split rings in that memory. It is
// deliberately raw: tests build every message by hand so they can also send malformed ones.
// Guest memory layout: one region at GPA kGpa, front-end address kUaddr (different numbers on
// purpose, so a GPA used as a uaddr or vice versa misses), kMemSize bytes. With the IOMMU on,
// tests choose IOVAs and push UPDATEs themselves (or answer MISS messages).
// Also here: Child (a process we started, e.g. the `vhostlab backend` CLI or dpdk-testpmd,
// stopped with a signal and killed after a bound) and BackendRows (parses the counter table the
// CLI prints when it stops).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/backend/backend.hpp"
#include "core/base/unique_fd.hpp"
#include "core/protocol/channel.hpp"
#include "core/virtio/split_ring.hpp"

namespace vhostlab::backend::testing {

using protocol::Bit;
using protocol::Request;

inline constexpr uint64_t kGpa = 0x4000'0000;
inline constexpr uint64_t kUaddr = 0x7f12'0000'0000;
inline constexpr uint64_t kMemSize = 8 << 20;
inline constexpr int kTimeoutMs = 10000;  // bound on every wait; never a performance assertion

inline std::string TempDir() {
  char tmpl[] = "/tmp/vhostlab-test.XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  return d ? d : "/tmp";
}

// A backend on a fresh socket path.
struct BackendUnderTest {
  explicit BackendUnderTest(DeviceMode mode = DeviceMode::kLoopback, uint32_t pairs = 1,
                            const std::string& design = "reference",
                            const std::string& record = "", PollMode poll = PollMode::kAdaptive) {
    dir = TempDir();
    BackendOptions o;
    o.socket_path = dir + "/backend.sock";
    o.mode = mode;
    o.queue_pairs = pairs;
    o.iotlb = design;
    o.record_path = record;
    o.poll = poll;
    auto b = CreateBackend(o);
    EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
    backend = std::move(*b);
    Status s = backend->Start();
    EXPECT_TRUE(s.ok()) << s.message();
    path = o.socket_path;
  }
  ~BackendUnderTest() {
    backend->Stop();
    ::rmdir(dir.c_str());
  }
  std::string dir, path;
  std::unique_ptr<Backend> backend;
};

// Waits (bounded) until `pred` holds; returns whether it did.
inline bool WaitFor(const std::function<bool()>& pred, int timeout_ms = kTimeoutMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A child process we started, with stdout+stderr in a file; killed if still running at the end.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& out_path) : out_path_(out_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (Running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool Running() {
    if (exited_) return false;
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
    }
    return !exited_;
  }
  // Sends `sig` and waits (bounded) for the exit; SIGKILL after the bound.
  int Stop(int sig, int timeout_ms = 20000) {
    if (Running()) ::kill(pid_, sig);
    if (!WaitFor([&] { return !Running(); }, timeout_ms)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
    }
    return status_;
  }
  std::string Output() const {
    std::ifstream f(out_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::string out_path_;
  bool exited_ = false;
  int status_ = -1;
};

// Parses every queue pair's row of the backend's counter table.
inline std::vector<std::map<std::string, uint64_t>> BackendRows(const std::string& out, uint32_t n) {
  std::vector<std::map<std::string, uint64_t>> rows(n);
  std::istringstream in(out);
  std::string line;
  std::vector<std::string> header;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> cols;
    for (std::string c; ls >> c;) cols.push_back(c);
    if (!cols.empty() && cols[0] == "qp") {
      header = cols;
    } else if (!header.empty() && cols.size() == header.size()) {
      const uint32_t qp = static_cast<uint32_t>(std::stoul(cols[0]));
      if (qp < n)
        for (std::size_t i = 1; i < cols.size(); ++i) rows[qp][header[i]] = std::stoull(cols[i]);
    }
  }
  return rows;
}

// Driver side of one split ring living in guest memory at offset `off`.
struct DriverQueue {
  uint32_t index = 0;
  uint32_t num = 0;
  uint64_t off = 0;  // offset in guest memory of the desc table; avail and used follow
  virtio::Desc* desc = nullptr;
  virtio::Avail* avail = nullptr;
  virtio::Used* used = nullptr;
  uint16_t avail_idx = 0;
  uint16_t used_seen = 0;
  uint16_t next_desc = 0;
  UniqueFd kick, call;

  uint64_t desc_off() const { return off; }
  uint64_t avail_off() const { return off + virtio::DescBytes(num); }
  uint64_t used_off() const { return (avail_off() + virtio::AvailBytes(num) + 3) & ~uint64_t{3}; }
  static uint64_t Footprint(uint32_t num) {
    return virtio::DescBytes(num) + virtio::AvailBytes(num) + 4 + virtio::UsedBytes(num);
  }

  // Writes a chain of descriptors (addr, len, writable) and makes it available; returns head.
  struct Seg {
    uint64_t addr;
    uint32_t len;
    bool write;
  };
  uint16_t Post(const std::vector<Seg>& segs, bool notify = true) {
    const uint16_t head = next_desc;
    for (std::size_t i = 0; i < segs.size(); ++i) {
      const uint16_t d = static_cast<uint16_t>((head + i) % num);
      desc[d].addr = segs[i].addr;
      desc[d].len = segs[i].len;
      desc[d].flags = static_cast<uint16_t>((segs[i].write ? virtio::kDescFWrite : 0) |
                                            (i + 1 < segs.size() ? virtio::kDescFNext : 0));
      desc[d].next = static_cast<uint16_t>((head + i + 1) % num);
    }
    next_desc = static_cast<uint16_t>((head + segs.size()) % num);
    PostHead(head, notify);
    return head;
  }
  void PostHead(uint16_t head, bool notify = true) {
    avail->ring[avail_idx % num] = head;
    ++avail_idx;
    std::atomic_ref<uint16_t>(avail->idx).store(avail_idx, std::memory_order_release);
    if (notify) Kick();
  }
  void Kick() {
    uint64_t one = 1;
    (void)!::write(kick.get(), &one, sizeof(one));
  }
  uint16_t UsedIdx() const {
    return std::atomic_ref<uint16_t>(used->idx).load(std::memory_order_acquire);
  }
  bool WaitUsed(uint16_t count, int timeout_ms = kTimeoutMs) {
    const uint16_t target = static_cast<uint16_t>(used_seen + count);
    return WaitFor([&] { return static_cast<int16_t>(UsedIdx() - target) >= 0; }, timeout_ms);
  }
  virtio::UsedElem TakeUsed() {
    virtio::UsedElem e = used->ring[used_seen % num];
    ++used_seen;
    return e;
  }
};

class TestFrontend {
 public:
  explicit TestFrontend(const std::string& path) {
    auto fd = protocol::ConnectUnix(path, kTimeoutMs);
    EXPECT_TRUE(fd.ok()) << (fd.ok() ? "" : fd.error().message);
    if (fd) chan_ = protocol::Channel(std::move(*fd));
    mem_fd_ = UniqueFd(::memfd_create("vhostlab-test-guest", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(mem_fd_.get(), kMemSize), 0);
    void* p = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd_.get(), 0);
    EXPECT_NE(p, MAP_FAILED);
    mem_ = static_cast<uint8_t*>(p);
  }
  ~TestFrontend() {
    StopMissServer();
    if (mem_) ::munmap(mem_, kMemSize);
  }

  protocol::Channel& channel() { return chan_; }
  uint8_t* mem() { return mem_; }
  int mem_fd() const { return mem_fd_.get(); }

  // ---- raw messages ----
  Status Send(Request r, uint32_t flags, const void* payload, uint32_t size,
              std::vector<int> fds = {}) {
    return chan_.Send(static_cast<uint32_t>(r), flags, payload, size, fds);
  }
  template <typename T>
  Status SendP(Request r, const T& payload, bool need_reply = false, std::vector<int> fds = {}) {
    return Send(r, protocol::kVersion | (need_reply ? protocol::kFlagNeedReply : 0), &payload,
                sizeof(T), fds);
  }
  Result<protocol::Message> Receive(int timeout_ms = kTimeoutMs) { return chan_.Receive(timeout_ms); }

  // Sends with need_reply and returns the u64 in the reply (REPLY_ACK / IOTLB / GET_*).
  template <typename T>
  Result<uint64_t> Call(Request r, const T& payload, std::vector<int> fds = {},
                        bool need_reply = true) {
    std::lock_guard<std::mutex> lock(call_mu_);
    if (Status s = SendP(r, payload, need_reply, fds); !s.ok()) return s.error();
    return ReadU64Reply(r);
  }
  Result<uint64_t> CallEmpty(Request r, std::vector<int> fds = {}) {
    std::lock_guard<std::mutex> lock(call_mu_);
    if (Status s = Send(r, protocol::kVersion | protocol::kFlagNeedReply, nullptr, 0, fds);
        !s.ok())
      return s.error();
    return ReadU64Reply(r);
  }
  Result<uint64_t> GetU64(Request r) {
    std::lock_guard<std::mutex> lock(call_mu_);
    if (Status s = Send(r, protocol::kVersion, nullptr, 0); !s.ok()) return s.error();
    return ReadU64Reply(r);
  }
  Result<uint64_t> ReadU64Reply(Request r) {
    auto m = chan_.Receive(kTimeoutMs);
    if (!m) return m.error();
    if (m->request() != static_cast<uint32_t>(r))
      return Error{"reply to request " + std::to_string(m->request()) + ", expected " +
                   std::to_string(static_cast<uint32_t>(r))};
    if (!m->is_reply()) return Error{"reply without the reply flag"};
    if (m->header.size != 8) return Error{"reply of " + std::to_string(m->header.size) + " bytes"};
    uint64_t v;
    std::memcpy(&v, m->payload.data(), 8);
    return v;
  }
  // True when the backend answers GET_FEATURES: the session is alive and in sync.
  bool Alive() {
    auto f = GetU64(Request::kGetFeatures);
    return f.ok() && (*f & Bit(protocol::feature::kVersion1));
  }

  // ---- set-up steps ----
  uint64_t ProtocolFeatures() const {
    return Bit(protocol::protocol_feature::kReplyAck) | Bit(protocol::protocol_feature::kBackendReq) |
           Bit(protocol::protocol_feature::kMq);
  }
  protocol::MemoryTable OneRegion() const {
    protocol::MemoryTable t{};
    t.nregions = 1;
    t.regions[0] = {kGpa, kMemSize, kUaddr, 0};
    return t;
  }
  static uint32_t TableSize(uint32_t n) { return 8 + 32 * n; }

  Result<uint64_t> SetMemTable() {
    std::lock_guard<std::mutex> lock(call_mu_);
    const protocol::MemoryTable t = OneRegion();
    if (Status s = Send(Request::kSetMemTable, protocol::kVersion | protocol::kFlagNeedReply, &t,
                        TableSize(1), {mem_fd_.get()});
        !s.ok())
      return s.error();
    return ReadU64Reply(Request::kSetMemTable);
  }

  // Full negotiation: protocol features, features, owner, memory, backend channel.
  // `extra`: more virtio features to ack (EVENT_IDX, MRG_RXBUF).
  void Setup(bool iommu, bool indirect = true, uint64_t extra = 0) {
    ASSERT_TRUE(Alive());
    ASSERT_TRUE(SendP(Request::kSetProtocolFeatures, protocol::U64Payload{ProtocolFeatures()}).ok());
    uint64_t f = Bit(protocol::feature::kVersion1) | Bit(protocol::feature::kProtocolFeatures) | extra;
    if (iommu) f |= Bit(protocol::feature::kIommuPlatform);
    if (indirect) f |= Bit(protocol::feature::kRingIndirectDesc);
    auto r = Call(Request::kSetFeatures, protocol::U64Payload{f});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(*r, 0u);
    r = CallEmpty(Request::kSetOwner);
    ASSERT_TRUE(r.ok() && *r == 0);
    r = SetMemTable();
    ASSERT_TRUE(r.ok() && *r == 0) << (r.ok() ? "nonzero" : r.error().message);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    backend_side_ = UniqueFd(sv[0]);
    backend_chan_ = protocol::Channel(UniqueFd(sv[1]));
    r = CallEmpty(Request::kSetBackendReqFd, {backend_side_.get()});
    ASSERT_TRUE(r.ok() && *r == 0);
    backend_side_.Reset();
  }

  protocol::Channel& backend_channel() { return backend_chan_; }

  // ---- queues ----
  // Lays queue `index` out at guest offset `off`; ring addresses as the backend must see them:
  // `addr_of(offset)` (uaddr without IOMMU, an IOVA with it).
  DriverQueue& AddQueue(uint32_t index, uint32_t num, uint64_t off) {
    auto q = std::make_unique<DriverQueue>();
    q->index = index;
    q->num = num;
    q->off = off;
    std::memset(mem_ + off, 0, DriverQueue::Footprint(num));
    q->desc = reinterpret_cast<virtio::Desc*>(mem_ + q->desc_off());
    q->avail = reinterpret_cast<virtio::Avail*>(mem_ + q->avail_off());
    q->used = reinterpret_cast<virtio::Used*>(mem_ + q->used_off());
    q->kick = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    q->call = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    queues_.push_back(std::move(q));
    return *queues_.back();
  }

  // Sends NUM, ADDR, BASE, CALL, KICK, ENABLE for `q`, ring addresses mapped by `addr_of`.
  // `enable` false leaves out ENABLE (QEMU enables rings before SET_FEATURES, not here).
  void StartQueue(DriverQueue& q, const std::function<uint64_t(uint64_t)>& addr_of,
                  bool enable = true) {
    auto ok = [](Result<uint64_t> r) { return r.ok() && *r == 0; };
    ASSERT_TRUE(ok(Call(Request::kSetVringNum, protocol::VringState{q.index, q.num})));
    protocol::VringAddr a{};
    a.index = q.index;
    a.desc_user_addr = addr_of(q.desc_off());
    a.avail_user_addr = addr_of(q.avail_off());
    a.used_user_addr = addr_of(q.used_off());
    ASSERT_TRUE(ok(Call(Request::kSetVringAddr, a)));
    ASSERT_TRUE(ok(Call(Request::kSetVringBase, protocol::VringState{q.index, 0})));
    ASSERT_TRUE(ok(Call(Request::kSetVringCall, protocol::U64Payload{q.index}, {q.call.get()})));
    ASSERT_TRUE(ok(Call(Request::kSetVringKick, protocol::U64Payload{q.index}, {q.kick.get()})));
    if (enable) {
      ASSERT_TRUE(ok(Call(Request::kSetVringEnable, protocol::VringState{q.index, 1})));
    }
  }

  static uint64_t Uaddr(uint64_t off) { return kUaddr + off; }
  static uint64_t Gpa(uint64_t off) { return kGpa + off; }

  // IOTLB UPDATE / INVALIDATE with need_reply; returns the backend's u64 answer.
  Result<uint64_t> Update(uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm) {
    return Call(Request::kIotlbMsg, protocol::IotlbMsg::Update(iova, size, uaddr, perm));
  }
  Result<uint64_t> Invalidate(uint64_t iova, uint64_t size) {
    return Call(Request::kIotlbMsg, protocol::IotlbMsg::Invalidate(iova, size));
  }

  // Serves MISS messages from the backend channel on a thread, like a vIOMMU: `resolve(iova,
  // perm)` returns {iova_page, size, uaddr, perm} to push as an UPDATE (size 0: ignore).
  struct Mapping {
    uint64_t iova, size, uaddr;
    uint8_t perm;
  };
  void StartMissServer(std::function<Mapping(uint64_t, uint8_t)> resolve) {
    miss_stop_ = false;
    miss_thread_ = std::thread([this, resolve] {
      while (!miss_stop_) {
        auto m = backend_chan_.Receive(20);
        if (!m) continue;
        if (m->request() != static_cast<uint32_t>(protocol::BackendRequest::kIotlbMsg)) continue;
        protocol::IotlbMsg msg;
        std::memcpy(&msg, m->payload.data(), sizeof(msg));
        if (msg.type == static_cast<uint8_t>(protocol::IotlbType::kMiss)) {
          ++misses_seen;
          const Mapping map = resolve(msg.iova, msg.perm);
          if (map.size) (void)Update(map.iova, map.size, map.uaddr, map.perm);
        } else if (msg.type == static_cast<uint8_t>(protocol::IotlbType::kAccessFail)) {
          ++access_fails_seen;
        }
      }
    });
  }
  void StopMissServer() {
    miss_stop_ = true;
    if (miss_thread_.joinable()) miss_thread_.join();
  }
  std::atomic<uint64_t> misses_seen{0}, access_fails_seen{0};

 private:
  protocol::Channel chan_;
  std::mutex call_mu_;
  UniqueFd mem_fd_;
  uint8_t* mem_ = nullptr;
  UniqueFd backend_side_;
  protocol::Channel backend_chan_;
  std::vector<std::unique_ptr<DriverQueue>> queues_;
  std::thread miss_thread_;
  std::atomic<bool> miss_stop_{false};
};

}  // namespace vhostlab::backend::testing
