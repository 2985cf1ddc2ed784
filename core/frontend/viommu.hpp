// Viommu: the emulated guest IOMMU (the part of QEMU's intel-iommu + vhost glue that matters to a
// vhost-user backend). It owns an IOVA -> guest-physical page table at one page size (4 KiB or
// 2 MiB) and mirrors changes to the backend's device IOTLB:
//   - Map(push=true) sends one UPDATE per IOMMU page (QEMU's granularity), need_reply set;
//   - Unmap() clears page-table entries; Invalidate() sends an INVALIDATE and waits for the ack,
//     after which the backend may no longer touch the range (the spec's synchronisation point);
//   - ServeMiss() answers a backend MISS from the page table: an UPDATE for the whole page that
//     holds the missed IOVA, with the page's own permission.
// Invariants: `mu_` is held across a page-table change and the message that mirrors it, and the
// miss service takes it too, so a MISS answered from an entry that is being unmapped can never
// re-install that entry after its INVALIDATE. Lock order: Viommu::mu_, then Session's lock.
// UPDATE uaddrs come from GuestMemory, so they always lie inside a SET_MEM_TABLE region.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/base/result.hpp"
#include "core/frontend/guest_memory.hpp"
#include "core/frontend/session.hpp"
#include "core/loadgen/mapping_model.hpp"

namespace vhostlab::frontend {

struct ViommuStats {
  uint64_t updates = 0;       // UPDATEs sent (pushed + miss answers)
  uint64_t miss_updates = 0;  // of which answered a MISS
  uint64_t invalidates = 0;
  uint64_t misses_served = 0;
  uint64_t misses_unmapped = 0;  // MISS for an IOVA the guest has not mapped (or not with perm)
  std::vector<uint64_t> update_ack_ns, invalidate_ack_ns, miss_service_ns;
};

// The mapping models (core/loadgen/) see it through loadgen::IommuPort.
class Viommu final : public loadgen::IommuPort {
 public:
  Viommu(Session* session, const GuestMemory* memory, uint64_t page_size)
      : session_(session), memory_(memory), page_size_(page_size) {}

  uint64_t page_size() const { return page_size_; }

  // Maps consecutive IOMMU pages from `iova` (page-aligned) to the guest pages `gpa_pages`.
  Status Map(uint64_t iova, std::span<const uint64_t> gpa_pages, uint8_t perm,
             bool push) override;
  // Clears `pages` page-table entries from `iova`; with `invalidate`, also sends the INVALIDATE.
  Status Unmap(uint64_t iova, uint64_t pages, bool invalidate) override;
  // Sends one INVALIDATE for [iova, iova + size) (lazy flush: entries already unmapped).
  Status Invalidate(uint64_t iova, uint64_t size) override;
  // Pushes the UPDATE for the mapped page holding `iova`, unasked (QEMU does this for each
  // ring's used page when a device starts).
  Status Push(uint64_t iova) override;
  // Called from the backend-channel thread. True when an UPDATE was sent and acked.
  bool ServeMiss(const protocol::IotlbMsg& miss);

  ViommuStats TakeStats();

 private:
  struct Pte {
    uint64_t gpa;
    uint8_t perm;
  };
  Status UpdateLocked(uint64_t iova, const Pte& pte, bool for_miss);

  Session* session_;
  const GuestMemory* memory_;
  uint64_t page_size_;
  std::mutex mu_;
  // Page-aligned IOVA -> entry. Open addressing: lazy and strict map and unmap pages for every
  // buffer, and a node-based map would allocate for each; this one allocates only when the
  // number of live entries reaches a new high.
  absl::flat_hash_map<uint64_t, Pte> table_;
  ViommuStats stats_;
};

}  // namespace vhostlab::frontend
