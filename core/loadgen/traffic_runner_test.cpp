// The traffic runner alone, over a fake driver whose "device" returns what was posted on the
// next reap (or drops, or never completes): burst size, packet count, duration, target rate,
// warm-up, the storm schedule, and the loss and stall rules.
#include "core/loadgen/traffic_runner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>

namespace vhostlab::loadgen {
namespace {

struct FakeResult {
  uint64_t sent = 0, received = 0, drops = 0, storms = 0, elapsed_ns = 0;
  std::string error;
};

class FakeDriver {
 public:
  uint32_t ring = 64;
  uint64_t drop_every = 0;  // the device loses every n-th packet (0: none)
  bool dead = false;        // the device never completes anything

  void BeginRun() {
    sent_ = accounted_ = in_flight_ = 0;
    ++runs;
  }
  bool ReapTx() { return false; }
  bool ReapRx() {
    if (dead || in_flight_ == 0) return false;
    // Everything posted comes back now, except the dropped packets (never seen again).
    for (uint64_t seq = accounted_; seq < sent_; ++seq)
      if (!(drop_every && seq % drop_every == drop_every - 1)) {
        r_.drops += seq - accounted_;
        accounted_ = seq + 1;
        ++r_.received;
      }
    in_flight_ = 0;  // the transmit side is complete either way
    return true;
  }
  uint32_t PostTx(uint32_t max, uint64_t limit) {
    max_asked = std::max(max_asked, max);
    uint32_t n = 0;
    while (n < max && sent_ - accounted_ < ring && (limit == 0 || sent_ < limit)) {
      ++sent_;
      ++in_flight_;
      ++n;
    }
    max_posted = std::max(max_posted, n);
    looks_ = 0;
    if (n && first_post_ns == 0) first_post_ns = SteadyNowNs();
    if (n) last_post_ns = SteadyNowNs();
    return n;
  }
  uint64_t sent() const { return sent_; }
  uint64_t accounted() const { return accounted_; }
  bool tx_all_complete() const { return !dead || in_flight_ == 0; }
  void DeclareLost() {
    r_.drops += sent_ - accounted_;
    accounted_ = sent_;
  }
  Status StormBurst() {
    ++r_.storms;
    return {};
  }
  bool failed() const { return !r_.error.empty(); }
  void Fail(std::string why) { r_.error = std::move(why); }
  FakeResult EndRun(uint64_t start_ns) {
    r_.sent = sent_;
    r_.elapsed_ns = SteadyNowNs() - start_ns;
    return r_;
  }
  // Drain traffic: the device publishes one used entry (a transmit or a receive one; two per
  // packet) each time the runner looks, so every drain is timed over several looks.
  uint64_t DrainTarget() const { return 2 * in_flight_; }
  uint64_t DeviceCompletions() const { return dead ? 0 : std::min(++looks_, DrainTarget()); }
  void AddDrain(uint64_t ns, double packets) {
    ++drains;
    drain_ns += ns;
    drain_packets += packets;
  }
  void ResetCounts() {
    r_ = FakeResult{};
    ++resets;
  }

  uint32_t max_asked = 0, max_posted = 0;
  int drains = 0;
  uint64_t drain_ns = 0;
  double drain_packets = 0;
  int runs = 0, resets = 0;
  uint64_t first_post_ns = 0, last_post_ns = 0;

 private:
  uint64_t sent_ = 0, accounted_ = 0, in_flight_ = 0;
  mutable uint64_t looks_ = 0;
  FakeResult r_;
};

TEST(TrafficRunner, CountModePostsInBurstsUntilEveryPacketIsAccounted) {
  FakeDriver d;
  TrafficSpec spec;
  spec.packets = 1000;
  spec.burst = 8;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> progress{0};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, &progress);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.sent, 1000u);
  EXPECT_EQ(r.received, 1000u);
  EXPECT_EQ(progress.load(), 1000u);
  EXPECT_EQ(d.max_asked, 8u) << "never more than a burst per pass";
  EXPECT_EQ(r.storms, 0u);
}

