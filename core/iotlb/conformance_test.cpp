// The conformance suite: one typed GoogleTest suite, instantiated for every design, that pins
// down the contract in contract.hpp with hand-written cases (the differential test then covers
// the long random sequences).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/iotlb/any_iotlb.hpp"
#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/registry.hpp"
#include "core/iotlb/testing/all_designs.hpp"

namespace vhostlab::iotlb {
namespace {

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t k2M = 0x200000;
constexpr uint64_t k1G = 0x40000000;
constexpr uint64_t kTop = ~uint64_t{0};

template <typename D>
class Conformance : public ::testing::Test {
 protected:
  // Compares every probe against a reference holding the same entries.
  void ExpectSameAsReference(const Reference& ref, const std::vector<uint64_t>& points) {
    for (uint64_t p : points) {
      for (Perm perm : {Perm::kRead, Perm::kWrite, Perm::kReadWrite}) {
        for (uint64_t len : {uint64_t{1}, uint64_t{7}, k4K, 3 * k4K}) {
          if (len - 1 > kTop - p) continue;
          const Translation want = ref.Translate(p, len, perm);
          const Translation got = d_.Translate(p, len, perm);
          ASSERT_EQ(got.outcome, want.outcome) << std::hex << "iova 0x" << p << " len 0x" << len;
          if (want.hit()) {
            EXPECT_EQ(got.uaddr, want.uaddr) << std::hex << "iova 0x" << p;
            EXPECT_EQ(got.len, want.len) << std::hex << "iova 0x" << p << " len 0x" << len;
          }
        }
      }
    }
    EXPECT_EQ(d_.Size(), ref.Size());
  }

