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
// error. Packets that never come back are declared lost by the traffic runner
// (core/loadgen/traffic_runner.hpp: its loss and stall rules).
//
// DMA addresses come from the queue pair's mapping model (core/loadgen/mapping_model.hpp):
// this file never asks which model it runs.
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
#include <memory>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/base/unique_fd.hpp"
#include "core/frontend/frontend.hpp"
#include "core/frontend/guest_memory.hpp"
#include "core/loadgen/mapping_model.hpp"
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
  uint64_t page_size = 0;   // a power of two (4 KiB or 2 MiB)
  unsigned page_shift = 0;  // log2(page_size): the per-packet paths shift instead of dividing
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
  // Our pointer to the byte at `off`.
  uint8_t* At(uint64_t off) const { return page_host[off >> page_shift] + (off & (page_size - 1)); }
  // Our pointer to bytes [off, off + len) when they are contiguous in our mapping (on one page,
  // or on pages that follow each other there); nullptr otherwise (scattered pages).
  uint8_t* Contiguous(uint64_t off, uint32_t len) const {
    const uint64_t first = off >> page_shift, last = (off + len - 1) >> page_shift;
    uint8_t* p = At(off);
    if (first == last) [[likely]] return p;
    return page_host[last] == page_host[first] + ((last - first) << page_shift) ? p : nullptr;
  }
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

  uint64_t slot_bytes_ = 0, skew_ = 0;
  unsigned page_shift_ = 0;  // log2 of the page size (a power of two)
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

// The ring mechanics and the checks of one queue pair; loadgen::TrafficRunner decides what to
// send and when, and the queue pair's loadgen::MappingModel gives every buffer its DMA address.
class QueueDriver {
 public:
  QueueDriver(const FrontendConfig& config, DriverFeatures features, uint32_t queue_pair,
              GuestMemory* memory, loadgen::IommuPort* iommu);

  // Chunks this queue pair needs from guest memory, in this order: rx ring, tx ring, rx pool,
  // tx pool.
  static std::vector<uint64_t> ChunkSizes(const FrontendConfig& config, DriverFeatures features);
  // Lays rings and pools out in the chunks; `iova_base` is this queue pair's IOVA area.
  void Build(const std::vector<uint64_t>& chunk_gpas, uint64_t iova_base);
  DriverRing& rx() { return rx_; }
  DriverRing& tx() { return tx_; }
  // The guest's IOMMU mappings the model installs up front (rings, and pools for models with
  // fixed IOVAs), before the ring addresses are given to the device.
  Status SetUpMappings();
  // After the rings were given to the device (cold: each used ring page pushed unasked).
  Status OnDeviceStarted() { return model_->OnDeviceStarted(); }
  // Posts every receive buffer (before the rings are enabled).
  Status PostAllRx();
  // Packets of one lap over every buffer position of both pools (0 without a working set): the
  // warm-up that faults every page of the working set in on both sides before timing starts.
  uint64_t WarmupPackets() const;

  // The ring mechanics a loadgen::TrafficRunner drives (see traffic_runner.hpp).
  void BeginRun();
  // Transmit completions: the device has read these buffers. True when any completed.
  bool ReapTx() { return ReapTxUpTo(__atomic_load_n(&tx_.used->idx, __ATOMIC_ACQUIRE), true); }
  // Receive completions: unmapped, checked byte for byte, re-posted at once (one kick).
  bool ReapRx();
  // Posts up to `max` packets, as flow control allows (seq < limit unless 0); one kick.
  uint32_t PostTx(uint32_t max, uint64_t limit);
  uint64_t sent() const { return tx_seq_; }
  // Drain traffic (see traffic_runner.hpp): the used entries the device will publish for what
  // is in flight (transmit buffers, and the receive buffers their frames need), and those it
  // has published that are not reaped yet (read from the two used indexes, nothing reaped).
  uint64_t DrainTarget() const { return config_.ring_size - tx_free_.size() + rx_need_; }
  uint64_t DeviceCompletions() const {
    const uint16_t tx = __atomic_load_n(&tx_.used->idx, __ATOMIC_ACQUIRE);
    const uint16_t rx = __atomic_load_n(&rx_.used->idx, __ATOMIC_ACQUIRE);
    return static_cast<uint16_t>(tx - tx_.last_used) + static_cast<uint16_t>(rx - rx_.last_used);
  }
  void AddDrain(uint64_t ns, double packets) {
    result_.drain_ns += ns;
    result_.drain_packets += packets;
  }
  uint64_t accounted() const { return next_seq_; }
  bool tx_all_complete() const { return tx_free_.size() == config_.ring_size; }
  void DeclareLost() {
    result_.drops += tx_seq_ - next_seq_;
    Account(tx_seq_);
  }
  // One storm burst: storm_burst idle pages invalidated, then mapped onto spare guest pages.
  Status StormBurst();
  bool failed() const { return !result_.error.empty(); }
  void Fail(std::string why) { result_.error = std::move(why); }
  // Closes a run that started at `start_ns`: times and counts, a bounded drain of transmit
  // completions (so per-buffer windows are released), the model's last flush.
  QueueResult EndRun(uint64_t start_ns);
  // The counts restart (after the warm-up).
  void ResetCounts();

