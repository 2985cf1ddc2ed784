#include "core/frontend/guest_memory.hpp"

#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vhostlab::frontend {
namespace {

constexpr uint64_t kHugePage = 2ull << 20;
// Region i starts at kRegionGpaBase * i: region 0 at GPA 0, region 1 at 4 GiB, ...
constexpr uint64_t kRegionGpaBase = 4ull << 30;

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

Result<GuestRegion> MakeRegion(uint64_t gpa, uint64_t size, bool hugetlb) {
  unsigned flags = MFD_CLOEXEC | (hugetlb ? (MFD_HUGETLB | MFD_HUGE_2MB) : 0);
  int fd = memfd_create("vhostlab-guest", flags);
  if (fd < 0) return Error{std::string("memfd_create: ") + std::strerror(errno)};
  GuestRegion r;
  r.fd.Reset(fd);
  r.gpa = gpa;
  r.size = size;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0)
    return Error{std::string("ftruncate guest memory: ") + std::strerror(errno)};
  // MAP_POPULATE: fault the pages in now, so no page fault lands inside a timed region and a
  // hugetlb shortage shows up here (as SIGBUS-free ENOMEM) instead of mid-run.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) return Error{std::string("mmap guest memory: ") + std::strerror(errno)};
  r.host = static_cast<uint8_t*>(p);
  return r;
}

}  // namespace

GuestMemory::~GuestMemory() {
  for (auto& r : regions_)
    if (r.host) munmap(r.host, r.size);
}

Result<GuestMemory> GuestMemory::Create(const std::vector<uint64_t>& chunk_sizes, uint32_t regions,
                                        uint64_t align, bool hugetlb) {
  if (regions == 0 || regions > protocol::kMaxMemRegions)
    return Error{"guest memory: region count must be 1.." +
                 std::to_string(protocol::kMaxMemRegions)};
  if (align == 0 || (align & (align - 1))) return Error{"guest memory: bad alignment"};
  if (hugetlb) align = std::max(align, kHugePage);
  // Round-robin placement: chunk i goes to region i % regions at that region's bump offset.
  std::vector<uint64_t> used(regions, 0);
  std::vector<std::pair<uint32_t, uint64_t>> place;
  for (std::size_t i = 0; i < chunk_sizes.size(); ++i) {
    uint32_t r = static_cast<uint32_t>(i % regions);
    place.emplace_back(r, used[r]);
    used[r] += RoundUp(std::max<uint64_t>(chunk_sizes[i], 1), align);
  }
  GuestMemory m;
  for (uint32_t r = 0; r < regions; ++r) {
    uint64_t size = RoundUp(std::max<uint64_t>(used[r], align), hugetlb ? kHugePage : 4096);
    Result<GuestRegion> region = MakeRegion(kRegionGpaBase * r, size, hugetlb);
    if (!region.ok() && hugetlb) {
      Result<GuestMemory> again = Create(chunk_sizes, regions, align, false);
      if (again.ok())
        again->hugetlb_note_ = "hugetlb guest memory unavailable (" + region.error().message +
                               "; see /proc/sys/vm/nr_hugepages): using 4 KiB pages instead";
      return again;
    }
    if (!region.ok()) return region.error();
    m.regions_.push_back(std::move(region.value()));
  }
  m.hugetlb_ = hugetlb;
  for (const auto& [r, off] : place) m.chunks_.push_back(m.regions_[r].gpa + off);
  return m;
}

uint8_t* GuestMemory::GpaToHost(uint64_t gpa, uint64_t len) const {
  for (const auto& r : regions_) {
    if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa))
      return r.host + (gpa - r.gpa);
  }
  return nullptr;
}

Result<uint64_t> GuestMemory::GpaToUaddr(uint64_t gpa, uint64_t len) const {
  uint8_t* p = GpaToHost(gpa, len);
  if (!p)
    return Error{"GPA " + std::to_string(gpa) + " (+" + std::to_string(len) +
                 ") is outside guest memory"};
  return reinterpret_cast<uint64_t>(p);
}

protocol::MemoryTable GuestMemory::MemTable() const {
  protocol::MemoryTable t{};
  t.nregions = static_cast<uint32_t>(regions_.size());
  for (std::size_t i = 0; i < regions_.size(); ++i)
    t.regions[i] = {regions_[i].gpa, regions_[i].size, regions_[i].uaddr(), 0};
  return t;
}

std::vector<int> GuestMemory::Fds() const {
  std::vector<int> fds;
  for (const auto& r : regions_) fds.push_back(r.fd.get());
  return fds;
}

}  // namespace vhostlab::frontend
