// Front-end unit tests (no peer): guest memory address spaces, the scatter layout's page
// permutation, the deterministic frame pattern.
#include "core/frontend/frontend.hpp"

#include <gtest/gtest.h>

#include <set>

#include "core/frontend/guest_memory.hpp"
#include "core/frontend/net_driver.hpp"
#include "core/loadgen/packet.hpp"

namespace vhostlab::frontend {
namespace {

TEST(GuestMemory, RegionsAreDistinctAddressSpaces) {
  auto m = GuestMemory::Create({8192, 8192, 4096}, 2, 4096, false);
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_EQ(m->regions().size(), 2u);
  EXPECT_EQ(m->regions()[0].gpa, 0u);
  EXPECT_EQ(m->regions()[1].gpa, 4ull << 30);
  // Chunks go round-robin over the regions and never straddle one.
  EXPECT_EQ(m->chunk_gpa(0), 0u);
  EXPECT_EQ(m->chunk_gpa(1), 4ull << 30);
  EXPECT_EQ(m->chunk_gpa(2), 8192u);
  for (std::size_t i = 0; i < m->chunk_count(); ++i) {
    auto u = m->GpaToUaddr(m->chunk_gpa(i), 4096);
    ASSERT_TRUE(u.ok());
    EXPECT_NE(*u, m->chunk_gpa(i)) << "a uaddr must never equal its GPA";
  }
  EXPECT_EQ(m->GpaToHost(2ull << 30), nullptr) << "GPA hole between the regions";
  EXPECT_EQ(m->GpaToHost(0, 3 * 8192), nullptr) << "range leaving its region";
  auto t = m->MemTable();
  EXPECT_EQ(t.nregions, 2u);
  EXPECT_EQ(m->Fds().size(), 2u);
  // Writes through our mapping are visible through the memfd (the backend's view).
  m->GpaToHost(4096)[5] = 0x5a;
  uint8_t b = 0;
  ASSERT_EQ(pread(m->regions()[0].fd.get(), &b, 1, 4096 + 5), 1);
  EXPECT_EQ(b, 0x5a);
}

TEST(GuestMemory, RefusesBadRegionCounts) {
  EXPECT_FALSE(GuestMemory::Create({4096}, 0, 4096, false).ok());
  EXPECT_FALSE(GuestMemory::Create({4096}, 9, 4096, false).ok());
}

TEST(Pool, ScatterPutsNoTwoConsecutivePagesSideBySide) {
  for (uint64_t ps : {uint64_t{4096}, uint64_t{2} << 20}) {
    uint64_t pages = Pool::PagesFor(3 * ps, ps, true);
    ASSERT_GE(pages, 4u);
    auto m = GuestMemory::Create({pages * ps}, 1, ps, false);
    ASSERT_TRUE(m.ok());
    Pool pool;
    pool.Build(*m, m->chunk_gpa(0), pages, ps, true);
    std::set<uint64_t> seen(pool.page_gpa.begin(), pool.page_gpa.end());
    EXPECT_EQ(seen.size(), pages) << "the permutation must be a bijection";
    for (uint64_t j = 0; j + 1 < pages; ++j)
      EXPECT_NE(pool.page_gpa[j] + ps, pool.page_gpa[j + 1]) << "page " << j;
    // A write straddling a page boundary lands on two non-adjacent guest pages and reads back.
    std::vector<uint8_t> in(64), out(64);
    for (int i = 0; i < 64; ++i) in[i] = static_cast<uint8_t>(i * 7 + 1);
    pool.Write(ps - 20, in.data(), 64);
    pool.Read(ps - 20, out.data(), 64);
    EXPECT_EQ(in, out);
    EXPECT_EQ(m->GpaToHost(pool.page_gpa[0] + ps - 20)[0], in[0]);
    EXPECT_EQ(m->GpaToHost(pool.page_gpa[1])[0], in[20]);
  }
}

TEST(Pool, WithoutScatterPagesAreContiguous) {
  auto m = GuestMemory::Create({5 * 4096}, 1, 4096, false);
  ASSERT_TRUE(m.ok());
  Pool pool;
  pool.Build(*m, m->chunk_gpa(0), Pool::PagesFor(5 * 4096, 4096, false), 4096, false);
  ASSERT_EQ(pool.page_gpa.size(), 5u);
  for (uint64_t j = 0; j + 1 < 5; ++j) EXPECT_EQ(pool.page_gpa[j] + 4096, pool.page_gpa[j + 1]);
}

TEST(Frame, DeterministicAndSelfDescribing) {
  std::vector<uint8_t> a(64), b(64), c(64);
  loadgen::FillFrame(a.data(), 64, 7, 1, 42);
  loadgen::FillFrame(b.data(), 64, 7, 1, 42);
  loadgen::FillFrame(c.data(), 64, 7, 1, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  uint64_t seq = 0;
  ASSERT_TRUE(loadgen::FrameSeq(a.data(), 64, &seq));
  EXPECT_EQ(seq, 42u);
  a[15] ^= 1;  // break the magic
  EXPECT_FALSE(loadgen::FrameSeq(a.data(), 64, &seq));
  // Odd sizes fill every byte.
  std::vector<uint8_t> odd(61, 0), odd2(61, 0xff);
  loadgen::FillFrame(odd.data(), 61, 1, 0, 5);
  loadgen::FillFrame(odd2.data(), 61, 1, 0, 5);
  EXPECT_EQ(odd, odd2);
}

TEST(Mapping, Names) {
  for (const char* n : {"static", "lazy", "strict", "cold"}) {
    auto m = ParseMapping(n);
    ASSERT_TRUE(m.ok());
    EXPECT_STREQ(MappingName(*m), n);
  }
  EXPECT_FALSE(ParseMapping("eager").ok());
}

TEST(RunFrontend, RefusesBadConfigBeforeConnecting) {
  FrontendConfig c;
  c.socket_path = "/nonexistent/socket";
  c.packets = 10;
  c.page_size = 8192;
  auto r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("page size"), std::string::npos) << r.error().message;
  c.page_size = 4096;
  c.ring_size = 100;
  EXPECT_FALSE(RunFrontend(c).ok());
  c.ring_size = 256;
  c.connect_timeout_ms = 100;
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("connect"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace vhostlab::frontend
