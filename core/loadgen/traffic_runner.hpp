// The per-queue traffic runner: what one queue pair's thread does between the start line and
// its last packet. It decides how much to send and when (burst size, open loop or a target
// rate, a packet count or a duration, an untimed warm-up first, the INVALIDATE storm's
// schedule) and when the run is over (all packets accounted for, stop asked, or no progress);
// the driver it runs does the ring mechanics and checks every frame (frontend::QueueDriver).
//
// One pass of the loop: reap transmit completions, reap (and check, and re-post) received
// frames, post up to a burst of new packets, maybe one storm burst, publish progress, then the
// loss heuristics. Losses: when the device has completed every transmit buffer yet packets stay
// missing and nothing moved for loss_ns, they were dropped (DPDK drops a packet whose buffer
// misses in its IOTLB): they are counted and traffic goes on, so drops cannot shrink the
// in-flight window to nothing. No progress at all for stall_seconds ends the queue.
// Pacing: with a target rate, packet k of the run may be posted from start + k / rate on; a
// runner that fell behind (flow control) catches up a burst at a time. Waiting for the schedule
// with nothing in flight is not a stall.
// Drain traffic (TrafficSpec::drain): instead of a burst per pass, a whole ring (as much as flow
// control allows) is posted once nothing is in flight, and the runner then only watches the
// used indexes (TimeDrain) until the device has published every completion the ring needs; the
// time from its first completion to its last, and the packets completed in it, are the drain's
// (the first completions, published before the clock could start, are left out of both). Then
// the loop reaps and checks as usual. So the backend works alone, never waiting for the driver:
// this measures its speed, where stream traffic measures the whole loop (whose slower side, on
// the 2-vCPU VMs here, is the front-end).
//
// The driver (a template parameter, so the per-packet path stays inlined) provides:
//   void BeginRun();                  fresh per-run state (sequence numbers restart at 0)
//   bool ReapTx();  bool ReapRx();    true when anything completed
//   uint32_t PostTx(uint32_t max, uint64_t limit);  packets posted (seq < limit unless 0)
//   uint64_t sent() const;  uint64_t accounted() const;  bool tx_all_complete() const;
//   void DeclareLost();               everything outstanding counts as dropped
//   Status StormBurst();
//   bool failed() const;  void Fail(std::string why);
//   Result EndRun(uint64_t start_ns); closes the run (drain, last flush) and returns its result
//   void ResetCounts();               after the warm-up: the timed run counts afresh
// and for drain traffic:
//   uint64_t DrainTarget() const;     completions the device publishes for what is in flight
//   uint64_t DeviceCompletions() const;  completions published and not reaped yet
//   void AddDrain(uint64_t ns, double packets);  one timed drain
// Invariant: nothing here allocates per packet; the clock is read once per pass only when a
// duration or a rate needs it, or while nothing progresses.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/base/result.hpp"

namespace vhostlab::loadgen {

struct TrafficSpec {
  uint64_t packets = 0;  // this queue's packets; 0: until stop or `seconds`
  double seconds = 0;    // duration; 0: none
  uint32_t burst = 32;   // packets posted per pass at most
  double rate_pps = 0;   // target packets/s of this queue; 0: open loop (as fast as the ring goes)
  uint64_t storm_interval = 0;  // packets between storm bursts; 0: no storm
  bool drain = false;  // whole rings, timed while the device drains them (see above)
  double stall_seconds = 5;
  uint64_t loss_ns = 200'000'000;
};

inline uint64_t SteadyNowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

template <typename Driver>
class TrafficRunner {
 public:
  TrafficRunner(Driver* driver, const TrafficSpec& spec) : d_(*driver), spec_(spec) {}

  // `packets` untimed packets at full speed and without storms (a working set's first touch,
  // warm caches), then the driver's counts restart; returns the warm-up's own result.
  auto Warmup(const std::atomic<bool>& stop, uint64_t packets) {
    TrafficSpec warm = spec_;
    warm.packets = packets;
    warm.rate_pps = 0;
    warm.storm_interval = 0;
    auto result = Run(warm, stop, nullptr);
    d_.ResetCounts();
    return result;
  }

  // The timed run; returns when all packets are accounted for, stop is set, or it stalls.
  auto Run(const std::atomic<bool>& stop, std::atomic<uint64_t>* progress) {
    return Run(spec_, stop, progress);
  }

