// Message-handler tests: every handler, its malformed inputs, and proof that the backend keeps
// serving afterwards (each refusal is followed by a request that must succeed). Driven over a
// real Unix socket with real memfd memory by TestFrontend (raw messages built by hand).
#include "core/backend/session.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <random>
#include <set>

#include "core/backend/test_frontend.hpp"

namespace vhostlab::backend {
namespace {

using namespace testing;  // NOLINT: test helpers
using protocol::U64Payload;
using protocol::VringAddr;
using protocol::VringState;
namespace pf = protocol::protocol_feature;
namespace vf = protocol::feature;

constexpr uint64_t kFail = 1;

class SessionTest : public ::testing::Test {
 protected:
  BackendUnderTest be_;
  TestFrontend fe_{be_.path};

  // Negotiates protocol features (REPLY_ACK, BACKEND_REQ, MQ) and features (+PROTOCOL_FEATURES).
  void NegotiateReplyAck(bool iommu = true) {
    ASSERT_TRUE(fe_.SendP(Request::kSetProtocolFeatures, U64Payload{fe_.ProtocolFeatures()}).ok());
    uint64_t f = Bit(vf::kVersion1) | Bit(vf::kProtocolFeatures);
    if (iommu) f |= Bit(vf::kIommuPlatform);
    ASSERT_EQ(Ack(fe_.Call(Request::kSetFeatures, U64Payload{f})), 0u);
  }
  static uint64_t Ack(Result<uint64_t> r) {
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : 0xdead;
  }
  uint64_t Errors() const { return be_.backend->Stats().message_errors; }
  // The session still answers, and the refusal before was counted (checked after the answer:
  // a refused message without need_reply is only known to be handled once a later one is).
  void ExpectRefusedAndAlive(uint64_t errors_before) {
    EXPECT_TRUE(fe_.Alive());
    EXPECT_GT(Errors(), errors_before);
  }
};

TEST_F(SessionTest, OffersIommuReplyAckBackendReqAndMq) {
  const uint64_t f = Ack(fe_.GetU64(Request::kGetFeatures));
  EXPECT_EQ(f, OfferedFeatures(1));
  for (int bit : {vf::kVersion1, vf::kIommuPlatform, vf::kProtocolFeatures})
    EXPECT_TRUE(f & Bit(bit)) << bit;
  for (int bit : {vf::kNetFMrgRxbuf, vf::kRingEventIdx})
    EXPECT_TRUE(f & Bit(bit)) << bit << ": offered by default, as QEMU, DPDK and Linux vhost do";
  EXPECT_EQ(OfferedFeatures(1, false, false) & (Bit(vf::kNetFMrgRxbuf) | Bit(vf::kRingEventIdx)),
            0u) << "both can be turned off";
  const uint64_t p = Ack(fe_.GetU64(Request::kGetProtocolFeatures));
  for (int bit : {pf::kReplyAck, pf::kBackendReq, pf::kMq, pf::kStatus})
    EXPECT_TRUE(p & Bit(bit)) << bit;
  EXPECT_FALSE(p & Bit(pf::kLogShmfd)) << "dirty logging is not implemented";
  EXPECT_EQ(Ack(fe_.GetU64(Request::kGetQueueNum)), 1u);
}

TEST(SessionMultiQueueTest, QueueNumAndMqFeatureFollowQueuePairs) {
  BackendUnderTest be(DeviceMode::kLoopback, 4);
  TestFrontend fe(be.path);
  auto n = fe.GetU64(Request::kGetQueueNum);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 4u);
  auto f = fe.GetU64(Request::kGetFeatures);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(*f & Bit(22)) << "VIRTIO_NET_F_MQ offered with several queue pairs";
  // Queue 7 (TX of pair 3) exists, queue 8 does not.
  ASSERT_TRUE(fe.SendP(Request::kSetProtocolFeatures, U64Payload{fe.ProtocolFeatures()}).ok());
  EXPECT_EQ(fe.Call(Request::kSetVringNum, VringState{7, 256}).value(), 0u);
  EXPECT_EQ(fe.Call(Request::kSetVringNum, VringState{8, 256}).value(), kFail);
  EXPECT_TRUE(fe.Alive());
}

TEST_F(SessionTest, SetFeaturesRefusesBitsNotOffered) {
  NegotiateReplyAck();
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetFeatures, U64Payload{Bit(vf::kVersion1) | Bit(vf::kLogAll)})),
            kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, SetProtocolFeaturesRefusesBitsNotOffered) {
  NegotiateReplyAck();
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetProtocolFeatures,
                         U64Payload{Bit(pf::kReplyAck) | Bit(pf::kLogShmfd)})),
            kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, ReplyAckOnlyWhenNegotiated) {
  // Before REPLY_ACK, need_reply on SET_OWNER gets no reply: the next reply must be GET_FEATURES'.
  ASSERT_TRUE(fe_.Send(Request::kSetOwner, protocol::kVersion | protocol::kFlagNeedReply, nullptr, 0).ok());
  EXPECT_TRUE(fe_.Alive());
  NegotiateReplyAck();
  EXPECT_EQ(Ack(fe_.CallEmpty(Request::kSetOwner)), 0u);
}

