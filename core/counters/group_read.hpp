// Pure pieces of the counter collector, testable without a PMU:
//
//  - DecodeGroupRead(): what one read() of a perf group leader returns, with
//    read_format = PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | ID, i.e.
//      u64 nr; u64 time_enabled; u64 time_running; { u64 value; u64 id; } values[nr];
//    (perf_event_open(2), "Reading results"), turned into one reading per member.
//    Rules: running == enabled: the raw count. 0 < running < enabled: multiplexed, scaled by
//    enabled / running and reported with the fraction. enabled > 0 == running: the group was
//    never scheduled, so there is no value (unavailable, never 0). enabled == running == 0:
//    nothing elapsed, the count (0) is exact. A member whose id is not in the read (a partial
//    group: the kernel lists the members that are attached) is unavailable. A buffer shorter
//    than the header, or than the nr entries it announces, is an error: a torn read is never
//    decoded into numbers.
//  - PlanHardwareGroups(): hardware events split into groups of at most `per_group` members,
//    in request order. A group is scheduled on the PMU all or nothing: one larger than the free
//    general-purpose counters is never scheduled (every member reads "never scheduled").
//    HardwareGroupSize() is the size used: 4 general-purpose counters (the smallest common x86
//    core: Intel with SMT; AMD Zen has 6), less one while the NMI watchdog holds one
//    (/proc/sys/kernel/nmi_watchdog = 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::counters {

struct MemberReading {
  bool available = false;  // false: value is NaN and note says why
  bool multiplexed = false;
  uint64_t raw = 0;               // the kernel's unscaled count
  double value = 0;               // scaled when multiplexed
  double running_fraction = 1;    // time_running / time_enabled (1 when not multiplexed)
  std::string note;               // why unavailable, or the multiplexing note
};

// `member_ids`: the kernel ids (PERF_EVENT_IOC_ID) of the group's members, in member order;
// `buf`, `bytes`: what read() on the leader returned. One reading per member, same order.
Result<std::vector<MemberReading>> DecodeGroupRead(std::span<const uint64_t> member_ids,
                                                   const void* buf, std::size_t bytes);

// Bytes a group read of `members` events needs.
constexpr std::size_t GroupReadBytes(std::size_t members) { return (3 + 2 * members) * 8; }

// Indices of `count` hardware events, split into groups of at most `per_group` (>= 1).
std::vector<std::vector<int>> PlanHardwareGroups(int count, int per_group);

// The group size for this machine: 4 general-purpose counters, less one when the NMI watchdog
// holds one. `nmi_watchdog` < 0 reads /proc/sys/kernel/nmi_watchdog.
int HardwareGroupSize(int nmi_watchdog = -1);

}  // namespace vhostlab::counters
