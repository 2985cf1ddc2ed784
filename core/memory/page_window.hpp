// PageWindow: a host-contiguous view of host pages that are not contiguous.
//
// A Linux guest behind an IOMMU allocates its vrings with dma_alloc_coherent, which (with
// iommu-dma) maps scattered guest pages at contiguous IOVAs: a ring of 1024 is 4 pages of
// descriptors, contiguous for the device but not in guest (or our) memory. Rather than access
// rings piecewise on every descriptor (as Linux vhost does through iovecs), the backend builds a
// window: it reserves address space and maps each page's memory there with
// mremap(old_size = 0), which makes a second mapping of the same shared pages. The datapath then
// reads the ring as one block, at no cost per access, and the memory stays what the IOTLB
// granted: the window is rebuilt whenever a translation of the ring changes.
//
// Invariants: every page given is page-aligned and lies inside a MAP_SHARED mapping (the memory
// table's regions); the window is read-only unless built writable. Moving the window destroys
// the old mapping (RAII).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::memory {

inline constexpr uint64_t kWindowPage = 4096;

class PageWindow {
 public:
  PageWindow() = default;
  PageWindow(PageWindow&& o) noexcept;
  PageWindow& operator=(PageWindow&& o) noexcept;
  PageWindow(const PageWindow&) = delete;
  PageWindow& operator=(const PageWindow&) = delete;
  ~PageWindow();

  // Maps `pages` (each page-aligned, kWindowPage bytes of a shared mapping) one after the other.
  static Result<PageWindow> Build(std::span<uint8_t* const> pages, bool writable);

  uint8_t* data() const { return base_; }
  // True when this window already shows exactly `pages` with that permission.
  bool Shows(std::span<uint8_t* const> pages, bool writable) const;
  bool empty() const { return base_ == nullptr; }

 private:
  void Release();
  uint8_t* base_ = nullptr;
  std::vector<uint8_t*> pages_;
  bool writable_ = false;
};

}  // namespace vhostlab::memory
