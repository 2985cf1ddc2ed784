// How the guest maps DMA: one MappingModel per queue pair, one class per model (mapping/), chosen
// by name through mapping/registry.hpp.
//
// The net driver (core/frontend/net_driver) owns the rings and the buffer pools and asks its
// model only what differs between models:
//   SetUp()          before SET_VRING_ADDR: the guest's mappings of the rings and, for models
//                    with fixed IOVAs, of both pools; which of them are pushed as UPDATEs;
//   OnDeviceStarted  after the rings are given to the device (cold: each used ring page pushed
//                    unasked, as QEMU does);
//   MapBuffer()      before a buffer is posted: its DMA address (a fixed IOVA, a fresh window
//                    mapped now, or the GPA when there is no IOMMU);
//   UnmapBuffer()    after the device completed it (strict: unmap + acked INVALIDATE; lazy:
//                    unmap now, INVALIDATE later in a batch of flush_batch);
//   Flush()          at the end of a run: nothing left mapped that the guest no longer uses.
// Static facts about a model (its name, whether its IOVAs are fixed so an INVALIDATE storm can
// recycle them, whether it pushes UPDATEs or leaves them to MISSes) are compile-time constants
// of each class, read by the registry without making one.
//
// The models talk to the emulated IOMMU only through IommuPort, the four operations a guest's
// DMA API uses; frontend::Viommu implements it over the vhost-user session, and a recording
// fake does in the unit tests (mapping/mapping_test.cpp), so each model is tested alone.
//
// Replay of a recorded trace (core/trace, "VLTRACE1") slots in here as a fifth model: SetUp()
// would replay the trace's UPDATEs up to its first translation, and MapBuffer()/UnmapBuffer()
// would issue the recorded UPDATE/INVALIDATE sequence in step with the buffers posted, so a real
// guest's IOTLB traffic rides on the lab's frames. It is not built yet (no recorded front-end
// trace carries the buffer-to-IOVA pairing it needs).
//
// Hot path: MapBuffer/UnmapBuffer run once per buffer. Fast path inline, slow path out of line
// (as DPDK's vhost_iova_to_vva calls __vhost_iova_to_vva only with the IOMMU on): a model whose
// buffers sit at fixed addresses (static, cold, no IOMMU) sets fixed_base_ at SetUp and is
// answered inline with no call; only the per-buffer models (lazy, strict) are called through
// MapPerBuffer/UnmapPerBuffer. No model allocates there (window free lists are fixed-capacity
// rings sized at SetUp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::loadgen {

enum class Mapping { kStatic, kLazy, kStrict, kCold };

// The guest IOMMU as a mapping model sees it (the DMA API's view). Permissions are the
// vhost-user IOTLB ones (protocol::kIotlbPermRo/Rw).
class IommuPort {
 public:
  virtual ~IommuPort() = default;
  // Maps consecutive IOMMU pages from `iova` (page-aligned) onto `gpa_pages`; with `push`, one
  // UPDATE per page is sent to the device.
  virtual Status Map(uint64_t iova, std::span<const uint64_t> gpa_pages, uint8_t perm,
                     bool push) = 0;
  // Clears `pages` entries from `iova`; with `invalidate`, sends the INVALIDATE and waits for
  // its ack.
  virtual Status Unmap(uint64_t iova, uint64_t pages, bool invalidate) = 0;
  // One acked INVALIDATE for [iova, iova + size) (entries already unmapped).
  virtual Status Invalidate(uint64_t iova, uint64_t size) = 0;
  // Pushes the UPDATE for the mapped page holding `iova`, unasked.
  virtual Status Push(uint64_t iova) = 0;
};

// Receive pool / transmit pool (and ring index within a queue pair: 0 receiveq, 1 transmitq).
enum DmaSide : int { kRx = 0, kTx = 1 };

// One ring's guest chunk: mapped RW at `iova`, page by page over [gpa, gpa + bytes).
struct DmaRing {
  uint64_t iova = 0, gpa = 0, bytes = 0;
  uint64_t used_off = 0;  // the used ring's offset in the chunk (cold pushes its page)
};

// One buffer pool: logical page j lives at guest page (*page_gpa)[j]. The vector belongs to the
// driver and outlives the model; a storm may change its entries (fixed models only).
struct DmaPool {
  const std::vector<uint64_t>* page_gpa = nullptr;
  uint64_t static_iova = 0;  // IOVA of logical offset 0 for models with fixed IOVAs
  uint8_t perm = 0;          // RW for receive buffers, RO for transmit (DMA_TO_DEVICE)
};

// Everything a model maps for one queue pair.
struct QueueDma {
  uint64_t page_size = 4096;
  uint32_t ring_size = 0;
  uint64_t max_buffer_bytes = 0;  // the largest buffer position (receive or transmit slot)
  uint64_t window_area = 0;       // per-buffer models: first IOVA of their windows
  DmaRing rings[2];
  DmaPool pools[2];
};

// Model knobs from the run's settings.
struct MappingParams {
  uint32_t flush_batch = 256;  // lazy: windows per deferred INVALIDATE batch
  // Fault injection (models with fixed IOVAs): the first two transmit-pool pages are mapped
  // swapped, as a buggy IOMMU would.
  bool swap_tx_pages = false;
};

class MappingModel {
 public:
  explicit MappingModel(IommuPort* iommu) : iommu_(iommu) {}
  virtual ~MappingModel() = default;
  MappingModel(const MappingModel&) = delete;
  MappingModel& operator=(const MappingModel&) = delete;

  virtual Status SetUp(const QueueDma& q) = 0;
  virtual Status OnDeviceStarted() { return {}; }
  // The DMA address of the `len` bytes at pool offset `off`, buffer of descriptor `slot`.
  Result<uint64_t> MapBuffer(DmaSide side, uint32_t slot, uint64_t off, uint32_t len) {
    if (per_buffer_) return MapPerBuffer(side, slot, off, len);
    return fixed_base_[side] + off;
  }
  // The device completed descriptor `slot`'s buffer.
  Status UnmapBuffer(DmaSide side, uint32_t slot) {
    if (per_buffer_) return UnmapPerBuffer(side, slot);
    return {};
  }
  virtual Status Flush() { return {}; }
  // Whether pages this model maps are pushed as UPDATEs (false: MISSes bring them in); the
  // storm's re-maps follow the same rule.
  virtual bool pushes_updates() const = 0;

  // Per-buffer IOMMU operations done so far (lazy, strict); 0 for fixed models.
  uint64_t maps() const { return maps_; }
  uint64_t unmaps() const { return unmaps_; }

 protected:
  // Maps both rings RW (every model does: the device needs them), pushed when `push`.
  Status MapRings(const QueueDma& q, bool push);
  // Per-buffer models only (those that set per_buffer_).
  virtual Result<uint64_t> MapPerBuffer(DmaSide, uint32_t, uint64_t, uint32_t) {
    return Error{"this mapping model maps no buffer on its own"};
  }
  virtual Status UnmapPerBuffer(DmaSide, uint32_t) { return {}; }

  IommuPort* iommu_;
  uint64_t maps_ = 0, unmaps_ = 0;
  // Fixed models: buffer address = fixed_base_[side] + pool offset. Per-buffer models instead
  // set per_buffer_ (in their constructor).
  uint64_t fixed_base_[2] = {0, 0};
  bool per_buffer_ = false;
};

}  // namespace vhostlab::loadgen
