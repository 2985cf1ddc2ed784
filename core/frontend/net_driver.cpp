#include "core/frontend/net_driver.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>

#include "core/base/prefetch.hpp"
#include "core/base/small_copy.hpp"
#include "core/loadgen/mapping/registry.hpp"
#include "core/loadgen/packet.hpp"
#include "core/protocol/messages.hpp"
#include "core/virtio/device_queue.hpp"

namespace vhostlab::frontend {
namespace {

constexpr uint32_t kHdr = sizeof(virtio::NetHdr);
// Receive buffers ReapRx asks for ahead of its checks.
constexpr uint16_t kPrefetchRx = 32;
// IOVA layout inside one queue pair's area (see frontend.cpp for the areas themselves).
constexpr uint64_t kRxPoolIova = 1ull << 32, kTxPoolIova = 2ull << 32;
// Per-buffer models (lazy, strict) lay their IOVA windows out from here (mapping/window_model).
constexpr uint64_t kWindowIova = 4ull << 32;

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
// With scatter or straddle, position i starts 32 bytes before a slot boundary: with 2 KiB slots
// every other one straddles a 4 KiB page boundary (and one in 1024 a 2 MiB one).
uint64_t Skew(const FrontendConfig& c, uint64_t slot) {
  return c.scatter || c.straddle ? slot - 32 : 0;
}
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
  page_shift = static_cast<unsigned>(std::countr_zero(ps));
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
  page_shift_ = static_cast<unsigned>(std::countr_zero(page_size));
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
  const uint64_t first = Offset(position) >> page_shift_;
  const uint64_t last = (Offset(position) + slot_bytes_ - 1) >> page_shift_;
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
    uint64_t page = off >> page_shift, in = off & (page_size - 1);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len, page_size - in));
    SmallCopy(page_host[page] + in, src, n);
    off += n;
    src += n;
    len -= n;
  }
}

void Pool::Read(uint64_t off, uint8_t* dst, uint32_t len) const {
  while (len) {
    uint64_t page = off >> page_shift, in = off & (page_size - 1);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len, page_size - in));
    SmallCopy(dst, page_host[page] + in, n);
    off += n;
    dst += n;
    len -= n;
  }
}

QueueDriver::QueueDriver(const FrontendConfig& config, DriverFeatures features, uint32_t queue_pair,
                         GuestMemory* memory, loadgen::IommuPort* iommu)
    : config_(config),
      features_(features),
      qp_(queue_pair),
      memory_(memory),
      iommu_(iommu),
      model_(loadgen::MakeMappingModel(config.mapping, config.iommu, iommu,
                                       {config.flush_batch, config.inject_swapped_pages})),
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
  iova_base_ = iova_base;
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
  rx_posted_.assign(config_.ring_size, false);
  // Per-run state: sized once, so the traffic loop never allocates.
  tx_free_.reserve(config_.ring_size);
  tx_busy_.assign(config_.ring_size, false);
  tx_sum_.assign(config_.sink ? config_.ring_size : 0, 0);
  frame_.assign(kHdr + max_frame_, 0);
  got_.assign(max_frame_, 0);
  poison_.assign(kHdr + max_frame_, 0xA5);
  pieces_.reserve(config_.ring_size);
}

Status QueueDriver::SetUpMappings() {
  loadgen::QueueDma q;
  q.page_size = config_.page_size;
  q.ring_size = config_.ring_size;
  q.max_buffer_bytes = std::max(rx_slot_, tx_slot_);
  q.window_area = iova_base_ + kWindowIova;
  for (int side : {loadgen::kRx, loadgen::kTx}) {
    const DriverRing& r = side == loadgen::kRx ? rx_ : tx_;
    q.rings[side] = {r.iova, r.gpa, r.bytes, r.used_off};
    const Pool& pool = side == loadgen::kRx ? rx_pool_ : tx_pool_;
    // Transmit buffers are only read by the device: RO, like a DMA_TO_DEVICE mapping.
    q.pools[side] = {&pool.page_gpa, pool.static_iova,
                     side == loadgen::kRx ? protocol::kIotlbPermRw : protocol::kIotlbPermRo};
  }
  return model_->SetUp(q);
}

