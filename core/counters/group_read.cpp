#include "core/counters/group_read.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace vhostlab::counters {

Result<std::vector<MemberReading>> DecodeGroupRead(std::span<const uint64_t> member_ids,
                                                   const void* buf, std::size_t bytes) {
  constexpr std::size_t kWord = sizeof(uint64_t);
  if (bytes < 3 * kWord)
    return Error{"counters: group read of " + std::to_string(bytes) +
                 " bytes is shorter than its 24-byte header"};
  uint64_t header[3];
  std::memcpy(header, buf, sizeof header);
  const uint64_t nr = header[0], enabled = header[1], running = header[2];
  if (nr > (bytes / kWord - 3) / 2)
    return Error{"counters: group read announces " + std::to_string(nr) + " values but holds " +
                 std::to_string((bytes / kWord - 3) / 2)};
  if (running > enabled)
    return Error{"counters: group read has time_running " + std::to_string(running) +
                 " > time_enabled " + std::to_string(enabled)};

  std::vector<MemberReading> out(member_ids.size());
  for (MemberReading& r : out) {
    r.value = std::numeric_limits<double>::quiet_NaN();
    r.note = "unavailable: missing from its group's read";
  }
  const auto* bytes_in = static_cast<const unsigned char*>(buf);
  for (uint64_t k = 0; k < nr; ++k) {
    uint64_t pair[2];  // value, id
    std::memcpy(pair, bytes_in + (3 + 2 * k) * kWord, sizeof pair);
    for (std::size_t m = 0; m < member_ids.size(); ++m) {
      if (member_ids[m] != pair[1]) continue;
      MemberReading& r = out[m];
      r.raw = pair[0];
      r.note.clear();
      if (enabled > 0 && running == 0) {
        // Enabled but never on the PMU: the group never fit. No count to scale, no value.
        r.available = false;
        r.value = std::numeric_limits<double>::quiet_NaN();
        r.note = "unavailable: never scheduled on the PMU (multiplexed out for the whole window)";
      } else if (running < enabled) {
        r.available = true;
        r.multiplexed = true;
        r.running_fraction = static_cast<double>(running) / static_cast<double>(enabled);
        r.value = static_cast<double>(pair[0]) * static_cast<double>(enabled) /
                  static_cast<double>(running);
        char note[96];
        std::snprintf(note, sizeof note, "multiplexed: counted %.1f%% of the time, scaled",
                      100.0 * r.running_fraction);
        r.note = note;
      } else {
        r.available = true;
        r.value = static_cast<double>(pair[0]);
      }
    }
  }
  return out;
}

std::vector<std::vector<int>> PlanHardwareGroups(int count, int per_group) {
  if (per_group < 1) per_group = 1;
  std::vector<std::vector<int>> groups;
  for (int i = 0; i < count; ++i) {
    if (i % per_group == 0) groups.emplace_back();
    groups.back().push_back(i);
  }
  return groups;
}

int HardwareGroupSize(int nmi_watchdog) {
  constexpr int kGeneralPurposeCounters = 4;
  if (nmi_watchdog < 0) {
    std::ifstream f("/proc/sys/kernel/nmi_watchdog");
    nmi_watchdog = 0;
    f >> nmi_watchdog;
  }
  return kGeneralPurposeCounters - (nmi_watchdog > 0 ? 1 : 0);
}

}  // namespace vhostlab::counters
