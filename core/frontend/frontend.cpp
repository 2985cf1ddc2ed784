#include "core/frontend/frontend.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "core/base/log.hpp"
#include "core/frontend/net_driver.hpp"
#include "core/loadgen/mapping/registry.hpp"
#include "core/loadgen/packet.hpp"
#include "core/loadgen/traffic_runner.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::frontend {
namespace {

// Queue pair q owns IOVAs [kIovaBase + q * kIovaPerQueue, +kIovaPerQueue): far above every GPA
// (guest memory stays below 8 GiB) so an IOVA can never pass for a GPA.
constexpr uint64_t kIovaBase = 0x40ull << 32;
constexpr uint64_t kIovaPerQueue = 1ull << 40;  // 1 TiB: see QueueDriver::Build for its layout
constexpr uint64_t kMaxWorkingSet = 1ull << 30;

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

Status Validate(const FrontendConfig& c) {
  if (c.page_size != 4096 && c.page_size != (2ull << 20))
    return Error{"page size must be 4096 (4k) or 2097152 (2m), not " + std::to_string(c.page_size)};
  if (!virtio::ValidQueueSize(c.ring_size) || c.ring_size < 8 || c.ring_size > 4096)
    return Error{"ring size must be a power of two in 8..4096, not " + std::to_string(c.ring_size)};
  for (uint32_t size : FrameSizes(c))
    if (size < loadgen::kMinFrame || size > loadgen::kMaxFrame)
      return Error{"packet size must be " + std::to_string(loadgen::kMinFrame) + ".." +
                   std::to_string(loadgen::kMaxFrame) + " bytes, not " + std::to_string(size)};
  if (c.packet_sizes.size() > 1024)
    return Error{"a packet-size mix has at most 1024 entries, not " +
                 std::to_string(c.packet_sizes.size())};
  if (c.rx_buffer_size != 0 && (c.rx_buffer_size < 64 || c.rx_buffer_size > 65536))
    return Error{"receive buffer size must be 64..65536 bytes (0: " +
                 std::to_string(kDefaultMrgBufferBytes) + "), not " +
                 std::to_string(c.rx_buffer_size)};
  if (c.mrg_rxbuf) {
    // Flow control keeps the buffers of the packets in flight within the ring: the largest
    // frame must fit in it.
    const std::vector<uint32_t> sizes = FrameSizes(c);
    const uint64_t largest = *std::max_element(sizes.begin(), sizes.end());
    const uint64_t buf = MrgBufferBytes(c);
    const uint64_t need = (sizeof(virtio::NetHdr) + largest + buf - 1) / buf;
    if (need > c.ring_size)
      return Error{"a " + std::to_string(largest) + "-byte frame needs " + std::to_string(need) +
                   " receive buffers of " + std::to_string(buf) + " bytes, more than the ring's " +
                   std::to_string(c.ring_size)};
  }
  if (c.queue_pairs == 0 || c.queue_pairs > 64)
    return Error{"queue pairs must be 1..64, not " + std::to_string(c.queue_pairs)};
  if (c.packets == 0 && !(c.seconds > 0))
    return Error{"give a packet count or a duration in seconds"};
  if (c.packets && c.packets < c.queue_pairs) return Error{"fewer packets than queue pairs"};
  if (c.burst == 0 || c.burst > 4096)
    return Error{"burst must be 1..4096 packets, not " + std::to_string(c.burst)};
  if (!(c.rate >= 0) || c.rate > 1e9)
    return Error{"rate must be 0 (open loop) .. 1e9 packets/s per queue, not " +
                 std::to_string(c.rate)};
  if (c.drain && c.rate > 0)
    return Error{"drain traffic posts whole rings as fast as the backend drains them; a target "
                 "rate needs stream traffic"};
  if (c.drain && c.storm_interval)
    return Error{"drain traffic times the backend alone; an INVALIDATE storm runs between posts, "
                 "so it needs stream traffic"};
  if (c.warmup_packets > (1ull << 32))
    return Error{"warm-up must be at most 2^32 packets per queue, not " +
                 std::to_string(c.warmup_packets)};
  if (c.flush_batch == 0 || c.flush_batch > 65536)
    return Error{"flush batch must be 1..65536, not " + std::to_string(c.flush_batch)};
  // Guest memory regions start 4 GiB apart (GuestMemory), and every byte is populated.
  if (c.working_set > kMaxWorkingSet)
    return Error{"working set must be at most 1 GiB per queue pair, not " +
                 std::to_string(c.working_set) + " bytes"};
  if (c.working_set * c.queue_pairs > 4 * kMaxWorkingSet)
    return Error{"working set times queue pairs must be at most 4 GiB"};
  if (c.storm_interval) {
    // The storm recycles pages under fixed IOVAs: models that map per buffer have none.
    if (!c.iommu || !loadgen::DescribeMapping(c.mapping).fixed_iovas)
      return Error{"an INVALIDATE storm needs the IOMMU on and static or cold mapping"};
    if (c.storm_interval > (1ull << 32))
      return Error{"storm interval must be at most 2^32 packets, not " +
                   std::to_string(c.storm_interval)};
    if (c.storm_burst == 0 || c.storm_burst > 4096 || c.storm_burst * c.page_size > (256ull << 20))
      return Error{"storm burst must be 1..4096 pages and at most 256 MiB, not " +
                   std::to_string(c.storm_burst) + " pages"};
  }
  return {};
}

// Stops the backend-channel thread before the Viommu it calls into is destroyed.
struct StopChannelOnExit {
  Session* session;
  ~StopChannelOnExit() { session->StopBackendChannel(); }
};

}  // namespace

