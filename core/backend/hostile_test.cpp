// Hostile peers (ctest label `hostile`): each test plays one thing a buggy or malicious
// front-end or guest can do to the real `vhostlab backend` process, over its real Unix socket,
// with real pipes, eventfds and memfds. Afterwards the backend must still be running, must have
// answered what it owed (INVALIDATE replies, GET_VRING_BASE), and a fresh, well-behaved
// front-end must get 64 frames back byte-exact. Nothing here asserts a speed; every wait is
// bounded.
//
// VHOSTLAB_CLI_UNDER_TEST (environment) runs the tests against another build of the CLI, e.g.
// an older one, to show which attacks it does not survive.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/backend/test_frontend.hpp"
#include "core/backend/test_rig.hpp"

namespace vhostlab::backend {
namespace {

using namespace testing;  // NOLINT: test helpers

std::string Cli() {
  const char* e = std::getenv("VHOSTLAB_CLI_UNDER_TEST");
  return e && *e ? e : VHOSTLAB_CLI;
}

// Resident set of `pid` in KiB (VmRSS), 0 when unreadable.
uint64_t RssKiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

class HostileTest : public ::testing::Test {
 protected:
  void StartBackend(std::vector<std::string> extra = {}) {
    dir_ = TempDir();
    sock_ = dir_ + "/backend.sock";
    std::vector<std::string> argv = {Cli(), "backend", "--socket", sock_, "--iotlb", "hash"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    backend_ = std::make_unique<Child>(argv, dir_ + "/backend.log");
    struct stat st;
    ASSERT_TRUE(WaitFor([&] { return ::stat(sock_.c_str(), &st) == 0 || !backend_->Running(); }))
        << "no socket";
    ASSERT_TRUE(backend_->Running()) << backend_->Output();
  }
  void SetUp() override { StartBackend(); }
  void TearDown() override {
    if (backend_) backend_->Stop(SIGTERM);
    if (HasFailure() && backend_) std::fprintf(stderr, "backend log:\n%s\n", backend_->Output().c_str());
  }

  // A well-behaved front-end (IOMMU on, misses answered) gets 64 frames back byte-exact.
  void ExpectServesAFreshFrontend() {
    ASSERT_TRUE(backend_->Running()) << "the backend died:\n" << backend_->Output();
    Rig rig(sock_, /*iommu_on=*/true);
    rig.Start(true, MapMissedPage);
    rig.LoopbackAndVerify(64, 7);
    rig.fe.StopMissServer();
    ASSERT_TRUE(backend_->Running()) << backend_->Output();
  }

  // NUM, ADDR, BASE, CALL, KICK, ENABLE for `q` with the fds `q` holds (IOMMU off: ring
  // addresses are uaddrs). Returns the requests refused or unanswered, e.g. "SET_VRING_CALL=1 ".
  static std::string StartQueueRaw(TestFrontend& fe, DriverQueue& q) {
    std::string out;
    auto note = [&](const char* name, Result<uint64_t> r) {
      if (!r.ok()) out += std::string(name) + "=no-reply ";
      else if (*r != 0) out += std::string(name) + "=" + std::to_string(*r) + " ";
    };
    note("SET_VRING_NUM", fe.Call(Request::kSetVringNum, protocol::VringState{q.index, q.num}));
    protocol::VringAddr a{};
    a.index = q.index;
    a.desc_user_addr = TestFrontend::Uaddr(q.desc_off());
    a.avail_user_addr = TestFrontend::Uaddr(q.avail_off());
    a.used_user_addr = TestFrontend::Uaddr(q.used_off());
    note("SET_VRING_ADDR", fe.Call(Request::kSetVringAddr, a));
    note("SET_VRING_BASE", fe.Call(Request::kSetVringBase, protocol::VringState{q.index, 0}));
    note("SET_VRING_CALL",
         fe.Call(Request::kSetVringCall, protocol::U64Payload{q.index}, {q.call.get()}));
    note("SET_VRING_KICK",
         fe.Call(Request::kSetVringKick, protocol::U64Payload{q.index}, {q.kick.get()}));
    note("SET_VRING_ENABLE", fe.Call(Request::kSetVringEnable, protocol::VringState{q.index, 1}));
    return out;
  }

  // IOMMU off, both queues started with the rig's own eventfds: every step must be accepted.
  static void StartPlainQueues(Rig& rig) {
    rig.fe.Setup(false);
    rig.AddQueues();
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "");
  }

