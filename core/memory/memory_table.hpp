// MemoryTable: the front-end's memory as the backend sees it, built from SET_MEM_TABLE.
//
// Each region arrives as (guest_phys_addr, memory_size, userspace_addr, mmap_offset) plus one fd
// (SCM_RIGHTS). We mmap the fd MAP_SHARED at `mmap_offset` for `memory_size` bytes, so the
// region's byte at GPA g (or front-end address u) lives at
//   base + (g - guest_phys_addr) == base + (u - userspace_addr).
//
// Invariants:
//  - A table is built whole or not at all: Build() maps every region first and only then returns
//    the table; on any failure the mappings already made are unmapped (RAII) and the caller keeps
//    its previous table.
//  - Regions never overlap in uaddr or GPA space (protocol::MemoryTable::Validate checks it).
//  - Lookups never assume two regions are contiguous: FromUaddr/FromGpa return a pointer and the
//    number of bytes that are valid *inside one region* (<= the length asked for). A caller that
//    needs more asks again at the address that follows (DPDK CVE-2018-1059 was exactly the
//    failure to do this).
//  - A MemoryTable is immutable once built; the backend swaps whole tables while its queue
//    workers are paused, so lookups take no lock.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/base/unique_fd.hpp"
#include "core/protocol/messages.hpp"

namespace vhostlab::memory {

// RAII owner of one mmap()ed region.
class Mapping {
 public:
  Mapping() = default;
  // Takes over an mmap() of guest memory and registers it with the SIGBUS guard
  // (fault_guard.hpp); `page` is its page size.
  Mapping(void* addr, uint64_t len, uint64_t page = 4096);
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept;
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();

  uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  uint64_t size() const { return len_; }

 private:
  void* addr_ = nullptr;
  uint64_t len_ = 0;
};

struct Region {
  uint64_t gpa;
  uint64_t size;
  uint64_t uaddr;
  uint64_t mmap_offset;
  uint8_t* base;  // local address of the region's first byte (inside `mapping`)
  std::shared_ptr<Mapping> mapping;  // shared so a table copy (ADD/REM_MEM_REG) keeps it alive
  // ADD_MEM_REG of this exact region (gpa, size, uaddr, offset) so far, minus REM_MEM_REGs.
  // QEMU's vhost-user net with N queue pairs drives one vhost device per pair over the same
  // connection, and each one adds (and later removes) the same regions.
  uint32_t refs = 1;
  uint8_t* host() const { return base; }
};

// A translated piece: `len` bytes at `ptr`, all inside one region.
struct Span {
  uint8_t* ptr;
  uint64_t len;
};

class MemoryTable {
 public:
  MemoryTable() = default;

  // Maps every region of a SET_MEM_TABLE payload (already validated by the caller or not: Build
  // validates again) with exactly one fd per region, in order.
  static Result<MemoryTable> Build(const protocol::MemoryTable& table, uint32_t payload_size,
                                   std::vector<UniqueFd> fds);
  // Maps one region (ADD_MEM_REG) and returns a table with it added; refuses overlaps and more
  // than `max_regions` regions. The exact region again only counts one more reference (its fd
  // is closed, nothing is mapped).
  Result<MemoryTable> WithRegion(const protocol::MemoryRegion& region, UniqueFd fd,
                                 uint32_t max_regions) const;
  // Returns a table without the region that matches (gpa, size, uaddr) exactly (REM_MEM_REG),
  // or, while it was added more than once, with one reference fewer.
  Result<MemoryTable> WithoutRegion(const protocol::MemoryRegion& region) const;

  // Front-end virtual address -> local pointer, for up to `len` bytes (len >= 1). Fails when
  // `uaddr` is in no region; otherwise the span covers min(len, bytes left in that region).
  Result<Span> FromUaddr(uint64_t uaddr, uint64_t len) const;
  // Guest-physical address -> local pointer; same contract as FromUaddr.
  Result<Span> FromGpa(uint64_t gpa, uint64_t len) const;

  // Hot-path variants: nullptr-free answer without building an error string. Returns false when
  // the address is in no region. Inline: every buffer piece of the datapath asks one (a call
  // into another translation unit cost ~10 instructions a piece, measured with the gate).
  bool LookupUaddr(uint64_t uaddr, uint64_t len, Span* out) const {
    return Lookup<&Region::uaddr>(uaddr, len, out);
  }
  bool LookupGpa(uint64_t gpa, uint64_t len, Span* out) const {
    return Lookup<&Region::gpa>(gpa, len, out);
  }

  // True when every byte of [uaddr, uaddr + len) lies inside some region (possibly several).
  bool CoversUaddr(uint64_t uaddr, uint64_t len) const;

  std::span<const Region> regions() const { return regions_; }
  bool empty() const { return regions_.empty(); }

 private:
  // The region whose [start, start + size) holds `addr` (start = its gpa or uaddr); written so
  // that nothing overflows.
  template <uint64_t Region::*kStart>
  bool Lookup(uint64_t addr, uint64_t len, Span* out) const {
    for (const Region& r : regions_) {
      if (addr < r.*kStart) continue;
      const uint64_t off = addr - r.*kStart;
      if (off >= r.size) continue;
      const uint64_t left = r.size - off;
      *out = Span{r.host() + off, len < left ? len : left};
      return true;
    }
    return false;
  }
  static Result<Region> MapRegion(const protocol::MemoryRegion& r, int fd);
  std::vector<Region> regions_;
};

}  // namespace vhostlab::memory
