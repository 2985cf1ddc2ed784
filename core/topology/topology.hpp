// The machine's topology from hwloc: cores, PUs, caches (size, line, ways, sharing), NUMA nodes,
// and binding the calling thread to one core (the load generator pins its traffic threads).
//
// Topology::Load() takes one snapshot of hwloc's view at that moment; the result is plain data
// (copyable, no hwloc handle leaks out) except for binding, which keeps the loaded hwloc
// topology alive behind a shared_ptr so BindThisThreadToCore() uses the same core numbering
// as cores(). Core indices are hwloc logical indices (0..cores()-1, in topology order), not OS
// numbers; each CoreInfo lists its OS PU numbers for that translation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::topology {

struct CoreInfo {
  int index = 0;         // logical index, what BindThisThreadToCore() takes
  int os_index = -1;     // the kernel's core id (-1 when unknown)
  int numa_node = -1;    // logical index of the NUMA node holding it
  std::vector<int> pus;  // OS cpu numbers of its hardware threads
};

struct CacheInfo {
  int level = 0;     // 1, 2, 3, ...
  std::string type;  // "data", "instruction", "unified"
  uint64_t size_bytes = 0;
  uint32_t line_bytes = 0;
  int ways = 0;            // -1 = fully associative, 0 = unknown
  std::vector<int> cores;  // logical core indices sharing this cache
  std::vector<int> pus;    // OS cpu numbers sharing it
};

struct NumaNode {
  int index = 0;
  int os_index = -1;
  uint64_t local_memory_bytes = 0;
  std::vector<int> cores;
};

class Topology {
 public:
  static Result<Topology> Load();

  const std::vector<CoreInfo>& cores() const { return cores_; }
  const std::vector<CacheInfo>& caches() const { return caches_; }
  const std::vector<NumaNode>& numa_nodes() const { return numa_; }
  int pus() const { return pus_; }
  int packages() const { return packages_; }

  // Binds the calling thread to core `core` (all of its PUs). Error for an index out of range
  // or when the kernel refuses the binding (e.g. a cpuset that excludes the core).
  Status BindThisThreadToCore(int core) const;
  // The OS cpu the calling thread last ran on (for checking a binding).
  static int CurrentCpu();

  // Compact one-line-per-object description ("core 0: PUs 0 | L1d 48 KiB ...").
  std::string Describe() const;
  // Flat key/value context for run records: "cores", "pus", "l1d", "l2", "l3", "numa_nodes".
  std::vector<std::pair<std::string, std::string>> Context() const;

 private:
  struct Handle;
  std::shared_ptr<Handle> handle_;
  std::vector<CoreInfo> cores_;
  std::vector<CacheInfo> caches_;
  std::vector<NumaNode> numa_;
  int pus_ = 0;
  int packages_ = 0;
};

// "48 KiB", "2 MiB", "480 MiB".
std::string FormatBytes(uint64_t bytes);

}  // namespace vhostlab::topology
