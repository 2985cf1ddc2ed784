// Trace format round trip, refusal of malformed files, the record limit, and replay: every
// design verified on a synthetic stream, a wrong design caught with the record that shows it.
#include "core/trace/trace.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/iotlb/reference/reference.hpp"
#include "core/iotlb/registry.hpp"
#include "core/trace/replay.hpp"
#include "core/trace/replay_design.hpp"

namespace vhostlab::trace {
namespace {

using iotlb::Perm;

std::string TempPath(const char* name) {
  return std::string(::testing::TempDir()) + "/" + name + "." + std::to_string(::getpid());
}

// A strict guest's pattern: map a page, translate in it, unmap it; plus a MISS and a reconnect.
void WriteStrictStream(Writer& w, int buffers) {
  w.Add(RecordType::kConnect, 0, 0, 0, Perm::kNone);
  w.Add(RecordType::kMemReset, 0, 0, 0, Perm::kNone);
  w.Add(RecordType::kMemRegion, 0, 1 << 30, 0x7f0000000000, Perm::kReadWrite);
  for (int i = 0; i < buffers; ++i) {
    const uint64_t iova = 0xfffd0000 - (i % 16) * 0x1000;
    const uint64_t uaddr = 0x7f0000100000 + i * 0x1000;
    w.Translation(1, iova + 0x4c0, 1500, Perm::kRead, iotlb::Miss());
    w.Add(RecordType::kMiss, iova + 0x4c0, 1, 0, Perm::kRead, 1);
    w.Add(RecordType::kUpdate, iova, 0x1000, uaddr, Perm::kReadWrite);
    w.Translation(1, iova + 0x4c0, 1500, Perm::kRead, {iotlb::Outcome::kHit, uaddr + 0x4c0, 1500});
    w.Add(RecordType::kInvalidate, iova, 0x1000, 0, Perm::kNone);
  }
}

TEST(TraceTest, RoundTripsEveryField) {
  const std::string path = TempPath("roundtrip");
  {
    auto w = Writer::Open(path, 1000);
    ASSERT_TRUE(w.ok()) << w.error().message;
    WriteStrictStream(**w, 3);
    ASSERT_TRUE((*w)->Close().ok());
  }
  auto t = Read(path);
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->records.size(), 3u + 3 * 5);
  EXPECT_FALSE(t->truncated());
  const Record& update = t->records[3 + 2];
  EXPECT_EQ(update.type, RecordType::kUpdate);
  EXPECT_EQ(update.iova, 0xfffd0000u);
  EXPECT_EQ(update.size, 0x1000u);
  EXPECT_EQ(update.uaddr, 0x7f0000100000u);
  EXPECT_EQ(update.perm, 3);
  EXPECT_EQ(update.queue, kNoQueue);
  const Record& hit = t->records[3 + 3];
  EXPECT_EQ(hit.type, RecordType::kTranslate);
  EXPECT_EQ(hit.queue, 1);
  EXPECT_EQ(hit.outcome, 0);
  EXPECT_EQ(hit.uaddr, 0x7f0000100000u + 0x4c0);
  for (std::size_t i = 1; i < t->records.size(); ++i)
    EXPECT_GE(t->records[i].t_ns, t->records[i - 1].t_ns) << "timestamps never go back";
  const TraceSummary s = Summarize(*t);
  EXPECT_EQ(s.updates, 3u);
  EXPECT_EQ(s.invalidates, 3u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.translations, 6u);
  EXPECT_EQ(s.recorded_hits, 3u);
  EXPECT_EQ(s.mem_regions, 1u);
  EXPECT_EQ(s.queues, 1u);
  ::unlink(path.c_str());
}

TEST(TraceTest, RecordLimitTruncatesAndSaysSo) {
  const std::string path = TempPath("limit");
  {
    auto w = Writer::Open(path, 10);
    ASSERT_TRUE(w.ok());
    WriteStrictStream(**w, 20);
    EXPECT_EQ((*w)->records(), 10u);
  }  // the destructor closes
  auto t = Read(path);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->records.size(), 10u);
  EXPECT_TRUE(t->truncated());
  ::unlink(path.c_str());
}

