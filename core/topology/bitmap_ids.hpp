// hwloc bitmap -> the OS ids it holds, in increasing order: shared by topology.cpp (cores and
// caches) and cpuset.cpp (CPU lists and binding). Internal to core/topology.
#pragma once

#include <hwloc.h>

#include <vector>

namespace vhostlab::topology {

inline std::vector<int> BitmapIds(hwloc_const_bitmap_t b) {
  std::vector<int> out;
  int i;
  hwloc_bitmap_foreach_begin(i, b) { out.push_back(i); }
  hwloc_bitmap_foreach_end();
  return out;
}

}  // namespace vhostlab::topology
