// Front-end unit tests (no peer): guest memory address spaces, the scatter layout's page
// permutation, the deterministic frame pattern.
#include "core/frontend/frontend.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
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

TEST(BufferPlacer, WithoutSpreadSlotIIsPositionI) {
  BufferPlacer p;
  p.Build(8, 2048, 0, 4096, 4, false, 1);
  for (uint32_t slot : {3u, 0u, 7u}) EXPECT_EQ(p.Take(slot), slot);
  EXPECT_FALSE(p.PageIdle(1)) << "position 3 is on page 1";
  EXPECT_TRUE(p.PageIdle(2));
  p.Release(3);
  EXPECT_TRUE(p.PageIdle(1));
}

TEST(BufferPlacer, SpreadVisitsEveryPageOnceBeforeAnyTwice) {
  // 64 pages of 4 KiB, two 2 KiB positions each, skewed so every other one straddles pages.
  const uint64_t pages = 64, skew = 2048 - 32;
  const uint64_t positions = (pages * 4096 - skew) / 2048;
  BufferPlacer p;
  p.Build(positions, 2048, skew, 4096, pages, true, 7);
  ASSERT_EQ(p.order().size(), positions);
  std::set<uint32_t> all(p.order().begin(), p.order().end());
  EXPECT_EQ(all.size(), positions) << "every position exactly once per lap";
  // Page-major: the positions of a page are taken back to back, and a lap touches every page
  // in an order that is not the identity (the seed shuffles the pages).
  std::vector<uint64_t> page_order;
  for (uint32_t pos : p.order()) {
    uint64_t page = p.Offset(pos) / 4096;
    if (page_order.empty() || page_order.back() != page) page_order.push_back(page);
  }
  EXPECT_EQ(page_order.size(), pages);
  EXPECT_EQ(std::set<uint64_t>(page_order.begin(), page_order.end()).size(), pages);
  EXPECT_FALSE(std::is_sorted(page_order.begin(), page_order.end()));
  // Taking a ring's worth leaves the other pages idle; an owned position is never handed out
  // twice, even when the cursor laps.
  std::set<uint32_t> owned;
  for (uint32_t i = 0; i < 16; ++i) ASSERT_TRUE(owned.insert(p.Take(i)).second);
  uint64_t idle = 0;
  for (uint64_t page = 0; page < pages; ++page) idle += p.PageIdle(page);
  EXPECT_GE(idle, pages - 16);
  EXPECT_LE(idle, pages - 8);
  uint32_t kept = *owned.begin();
  for (uint32_t pos : owned)
    if (pos != kept) p.Release(pos);
  for (uint64_t i = 0; i < 3 * positions; ++i) {
    uint32_t pos = p.Take(0);
    ASSERT_NE(pos, kept);
    p.Release(pos);
  }
  // A different seed gives a different tour.
  BufferPlacer q;
  q.Build(positions, 2048, skew, 4096, pages, true, 8);
  EXPECT_NE(p.order(), q.order());
}

TEST(Pool, SwapWithSpareMovesAPageAndKeepsTheOldOneSpare) {
  auto m = GuestMemory::Create({6 * 4096}, 1, 4096, false);
  ASSERT_TRUE(m.ok());
  Pool pool;
  pool.Build(*m, m->chunk_gpa(0), 4, 4096, false, 2);
  ASSERT_EQ(pool.spare_gpa.size(), 2u);
  const uint64_t old = pool.page_gpa[1], spare = pool.spare_gpa[0];
  EXPECT_EQ(spare, m->chunk_gpa(0) + 4 * 4096) << "spares follow the logical pages";
  EXPECT_EQ(pool.SwapWithSpare(*m, 1), spare);
  EXPECT_EQ(pool.page_gpa[1], spare);
  EXPECT_EQ(pool.page_host[1], m->GpaToHost(spare));
  EXPECT_EQ(pool.spare_gpa.back(), old);
  uint8_t b = 0x42;
  pool.Write(4096 + 5, &b, 1);
  EXPECT_EQ(m->GpaToHost(spare)[5], 0x42) << "writes follow the page to its new home";
}

TEST(FrameSizes, MixOrSingleSize) {
  FrontendConfig c;
  c.packet_size = 100;
  EXPECT_EQ(FrameSizes(c), std::vector<uint32_t>{100});
  c.packet_sizes = {64, 1500, 9000};
  EXPECT_EQ(FrameSizes(c), (std::vector<uint32_t>{64, 1500, 9000}));
  EXPECT_EQ(MrgBufferBytes(c), 1548u);
  c.rx_buffer_size = 4096;
  EXPECT_EQ(MrgBufferBytes(c), 4096u);
}

