// Differential checking of a design against `reference`, shared by the ctest differential test
// (seeded PRNG) and the libFuzzer target (bytes from the fuzzer).
//
// OpGenerator turns any source of 64-bit words into adversarial IOTLB operations: ranges near 0,
// in the middle of the space and at the very top (ending at 2^64 - 1), aligned 4 KiB / 2 MiB /
// 1 GiB pages next to unaligned and odd-sized ones, overlapping UPDATEs, full-range invalidates,
// and uaddrs chosen so that neighbouring entries are often front-end contiguous (exercising the
// join rule) and sometimes wrap modulo 2^64.
//
// Differential<D> applies each operation to both D and Reference and reports the first
// disagreement as text. For a capacity-limited design (one that has reported kEvicted) exact
// equality no longer holds, so it checks the weaker rule eviction allows: D may miss where the
// reference hits, but whatever D answers must be a prefix of the reference's answer.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/iotlb/contract.hpp"
#include "core/iotlb/reference/reference.hpp"

namespace vhostlab::iotlb::testing {

struct Op {
  enum class Kind : uint8_t { kInsert, kInvalidate, kTranslate, kCheckAll } kind;
  IovaRange range;  // insert / invalidate; translate uses range.first as iova
  uint64_t uaddr;
  uint64_t len;  // translate only
  Perm perm;
};

inline std::string Describe(const Op& op) {
  static const char* const kKinds[] = {"Insert", "Invalidate", "Translate", "CheckAll"};
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s([0x%" PRIx64 ", 0x%" PRIx64 "], uaddr=0x%" PRIx64
                ", len=0x%" PRIx64 ", perm=%d)",
                kKinds[static_cast<int>(op.kind)], op.range.first, op.range.last, op.uaddr, op.len,
                static_cast<int>(op.perm));
  return buf;
}

inline std::string Describe(const Translation& t) {
  static const char* const kOutcomes[] = {"hit", "miss", "access-fail"};
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%s(uaddr=0x%" PRIx64 ", len=0x%" PRIx64 ")",
                kOutcomes[static_cast<int>(t.outcome)], t.uaddr, t.len);
  return buf;
}

// `Source` has `uint64_t Next()`.
template <typename Source>
class OpGenerator {
 public:
  explicit OpGenerator(Source* src) : src_(src) {}

  Op Next() {
    const uint64_t pick = src_->Next() % 100;
    Op op{};
    if (pick < 40) {
      op.kind = Op::Kind::kInsert;
      op.range = RandomRange();
      op.perm = static_cast<Perm>(1 + src_->Next() % 3);
      const uint64_t flavour = src_->Next() % 8;
      if (flavour < 6) {
        op.uaddr = op.range.first + kDeltas[flavour % 3];  // contiguous with same-delta neighbours
      } else if (flavour == 6) {
        op.uaddr = ~uint64_t{0} - (src_->Next() % 0x3000);  // wraps modulo 2^64
      } else {
        op.uaddr = src_->Next();
      }
    } else if (pick < 55) {
      op.kind = Op::Kind::kInvalidate;
      op.range = (src_->Next() % 40 == 0) ? kFullRange : RandomRange();
    } else if (pick < 99) {
      op.kind = Op::Kind::kTranslate;
      op.range.first = RandomPoint();
      const uint64_t l = src_->Next();
      op.len = (l % 4 == 0) ? 1 + (l >> 8) % (3 * kPage) : 1 + (l >> 8) % 256;
      const uint64_t max_len_minus_one = ~uint64_t{0} - op.range.first;
      if (op.len - 1 > max_len_minus_one) op.len = max_len_minus_one + 1;
      op.range.last = op.range.first + (op.len - 1);
      op.perm = static_cast<Perm>(1 + src_->Next() % 3);
    } else {
      op.kind = Op::Kind::kCheckAll;
    }
    return op;
  }

 private:
  static constexpr uint64_t kPage = 0x1000;
  static constexpr uint64_t kDeltas[3] = {0x7f0000000000ull, 0x10000ull, 0x123000ull};

  // Three small neighbourhoods, so operations collide often: near 0, a middle region straddling
  // a 1 GiB boundary, and the top of the address space.
  uint64_t Base() {
    switch (src_->Next() % 3) {
      case 0: return 0;
      case 1: return 0x7fffc0000000ull - 0x400000ull;
      default: return ~uint64_t{0} - 0x1000000ull + 1;
    }
  }