  // Posts `n` packets of 1000 bytes through loopback without waiting for them (IOMMU off).
  static void PostPackets(Rig& rig, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t slot = i % 64;
      rig.rx->Post({{TestFrontend::Gpa(kRxBufs + slot * kSlot), 2048, true}});
      std::memset(rig.fe.mem() + kTxBufs + slot * kSlot, 0, kHdr);
      rig.tx->Post({{TestFrontend::Gpa(kTxBufs + slot * kSlot), static_cast<uint32_t>(kHdr + 1000),
                     false}});
    }
  }

  std::string dir_, sock_;
  std::unique_ptr<Child> backend_;
};

UniqueFd PipeWriteEndWithClosedReader() {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);
  return UniqueFd(p[1]);
}

// A call fd that is the write end of a pipe whose reader has closed: the first interrupt used
// to kill the backend with SIGPIPE. Only eventfds are accepted as call fds now.
TEST_F(HostileTest, CallFdIsAPipeWhoseReaderClosed) {
  {
    Rig rig(sock_, false);
    rig.fe.Setup(false);
    rig.AddQueues();
    rig.rx->call = PipeWriteEndWithClosedReader();
    rig.tx->call = PipeWriteEndWithClosedReader();
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "SET_VRING_CALL=1 ");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "SET_VRING_CALL=1 ");
    PostPackets(rig, 32);
    EXPECT_TRUE(rig.rx->WaitUsed(32)) << "traffic still flows (the driver polls)";
    EXPECT_TRUE(rig.fe.Alive());
  }
  ExpectServesAFreshFrontend();
}

// A call fd that is a pipe nobody drains: once 64 KiB were written, every further interrupt
// blocked the worker inside a burst, so the next INVALIDATE's grace period never ended.
TEST_F(HostileTest, CallFdIsAPipeNobodyDrains) {
  {
    Rig rig(sock_, false);
    rig.fe.Setup(false);
    rig.AddQueues();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd reader(p[0]);
    rig.rx->call = UniqueFd(p[1]);
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "SET_VRING_CALL=1 ");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "");
    for (int round = 0; round < 100; ++round) {
      PostPackets(rig, 64);
      ASSERT_TRUE(rig.rx->WaitUsed(64)) << "round " << round;
      rig.rx->used_seen = rig.rx->UsedIdx();
      rig.tx->used_seen = rig.tx->UsedIdx();
    }
    auto r = rig.fe.Invalidate(0x1000, 0x1000);
    ASSERT_TRUE(r.ok()) << "INVALIDATE unanswered: " << r.error().message;
  }
  ExpectServesAFreshFrontend();
}

// A call eventfd someone filled to its maximum count (0xfffffffffffffffe) and that is blocking:
// a write of 1 would block forever. Call fds are made non-blocking; a full counter is left as
// it is (the driver has a pending interrupt anyway).
TEST_F(HostileTest, CallEventfdAtItsMaximumCount) {
  {
    Rig rig(sock_, false);
    rig.fe.Setup(false);
    rig.AddQueues();
    rig.rx->call = UniqueFd(::eventfd(0, EFD_CLOEXEC));  // blocking
    const uint64_t full = 0xfffffffffffffffeull;
    ASSERT_EQ(::write(rig.rx->call.get(), &full, 8), 8);
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "");
    PostPackets(rig, 64);
    ASSERT_TRUE(rig.rx->WaitUsed(64));
    auto r = rig.fe.Invalidate(0x1000, 0x1000);
    ASSERT_TRUE(r.ok()) << "INVALIDATE unanswered: " << r.error().message;
  }
  ExpectServesAFreshFrontend();
}

// A kick fd that is a blocking pipe: the drain loop's second read() blocked the worker, and
// every pause (SET_VRING_*, SET_MEM_TABLE, disconnect) waited for it forever.
TEST_F(HostileTest, KickFdIsABlockingPipe) {
  {
    Rig rig(sock_, false);
    rig.fe.Setup(false);
    rig.AddQueues();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd reader(p[0]);
    UniqueFd writer(p[1]);
    rig.tx->kick = std::move(reader);
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "SET_VRING_KICK=1 ");
    ASSERT_EQ(::write(writer.get(), "kick-kick", 9), 9);
    EXPECT_TRUE(rig.fe.Alive());
  }
  ExpectServesAFreshFrontend();
}

