#include "core/frontend/net_driver.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>

#include "core/loadgen/packet.hpp"
#include "core/virtio/device_queue.hpp"

namespace vhostlab::frontend {
namespace {

constexpr uint32_t kHdr = sizeof(virtio::NetHdr);
constexpr uint32_t kBurst = 32;
constexpr uint64_t kLossNs = 200'000'000;
// IOVA layout inside one queue pair's area (see frontend.cpp for the areas themselves).
constexpr uint64_t kRxPoolIova = 1ull << 32, kTxPoolIova = 2ull << 32;
constexpr uint64_t kRxWindowIova = 4ull << 32, kTxWindowIova = 8ull << 32;

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint32_t MaxFrame(const FrontendConfig& c) {
  const std::vector<uint32_t> sizes = FrameSizes(c);
  return *std::max_element(sizes.begin(), sizes.end());
}
// A transmit buffer (and a receive buffer without MRG_RXBUF) holds the header and the largest
// frame of the mix.
uint64_t TxSlotBytes(const FrontendConfig& c) {
  return std::max<uint64_t>(2048, RoundUp(kHdr + MaxFrame(c), 64));
}
uint32_t RxBufferLen(const FrontendConfig& c, DriverFeatures f) {
  return f.mrg_rxbuf ? MrgBufferBytes(c) : static_cast<uint32_t>(TxSlotBytes(c));
}
uint64_t RxSlotBytes(const FrontendConfig& c, DriverFeatures f) {
  return RoundUp(RxBufferLen(c, f), 64);
}
// With scatter, position i starts 32 bytes before a slot boundary: with 2 KiB slots every other
// one straddles a 4 KiB page boundary (and one in 1024 a 2 MiB one).
uint64_t Skew(const FrontendConfig& c, uint64_t slot) { return c.scatter ? slot - 32 : 0; }
// Bytes of one pool: the ring's buffers, or half the working set (receive and transmit pools
// share it) when that is more.
uint64_t PoolBytes(const FrontendConfig& c, uint64_t slot) {
  return std::max(Skew(c, slot) + uint64_t{c.ring_size} * slot, c.working_set / 2);
}
// Spare guest pages per pool: a storm burst may take all of its pages from one pool.
uint64_t SparePages(const FrontendConfig& c) {
  return c.iommu && c.storm_interval ? c.storm_burst : 0;
}

}  // namespace

uint64_t DriverRing::BytesFor(uint32_t num) {
  uint64_t used_off = RoundUp(virtio::DescBytes(num) + virtio::AvailBytes(num), 4096);
  return used_off + virtio::UsedBytes(num);
}

void DriverRing::Layout(uint8_t* host, bool event_idx) {
  avail_off = virtio::DescBytes(num);
  used_off = RoundUp(avail_off + virtio::AvailBytes(num), 4096);
  bytes = used_off + virtio::UsedBytes(num);
  std::memset(host, 0, bytes);
  desc = reinterpret_cast<virtio::Desc*>(host);
  avail = reinterpret_cast<virtio::Avail*>(host + avail_off);
  used = reinterpret_cast<virtio::Used*>(host + used_off);
  // The driver polls: the device need not signal the call eventfd. With EVENT_IDX, flags stay
  // 0 (virtio 1.x 2.7.7.1) and used_event sits one behind the first entry: the device signals
  // only when its used index passes it, once per 65536 entries.
  if (event_idx) {
    *used_event() = static_cast<uint16_t>(last_used - 1);
  } else {
    avail->flags = virtio::kAvailFNoInterrupt;
  }
}

uint64_t Pool::PagesFor(uint64_t bytes, uint64_t page_size, bool scatter) {
  uint64_t pages = (bytes + page_size - 1) / page_size;
  if (!scatter) return pages;
  // The interleaving permutation needs an even count of at least 4 pages to leave no two
  // IOVA-consecutive pages guest-adjacent (see Build).
  return std::max<uint64_t>(4, pages + (pages & 1));
}

void Pool::Build(const GuestMemory& memory, uint64_t gpa, uint64_t pages, uint64_t ps, bool scatter,
                 uint64_t spares) {
  page_size = ps;
  chunk_gpa = gpa;
  page_gpa.resize(pages);
  page_host.resize(pages);
  spare_gpa.clear();
  for (uint64_t k = 0; k < spares; ++k) spare_gpa.push_back(gpa + (pages + k) * ps);
  for (uint64_t j = 0; j < pages; ++j) {
    // perm(j): even pages fill the first half, odd pages the second (pages is even, >= 4 when
    // scattering), so consecutive logical pages are pages/2 guest pages apart forwards or
    // pages/2 - 1 backwards: never adjacent, and the map is a bijection.
    uint64_t phys = scatter ? (j % 2 == 0 ? j / 2 : pages / 2 + j / 2) : j;
    page_gpa[j] = gpa + phys * ps;
    page_host[j] = memory.GpaToHost(page_gpa[j], ps);
  }
}

uint64_t Pool::SwapWithSpare(const GuestMemory& memory, uint64_t page) {
  // Oldest spare first: a page that just left the pool is reused last.
  uint64_t fresh = spare_gpa.front();
  spare_gpa.erase(spare_gpa.begin());
  spare_gpa.push_back(page_gpa[page]);
  page_gpa[page] = fresh;
  page_host[page] = memory.GpaToHost(fresh, page_size);
  return fresh;
}

void BufferPlacer::Build(uint64_t positions, uint64_t slot_bytes, uint64_t skew, uint64_t page_size,
                         uint64_t pages, bool spread, uint64_t seed) {
  slot_bytes_ = slot_bytes;
  skew_ = skew;
  page_size_ = page_size;
  spread_ = spread;
  cursor_ = 0;
  owned_.assign(positions, false);
  page_owned_.assign(pages, 0);
  order_.clear();
  if (!spread) return;
  // rank[page]: the page's place in a seeded permutation; a position sorts by the rank of the
  // page it starts on, then by its own index.
  std::vector<uint64_t> rank(pages);
  std::iota(rank.begin(), rank.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(rank.begin(), rank.end(), rng);
  std::vector<std::pair<uint64_t, uint32_t>> keyed;
  for (uint64_t p = 0; p < positions; ++p) {
    const uint64_t page = Offset(static_cast<uint32_t>(p)) / page_size;
    keyed.emplace_back(rank[page] * positions + p, static_cast<uint32_t>(p));
  }
  std::sort(keyed.begin(), keyed.end());
  for (const auto& [key, p] : keyed) order_.push_back(p);
}

void BufferPlacer::Count(uint32_t position, int delta) {
  const uint64_t first = Offset(position) / page_size_;
  const uint64_t last = (Offset(position) + slot_bytes_ - 1) / page_size_;
  for (uint64_t page = first; page <= last && page < page_owned_.size(); ++page)
    page_owned_[page] += static_cast<uint32_t>(delta);
}

uint32_t BufferPlacer::Take(uint32_t slot) {
  uint32_t position = slot;
  if (spread_) {
    while (owned_[order_[cursor_]]) cursor_ = (cursor_ + 1) % order_.size();
    position = order_[cursor_];
    cursor_ = (cursor_ + 1) % order_.size();
  }
  owned_[position] = true;
  Count(position, +1);
  return position;
}

void BufferPlacer::Release(uint32_t position) {
  if (!owned_[position]) return;
  owned_[position] = false;
  Count(position, -1);
}

void Pool::Write(uint64_t off, const uint8_t* src, uint32_t len) {
  while (len) {
    uint64_t page = off / page_size, in = off % page_size;
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len, page_size - in));
    std::memcpy(page_host[page] + in, src, n);
    off += n;
    src += n;
    len -= n;
  }
}