  uint64_t RandomPoint() {
    const uint64_t base = Base();
    const uint64_t span = (base == 0 || base > 0x8000000000000000ull) ? 0x1000000ull : 0x800000ull;
    return base + src_->Next() % span;
  }

  IovaRange RandomRange() {
    const uint64_t kind = src_->Next() % 16;
    uint64_t size;
    bool align = true;
    if (kind < 7) {
      size = kPage;
    } else if (kind < 9) {
      size = kPage << 9;  // 2 MiB
    } else if (kind == 9) {
      size = kPage << 18;  // 1 GiB (rare: it wipes a neighbourhood)
    } else if (kind < 12) {
      size = kPage * (1 + src_->Next() % 8);
    } else {
      size = 1 + src_->Next() % (2 * kPage);
      align = false;
    }
    uint64_t first = RandomPoint();
    if (align) first &= ~(size >= (kPage << 9) ? size - 1 : kPage - 1);
    if (src_->Next() % 8 == 0) first = (first & ~(kPage - 1)) + (src_->Next() % kPage);
    uint64_t last = first + (size - 1);
    if (last < first) last = ~uint64_t{0};  // clamp at the top instead of wrapping
    return {first, last};
  }

  Source* src_;
};

// SplitMix64: deterministic words for the ctest differential run.
struct SplitMix {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

template <Design D>
class Differential {
 public:
  // Applies op to both tables; returns "" or a description of the first disagreement.
  std::string Apply(const Op& op) {
    switch (op.kind) {
      case Op::Kind::kInsert: {
        const InsertStatus want = ref_.Insert(op.range, op.uaddr, op.perm);
        const InsertStatus got = d_.Insert(op.range, op.uaddr, op.perm);
        if (got == InsertStatus::kEvicted) {
          evicted_ = true;
        } else if (got != want) {
          return "insert status differs";
        }
        return CheckSize();
      }
      case Op::Kind::kInvalidate: {
        const std::size_t want = ref_.Invalidate(op.range);
        const std::size_t got = d_.Invalidate(op.range);
        if (!evicted_ && got != want) {
          return "invalidate count " + std::to_string(got) + " != reference " + std::to_string(want);
        }
        return CheckSize();
      }
      case Op::Kind::kTranslate:
        return CheckTranslate(op.range.first, op.len, op.perm);
      case Op::Kind::kCheckAll:
        return CheckAll();
    }
    return "";
  }

  // Probes both edges of every reference entry and the bytes just outside them.
  std::string CheckAll() {
    std::string err = CheckSize();
    ref_.ForEach([&](const Entry& e) {
      if (!err.empty()) return;
      const uint64_t points[4] = {e.range.first, e.range.last, e.range.first - 1, e.range.last + 1};
      for (uint64_t p : points) {
        for (Perm perm : {Perm::kRead, Perm::kWrite}) {
          err = CheckTranslate(p, 1, perm);
          if (!err.empty()) return;
        }
      }
      const uint64_t span = e.range.SizeMinusOne() < 0x10000 ? e.range.SizeMinusOne() + 1 : 0x10000;
      err = CheckTranslate(e.range.first, span, Perm::kRead);
    });
    return err;
  }

  std::string CheckTranslate(uint64_t iova, uint64_t len, Perm perm) const {
    const Translation want = ref_.Translate(iova, len, perm);
    const Translation got = d_.Translate(iova, len, perm);
    bool ok;
    if (!evicted_) {
      ok = got.outcome == want.outcome &&
           (!got.hit() || (got.uaddr == want.uaddr && got.len == want.len));
    } else {
      ok = got.outcome == Outcome::kMiss ||
           (got.outcome == want.outcome &&
            (!got.hit() || (got.uaddr == want.uaddr && got.len <= want.len && got.len >= 1)));
    }
    if (ok) return "";
    char buf[96];
    std::snprintf(buf, sizeof(buf), "Translate(0x%" PRIx64 ", 0x%" PRIx64 ", perm=%d): ", iova, len,
                  static_cast<int>(perm));
    return buf + Describe(got) + " but reference says " + Describe(want);
  }

  std::string CheckSize() const {
    if (evicted_ || d_.Size() == ref_.Size()) return "";
    return "Size() " + std::to_string(d_.Size()) + " != reference " + std::to_string(ref_.Size());
  }

  const D& design() const { return d_; }
  const Reference& reference() const { return ref_; }

 private:
  Reference ref_;
  D d_;
  bool evicted_ = false;
};

}  // namespace vhostlab::iotlb::testing