TEST(TraceTest, MalformedFilesAreRefusedWithAReason) {
  const std::string path = TempPath("bad");
  auto write_raw = [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  };
  auto expect_refused = [&](const char* what, const char* words) {
    auto t = Read(path);
    ASSERT_FALSE(t.ok()) << what;
    EXPECT_NE(t.error().message.find(words), std::string::npos) << t.error().message;
  };
  write_raw("VLTR");
  expect_refused("short header", "shorter than its header");
  write_raw(std::string(32, 'x'));
  expect_refused("bad magic", "bad magic");
  {
    auto w = Writer::Open(path, 100);
    ASSERT_TRUE(w.ok());
    WriteStrictStream(**w, 1);
  }
  // A record of an unknown type.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(sizeof(Header) + offsetof(Record, type));
    f.put(static_cast<char>(42));
  }
  expect_refused("unknown type", "malformed");
  // A file cut in the middle of a record.
  {
    auto w = Writer::Open(path, 100);
    ASSERT_TRUE(w.ok());
    WriteStrictStream(**w, 1);
  }
  ASSERT_EQ(::truncate(path.c_str(), sizeof(Header) + 3 * sizeof(Record) + 7), 0);
  expect_refused("cut record", "does not match");
  EXPECT_FALSE(Read(TempPath("missing")).ok());
  ::unlink(path.c_str());
}

Trace StrictTrace(int buffers) {
  const std::string path = TempPath("strict");
  {
    auto w = Writer::Open(path, 1 << 20);
    WriteStrictStream(**w, buffers);
  }
  auto t = Read(path);
  ::unlink(path.c_str());
  return std::move(*t);
}

TEST(ReplayTest, EveryDesignIsVerifiedAndTimed) {
  const Trace t = StrictTrace(200);
  ReplayOptions o;
  o.designs = iotlb::DesignNames();
  o.repeat = 2;
  o.min_steps_per_round = 2000;
  auto r = Replay(t, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), o.designs.size());
  for (const DesignReplay& d : *r) {
    EXPECT_TRUE(d.verified) << d.design << ": " << d.mismatch;
    EXPECT_EQ(d.translations, 400u) << d.design;
    EXPECT_EQ(d.hits, 200u) << d.design;
    EXPECT_EQ(d.misses, 200u) << d.design;
    EXPECT_EQ(d.updates, 200u);
    EXPECT_EQ(d.invalidates, 200u);
    EXPECT_EQ(d.max_entries, 1u);
    // Timings are measured, never asserted beyond being well-formed (a loaded machine can
    // make the timer's own cost, which is subtracted, exceed a cheap operation's).
    for (const Range3& r : {d.ns_per_translation, d.ns_per_update, d.ns_per_invalidate}) {
      EXPECT_GE(r.min, 0.0) << d.design;
      EXPECT_LE(r.min, r.median) << d.design;
      EXPECT_LE(r.median, r.max) << d.design;
    }
  }
  o.designs = {"no-such-design"};
  auto bad = Replay(t, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("available"), std::string::npos);
}

// The reference design, but an UPDATE's uaddr is off by one page: a replay must catch it.
class OffByAPage {
 public:
  static constexpr std::string_view kName = "off-by-a-page";
  iotlb::InsertStatus Insert(iotlb::IovaRange r, uint64_t uaddr, Perm p) {
    return ref_.Insert(r, uaddr + 0x1000, p);
  }
  std::size_t Invalidate(iotlb::IovaRange r) { return ref_.Invalidate(r); }
  iotlb::Translation Translate(uint64_t iova, uint64_t len, Perm p) const {
    return ref_.Translate(iova, len, p);
  }
  std::size_t Size() const { return ref_.Size(); }
  std::size_t MemoryBytes() const { return ref_.MemoryBytes(); }
  void Clear() { ref_.Clear(); }

 private:
  iotlb::Reference ref_;
};

TEST(ReplayTest, AWrongTranslationFailsTheReplayAndNamesTheRecord) {
  const Trace t = StrictTrace(5);
  ReplayOptions o;
  o.repeat = 1;
  o.min_steps_per_round = 1;
  const DesignReplay d = ReplayDesign<OffByAPage>(replay_internal::Compile(t), o);
  EXPECT_FALSE(d.verified);
  // Records: 3 set-up, then per buffer miss-translate, MISS, UPDATE, hit-translate (index 6).
  EXPECT_NE(d.mismatch.find("record 6:"), std::string::npos) << d.mismatch;
  EXPECT_NE(d.mismatch.find("reference says"), std::string::npos) << d.mismatch;
}

}  // namespace
}  // namespace vhostlab::trace