Status QueueDriver::PostRx(uint16_t slot) {
  rx_pos_[slot] = rx_place_.Take(slot);
  Result<uint64_t> addr =
      model_->MapBuffer(loadgen::kRx, slot, rx_place_.Offset(rx_pos_[slot]), rx_buf_len_);
  if (!addr.ok()) return addr.error();
  rx_.desc[slot] = virtio::Desc{*addr, rx_buf_len_, virtio::kDescFWrite, 0};
  rx_.avail->ring[rx_.avail_idx % rx_.num] = slot;
  ++rx_.avail_idx;
  rx_posted_[slot] = true;
  return {};
}

Status QueueDriver::StormBurst() {
  const uint64_t t0 = NowNs();
  const uint64_t ps = config_.page_size;
  struct Victim {
    Pool* pool;
    uint64_t page;
    uint8_t perm;
  };
  // At most storm_burst victims; a burst happens every storm_interval packets at most, so this
  // one allocation is per burst, never per packet.
  std::vector<Victim> victims;
  victims.reserve(config_.storm_burst);
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
  // the IOVAs are reused for other guest pages, pushed as the model pushes its mappings.
  const bool silent = config_.inject_silent_storm;
  for (const Victim& v : victims)
    if (Status s = iommu_->Unmap(v.pool->static_iova + v.page * ps, 1, !silent); !s.ok()) return s;
  const bool push = model_->pushes_updates() && !silent;
  for (const Victim& v : victims) {
    const uint64_t gpa = v.pool->SwapWithSpare(*memory_, v.page);
    if (Status s = iommu_->Map(v.pool->static_iova + v.page * ps,
                               std::span<const uint64_t>(&gpa, 1), v.perm, push);
        !s.ok())
      return s;
  }
  ++result_.storm_bursts;
  result_.storm_pages += victims.size();
  result_.storm_ns += NowNs() - t0;
  return {};
}

uint64_t QueueDriver::WarmupPackets() const {
  if (config_.working_set == 0) return 0;
  return std::max(rx_place_.positions(), tx_place_.positions());
}