TEST_F(SessionTest, ShortAndLongPayloadsAreRefused) {
  NegotiateReplyAck();
  uint64_t e = Errors();
  uint32_t four = 1;
  ASSERT_TRUE(fe_.Send(Request::kSetFeatures, protocol::kVersion | protocol::kFlagNeedReply, &four,
                       4).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kSetFeatures)), kFail);
  ExpectRefusedAndAlive(e);
  e = Errors();
  uint8_t sixteen[16] = {};
  ASSERT_TRUE(fe_.Send(Request::kSetVringNum, protocol::kVersion | protocol::kFlagNeedReply,
                       sixteen, sizeof(sixteen)).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kSetVringNum)), kFail);
  ExpectRefusedAndAlive(e);
  e = Errors();
  ASSERT_TRUE(fe_.Send(Request::kSetOwner, protocol::kVersion | protocol::kFlagNeedReply, sixteen,
                       8).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kSetOwner)), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, PayloadOverTheCapIsDiscardedAndRefused) {
  NegotiateReplyAck();
  const uint64_t e = Errors();
  std::vector<uint8_t> big(protocol::kMaxPayload + 100, 0xab);
  ASSERT_TRUE(fe_.Send(Request::kSetFeatures, protocol::kVersion | protocol::kFlagNeedReply,
                       big.data(), static_cast<uint32_t>(big.size())).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kSetFeatures)), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, WrongVersionBitsAreRefused) {
  const uint64_t e = Errors();
  U64Payload p{Bit(vf::kVersion1)};
  for (uint32_t version : {0u, 2u, 3u}) {
    ASSERT_TRUE(fe_.Send(Request::kSetFeatures, version | protocol::kFlagNeedReply, &p, 8).ok());
    EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kSetFeatures)), kFail) << version;
  }
  ExpectRefusedAndAlive(e);
  // A GET_* request is always answered, so a broken front-end does not wait forever.
  ASSERT_TRUE(fe_.Send(Request::kGetFeatures, 0, nullptr, 0).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kGetFeatures)), ~uint64_t{0});
  EXPECT_TRUE(fe_.Alive());
}

