// hwloc-backed topology snapshot and thread binding (see topology.hpp).
//
// hwloc hides instruction caches by default; they are enabled here so L1i shows up with L1d.
// Sharing is computed from cpusets: a core shares a cache when the core's cpuset is included in
// the cache's cpuset, and belongs to a NUMA node when their cpusets intersect.
#include "core/topology/topology.hpp"

#include <absl/strings/str_join.h>
#include <hwloc.h>
#include <sched.h>

#include <cstdio>

#include "core/topology/bitmap_ids.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::topology {

struct Topology::Handle {
  hwloc_topology_t topo = nullptr;
  ~Handle() {
    if (topo) hwloc_topology_destroy(topo);
  }
};

std::string FormatBytes(uint64_t bytes) {
  // Exact multiples print as integers ("48 KiB"); others with one decimal ("5.2 GiB").
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (v == static_cast<double>(static_cast<uint64_t>(v))) {
    std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

Result<Topology> Topology::Load() {
  auto handle = std::make_shared<Handle>();
  if (hwloc_topology_init(&handle->topo) != 0) return Error{"hwloc_topology_init failed"};
  hwloc_topology_set_icache_types_filter(handle->topo, HWLOC_TYPE_FILTER_KEEP_ALL);
  if (hwloc_topology_load(handle->topo) != 0) return Error{"hwloc_topology_load failed"};
  hwloc_topology_t topo = handle->topo;

  Topology t;
  t.handle_ = handle;
  t.pus_ = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  t.packages_ = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);

  const int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  std::vector<hwloc_obj_t> core_objs;
  for (int i = 0; i < ncores; ++i) {
    hwloc_obj_t c = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, i);
    core_objs.push_back(c);
    CoreInfo info;
    info.index = i;
    info.os_index = c->os_index == HWLOC_UNKNOWN_INDEX ? -1 : static_cast<int>(c->os_index);
    info.pus = BitmapIds(c->cpuset);
    t.cores_.push_back(std::move(info));
  }

  const int nnodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int n = 0; n < nnodes; ++n) {
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n);
    NumaNode info;
    info.index = n;
    info.os_index = static_cast<int>(node->os_index);
    info.local_memory_bytes = node->attr ? node->attr->numanode.local_memory : 0;
    for (int i = 0; i < ncores; ++i) {
      if (hwloc_bitmap_intersects(core_objs[i]->cpuset, node->cpuset)) {
        info.cores.push_back(i);
        if (t.cores_[i].numa_node < 0) t.cores_[i].numa_node = n;
      }
    }
    t.numa_.push_back(std::move(info));
  }

  const hwloc_obj_type_t cache_types[] = {
      HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L1ICACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L2ICACHE,
      HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L3ICACHE, HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L5CACHE};
  for (hwloc_obj_type_t type : cache_types) {
    const int n = hwloc_get_nbobjs_by_type(topo, type);
    for (int k = 0; k < n; ++k) {
      hwloc_obj_t obj = hwloc_get_obj_by_type(topo, type, k);
      const auto& a = obj->attr->cache;
      CacheInfo info;
      info.level = static_cast<int>(a.depth);
      info.type = a.type == HWLOC_OBJ_CACHE_DATA          ? "data"
                  : a.type == HWLOC_OBJ_CACHE_INSTRUCTION ? "instruction"
                                                          : "unified";
      info.size_bytes = a.size;
      info.line_bytes = a.linesize;
      info.ways = a.associativity;
      info.pus = BitmapIds(obj->cpuset);
      for (int i = 0; i < ncores; ++i) {
        if (hwloc_bitmap_isincluded(core_objs[i]->cpuset, obj->cpuset)) info.cores.push_back(i);
      }
      t.caches_.push_back(std::move(info));
    }
  }
  return t;
}

Status Topology::BindThisThreadToCore(int core) const {
  if (core < 0 || core >= static_cast<int>(cores_.size())) {
    return Error{"topology: core " + std::to_string(core) + " out of range (machine has " +
                 std::to_string(cores_.size()) + " cores)"};
  }
  // A core is the set of its PUs: one binder (cpuset.hpp) for every thread placement.
  return BindThisThreadToCpus(cores_[core].pus);
}

int Topology::CurrentCpu() { return sched_getcpu(); }

std::string Topology::Describe() const {
  std::string s = std::to_string(packages_) + " package(s), " + std::to_string(cores_.size()) +
                  " cores, " + std::to_string(pus_) + " PUs, " + std::to_string(numa_.size()) +
                  " NUMA node(s)\n";
  for (const NumaNode& n : numa_) {
    s += "  numa " + std::to_string(n.index) + ": " + FormatBytes(n.local_memory_bytes) +
         ", cores " + absl::StrJoin(n.cores, ",") + "\n";
  }
  for (const CoreInfo& c : cores_) {
    s += "  core " + std::to_string(c.index) + ": PUs " + absl::StrJoin(c.pus, ",") + "\n";
  }
  for (const CacheInfo& c : caches_) {
    const char* suffix = c.type == "data" ? "d" : c.type == "instruction" ? "i" : "";
    s += "  L" + std::to_string(c.level) + suffix + ": " + FormatBytes(c.size_bytes) + ", " +
         std::to_string(c.line_bytes) + " B lines, " +
         (c.ways < 0 ? std::string("fully associative") : std::to_string(c.ways) + "-way") +
         ", shared by cores " + absl::StrJoin(c.cores, ",") + "\n";
  }
  return s;
}

std::vector<std::pair<std::string, std::string>> Topology::Context() const {
  std::vector<std::pair<std::string, std::string>> out = {
      {"packages", std::to_string(packages_)},
      {"cores", std::to_string(cores_.size())},
      {"pus", std::to_string(pus_)},
      {"numa_nodes", std::to_string(numa_.size())},
  };
  // One entry per cache level and type (the first one: caches of one level are uniform here).
  for (const CacheInfo& c : caches_) {
    std::string key = "l";
    key += std::to_string(c.level);
    key += c.type == "data" ? "d" : c.type == "instruction" ? "i" : "";
    bool seen = false;
    for (const auto& kv : out) seen |= kv.first == key;
    if (!seen) {
      std::string value = FormatBytes(c.size_bytes);
      value += ", shared by ";
      value += std::to_string(c.cores.size());
      value += c.cores.size() == 1 ? " core" : " cores";
      out.emplace_back(key, std::move(value));
    }
  }
  return out;
}

}  // namespace vhostlab::topology
