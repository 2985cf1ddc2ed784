// The vhost-user wire format: header, message ids, feature bits and every payload vhostlab
// handles, each with a Validate() that checks what the spec requires before anyone uses it.
//
// Source: QEMU docs/interop/vhost-user.rst ("Message types", "IOMMU support") and the IOMMU
// support patch the project was seeded from. Everything on the wire is native-endian and packed.
// This folder knows nothing about queues, memory maps or IOTLB designs (rust-vmm keeps
// vhost_user/ apart from vhost-user-backend/ the same way).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.hpp"

namespace vhostlab::protocol {

// ---- Header ---------------------------------------------------------------------------------

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(Header) == 12, "vhost-user header is three u32 (spec: Message Specification)");

inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kVersion = 0x1;             // flags bits 0-1 must be 1
inline constexpr uint32_t kFlagReply = 1u << 2;       // this message is a reply
inline constexpr uint32_t kFlagNeedReply = 1u << 3;   // sender wants a REPLY_ACK u64
inline constexpr uint32_t kKnownFlags = kVersionMask | kFlagReply | kFlagNeedReply;

// Payload cap: rust-vmm uses 4 KiB; the largest payload we accept (SET_MEM_TABLE with 8
// regions, 8 + 8 * 32 bytes) fits easily. Larger sizes are read, discarded and refused.
inline constexpr uint32_t kMaxPayload = 4096;
inline constexpr std::size_t kMaxFds = 8;  // VHOST_MEMORY_BASELINE_NREGIONS

// ---- Message ids ----------------------------------------------------------------------------

// Front-end -> backend requests (spec: "Front-end message types").
enum class Request : uint32_t {
  kNone = 0,
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,
  kIotlbMsg = 22,
  kSetVringEndian = 23,
  kGetConfig = 24,
  kSetConfig = 25,
  kResetDevice = 34,
  kVringKick = 35,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};

// Backend -> front-end requests on the backend channel (spec: "Back-end message types").
enum class BackendRequest : uint32_t {
  kIotlbMsg = 1,
  kConfigChangeMsg = 2,
  kVringHostNotifierMsg = 3,
  kVringCall = 4,
  kVringErr = 5,
};

std::string_view RequestName(uint32_t request);
std::string_view BackendRequestName(uint32_t request);

// ---- Feature bits ---------------------------------------------------------------------------

namespace feature {
inline constexpr int kNetFMrgRxbuf = 15;
inline constexpr int kLogAll = 26;
inline constexpr int kRingIndirectDesc = 28;
inline constexpr int kRingEventIdx = 29;
inline constexpr int kProtocolFeatures = 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr int kVersion1 = 32;
inline constexpr int kIommuPlatform = 33;     // VIRTIO_F_ACCESS_PLATFORM
inline constexpr int kRingPacked = 34;
inline constexpr int kInOrder = 35;
}  // namespace feature

namespace protocol_feature {
inline constexpr int kMq = 0;
inline constexpr int kLogShmfd = 1;
inline constexpr int kRarp = 2;
inline constexpr int kReplyAck = 3;
inline constexpr int kMtu = 4;
inline constexpr int kBackendReq = 5;  // was SLAVE_REQ
inline constexpr int kCrossEndian = 6;
inline constexpr int kCryptoSession = 7;
inline constexpr int kPagefault = 8;
inline constexpr int kConfig = 9;
inline constexpr int kBackendSendFd = 10;
inline constexpr int kHostNotifier = 11;
inline constexpr int kInflightShmfd = 12;
inline constexpr int kResetDevice = 13;
inline constexpr int kInbandNotifications = 14;
inline constexpr int kConfigureMemSlots = 15;
inline constexpr int kStatus = 16;
}  // namespace protocol_feature

constexpr uint64_t Bit(int n) { return uint64_t{1} << n; }

// Renders a feature word as "VERSION_1|IOMMU_PLATFORM|..." for logs.
std::string FeatureNames(uint64_t features);
std::string ProtocolFeatureNames(uint64_t features);

// ---- Payloads -------------------------------------------------------------------------------
// Each payload has Validate(): a clear error for what the spec forbids. Range checks that need
// backend state (queue count, mapped memory) happen in the backend, not here.

