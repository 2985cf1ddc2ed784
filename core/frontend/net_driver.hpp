// The guest virtio-net driver side of one queue pair (receiveq = ring 2q, transmitq = 2q + 1),
// over split rings in guest memory.
//
// Buffers: one descriptor per packet (VERSION_1 header + frame in one buffer) at a buffer
// position of that ring's Pool, chosen by a BufferPlacer: without a working set descriptor i
// always uses position i; with one, each post takes the next free position of a much larger
// pool. A Pool is a run of guest pages; its logical page j lives at guest page perm(j), where
// perm interleaves the pages when `scatter` (so IOVA-consecutive pages are never guest-adjacent)
// and is the identity otherwise. Position i starts at skew + i * slot_bytes; with `scatter` the
// skew makes every other position straddle a page boundary.
//
// INVALIDATE storm (FrontendConfig::storm_interval): between posts, the queue's thread takes
// storm_burst idle pages (no buffer the device owns touches them) from its pools, sends one
// acked INVALIDATE per page, then maps each IOVA again onto one of the pool's spare guest
// pages, the old page becoming a spare. Buffers posted there later must be translated with the
// new mapping: a stale translation reads or writes the old page, and the check below sees it.
//
// Flow control: at most ring_size packets are in flight (sent, not yet received or declared
// lost), and every received buffer is re-posted at once, so a correct device always finds a
// free receive buffer: any packet that does not come back is a drop, never back-pressure.
//
// Verification: the frames in the used receive buffers must be exactly the size of their seq
// in the mix (plus the 12-byte header) and equal FillFrame(seed, queue, seq) byte for byte;
// seqs must arrive in order (both our loopback and testpmd's io forwarding keep per-queue FIFO
// order). A seq gap counts the skipped packets as drops; a repeated or older seq is a sequence
// error. When the device has completed every transmit buffer but packets stay missing for
// 200 ms, they are counted as drops and traffic goes on; no progress at all for stall_seconds
// ends the queue.
//
// MRG_RXBUF (when negotiated): receive buffers are rx_buffer_size bytes; a frame arrives in
// num_buffers (first buffer's header) consecutive used entries, the header only in the first.
// The driver gathers them, checks the frame as above and re-posts every buffer. Flow control
// then counts receive buffers, not packets: the buffers the packets in flight need never exceed
// the ring, so the device still always finds room.
//
// Notifications: without EVENT_IDX the driver kicks unless used->flags has NO_NOTIFY and sets
// avail->flags NO_INTERRUPT (it polls). With EVENT_IDX it kicks only when the device's
// avail_event lies in what it just published (virtio 1.x 2.7.10), and leaves used_event behind
// (as Linux does when callbacks are disabled), so the device signals once per 65536 entries.
// Kicks sent and call-eventfd signals received are counted per queue pair.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "core/base/result.hpp"
#include "core/base/unique_fd.hpp"
#include "core/frontend/frontend.hpp"
#include "core/frontend/guest_memory.hpp"
#include "core/frontend/viommu.hpp"
#include "core/loadgen/packet.hpp"
#include "core/virtio/split_ring.hpp"

namespace vhostlab::frontend {

// One split virtqueue, driver view. Layout inside its guest chunk: desc at 0, avail after the
// descriptor table, used at the next 4 KiB boundary (the legacy layout every backend accepts).
struct DriverRing {
  uint32_t index = 0;
  uint32_t num = 0;
  uint64_t gpa = 0;    // chunk start
  uint64_t iova = 0;   // chunk IOVA (IOMMU on)
  uint64_t bytes = 0;  // chunk bytes used by the ring
  uint64_t avail_off = 0, used_off = 0;
  virtio::Desc* desc = nullptr;
  virtio::Avail* avail = nullptr;
  virtio::Used* used = nullptr;
  uint16_t avail_idx = 0;   // next avail slot (shadow of avail->idx)
  uint16_t last_used = 0;   // next used slot to reap
  uint16_t kicked_idx = 0;  // avail_idx at the last kick decision (EVENT_IDX's "old")
  UniqueFd kick, call;