  D d_;
};

TYPED_TEST_SUITE(Conformance, testing::AllTestedDesigns, testing::DesignNameGenerator);

TYPED_TEST(Conformance, EmptyTableMisses) {
  EXPECT_EQ(this->d_.Size(), 0u);
  EXPECT_EQ(this->d_.Translate(0, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(this->d_.Translate(kTop, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(this->d_.Invalidate(kFullRange), 0u);
}

TYPED_TEST(Conformance, InsertTranslateInvalidate) {
  auto& t = this->d_;
  EXPECT_EQ(t.Insert({0x1000, 0x1fff}, 0xa000, Perm::kRead), InsertStatus::kOk);
  const Translation hit = t.Translate(0x1800, 0x100, Perm::kRead);
  ASSERT_TRUE(hit.hit());
  EXPECT_EQ(hit.uaddr, 0xa800u);
  EXPECT_EQ(hit.len, 0x100u);
  EXPECT_EQ(t.Translate(0x1800, 0x100, Perm::kWrite).outcome, Outcome::kAccessFail);
  EXPECT_EQ(t.Translate(0x2000, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Invalidate(kFullRange), 1u);
  EXPECT_EQ(t.Size(), 0u);
  EXPECT_EQ(t.Translate(0x1800, 1, Perm::kRead).outcome, Outcome::kMiss);
}

TYPED_TEST(Conformance, RangesAreInclusive) {
  auto& t = this->d_;
  t.Insert({0x4000, 0x4fff}, 0x90000, Perm::kReadWrite);
  EXPECT_EQ(t.Translate(0x3fff, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x4000, 1, Perm::kRead).uaddr, 0x90000u);
  const Translation last = t.Translate(0x4fff, 1, Perm::kRead);
  ASSERT_TRUE(last.hit());
  EXPECT_EQ(last.uaddr, 0x90fffu);
  EXPECT_EQ(t.Translate(0x5000, 1, Perm::kRead).outcome, Outcome::kMiss);
  // An access running past the end gets only the covered prefix.
  const Translation clipped = t.Translate(0x4ff0, 0x100, Perm::kRead);
  ASSERT_TRUE(clipped.hit());
  EXPECT_EQ(clipped.len, 0x10u);
}

TYPED_TEST(Conformance, PermissionsAreChecked) {
  auto& t = this->d_;
  t.Insert({0x0, 0xfff}, 0x10000, Perm::kRead);
  t.Insert({0x1000, 0x1fff}, 0x20000, Perm::kWrite);
  t.Insert({0x2000, 0x2fff}, 0x30000, Perm::kReadWrite);
  EXPECT_TRUE(t.Translate(0x10, 1, Perm::kRead).hit());
  EXPECT_EQ(t.Translate(0x10, 1, Perm::kWrite).outcome, Outcome::kAccessFail);
  EXPECT_EQ(t.Translate(0x10, 1, Perm::kReadWrite).outcome, Outcome::kAccessFail);
  EXPECT_EQ(t.Translate(0x1010, 1, Perm::kRead).outcome, Outcome::kAccessFail);
  EXPECT_TRUE(t.Translate(0x1010, 1, Perm::kWrite).hit());
  EXPECT_TRUE(t.Translate(0x2010, 1, Perm::kReadWrite).hit());
  // Asking again after a failure still answers from the table (no negative caching).
  EXPECT_TRUE(t.Translate(0x10, 1, Perm::kRead).hit());
}

TYPED_TEST(Conformance, InvalidInputIsRefused) {
  auto& t = this->d_;
  EXPECT_EQ(t.Insert({5, 4}, 0, Perm::kRead), InsertStatus::kInvalidRange);
  EXPECT_EQ(t.Insert({0, 0xfff}, 0, Perm::kNone), InsertStatus::kInvalidRange);
  EXPECT_EQ(t.Size(), 0u);
  t.Insert({0, 0xfff}, 0x1000, Perm::kRead);
  EXPECT_EQ(t.Invalidate({0x800, 0x7ff}), 0u);
  EXPECT_EQ(t.Size(), 1u);
}

TYPED_TEST(Conformance, UpdateReplacesAndInvalidateTrims) {
  auto& t = this->d_;
  t.Insert({0x0, 0x2fff}, 0x10000, Perm::kRead);
  t.Insert({0x1000, 0x1fff}, 0x90000, Perm::kWrite);
  EXPECT_EQ(t.Size(), 3u);
  EXPECT_EQ(t.Translate(0x1000, 1, Perm::kWrite).uaddr, 0x90000u);
  EXPECT_EQ(t.Translate(0x1000, 1, Perm::kRead).outcome, Outcome::kAccessFail);
  EXPECT_EQ(t.Translate(0x2000, 1, Perm::kRead).uaddr, 0x12000u);
  EXPECT_EQ(t.Invalidate({0x800, 0x27ff}), 3u);
  EXPECT_EQ(t.Translate(0x7ff, 1, Perm::kRead).uaddr, 0x107ffu);
  EXPECT_EQ(t.Translate(0x800, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x27ff, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x2800, 1, Perm::kRead).uaddr, 0x12800u);
  EXPECT_EQ(t.Size(), 2u);
}

TYPED_TEST(Conformance, InvalidateInsideOneEntrySplitsIt) {
  auto& t = this->d_;
  t.Insert({0, k2M - 1}, 0x40000000, Perm::kReadWrite);
  EXPECT_EQ(t.Invalidate({0x5000, 0x5fff}), 1u);
  EXPECT_EQ(t.Size(), 2u);
  EXPECT_EQ(t.Translate(0x4fff, 1, Perm::kRead).uaddr, 0x40004fffu);
  EXPECT_EQ(t.Translate(0x5000, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x6000, 1, Perm::kRead).uaddr, 0x40006000u);
  EXPECT_EQ(t.Translate(k2M - 1, 1, Perm::kRead).uaddr, 0x40000000u + k2M - 1);
}

TYPED_TEST(Conformance, JoinsOnlyContiguousUaddrsWithPermission) {
  auto& t = this->d_;
  t.Insert({0x0, 0xfff}, 0x10000, Perm::kReadWrite);
  t.Insert({0x1000, 0x1fff}, 0x11000, Perm::kReadWrite);  // contiguous
  t.Insert({0x2000, 0x2fff}, 0x50000, Perm::kReadWrite);  // not contiguous
  t.Insert({0x3000, 0x3fff}, 0x51000, Perm::kRead);       // contiguous, read-only
  const Translation r = t.Translate(0x800, 0x2000, Perm::kRead);
  ASSERT_TRUE(r.hit());
  EXPECT_EQ(r.uaddr, 0x10800u);
  EXPECT_EQ(r.len, 0x1800u);
  const Translation rest = t.Translate(0x2000, 0x2000, Perm::kRead);
  ASSERT_TRUE(rest.hit());
  EXPECT_EQ(rest.uaddr, 0x50000u);
  EXPECT_EQ(rest.len, 0x2000u);
  const Translation write = t.Translate(0x2000, 0x2000, Perm::kWrite);
  ASSERT_TRUE(write.hit());
  EXPECT_EQ(write.len, 0x1000u);  // the read-only page ends the piece
  // A gap ends the piece too.
  t.Invalidate({0x1000, 0x1000});
  EXPECT_EQ(t.Translate(0x800, 0x2000, Perm::kRead).len, 0x800u);
}

TYPED_TEST(Conformance, TopOfAddressSpace) {
  auto& t = this->d_;
  EXPECT_EQ(t.Insert({kTop - 0xfff, kTop}, 0x1000, Perm::kRead), InsertStatus::kOk);
  const Translation r = t.Translate(kTop - 0xf, 0x10, Perm::kRead);
  ASSERT_TRUE(r.hit());
  EXPECT_EQ(r.len, 0x10u);
  EXPECT_EQ(r.uaddr, 0x1ff0u);
  EXPECT_EQ(t.Translate(kTop, 1, Perm::kRead).uaddr, 0x1fffu);
  EXPECT_EQ(t.Invalidate({kTop, kTop}), 1u);
  EXPECT_EQ(t.Translate(kTop, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_TRUE(t.Translate(kTop - 1, 1, Perm::kRead).hit());
}

TYPED_TEST(Conformance, FullRangeEntryAndFullRangeInvalidate) {
  auto& t = this->d_;
  EXPECT_EQ(t.Insert(kFullRange, 0, Perm::kReadWrite), InsertStatus::kOk);
  EXPECT_EQ(t.Size(), 1u);
  for (uint64_t p : {uint64_t{0}, uint64_t{0x123456789}, kTop / 2, kTop}) {
    const Translation r = t.Translate(p, 1, Perm::kWrite);
    ASSERT_TRUE(r.hit());
    EXPECT_EQ(r.uaddr, p);
  }
  const Translation big = t.Translate(1, kTop, Perm::kRead);
  ASSERT_TRUE(big.hit());
  EXPECT_EQ(big.len, kTop);
  // A page update punches a hole with a different mapping.
  t.Insert({k1G, k1G + k4K - 1}, 0x77000, Perm::kRead);
  EXPECT_EQ(t.Size(), 3u);
  EXPECT_EQ(t.Translate(k1G + 8, 1, Perm::kRead).uaddr, 0x77008u);
  EXPECT_EQ(t.Translate(k1G - 1, 2, Perm::kRead).len, 1u);
  EXPECT_EQ(t.Invalidate(kFullRange), 3u);
  EXPECT_EQ(t.Size(), 0u);
  EXPECT_EQ(t.Translate(k1G + 8, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0, 1, Perm::kRead).outcome, Outcome::kMiss);
}

TYPED_TEST(Conformance, MixedPageSizesAndUnalignedEntries) {
  Reference ref;
  auto both = [&](IovaRange r, uint64_t uaddr, Perm perm) {
    ref.Insert(r, uaddr, perm);
    this->d_.Insert(r, uaddr, perm);
  };
  both({0, k4K - 1}, 0x100000, Perm::kRead);
  both({k2M, 2 * k2M - 1}, 0x200000, Perm::kReadWrite);
  both({k1G, 2 * k1G - 1}, 0x40000000, Perm::kWrite);
  both({0x3000 + 17, 0x3000 + 17 + 100}, 0x555, Perm::kRead);      // inside one page, unaligned
  both({0x5f00, 0x7100}, 0x1000000, Perm::kReadWrite);             // crosses pages, odd size
  both({0x9000, 0x9000}, 0x9, Perm::kRead);                        // one byte
  both({k2M + 0x1000, k2M + 0x1fff}, 0x300000, Perm::kRead);       // replaces part of a 2M page
  both({k1G - 0x800, k1G + 0x7ff}, 0x700000, Perm::kReadWrite);    // straddles the 1G page start
  both({kTop - k2M + 1, kTop}, 0x800000, Perm::kRead);             // a 2M page at the very top
  std::vector<uint64_t> points;
  ref.ForEach([&](const Entry& e) {
    for (uint64_t p : {e.range.first, e.range.last, e.range.first - 1, e.range.last + 1,
                       e.range.first + (e.range.last - e.range.first) / 2}) {
      points.push_back(p);
    }
  });
  this->ExpectSameAsReference(ref, points);
  // Three small entries, the first 4 KiB left of the 2 MiB page and the page that replaced part
  // of it: five entries touched.
  EXPECT_EQ(ref.Invalidate({0x3000, k2M + 0x17ff}), 5u);
  EXPECT_EQ(this->d_.Invalidate({0x3000, k2M + 0x17ff}), 5u);
  this->ExpectSameAsReference(ref, points);
}

TYPED_TEST(Conformance, NoStaleTranslationAfterUpdateOrInvalidate) {
  auto& t = this->d_;
  t.Insert({0x10000, 0x10fff}, 0xaa000, Perm::kReadWrite);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.Translate(0x10010, 8, Perm::kRead).uaddr, 0xaa010u);
  t.Insert({0x10000, 0x10fff}, 0xbb000, Perm::kRead);  // remap without invalidate (lazy guests)
  EXPECT_EQ(t.Translate(0x10010, 8, Perm::kRead).uaddr, 0xbb010u);
  EXPECT_EQ(t.Translate(0x10010, 8, Perm::kWrite).outcome, Outcome::kAccessFail);
  t.Invalidate({0x10800, 0x10800});
  EXPECT_EQ(t.Translate(0x10010, 8, Perm::kRead).uaddr, 0xbb010u);
  EXPECT_EQ(t.Translate(0x10800, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x107f8, 16, Perm::kRead).len, 8u);
  t.Invalidate({0, 0x10fff});
  EXPECT_EQ(t.Translate(0x10010, 8, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x10900, 8, Perm::kRead).outcome, Outcome::kMiss);
}

TYPED_TEST(Conformance, ManyPagesThenClear) {
  auto& t = this->d_;
  Reference ref;
  std::vector<uint64_t> points;
  for (uint64_t i = 0; i < 1000; ++i) {
    const uint64_t iova = 0x100000000ull + ((i * 7919) % 4096) * k4K;
    ref.Insert({iova, iova + k4K - 1}, 0x7f0000000000ull + i * k4K, Perm::kReadWrite);
    EXPECT_NE(t.Insert({iova, iova + k4K - 1}, 0x7f0000000000ull + i * k4K, Perm::kReadWrite),
              InsertStatus::kInvalidRange);
    points.push_back(iova + (i % k4K));
  }
  this->ExpectSameAsReference(ref, points);
  EXPECT_GT(t.MemoryBytes(), 1000u * 8);
  t.Clear();
  EXPECT_EQ(t.Size(), 0u);
  EXPECT_EQ(t.Translate(points[0], 1, Perm::kRead).outcome, Outcome::kMiss);
}

TYPED_TEST(Conformance, BulkFillMatchesInserts) {
  std::vector<Entry> entries;
  for (uint64_t i = 0; i < 300; ++i) {
    entries.push_back({{i * 3 * k4K, i * 3 * k4K + 2 * k4K - 1}, i * 0x10000, Perm::kRead});
  }
  entries.push_back({{0x1800, 0x27ff}, 0x9999000, Perm::kWrite});  // overlaps: not the fast path
  Fill(this->d_, entries);
  Reference ref;
  for (const Entry& e : entries) ref.Insert(e.range, e.uaddr, e.perm);
  std::vector<uint64_t> points;
  for (const Entry& e : entries) points.push_back(e.range.first + 0x800);
  this->ExpectSameAsReference(ref, points);
}

TEST(List, EvictsAtCapacityAndNeverInventsTranslations) {
  BasicList<64> t;
  Reference ref;
  bool evicted = false;
  for (uint64_t i = 0; i < 100; ++i) {
    const IovaRange r{i * 0x2000, i * 0x2000 + 0xfff};
    ref.Insert(r, 0x5000000 + i * 0x1000, Perm::kRead);
    evicted |= t.Insert(r, 0x5000000 + i * 0x1000, Perm::kRead) == InsertStatus::kEvicted;
    EXPECT_LE(t.Size(), 64u);
  }
  EXPECT_TRUE(evicted);
  EXPECT_EQ(t.Size(), 64u);
  int hits = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    const Translation got = t.Translate(i * 0x2000 + 5, 1, Perm::kRead);
    if (got.hit()) {
      ++hits;
      EXPECT_EQ(got.uaddr, ref.Translate(i * 0x2000 + 5, 1, Perm::kRead).uaddr);
    }
  }
  EXPECT_EQ(hits, 64);
}

TEST(MicroCache, GenerationWrapNeverRevivesOldLines) {
  // Far more updates than the 12-bit tag generation holds: every one must be visible at once.
  MicroCacheHash t;
  for (uint64_t i = 0; i < 10000; ++i) {
    t.Insert({0x40000, 0x40fff}, 0x1000000 + i * 0x1000, Perm::kRead);
    ASSERT_EQ(t.Translate(0x40010, 4, Perm::kRead).uaddr, 0x1000010 + i * 0x1000) << i;
    ASSERT_EQ(t.Translate(0x40010, 4, Perm::kRead).uaddr, 0x1000010 + i * 0x1000) << i;
  }
  EXPECT_GE(t.CacheMisses(), 10000u);
}

TEST(AnyIotlb, MakesEveryRegisteredDesignByName) {
  for (const std::string& name : DesignNames()) {
    std::unique_ptr<AnyIotlb> t = MakeIotlb(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->Name(), name);
    EXPECT_EQ(t->Insert({0x1000, 0x1fff}, 0xa000, Perm::kRead), InsertStatus::kOk);
    EXPECT_EQ(t->Translate(0x1800, 4, Perm::kRead).uaddr, 0xa800u) << name;
    EXPECT_EQ(t->Size(), 1u);
    EXPECT_EQ(t->Invalidate(kFullRange), 1u);
    EXPECT_EQ(t->Translate(0x1800, 4, Perm::kRead).outcome, Outcome::kMiss) << name;
  }
  EXPECT_EQ(MakeIotlb("no-such-design"), nullptr);
}

}  // namespace
}  // namespace vhostlab::iotlb
