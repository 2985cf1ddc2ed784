#include "core/frontend/viommu.hpp"

#include <chrono>
#include <cinttypes>

#include "core/base/log.hpp"

namespace vhostlab::frontend {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof(b), "0x%" PRIx64, v);
  return b;
}

}  // namespace

Status Viommu::UpdateLocked(uint64_t iova, const Pte& pte, bool for_miss) {
  Result<uint64_t> uaddr = memory_->GpaToUaddr(pte.gpa, page_size_);
  if (!uaddr.ok()) return Error{"vIOMMU page " + Hex(iova) + ": " + uaddr.error().message};
  uint64_t ns = 0;
  Status s = session_->IotlbUpdate(iova, page_size_, *uaddr, pte.perm, &ns);
  if (!s.ok()) return s;
  ++stats_.updates;
  if (for_miss) ++stats_.miss_updates;
  stats_.update_ack_ns.push_back(ns);
  return {};
}

Status Viommu::Map(uint64_t iova, std::span<const uint64_t> gpa_pages, uint8_t perm, bool push) {
  if (iova % page_size_) return Error{"vIOMMU map: IOVA " + Hex(iova) + " is not page-aligned"};
  std::lock_guard<std::mutex> lock(mu_);
  for (std::size_t i = 0; i < gpa_pages.size(); ++i) {
    Pte pte{gpa_pages[i], perm};
    uint64_t page = iova + i * page_size_;
    table_[page] = pte;
    if (push)
      if (Status s = UpdateLocked(page, pte, false); !s.ok()) return s;
  }
  return {};
}

Status Viommu::Unmap(uint64_t iova, uint64_t pages, bool invalidate) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t i = 0; i < pages; ++i) table_.erase(iova + i * page_size_);
  if (!invalidate) return {};
  uint64_t ns = 0;
  if (Status s = session_->IotlbInvalidate(iova, pages * page_size_, &ns); !s.ok()) return s;
  ++stats_.invalidates;
  stats_.invalidate_ack_ns.push_back(ns);
  return {};
}

Status Viommu::Invalidate(uint64_t iova, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t ns = 0;
  if (Status s = session_->IotlbInvalidate(iova, size, &ns); !s.ok()) return s;
  ++stats_.invalidates;
  stats_.invalidate_ack_ns.push_back(ns);
  return {};
}

Status Viommu::Push(uint64_t iova) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = table_.find(iova & ~(page_size_ - 1));
  if (it == table_.end()) return Error{"vIOMMU push: IOVA " + Hex(iova) + " is not mapped"};
  return UpdateLocked(it->first, it->second, false);
}

bool Viommu::ServeMiss(const protocol::IotlbMsg& miss) {
  uint64_t t0 = NowNs();
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t page = miss.iova & ~(page_size_ - 1);
  auto it = table_.find(page);
  // The backend asks with the access it needs (RO for a buffer it reads, RW for rings); a page
  // mapped without that access stays unresolved, like a real IOMMU fault.
  if (it == table_.end() || (it->second.perm & miss.perm) != miss.perm) {
    ++stats_.misses_unmapped;
    VL_DEBUG("MISS at IOVA 0x%" PRIx64 " perm %u: not mapped by the guest", miss.iova, miss.perm);
    return false;
  }
  if (Status s = UpdateLocked(page, it->second, true); !s.ok()) {
    VL_WARN("answering MISS at IOVA 0x%" PRIx64 ": %s", miss.iova, s.message().c_str());
    return false;
  }
  ++stats_.misses_served;
  stats_.miss_service_ns.push_back(NowNs() - t0);
  return true;
}

ViommuStats Viommu::TakeStats() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::move(stats_);
}

}  // namespace vhostlab::frontend
