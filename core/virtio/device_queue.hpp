// The device side of a virtio split ring (virtio 1.x, 2.7): reading available chains, walking
// descriptor chains into translated buffer pieces, and publishing used elements.
//
// Algorithm. A queue worker owns one DeviceRing per virtqueue. Once per burst it reads the avail
// index (RefreshAvail(); AvailCount() reads it live); for each
// available head it calls Walk(), which follows the chain (direct or through one indirect table)
// and translates every buffer, piece by piece, through a caller-supplied Translator:
//   Xlate t = translate(addr, len, perm)   // answers for the FIRST contiguous piece only
// The translator hides the address space: GPA -> memory table without IOMMU, IOVA -> IOTLB ->
// uaddr -> memory table with it. Walk() never reads guest memory except through pieces the
// translator granted with the permission that was asked for (device-readable descriptors need
// read, device-writable ones need write, indirect tables need read).
//
// Invariants:
//  - Walk() does not consume anything: on a miss it reports the faulting address and the caller
//    retries the SAME head later (Consume() is called only once the chain was fully handled).
//  - Every descriptor is copied out of guest memory once before it is checked, so a guest that
//    rewrites it concurrently cannot make us use a value we did not check.
//  - A chain is malformed (clear error, never followed further) when: a head or next index is
//    >= num; it has more descriptors than the queue size (a loop) or than its indirect table;
//    an indirect descriptor has a length that is zero or not a multiple of 16, sets NEXT, sits
//    inside an indirect table (nested), or INDIRECT_DESC was not negotiated; a device-readable
//    descriptor follows a device-writable one; it needs more than kMaxPieces pieces.
//  - Used elements are written first, then used->idx is published with a release store; avail
//    idx is read with an acquire load (the driver's matching barriers are in the spec).
#pragma once

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/base/small_copy.hpp"
#include "core/iotlb/contract.hpp"
#include "core/virtio/split_ring.hpp"

namespace vhostlab::virtio {

enum class XlateStatus : uint8_t { kOk, kMiss, kAccessFail, kUnmapped };

// One translated piece: `len` (>= 1) bytes at `ptr`, granted with the permission asked for.
struct Xlate {
  XlateStatus status;
  uint8_t* ptr;
  uint64_t len;
};

struct Piece {
  uint8_t* ptr;
  uint32_t len;
};

enum class ChainStatus : uint8_t { kOk, kMiss, kAccessFail, kMalformed };

// Why Walk() stopped: the address (GPA or IOVA) and permission that failed, or what was wrong.
struct ChainFault {
  uint64_t addr = 0;
  uint64_t len = 0;  // bytes from addr the access wanted
  iotlb::Perm perm = iotlb::Perm::kNone;
  std::string why;  // filled for kMalformed and kAccessFail/unmapped (off the hot path)
};

inline constexpr std::size_t kMaxPieces = 1024;

// The pieces of one direction of a chain: a growable array whose append is inline (the hot
// path of every descriptor), reused across chains (clear() keeps the storage).
class PieceList {
 public:
  PieceList() = default;
  PieceList(std::initializer_list<Piece> pieces) {
    for (const Piece& p : pieces) push_back(p);
  }
  PieceList(const PieceList& o) { *this = o; }
  PieceList& operator=(const PieceList& o) {
    if (this != &o) {
      clear();
      for (const Piece& p : o) push_back(p);
    }
    return *this;
  }
  PieceList(PieceList&&) noexcept = default;
  PieceList& operator=(PieceList&&) noexcept = default;

  [[gnu::always_inline]] void push_back(Piece p) {
    if (size_ == capacity_) [[unlikely]] Grow();
    data_[size_++] = p;
  }
  void clear() { size_ = 0; }
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  const Piece* data() const { return data_.get(); }
  const Piece* begin() const { return data_.get(); }
  const Piece* end() const { return data_.get() + size_; }
  const Piece& operator[](std::size_t i) const { return data_[i]; }

