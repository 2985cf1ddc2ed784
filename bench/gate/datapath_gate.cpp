// The deterministic per-packet instruction-count driver for the CI gate (datapath_gate.py).
//
// It pushes a fixed number of 64-byte frames through the backend's REAL worker code: a device
// made by backend::MakeDevice with WorkerThreads::kCallerDriven, whose worker pass (descriptor
// walk, translation through Replicated<D> and the design, memory table, copy, used ring,
// counters, quiescent state) runs on this thread through Device::RunWorkerPass. Nothing else
// runs: no worker thread, no vhost-user socket; the rings, the guest memory (a memfd mapped by
// the device's memory table and by this driver, as a front-end would) and the IOTLB contents are
// built before the measured region.
//
// For every registered design and every workload below, one loopback queue pair of kRing
// entries is filled with kRing TX chains and kRing RX chains ("a round"); the device forwards
// them, and the driver then checks every used element and every received byte (correctness is
// checked on every round, outside the measured region) and posts the next round. A warm-up
// round comes first and is not measured. Under `valgrind --tool=callgrind --collect-atstart=no`
// the callgrind client requests switch collection on around the RunWorkerPass calls only and
// dump one profile part per (design, workload), named "<design>/<workload>"; outside valgrind
// they are no-ops and the driver just prints what it ran (the smoke test of the same code).
//
// Workloads (frame 64 bytes + 12-byte virtio-net header; RX buffers 2048 bytes):
//   direct-4k    static 4 KiB IOTLB entries over rings and buffers; one descriptor per chain
//   chained-4k   the same mappings; TX chains of 3 descriptors (header, two frame pieces on
//                different cache lines), RX chains of 2 (header, data)
//   indirect-4k  the chained layout through indirect descriptor tables (TX and RX)
//   direct-2m    static 2 MiB IOTLB entries (4 entries cover guest memory)
//   cold-4k      the IOTLB starts empty: the first round misses; each MISS (sent on the backend
//                channel) is answered by an UPDATE of its 4 KiB page between passes, outside the
//                measured region, as a vIOMMU would. Measured: that first round (miss, stall,
//                retry, replica log apply, micro-cache fill).
//   warm-4k      the rounds after cold-4k on the same device: a table built page by page from
//                misses (insertion order differs from the static workloads')
// and, once (the design is not used), iommu-off/direct: GPA descriptors, no IOTLB.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/backend/device.hpp"
#include "core/iotlb/registry.hpp"
#include "core/protocol/channel.hpp"
#include "core/virtio/split_ring.hpp"

