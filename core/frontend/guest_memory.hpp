// GuestMemory: the "guest RAM" the front-end owns and shares with the backend.
//
// Like QEMU, three address spaces are kept apart:
//   - guest-physical addresses (GPA): what descriptors carry when the IOMMU is off, and what the
//     emulated vIOMMU maps IOVAs to;
//   - front-end user addresses (uaddr): where this process mapped each region; SET_MEM_TABLE and
//     IOTLB UPDATEs carry them, and the backend maps them to its own pointers;
//   - IOVAs (see viommu.hpp), which are neither.
// Each region is one memfd (MFD_HUGETLB with 2 MiB pages when asked for and available), mapped
// MAP_SHARED here and sent to the backend with its fd. Region GPAs are spaced far apart (the
// second region starts at 4 GiB, like RAM above the PCI hole) so a GPA is never mistaken for an
// offset or a uaddr.
//
// Invariants: chunks never straddle regions; a chunk's GPA range is contiguous, and so is its
// uaddr range (it lies in one region); the mapping lives as long as the GuestMemory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/base/unique_fd.hpp"
#include "core/protocol/messages.hpp"

namespace vhostlab::frontend {

struct GuestRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;  // this process's mapping; uaddr == reinterpret_cast<uint64_t>(host)
  UniqueFd fd;
  uint64_t uaddr() const { return reinterpret_cast<uint64_t>(host); }
};

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(GuestMemory&&) noexcept = default;
  GuestMemory& operator=(GuestMemory&&) noexcept = default;
  ~GuestMemory();

  // Lays out `chunk_sizes` (each rounded up to `align`) round-robin over `regions` memfd
  // regions. `hugetlb` asks for 2 MiB hugetlb pages; when the kernel has none, it falls back to
  // normal pages and says so in hugetlb_note().
  static Result<GuestMemory> Create(const std::vector<uint64_t>& chunk_sizes, uint32_t regions,
                                    uint64_t align, bool hugetlb);

  uint64_t chunk_gpa(std::size_t i) const { return chunks_[i]; }
  std::size_t chunk_count() const { return chunks_.size(); }
  const std::vector<GuestRegion>& regions() const { return regions_; }
  bool hugetlb() const { return hugetlb_; }
  const std::string& hugetlb_note() const { return hugetlb_note_; }

  // GPA -> local pointer / uaddr; nullptr / error when the GPA lies outside every region or the
  // `len` bytes from it leave the region.
  uint8_t* GpaToHost(uint64_t gpa, uint64_t len = 1) const;
  Result<uint64_t> GpaToUaddr(uint64_t gpa, uint64_t len = 1) const;

  // The SET_MEM_TABLE payload and the fds that go with it (one per region).
  protocol::MemoryTable MemTable() const;
  std::vector<int> Fds() const;

 private:
  std::vector<GuestRegion> regions_;
  std::vector<uint64_t> chunks_;
  bool hugetlb_ = false;
  std::string hugetlb_note_;
};

}  // namespace vhostlab::frontend
