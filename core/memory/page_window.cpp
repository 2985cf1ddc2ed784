// PageWindow; see page_window.hpp.
#include "core/memory/page_window.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/memory/fault_guard.hpp"

namespace vhostlab::memory {

PageWindow::PageWindow(PageWindow&& o) noexcept
    : base_(o.base_), pages_(std::move(o.pages_)), writable_(o.writable_) {
  o.base_ = nullptr;
}

PageWindow& PageWindow::operator=(PageWindow&& o) noexcept {
  if (this != &o) {
    Release();
    base_ = o.base_;
    pages_ = std::move(o.pages_);
    writable_ = o.writable_;
    o.base_ = nullptr;
  }
  return *this;
}

PageWindow::~PageWindow() { Release(); }

void PageWindow::Release() {
  if (base_) UnregisterGuestMapping(base_), ::munmap(base_, pages_.size() * kWindowPage);
  base_ = nullptr;
  pages_.clear();
}

bool PageWindow::Shows(std::span<uint8_t* const> pages, bool writable) const {
  return base_ && writable == writable_ && std::equal(pages.begin(), pages.end(), pages_.begin(),
                                                      pages_.end());
}

Result<PageWindow> PageWindow::Build(std::span<uint8_t* const> pages, bool writable) {
  if (pages.empty()) return Error{"page window: no pages"};
  const std::size_t bytes = pages.size() * kWindowPage;
  void* va = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (va == MAP_FAILED) return Error{std::string("page window: mmap: ") + std::strerror(errno)};
  PageWindow w;
  w.base_ = static_cast<uint8_t*>(va);
  w.pages_.assign(pages.begin(), pages.end());
  w.writable_ = writable;
  for (std::size_t i = 0; i < pages.size(); ++i) {
    if (reinterpret_cast<uintptr_t>(pages[i]) % kWindowPage)
      return Error{"page window: a page is not page-aligned"};
    uint8_t* at = w.base_ + i * kWindowPage;
    // old_size 0 on a shared mapping: a new mapping of the same pages, placed over the
    // reservation (MREMAP_FIXED replaces what is there).
    void* r = ::mremap(pages[i], 0, kWindowPage, MREMAP_MAYMOVE | MREMAP_FIXED, at);
    if (r == MAP_FAILED)
      return Error{std::string("page window: mremap: ") + std::strerror(errno) +
                   " (the page is not in a shared 4 KiB mapping; hugetlb regions are not "
                   "supported)"};
  }
  if (::mprotect(w.base_, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ) != 0)
    return Error{std::string("page window: mprotect: ") + std::strerror(errno)};
  // The window shows guest pages: a fault through it is a guest-memory fault.
  if (!RegisterGuestMapping(w.base_, bytes, kWindowPage))
    return Error{"page window: too many guest memory mappings to guard"};
  return w;
}

}  // namespace vhostlab::memory
