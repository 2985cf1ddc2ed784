// CPU lists and thread binding through hwloc (see cpuset.hpp).
//
// Parsing: the text is checked item by item first, so an error can say which item is wrong
// (hwloc's own parsers only say "failed" and accept things a user did not mean, such as the
// open range "2-", an infinite set); hwloc then parses it, so the syntax is exactly hwloc's.
#include "core/topology/cpuset.hpp"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/topology/bitmap_ids.hpp"

namespace vhostlab::topology {
namespace {

// One topology for every binding in the process, loaded once (thread-safe static init).
// hwloc topologies may be used from several threads at once as long as nobody modifies them;
// set/get_cpubind only read it.
hwloc_topology_t SharedTopology() {
  struct Holder {
    hwloc_topology_t topo = nullptr;
    Holder() {
      if (hwloc_topology_init(&topo) != 0) {
        topo = nullptr;
        return;
      }
      if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        topo = nullptr;
      }
    }
    ~Holder() {
      if (topo) hwloc_topology_destroy(topo);
    }
  };
  static Holder holder;
  return holder.topo;
}

struct BitmapDeleter {
  void operator()(hwloc_bitmap_s* b) const { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

Bitmap NewBitmap() { return Bitmap(hwloc_bitmap_alloc()); }

Bitmap ToBitmap(const std::vector<int>& cpus) {
  Bitmap b = NewBitmap();
  for (int c : cpus) hwloc_bitmap_set(b.get(), static_cast<unsigned>(c));
  return b;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A CPU id of a list item, bounded by kMaxCpuId; -1 when not a number or too large.
int CpuId(std::string_view s) {
  if (!AllDigits(s) || s.size() > 6) return -1;
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v <= kMaxCpuId ? v : -1;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::vector<int> SchedAffinity() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

}  // namespace

Result<std::vector<int>> ParseCpuList(std::string_view text) {
  const std::string t = Trim(text);
  const std::string quoted = "'" + std::string(text) + "'";
  if (t.empty()) return Error{"empty CPU list (give e.g. 0-3,8 or 0xf)"};
  Bitmap b = NewBitmap();
  if (t.rfind("0x", 0) == 0 || t.rfind("0X", 0) == 0) {
    // hwloc's mask syntax: 32-bit hex words separated by commas, most significant first.
    for (char c : t)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ',' && c != 'x' && c != 'X')
        return Error{"CPU mask " + quoted + ": only hex digits and commas after 0x"};
    if (t.size() > 2 + (kMaxCpuId + 1) / 4 + (kMaxCpuId + 1) / 32)
      return Error{"CPU mask " + quoted + " names CPUs above " + std::to_string(kMaxCpuId)};
    if (hwloc_bitmap_sscanf(b.get(), t.c_str()) != 0)
      return Error{"CPU mask " + quoted + " is not an hwloc cpuset (e.g. 0xf or 0x1,0x0)"};
  } else {
    std::size_t start = 0;
    while (start <= t.size()) {
      std::size_t comma = t.find(',', start);
      std::string_view item(t.data() + start,
                            (comma == std::string::npos ? t.size() : comma) - start);
      const std::string it(item);
      if (item.empty())
        return Error{"CPU list " + quoted + ": empty item (write e.g. 0-3,8)"};
      std::size_t dash = item.find('-');
      if (dash == std::string_view::npos) {
        if (CpuId(item) < 0)
          return Error{"CPU list " + quoted + ": '" + it + "' is not a CPU id (0.." +
                       std::to_string(kMaxCpuId) + ")"};
      } else {
        const int lo = CpuId(item.substr(0, dash)), hi = CpuId(item.substr(dash + 1));
        if (lo < 0 || hi < 0)
          return Error{"CPU list " + quoted + ": '" + it + "' is not a range FIRST-LAST of CPU ids (0.." +
                       std::to_string(kMaxCpuId) + ")"};
        if (lo > hi)
          return Error{"CPU list " + quoted + ": range '" + it + "' runs backwards"};
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (t.find('-') == std::string::npos) {
      // Plain ids, all checked above: the order is the placement.
      std::vector<int> ordered;
      std::size_t from = 0;
      for (std::size_t comma; (comma = t.find(',', from)) != std::string::npos; from = comma + 1)
        ordered.push_back(CpuId(std::string_view(t).substr(from, comma - from)));
      ordered.push_back(CpuId(std::string_view(t).substr(from)));
      return ordered;
    }
    if (hwloc_bitmap_list_sscanf(b.get(), t.c_str()) != 0)
      return Error{"CPU list " + quoted + " is not an hwloc list (e.g. 0-3,8)"};
  }
  if (hwloc_bitmap_weight(b.get()) < 0)
    return Error{"CPU list " + quoted + " is infinite"};
  if (hwloc_bitmap_iszero(b.get())) return Error{"CPU list " + quoted + " names no CPU"};
  if (hwloc_bitmap_last(b.get()) > kMaxCpuId)
    return Error{"CPU list " + quoted + " names CPUs above " + std::to_string(kMaxCpuId)};
  return BitmapIds(b.get());
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  if (cpus.empty()) return "";
  Bitmap b = ToBitmap(cpus);
  char* s = nullptr;
  if (hwloc_bitmap_list_asprintf(&s, b.get()) < 0 || !s) return "?";
  std::string out(s);
  free(s);
  return out;
}

std::vector<std::vector<int>> AllowedCores() {
  hwloc_topology_t topo = SharedTopology();
  std::vector<std::vector<int>> cores;
  if (!topo) {
    for (int c : SchedAffinity()) cores.push_back({c});
    return cores;
  }
  Bitmap mine = NewBitmap();
  if (hwloc_get_cpubind(topo, mine.get(), HWLOC_CPUBIND_THREAD) != 0) {
    for (int c : SchedAffinity()) hwloc_bitmap_set(mine.get(), static_cast<unsigned>(c));
  }
  hwloc_bitmap_and(mine.get(), mine.get(), hwloc_topology_get_allowed_cpuset(topo));
  Bitmap covered = NewBitmap();
  const int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  for (int i = 0; i < ncores; ++i) {
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, i);
    Bitmap pus = NewBitmap();
    hwloc_bitmap_and(pus.get(), core->cpuset, mine.get());
    hwloc_bitmap_or(covered.get(), covered.get(), pus.get());
    if (!hwloc_bitmap_iszero(pus.get())) cores.push_back(BitmapIds(pus.get()));
  }
  // PUs outside every core object (hwloc may report none on odd virtual machines): one each.
  hwloc_bitmap_andnot(mine.get(), mine.get(), covered.get());
  for (int c : BitmapIds(mine.get())) cores.push_back({c});
  return cores;
}

std::vector<int> AllowedCpus() {
  std::vector<int> out;
  for (const auto& core : AllowedCores()) out.insert(out.end(), core.begin(), core.end());
  std::sort(out.begin(), out.end());
  return out;
}

Status CheckCpusAllowed(const std::vector<int>& cpus, const std::vector<int>& allowed,
                        std::string_view what) {
  for (int c : cpus)
    if (std::find(allowed.begin(), allowed.end(), c) == allowed.end())
      return Error{(what.empty() ? std::string() : std::string(what) + ": ") + "CPU " +
                   std::to_string(c) +
                   " is not available to this process (allowed: " + FormatCpuList(allowed) +
                   ")"};
  return {};
}

Status BindThisThreadToCpus(const std::vector<int>& cpus) {
  if (cpus.empty()) return Error{"topology: binding to an empty CPU list"};
  hwloc_topology_t topo = SharedTopology();
  if (!topo) return Error{"topology: hwloc could not load the topology"};
  Bitmap b = ToBitmap(cpus);
  if (hwloc_set_cpubind(topo, b.get(), HWLOC_CPUBIND_THREAD) != 0)
    return Error{"topology: binding a thread to CPUs " + FormatCpuList(cpus) + " refused: " +
                 std::strerror(errno)};
  return {};
}

std::vector<int> ThisThreadCpus() {
  hwloc_topology_t topo = SharedTopology();
  if (!topo) return SchedAffinity();
  Bitmap b = NewBitmap();
  if (hwloc_get_cpubind(topo, b.get(), HWLOC_CPUBIND_THREAD) != 0) return {};
  return BitmapIds(b.get());
}

std::vector<int> ThreadCpus(int tid) {
  cpu_set_t set;
  std::vector<int> cpus;
  if (tid > 0 && sched_getaffinity(tid, sizeof(set), &set) == 0)
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

ScopedThreadBinding::ScopedThreadBinding(const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  previous_ = ThisThreadCpus();
  status_ = BindThisThreadToCpus(cpus);
  if (!status_.ok()) previous_.clear();
}

ScopedThreadBinding::~ScopedThreadBinding() {
  if (!previous_.empty()) (void)BindThisThreadToCpus(previous_);
}

}  // namespace vhostlab::topology
