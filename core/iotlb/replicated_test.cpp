// Replicated<D>: after Invalidate() returns, no reader translates through the old entry.
#include "core/iotlb/replicated.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace vhostlab::iotlb {
namespace {

TEST(Replicated, LateReaderStartsWithCurrentEntries) {
  Replicated<Reference> rep;
  rep.Insert({0x1000, 0x1fff}, 0xa000, Perm::kReadWrite);
  std::thread t([&] {
    auto r = rep.RegisterReader();
    EXPECT_TRUE(r->table().Translate(0x1000, 16, Perm::kRead).hit());
  });
  t.join();
}

TEST(Replicated, InsertIsSeenAfterQuiesce) {
  Replicated<Reference> rep;
  std::atomic<int> stage{0};
  std::thread t([&] {
    auto r = rep.RegisterReader();
    stage = 1;
    while (stage.load() != 2) r->Quiesce();
    r->Quiesce();
    EXPECT_TRUE(r->table().Translate(0x5000, 1, Perm::kRead).hit());
    EXPECT_GE(r->generation(), 1u);
  });
  while (stage.load() != 1) std::this_thread::yield();
  rep.Insert({0x5000, 0x5fff}, 0x9000, Perm::kRead);
  stage = 2;
  t.join();
}

// The guarantee: readers record, after each burst, which "version" of the mapping they saw;
// the writer flips a page between two uaddrs with invalidate + update and checks that after
// Invalidate() returns no reader reports the invalidated uaddr again.
TEST(Replicated, NoReaderUsesAnInvalidatedTranslation) {
  Replicated<Reference> rep;
  constexpr int kReaders = 3;
  constexpr int kRounds = 300;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> forbidden{0};  // uaddr no reader may see any more
  std::atomic<uint64_t> violations{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.emplace_back([&, i] {
      auto r = rep.RegisterReader();
      ++ready;
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        r->Quiesce();
        // Read `forbidden` after the quiescent state: the writer published it before waiting.
        const uint64_t bad = forbidden.load(std::memory_order_acquire);
        for (int k = 0; k < 64; ++k) {
          Translation t = r->table().Translate(0x10000, 8, Perm::kRead);
          if (t.hit() && bad && t.uaddr == bad) violations.fetch_add(1);
        }
        if ((++n & 127) == static_cast<uint64_t>(i)) {
          r->Offline();
          std::this_thread::yield();
          r->Online();
        }
      }
    });
  }
  while (ready.load() != kReaders) std::this_thread::yield();
  uint64_t current = 0x100000;
  rep.Insert({0x10000, 0x10fff}, current, Perm::kRead);
  for (int round = 0; round < kRounds; ++round) {
    rep.Invalidate({0x10000, 0x10fff});
    forbidden.store(current, std::memory_order_release);
    current += 0x1000;
    rep.Insert({0x10000, 0x10fff}, current, Perm::kRead);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(violations.load(), 0u);
}

}  // namespace
}  // namespace vhostlab::iotlb