namespace vhostlab::bench {
namespace {

using backend::Device;
using virtio::Desc;

constexpr uint64_t kGpa = 0x4000'0000;
constexpr uint64_t kUaddr = 0x7f12'0000'0000;
constexpr uint64_t kIovaBase = 0x1'0000'0000;  // IOVA of guest offset 0 (2 MiB aligned)
constexpr uint64_t kMemSize = 8 << 20;
constexpr uint32_t kRing = 256;
constexpr uint32_t kChains = kRing / 4;  // per round: chains of up to 3 descriptors at 4i..
constexpr uint32_t kSlots = 256;         // buffer slots: the first 4 rounds touch new pages
constexpr uint64_t kRxRing = 0, kTxRing = 0x10000;   // desc, avail, used follow each other
constexpr uint64_t kTables = 0x20000;                // indirect tables: 2 x kRing x 4 descs
constexpr uint64_t kTxBufs = 0x100000, kRxBufs = 0x300000, kSlot = 0x1000;
constexpr uint32_t kFrame = 64, kRxLen = 2048;
constexpr uint64_t kSecondPiece = 1024;  // chained TX: offset of the frame's second half
constexpr uint64_t kRxData = 64;         // chained RX: offset of the data descriptor
constexpr uint32_t kHdr = sizeof(virtio::NetHdr);
constexpr uint64_t k4K = 4096, k2M = 2 << 20;

enum class Layout { kDirect, kChained, kIndirect };
enum class Mapping { kOff, kStatic4K, kStatic2M, kCold4K };

struct GateWorkload {
  const char* name;
  Mapping mapping;
  Layout layout;
};

constexpr GateWorkload kWorkloads[] = {
    {"direct-4k", Mapping::kStatic4K, Layout::kDirect},
    {"chained-4k", Mapping::kStatic4K, Layout::kChained},
    {"indirect-4k", Mapping::kStatic4K, Layout::kIndirect},
    {"direct-2m", Mapping::kStatic2M, Layout::kDirect},
    {"cold-4k", Mapping::kCold4K, Layout::kDirect},  // also dumps "<design>/warm-4k"
};

uint64_t AvailOff(uint64_t ring) { return ring + virtio::DescBytes(kRing); }
uint64_t UsedOff(uint64_t ring) {
  return (AvailOff(ring) + virtio::AvailBytes(kRing) + 3) & ~uint64_t{3};
}

// The front-end and driver side: guest memory, the two rings, and the device under test.
class Rig {
 public:
  Rig(std::string_view design, const GateWorkload& w, bool iommu)
      : w_(w), iommu_(iommu), counters_(1) {
    const int fd = ::memfd_create("datapath-gate", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, kMemSize) != 0) Die("memfd");
    void* p = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) Die("mmap");
    mem_ = static_cast<uint8_t*>(p);
    protocol::MemoryTable t{};
    t.nregions = 1;
    t.regions[0] = {kGpa, kMemSize, kUaddr, 0};
    std::vector<UniqueFd> fds;
    fds.emplace_back(fd);
    auto table = memory::MemoryTable::Build(t, 8 + 32, std::move(fds));
    if (!table.ok()) Die(table.error().message.c_str());

    backend::BackendOptions o;
    o.iotlb = std::string(design);
    o.mode = backend::DeviceMode::kLoopback;
    o.queue_pairs = 1;
    auto dev = backend::MakeDevice(o, &counters_, nullptr, backend::WorkerThreads::kCallerDriven);
    if (!dev.ok()) Die(dev.error().message.c_str());
    dev_ = std::move(*dev);
    backend::DeviceConfig& c = dev_->config();
    c.iommu = iommu_;
    c.indirect = true;
    c.memory = std::move(*table);