TEST_F(SessionTest, UnknownAndUnsupportedIdsAreRefused) {
  uint64_t e = Errors();
  U64Payload p{0};
  ASSERT_TRUE(fe_.Send(static_cast<Request>(999), protocol::kVersion | protocol::kFlagNeedReply, &p,
                       8).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(static_cast<Request>(999))), kFail);
  ExpectRefusedAndAlive(e);
  // Without need_reply: no reply, still refused and counted.
  e = Errors();
  ASSERT_TRUE(fe_.Send(static_cast<Request>(77), protocol::kVersion, &p, 8).ok());
  ExpectRefusedAndAlive(e);
  // Known but not offered: SET_LOG_BASE (with an fd that must be closed), SEND_RARP, GET_CONFIG.
  e = Errors();
  protocol::LogDescription log{4096, 0};
  EXPECT_EQ(Ack(fe_.Call(Request::kSetLogBase, log, {fe_.mem_fd()})), kFail);
  uint8_t mac[8] = {};
  EXPECT_EQ(Ack(fe_.Call(Request::kSendRarp, mac)), kFail);
  EXPECT_EQ(Ack(fe_.Call(Request::kResetDevice, p)), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, FdsOnAMessageThatTakesNoneAreRefused) {
  NegotiateReplyAck();
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringNum, VringState{0, 256}, {fe_.mem_fd()})), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, SetMemTableMapsRegionsAndRefusesBadOnes) {
  NegotiateReplyAck();
  const uint64_t e = Errors();
  protocol::MemoryTable t = fe_.OneRegion();
  auto send = [&](const protocol::MemoryTable& table, uint32_t size, std::vector<int> fds) {
    EXPECT_TRUE(fe_.Send(Request::kSetMemTable, protocol::kVersion | protocol::kFlagNeedReply,
                         &table, size, fds).ok());
    return Ack(fe_.ReadU64Reply(Request::kSetMemTable));
  };
  EXPECT_EQ(send(t, TestFrontend::TableSize(1), {}), kFail) << "missing fd";
  EXPECT_EQ(send(t, TestFrontend::TableSize(1), {fe_.mem_fd(), fe_.mem_fd()}), kFail) << "extra fd";
  protocol::MemoryTable zero = t;
  zero.nregions = 0;
  EXPECT_EQ(send(zero, 8, {}), kFail) << "no regions";
  protocol::MemoryTable truncated = t;
  truncated.nregions = 2;
  EXPECT_EQ(send(truncated, TestFrontend::TableSize(1), {fe_.mem_fd(), fe_.mem_fd()}), kFail)
      << "two regions announced, one in the payload";
  protocol::MemoryTable overlap = t;
  overlap.nregions = 2;
  overlap.regions[1] = {kGpa + 4096, 4096, kUaddr + kMemSize, 0};
  EXPECT_EQ(send(overlap, TestFrontend::TableSize(2), {fe_.mem_fd(), fe_.mem_fd()}), kFail)
      << "GPA overlap";
  protocol::MemoryTable beyond = t;
  beyond.regions[0].mmap_offset = kMemSize;  // past the end of the memfd
  EXPECT_EQ(send(beyond, TestFrontend::TableSize(1), {fe_.mem_fd()}), kFail);
  protocol::MemoryTable empty_region = t;
  empty_region.regions[0].memory_size = 0;
  EXPECT_EQ(send(empty_region, TestFrontend::TableSize(1), {fe_.mem_fd()}), kFail);
  int not_memory = ::eventfd(0, EFD_CLOEXEC);
  EXPECT_EQ(send(t, TestFrontend::TableSize(1), {not_memory}), kFail) << "an fd that cannot be mapped";
  ::close(not_memory);
  EXPECT_GE(Errors(), e + 8);
  EXPECT_EQ(send(t, TestFrontend::TableSize(1), {fe_.mem_fd()}), 0u);
  EXPECT_TRUE(fe_.Alive());
}

TEST_F(SessionTest, MemSlotsAddAndRemoveRegions) {
  NegotiateReplyAck();
  EXPECT_EQ(Ack(fe_.GetU64(Request::kGetMaxMemSlots)), 8u);
  protocol::SingleMemoryRegion r{};
  r.region = {kGpa, kMemSize, kUaddr, 0};
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kAddMemReg, r)), kFail) << "no fd";
  EXPECT_EQ(Ack(fe_.Call(Request::kRemMemReg, r)), kFail) << "no such region";
  ExpectRefusedAndAlive(e);
  EXPECT_EQ(Ack(fe_.Call(Request::kAddMemReg, r, {fe_.mem_fd()})), 0u);
  protocol::SingleMemoryRegion overlapping = r;
  overlapping.region.guest_phys_addr += 0x1000;
  EXPECT_EQ(Ack(fe_.Call(Request::kAddMemReg, overlapping, {fe_.mem_fd()})), kFail) << "overlap";
  // QEMU with N queue pairs adds the same region once per pair: counted, not refused.
  EXPECT_EQ(Ack(fe_.Call(Request::kAddMemReg, r, {fe_.mem_fd()})), 0u) << "the same region";
  // The region is usable: an UPDATE into it is accepted.
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, protocol::kIotlbPermRw)), 0u);
  EXPECT_EQ(Ack(fe_.Call(Request::kRemMemReg, r, {fe_.mem_fd()})), 0u);
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, protocol::kIotlbPermRw)), 0u)
      << "added twice, removed once: still mapped";
  EXPECT_EQ(Ack(fe_.Call(Request::kRemMemReg, r, {fe_.mem_fd()})), 0u);
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, protocol::kIotlbPermRw)), kFail)
      << "uaddr no longer in any region";
  EXPECT_TRUE(fe_.Alive());
}

