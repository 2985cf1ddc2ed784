#include "core/memory/fault_guard.hpp"

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace vhostlab::memory {
namespace {

// Slots are claimed and released under g_mu by registering threads; the handler reads them
// without a lock (a slot is published by its `end` store and retired by zeroing `end` first).
struct Slot {
  std::atomic<uintptr_t> begin{0}, end{0}, page{0};
};
Slot g_slots[kMaxGuestMappings];
std::mutex g_mu;
struct sigaction g_previous {};
std::once_flag g_installed;

thread_local uint64_t t_faults = 0;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const Slot& s : g_slots) {
    const uintptr_t end = s.end.load(std::memory_order_acquire);
    if (!end) continue;
    const uintptr_t begin = s.begin.load(std::memory_order_relaxed);
    if (addr < begin || addr >= end) continue;
    const uintptr_t page = s.page.load(std::memory_order_relaxed);
    uintptr_t first = addr & ~(page - 1);
    if (first < begin) first = begin;
    uintptr_t len = page;
    if (first + len > end) len = end - first;
    // mmap is a plain system call here (no allocation, no lock): safe in a signal handler.
    void* p = ::mmap(reinterpret_cast<void*>(first), len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;
    ++t_faults;
    return;  // the faulting access runs again, on the zero page
  }
  // Not guest memory: whatever would have happened without us.
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
             g_previous.sa_handler) {
    g_previous.sa_handler(sig);
  } else {
    ::signal(SIGBUS, SIG_DFL);  // the access faults again and the default action follows
  }
}

void Install() {
  struct sigaction sa {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

bool RegisterGuestMapping(const void* base, uint64_t len, uint64_t page) {
  std::call_once(g_installed, Install);
  std::lock_guard<std::mutex> lock(g_mu);
  for (Slot& s : g_slots) {
    if (s.end.load(std::memory_order_relaxed)) continue;
    s.begin.store(reinterpret_cast<uintptr_t>(base), std::memory_order_relaxed);
    s.page.store(page ? page : 4096, std::memory_order_relaxed);
    s.end.store(reinterpret_cast<uintptr_t>(base) + len, std::memory_order_release);
    return true;
  }
  return false;
}

void UnregisterGuestMapping(const void* base) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (Slot& s : g_slots) {
    if (s.end.load(std::memory_order_relaxed) &&
        s.begin.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(base)) {
      s.end.store(0, std::memory_order_release);
      return;
    }
  }
}

uint64_t ThreadGuestMemoryFaults() { return t_faults; }

}  // namespace vhostlab::memory