void Pool::Read(uint64_t off, uint8_t* dst, uint32_t len) const {
  while (len) {
    uint64_t page = off / page_size, in = off % page_size;
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len, page_size - in));
    std::memcpy(dst, page_host[page] + in, n);
    off += n;
    dst += n;
    len -= n;
  }
}

QueueDriver::QueueDriver(const FrontendConfig& config, DriverFeatures features, uint32_t queue_pair,
                         GuestMemory* memory, Viommu* viommu, uint64_t packets)
    : config_(config),
      features_(features),
      qp_(queue_pair),
      memory_(memory),
      viommu_(viommu),
      packets_(packets),
      frames_(config.seed, static_cast<uint16_t>(queue_pair)) {
  sizes_ = FrameSizes(config);
  max_frame_ = MaxFrame(config);
  rx_buf_len_ = RxBufferLen(config, features);
  for (uint32_t size : sizes_)
    need_.push_back(
        config.sink ? 0 : static_cast<uint32_t>((kHdr + size + rx_buf_len_ - 1) / rx_buf_len_));
  tx_slot_ = TxSlotBytes(config);
  tx_skew_ = Skew(config, tx_slot_);
  rx_slot_ = RxSlotBytes(config, features);
  rx_skew_ = Skew(config, rx_slot_);
  result_.queue_pair = queue_pair;
}