std::vector<uint32_t> FrameSizes(const FrontendConfig& config) {
  if (config.packet_sizes.empty()) return {config.packet_size};
  return config.packet_sizes;
}

uint32_t MrgBufferBytes(const FrontendConfig& config) {
  return config.rx_buffer_size ? config.rx_buffer_size : kDefaultMrgBufferBytes;
}

namespace {
// The run's totals: `per_queue(q)` summed over every queue's result.
template <typename PerQueue>
uint64_t SumOverQueues(const std::vector<QueueResult>& queues, PerQueue per_queue) {
  uint64_t n = 0;
  for (const auto& q : queues) n += per_queue(q);
  return n;
}
}  // namespace

uint64_t FrontendResult::rx_packets() const {
  return SumOverQueues(queues, [](const QueueResult& q) { return q.rx_packets + q.sink_packets; });
}
uint64_t FrontendResult::sent_byte_sum() const {
  return SumOverQueues(queues, [](const QueueResult& q) { return q.sent_byte_sum; });
}
uint64_t FrontendResult::verify_errors() const {
  return SumOverQueues(queues,
                       [](const QueueResult& q) { return q.verify_errors + q.sequence_errors; });
}
uint64_t FrontendResult::drops() const {
  return SumOverQueues(queues, [](const QueueResult& q) { return q.drops; });
}