  // Lays the ring out and sets up interrupt suppression (NO_INTERRUPT, or used_event behind).
  void Layout(uint8_t* host, bool event_idx);
  uint16_t* used_event() { return &avail->ring[num]; }
  uint16_t* avail_event() { return reinterpret_cast<uint16_t*>(&used->ring[num]); }
  static uint64_t BytesFor(uint32_t num);
};

struct Pool {
  uint64_t page_size = 0;
  uint64_t chunk_gpa = 0;
  std::vector<uint64_t> page_gpa;   // logical page -> guest page
  std::vector<uint8_t*> page_host;  // logical page -> our pointer
  std::vector<uint64_t> spare_gpa;  // guest pages no logical page uses (storm remaps onto them)
  uint64_t static_iova = 0;         // IOVA of logical offset 0 (static and cold mappings)

  static uint64_t PagesFor(uint64_t bytes, uint64_t page_size, bool scatter);
  // `pages` logical pages, then `spares` spare guest pages after them in the chunk.
  void Build(const GuestMemory& memory, uint64_t chunk_gpa, uint64_t pages, uint64_t page_size,
             bool scatter, uint64_t spares = 0);
  // Logical page `page` now lives at the next spare guest page; its old page becomes a spare.
  // Returns the new guest page.
  uint64_t SwapWithSpare(const GuestMemory& memory, uint64_t page);
  void Write(uint64_t off, const uint8_t* src, uint32_t len);
  void Read(uint64_t off, uint8_t* dst, uint32_t len) const;
};

// Chooses the pool position of every posted buffer and counts, per pool page, the buffers the
// device owns there (a page with none is idle: the storm may remap it).
// Without `spread`, descriptor slot i always takes position i. With it, positions are visited
// in one fixed order: the pool's pages in a seeded random order, every position of a page
// before the next page (as Linux's page_frag allocator packs consecutive skbs into one page),
// so the buffers in flight cover a moving window of pages spread over the whole pool, every page
// is used before any page twice, and the pages outside the window are idle; a position still
// owned by the device is skipped.
// Invariant: at most `positions` buffers are owned at once (the ring holds no more than its
// size, and a spread pool has at least that many positions), so Take always finds one.
class BufferPlacer {
 public:
  void Build(uint64_t positions, uint64_t slot_bytes, uint64_t skew, uint64_t page_size,
             uint64_t pages, bool spread, uint64_t seed);
  uint32_t Take(uint32_t slot);  // the position for descriptor `slot`'s next buffer
  void Release(uint32_t position);
  uint64_t Offset(uint32_t position) const { return skew_ + uint64_t{position} * slot_bytes_; }
  bool PageIdle(uint64_t page) const { return page_owned_[page] == 0; }
  uint64_t positions() const { return owned_.size(); }
  uint64_t pages() const { return page_owned_.size(); }
  const std::vector<uint32_t>& order() const { return order_; }

 private:
  void Count(uint32_t position, int delta);

  uint64_t slot_bytes_ = 0, skew_ = 0, page_size_ = 0;
  bool spread_ = false;
  std::vector<uint32_t> order_;  // spread: visiting order of the positions
  std::size_t cursor_ = 0;
  std::vector<bool> owned_;           // per position: the device owns a buffer there
  std::vector<uint32_t> page_owned_;  // per page: buffers the device owns on it
};

// The negotiated features the driver honours.
struct DriverFeatures {
  bool event_idx = false;
  bool mrg_rxbuf = false;
};

class QueueDriver {
 public:
  QueueDriver(const FrontendConfig& config, DriverFeatures features, uint32_t queue_pair,
              GuestMemory* memory, Viommu* viommu, uint64_t packets);