// A blocking kick eventfd: accepted (QEMU's are non-blocking, others need not be), made
// non-blocking, and read once per wake-up.
TEST_F(HostileTest, KickFdIsABlockingEventfd) {
  {
    Rig rig(sock_, false);
    rig.fe.Setup(false);
    rig.AddQueues();
    rig.rx->kick = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    rig.tx->kick = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "");
    for (int round = 0; round < 20; ++round) {
      PostPackets(rig, 16);
      ASSERT_TRUE(rig.rx->WaitUsed(16)) << "round " << round;
      rig.rx->used_seen = rig.rx->UsedIdx();
      std::this_thread::sleep_for(std::chrono::milliseconds(round % 4 ? 0 : 60));  // let it sleep
    }
    // Pauses still complete: every one of these used to wait for a blocked worker.
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
  }
  ExpectServesAFreshFrontend();
}

// avail->idx jumps 5000 ahead on a 64-entry ring. QEMU calls that fatal for the queue ("Guest
// moved index"); so does the backend now: nothing is consumed, the queue is marked broken and
// its err eventfd signalled, and the device keeps serving.
TEST_F(HostileTest, AvailIndexJumpsPastTheRing) {
  {
    Rig rig(sock_, false);
    rig.queue_size = 64;
    rig.fe.Setup(false);
    rig.AddQueues();
    UniqueFd err(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    ASSERT_EQ(rig.fe.Call(Request::kSetVringErr, protocol::U64Payload{1}, {err.get()}).value(), 0u);
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "");
    PostPackets(rig, 4);
    ASSERT_TRUE(rig.rx->WaitUsed(4));
    std::atomic_ref<uint16_t>(rig.tx->avail->idx).store(5004, std::memory_order_release);
    rig.tx->Kick();
    ASSERT_TRUE(WaitFor([&] {
      uint64_t v;
      return ::read(err.get(), &v, 8) == 8;
    })) << "err eventfd not signalled";
    EXPECT_EQ(rig.tx->UsedIdx(), 4) << "nothing consumed past the jump";
    protocol::VringState base{};
    ASSERT_TRUE(rig.fe.SendP(Request::kGetVringBase, protocol::VringState{1, 0}).ok());
    auto m = rig.fe.Receive();
    ASSERT_TRUE(m.ok());
    std::memcpy(&base, m->payload.data(), sizeof(base));
    EXPECT_EQ(base.num, 4u);
  }
  ExpectServesAFreshFrontend();
}

// The guest memory file shrinks to 0 after SET_MEM_TABLE (an unsealed memfd, or hugetlbfs):
// the next worker access used to kill the backend with SIGBUS.
TEST_F(HostileTest, GuestMemoryShrinksUnderTheBackend) {
  {
    Rig rig(sock_, false);
    rig.fe.Setup(false);
    rig.AddQueues();
    UniqueFd err(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    ASSERT_EQ(rig.fe.Call(Request::kSetVringErr, protocol::U64Payload{1}, {err.get()}).value(), 0u);
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.rx), "");
    EXPECT_EQ(StartQueueRaw(rig.fe, *rig.tx), "");
    PostPackets(rig, 4);
    ASSERT_TRUE(rig.rx->WaitUsed(4));
    // Take the memory away: the worker's next look at the rings faults.
    ASSERT_EQ(::ftruncate(rig.fe.mem_fd(), 0), 0);
    uint64_t one = 1;
    ASSERT_EQ(::write(rig.tx->kick.get(), &one, 8), 8);
    ASSERT_TRUE(WaitFor([&] {
      uint64_t v;
      return ::read(err.get(), &v, 8) == 8 || !backend_->Running();
    })) << "err eventfd not signalled";
    ASSERT_TRUE(backend_->Running()) << backend_->Output();
    EXPECT_TRUE(rig.fe.Alive());
    ASSERT_EQ(::ftruncate(rig.fe.mem_fd(), kMemSize), 0);  // so the test's own unmap is clean
  }
  EXPECT_NE(backend_->Output().find("guest memory"), std::string::npos) << "reported";
  ExpectServesAFreshFrontend();
}