TEST_F(SessionTest, VringNumAddrBaseValidateTheirInput) {
  NegotiateReplyAck();
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringNum, VringState{2, 256})), kFail) << "no queue 2";
  for (uint32_t bad : {0u, 3u, 100u, 65536u})
    EXPECT_EQ(Ack(fe_.Call(Request::kSetVringNum, VringState{0, bad})), kFail) << bad;
  VringAddr a{};
  a.index = 0;
  a.desc_user_addr = kUaddr + 8;  // not 16-aligned
  a.avail_user_addr = kUaddr + 0x1000;
  a.used_user_addr = kUaddr + 0x2000;
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringAddr, a)), kFail);
  a.desc_user_addr = kUaddr;
  a.flags = 2;  // unknown flag
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringAddr, a)), kFail);
  a.flags = 0;
  a.index = 5;
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringAddr, a)), kFail);
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringBase, VringState{0, 0x10000})), kFail);
  ExpectRefusedAndAlive(e);
  a.index = 1;
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringNum, VringState{1, 256})), 0u);
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringAddr, a)), 0u);
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringBase, VringState{1, 7})), 0u);
}

TEST_F(SessionTest, GetVringBaseStopsTheRingAndAnswersTheBase) {
  NegotiateReplyAck();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringBase, VringState{1, 42})), 0u);
  ASSERT_TRUE(fe_.SendP(Request::kGetVringBase, VringState{1, 0}).ok());
  auto m = fe_.Receive();
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->is_reply());
  ASSERT_EQ(m->header.size, sizeof(VringState));
  VringState s;
  std::memcpy(&s, m->payload.data(), sizeof(s));
  EXPECT_EQ(s.index, 1u);
  EXPECT_EQ(s.num, 42u);
  // A bad index still gets a reply (u64 ~0), so the stream stays in sync.
  const uint64_t e = Errors();
  ASSERT_TRUE(fe_.SendP(Request::kGetVringBase, VringState{9, 0}).ok());
  EXPECT_EQ(Ack(fe_.ReadU64Reply(Request::kGetVringBase)), ~uint64_t{0});
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, KickCallErrCheckIndexBitsAndFds) {
  NegotiateReplyAck();
  int efd = ::eventfd(0, EFD_CLOEXEC);
  for (Request r : {Request::kSetVringKick, Request::kSetVringCall, Request::kSetVringErr}) {
    const uint64_t e = Errors();
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{0})), kFail) << "no fd without the no-fd bit";
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{0x100}, {efd})), kFail) << "fd with the no-fd bit";
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{0}, {efd, efd})), kFail) << "two fds";
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{0x200}, {efd})), kFail) << "unknown bits";
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{3}, {efd})), kFail) << "no queue 3";
    ExpectRefusedAndAlive(e);
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{1}, {efd})), 0u);
    EXPECT_EQ(Ack(fe_.Call(r, U64Payload{0x100})), 0u) << "polling mode";
  }
  ::close(efd);
}

TEST_F(SessionTest, VringEnableNeedsProtocolFeaturesAndABoolean) {
  // No protocol-feature negotiation yet: nothing says the front-end knows PROTOCOL_FEATURES.
  uint64_t e = Errors();
  ASSERT_TRUE(fe_.SendP(Request::kSetVringEnable, VringState{0, 1}, true).ok());
  ExpectRefusedAndAlive(e);
  // QEMU's order: SET_PROTOCOL_FEATURES, then SET_VRING_ENABLE before SET_FEATURES. Legal.
  ASSERT_TRUE(fe_.SendP(Request::kSetProtocolFeatures, U64Payload{fe_.ProtocolFeatures()}).ok());
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringEnable, VringState{0, 1})), 0u);
  NegotiateReplyAck();
  e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringEnable, VringState{0, 2})), kFail);
  ExpectRefusedAndAlive(e);
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringEnable, VringState{0, 1})), 0u);
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringEnable, VringState{0, 0})), 0u);
}

