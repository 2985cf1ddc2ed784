// The front-end's per-packet path allocates nothing: during traffic, the queue threads of a run
// of 10x the packets make (almost) the same number of heap allocations, for every mapping model
// and with the IOMMU off. The backend runs in a forked child, and only the queue threads are
// counted (from the start line to the end of traffic), so set-up and the miss-service thread's
// 50 ms receive timeouts stay out. What may still grow with the run is amortized: the vIOMMU's
// latency samples (vector doubling) and its table reaching a new high of live entries.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <new>

#include "core/backend/backend.hpp"
#include "core/frontend/backend_process.hpp"
#include "core/frontend/frontend.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_allocations{0};
std::atomic<int> g_queue_tids[64];
std::atomic<int> g_queue_count{0};

bool OnQueueThread() {
  const int self = static_cast<int>(gettid());
  for (int i = 0; i < g_queue_count.load(std::memory_order_relaxed); ++i)
    if (g_queue_tids[i].load(std::memory_order_relaxed) == self) return true;
  return false;
}
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed) && OnQueueThread())
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace vhostlab::frontend {
namespace {

// Heap allocations by the queue threads during the traffic of one run of `packets` packets.
uint64_t AllocationsOf(const std::string& socket, Mapping mapping, bool iommu, uint64_t packets) {
  FrontendConfig c;
  c.socket_path = socket;
  c.mapping = mapping;
  c.iommu = iommu;
  c.packets = packets;
  c.stall_seconds = 10;
  g_allocations.store(0);
  c.on_traffic_start = [](const std::vector<int>& tids) {
    for (std::size_t i = 0; i < tids.size() && i < 64; ++i) g_queue_tids[i].store(tids[i]);
    g_queue_count.store(static_cast<int>(std::min<std::size_t>(tids.size(), 64)));
    g_counting.store(true);
  };
  c.on_traffic_end = [] { g_counting.store(false); };
  auto r = RunFrontend(c);
  g_counting.store(false);
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (r.ok()) {
    EXPECT_EQ(r->rx_packets(), packets);
    EXPECT_EQ(r->verify_errors(), 0u);
  }
  return g_allocations.load();
}

TEST(FrontendAllocations, NoHeapAllocationPerPacket) {
  struct Case {
    Mapping mapping;
    bool iommu;
  };
  for (Case k : {Case{Mapping::kStatic, false}, Case{Mapping::kStatic, true},
                 Case{Mapping::kCold, true}, Case{Mapping::kLazy, true},
                 Case{Mapping::kStrict, true}}) {
    SCOPED_TRACE(std::string(MappingName(k.mapping)) + (k.iommu ? "" : ", IOMMU off"));
    BackendProcess child(1, backend::DeviceMode::kLoopback, /*serve_forever=*/true);
    ASSERT_TRUE(child.ready());
    const uint64_t small = AllocationsOf(child.socket(), k.mapping, k.iommu, 2000);
    const uint64_t large = AllocationsOf(child.socket(), k.mapping, k.iommu, 20000);
    // 18000 more packets; a per-packet allocation would add at least that many.
    EXPECT_LT(large, small + 100) << "small run " << small << ", large run " << large;
  }
}

}  // namespace
}  // namespace vhostlab::frontend