// The RX buffers are mapped read-only (each RX chain is an ACCESS_FAIL) and the front-end never
// reads the backend channel: the blocking ACCESS_FAIL sends used to fill the socket and block
// the worker, and with it every INVALIDATE.
TEST_F(HostileTest, RxReadOnlyAndTheBackendChannelIsNeverRead) {
  {
    Rig rig(sock_, true);
    rig.fe.Setup(true);
    rig.MapRings();
    rig.Map(kTxBufs, 64 * kSlot, protocol::kIotlbPermRo);
    rig.Map(kRxBufs, 64 * kSlot, protocol::kIotlbPermRo);
    rig.AddQueues();
    rig.StartQueues();
    // One TX packet waits for an RX buffer it can write; every RX chain is refused meanwhile.
    rig.tx->Post({{rig.Addr(kTxBufs), static_cast<uint32_t>(kHdr + 100), false}});
    uint32_t sent = 0;
    while (sent < 20000) {
      for (uint32_t i = 0; i < 64; ++i)
        rig.rx->Post({{rig.Addr(kRxBufs + i * kSlot), 2048, true}});
      if (!rig.rx->WaitUsed(64, 2000)) break;
      rig.rx->used_seen = rig.rx->UsedIdx();
      sent += 64;
      if (sent % 1280 == 0) {
        auto r = rig.fe.Invalidate(kIovaBase + 0x700000, 0x1000);
        ASSERT_TRUE(r.ok()) << "INVALIDATE unanswered after " << sent << " RX chains";
      }
    }
    auto r = rig.fe.Invalidate(kIovaBase + 0x700000, 0x1000);
    ASSERT_TRUE(r.ok()) << "INVALIDATE unanswered: " << r.error().message;
  }
  ExpectServesAFreshFrontend();
}

// Half a header, then silence: the session used to wait in recv() forever, and with one
// front-end served at a time, nobody else was served either. The peer is dropped after the
// backend's peer timeout.
TEST_F(HostileTest, HalfAHeaderThenSilence) {
  auto fd = protocol::ConnectUnix(sock_, kTimeoutMs);
  ASSERT_TRUE(fd.ok());
  const uint32_t half[2] = {static_cast<uint32_t>(Request::kGetFeatures), protocol::kVersion};
  ASSERT_EQ(::send(fd->get(), half, 6, MSG_NOSIGNAL), 6);
  ExpectServesAFreshFrontend();
}

TEST_F(HostileTest, HalfAPayloadThenSilence) {
  auto fd = protocol::ConnectUnix(sock_, kTimeoutMs);
  ASSERT_TRUE(fd.ok());
  const uint32_t hdr[3] = {static_cast<uint32_t>(Request::kSetFeatures),
                           protocol::kVersion | protocol::kFlagNeedReply, 8};
  ASSERT_EQ(::send(fd->get(), hdr, 12, MSG_NOSIGNAL), 12);
  ASSERT_EQ(::send(fd->get(), "abc", 3, MSG_NOSIGNAL), 3);
  ExpectServesAFreshFrontend();
}