 private:
  auto Run(const TrafficSpec& spec, const std::atomic<bool>& stop,
           std::atomic<uint64_t>* progress) {
    d_.BeginRun();
    const uint64_t stall_ns = static_cast<uint64_t>(spec.stall_seconds * 1e9);
    const uint64_t start = SteadyNowNs();
    const uint64_t deadline =
        spec.seconds > 0 ? start + static_cast<uint64_t>(spec.seconds * 1e9) : 0;
    uint64_t target = spec.packets;  // 0 until posting stops in timed mode
    bool posting = true;
    uint64_t last_progress = start;
    uint64_t next_storm = spec.storm_interval;
    while (!d_.failed()) {
      bool progressed = d_.ReapTx();
      if (!d_.failed() && d_.ReapRx()) progressed = true;
      if (d_.failed()) break;
      if (posting &&
          (stop.load(std::memory_order_relaxed) || (deadline && SteadyNowNs() >= deadline))) {
        posting = false;
        target = d_.sent();
      }
      bool paced = false;  // the schedule, not the ring, held packets back
      if (posting) {
        uint32_t want = spec.burst;
        if (spec.rate_pps > 0) {
          const double due = static_cast<double>(SteadyNowNs() - start) * spec.rate_pps / 1e9;
          const uint64_t allowed = static_cast<uint64_t>(due) + 1;
          want = allowed > d_.sent()
                     ? static_cast<uint32_t>(std::min<uint64_t>(spec.burst, allowed - d_.sent()))
                     : 0;
          paced = want == 0;
        }
        if (spec.drain) {
          if (d_.sent() == d_.accounted() && d_.tx_all_complete())
            if (const uint32_t n = d_.PostTx(UINT32_MAX, spec.packets)) {
              progressed = true;
              TimeDrain(spec, stop, n);
            }
        } else if (want && d_.PostTx(want, spec.packets)) {
          progressed = true;
        }
      }
      // The storm runs while the packets just posted are in flight: the device translates
      // while the INVALIDATEs wait for their acks.
      if (spec.storm_interval && !d_.failed() && d_.sent() >= next_storm) {
        next_storm = d_.sent() + spec.storm_interval;
        if (Status s = d_.StormBurst(); !s.ok()) {
          d_.Fail("storm: " + s.message());
          break;
        }
      }
      if (progress) progress->store(d_.accounted(), std::memory_order_relaxed);
      if (target && d_.accounted() >= target) break;
      if (progressed || (paced && d_.sent() == d_.accounted())) {
        last_progress = 0;
        continue;
      }
      const uint64_t now = SteadyNowNs();
      if (last_progress == 0) last_progress = now;
      if (d_.sent() != d_.accounted() && d_.tx_all_complete() &&
          now - last_progress > spec.loss_ns) {
        d_.DeclareLost();
        last_progress = 0;
        continue;
      }
      if (now - last_progress > stall_ns) {
        const uint64_t outstanding = d_.sent() - d_.accounted();
        d_.DeclareLost();
        d_.Fail("no progress for " + std::to_string(spec.stall_seconds) + " s with " +
                std::to_string(outstanding) + " packets outstanding");
      }
    }
    if (progress) progress->store(d_.accounted(), std::memory_order_relaxed);
    return d_.EndRun(start);
  }

  // Drain traffic: watches the device complete the `posted` packets just published. Each read
  // of a used index takes its line from the device's core, so the reads are ~300 ns apart
  // (a 1024-packet drain takes tens of microseconds). Returns at the last completion, or when
  // nothing moved for loss_ns (the loop's loss and stall rules then take over; that drain is
  // not timed), or on stop.
  void TimeDrain(const TrafficSpec& spec, const std::atomic<bool>& stop, uint32_t posted) {
    constexpr uint64_t kPollGapNs = 300;
    const uint64_t want = d_.DrainTarget();
    uint64_t seen = 0, first = 0, t_first = 0;
    uint64_t last_change = SteadyNowNs();
    for (;;) {
      const uint64_t now = SteadyNowNs();
      const uint64_t done = d_.DeviceCompletions();
      if (done != seen) {
        if (t_first == 0) t_first = now, first = done;
        seen = done;
        last_change = now;
      }
      if (done >= want) {
        if (t_first && now > t_first && want > first) {
          const double timed_share = static_cast<double>(want - first) / static_cast<double>(want);
          d_.AddDrain(now - t_first, static_cast<double>(posted) * timed_share);
        }
        return;
      }
      if (now - last_change > spec.loss_ns || stop.load(std::memory_order_relaxed)) return;
      while (SteadyNowNs() - now < kPollGapNs) __builtin_ia32_pause();
    }
  }

  Driver& d_;
  TrafficSpec spec_;
};

}  // namespace vhostlab::loadgen
