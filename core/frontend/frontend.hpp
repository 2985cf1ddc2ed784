// The front-end (the vhost-user spec's "master"): plays QEMU and the guest's virtio-net driver
// against any spec-following backend, over a real Unix socket.
//
// One run: connect + negotiate (IOMMU_PLATFORM, REPLY_ACK, BACKEND_REQ, MQ, and EVENT_IDX and
// MRG_RXBUF when offered and wanted) -> guest memory (memfd regions) -> SET_MEM_TABLE ->
// SET_VRING_NUM for every ring (DPDK drops IOTLB UPDATEs for rings that do not exist yet) ->
// BASE/ADDR/KICK/CALL -> the guest's IOMMU mappings (per the mapping model) -> RX buffers posted ->
// SET_VRING_ENABLE -> one pinned thread per queue pair sends numbered frames on its transmit queue
// and checks every byte that comes back on its receive queue -> GET_VRING_BASE stops the rings.
//
// Mapping models (how the guest uses its IOMMU; one class each in core/loadgen/mapping/):
//   static: every ring and buffer page mapped and pushed (UPDATE) before traffic;
//   lazy:   each posted buffer gets a fresh IOVA window mapped (UPDATE) at post time; completed
//           windows are unmapped at once but invalidated in batches (Linux's flush queue);
//   strict: map before every buffer, unmap + INVALIDATE (acked) after it completes;
//   cold:   the page table is complete but nothing is pushed except each ring's used page (as
//           QEMU does): every other translation reaches the backend as a MISS answer.
// Two workload knobs apply to any model: a working set spreads the buffers over many more
// pages than the ring needs (toured once, untimed, before the start line so first-touch page
// faults are not measured), and a storm (static, cold) recycles idle buffer pages under
// traffic: INVALIDATE each, then map its IOVA onto another guest page (see net_driver.hpp).
// Address spaces: IOVAs live at 0x4000000000 and above, GPAs below 8 GiB, uaddrs wherever mmap
// put the regions, so no two of them can be confused. With `scatter`, IOVA-consecutive pages
// of a buffer pool sit on non-adjacent guest pages and half the buffers straddle a page
// boundary, so a backend that joins IOVA-adjacent entries without checking their uaddrs (DPDK
// 22.11 does) reads or writes the wrong bytes, and the byte-for-byte check catches it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/frontend/session.hpp"
#include "core/frontend/viommu.hpp"
#include "core/loadgen/mapping/registry.hpp"