    if (w_.mapping == Mapping::kCold4K) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) Die("socketpair");
      dev_->backend_channel().Set(UniqueFd(sv[0]));
      viommu_ = protocol::Channel(UniqueFd(sv[1]));
    } else if (w_.mapping == Mapping::kStatic4K) {
      for (uint64_t off : {kRxRing, kTxRing}) MapRange(off, UsedOff(off) + virtio::UsedBytes(kRing) - off, k4K);
      MapRange(kTables, 2 * kChains * 4 * sizeof(Desc), k4K);
      MapRange(kTxBufs, kSlots * kSlot, k4K);
      MapRange(kRxBufs, kSlots * kSlot, k4K);
    } else if (w_.mapping == Mapping::kStatic2M) {
      MapRange(0, kMemSize, k2M);
    }
    for (uint32_t q = 0; q < 2; ++q) {
      const uint64_t ring = q == 0 ? kRxRing : kTxRing;
      backend::QueueState& s = dev_->queue(q);
      s.num = kRing;
      s.addr = {q, 0, RingAddr(ring), RingAddr(UsedOff(ring)), RingAddr(AvailOff(ring)), 0};
      s.addr_set = s.started = s.enabled = true;
      s.dirty = true;
    }
    // Frames: slot i carries bytes derived from i after an all-zero header; the second half is
    // also at kSecondPiece for the chained layouts.
    for (uint32_t i = 0; i < kSlots; ++i) {
      uint8_t* tx = mem_ + kTxBufs + i * kSlot;
      for (uint32_t b = 0; b < kFrame; ++b) tx[kHdr + b] = Byte(i, b);
      std::memcpy(tx + kSecondPiece, tx + kHdr + kFrame / 2, kFrame / 2);
    }
  }
  ~Rig() {
    dev_.reset();  // the reader (this thread) goes before the memory
    ::munmap(mem_, kMemSize);
  }

  // One round: kChains TX chains and kChains RX chains posted, then worker passes (measured
  // when `measure`) until every TX chain is used; the vIOMMU answers MISSes between passes.
  // Returns the worker passes run.
  uint32_t Round(bool measure) {
    Post();
    uint32_t passes = 0;
    while (TxUsed() != uint16_t(round_ * kChains)) {
      if (++passes > 100000) Die("the device stopped making progress");
      if (measure) CALLGRIND_TOGGLE_COLLECT;
      dev_->RunWorkerPass(0);
      if (measure) CALLGRIND_TOGGLE_COLLECT;
      AnswerMisses();
    }
    Verify();
    return passes;
  }

  uint64_t misses() const { return counters_.queues[0].iotlb_misses.load(); }

 private:
  [[noreturn]] static void Die(const char* what) {
    std::fprintf(stderr, "datapath_gate: %s\n", what);
    std::exit(1);
  }
  static uint8_t Byte(uint32_t slot, uint32_t b) { return static_cast<uint8_t>(slot * 7 + b * 13 + 1); }

  uint64_t Addr(uint64_t off) const { return iommu_ ? kIovaBase + off : kGpa + off; }
  uint64_t RingAddr(uint64_t off) const { return iommu_ ? kIovaBase + off : kUaddr + off; }

  void MapRange(uint64_t off, uint64_t len, uint64_t page) {
    for (uint64_t p = off & ~(page - 1); p < off + len; p += page)
      if (dev_->IotlbUpdate({kIovaBase + p, kIovaBase + p + page - 1}, kUaddr + p,
                            iotlb::Perm::kReadWrite) != iotlb::InsertStatus::kOk)
        Die("UPDATE refused");
  }

  void AnswerMisses() {
    if (!viommu_.valid()) return;
    for (;;) {
      auto m = viommu_.Receive(0);
      if (!m.ok()) return;  // nothing more (timeout)
      auto msg = m->PayloadAs<protocol::IotlbMsg>();
      if (!msg.ok() || msg->type != static_cast<uint8_t>(protocol::IotlbType::kMiss))
        Die("unexpected message on the backend channel");
      const uint64_t page = msg->iova & ~(k4K - 1);
      if (page < kIovaBase || page >= kIovaBase + kMemSize) Die("MISS outside guest memory");
      if (dev_->IotlbUpdate({page, page + k4K - 1}, kUaddr + (page - kIovaBase),
                            iotlb::Perm::kReadWrite) != iotlb::InsertStatus::kOk)
        Die("UPDATE refused");
    }
  }

  Desc* Descs(uint64_t ring) { return reinterpret_cast<Desc*>(mem_ + ring); }
  virtio::Avail* AvailRing(uint64_t ring) {
    return reinterpret_cast<virtio::Avail*>(mem_ + AvailOff(ring));
  }
  virtio::Used* UsedRing(uint64_t ring) {
    return reinterpret_cast<virtio::Used*>(mem_ + UsedOff(ring));
  }
  uint16_t TxUsed() { return __atomic_load_n(&UsedRing(kTxRing)->idx, __ATOMIC_ACQUIRE); }
  uint32_t Slot(uint32_t i) const { return ((round_ - 1) * kChains + i) % kSlots; }

  // Makes `segs` available as chain i of `ring`: descriptors 4i.. (direct or chained), or one
  // descriptor 4i pointing at indirect table `table`.
  void WriteChain(uint64_t ring, uint32_t i, const std::vector<Desc>& segs, uint64_t table) {
    Desc* d = Descs(ring);
    const uint16_t head = static_cast<uint16_t>(4 * i);
    Desc* out = d + head;
    uint16_t base = head;
    if (w_.layout == Layout::kIndirect) {
      out = reinterpret_cast<Desc*>(mem_ + table);
      base = 0;
      d[head] = {Addr(table), static_cast<uint32_t>(segs.size() * sizeof(Desc)),
                 virtio::kDescFIndirect, 0};
    }
    for (std::size_t k = 0; k < segs.size(); ++k) {
      out[k] = segs[k];
      out[k].next = static_cast<uint16_t>(base + k + 1);
      if (k + 1 < segs.size()) out[k].flags |= virtio::kDescFNext;
    }
    virtio::Avail* a = AvailRing(ring);
    a->ring[(a->idx + i) % kRing] = head;
  }

  void Post() {
    ++round_;
    for (uint32_t i = 0; i < kChains; ++i) {
      const uint64_t tx = kTxBufs + Slot(i) * kSlot, rx = kRxBufs + Slot(i) * kSlot;
      std::vector<Desc> txs, rxs;
      if (w_.layout == Layout::kDirect) {
        txs = {{Addr(tx), kHdr + kFrame, 0, 0}};
        rxs = {{Addr(rx), kRxLen, virtio::kDescFWrite, 0}};
      } else {
        // Header, then the frame in two pieces: the second one 1 KiB further on.
        txs = {{Addr(tx), kHdr, 0, 0},
               {Addr(tx + kHdr), kFrame / 2, 0, 0},
               {Addr(tx + kSecondPiece), kFrame / 2, 0, 0}};
        rxs = {{Addr(rx), kHdr, virtio::kDescFWrite, 0},
               {Addr(rx + kRxData), kRxLen, virtio::kDescFWrite, 0}};
      }
      WriteChain(kTxRing, i, txs, kTables + i * 4 * sizeof(Desc));
      WriteChain(kRxRing, i, rxs, kTables + (kChains + i) * 4 * sizeof(Desc));
      std::memset(mem_ + rx, 0xee, kRxData + kFrame);
    }
    for (uint64_t ring : {kRxRing, kTxRing}) {
      virtio::Avail* a = AvailRing(ring);
      __atomic_store_n(&a->idx, static_cast<uint16_t>(a->idx + kChains), __ATOMIC_RELEASE);
    }
  }

  void Verify() {
    virtio::Used* tu = UsedRing(kTxRing);
    virtio::Used* ru = UsedRing(kRxRing);
    if (__atomic_load_n(&ru->idx, __ATOMIC_ACQUIRE) != uint16_t(round_ * kChains))
      Die("RX used idx");
    for (uint32_t i = 0; i < kChains; ++i) {
      const uint32_t at = ((round_ - 1) * kChains + i) % kRing;
      const virtio::UsedElem t = tu->ring[at], r = ru->ring[at];
      if (t.id != 4 * i || t.len != 0) Die("TX used element wrong");
      if (r.id != 4 * i || r.len != kHdr + kFrame) Die("RX used element wrong");
      const uint8_t* got = mem_ + kRxBufs + Slot(i) * kSlot;
      virtio::NetHdr hdr;
      std::memcpy(&hdr, got, kHdr);
      if (hdr.num_buffers != 1 || hdr.flags != 0) Die("RX header wrong");
      const uint8_t* data = got + (w_.layout == Layout::kDirect ? kHdr : kRxData);
      for (uint32_t b = 0; b < kFrame; ++b)
        if (data[b] != Byte(Slot(i), b)) Die("RX frame byte wrong");
    }
    const auto& q = counters_.queues[0];
    if (q.drops.load() || q.errors.load()) Die("the device dropped or refused a chain");
  }

  const GateWorkload& w_;
  bool iommu_;
  backend::Counters counters_;
  std::unique_ptr<Device> dev_;
  uint8_t* mem_ = nullptr;
  protocol::Channel viommu_;
  uint32_t round_ = 0;
};

}  // namespace
}  // namespace vhostlab::bench