Result<FrontendResult> RunFrontend(const FrontendConfig& config) {
  if (Status s = Validate(config); !s.ok()) return s.error();
  FrontendResult out;
  const uint64_t t_setup = NowNs();

  Result<std::unique_ptr<Session>> session =
      Session::Connect(config.socket_path, config.connect_timeout_ms);
  if (!session.ok()) return session.error();
  Session& s = **session;
  const uint64_t optional =
      (config.event_idx ? protocol::Bit(protocol::feature::kRingEventIdx) : 0) |
      (config.mrg_rxbuf ? protocol::Bit(protocol::feature::kNetFMrgRxbuf) : 0);
  if (Status st = s.Negotiate(config.iommu, config.queue_pairs, optional); !st.ok())
    return st.error();
  out.negotiated = s.negotiated();
  // The buffer layout depends on what was negotiated (MRG_RXBUF: smaller receive buffers), so
  // guest memory is laid out now; the backend sees it first at SET_MEM_TABLE either way.
  const DriverFeatures features{out.negotiated.event_idx(), out.negotiated.mrg_rxbuf()};
  std::vector<uint64_t> chunks;
  for (uint32_t q = 0; q < config.queue_pairs; ++q)
    for (uint64_t c : QueueDriver::ChunkSizes(config, features)) chunks.push_back(c);
  Result<GuestMemory> memory =
      GuestMemory::Create(chunks, config.mem_regions, config.page_size, config.hugetlb);
  if (!memory.ok()) return Error{"guest memory: " + memory.error().message};
  out.hugetlb = memory->hugetlb();
  if (!memory->hugetlb_note().empty()) {
    VL_WARN("%s", memory->hugetlb_note().c_str());
    out.notes = memory->hugetlb_note();
  }

  Viommu viommu(&s, &memory.value(), config.page_size);
  s.StartBackendChannel([&viommu](const protocol::IotlbMsg& m) { return viommu.ServeMiss(m); });
  StopChannelOnExit stop_channel{&s};

  if (Status st = s.SetMemTable(memory->MemTable(), memory->Fds()); !st.ok()) return st.error();

  std::vector<std::unique_ptr<QueueDriver>> drivers;
  for (uint32_t q = 0; q < config.queue_pairs; ++q) {
    auto d = std::make_unique<QueueDriver>(config, features, q, &memory.value(), &viommu);
    std::vector<uint64_t> gpas;
    for (int i = 0; i < 4; ++i) gpas.push_back(memory->chunk_gpa(q * 4 + i));
    d->Build(gpas, kIovaBase + q * kIovaPerQueue);
    drivers.push_back(std::move(d));
  }
  std::vector<DriverRing*> rings;
  for (auto& d : drivers) {
    rings.push_back(&d->rx());
    rings.push_back(&d->tx());
  }
  // Every ring exists before any IOTLB message: DPDK 22.11 inserts an UPDATE only into the rings
  // that exist at that moment (it allocates them at SET_VRING_NUM) and silently drops the rest.
  for (DriverRing* r : rings)
    if (Status st = s.SetVringNum(r->index, r->num); !st.ok()) return st.error();
  // The guest's mappings exist before the ring addresses do: a backend that translates rings
  // at SET_VRING_ADDR/KICK (DPDK) then finds them pushed (static) or can MISS them (cold).
  for (auto& d : drivers)
    if (Status st = d->SetUpMappings(); !st.ok()) return st.error();
  for (DriverRing* r : rings) {
    if (Status st = s.SetVringBase(r->index, 0); !st.ok()) return st.error();
    protocol::VringAddr a{};
    a.index = r->index;
    uint64_t base = r->iova;  // IOVA with the IOMMU on; our user address otherwise
    if (!config.iommu) {
      Result<uint64_t> u = memory->GpaToUaddr(r->gpa, r->bytes);
      if (!u.ok()) return u.error();
      base = *u;
    }
    a.desc_user_addr = base;
    a.avail_user_addr = base + r->avail_off;
    a.used_user_addr = base + r->used_off;
    a.log_guest_addr = (config.iommu ? r->iova : r->gpa) + r->used_off;
    if (Status st = s.SetVringAddr(a); !st.ok()) return st.error();
    if (Status st = s.SetVringFd(protocol::Request::kSetVringKick, r->index, r->kick.get());
        !st.ok())
      return st.error();
    if (Status st = s.SetVringFd(protocol::Request::kSetVringCall, r->index, r->call.get());
        !st.ok())
      return st.error();
  }
  for (auto& d : drivers)
    if (Status st = d->OnDeviceStarted(); !st.ok()) return st.error();
  for (auto& d : drivers)
    if (Status st = d->PostAllRx(); !st.ok()) return st.error();
  if (s.negotiated().features & protocol::Bit(protocol::feature::kProtocolFeatures))
    for (DriverRing* r : rings)
      if (Status st = s.SetVringEnable(r->index, true); !st.ok()) return st.error();
  out.setup_ns = NowNs() - t_setup;

  std::atomic<bool> stop{false}, go{false};
  std::vector<std::atomic<uint64_t>> progress(config.queue_pairs);
  std::vector<std::atomic<int>> tids(config.queue_pairs);
  std::vector<std::atomic<bool>> warmed(config.queue_pairs);
  std::vector<QueueResult> warm(config.queue_pairs);
  out.queues.resize(config.queue_pairs);
  std::vector<std::thread> threads;
  for (uint32_t q = 0; q < config.queue_pairs; ++q) {
    loadgen::TrafficSpec spec;
    spec.packets = config.packets ? config.packets / config.queue_pairs +
                                        (q < config.packets % config.queue_pairs)
                                  : 0;
    spec.seconds = config.seconds;
    spec.burst = config.burst;
    spec.rate_pps = config.rate;
    spec.drain = config.drain;
    spec.storm_interval = config.iommu ? config.storm_interval : 0;
    spec.stall_seconds = config.stall_seconds;
    threads.emplace_back([&, q, spec] {
      loadgen::TrafficRunner<QueueDriver> runner(drivers[q].get(), spec);
      if (!config.cpus.empty())
        if (Status st = topology::BindThisThreadToCpus({config.cpus[q % config.cpus.size()]});
            !st.ok())
          VL_WARN("queue %u: %s", q, st.message().c_str());
      tids[q].store(static_cast<int>(gettid()));
      // A working set is first toured once, untimed: the first touch of each of its pages
      // faults on both sides (~10 us each in a VM), which is set-up, not the IOTLB's cost.
      // warmup_packets asks for more untimed packets on top (warm caches, a settled backend).
      if (uint64_t n = drivers[q]->WarmupPackets() + config.warmup_packets)
        warm[q] = runner.Warmup(stop, n);
      warmed[q].store(true);
      while (!go.load()) std::this_thread::yield();
      if (!warm[q].error.empty()) {
        out.queues[q] = warm[q];
        out.queues[q].error = "warm-up: " + warm[q].error;
        return;
      }
      out.queues[q] = runner.Run(stop, &progress[q]);
      // Warm-up packets are not counted, but their losses and errors are.
      out.queues[q].drops += warm[q].drops;
      out.queues[q].verify_errors += warm[q].verify_errors;
      out.queues[q].sequence_errors += warm[q].sequence_errors;
      out.queues[q].warmup_packets = warm[q].rx_packets + warm[q].sink_packets;
    });
  }
  // Start line: every thread pinned and its tid known (bounded wait) and its warm-up done
  // (bounded by the caller's stop flag), then the hook, then go.
  std::vector<int> tid_list(config.queue_pairs, 0);
  const uint64_t tid_deadline = NowNs() + 5'000'000'000ull;
  for (uint32_t q = 0; q < config.queue_pairs; ++q) {
    while (tids[q].load() == 0 && NowNs() < tid_deadline) std::this_thread::yield();
    tid_list[q] = tids[q].load();
  }
  const uint64_t t_warmup = NowNs();
  for (uint32_t q = 0; q < config.queue_pairs; ++q) {
    while (!warmed[q].load()) {
      if (config.stop && config.stop->load()) stop.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  out.warmup_ns = NowNs() - t_warmup;
  if (config.on_traffic_start) config.on_traffic_start(tid_list);
  const uint64_t t_traffic = NowNs();
  go.store(true);
  // Supervise: progress callback and the external stop flag, never inside the queue threads.
  std::atomic<uint32_t> finished{0};
  std::thread joiner([&] {
    for (auto& t : threads) t.join();
    finished.store(1);
  });
  while (!finished.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (config.stop && config.stop->load()) stop.store(true);
    if (config.progress) {
      double frac;
      if (config.packets) {
        uint64_t done = 0;
        for (auto& p : progress) done += p.load(std::memory_order_relaxed);
        frac = static_cast<double>(done) / static_cast<double>(config.packets);
      } else {
        frac = static_cast<double>(NowNs() - t_traffic) / (config.seconds * 1e9);
      }
      config.progress(std::min(1.0, frac));
    }
  }
  joiner.join();
  // From the start line to the moment the last queue accounted its last packet: measured by the
  // queue threads themselves, never by this supervising loop's 50 ms polling.
  uint64_t end = t_traffic;
  for (const auto& q : out.queues) end = std::max(end, q.end_ns);
  out.traffic_ns = end - t_traffic;
  if (config.on_traffic_end) config.on_traffic_end();

  // GET_VRING_BASE stops each ring (spec); a backend that cannot answer is reported, the data
  // already verified stays valid.
  for (DriverRing* r : rings) {
    Result<uint32_t> base = s.GetVringBase(r->index);
    if (!base.ok()) {
      VL_WARN("GET_VRING_BASE %u: %s", r->index, base.error().message.c_str());
      break;
    }
  }
  s.StopBackendChannel();
  out.viommu = viommu.TakeStats();
  out.misses_received = s.misses_received();
  out.misses_unresolved = s.misses_unresolved();
  out.backend_channel_errors = s.backend_channel_errors();
  return out;
}

}  // namespace vhostlab::frontend
