#include "core/base/small_copy.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace vhostlab {
namespace {

std::vector<unsigned char> Pattern(std::size_t n, unsigned seed) {
  std::vector<unsigned char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(i * 131 + seed * 7 + 1);
  return v;
}

// Disjoint ranges: every size up to past the inline limit, every source and destination
// alignment in a 16-byte block; the copy is exact and no byte around the destination moves.
TEST(SmallCopy, DisjointCopiesAreExactAndStayInRange) {
  constexpr std::size_t kGuard = 80;
  for (std::size_t n = 0; n <= kSmallCopyMax + 40; ++n) {
    for (std::size_t so = 0; so < 16; so += 3) {
      for (std::size_t dof = 0; dof < 16; dof += 5) {
        const std::vector<unsigned char> src = Pattern(n + so + 16, static_cast<unsigned>(n));
        std::vector<unsigned char> dst(kGuard + n + dof + kGuard, 0xEE);
        SmallCopy(dst.data() + kGuard + dof, src.data() + so, n);
        for (std::size_t i = 0; i < dst.size(); ++i) {
          const std::size_t begin = kGuard + dof;
          const unsigned char want = i >= begin && i < begin + n ? src[so + i - begin] : 0xEE;
          ASSERT_EQ(dst[i], want) << "n " << n << " src offset " << so << " dst offset " << dof
                                  << " byte " << i;
        }
      }
    }
  }
}

// Overlapping ranges (a guest may point source and destination at the same memory): the
// result is memmove's, in both directions and at every distance.
TEST(SmallCopy, OverlapHasMemmoveSemantics) {
  for (std::size_t n : {1u, 7u, 16u, 17u, 33u, 64u, 76u, 200u, 256u, 300u}) {
    for (std::size_t shift = 0; shift <= n + 1; shift += (n > 40 ? 7 : 1)) {
      for (bool forward : {true, false}) {
        std::vector<unsigned char> a = Pattern(2 * n + 64, 3), b = a;
        unsigned char* src = a.data() + (forward ? 0 : shift);
        unsigned char* dst = a.data() + (forward ? shift : 0);
        SmallCopy(dst, src, n);
        std::memmove(b.data() + (forward ? shift : 0), b.data() + (forward ? 0 : shift), n);
        ASSERT_EQ(a, b) << "n " << n << " shift " << shift << " forward " << forward;
      }
    }
  }
}

// Guest memory can end at a page the process may not touch: a copy that ends at the last
// byte before an inaccessible page reads and writes nothing beyond it (a fault would kill the
// test).
TEST(SmallCopy, TouchesNothingPastEitherRange) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  auto* map = static_cast<unsigned char*>(
      mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(map, MAP_FAILED);
  ASSERT_EQ(mprotect(map + page, page, PROT_NONE), 0);
  ASSERT_EQ(mprotect(map + 3 * page, page, PROT_NONE), 0);
  unsigned char* src_end = map + page;
  unsigned char* dst_end = map + 3 * page;
  for (std::size_t n = 0; n <= kSmallCopyMax + 16; ++n) {
    unsigned char* src = src_end - n;
    for (std::size_t i = 0; i < n; ++i) src[i] = static_cast<unsigned char>(i + n);
    SmallCopy(dst_end - n, src, n);
    ASSERT_EQ(std::memcmp(dst_end - n, src, n), 0) << n;
  }
  munmap(map, 4 * page);
}

}  // namespace
}  // namespace vhostlab