namespace vhostlab::bench {
namespace {

struct Options {
  uint32_t rounds = 16;  // measured rounds of kChains packets per key (cold-4k: kSlots / kChains)
  std::string only;      // one design
};

// Dumps the callgrind part `key` (the counts collected since the last zeroing).
void Dump(const std::string& key, uint64_t packets, uint32_t passes, uint64_t misses) {
  CALLGRIND_DUMP_STATS_AT(key.c_str());
  std::printf("%s packets=%llu passes=%u misses=%llu\n", key.c_str(),
              static_cast<unsigned long long>(packets), passes,
              static_cast<unsigned long long>(misses));
}

void RunWorkload(std::string_view design, const GateWorkload& w, const Options& o) {
  const bool iommu = w.mapping != Mapping::kOff;
  Rig rig(design, w, iommu);
  const std::string prefix = iommu ? std::string(design) : std::string("iommu-off");
  if (w.mapping == Mapping::kCold4K) {
    // Cold: every buffer page is new in the first kSlots / kChains rounds.
    constexpr uint32_t kColdRounds = kSlots / kChains;
    uint32_t passes = 0;
    CALLGRIND_ZERO_STATS;
    for (uint32_t r = 0; r < kColdRounds; ++r) passes += rig.Round(true);
    Dump(prefix + "/cold-4k", uint64_t{kColdRounds} * kChains, passes, rig.misses());
    const uint64_t before = rig.misses();
    passes = 0;
    CALLGRIND_ZERO_STATS;
    for (uint32_t r = 0; r < o.rounds; ++r) passes += rig.Round(true);
    Dump(prefix + "/warm-4k", uint64_t{o.rounds} * kChains, passes, rig.misses() - before);
    return;
  }
  rig.Round(false);  // warm-up: ring translation, first touches, micro-cache fill
  uint32_t passes = 0;
  CALLGRIND_ZERO_STATS;
  for (uint32_t r = 0; r < o.rounds; ++r) passes += rig.Round(true);
  Dump(prefix + "/" + w.name, uint64_t{o.rounds} * kChains, passes, rig.misses());
}

}  // namespace
}  // namespace vhostlab::bench