struct U64Payload {
  uint64_t value;
  // Every u64 is well-formed on the wire; what it means (feature bits, a queue index, a log
  // base) is checked by the request that carries it.
  Status Validate() const { return {}; }
};
static_assert(sizeof(U64Payload) == 8, "u64 payload (spec: A single 64-bit integer)");

struct VringState {
  uint32_t index;
  uint32_t num;
  Status Validate() const { return {}; }
};
static_assert(sizeof(VringState) == 8, "vring state is two u32 (spec: Vring state description)");

struct VringAddr {
  uint32_t index;
  uint32_t flags;  // bit 0: VHOST_VRING_F_LOG
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
  Status Validate() const;
};
static_assert(sizeof(VringAddr) == 40, "vring address is 2 u32 + 4 u64 (spec: Vring address description)");

struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
  Status Validate() const;
};
static_assert(sizeof(MemoryRegion) == 32, "memory region is 4 u64 (spec: Memory region description)");

inline constexpr uint32_t kMaxMemRegions = 8;

struct MemoryTable {
  uint32_t nregions;
  uint32_t padding;
  MemoryRegion regions[kMaxMemRegions];
  // Validates the regions present in a payload of `payload_size` bytes.
  Status Validate(uint32_t payload_size) const;
};
static_assert(sizeof(MemoryTable) == 8 + 8 * 32, "memory table: u32 count, u32 pad, 8 regions");

struct SingleMemoryRegion {
  uint64_t padding;
  MemoryRegion region;
  Status Validate() const { return region.Validate(); }
};
static_assert(sizeof(SingleMemoryRegion) == 40, "single region: u64 pad + region (ADD/REM_MEM_REG)");

struct LogDescription {
  uint64_t mmap_size;
  uint64_t mmap_offset;
  // The log area [mmap_offset, mmap_offset + mmap_size) must be non-empty and not wrap.
  Status Validate() const {
    if (mmap_size == 0) return Error{"log description: mmap_size is 0"};
    if (mmap_offset + mmap_size < mmap_offset)
      return Error{"log description: mmap_offset + mmap_size wraps"};
    return {};
  }
};
static_assert(sizeof(LogDescription) == 16, "log description is two u64");

// struct vhost_iotlb_msg from <linux/vhost_types.h>.
enum class IotlbType : uint8_t {
  kMiss = 1,
  kUpdate = 2,
  kInvalidate = 3,
  kAccessFail = 4,
};
inline constexpr uint8_t kIotlbPermNone = 0, kIotlbPermRo = 1, kIotlbPermWo = 2, kIotlbPermRw = 3;

struct IotlbMsg {
  uint64_t iova;
  uint64_t size;
  uint64_t uaddr;
  uint8_t perm;
  uint8_t type;
  uint8_t reserved[6];
  // The two messages a front-end sends, reserved bytes zero. Invalidate carries no uaddr/perm.
  static IotlbMsg Update(uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm) {
    return {iova, size, uaddr, perm, static_cast<uint8_t>(IotlbType::kUpdate), {}};
  }
  static IotlbMsg Invalidate(uint64_t iova, uint64_t size) {
    return {iova, size, 0, 0, static_cast<uint8_t>(IotlbType::kInvalidate), {}};
  }
  // UPDATE needs size > 0, no wrap past 2^64 - 1, perm RO/WO/RW; INVALIDATE needs size > 0
  // (size may reach exactly 2^64 from iova 0 only as (0, ~0), QEMU's full-range invalidate).
  Status Validate() const;
  // Inclusive last IOVA; call only after Validate().
  uint64_t Last() const;
};
static_assert(sizeof(IotlbMsg) == 32, "vhost_iotlb_msg is 32 bytes on the wire (3 u64, 2 u8, 6 pad)");
static_assert(offsetof(IotlbMsg, perm) == 24 && offsetof(IotlbMsg, type) == 25,
              "vhost_iotlb_msg: perm and type follow the three u64");

// SET_VRING_ERR / KICK / CALL u64: bits 0-7 ring index, bit 8 = no fd (polling).
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFdMask = 1u << 8;

}  // namespace vhostlab::protocol