  // Chunks this queue pair needs from guest memory, in this order: rx ring, tx ring, rx pool,
  // tx pool.
  static std::vector<uint64_t> ChunkSizes(const FrontendConfig& config, DriverFeatures features);
  // Lays rings and pools out in the chunks; `iova_base` is this queue pair's IOVA area.
  void Build(const std::vector<uint64_t>& chunk_gpas, uint64_t iova_base);
  DriverRing& rx() { return rx_; }
  DriverRing& tx() { return tx_; }
  // Installs the guest's IOMMU mappings for rings and (static, cold) pools; pushes them as
  // UPDATEs unless the mapping is cold.
  Status MapStatic();
  // Cold mapping: pushes each ring's used page unasked, as QEMU does when a device starts.
  Status PushUsedRings();
  // Posts every receive buffer (before the rings are enabled).
  Status PostAllRx();
  // The traffic loop; returns when all packets are accounted for, stop is set, or it stalls.
  QueueResult Run(const std::atomic<bool>& stop, std::atomic<uint64_t>* progress);
  // Packets of one lap over every buffer position of both pools (0 without a working set): the
  // warm-up that faults every page of the working set in on both sides before timing starts.
  uint64_t WarmupPackets() const;
  // Runs `packets` packets untimed and without storms, then resets the counts so Run starts
  // afresh; the warm-up's own result (drops and verify errors count against the run) is
  // returned.
  QueueResult Warmup(const std::atomic<bool>& stop, uint64_t packets);

 private:
  struct Window {
    uint64_t iova;
    uint64_t pages;
  };
  // DMA address of `len` bytes at pool offset `off`: GPA (IOMMU off), static IOVA, or a fresh
  // window (lazy, strict) that it maps and records in `held`.
  Result<uint64_t> DmaMap(Pool& pool, uint64_t window_base, std::deque<uint64_t>& free_windows,
                          uint64_t off, uint32_t len, uint8_t perm, Window* held);
  Status DmaUnmap(const Window& w, std::deque<uint64_t>& free_windows);
  Status FlushLazy();
  Status PostRx(uint16_t slot);
  // One storm burst: storm_burst idle pages invalidated, then mapped onto spare guest pages.
  Status StormBurst();
  void Kick(DriverRing& ring);
  // Receive buffers packet `seq` takes (MRG_RXBUF: its frame over rx_buf_len_; else 1; sink 0).
  uint32_t BuffersFor(uint64_t seq) const { return need_[seq % need_.size()]; }

  FrontendConfig config_;
  DriverFeatures features_;
  uint32_t qp_;
  GuestMemory* memory_;
  Viommu* viommu_;
  uint64_t packets_;                // 0: until stop
  loadgen::FrameGenerator frames_;  // this queue's frames (seed, queue pair)
  std::vector<uint32_t> sizes_;     // the frame-size mix: seq's frame is sizes_[seq % size]
  std::vector<uint32_t> need_;      // per entry of sizes_: receive buffers one such frame takes
  uint32_t max_frame_ = 0;
  uint32_t rx_buf_len_ = 0;             // bytes of each receive descriptor
  uint64_t rx_slot_ = 0, rx_skew_ = 0;  // receive pool: position stride and skew
  uint64_t tx_slot_ = 0, tx_skew_ = 0;  // transmit pool: position stride and skew
  DriverRing rx_, tx_;
  Pool rx_pool_, tx_pool_;
  BufferPlacer rx_place_, tx_place_;
  std::vector<uint32_t> rx_pos_, tx_pos_;  // per slot: the position of its buffer
  uint64_t storm_cursor_[2] = {0, 0};      // per pool (rx, tx): where the next burst looks
  bool warming_ = false;                   // in Warmup: no storm (it only faults pages in)
  uint64_t ring_iova_ = 0, rx_win_base_ = 0, tx_win_base_ = 0, win_pages_ = 0;
  std::deque<uint64_t> rx_free_windows_, tx_free_windows_;
  std::vector<Window> rx_held_, tx_held_;  // per slot: the window mapped for it
  std::vector<bool> rx_posted_;            // per slot: owned by the device (a used entry for a
                                           // slot it does not own is a device bug)
  struct Deferred {
    Window w;
    bool rx;
  };
  std::vector<Deferred> flush_queue_;
  QueueResult result_;
};

}  // namespace vhostlab::frontend