TEST(Frame, JumboFramesAreSelfDescribing) {
  std::vector<uint8_t> a(9000), b(9000);
  loadgen::FillFrame(a.data(), 9000, 3, 2, 1ull << 40);
  loadgen::FillFrame(b.data(), 9000, 3, 2, 1ull << 40);
  EXPECT_EQ(a, b);
  uint64_t seq = 0;
  ASSERT_TRUE(loadgen::FrameSeq(a.data(), 9000, &seq));
  EXPECT_EQ(seq, 1ull << 40);
  uint16_t size = 0;
  std::memcpy(&size, a.data() + 20, 2);
  EXPECT_EQ(size, 9000);
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

TEST(Frame, GeneratorMatchesOnlyTheExactFrame) {
  const loadgen::FrameGenerator gen(7, 1);
  for (uint32_t size : {30u, 61u, 64u, 1500u, 9000u}) {
    std::vector<uint8_t> f(size), ref(size);
    gen.Fill(f.data(), size, 1000);
    loadgen::FillFrame(ref.data(), size, 7, 1, 1000);
    EXPECT_EQ(f, ref) << "the generator and FillFrame make the same bytes";
    EXPECT_TRUE(gen.Matches(f.data(), size, 1000)) << size;
    EXPECT_FALSE(gen.Matches(f.data(), size, 1001)) << size;
    EXPECT_FALSE(loadgen::FrameGenerator(7, 2).Matches(f.data(), size, 1000)) << "other queue";
    for (uint32_t at : {0u, 29u, 30u, size / 2, size - 1}) {
      if (at >= size) continue;
      f[at] ^= 0x10;
      EXPECT_FALSE(gen.Matches(f.data(), size, 1000)) << size << " byte " << at;
      f[at] ^= 0x10;
    }
  }
  // Another seq's payload under this seq's header, and a payload shifted by one word, differ.
  std::vector<uint8_t> a(1500), b(1500);
  gen.Fill(a.data(), 1500, 5);
  gen.Fill(b.data(), 1500, 6);
  std::memcpy(b.data(), a.data(), loadgen::kMinFrame);
  EXPECT_FALSE(gen.Matches(b.data(), 1500, 5));
  std::memmove(a.data() + 38, a.data() + 30, 1500 - 38);
  EXPECT_FALSE(gen.Matches(a.data(), 1500, 5));
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
  c.working_set = (1ull << 30) + 1;
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("working set"), std::string::npos) << r.error().message;
  c.working_set = 1ull << 30;
  c.queue_pairs = 8;
  EXPECT_FALSE(RunFrontend(c).ok()) << "8 GiB of working set in all";
  c.queue_pairs = 1;
  c.working_set = 0;
  c.storm_interval = 100;
  c.mapping = Mapping::kStrict;
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("storm"), std::string::npos) << r.error().message;
  c.mapping = Mapping::kStatic;
  c.storm_burst = 0;
  EXPECT_FALSE(RunFrontend(c).ok());
  c.storm_burst = 4097;
  EXPECT_FALSE(RunFrontend(c).ok());
  c.storm_burst = 256;
  c.page_size = 2ull << 20;
  EXPECT_FALSE(RunFrontend(c).ok()) << "256 pages of 2 MiB is over the 256 MiB bound";
  c.page_size = 4096;
  c.storm_interval = 0;
  c.packet_sizes = {64, 9001};
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("9001"), std::string::npos) << r.error().message;
  c.packet_sizes = {64, 9000};
  c.rx_buffer_size = 63;
  EXPECT_FALSE(RunFrontend(c).ok()) << "a receive buffer must hold the header and more";
  c.rx_buffer_size = 64;
  c.ring_size = 128;
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok()) << "a 9000-byte frame needs 141 buffers of 64 bytes";
  EXPECT_NE(r.error().message.find("receive buffers"), std::string::npos) << r.error().message;
  c.mrg_rxbuf = false;
  c.connect_timeout_ms = 100;
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("connect"), std::string::npos)
      << "without MRG_RXBUF the buffer size does not apply: " << r.error().message;
  c.mrg_rxbuf = true;
  c.rx_buffer_size = 0;
  c.ring_size = 256;
  c.packet_sizes.clear();
  r = RunFrontend(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("connect"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace vhostlab::frontend