void QueueDriver::ResetCounts() {
  result_ = QueueResult{};
  result_.queue_pair = qp_;
  maps_base_ = model_->maps();
  unmaps_base_ = model_->unmaps();
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

void QueueDriver::BeginRun() {
  const uint32_t num = config_.ring_size;
  tx_free_.clear();
  for (uint32_t i = num; i-- > 0;) tx_free_.push_back(static_cast<uint16_t>(i));
  tx_busy_.assign(num, false);
  tx_seq_ = next_seq_ = rx_need_ = 0;
  // Signals before the run (set-up, an earlier warm-up) are not this run's.
  TakeEventfdCount(rx_.call.get());
  TakeEventfdCount(tx_.call.get());
}

bool QueueDriver::ReapTxUpTo(uint16_t used_idx, bool in_traffic) {
  const uint32_t num = config_.ring_size;
  bool any = false;
  while (tx_.last_used != used_idx) {
    const virtio::UsedElem e = tx_.used->ring[tx_.last_used % num];
    ++tx_.last_used;
    if (e.id >= num || !tx_busy_[e.id]) {
      if (in_traffic)
        Fail("device returned transmit descriptor id " + std::to_string(e.id) +
             " that is not in flight");
      break;
    }
    tx_busy_[e.id] = false;
    // The next frame PostTx writes into this slot (the free list is last in, first out)
    // finds its first lines already taken back from the device's core: each store into a
    // line the device read must wait for that, and a run of them fills the store queue
    // (bench/README.md, "The front-end's stores").
    if (in_traffic) {
      const uint64_t off = tx_place_.Offset(tx_pos_[e.id]);
      PrefetchWrite(tx_pool_.At(off));
      PrefetchWrite(tx_pool_.At(off + std::min<uint64_t>(64, tx_slot_ - 1)));
    }
    tx_place_.Release(tx_pos_[e.id]);
    if (Status s = model_->UnmapBuffer(loadgen::kTx, e.id); !s.ok()) Fail(s.message());
    tx_free_.push_back(static_cast<uint16_t>(e.id));
    any = true;
    if (config_.sink) {
      // Sink devices complete in order of consumption; every completion is one packet.
      ++result_.sink_packets;
      result_.sent_byte_sum += tx_sum_[e.id];
      // In traffic the packet is accounted for; the final drain only releases buffers.
      if (in_traffic) Account(next_seq_ + 1);
    }
  }
  return any;
}

bool QueueDriver::ReapRx() {
  // Unmap first (strict: the INVALIDATE is acked before the CPU reads, as dma_unmap does),
  // check every byte, re-post the buffers at once. A frame arrives in one used entry, or with
  // MRG_RXBUF in num_buffers consecutive ones (published together).
  const uint32_t num = config_.ring_size;
  const uint16_t used_idx = __atomic_load_n(&rx_.used->idx, __ATOMIC_ACQUIRE);
  bool progressed = false;
  uint32_t reposted = 0;
  // Every line the device wrote comes from its core: the receive buffers of the first entries
  // published are asked for at once, with write intent (the poison is written over them after
  // the check), so their transfers overlap instead of following one another.
  const uint16_t published = static_cast<uint16_t>(used_idx - rx_.last_used);
  for (uint16_t k = 0; k < std::min<uint16_t>(published, kPrefetchRx); ++k) {
    const virtio::UsedElem e = rx_.used->ring[static_cast<uint16_t>(rx_.last_used + k) % num];
    if (e.id >= num || !rx_posted_[e.id]) break;  // the loop below says what is wrong
    const uint64_t off = rx_place_.Offset(rx_pos_[e.id]);
    PrefetchWrite(rx_pool_.At(off));
    PrefetchWrite(rx_pool_.At(off + std::clamp<uint32_t>(e.len, 1, rx_buf_len_) - 1));
  }
  while (!failed() && rx_.last_used != used_idx) {
    const uint16_t ready = static_cast<uint16_t>(used_idx - rx_.last_used);
    const virtio::UsedElem head = rx_.used->ring[rx_.last_used % num];
    if (head.id >= num || !rx_posted_[head.id]) {
      Fail("device returned receive descriptor id " + std::to_string(head.id) +
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
    pieces_.clear();
    uint32_t got_len = 0;
    bool bad_len = false;
    // A frame in one buffer that is contiguous here is checked where it is, not gathered into
    // got_ first (the same store-forwarding stall as PostTx's copy: the checks' loads would
    // wait for the gathering stores, and for every store before them).
    const uint8_t* frame = got_.data();
    for (uint32_t k = 0; k < buffers; ++k) {
      const virtio::UsedElem e = rx_.used->ring[rx_.last_used % num];
      ++rx_.last_used;
      if (e.id >= num || !rx_posted_[e.id]) {
        Fail("device returned receive descriptor id " + std::to_string(e.id) +
             " that is not posted");
        break;
      }
      rx_posted_[e.id] = false;
      const uint64_t rx_off = rx_place_.Offset(rx_pos_[e.id]);
      rx_place_.Release(rx_pos_[e.id]);
      if (Status s = model_->UnmapBuffer(loadgen::kRx, e.id); !s.ok()) {
        Fail(s.message());
        break;
      }
      const uint32_t skip = k == 0 ? kHdr : 0;
      if (e.len < skip || e.len > rx_buf_len_ || got_len + (e.len - skip) > max_frame_) {
        bad_len = true;
        pieces_.push_back({static_cast<uint16_t>(e.id), 0,
                           skip + std::min(rx_buf_len_ - skip, max_frame_)});
        continue;
      }
      // With MRG_RXBUF the header's num_buffers is poisoned too (0xA5A5: more than a ring).
      pieces_.push_back({static_cast<uint16_t>(e.id), features_.mrg_rxbuf ? 0 : skip, e.len});
      const uint8_t* here = buffers == 1 && e.len > skip
                                ? rx_pool_.Contiguous(rx_off + skip, e.len - skip) : nullptr;
      if (here)
        frame = here;
      else
        rx_pool_.Read(rx_off + skip, got_.data() + got_len, e.len - skip);
      got_len += e.len - skip;
    }
    if (failed()) break;
    uint64_t seq = 0;
    if (bad_len || !loadgen::FrameSeq(frame, got_len, &seq) || seq >= tx_seq_) {
      ++result_.verify_errors;
    } else if (seq < next_seq_) {
      ++result_.sequence_errors;
    } else {
      result_.drops += seq - next_seq_;
      Account(seq + 1);
      const uint32_t size = sizes_[seq % sizes_.size()];
      if (got_len != size || !frames_.Matches(frame, size, seq)) {
        ++result_.verify_errors;
      } else {
        ++result_.rx_packets;
        result_.rx_bytes += size;
        result_.rx_buffers += buffers;
      }
    }
    for (const Piece& p : pieces_) {
      rx_pool_.Write(rx_place_.Offset(rx_pos_[p.id]) + p.begin, poison_.data(), p.end - p.begin);
      if (Status s = PostRx(p.id); !s.ok()) {
        Fail(s.message());
        break;
      }
      ++reposted;
    }
  }
  if (reposted) {
    __atomic_store_n(&rx_.avail->idx, rx_.avail_idx, __ATOMIC_RELEASE);
    Kick(rx_);
  }
  return progressed;
}

uint32_t QueueDriver::PostTx(uint32_t max, uint64_t limit) {
  const uint32_t num = config_.ring_size;
  uint32_t posted = 0;
  while (posted < max && !tx_free_.empty() && tx_seq_ - next_seq_ < num &&
         rx_need_ + BuffersFor(tx_seq_) <= num && (limit == 0 || tx_seq_ < limit)) {
    const uint32_t size = sizes_[tx_seq_ % sizes_.size()];
    rx_need_ += BuffersFor(tx_seq_);
    const uint16_t slot = tx_free_.back();
    tx_free_.pop_back();
    tx_pos_[slot] = tx_place_.Take(slot);
    const uint64_t off = tx_place_.Offset(tx_pos_[slot]);
    // The frame is made where the device will read it, when the buffer is contiguous here:
    // made in frame_ and copied, the copy's wide loads of bytes just stored narrower cannot be
    // forwarded from the store queue and wait for every older store to reach the cache,
    // including stores into lines the device's core still holds (bench/README.md,
    // "Store-forwarding stalls").
    uint8_t* in_place = config_.sink ? nullptr : tx_pool_.Contiguous(off, kHdr + size);
    if (in_place) [[likely]] {
      std::memset(in_place, 0, kHdr);
      frames_.Fill(in_place + kHdr, size, tx_seq_);
    } else {
      std::memset(frame_.data(), 0, kHdr);
      frames_.Fill(frame_.data() + kHdr, size, tx_seq_);
      if (config_.sink) {
        uint64_t sum = 0;
        for (uint32_t b = 0; b < size; ++b) sum += frame_[kHdr + b];
        tx_sum_[slot] = sum;
      }
      tx_pool_.Write(off, frame_.data(), kHdr + size);
    }
    Result<uint64_t> addr = model_->MapBuffer(loadgen::kTx, slot, off, kHdr + size);
    if (!addr.ok()) {
      Fail(addr.error().message);
      break;
    }
    tx_.desc[slot] = virtio::Desc{*addr, kHdr + size, 0, 0};
    tx_.avail->ring[tx_.avail_idx % num] = slot;
    ++tx_.avail_idx;
    tx_busy_[slot] = true;
    ++tx_seq_;
    ++posted;
  }
  if (posted) {
    __atomic_store_n(&tx_.avail->idx, tx_.avail_idx, __ATOMIC_RELEASE);
    Kick(tx_);
  }
  return posted;
}

QueueResult QueueDriver::EndRun(uint64_t start_ns) {
  result_.end_ns = NowNs();
  result_.elapsed_ns = result_.end_ns - start_ns;
  result_.interrupts = TakeEventfdCount(rx_.call.get()) + TakeEventfdCount(tx_.call.get());
  result_.tx_packets = tx_seq_;
  // Bounded drain of transmit completions so per-buffer windows are released, then the model's
  // last flush: the run ends with nothing mapped that the guest no longer uses.
  const uint64_t drain_end = NowNs() + 1'000'000'000ull;
  while (!failed() && !tx_all_complete() && NowNs() < drain_end)
    ReapTxUpTo(__atomic_load_n(&tx_.used->idx, __ATOMIC_ACQUIRE), false);
  if (!failed())
    if (Status s = model_->Flush(); !s.ok()) Fail(s.message());
  result_.maps = model_->maps() - maps_base_;
  result_.unmaps = model_->unmaps() - unmaps_base_;
  return result_;
}

}  // namespace vhostlab::frontend