namespace vhostlab::frontend {

// The mapping models live in core/loadgen/mapping/ (one class each, chosen by name there).
using loadgen::Mapping;
using loadgen::MappingName;
using loadgen::ParseMapping;

struct FrontendConfig {
  std::string socket_path;
  bool iommu = true;
  Mapping mapping = Mapping::kStatic;
  uint64_t page_size = 4096;  // IOMMU page size: 4096 or 2 MiB
  uint32_t queue_pairs = 1;
  uint32_t ring_size = 256;
  uint32_t packet_size = 64;  // frame bytes, virtio-net header excluded
  // A packet-size mix: frame seq is packet_sizes[seq % size()] bytes (deterministic, so the
  // receiver knows what each seq must be); empty: every frame is packet_size bytes.
  std::vector<uint32_t> packet_sizes;
  // Optional virtio features, acked when the backend offers them (a guest driver's choice):
  // VIRTIO_RING_F_EVENT_IDX (kicks only when the device's avail_event asks for one; used_event
  // left behind while the driver polls, so the device signals about once per 65536 entries)
  // and VIRTIO_NET_F_MRG_RXBUF (receive buffers of rx_buffer_size bytes; a frame larger than
  // one arrives across several, num_buffers in its first header).
  bool event_idx = true;
  bool mrg_rxbuf = true;
  // MRG_RXBUF negotiated: bytes of each posted receive buffer, header included (0: 1536 + 12,
  // Linux's smallest mergeable buffer). Without MRG_RXBUF a receive buffer holds the largest
  // frame of the mix, as today.
  uint32_t rx_buffer_size = 0;
  uint64_t packets = 0;  // total over all queue pairs; 0 = run for `seconds`
  double seconds = 0;
  // The traffic runner (core/loadgen/traffic_runner.hpp): packets each queue posts per pass at
  // most; a target rate in packets/s per queue (0: open loop, as fast as the ring allows); and
  // untimed packets per queue before the start line (on top of a working set's lap).
  uint32_t burst = 32;
  // Drain traffic (loadgen::TrafficSpec::drain): whole rings, timed while the backend moves them.
  bool drain = false;
  double rate = 0;
  uint64_t warmup_packets = 0;
  uint64_t seed = 1;
  bool scatter = true;  // IOVA-contiguous buffers over non-adjacent guest pages (implies straddle)
  // Buffers start 32 bytes before a slot boundary, so half of them cross a page (with the IOMMU,
  // an IOTLB entry) while IOVA-adjacent pages stay guest-adjacent.
  bool straddle = false;
  uint32_t mem_regions = 2;
  bool hugetlb = false;        // back guest memory with 2 MiB hugetlb pages when available
  uint32_t flush_batch = 256;  // lazy: windows per deferred invalidation batch
  // Bytes of guest memory each queue pair's buffers are spread over (receive and transmit pools
  // together; 0: just the ring's own buffers). With a working set, posts take the free buffer
  // positions page by page, the pages in a seeded random order (see BufferPlacer), so the
  // device's translations cover all of it: 256 MiB is 64 Ki 4 KiB pages.
  uint64_t working_set = 0;
  // INVALIDATE storm (static and cold mappings): every `storm_interval` packets a queue's driver
  // recycles `storm_burst` idle buffer pages, as an IOVA allocator reusing freed IOVAs does:
  // one acked INVALIDATE per page, then each IOVA is mapped again onto a different guest page
  // (pushed unless cold). A device that kept a stale translation would touch the old page, and
  // the byte-for-byte check catches it. 0: no storm.
  uint64_t storm_interval = 0;
  uint32_t storm_burst = 256;
  // Sink: the backend consumes transmitted packets and returns nothing (vhostlab's sink mode);
  // each transmit completion counts as a packet and the sum of all frame bytes sent is kept so
  // the caller can compare it with the backend's checksum.
  bool sink = false;
  // Fault injection (tests, demonstrations): the vIOMMU maps the first two transmit-pool pages
  // swapped (static and cold mappings), as a buggy IOMMU would, so the device reads frames from
  // the wrong guest pages. The byte-for-byte check must then report errors.
  bool inject_swapped_pages = false;
  // Fault injection: storm bursts move pages to new guest pages in the vIOMMU's table without
  // telling the backend (no INVALIDATE, no UPDATE), so it keeps translating to the old pages.
  bool inject_silent_storm = false;
  std::vector<int> cpus;  // queue thread i is pinned to cpus[i % size]; empty: not pinned
  int connect_timeout_ms = 10000;
  double stall_seconds = 5;  // no progress for this long: the missing packets count as drops
  std::atomic<bool>* stop = nullptr;
  std::function<void(double)> progress;
  // Called on the supervising thread once every queue thread is pinned and has published its
  // kernel tid, before any of them starts traffic (counters attach and start here); and once
  // all of them have finished.
  std::function<void(const std::vector<int>& queue_tids)> on_traffic_start;
  std::function<void()> on_traffic_end;
};

struct QueueResult {
  uint32_t queue_pair = 0;
  uint64_t tx_packets = 0;
  uint64_t rx_packets = 0;        // received and verified byte for byte
  uint64_t sink_packets = 0;      // sink mode: transmit completions
  uint64_t sent_byte_sum = 0;     // sink mode: sum of every frame byte of completed packets
  uint64_t rx_bytes = 0;          // frame bytes of verified packets
  uint64_t verify_errors = 0;     // wrong length, unattributable frame or a wrong byte
  uint64_t sequence_errors = 0;   // duplicated or reordered frames
  uint64_t drops = 0;             // sent, never received
  uint64_t maps = 0, unmaps = 0;  // per-buffer IOMMU operations (lazy/strict)
  uint64_t storm_bursts = 0;      // storm: bursts done
  uint64_t storm_pages = 0;       // storm: pages invalidated and mapped again
  uint64_t storm_ns = 0;          // storm: time the driver spent in bursts
  uint64_t warmup_packets = 0;    // working set: untimed packets before the run (not counted)
  uint64_t kicks = 0;             // kick eventfd writes by the driver (both rings)
  uint64_t interrupts = 0;        // call eventfd signals by the device (both rings; we poll)
  uint64_t rx_buffers = 0;        // used receive entries of verified packets (MRG: > packets)
  uint64_t elapsed_ns = 0;        // first post to last packet accounted
  uint64_t drain_ns = 0;          // drain traffic: time the backend had work (summed drains)
  double drain_packets = 0;       // drain traffic: packets it moved in that time
  uint64_t end_ns = 0;            // steady-clock time of the last packet accounted
  std::string error;              // non-empty: this queue stopped early
};

struct FrontendResult {
  Negotiated negotiated;
  std::vector<QueueResult> queues;
  ViommuStats viommu;
  uint64_t misses_received = 0, misses_unresolved = 0, backend_channel_errors = 0;
  uint64_t setup_ns = 0;    // connect .. rings enabled
  uint64_t traffic_ns = 0;  // start line .. the last queue's last packet (not thread joins)
  uint64_t warmup_ns = 0;   // working set: the untimed lap over every buffer before the start
  bool hugetlb = false;
  std::string notes;            // fallbacks taken (hugetlb), said once
  uint64_t rx_packets() const;  // verified packets (loopback) or completions (sink)
  uint64_t sent_byte_sum() const;
  uint64_t verify_errors() const;
  uint64_t drops() const;
};

// The frame sizes of the mix (packet_sizes, or packet_size alone) and the receive buffer bytes
// used when MRG_RXBUF is negotiated.
std::vector<uint32_t> FrameSizes(const FrontendConfig& config);
uint32_t MrgBufferBytes(const FrontendConfig& config);
inline constexpr uint32_t kDefaultMrgBufferBytes = 1536 + 12;

// Runs one whole session. An error means the session could not be set up or the backend broke
// the protocol; data problems (verify errors, drops) are reported in the result.
Result<FrontendResult> RunFrontend(const FrontendConfig& config);

}  // namespace vhostlab::frontend
