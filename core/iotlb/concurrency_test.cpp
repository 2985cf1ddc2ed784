// The invalidation guarantee for every design: readers on several threads translate through
// their Replicated<D> replicas while one writer remaps and invalidates pages; once Invalidate()
// returns, no reader may ever again see the translation it removed.
//
// Every UPDATE uses a uaddr never used before, so "the old translation" is recognisable: after
// Invalidate(page) returns, the writer publishes that page's last uaddr as forbidden. A reader
// loads the forbidden values right after its quiescent state (Quiesce()), so any forbidden value
// it sees was published after a grace period that its replica has already caught up with; a hit
// on it is a violation. Readers also count hits, so a run in which nothing was ever visible
// (a vacuous pass) fails too.
//
// The window in which a broken guarantee shows is a whole burst: a reader reloads the forbidden
// value of a page right before every lookup of it (valid: any value it loads after its
// Quiesce() was published after a grace period its replica has caught up with), and after
// publishing, the writer waits until the readers have done some lookups (Paced), so that
// readers are mid-burst while the writer works even on a loaded 2-core machine. Built as
// iotlb_concurrency_mutant_test (no grace period, replicated.hpp), the test asserts the
// opposite: violations are seen, for every design. The writer also remaps pages without an INVALIDATE (UPDATE
// replaces what it overlaps), as lazy-flush guests do, and mixes in 2 MiB and unaligned ranges.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/iotlb/replicated.hpp"
#include "core/iotlb/testing/all_designs.hpp"

namespace vhostlab::iotlb {
namespace {

constexpr int kPages = 16;
constexpr uint64_t kBase = 0x7fff00000000ull;
constexpr uint64_t kPage = 0x1000;
constexpr int kLookupsPerBurst = 256;
#ifdef VHOSTLAB_MUTANT_NO_GRACE_PERIOD
constexpr bool kMutant = true;
#else
constexpr bool kMutant = false;
#endif

template <typename D>
class Concurrency : public ::testing::Test {};

TYPED_TEST_SUITE(Concurrency, testing::AllTestedDesigns, testing::DesignNameGenerator);

TYPED_TEST(Concurrency, NoReaderSeesAnInvalidatedTranslation) {
  constexpr int kReaders = 3;
  constexpr int kRounds = 1500;
  Replicated<TypeParam> rep;
  std::array<std::atomic<uint64_t>, kPages> forbidden{};
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::atomic<uint64_t> violations{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> lookups{0};  // passes over the pages, all readers
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.emplace_back([&, i] {
      auto r = rep.RegisterReader();
      ready.fetch_add(1);
      uint64_t local_hits = 0;
      uint64_t bursts = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        r->Quiesce();
        for (int rep_i = 0; rep_i < kLookupsPerBurst / kPages; ++rep_i) {
          for (int p = 0; p < kPages; ++p) {
            const uint64_t bad = forbidden[p].load(std::memory_order_acquire);
            const Translation t =
                r->table().Translate(kBase + p * kPage + 0x80, 64, Perm::kRead);
            if (!t.hit()) continue;
            ++local_hits;
            if (bad != 0 && t.uaddr == bad + 0x80) violations.fetch_add(1);
          }
          lookups.fetch_add(1, std::memory_order_relaxed);
        }
        // Now and then sleep like an idle queue: offline readers are not waited for.
        if ((++bursts & 255) == static_cast<uint64_t>(i)) {
          r->Offline();
          std::this_thread::yield();
          r->Online();
        }
      }
      hits.fetch_add(local_hits);
    });
  }
  while (ready.load() != kReaders) std::this_thread::yield();

  // Lets the readers do a few passes after a publication (bounded: never a hang).
  auto paced = [&] {
    const uint64_t target = lookups.load() + 20;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (lookups.load() < target && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(20));  // leave the CPU to readers
  };
  uint64_t next_uaddr = 0x100000000ull;
  std::array<uint64_t, kPages> current{};
  auto update = [&](int p) {
    next_uaddr += kPage;
    current[p] = next_uaddr;
    rep.Insert({kBase + p * kPage, kBase + p * kPage + kPage - 1}, next_uaddr, Perm::kReadWrite);
  };
  for (int p = 0; p < kPages; ++p) update(p);
  rep.Synchronize();
  for (int round = 0; round < kRounds; ++round) {
    const int p = round % kPages;
    switch (round % 5) {
      case 0:
      case 1:
      case 2: {
        rep.Invalidate({kBase + p * kPage, kBase + p * kPage + kPage - 1});
        forbidden[p].store(current[p], std::memory_order_release);
        paced();
        update(p);
        break;
      }
      case 3: {
        // An unaligned invalidate that clips two neighbouring pages.
        const int q = (p + 1) % kPages;
        if (q != p + 1) break;
        // Readers probe [0x80, 0xc0) of each page: both probes lose their translation.
        rep.Invalidate({kBase + p * kPage + 0x40, kBase + q * kPage + 0xff});
        forbidden[p].store(current[p], std::memory_order_release);
        forbidden[q].store(current[q], std::memory_order_release);
        paced();
        update(p);
        update(q);
        break;
      }
      default:
        update(p);  // remap without invalidate: readers see it at their next Quiesce
        break;
    }
    if (round % 16 == 15) {
      // A full-range INVALIDATE, as QEMU sends on an IOMMU reset.
      rep.Invalidate(kFullRange);
      for (int k = 0; k < kPages; ++k) forbidden[k].store(current[k], std::memory_order_release);
      for (int k = 0; k < kPages; ++k) update(k);
    }
    paced();  // the readers pick the new entries up before a later round invalidates them
  }
  // Let readers run on the final mapping for a moment so the hit count is meaningful.
  rep.Synchronize();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : readers) t.join();
  if (kMutant) {
    EXPECT_GT(violations.load(), 0u) << "no grace period, and the test did not notice";
  } else {
    EXPECT_EQ(violations.load(), 0u);
  }
  EXPECT_GT(hits.load(), 0u);
}

}  // namespace
}  // namespace vhostlab::iotlb