std::vector<uint64_t> QueueDriver::ChunkSizes(const FrontendConfig& c, DriverFeatures f) {
  uint64_t ring = DriverRing::BytesFor(c.ring_size);
  auto pool = [&](uint64_t slot) {
    return (Pool::PagesFor(PoolBytes(c, slot), c.page_size, c.scatter && c.iommu) + SparePages(c)) *
           c.page_size;
  };
  return {ring, ring, pool(RxSlotBytes(c, f)), pool(TxSlotBytes(c))};
}

void QueueDriver::Build(const std::vector<uint64_t>& gpas, uint64_t iova_base) {
  const uint64_t ps = config_.page_size;
  const bool scatter = config_.scatter && config_.iommu;  // without an IOMMU a buffer needs
                                                          // contiguous guest memory
  uint64_t ring_chunk = RoundUp(DriverRing::BytesFor(config_.ring_size), ps);
  DriverRing* rings[2] = {&rx_, &tx_};
  for (int i = 0; i < 2; ++i) {
    DriverRing& r = *rings[i];
    r.index = 2 * qp_ + i;
    r.num = config_.ring_size;
    r.gpa = gpas[i];
    r.iova = iova_base + i * ring_chunk;
    r.Layout(memory_->GpaToHost(r.gpa, DriverRing::BytesFor(r.num)), features_.event_idx);
    r.kick.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    r.call.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }
  const uint64_t rx_pages = Pool::PagesFor(PoolBytes(config_, rx_slot_), ps, scatter);
  const uint64_t tx_pages = Pool::PagesFor(PoolBytes(config_, tx_slot_), ps, scatter);
  rx_pool_.Build(*memory_, gpas[2], rx_pages, ps, scatter, SparePages(config_));
  tx_pool_.Build(*memory_, gpas[3], tx_pages, ps, scatter, SparePages(config_));
  // Every position whose buffer fits in the pool; without a working set, one per descriptor.
  const bool spread = config_.working_set > 0;
  auto positions = [&](uint64_t pages, uint64_t slot, uint64_t skew) {
    return spread ? (pages * ps - skew) / slot : uint64_t{config_.ring_size};
  };
  const uint64_t seed = config_.seed * 0x9e3779b97f4a7c15ull + qp_;
  rx_place_.Build(positions(rx_pages, rx_slot_, rx_skew_), rx_slot_, rx_skew_, ps, rx_pages, spread,
                  seed);
  tx_place_.Build(positions(tx_pages, tx_slot_, tx_skew_), tx_slot_, tx_skew_, ps, tx_pages, spread,
                  ~seed);
  rx_pos_.assign(config_.ring_size, 0);
  tx_pos_.assign(config_.ring_size, 0);
  rx_pool_.static_iova = iova_base + kRxPoolIova;
  tx_pool_.static_iova = iova_base + kTxPoolIova;
  // A buffer spans at most ceil(slot / page) + 1 pages; one more, never mapped, is a guard so
  // no INVALIDATE range ever ends exactly where a live window starts (DPDK 22.11's
  // cache_remove also drops an entry that starts right at iova + size).
  win_pages_ = (std::max(rx_slot_, tx_slot_) + ps - 1) / ps + 2;
  // Enough windows for every slot in flight plus a full flush queue.
  uint64_t windows = 2ull * config_.ring_size + config_.flush_batch + 16;
  rx_win_base_ = iova_base + kRxWindowIova;
  tx_win_base_ = rx_win_base_ + RoundUp(windows * win_pages_ * ps, 1ull << 32);
  for (uint64_t w = 0; w < windows; ++w) {
    rx_free_windows_.push_back(w);
    tx_free_windows_.push_back(w);
  }
  rx_held_.assign(config_.ring_size, Window{0, 0});
  rx_posted_.assign(config_.ring_size, false);
  tx_held_.assign(config_.ring_size, Window{0, 0});
}

