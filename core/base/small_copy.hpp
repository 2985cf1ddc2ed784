// SmallCopy: the datapath's byte copy (packets and buffers, tens of bytes to a few KiB), with
// memmove's semantics, in 16-byte moves.
//
// Why not std::memmove: on these machines glibc picks __memmove_avx512_unaligned_erms, which
// moves 64-byte ZMM registers. Measured on this project's 2-vCPU AMD EPYC VMs (`vhostlab run
// --profile default --iommu off`, 64-byte frames, alternated runs): with glibc's AVX-512
// copies turned off (GLIBC_TUNABLES=glibc.cpu.hwcaps=Prefer_No_AVX512) the whole loopback ran
// 1.40x faster, and both threads used ~30% less CPU per packet; DPDK's backend, whose
// rte_memcpy uses 16/32-byte moves, gained nothing from the same switch. bench/README.md has
// the numbers for this header. 16-byte moves are SSE2 on x86-64 (every x86-64 CPU) and NEON on
// arm64; GCC turns each fixed-size __builtin_memcpy below into one load or one store.
//
// Overlap: a guest may point a source and a destination at the same memory. Overlapping
// ranges go to std::memmove (exact semantics, rare); disjoint ones are copied here. Only the
// bytes of [dst, dst + n) are written and only those of [src, src + n) read, whatever n is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vhostlab {

namespace small_copy_detail {

struct alignas(1) Block16 {
  unsigned char b[16];
};

[[gnu::always_inline]] inline void Move16(unsigned char* d, const unsigned char* s) {
  Block16 v;
  __builtin_memcpy(&v, s, 16);
  __builtin_memcpy(d, &v, 16);
}

// n in [16, 32]: two possibly overlapping 16-byte moves, both loads before both stores.
[[gnu::always_inline]] inline void Copy16To32(unsigned char* d, const unsigned char* s,
                                              std::size_t n) {
  Block16 a, b;
  __builtin_memcpy(&a, s, 16);
  __builtin_memcpy(&b, s + n - 16, 16);
  __builtin_memcpy(d, &a, 16);
  __builtin_memcpy(d + n - 16, &b, 16);
}

// n < 16: at most two overlapping moves of 8, 4, 2 or 1 bytes.
[[gnu::always_inline]] inline void CopyUnder16(unsigned char* d, const unsigned char* s,
                                               std::size_t n) {
  if (n >= 8) {
    uint64_t a, b;
    __builtin_memcpy(&a, s, 8);
    __builtin_memcpy(&b, s + n - 8, 8);
    __builtin_memcpy(d, &a, 8);
    __builtin_memcpy(d + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    __builtin_memcpy(&a, s, 4);
    __builtin_memcpy(&b, s + n - 4, 4);
    __builtin_memcpy(d, &a, 4);
    __builtin_memcpy(d + n - 4, &b, 4);
  } else if (n) {
    const unsigned char first = s[0], mid = s[n / 2], last = s[n - 1];
    d[0] = first;
    d[n / 2] = mid;
    d[n - 1] = last;
  }
}

}  // namespace small_copy_detail

// Above this many bytes glibc's copy is the faster one (measured: a 64/1500/9000-byte mix ran
// 0.78x with every copy in 16-byte moves), so larger copies go to std::memmove.
inline constexpr std::size_t kSmallCopyMax = 256;

// Copies n bytes from src to dst (memmove semantics).
[[gnu::always_inline]] inline void SmallCopy(void* dst, const void* src, std::size_t n) {
  using namespace small_copy_detail;
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  // Disjoint unless one range starts inside the other (unsigned distances).
  const auto du = reinterpret_cast<uintptr_t>(d), su = reinterpret_cast<uintptr_t>(s);
  if (n > kSmallCopyMax || du - su < n || su - du < n) [[unlikely]] {
    std::memmove(d, s, n);
    return;
  }
  if (n <= 32) {
    if (n >= 16)
      Copy16To32(d, s, n);
    else
      CopyUnder16(d, s, n);
    return;
  }
  // 64 bytes per step (at most 3 steps), then the last 1..64 bytes as up to four 16-byte moves, the final one
  // ending exactly at n (it may rewrite bytes already copied: the ranges are disjoint).
  const unsigned char* const end = s + n;
  while (end - s > 64) {
    Move16(d, s);
    Move16(d + 16, s + 16);
    Move16(d + 32, s + 32);
    Move16(d + 48, s + 48);
    d += 64;
    s += 64;
  }
  const std::size_t rest = static_cast<std::size_t>(end - s);  // 1..64
  if (rest > 16) Move16(d, s);
  if (rest > 32) Move16(d + 16, s + 16);
  if (rest > 48) Move16(d + 32, s + 32);
  Move16(d + rest - 16, s + rest - 16);
}

}  // namespace vhostlab