// A front-end that sends requests with replies and never reads them: the backend's reply
// sends are bounded too.
TEST_F(HostileTest, RepliesAreNeverRead) {
  auto fd = protocol::ConnectUnix(sock_, kTimeoutMs);
  ASSERT_TRUE(fd.ok());
  protocol::Channel ch(std::move(*fd));
  timeval tv{1, 0};  // our own sends stop once the backend stops reading
  ::setsockopt(ch.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int small = 4096;
  ::setsockopt(ch.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  for (int i = 0; i < 20000; ++i) {
    if (!ch.Send(static_cast<uint32_t>(Request::kGetFeatures), protocol::kVersion, nullptr, 0).ok())
      break;
  }
  ExpectServesAFreshFrontend();
}

// 200,000 one-byte UPDATEs, each in its own 2 MiB block: every one used to be kept (in the
// master copy and in every worker's replica), +31 MiB, and the memory stayed after the
// disconnect. Past --iotlb-max-entries an UPDATE is refused (non-zero reply) and counted.
TEST_F(HostileTest, UpdateFloodStaysUnderTheEntryCap) {
  backend_->Stop(SIGTERM);
  StartBackend({"--iotlb-max-entries", "65536"});
  const uint64_t rss_before = RssKiB(backend_->pid());
  uint64_t rss_flood = 0;
  {
    TestFrontend fe(sock_);
    fe.Setup(true);
    // Without need_reply, so the flood is not paced by round trips; one GET at the end syncs.
    for (uint64_t i = 0; i < 200000; ++i) {
      const auto u = protocol::IotlbMsg::Update(i << 21, 1, TestFrontend::Uaddr(i % kMemSize),
                                                protocol::kIotlbPermRw);
      ASSERT_TRUE(fe.SendP(Request::kIotlbMsg, u).ok()) << "UPDATE " << i;
    }
    ASSERT_TRUE(fe.Alive());
    auto r = fe.Update(1ull << 40, 0x1000, TestFrontend::Uaddr(0), protocol::kIotlbPermRw);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 1u) << "an UPDATE past the cap is refused";
    rss_flood = RssKiB(backend_->pid());
  }
  ExpectServesAFreshFrontend();
  const uint64_t rss_after = RssKiB(backend_->pid());
  std::fprintf(stderr, "RSS KiB: before %lu, flooded %lu, after the disconnect %lu\n",
               static_cast<unsigned long>(rss_before), static_cast<unsigned long>(rss_flood),
               static_cast<unsigned long>(rss_after));
  // The bound stated in the README's threat model: 65536 entries cost well under 32 MiB with
  // one queue pair, and the memory goes back when the front-end leaves.
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's allocator (quarantine, shadow memory) keeps what is freed: the bound is
  // the release build's; here the cap itself is what is checked.
#else
  EXPECT_LT(rss_flood, rss_before + 32 * 1024);
  EXPECT_LT(rss_after, rss_before + 8 * 1024);
#endif
  backend_->Stop(SIGTERM);
  EXPECT_NE(backend_->Output().find("IOTLB is full"), std::string::npos);
}

// A TX frame larger than 64 KiB + the header is malformed (virtio-net without GSO): it is
// refused, not copied.
TEST_F(HostileTest, GiantTxFramesAreRefused) {
  {
    Rig rig(sock_, false);
    StartPlainQueues(rig);
    rig.rx->Post({{TestFrontend::Gpa(0x400000), 0x200000, true}});
    rig.tx->Post({{TestFrontend::Gpa(0x100000), 0x100000, false}});
    ASSERT_TRUE(rig.tx->WaitUsed(1));
    EXPECT_EQ(rig.tx->TakeUsed().len, 0u);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(rig.rx->UsedIdx(), 0) << "the RX buffer is not consumed by a refused frame";
  }
  ExpectServesAFreshFrontend();
}

// The RX buffer overlaps the TX buffer it receives from (a guest may do that): the copy must be
// a memmove (AddressSanitizer flags an overlapping memcpy).
TEST_F(HostileTest, RxBufferOverlapsTheTxBuffer) {
  {
    Rig rig(sock_, false);
    StartPlainQueues(rig);
    for (int i = 0; i < 8; ++i) {
      rig.rx->Post({{TestFrontend::Gpa(kTxBufs + 100), 2048, true}});
      rig.tx->Post({{TestFrontend::Gpa(kTxBufs), static_cast<uint32_t>(kHdr + 1500), false}});
    }
    ASSERT_TRUE(rig.rx->WaitUsed(8));
  }
  ExpectServesAFreshFrontend();
}

// A zero-length device-writable descriptor followed by a readable one is a malformed chain.
TEST_F(HostileTest, ReadableAfterAZeroLengthWritableIsMalformed) {
  {
    Rig rig(sock_, false);
    StartPlainQueues(rig);
    rig.rx->Post({{TestFrontend::Gpa(kRxBufs), 2048, true}});
    rig.tx->Post({{TestFrontend::Gpa(kTxBufs), 0, true},
                  {TestFrontend::Gpa(kTxBufs), static_cast<uint32_t>(kHdr + 100), false}});
    ASSERT_TRUE(rig.tx->WaitUsed(1));
    EXPECT_EQ(rig.tx->TakeUsed().len, 0u);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(rig.rx->UsedIdx(), 0) << "the malformed chain is not forwarded";
  }
  ExpectServesAFreshFrontend();
}

// Ring addresses whose host pointers are not aligned (a region mapped at an odd mmap_offset):
// atomics on them would be undefined; the ring is refused with a clear error.
TEST_F(HostileTest, MisalignedRingHostPointersAreRefused) {
  {
    TestFrontend fe(sock_);
    ASSERT_TRUE(fe.Alive());
    ASSERT_TRUE(fe.SendP(Request::kSetProtocolFeatures,
                         protocol::U64Payload{fe.ProtocolFeatures()}).ok());
    const uint64_t f = Bit(protocol::feature::kVersion1) | Bit(protocol::feature::kProtocolFeatures);
    ASSERT_EQ(fe.Call(Request::kSetFeatures, protocol::U64Payload{f}).value(), 0u);
    protocol::MemoryTable t = fe.OneRegion();
    t.regions[0].mmap_offset = 2;
    t.regions[0].memory_size = kMemSize - 4096;
    ASSERT_TRUE(fe.Send(Request::kSetMemTable, protocol::kVersion | protocol::kFlagNeedReply, &t,
                        TestFrontend::TableSize(1), {fe.mem_fd()}).ok());
    ASSERT_EQ(fe.ReadU64Reply(Request::kSetMemTable).value(), 0u);
    DriverQueue& rx = fe.AddQueue(0, 64, 0);
    DriverQueue& tx = fe.AddQueue(1, 64, 0x10000);
    EXPECT_EQ(StartQueueRaw(fe, rx), "");
    EXPECT_EQ(StartQueueRaw(fe, tx), "");
    tx.Kick();
    EXPECT_TRUE(WaitFor([&] { return backend_->Output().find("aligned") != std::string::npos; }))
        << "the refusal says why:\n" << backend_->Output();
    EXPECT_TRUE(fe.Alive());
  }
  ExpectServesAFreshFrontend();
}

// MISSes nobody answers (no vIOMMU behind the front-end): the queues wait, the control path
// keeps answering, and the front-end can still leave.
TEST_F(HostileTest, MissesNobodyAnswers) {
  {
    Rig rig(sock_, true);
    rig.fe.Setup(true);
    rig.AddQueues();
    rig.StartQueues();
    for (uint32_t i = 0; i < 32; ++i) {
      rig.rx->Post({{rig.Addr(kRxBufs + i * kSlot), 2048, true}});
      rig.tx->Post({{rig.Addr(kTxBufs + i * kSlot), static_cast<uint32_t>(kHdr + 100), false}});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto r = rig.fe.Invalidate(kIovaBase, 0x1000000);
    ASSERT_TRUE(r.ok()) << "INVALIDATE unanswered: " << r.error().message;
    EXPECT_EQ(rig.rx->UsedIdx(), 0);
  }
  ExpectServesAFreshFrontend();
}

// Descriptors of 1 GiB (far past guest memory) on both queues: refused as malformed, nothing
// copied, the queues keep going.
TEST_F(HostileTest, GigabyteDescriptors) {
  {
    Rig rig(sock_, false);
    StartPlainQueues(rig);
    for (int i = 0; i < 8; ++i) {
      rig.rx->Post({{TestFrontend::Gpa(0), 0x40000000, true}});
      rig.tx->Post({{TestFrontend::Gpa(0), 0x40000000, false}});
    }
    ASSERT_TRUE(rig.tx->WaitUsed(8));
    PostPackets(rig, 4);
    EXPECT_TRUE(rig.fe.Alive());
  }
  ExpectServesAFreshFrontend();
}

// RESET_OWNER rebuilds the device while another thread reads the workers' thread ids (the
// CLI's --once mode polls them): that read used to race with the rebuild.
TEST(HostileInProcessTest, ResetOwnerStormWhileWorkerTidsArePolled) {
  BackendUnderTest be(DeviceMode::kLoopback, 2, "hash");
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop) (void)be.backend->WorkerTids();
  });
  {
    TestFrontend fe(be.path);
    for (int i = 0; i < 2000; ++i)
      ASSERT_TRUE(fe.Send(Request::kResetOwner, protocol::kVersion, nullptr, 0).ok());
    EXPECT_TRUE(fe.Alive());
  }
  stop = true;
  poller.join();
  Rig rig(be.path, true);
  rig.Start(true, MapMissedPage);
  rig.LoopbackAndVerify(64, 3);
  rig.fe.StopMissServer();
}

}  // namespace
}  // namespace vhostlab::backend
