#include "core/memory/memory_table.hpp"

#include <errno.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/base/log.hpp"
#include "core/memory/fault_guard.hpp"

namespace vhostlab::memory {
namespace {

std::string Fmt(const char* fmt, auto... args) {
  char buf[320];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

}  // namespace

Mapping::Mapping(void* addr, uint64_t len, uint64_t page) : addr_(addr), len_(len) {
  if (!RegisterGuestMapping(addr, len, page))
    VL_WARN("more than %d guest memory mappings: one is not guarded against SIGBUS",
            kMaxGuestMappings);
}

Mapping::Mapping(Mapping&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (addr_) UnregisterGuestMapping(addr_), ::munmap(addr_, len_);
    addr_ = std::exchange(o.addr_, nullptr);
    len_ = std::exchange(o.len_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (addr_) UnregisterGuestMapping(addr_), ::munmap(addr_, len_);
}

Result<Region> MemoryTable::MapRegion(const protocol::MemoryRegion& r, int fd) {
  if (Status s = r.Validate(); !s.ok()) return s.error();
  // mmap wants a page-aligned offset: map from the page below and point inside it.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t aligned_offset = r.mmap_offset & ~(page - 1);
  const uint64_t slack = r.mmap_offset - aligned_offset;
  if (r.memory_size > UINT64_MAX - slack) return Error{"memory region size overflows"};
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (r.mmap_offset > static_cast<uint64_t>(st.st_size) ||
       r.memory_size > static_cast<uint64_t>(st.st_size) - r.mmap_offset)) {
    return Error{Fmt("memory region gpa 0x%" PRIx64 ": mmap_offset 0x%" PRIx64 " + size 0x%" PRIx64
                     " exceeds the fd's %lld bytes",
                     r.guest_phys_addr, r.mmap_offset, r.memory_size,
                     static_cast<long long>(st.st_size))};
  }
  void* p = ::mmap(nullptr, r.memory_size + slack, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   static_cast<off_t>(aligned_offset));
  if (p == MAP_FAILED)
    return Error{Fmt("mmap of region gpa 0x%" PRIx64 " size 0x%" PRIx64 " offset 0x%" PRIx64
                     " failed: %s",
                     r.guest_phys_addr, r.memory_size, r.mmap_offset, std::strerror(errno))};
  // A hugetlbfs file faults (and is patched after a fault) a huge page at a time.
  struct statfs fs {};
  const uint64_t fault_page = ::fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC
                                  ? static_cast<uint64_t>(fs.f_bsize) : page;
  auto mapping = std::make_shared<Mapping>(p, r.memory_size + slack, fault_page);
  return Region{r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset,
                static_cast<uint8_t*>(p) + slack, std::move(mapping)};
}

Result<MemoryTable> MemoryTable::Build(const protocol::MemoryTable& table, uint32_t payload_size,
                                       std::vector<UniqueFd> fds) {
  if (Status s = table.Validate(payload_size); !s.ok()) return s.error();
  if (fds.size() != table.nregions)
    return Error{Fmt("SET_MEM_TABLE: %u regions but %zu fds (exactly one fd per region)",
                     table.nregions, fds.size())};
  MemoryTable out;
  for (uint32_t i = 0; i < table.nregions; ++i) {
    auto region = MapRegion(table.regions[i], fds[i].get());
    if (!region) return Error{Fmt("SET_MEM_TABLE region %u: %s", i, region.error().message.c_str())};
    out.regions_.push_back(std::move(*region));
  }
  return out;
}

Result<MemoryTable> MemoryTable::WithRegion(const protocol::MemoryRegion& r, UniqueFd fd,
                                            uint32_t max_regions) const {
  if (!fd) return Error{"ADD_MEM_REG: no fd"};
  if (Status s = r.Validate(); !s.ok()) return Error{"ADD_MEM_REG: " + s.message()};
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    const Region& e = regions_[i];
    if (e.gpa == r.guest_phys_addr && e.size == r.memory_size && e.uaddr == r.userspace_addr &&
        e.mmap_offset == r.mmap_offset) {
      MemoryTable out = *this;
      ++out.regions_[i].refs;
      return out;
    }
  }
  if (regions_.size() >= max_regions)
    return Error{Fmt("ADD_MEM_REG: already %zu regions (max %u)", regions_.size(), max_regions)};
  for (const Region& e : regions_) {
    const bool uaddr_overlap = r.userspace_addr <= e.uaddr + (e.size - 1) &&
                               e.uaddr <= r.userspace_addr + (r.memory_size - 1);
    const bool gpa_overlap = r.guest_phys_addr <= e.gpa + (e.size - 1) &&
                             e.gpa <= r.guest_phys_addr + (r.memory_size - 1);
    if (uaddr_overlap || gpa_overlap)
      return Error{Fmt("ADD_MEM_REG: region gpa 0x%" PRIx64 " overlaps region gpa 0x%" PRIx64,
                       r.guest_phys_addr, e.gpa)};
  }
  auto region = MapRegion(r, fd.get());
  if (!region) return Error{"ADD_MEM_REG: " + region.error().message};
  MemoryTable out = *this;
  out.regions_.push_back(std::move(*region));
  return out;
}

Result<MemoryTable> MemoryTable::WithoutRegion(const protocol::MemoryRegion& r) const {
  MemoryTable out;
  bool found = false;
  for (const Region& e : regions_) {
    if (!found && e.gpa == r.guest_phys_addr && e.size == r.memory_size &&
        e.uaddr == r.userspace_addr) {
      found = true;
      if (e.refs > 1) {
        out.regions_.push_back(e);
        --out.regions_.back().refs;
      }
      continue;
    }
    out.regions_.push_back(e);
  }
  if (!found)
    return Error{Fmt("REM_MEM_REG: no region gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64,
                     r.guest_phys_addr, r.memory_size, r.userspace_addr)};
  return out;
}

Result<Span> MemoryTable::FromUaddr(uint64_t uaddr, uint64_t len) const {
  Span s;
  if (len == 0) return Error{Fmt("uaddr 0x%" PRIx64 ": zero-length lookup", uaddr)};
  if (!LookupUaddr(uaddr, len, &s))
    return Error{Fmt("uaddr 0x%" PRIx64 " (len 0x%" PRIx64 ") is outside every memory region",
                     uaddr, len)};
  return s;
}

Result<Span> MemoryTable::FromGpa(uint64_t gpa, uint64_t len) const {
  Span s;
  if (len == 0) return Error{Fmt("gpa 0x%" PRIx64 ": zero-length lookup", gpa)};
  if (!LookupGpa(gpa, len, &s))
    return Error{Fmt("gpa 0x%" PRIx64 " (len 0x%" PRIx64 ") is outside every memory region", gpa,
                     len)};
  return s;
}

bool MemoryTable::CoversUaddr(uint64_t uaddr, uint64_t len) const {
  if (len == 0) return false;
  if (uaddr + (len - 1) < uaddr) return false;
  while (len) {
    Span s;
    if (!LookupUaddr(uaddr, len, &s)) return false;
    uaddr += s.len;
    len -= s.len;
  }
  return true;
}

}  // namespace vhostlab::memory
