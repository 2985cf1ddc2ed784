// MemoryTable tests with real memfds: mapping, mmap_offset, lookups that stop at region
// boundaries, refusal of missing/extra fds and bad regions, ADD/REM of single regions.
#include "core/memory/memory_table.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

namespace vhostlab::memory {
namespace {

UniqueFd MakeMemfd(uint64_t size, uint8_t fill_base) {
  UniqueFd fd(::memfd_create("memory-table-test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  std::vector<uint8_t> bytes(size);
  for (uint64_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(fill_base + i / 4096);
  EXPECT_EQ(::pwrite(fd.get(), bytes.data(), size, 0), static_cast<ssize_t>(size));
  return fd;
}

std::vector<UniqueFd> Fds(UniqueFd a) {
  std::vector<UniqueFd> v;
  v.push_back(std::move(a));
  return v;
}

protocol::MemoryTable Table(std::initializer_list<protocol::MemoryRegion> regions) {
  protocol::MemoryTable t{};
  for (const auto& r : regions) t.regions[t.nregions++] = r;
  return t;
}

uint32_t Size(const protocol::MemoryTable& t) { return 8 + 32 * t.nregions; }

TEST(MemoryTableTest, HonoursMmapOffsetAndTranslatesBothSpaces) {
  // Region = bytes [2 pages, 6 pages) of the memfd, so its first byte is page 2's fill (0x12).
  auto t = Table({{0x10000, 4 * 4096, 0x7000'0000, 2 * 4096}});
  auto m = MemoryTable::Build(t, Size(t), Fds(MakeMemfd(8 * 4096, 0x10)));
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto g = m->FromGpa(0x10000, 16);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ptr[0], 0x12);
  EXPECT_EQ(g->len, 16u);
  auto u = m->FromUaddr(0x7000'0000 + 4096 * 3 + 5, 100000);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->ptr[0], 0x15);
  EXPECT_EQ(u->len, 4096u - 5) << "clamped to the end of the region";
  EXPECT_EQ(g->ptr + 4096 * 3 + 5, u->ptr) << "GPA and uaddr name the same byte";
}

TEST(MemoryTableTest, UnalignedMmapOffsetIsHonoured) {
  auto t = Table({{0, 4096, 0x1000'0000, 4096 + 100}});
  auto m = MemoryTable::Build(t, Size(t), Fds(MakeMemfd(4 * 4096, 0x40)));
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto g = m->FromGpa(0, 1);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ptr[0], 0x41);
  EXPECT_EQ(m->FromGpa(4095, 10)->len, 1u);
}

TEST(MemoryTableTest, LookupsNeverCrossRegionBoundaries) {
  // Two regions adjacent in both GPA and uaddr space, backed by different memfds: a range that
  // crosses the boundary is answered in two pieces.
  auto t = Table({{0, 4096, 0x5000, 0}, {4096, 4096, 0x6000, 0}});
  std::vector<UniqueFd> fds;
  fds.push_back(MakeMemfd(4096, 0xa0));
  fds.push_back(MakeMemfd(4096, 0xb0));
  auto m = MemoryTable::Build(t, Size(t), std::move(fds));
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto first = m->FromUaddr(0x5f00, 0x200);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->len, 0x100u);
  EXPECT_EQ(first->ptr[0], 0xa0);
  auto second = m->FromUaddr(0x6000, 0x100);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->ptr[0], 0xb0);
  EXPECT_NE(first->ptr + first->len, second->ptr) << "separate mappings, not one run";
  EXPECT_TRUE(m->CoversUaddr(0x5f00, 0x200));
  EXPECT_FALSE(m->CoversUaddr(0x5f00, 0x1200)) << "runs past the second region";
}

TEST(MemoryTableTest, AddressesOutsideEveryRegionAreErrors) {
  auto t = Table({{0x1000, 4096, 0x9000, 0}});
  auto m = MemoryTable::Build(t, Size(t), Fds(MakeMemfd(4096, 0)));
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->FromGpa(0xfff, 1).ok());
  EXPECT_FALSE(m->FromGpa(0x2000, 1).ok());
  EXPECT_FALSE(m->FromUaddr(0x1000, 1).ok()) << "a GPA is not a uaddr";
  EXPECT_FALSE(m->FromUaddr(~uint64_t{0}, 1).ok());
  auto e = m->FromUaddr(0xa000, 8);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("outside every memory region"), std::string::npos);
  EXPECT_FALSE(m->CoversUaddr(0x9000, 0)) << "zero-length";
}

TEST(MemoryTableTest, RefusesMissingAndExtraFds) {
  auto t = Table({{0, 4096, 0x5000, 0}, {4096, 4096, 0x6000, 0}});
  auto missing = MemoryTable::Build(t, Size(t), Fds(MakeMemfd(4096, 0)));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("2 regions but 1 fds"), std::string::npos)
      << missing.error().message;
  std::vector<UniqueFd> three;
  for (int i = 0; i < 3; ++i) three.push_back(MakeMemfd(4096, 0));
  EXPECT_FALSE(MemoryTable::Build(t, Size(t), std::move(three)).ok());
}

TEST(MemoryTableTest, RefusesBadRegions) {
  auto past_end = Table({{0, 8192, 0x5000, 0}});
  EXPECT_FALSE(MemoryTable::Build(past_end, Size(past_end), Fds(MakeMemfd(4096, 0))).ok())
      << "region larger than the fd";
  auto wraps = Table({{~uint64_t{0} - 10, 4096, 0x5000, 0}});
  EXPECT_FALSE(MemoryTable::Build(wraps, Size(wraps), Fds(MakeMemfd(4096, 0))).ok());
  auto overlap = Table({{0, 4096, 0x5000, 0}, {0x800, 4096, 0x9000, 0}});
  std::vector<UniqueFd> two;
  two.push_back(MakeMemfd(4096, 0));
  two.push_back(MakeMemfd(4096, 0));
  EXPECT_FALSE(MemoryTable::Build(overlap, Size(overlap), std::move(two)).ok());
  auto bad_fd = Table({{0, 4096, 0x5000, 0}});
  std::vector<UniqueFd> none;
  none.emplace_back(-1);
  EXPECT_FALSE(MemoryTable::Build(bad_fd, Size(bad_fd), std::move(none)).ok());
}

TEST(MemoryTableTest, AddAndRemoveSingleRegions) {
  MemoryTable empty;
  auto one = empty.WithRegion({0, 4096, 0x5000, 0}, MakeMemfd(4096, 0x11), 2);
  ASSERT_TRUE(one.ok()) << one.error().message;
  auto two = one->WithRegion({4096, 4096, 0x6000, 0}, MakeMemfd(4096, 0x22), 2);
  ASSERT_TRUE(two.ok());
  EXPECT_FALSE(two->WithRegion({8192, 4096, 0x7000, 0}, MakeMemfd(4096, 0), 2).ok()) << "full";
  EXPECT_FALSE(one->WithRegion({0x800, 4096, 0x9000, 0}, MakeMemfd(4096, 0), 2).ok()) << "overlap";
  EXPECT_FALSE(one->WithRegion({8192, 4096, 0x9000, 0}, UniqueFd(), 2).ok()) << "no fd";
  EXPECT_EQ(two->FromUaddr(0x6000, 1)->ptr[0], 0x22);
  auto removed = two->WithoutRegion({0, 4096, 0x5000, 0});
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(removed->FromUaddr(0x5000, 1).ok());
  EXPECT_EQ(removed->FromUaddr(0x6000, 1)->ptr[0], 0x22) << "the other mapping survives";
  EXPECT_FALSE(removed->WithoutRegion({0, 4096, 0x5000, 0}).ok()) << "already gone";
}

// QEMU with N queue pairs adds each region N times (one vhost device per pair, one connection)
// and removes it N times: the region stays mapped until the last removal.
TEST(MemoryTableTest, TheSameRegionAddedTwiceIsCountedNotRefused) {
  MemoryTable empty;
  auto one = empty.WithRegion({0, 4096, 0x5000, 0}, MakeMemfd(4096, 0x11), 1);
  ASSERT_TRUE(one.ok());
  auto twice = one->WithRegion({0, 4096, 0x5000, 0}, MakeMemfd(4096, 0x33), 1);
  ASSERT_TRUE(twice.ok()) << twice.error().message;
  ASSERT_EQ(twice->regions().size(), 1u);
  EXPECT_EQ(twice->regions()[0].refs, 2u);
  EXPECT_EQ(twice->FromUaddr(0x5000, 1)->ptr[0], 0x11) << "the first mapping is kept";
  EXPECT_FALSE(twice->WithRegion({0, 4096, 0x5000, 4096}, MakeMemfd(8192, 0), 2).ok())
      << "same addresses, other file offset: an overlap";
  auto once = twice->WithoutRegion({0, 4096, 0x5000, 0});
  ASSERT_TRUE(once.ok());
  EXPECT_EQ(once->FromUaddr(0x5000, 1)->ptr[0], 0x11) << "still mapped for the other user";
  auto none = once->WithoutRegion({0, 4096, 0x5000, 0});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace vhostlab::memory