int main(int argc, char** argv) {
  using namespace vhostlab::bench;
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--rounds=", 9)) {
      o.rounds = static_cast<uint32_t>(std::strtoul(argv[i] + 9, nullptr, 10));
    } else if (!std::strncmp(argv[i], "--design=", 9)) {
      o.only = argv[i] + 9;
    } else if (!std::strcmp(argv[i], "--list")) {  // the --design values, one per line
      std::printf("iommu-off\n");
      for (const std::string& name : vhostlab::iotlb::DesignNames()) std::printf("%s\n", name.c_str());
      return 0;
    } else {
      std::fprintf(stderr,
                   "usage: datapath_gate [--rounds=N] [--design=NAME|iommu-off] [--list]\n"
                   "Forwards N rounds of %u packets per registered design and workload through\n"
                   "the backend's worker (loopback, one queue pair, in this thread); under\n"
                   "callgrind each (design, workload) is dumped as its own profile part.\n",
                   kChains);
      return std::strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (o.rounds == 0) o.rounds = 1;
  if (o.only.empty() || o.only == "iommu-off")
    RunWorkload("reference", {"direct", Mapping::kOff, Layout::kDirect}, o);
  vhostlab::iotlb::ForEachDesign([&]<vhostlab::iotlb::Design D>() {
    if (!o.only.empty() && D::kName != o.only) return;
    for (const GateWorkload& w : kWorkloads) RunWorkload(D::kName, w, o);
  });
  return 0;
}
