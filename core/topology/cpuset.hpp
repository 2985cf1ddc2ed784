// CPU lists and thread binding through hwloc: the primitives of the run's placement policy
// (core/experiment/placement.hpp) and of `vhostlab backend --cpus`.
//
// CPU ids here are always the kernel's (OS) PU numbers, what `taskset`, `lscpu` and hwloc's
// cpusets use, never hwloc logical indices. A CPU list is written in hwloc's list syntax
// ("0-3,8", what hwloc_bitmap_list_sscanf reads) or as an hwloc cpuset mask ("0xf"); both
// parse into a sorted list without duplicates. Binding goes through one process-wide hwloc
// topology loaded on first use (hwloc_set_cpubind with HWLOC_CPUBIND_THREAD): it binds only the
// calling thread, and threads it creates afterwards inherit the binding (Linux semantics), which
// the run relies on for the control threads it starts.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::topology {

// The largest CPU id a list may name: far above any machine, low enough that "0-99999999"
// cannot allocate a huge bitmap.
inline constexpr int kMaxCpuId = 65535;

// "0-3,8" (hwloc list syntax) or "0xff" (an hwloc cpuset mask) -> {0,1,2,3,8}, sorted. A plain
// list of single ids ("1,0", "3") keeps its order and repeats instead: thread i of a side takes
// the i-th entry, so "1,0" is a placement, not a set. Errors name the offending part: empty
// lists or items, reversed or open ranges ("3-1", "2-"), ids above kMaxCpuId, anything else.
Result<std::vector<int>> ParseCpuList(std::string_view text);

// {0,1,2,3,8} -> "0-3,8" (hwloc_bitmap_list_snprintf); "" for an empty list.
std::string FormatCpuList(const std::vector<int>& cpus);

// The CPUs the calling thread may run on (its current binding within hwloc's allowed set),
// grouped by core: cores()[i] lists core i's allowed PUs. A core with no allowed PU is left
// out. On failure to load the topology, one "core" per PU of sched_getaffinity.
std::vector<std::vector<int>> AllowedCores();
// AllowedCores() flattened, sorted.
std::vector<int> AllowedCpus();

// Error unless every CPU of `cpus` is in `allowed`; `what` names the setting in the message (empty:
// no prefix, when the caller adds its own)
// ("cpus: CPU 7 is not available to this process (allowed: 0-1)").
Status CheckCpusAllowed(const std::vector<int>& cpus, const std::vector<int>& allowed,
                        std::string_view what);

// Binds the calling thread to the set `cpus` (the thread may run on any of them). Error for an
// empty list or when the kernel refuses (a cpuset that excludes them).
Status BindThisThreadToCpus(const std::vector<int>& cpus);
// The calling thread's binding, sorted; empty when it cannot be read.
std::vector<int> ThisThreadCpus();
// Kernel thread `tid`'s binding (any thread of this process), sorted; empty when unreadable.
std::vector<int> ThreadCpus(int tid);

// Binds the calling thread for the scope's lifetime and restores its previous binding after:
// RunExperiment places its control threads through the caller's thread (a Python caller's
// thread must not stay bound once the run returns). An empty list binds nothing.
class ScopedThreadBinding {
 public:
  explicit ScopedThreadBinding(const std::vector<int>& cpus);
  ~ScopedThreadBinding();
  ScopedThreadBinding(const ScopedThreadBinding&) = delete;
  ScopedThreadBinding& operator=(const ScopedThreadBinding&) = delete;
  const Status& status() const { return status_; }

 private:
  std::vector<int> previous_;
  Status status_;
};

}  // namespace vhostlab::topology
