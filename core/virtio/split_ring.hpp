// The virtio split virtqueue layout (virtio 1.x, section 2.7), shared by the backend (device
// side) and the front-end (driver side). Little-endian on the wire; vhostlab runs on x86-64 and
// VERSION_1 mandates little-endian, so the fields are used natively.
//
// Layout for a ring of `num` entries (num a power of two, <= 32768):
//   desc:  num * 16 bytes, 16-byte aligned
//   avail: flags u16, idx u16, ring[num] u16, used_event u16      (2-byte aligned)
//   used:  flags u16, idx u16, ring[num] {u32 id, u32 len}, avail_event u16  (4-byte aligned)
// Indices (avail->idx, used->idx) are free-running u16 counters.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vhostlab::virtio {

inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;
inline constexpr uint16_t kAvailFNoInterrupt = 1;
inline constexpr uint16_t kUsedFNoNotify = 1;
inline constexpr uint32_t kMaxQueueSize = 32768;

struct Desc {
  uint64_t addr;  // guest-physical, or IOVA when VIRTIO_F_IOMMU_PLATFORM is negotiated
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16, "virtq_desc is 16 bytes (virtio 1.x 2.7.5)");

struct Avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];  // num entries, then used_event
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElem) == 8, "virtq_used_elem is 8 bytes (virtio 1.x 2.7.8)");

struct Used {
  uint16_t flags;
  uint16_t idx;
  UsedElem ring[];  // num entries, then avail_event
};

constexpr std::size_t DescBytes(uint32_t num) { return std::size_t{16} * num; }
constexpr std::size_t AvailBytes(uint32_t num) { return 4 + std::size_t{2} * num + 2; }
constexpr std::size_t UsedBytes(uint32_t num) { return 4 + std::size_t{8} * num + 2; }
constexpr bool ValidQueueSize(uint32_t num) {
  return num != 0 && num <= kMaxQueueSize && (num & (num - 1)) == 0;
}

// virtio-net header (VERSION_1: always the 12-byte form with num_buffers).
struct NetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(NetHdr) == 12, "virtio_net_hdr_v1 is 12 bytes (virtio 1.x 5.1.6)");

}  // namespace vhostlab::virtio