 private:
  [[gnu::noinline, gnu::cold]] void Grow() {
    const uint32_t cap = capacity_ ? 2 * capacity_ : 8;
    std::unique_ptr<Piece[]> grown(new Piece[cap]);
    if (size_) std::memcpy(grown.get(), data_.get(), size_ * sizeof(Piece));
    data_ = std::move(grown);
    capacity_ = cap;
  }
  std::unique_ptr<Piece[]> data_;
  uint32_t size_ = 0, capacity_ = 0;
};

struct Chain {
  uint16_t head = 0;
  uint32_t descriptors = 0;
  PieceList readable;
  PieceList writable;
  uint64_t readable_len = 0;
  uint64_t writable_len = 0;
  void Clear() {
    descriptors = 0;
    readable.clear();
    writable.clear();
    readable_len = writable_len = 0;
  }
};

// Copies `len` bytes starting `offset` bytes into the concatenation of `pieces` to `dst`.
// Returns the bytes copied (less than len only when the pieces are shorter).
inline uint64_t CopyFromPieces(std::span<const Piece> pieces, uint64_t offset, void* dst,
                               uint64_t len) {
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  for (const Piece& p : pieces) {
    if (done == len) break;
    if (offset >= p.len) {
      offset -= p.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(p.len - offset, len - done);
    SmallCopy(out + done, p.ptr + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

// Copies `len` bytes from `src` pieces (starting at src_offset) to `dst` pieces (starting at
// dst_offset). Returns the bytes copied.
inline uint64_t CopyPieces(std::span<const Piece> src, uint64_t src_offset,
                           std::span<const Piece> dst, uint64_t dst_offset, uint64_t len) {
  std::size_t si = 0, di = 0;
  while (si < src.size() && src_offset >= src[si].len) src_offset -= src[si++].len;
  while (di < dst.size() && dst_offset >= dst[di].len) dst_offset -= dst[di++].len;
  uint64_t done = 0;
  while (done < len && si < src.size() && di < dst.size()) {
    const uint64_t n = std::min<uint64_t>(
        {src[si].len - src_offset, dst[di].len - dst_offset, len - done});
    // Guest source and destination may overlap (a guest can point them at the same memory).
    SmallCopy(dst[di].ptr + dst_offset, src[si].ptr + src_offset, n);
    done += n;
    src_offset += n;
    dst_offset += n;
    if (src_offset == src[si].len) ++si, src_offset = 0;
    if (dst_offset == dst[di].len) ++di, dst_offset = 0;
  }
  return done;
}

// Copies `len` bytes from `src` into the concatenation of `dst` pieces, starting `dst_offset`
// bytes in. Returns the bytes copied.
inline uint64_t CopyToPieces(const uint8_t* src, uint64_t len, std::span<const Piece> dst,
                             uint64_t dst_offset) {
  uint64_t done = 0;
  for (const Piece& p : dst) {
    if (done == len) break;
    if (dst_offset >= p.len) {
      dst_offset -= p.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(p.len - dst_offset, len - done);
    SmallCopy(p.ptr + dst_offset, src + done, n);
    done += n;
    dst_offset = 0;
  }
  return done;
}

// virtio 1.x 2.7.10: with VIRTIO_F_EVENT_IDX, notify when `event` lies in (old, new_idx].
inline bool NeedEvent(uint16_t event, uint16_t new_idx, uint16_t old) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old);
}

class DeviceRing {
 public:
  // Points the ring at already-translated, host-contiguous desc/avail/used areas. `num` is a
  // power of two (virtio 1.x 2.7: the session refuses any other SET_VRING_NUM), so ring
  // positions are masked, not divided: a division per index costs ~25 cycles, several a packet.
  void Attach(Desc* desc, Avail* avail, Used* used, uint32_t num) {
    desc_ = desc;
    avail_ = avail;
    used_ = used;
    num_ = num;
    mask_ = num - 1;
  }
  void Detach() { desc_ = nullptr, avail_ = nullptr, used_ = nullptr; }
  bool attached() const { return desc_ != nullptr; }
  uint32_t num() const { return num_; }

  void set_last_avail(uint16_t v) { last_avail_ = v; }
  uint16_t last_avail() const { return last_avail_; }
  void set_used_idx(uint16_t v) { used_idx_ = signalled_used_ = v; }
  uint16_t used_idx() const { return used_idx_; }
  // The driver-visible used index (to resynchronise after a restart).
  uint16_t ReadUsedIdx() const {
    return std::atomic_ref<uint16_t>(used_->idx).load(std::memory_order_acquire);
  }

  // Chains the driver made available that we have not consumed yet.
  uint16_t AvailCount() const {
    const uint16_t idx = std::atomic_ref<uint16_t>(avail_->idx).load(std::memory_order_acquire);
    return static_cast<uint16_t>(idx - last_avail_);
  }
  uint16_t NextHead() const {
    return std::atomic_ref<uint16_t>(avail_->ring[last_avail_ & mask_])
        .load(std::memory_order_relaxed);
  }
  // The avail index read once per burst (acquire: the ring entries and descriptors below it
  // are read after it): the chains below it are this burst's to take, and a driver that moves
  // the index meanwhile is seen at the next burst (DPDK reads it once per burst as well). Each
  // read of the live index can cost a cache-line transfer from the driver's core, so the burst
  // loops use Pending(), not AvailCount(). Returns Pending().
  uint16_t RefreshAvail() {
    avail_idx_ = std::atomic_ref<uint16_t>(avail_->idx).load(std::memory_order_acquire);
    return Pending();
  }
  // Chains below the last RefreshAvail() not consumed yet.
  uint16_t Pending() const { return static_cast<uint16_t>(avail_idx_ - last_avail_); }
  // The head `k` places after the next one (k < Pending()).
  uint16_t HeadAt(uint16_t k) const {
    return std::atomic_ref<uint16_t>(avail_->ring[(last_avail_ + k) & mask_])
        .load(std::memory_order_relaxed);
  }
  void Consume() { ++last_avail_; }

  // Writes a used element (not yet visible to the driver until PublishUsed()).
  void PushUsed(uint32_t id, uint32_t len) {
    UsedElem& e = used_->ring[used_idx_ & mask_];
    std::atomic_ref<uint32_t>(e.id).store(id, std::memory_order_relaxed);
    std::atomic_ref<uint32_t>(e.len).store(len, std::memory_order_relaxed);
    ++used_idx_;
  }
  void PublishUsed() {
    std::atomic_ref<uint16_t>(used_->idx).store(used_idx_, std::memory_order_release);
  }
  // Whether the driver should kick after making buffers available. Without EVENT_IDX:
  // VIRTQ_USED_F_NO_NOTIFY. With it: avail_event (after the used ring) names the avail index
  // whose publication must kick; turning kicks on sets it to the next chain we will look at,
  // turning them off leaves it behind (the driver then kicks again only when its index comes
  // round to it, once per 65536 chains). The store is followed by a full fence, so that the
  // caller's next read of avail->idx cannot pass it (the driver's matching barrier is between
  // its avail->idx store and its flags / avail_event load).
  void SetNotifications(bool on, bool event_idx = false) {
    if (event_idx) {
      if (on) std::atomic_ref<uint16_t>(AvailEvent()).store(last_avail_, std::memory_order_relaxed);
    } else {
      std::atomic_ref<uint16_t>(used_->flags).store(on ? 0 : kUsedFNoNotify,
                                                    std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Whether the driver wants an interrupt for what PublishUsed() just published. Without
  // EVENT_IDX: unless VIRTQ_AVAIL_F_NO_INTERRUPT. With it: when used_event (after the avail
  // ring) lies in what was published since the last call.
  bool NeedInterrupt(bool event_idx) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!event_idx)
      return !(std::atomic_ref<uint16_t>(avail_->flags).load(std::memory_order_relaxed) &
               kAvailFNoInterrupt);
    const uint16_t event = std::atomic_ref<uint16_t>(avail_->ring[num_]).load(std::memory_order_relaxed);
    const uint16_t old = signalled_used_;
    signalled_used_ = used_idx_;
    return NeedEvent(event, used_idx_, old);
  }

  // Walks the chain at `head` into `chain`. `translate(addr, len, perm) -> Xlate`.
  // Always inlined (with AddBuffer) into the caller's walk: GCC's size heuristics otherwise
  // decide per caller, and a call per chain plus a call per descriptor cost ~45 instructions a
  // packet (measured with the datapath gate when the backend's worker was split in three).
  template <typename Translate>
  [[gnu::always_inline]] ChainStatus Walk(uint16_t head, bool indirect_allowed, Translate&& translate, Chain* chain,
                   ChainFault* fault, std::vector<Desc>* indirect_scratch) const {
    chain->Clear();
    chain->head = head;
    if (head >= num_) return Malformed(fault, "head %u >= queue size %u", head, num_);
    uint32_t index = head;
    uint32_t budget = num_;  // more descriptors than the queue holds means a loop
    for (;;) {
      Desc d;
      std::memcpy(&d, &desc_[index], sizeof(d));
      if (budget-- == 0)
        return Malformed(fault, "chain at head %u has more than %u descriptors (loop)", head, num_);
      if (d.flags & kDescFIndirect) {
        if (!indirect_allowed)
          return Malformed(fault, "descriptor %u is INDIRECT but INDIRECT_DESC was not negotiated",
                           index);
        if (d.flags & kDescFNext)
          return Malformed(fault, "indirect descriptor %u also sets NEXT", index);
        if (d.len == 0 || d.len % sizeof(Desc))
          return Malformed(fault, "indirect table at descriptor %u has length %u (must be a "
                           "nonzero multiple of 16)", index, d.len);
        if (d.len / sizeof(Desc) > kMaxQueueSize)
          return Malformed(fault, "indirect table of %zu descriptors exceeds %u",
                           d.len / sizeof(Desc), kMaxQueueSize);
        ChainStatus s = ReadIndirect(d, translate, fault, indirect_scratch);
        if (s != ChainStatus::kOk) return s;
        return WalkIndirect(*indirect_scratch, translate, chain, fault);
      }
      ChainStatus s = AddBuffer(d, index, translate, chain, fault);
      if (s != ChainStatus::kOk) return s;
      if (!(d.flags & kDescFNext)) return ChainStatus::kOk;
      if (d.next >= num_)
        return Malformed(fault, "descriptor %u: next %u >= queue size %u", index, d.next, num_);
      index = d.next;
    }
  }

 private:
  template <typename... Args>
  static ChainStatus Malformed(ChainFault* fault, const char* fmt, Args... args) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), fmt, args...);
    fault->why = buf;
    return ChainStatus::kMalformed;
  }

  static ChainStatus Fault(const Xlate& t, uint64_t addr, uint64_t len, iotlb::Perm perm,
                           ChainFault* fault) {
    fault->addr = addr;
    fault->len = len;
    fault->perm = perm;
    char buf[160];
    switch (t.status) {
      case XlateStatus::kMiss:
        return ChainStatus::kMiss;
      case XlateStatus::kAccessFail:
        std::snprintf(buf, sizeof(buf), "address 0x%" PRIx64 " lacks %s permission", addr,
                      perm == iotlb::Perm::kWrite ? "write" : "read");
        fault->why = buf;
        return ChainStatus::kAccessFail;
      default:
        std::snprintf(buf, sizeof(buf), "address 0x%" PRIx64 " is outside mapped memory", addr);
        fault->why = buf;
        return ChainStatus::kMalformed;
    }
  }

  template <typename Translate>
  [[gnu::always_inline]] static ChainStatus AddBuffer(const Desc& d, uint32_t index, Translate& translate, Chain* chain,
                               ChainFault* fault) {
    ++chain->descriptors;
    const bool writable = d.flags & kDescFWrite;
    if (!writable && !chain->writable.empty())
      return Malformed(fault, "device-readable descriptor %u follows a device-writable one", index);
    if (d.len == 0) {
      // An empty writable piece marks that writable descriptors began (copies skip it).
      if (writable) chain->writable.push_back(Piece{nullptr, 0});
      return ChainStatus::kOk;
    }
    if (d.addr + (d.len - 1) < d.addr)
      return Malformed(fault, "descriptor %u: addr 0x%" PRIx64 " + len %u wraps", index, d.addr,
                       d.len);
    const iotlb::Perm perm = writable ? iotlb::Perm::kWrite : iotlb::Perm::kRead;
    auto& pieces = writable ? chain->writable : chain->readable;
    uint64_t addr = d.addr, left = d.len;
    while (left) {
      const Xlate t = translate(addr, left, perm);
      if (t.status != XlateStatus::kOk) return Fault(t, addr, left, perm, fault);
      if (pieces.size() >= kMaxPieces)
        return Malformed(fault, "chain needs more than %zu translated pieces", kMaxPieces);
      pieces.push_back(Piece{t.ptr, static_cast<uint32_t>(t.len)});
      addr += t.len;
      left -= t.len;
    }
    (writable ? chain->writable_len : chain->readable_len) += d.len;
    return ChainStatus::kOk;
  }

  template <typename Translate>
  static ChainStatus ReadIndirect(const Desc& d, Translate& translate, ChainFault* fault,
                                  std::vector<Desc>* table) {
    table->resize(d.len / sizeof(Desc));
    auto* out = reinterpret_cast<uint8_t*>(table->data());
    uint64_t addr = d.addr, left = d.len, done = 0;
    if (addr + (left - 1) < addr)
      return Malformed(fault, "indirect table 0x%" PRIx64 " + %u wraps", d.addr, d.len);
    while (left) {
      const Xlate t = translate(addr, left, iotlb::Perm::kRead);
      if (t.status != XlateStatus::kOk) return Fault(t, addr, left, iotlb::Perm::kRead, fault);
      std::memcpy(out + done, t.ptr, t.len);
      addr += t.len;
      left -= t.len;
      done += t.len;
    }
    return ChainStatus::kOk;
  }

  template <typename Translate>
  static ChainStatus WalkIndirect(const std::vector<Desc>& table, Translate& translate,
                                  Chain* chain, ChainFault* fault) {
    const uint32_t n = static_cast<uint32_t>(table.size());
    uint32_t index = 0, budget = n;
    for (;;) {
      const Desc& d = table[index];
      if (budget-- == 0)
        return Malformed(fault, "indirect chain has more than %u descriptors (loop)", n);
      if (d.flags & kDescFIndirect)
        return Malformed(fault, "nested indirect descriptor at indirect index %u", index);
      ChainStatus s = AddBuffer(d, index, translate, chain, fault);
      if (s != ChainStatus::kOk) return s;
      if (!(d.flags & kDescFNext)) return ChainStatus::kOk;
      if (d.next >= n)
        return Malformed(fault, "indirect descriptor %u: next %u >= table size %u", index, d.next, n);
      index = d.next;
    }
  }

  // avail_event: the u16 after the used ring's num_ elements.
  uint16_t& AvailEvent() {
    return *reinterpret_cast<uint16_t*>(reinterpret_cast<uint8_t*>(used_) + 4 +
                                        sizeof(UsedElem) * num_);
  }

  Desc* desc_ = nullptr;
  Avail* avail_ = nullptr;
  Used* used_ = nullptr;
  uint32_t num_ = 0;
  uint32_t mask_ = 0;  // num_ - 1
  uint16_t last_avail_ = 0;
  uint16_t avail_idx_ = 0;  // avail->idx at the last RefreshAvail()
  uint16_t used_idx_ = 0;
  uint16_t signalled_used_ = 0;  // used_idx_ at the last NeedInterrupt() (EVENT_IDX)
};

}  // namespace vhostlab::virtio