TEST_F(SessionTest, VringEnableRefusedOnceFeaturesAckedWithoutProtocolFeatures) {
  ASSERT_TRUE(fe_.SendP(Request::kSetProtocolFeatures, U64Payload{fe_.ProtocolFeatures()}).ok());
  ASSERT_EQ(Ack(fe_.Call(Request::kSetFeatures, U64Payload{Bit(vf::kVersion1)})), 0u);
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringEnable, VringState{0, 1})), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, BackendReqFdNeedsTheFeatureAndOneFd) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  // Only REPLY_ACK: BACKEND_REQ not negotiated.
  ASSERT_TRUE(fe_.SendP(Request::kSetProtocolFeatures, U64Payload{Bit(pf::kReplyAck)}).ok());
  uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.CallEmpty(Request::kSetBackendReqFd, {sv[0]})), kFail);
  ExpectRefusedAndAlive(e);
  NegotiateReplyAck();
  e = Errors();
  EXPECT_EQ(Ack(fe_.CallEmpty(Request::kSetBackendReqFd)), kFail);
  EXPECT_EQ(Ack(fe_.CallEmpty(Request::kSetBackendReqFd, {sv[0], sv[0]})), kFail);
  ExpectRefusedAndAlive(e);
  EXPECT_EQ(Ack(fe_.CallEmpty(Request::kSetBackendReqFd, {sv[0]})), 0u);
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST_F(SessionTest, IotlbMessagesAreValidated) {
  NegotiateReplyAck();
  ASSERT_EQ(Ack(fe_.SetMemTable()), 0u);
  const uint64_t e = Errors();
  const uint8_t rw = protocol::kIotlbPermRw;
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0, kUaddr, rw)), kFail) << "size 0";
  EXPECT_EQ(Ack(fe_.Update(~uint64_t{0} - 0xfff, 0x2000, kUaddr, rw)), kFail) << "iova wraps";
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, 0)), kFail) << "perm none";
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, 7)), kFail) << "perm out of range";
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kGpa, rw)), kFail) << "uaddr outside every region";
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x2000, kUaddr + kMemSize - 0x1000, rw)), kFail)
      << "uaddr range runs past the region";
  EXPECT_EQ(Ack(fe_.Invalidate(0x1000, 0)), kFail) << "invalidate of size 0";
  protocol::IotlbMsg miss{};
  miss.iova = 0x1000;
  miss.size = 1;
  miss.type = static_cast<uint8_t>(protocol::IotlbType::kMiss);
  EXPECT_EQ(Ack(fe_.Call(Request::kIotlbMsg, miss)), kFail) << "MISS is backend-to-front-end";
  miss.type = 9;
  EXPECT_EQ(Ack(fe_.Call(Request::kIotlbMsg, miss)), kFail) << "unknown type";
  uint8_t short_msg[24] = {};
  EXPECT_EQ(Ack(fe_.Call(Request::kIotlbMsg, short_msg)), kFail) << "24-byte payload";
  ExpectRefusedAndAlive(e);
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, rw)), 0u);
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr + 0x1000, protocol::kIotlbPermRo)), 0u)
      << "an UPDATE overwrites what it overlaps";
  EXPECT_EQ(Ack(fe_.Invalidate(0, ~uint64_t{0})), 0u) << "QEMU's full-range invalidate";
  const BackendStats s = be_.backend->Stats();
  EXPECT_EQ(s.iotlb_updates, 2u);
  EXPECT_EQ(s.iotlb_invalidates, 1u);
}

TEST_F(SessionTest, IotlbUpdateBeforeMemTableIsRefused) {
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Update(0x1000, 0x1000, kUaddr, protocol::kIotlbPermRw)), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, IotlbRepliesWithoutReplyAck) {
  // QEMU sets need_reply on every IOTLB_MSG; the reply comes even without REPLY_ACK.
  ASSERT_EQ(Ack(fe_.Invalidate(0, ~uint64_t{0})), 0u);
  EXPECT_TRUE(fe_.Alive());
}

