#include "core/iotlb/reference/reference.hpp"

#include <gtest/gtest.h>

namespace vhostlab::iotlb {
namespace {

TEST(Reference, InsertTranslateInvalidate) {
  Reference t;
  EXPECT_EQ(t.Insert({0x1000, 0x1fff}, 0xa000, Perm::kRead), InsertStatus::kOk);
  auto hit = t.Translate(0x1800, 0x100, Perm::kRead);
  ASSERT_TRUE(hit.hit());
  EXPECT_EQ(hit.uaddr, 0xa800u);
  EXPECT_EQ(hit.len, 0x100u);
  EXPECT_EQ(t.Translate(0x1800, 0x100, Perm::kWrite).outcome, Outcome::kAccessFail);
  EXPECT_EQ(t.Translate(0x2000, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Invalidate(kFullRange), 1u);
  EXPECT_EQ(t.Size(), 0u);
}

TEST(Reference, JoinsOnlyContiguousUaddrs) {
  Reference t;
  t.Insert({0x0, 0xfff}, 0x10000, Perm::kReadWrite);
  t.Insert({0x1000, 0x1fff}, 0x11000, Perm::kReadWrite);  // contiguous
  t.Insert({0x2000, 0x2fff}, 0x50000, Perm::kReadWrite);  // not contiguous
  auto r = t.Translate(0x800, 0x2000, Perm::kRead);
  ASSERT_TRUE(r.hit());
  EXPECT_EQ(r.len, 0x1800u);
  auto rest = t.Translate(0x2000, 0x800, Perm::kRead);
  ASSERT_TRUE(rest.hit());
  EXPECT_EQ(rest.uaddr, 0x50000u);
}

TEST(Reference, UpdateReplacesAndInvalidateTrims) {
  Reference t;
  t.Insert({0x0, 0x2fff}, 0x10000, Perm::kRead);
  t.Insert({0x1000, 0x1fff}, 0x90000, Perm::kWrite);
  EXPECT_EQ(t.Size(), 3u);
  EXPECT_EQ(t.Translate(0x1000, 1, Perm::kWrite).uaddr, 0x90000u);
  EXPECT_EQ(t.Translate(0x2000, 1, Perm::kRead).uaddr, 0x12000u);
  t.Invalidate({0x800, 0x27ff});
  EXPECT_EQ(t.Translate(0x7ff, 1, Perm::kRead).uaddr, 0x107ffu);
  EXPECT_EQ(t.Translate(0x800, 1, Perm::kRead).outcome, Outcome::kMiss);
  EXPECT_EQ(t.Translate(0x2800, 1, Perm::kRead).uaddr, 0x12800u);
}

TEST(Reference, TopOfAddressSpace) {
  Reference t;
  EXPECT_EQ(t.Insert({~0ull - 0xfff, ~0ull}, 0x1000, Perm::kRead), InsertStatus::kOk);
  auto r = t.Translate(~0ull - 0xf, 0x10, Perm::kRead);
  ASSERT_TRUE(r.hit());
  EXPECT_EQ(r.len, 0x10u);
  EXPECT_EQ(t.Insert({5, 4}, 0, Perm::kRead), InsertStatus::kInvalidRange);
}

}  // namespace
}  // namespace vhostlab::iotlb