Status QueueDriver::MapStatic() {
  const uint64_t ps = config_.page_size;
  const bool push = config_.mapping != Mapping::kCold;
  for (DriverRing* r : {&rx_, &tx_}) {
    std::vector<uint64_t> pages;
    for (uint64_t off = 0; off < r->bytes; off += ps) pages.push_back(r->gpa + off);
    if (Status s = viommu_->Map(r->iova, pages, protocol::kIotlbPermRw, push); !s.ok()) return s;
  }
  if (config_.mapping == Mapping::kStatic || config_.mapping == Mapping::kCold) {
    if (Status s =
            viommu_->Map(rx_pool_.static_iova, rx_pool_.page_gpa, protocol::kIotlbPermRw, push);
        !s.ok())
      return s;
    // Transmit buffers are only read by the device: RO, like a DMA_TO_DEVICE mapping.
    std::vector<uint64_t> tx_pages = tx_pool_.page_gpa;
    if (config_.inject_swapped_pages && tx_pages.size() >= 2) std::swap(tx_pages[0], tx_pages[1]);
    if (Status s = viommu_->Map(tx_pool_.static_iova, tx_pages, protocol::kIotlbPermRo, push);
        !s.ok())
      return s;
  }
  return {};
}

Status QueueDriver::PushUsedRings() {
  for (DriverRing* r : {&rx_, &tx_})
    if (Status s = viommu_->Push(r->iova + r->used_off); !s.ok()) return s;
  return {};
}

Result<uint64_t> QueueDriver::DmaMap(Pool& pool, uint64_t window_base,
                                     std::deque<uint64_t>& free_windows, uint64_t off, uint32_t len,
                                     uint8_t perm, Window* held) {
  if (!config_.iommu) return pool.page_gpa[0] + off;  // identity pool: contiguous guest memory
  if (config_.mapping == Mapping::kStatic || config_.mapping == Mapping::kCold)
    return pool.static_iova + off;
  const uint64_t ps = config_.page_size;
  if (free_windows.empty() && config_.mapping == Mapping::kLazy)
    if (Status s = FlushLazy(); !s.ok()) return s.error();
  if (free_windows.empty()) return Error{"IOVA windows exhausted"};
  uint64_t w = free_windows.front();
  free_windows.pop_front();
  uint64_t first = off / ps, last = (off + len - 1) / ps;
  held->iova = window_base + w * win_pages_ * ps;
  held->pages = last - first + 1;
  if (Status s = viommu_->Map(held->iova,
                              std::span<const uint64_t>(pool.page_gpa.data() + first, held->pages),
                              perm, true);
      !s.ok())
    return s.error();
  ++result_.maps;
  return held->iova + off % ps;
}

Status QueueDriver::DmaUnmap(const Window& w, std::deque<uint64_t>& free_windows) {
  if (!config_.iommu || (config_.mapping != Mapping::kLazy && config_.mapping != Mapping::kStrict))
    return {};
  ++result_.unmaps;
  const bool strict = config_.mapping == Mapping::kStrict;
  if (Status s = viommu_->Unmap(w.iova, w.pages, strict); !s.ok()) return s;
  if (strict) {
    uint64_t base = &free_windows == &rx_free_windows_ ? rx_win_base_ : tx_win_base_;
    free_windows.push_back((w.iova - base) / (win_pages_ * config_.page_size));
    return {};
  }
  flush_queue_.push_back({w, &free_windows == &rx_free_windows_});
  if (flush_queue_.size() >= config_.flush_batch) return FlushLazy();
  return {};
}

Status QueueDriver::FlushLazy() {
  if (flush_queue_.empty()) return {};
  const uint64_t ps = config_.page_size;
  std::sort(flush_queue_.begin(), flush_queue_.end(),
            [](const Deferred& a, const Deferred& b) { return a.w.iova < b.w.iova; });
  // One INVALIDATE per run of adjacent freed windows, from the first window's start to the
  // last one's mapped end: the unmapped tails and guard pages in between hold nothing, so the
  // range covers no live window, and windows handed out in FIFO order come back as long runs.
  const uint64_t stride = win_pages_ * ps;
  std::size_t i = 0;
  while (i < flush_queue_.size()) {
    uint64_t start = flush_queue_[i].w.iova;
    uint64_t end = start + flush_queue_[i].w.pages * ps;
    std::size_t j = i + 1;
    while (j < flush_queue_.size() &&
           flush_queue_[j].w.iova == flush_queue_[j - 1].w.iova + stride &&
           flush_queue_[j].rx == flush_queue_[i].rx) {
      end = flush_queue_[j].w.iova + flush_queue_[j].w.pages * ps;
      ++j;
    }
    if (Status s = viommu_->Invalidate(start, end - start); !s.ok()) return s;
    i = j;
  }
  for (const Deferred& d : flush_queue_) {
    uint64_t base = d.rx ? rx_win_base_ : tx_win_base_;
    (d.rx ? rx_free_windows_ : tx_free_windows_).push_back((d.w.iova - base) / (win_pages_ * ps));
  }
  flush_queue_.clear();
  return {};
}

