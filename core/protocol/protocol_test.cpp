#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/protocol/channel.hpp"

namespace vhostlab::protocol {
namespace {

struct Pair {
  Channel a, b;
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a = Channel(UniqueFd(sv[0]));
    b = Channel(UniqueFd(sv[1]));
  }
};

TEST(Channel, RoundTripsPayloadAndFds) {
  Pair p;
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  IotlbMsg msg{0x1000, 0x2000, 0x7f0000, kIotlbPermRw, uint8_t(IotlbType::kUpdate), {}};
  int fds[] = {pipefd[0]};
  ASSERT_TRUE(p.a.SendPayload(uint32_t(Request::kIotlbMsg), kVersion | kFlagNeedReply, msg, fds).ok());
  auto got = p.b.Receive(1000);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(got->problem.ok());
  EXPECT_TRUE(got->need_reply());
  ASSERT_EQ(got->fds.size(), 1u);
  auto iotlb = got->PayloadAs<IotlbMsg>();
  ASSERT_TRUE(iotlb.ok());
  EXPECT_EQ(iotlb->iova, 0x1000u);
  EXPECT_EQ(iotlb->Last(), 0x2fffu);
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

TEST(Channel, OversizedPayloadIsRefusedAndStreamStaysInSync) {
  Pair p;
  std::vector<char> big(kMaxPayload + 100, 'x');
  ASSERT_TRUE(p.a.Send(uint32_t(Request::kSetMemTable), kVersion, big.data(), big.size()).ok());
  ASSERT_TRUE(p.a.ReplyU64(uint32_t(Request::kGetFeatures), 42).ok());
  auto first = p.b.Receive(1000);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->problem.ok());
  EXPECT_NE(first->problem.message().find("exceeds"), std::string::npos);
  auto second = p.b.Receive(1000);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->problem.ok());
  EXPECT_EQ(second->PayloadAs<U64Payload>()->value, 42u);
}

TEST(Channel, WrongVersionBitsAreAProblem) {
  Pair p;
  ASSERT_TRUE(p.a.Send(uint32_t(Request::kGetFeatures), 0x2, nullptr, 0).ok());
  auto got = p.b.Receive(1000);
  ASSERT_TRUE(got.ok());
  EXPECT_NE(got->problem.message().find("version"), std::string::npos);
}

TEST(Channel, TruncatedMessageIsAConnectionError) {
  Pair p;
  Header h{uint32_t(Request::kSetFeatures), kVersion, 8};
  ASSERT_EQ(::send(p.a.fd(), &h, sizeof(h), 0), ssize_t(sizeof(h)));
  p.a.Close();
  auto got = p.b.Receive(1000);
  EXPECT_FALSE(got.ok());
}

TEST(Channel, WrongPayloadSizeIsAClearError) {
  Message m;
  m.header = {uint32_t(Request::kIotlbMsg), kVersion, 16};
  auto r = m.PayloadAs<IotlbMsg>();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("IOTLB_MSG"), std::string::npos);
  EXPECT_NE(r.error().message.find("32"), std::string::npos);
}

TEST(IotlbMsg, Validate) {
  auto upd = [](uint64_t iova, uint64_t size, uint8_t perm) {
    return IotlbMsg{iova, size, 0x1000, perm, uint8_t(IotlbType::kUpdate), {}};
  };
  EXPECT_TRUE(upd(0x1000, 0x1000, kIotlbPermRo).Validate().ok());
  EXPECT_FALSE(upd(0x1000, 0, kIotlbPermRo).Validate().ok());
  EXPECT_FALSE(upd(~0ull - 10, 100, kIotlbPermRo).Validate().ok());
  EXPECT_FALSE(upd(0x1000, 0x1000, kIotlbPermNone).Validate().ok());
  EXPECT_FALSE(upd(0x1000, 0x1000, 7).Validate().ok());
  IotlbMsg full{0, ~0ull, 0, 0, uint8_t(IotlbType::kInvalidate), {}};
  EXPECT_TRUE(full.Validate().ok());
  EXPECT_EQ(full.Last(), ~0ull);
  IotlbMsg miss{0, 1, 0, 1, uint8_t(IotlbType::kMiss), {}};
  EXPECT_FALSE(miss.Validate().ok());
  IotlbMsg unknown{0, 1, 0, 1, 9, {}};
  EXPECT_FALSE(unknown.Validate().ok());
}

TEST(MemoryTable, Validate) {
  MemoryTable t{};
  t.nregions = 2;
  t.regions[0] = {0, 0x10000, 0x7f0000000000, 0};
  t.regions[1] = {0x10000, 0x10000, 0x7f0000010000, 0};
  EXPECT_TRUE(t.Validate(8 + 64).ok());
  EXPECT_FALSE(t.Validate(8 + 32).ok());  // payload too short for 2 regions
  t.regions[1].userspace_addr = 0x7f0000008000;
  EXPECT_FALSE(t.Validate(8 + 64).ok());  // overlap
  t.nregions = 9;
  EXPECT_FALSE(t.Validate(sizeof(t)).ok());
  t.nregions = 1;
  t.regions[0].memory_size = 0;
  EXPECT_FALSE(t.Validate(8 + 32).ok());
}

TEST(Names, FeaturesRenderReadably) {
  EXPECT_EQ(FeatureNames(Bit(feature::kVersion1) | Bit(feature::kIommuPlatform)),
            "VERSION_1|IOMMU_PLATFORM");
  EXPECT_EQ(RequestName(22), "IOTLB_MSG");
  EXPECT_EQ(RequestName(999), "UNKNOWN");
}

TEST(Payloads, LogDescriptionMustBeNonEmptyAndNotWrap) {
  EXPECT_TRUE((LogDescription{4096, 0}.Validate().ok()));
  EXPECT_FALSE((LogDescription{0, 0}.Validate().ok()));
  EXPECT_FALSE((LogDescription{4096, UINT64_MAX - 100}.Validate().ok()));
  EXPECT_TRUE((U64Payload{UINT64_MAX}.Validate().ok()));
}

}  // namespace
}  // namespace vhostlab::protocol