TEST(TrafficRunner, DrainPostsWholeRingsOnlyWhenNothingIsInFlightAndTimesTheDevice) {
  FakeDriver d;
  d.ring = 64;
  TrafficSpec spec;
  spec.packets = 1000;
  spec.drain = true;
  std::atomic<bool> stop{false};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.sent, 1000u);
  EXPECT_EQ(r.received, 1000u);
  EXPECT_EQ(d.max_posted, 64u) << "a whole ring per drain";
  EXPECT_EQ(d.drains, 16) << "15 rings of 64 and one of 40, each timed";
  // The first completion of each drain is published before its clock starts: its share of
  // the drain's packets is left out (1 of 128 entries, 1 of 80 for the last drain).
  EXPECT_NEAR(d.drain_packets, 15 * 64 * 127.0 / 128 + 40 * 79.0 / 80, 1e-9);
  EXPECT_GT(d.drain_ns, 0u);
}

TEST(TrafficRunner, DrainOfADeadDeviceIsNotTimedAndEndsAfterTheStallTime) {
  FakeDriver d;
  d.dead = true;
  TrafficSpec spec;
  spec.packets = 100;
  spec.drain = true;
  spec.loss_ns = 1'000'000;
  spec.stall_seconds = 0.05;
  std::atomic<bool> stop{false};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  EXPECT_NE(r.error.find("no progress"), std::string::npos) << r.error;
  EXPECT_EQ(r.sent, 64u) << "one ring posted, never completed";
  EXPECT_EQ(d.drains, 0) << "a drain that never ends is not timed";
}

TEST(TrafficRunner, DurationModeStopsPostingAtTheDeadline) {
  FakeDriver d;
  TrafficSpec spec;
  spec.seconds = 0.05;
  std::atomic<bool> stop{false};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_GT(r.sent, 0u);
  EXPECT_EQ(r.received, r.sent) << "what was posted is still accounted for";
  EXPECT_GE(r.elapsed_ns, 50'000'000u);
}

TEST(TrafficRunner, TargetRateHoldsPacketsToTheirSchedule) {
  FakeDriver d;
  TrafficSpec spec;
  spec.packets = 50;
  spec.rate_pps = 1000;  // packet k no earlier than k ms after the start
  spec.stall_seconds = 0.01;  // waiting for the schedule is not a stall
  std::atomic<bool> stop{false};
  const uint64_t t0 = SteadyNowNs();
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.received, 50u);
  EXPECT_GE(d.last_post_ns - t0, 49'000'000u) << "the 50th packet is due 49 ms in";
  EXPECT_LE(d.max_asked, 32u);
}

TEST(TrafficRunner, WarmupRunsUntimedThenTheCountsRestart) {
  FakeDriver d;
  TrafficSpec spec;
  spec.packets = 100;
  spec.storm_interval = 10;
  spec.rate_pps = 1;  // the warm-up ignores the rate (and the storm): it would take 300 s
  std::atomic<bool> stop{false};
  TrafficRunner<FakeDriver> runner(&d, spec);
  FakeResult warm = runner.Warmup(stop, 300);
  EXPECT_EQ(warm.sent, 300u);
  EXPECT_EQ(warm.storms, 0u);
  EXPECT_EQ(d.resets, 1);
  EXPECT_EQ(d.runs, 1);
}

TEST(TrafficRunner, StormEveryIntervalPackets) {
  FakeDriver d;
  TrafficSpec spec;
  spec.packets = 1000;
  spec.burst = 4;
  spec.storm_interval = 100;
  std::atomic<bool> stop{false};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  // A burst after each pass that crosses the next multiple: at 100, ~200, ... (burst 4 can
  // overshoot by 3 per interval).
  EXPECT_GE(r.storms, 1000u / 103);
  EXPECT_LE(r.storms, 10u);
}

TEST(TrafficRunner, LossesAreCountedAndTrafficGoesOn) {
  FakeDriver d;
  d.drop_every = 10;
  TrafficSpec spec;
  spec.packets = 200;
  spec.loss_ns = 1'000'000;
  std::atomic<bool> stop{false};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.sent, 200u);
  EXPECT_EQ(r.received + r.drops, 200u);
  EXPECT_EQ(r.drops, 20u);
}

TEST(TrafficRunner, ADeadDeviceEndsTheQueueAfterTheStallTime) {
  FakeDriver d;
  d.dead = true;
  TrafficSpec spec;
  spec.packets = 100;
  spec.stall_seconds = 0.05;
  std::atomic<bool> stop{false};
  FakeResult r = TrafficRunner<FakeDriver>(&d, spec).Run(stop, nullptr);
  EXPECT_NE(r.error.find("no progress for"), std::string::npos) << r.error;
  EXPECT_EQ(r.drops, r.sent) << "the outstanding packets count as dropped";
  EXPECT_EQ(r.sent, 64u) << "a ring's worth went out";
}

}  // namespace
}  // namespace vhostlab::loadgen