Status QueueDriver::PostRx(uint16_t slot) {
  rx_pos_[slot] = rx_place_.Take(slot);
  Result<uint64_t> addr =
      DmaMap(rx_pool_, rx_win_base_, rx_free_windows_, rx_place_.Offset(rx_pos_[slot]), rx_buf_len_,
             protocol::kIotlbPermRw, &rx_held_[slot]);
  if (!addr.ok()) return addr.error();
  rx_.desc[slot] = virtio::Desc{*addr, rx_buf_len_, virtio::kDescFWrite, 0};
  rx_.avail->ring[rx_.avail_idx % rx_.num] = slot;
  ++rx_.avail_idx;
  rx_posted_[slot] = true;
  return {};
}

Status QueueDriver::StormBurst() {
  const uint64_t ps = config_.page_size;
  struct Victim {
    Pool* pool;
    uint64_t page;
    uint8_t perm;
  };
  std::vector<Victim> victims;
  // Half of the burst from each pool (the receive pool takes the odd page); a pool with fewer
  // idle pages gives what it has.
  for (int side = 0; side < 2; ++side) {
    Pool& pool = side == 0 ? rx_pool_ : tx_pool_;
    const BufferPlacer& place = side == 0 ? rx_place_ : tx_place_;
    const uint8_t perm = side == 0 ? protocol::kIotlbPermRw : protocol::kIotlbPermRo;
    uint64_t want = side == 0 ? (config_.storm_burst + 1) / 2 : config_.storm_burst / 2;
    uint64_t& cursor = storm_cursor_[side];
    for (uint64_t scanned = 0; want && scanned < place.pages(); ++scanned) {
      const uint64_t page = cursor;
      cursor = (cursor + 1) % place.pages();
      if (!place.PageIdle(page)) continue;
      victims.push_back({&pool, page, perm});
      --want;
    }
  }
  // The flush first (each INVALIDATE acked: after it the device may not use the page), then
  // the IOVAs are reused for other guest pages.
  const bool silent = config_.inject_silent_storm;
  for (const Victim& v : victims)
    if (Status s = viommu_->Unmap(v.pool->static_iova + v.page * ps, 1, !silent); !s.ok()) return s;
  const bool push = config_.mapping != Mapping::kCold && !silent;
  for (const Victim& v : victims) {
    const uint64_t gpa = v.pool->SwapWithSpare(*memory_, v.page);
    if (Status s = viommu_->Map(v.pool->static_iova + v.page * ps,
                                std::span<const uint64_t>(&gpa, 1), v.perm, push);
        !s.ok())
      return s;
  }
  ++result_.storm_bursts;
  result_.storm_pages += victims.size();
  return {};
}

uint64_t QueueDriver::WarmupPackets() const {
  if (config_.working_set == 0) return 0;
  return std::max(rx_place_.positions(), tx_place_.positions());
}

QueueResult QueueDriver::Warmup(const std::atomic<bool>& stop, uint64_t packets) {
  const uint64_t timed = packets_;
  packets_ = packets;
  warming_ = true;
  QueueResult warm = Run(stop, nullptr);
  warming_ = false;
  packets_ = timed;
  result_ = QueueResult{};
  result_.queue_pair = qp_;
  return warm;
}

Status QueueDriver::PostAllRx() {
  for (uint32_t slot = 0; slot < config_.ring_size; ++slot)
    if (Status s = PostRx(static_cast<uint16_t>(slot)); !s.ok()) return s;
  __atomic_store_n(&rx_.avail->idx, rx_.avail_idx, __ATOMIC_RELEASE);
  return {};
}