TEST_F(SessionTest, StatusRoundTrips) {
  NegotiateReplyAck();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetStatus, U64Payload{0x0f})), 0u);
  EXPECT_EQ(Ack(fe_.GetU64(Request::kGetStatus)), 0x0fu);
  const uint64_t e = Errors();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetStatus, U64Payload{0x100})), kFail);
  ExpectRefusedAndAlive(e);
}

TEST_F(SessionTest, ResetOwnerStartsOver) {
  NegotiateReplyAck();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringBase, VringState{0, 9})), 0u);
  EXPECT_EQ(Ack(fe_.CallEmpty(Request::kResetOwner)), 0u);
  // Protocol features are gone: no REPLY_ACK, so SET_VRING_ENABLE's refusal gets no reply...
  const uint64_t e = Errors();
  ASSERT_TRUE(fe_.SendP(Request::kSetVringEnable, VringState{0, 1}, true).ok());
  ExpectRefusedAndAlive(e);
  // ...and the ring state is fresh.
  ASSERT_TRUE(fe_.SendP(Request::kGetVringBase, VringState{0, 0}).ok());
  auto m = fe_.Receive();
  ASSERT_TRUE(m.ok());
  VringState s;
  std::memcpy(&s, m->payload.data(), sizeof(s));
  EXPECT_EQ(s.num, 0u);
}

TEST_F(SessionTest, NewFrontEndAfterDisconnectGetsFreshState) {
  NegotiateReplyAck();
  EXPECT_EQ(Ack(fe_.Call(Request::kSetVringBase, VringState{0, 9})), 0u);
  fe_.channel().Close();
  TestFrontend second(be_.path);
  // No REPLY_ACK in the new session: GET_VRING_BASE is the first reply we see, and it is fresh.
  ASSERT_TRUE(second.SendP(Request::kGetVringBase, VringState{0, 0}).ok());
  auto m = second.Receive();
  ASSERT_TRUE(m.ok()) << m.error().message;
  VringState s;
  std::memcpy(&s, m->payload.data(), sizeof(s));
  EXPECT_EQ(s.num, 0u);
  EXPECT_TRUE(WaitFor([&] { return be_.backend->Stats().connections == 2; }));
}

TEST_F(SessionTest, AbsurdHeaderClosesOnlyThatConnection) {
  protocol::Header h{static_cast<uint32_t>(Request::kSetFeatures), protocol::kVersion, 1u << 30};
  ASSERT_EQ(::send(fe_.channel().fd(), &h, sizeof(h), MSG_NOSIGNAL), static_cast<ssize_t>(sizeof(h)));
  auto m = fe_.Receive();
  EXPECT_FALSE(m.ok()) << "the backend closes a connection it cannot resync";
  TestFrontend second(be_.path);
  EXPECT_TRUE(second.Alive());
}

// Random garbage (seeded, so reproducible): random ids around the known range, random flags and
// payload sizes up to 300 bytes, random payload bytes. Requests with a defined reply are always
// answered and read; nothing else may produce a reply because need_reply is never set. The
// session must stay in sync and alive throughout.
TEST_F(SessionTest, RandomMessagesNeverBreakTheSession) {
  NegotiateReplyAck();
  ASSERT_EQ(Ack(fe_.SetMemTable()), 0u);
  std::mt19937 rng(1234);
  const std::set<uint32_t> with_reply = {1, 11, 15, 17, 36, 40};
  for (int i = 0; i < 3000; ++i) {
    uint32_t id = rng() % 45;
    if (id == static_cast<uint32_t>(Request::kResetOwner) && rng() % 8) continue;
    uint8_t payload[300];
    for (auto& b : payload) b = static_cast<uint8_t>(rng());
    const uint32_t size = rng() % 4 == 0 ? rng() % 300 : (rng() % 6) * 8;
    // Version bits always 1 and no need_reply, so the reply stream stays predictable.
    ASSERT_TRUE(fe_.Send(static_cast<Request>(id), protocol::kVersion, payload, size).ok());
    if (with_reply.count(id)) {
      auto m = fe_.Receive();
      ASSERT_TRUE(m.ok()) << "request " << id << ": " << m.error().message;
      ASSERT_EQ(m->request(), id);
      ASSERT_TRUE(m->is_reply());
    }
  }
  EXPECT_TRUE(fe_.Alive());
  EXPECT_GT(Errors(), 0u);
}

}  // namespace
}  // namespace vhostlab::backend