 private:
  Status PostRx(uint16_t slot);
  void Kick(DriverRing& ring);
  // The one transmit-completion path, for traffic and for the final drain. `in_traffic`: an id
  // not in flight fails the queue and a sink completion accounts its packet; in the drain,
  // reaping just stops at such an id and only releases buffers.
  bool ReapTxUpTo(uint16_t used_idx, bool in_traffic);
  // Packets [next_seq_, upto) are accounted for: their receive buffers are no longer needed.
  void Account(uint64_t upto) {
    for (uint64_t q = next_seq_; q < upto; ++q) rx_need_ -= BuffersFor(q);
    next_seq_ = upto;
  }
  // Receive buffers packet `seq` takes (MRG_RXBUF: its frame over rx_buf_len_; else 1; sink 0).
  uint32_t BuffersFor(uint64_t seq) const { return need_[seq % need_.size()]; }

  FrontendConfig config_;
  DriverFeatures features_;
  uint32_t qp_;
  GuestMemory* memory_;
  loadgen::IommuPort* iommu_;
  std::unique_ptr<loadgen::MappingModel> model_;
  loadgen::FrameGenerator frames_;  // this queue's frames (seed, queue pair)
  std::vector<uint32_t> sizes_;     // the frame-size mix: seq's frame is sizes_[seq % size]
  std::vector<uint32_t> need_;      // per entry of sizes_: receive buffers one such frame takes
  uint32_t max_frame_ = 0;
  uint32_t rx_buf_len_ = 0;             // bytes of each receive descriptor
  uint64_t rx_slot_ = 0, rx_skew_ = 0;  // receive pool: position stride and skew
  uint64_t tx_slot_ = 0, tx_skew_ = 0;  // transmit pool: position stride and skew
  uint64_t iova_base_ = 0;
  DriverRing rx_, tx_;
  Pool rx_pool_, tx_pool_;
  BufferPlacer rx_place_, tx_place_;
  std::vector<uint32_t> rx_pos_, tx_pos_;  // per slot: the position of its buffer
  uint64_t storm_cursor_[2] = {0, 0};      // per pool (rx, tx): where the next burst looks
  std::vector<bool> rx_posted_;            // per slot: owned by the device (a used entry for a
                                           // slot it does not own is a device bug)
  // Per-run state (BeginRun), sized once in Build so no packet allocates.
  std::vector<uint16_t> tx_free_;  // transmit slots the driver owns
  std::vector<bool> tx_busy_;      // per slot: in flight
  std::vector<uint64_t> tx_sum_;   // sink: byte sum of the frame in slot
  std::vector<uint8_t> frame_;     // one transmit frame (header + the largest frame)
  std::vector<uint8_t> got_;       // one received frame, gathered
  // Written over every received buffer's bytes before it is posted again, so a device that
  // reports a length without writing is caught.
  std::vector<uint8_t> poison_;
  struct Piece {
    uint16_t id;
    uint32_t begin, end;  // bytes of the buffer the frame used
  };
  std::vector<Piece> pieces_;           // the buffers one received frame arrived in
  uint64_t tx_seq_ = 0, next_seq_ = 0;  // sent; accounted for (received or declared lost)
  uint64_t rx_need_ = 0;  // receive buffers the packets in flight need (over [next, tx_seq))
  uint64_t maps_base_ = 0, unmaps_base_ = 0;  // the model's counts when the counts restarted
  QueueResult result_;
};

}  // namespace vhostlab::frontend