void QueueDriver::Kick(DriverRing& ring) {
  // virtio 2.7.13: the driver reads used->flags (avail_event) only after its avail->idx store
  // is visible.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old = ring.kicked_idx;
  ring.kicked_idx = ring.avail_idx;
  if (features_.event_idx) {
    if (!virtio::NeedEvent(__atomic_load_n(ring.avail_event(), __ATOMIC_ACQUIRE), ring.avail_idx,
                           old))
      return;
  } else if (__atomic_load_n(&ring.used->flags, __ATOMIC_ACQUIRE) & virtio::kUsedFNoNotify) {
    return;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(ring.kick.get(), &one, sizeof(one));
  ++result_.kicks;
}

// Reads (and so resets) the count a non-blocking eventfd holds; 0 when it holds none.
uint64_t TakeEventfdCount(int fd) {
  uint64_t v = 0;
  return read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

QueueResult QueueDriver::Run(const std::atomic<bool>& stop, std::atomic<uint64_t>* progress) {
  const uint32_t num = config_.ring_size;
  const uint64_t stall_ns = static_cast<uint64_t>(config_.stall_seconds * 1e9);
  std::vector<uint16_t> tx_free;
  for (uint32_t i = num; i-- > 0;) tx_free.push_back(static_cast<uint16_t>(i));
  std::vector<bool> tx_busy(num, false);
  std::vector<uint64_t> tx_sum(config_.sink ? num : 0);  // sink: byte sum of the frame in slot
  std::vector<uint8_t> frame(kHdr + max_frame_), got(max_frame_);
  // Written over every received buffer's bytes before it is posted again, so a device that
  // reports a length without writing is caught.
  const std::vector<uint8_t> poison(kHdr + max_frame_, 0xA5);
  struct Piece {
    uint16_t id;
    uint32_t begin, end;  // bytes of the buffer the frame used
  };
  std::vector<Piece> pieces;          // the buffers one received frame arrived in
  uint64_t tx_seq = 0, next_seq = 0;  // sent; accounted for (received or declared lost)
  // Receive buffers the packets in flight need (sum of BuffersFor over [next_seq, tx_seq)).
  uint64_t rx_need = 0;
  // Packets [next_seq, upto) are accounted for: their buffers are no longer needed.
  auto account = [&](uint64_t upto) {
    for (uint64_t q = next_seq; q < upto; ++q) rx_need -= BuffersFor(q);
    next_seq = upto;
  };
  // Signals before the run (set-up, an earlier warm-up) are not this run's.
  TakeEventfdCount(rx_.call.get());
  TakeEventfdCount(tx_.call.get());
  uint64_t target = packets_;  // 0 until posting stops in timed mode
  bool posting = true;
  const uint64_t start = NowNs();
  const uint64_t deadline =
      config_.seconds > 0 ? start + static_cast<uint64_t>(config_.seconds * 1e9) : 0;
  uint64_t last_progress = start;
  const bool storm = config_.iommu && config_.storm_interval > 0 && !warming_;
  uint64_t next_storm = config_.storm_interval;
  auto fail = [&](std::string why) { result_.error = std::move(why); };

  while (result_.error.empty()) {
    bool progressed = false;
    // Transmit completions: the device has read these buffers.
    uint16_t used_idx = __atomic_load_n(&tx_.used->idx, __ATOMIC_ACQUIRE);
    while (tx_.last_used != used_idx) {
      virtio::UsedElem e = tx_.used->ring[tx_.last_used % num];
      ++tx_.last_used;
      if (e.id >= num || !tx_busy[e.id]) {
        fail("device returned transmit descriptor id " + std::to_string(e.id) +
             " that is not in flight");
        break;
      }
      tx_busy[e.id] = false;
      tx_place_.Release(tx_pos_[e.id]);
      if (Status s = DmaUnmap(tx_held_[e.id], tx_free_windows_); !s.ok()) fail(s.message());
      tx_free.push_back(static_cast<uint16_t>(e.id));
      progressed = true;
      if (config_.sink) {
        // Sink devices complete in order of consumption; every completion is one packet.
        ++result_.sink_packets;
        result_.sent_byte_sum += tx_sum[e.id];
        account(next_seq + 1);
      }
    }
    // Receive completions: unmap first (strict: the INVALIDATE is acked before the CPU reads,
    // as dma_unmap does), check every byte, re-post the buffers at once. A frame arrives in one
    // used entry, or with MRG_RXBUF in num_buffers consecutive ones (published together).
    used_idx = __atomic_load_n(&rx_.used->idx, __ATOMIC_ACQUIRE);
    uint32_t reposted = 0;
    while (result_.error.empty() && rx_.last_used != used_idx) {
      const uint16_t ready = static_cast<uint16_t>(used_idx - rx_.last_used);
      const virtio::UsedElem head = rx_.used->ring[rx_.last_used % num];
      if (head.id >= num || !rx_posted_[head.id]) {
        fail("device returned receive descriptor id " + std::to_string(head.id) +
             " that is not posted");
        break;
      }
      uint32_t buffers = 1;
      if (features_.mrg_rxbuf && head.len >= kHdr) {
        virtio::NetHdr hdr;
        rx_pool_.Read(rx_place_.Offset(rx_pos_[head.id]), reinterpret_cast<uint8_t*>(&hdr), kHdr);
        // num_buffers 0 or past the ring is a device bug: the frame is checked as one buffer.
        if (hdr.num_buffers > 1 && hdr.num_buffers <= num) buffers = hdr.num_buffers;
      }
      if (buffers > ready) break;  // the rest of the frame is not published yet
      progressed = true;
      // Gather the frame (header only in the first buffer) after unmapping every buffer.
      pieces.clear();
      uint32_t got_len = 0;
      bool bad_len = false;
      for (uint32_t k = 0; k < buffers; ++k) {
        const virtio::UsedElem e = rx_.used->ring[rx_.last_used % num];
        ++rx_.last_used;
        if (e.id >= num || !rx_posted_[e.id]) {
          fail("device returned receive descriptor id " + std::to_string(e.id) +
               " that is not posted");
          break;
        }
        rx_posted_[e.id] = false;
        const uint64_t rx_off = rx_place_.Offset(rx_pos_[e.id]);
        rx_place_.Release(rx_pos_[e.id]);
        if (Status s = DmaUnmap(rx_held_[e.id], rx_free_windows_); !s.ok()) {
          fail(s.message());
          break;
        }
        const uint32_t skip = k == 0 ? kHdr : 0;
        if (e.len < skip || e.len > rx_buf_len_ || got_len + (e.len - skip) > max_frame_) {
          bad_len = true;
          pieces.push_back({static_cast<uint16_t>(e.id), 0,
                            skip + std::min(rx_buf_len_ - skip, max_frame_)});
          continue;
        }
        // With MRG_RXBUF the header's num_buffers is poisoned too (0xA5A5: more than a ring).
        pieces.push_back({static_cast<uint16_t>(e.id), features_.mrg_rxbuf ? 0 : skip, e.len});
        rx_pool_.Read(rx_off + skip, got.data() + got_len, e.len - skip);
        got_len += e.len - skip;
      }
      if (!result_.error.empty()) break;
      uint64_t seq = 0;
      if (bad_len || !loadgen::FrameSeq(got.data(), got_len, &seq) || seq >= tx_seq) {
        ++result_.verify_errors;
      } else if (seq < next_seq) {
        ++result_.sequence_errors;
      } else {
        result_.drops += seq - next_seq;
        account(seq + 1);
        const uint32_t size = sizes_[seq % sizes_.size()];
        if (got_len != size) {
          ++result_.verify_errors;
        } else {
          if (!frames_.Matches(got.data(), size, seq)) {
            ++result_.verify_errors;
          } else {
            ++result_.rx_packets;
            result_.rx_bytes += size;
            result_.rx_buffers += buffers;
          }
        }
      }
      for (const Piece& p : pieces) {
        rx_pool_.Write(rx_place_.Offset(rx_pos_[p.id]) + p.begin, poison.data(), p.end - p.begin);
        if (Status s = PostRx(p.id); !s.ok()) {
          fail(s.message());
          break;
        }
        ++reposted;
      }
    }
    if (reposted) {
      __atomic_store_n(&rx_.avail->idx, rx_.avail_idx, __ATOMIC_RELEASE);
      Kick(rx_);
    }
    if (!result_.error.empty()) break;

    if (posting && (stop.load(std::memory_order_relaxed) || (deadline && NowNs() >= deadline))) {
      posting = false;
      target = tx_seq;
    }
    uint32_t posted = 0;
    while (posting && posted < kBurst && !tx_free.empty() && tx_seq - next_seq < num &&
           rx_need + BuffersFor(tx_seq) <= num && (packets_ == 0 || tx_seq < packets_)) {
      const uint32_t size = sizes_[tx_seq % sizes_.size()];
      rx_need += BuffersFor(tx_seq);
      uint16_t slot = tx_free.back();
      tx_free.pop_back();
      std::memset(frame.data(), 0, kHdr);
      frames_.Fill(frame.data() + kHdr, size, tx_seq);
      if (config_.sink) {
        uint64_t sum = 0;
        for (uint32_t b = 0; b < size; ++b) sum += frame[kHdr + b];
        tx_sum[slot] = sum;
      }
      tx_pos_[slot] = tx_place_.Take(slot);
      uint64_t off = tx_place_.Offset(tx_pos_[slot]);
      tx_pool_.Write(off, frame.data(), kHdr + size);
      Result<uint64_t> addr = DmaMap(tx_pool_, tx_win_base_, tx_free_windows_, off, kHdr + size,
                                     protocol::kIotlbPermRo, &tx_held_[slot]);
      if (!addr.ok()) {
        fail(addr.error().message);
        break;
      }
      tx_.desc[slot] = virtio::Desc{*addr, kHdr + size, 0, 0};
      tx_.avail->ring[tx_.avail_idx % num] = slot;
      ++tx_.avail_idx;
      tx_busy[slot] = true;
      ++tx_seq;
      ++posted;
    }
    if (posted) {
      __atomic_store_n(&tx_.avail->idx, tx_.avail_idx, __ATOMIC_RELEASE);
      Kick(tx_);
      progressed = true;
    }
    // The storm runs while the packets just posted are in flight: the device translates while
    // the INVALIDATEs wait for their acks.
    if (storm && tx_seq >= next_storm) {
      next_storm = tx_seq + config_.storm_interval;
      const uint64_t t0 = NowNs();
      if (Status s = StormBurst(); !s.ok()) {
        fail("storm: " + s.message());
        break;
      }
      result_.storm_ns += NowNs() - t0;
    }
    if (progress) progress->store(next_seq, std::memory_order_relaxed);
    if (target && next_seq >= target) break;
    if (progressed) {
      last_progress = 0;
    } else {
      uint64_t now = NowNs();
      if (last_progress == 0) last_progress = now;
      // The device has consumed every transmitted packet, yet some never came back and nothing
      // moved for kLossNs: it dropped them (DPDK drops a packet whose buffer misses in its
      // IOTLB). Count them and go on, so drops cannot shrink the in-flight window to nothing.
      if (tx_seq != next_seq && tx_free.size() == num && now - last_progress > kLossNs) {
        result_.drops += tx_seq - next_seq;
        account(tx_seq);
        last_progress = 0;
        continue;
      }
      if (now - last_progress > stall_ns) {
        result_.drops += tx_seq - next_seq;
        fail("no progress for " + std::to_string(config_.stall_seconds) + " s with " +
             std::to_string(tx_seq - next_seq) + " packets outstanding");
        account(tx_seq);
      }
    }
  }
  result_.end_ns = NowNs();
  result_.elapsed_ns = result_.end_ns - start;
  result_.interrupts = TakeEventfdCount(rx_.call.get()) + TakeEventfdCount(tx_.call.get());
  result_.tx_packets = tx_seq;
  if (progress) progress->store(next_seq, std::memory_order_relaxed);
  // Bounded drain of transmit completions so lazy/strict windows are released, then the last
  // lazy flush: the run ends with nothing mapped that the guest no longer uses.
  const uint64_t drain_end = NowNs() + 1'000'000'000ull;
  while (result_.error.empty() && tx_free.size() < num && NowNs() < drain_end) {
    uint16_t used_idx = __atomic_load_n(&tx_.used->idx, __ATOMIC_ACQUIRE);
    while (tx_.last_used != used_idx) {
      virtio::UsedElem e = tx_.used->ring[tx_.last_used % num];
      ++tx_.last_used;
      if (e.id >= num || !tx_busy[e.id]) break;
      tx_busy[e.id] = false;
      tx_place_.Release(tx_pos_[e.id]);
      if (config_.sink) {
        ++result_.sink_packets;
        result_.sent_byte_sum += tx_sum[e.id];
      }
      if (Status s = DmaUnmap(tx_held_[e.id], tx_free_windows_); !s.ok()) fail(s.message());
      tx_free.push_back(static_cast<uint16_t>(e.id));
    }
  }
  if (config_.iommu && config_.mapping == Mapping::kLazy && result_.error.empty())
    if (Status s = FlushLazy(); !s.ok()) fail(s.message());
  return result_;
}

}  // namespace vhostlab::frontend
