#include "core/protocol/messages.hpp"

#include <cinttypes>
#include <cstdio>

namespace vhostlab::protocol {
namespace {

std::string Fmt(const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

template <std::size_t N>
std::string NamesOf(uint64_t bits, const std::pair<int, const char*> (&table)[N]) {
  std::string out;
  uint64_t known = 0;
  for (const auto& [bit, name] : table) {
    known |= Bit(bit);
    if (bits & Bit(bit)) {
      if (!out.empty()) out += '|';
      out += name;
    }
  }
  if (bits & ~known) {
    if (!out.empty()) out += '|';
    out += Fmt("0x%" PRIx64, bits & ~known);
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::string_view RequestName(uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::kNone: return "NONE";
    case Request::kGetFeatures: return "GET_FEATURES";
    case Request::kSetFeatures: return "SET_FEATURES";
    case Request::kSetOwner: return "SET_OWNER";
    case Request::kResetOwner: return "RESET_OWNER";
    case Request::kSetMemTable: return "SET_MEM_TABLE";
    case Request::kSetLogBase: return "SET_LOG_BASE";
    case Request::kSetLogFd: return "SET_LOG_FD";
    case Request::kSetVringNum: return "SET_VRING_NUM";
    case Request::kSetVringAddr: return "SET_VRING_ADDR";
    case Request::kSetVringBase: return "SET_VRING_BASE";
    case Request::kGetVringBase: return "GET_VRING_BASE";
    case Request::kSetVringKick: return "SET_VRING_KICK";
    case Request::kSetVringCall: return "SET_VRING_CALL";
    case Request::kSetVringErr: return "SET_VRING_ERR";
    case Request::kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case Request::kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case Request::kGetQueueNum: return "GET_QUEUE_NUM";
    case Request::kSetVringEnable: return "SET_VRING_ENABLE";
    case Request::kSendRarp: return "SEND_RARP";
    case Request::kNetSetMtu: return "NET_SET_MTU";
    case Request::kSetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case Request::kIotlbMsg: return "IOTLB_MSG";
    case Request::kSetVringEndian: return "SET_VRING_ENDIAN";
    case Request::kGetConfig: return "GET_CONFIG";
    case Request::kSetConfig: return "SET_CONFIG";
    case Request::kResetDevice: return "RESET_DEVICE";
    case Request::kVringKick: return "VRING_KICK";
    case Request::kGetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case Request::kAddMemReg: return "ADD_MEM_REG";
    case Request::kRemMemReg: return "REM_MEM_REG";
    case Request::kSetStatus: return "SET_STATUS";
    case Request::kGetStatus: return "GET_STATUS";
  }
  return "UNKNOWN";
}

std::string_view BackendRequestName(uint32_t request) {
  switch (static_cast<BackendRequest>(request)) {
    case BackendRequest::kIotlbMsg: return "IOTLB_MSG";
    case BackendRequest::kConfigChangeMsg: return "CONFIG_CHANGE_MSG";
    case BackendRequest::kVringHostNotifierMsg: return "VRING_HOST_NOTIFIER_MSG";
    case BackendRequest::kVringCall: return "VRING_CALL";
    case BackendRequest::kVringErr: return "VRING_ERR";
  }
  return "UNKNOWN";
}

std::string FeatureNames(uint64_t features) {
  static const std::pair<int, const char*> kTable[] = {
      {0, "NET_CSUM"}, {5, "NET_MAC"}, {15, "NET_MRG_RXBUF"}, {17, "NET_CTRL_VQ"},
      {22, "NET_MQ"}, {feature::kLogAll, "LOG_ALL"}, {feature::kRingIndirectDesc, "INDIRECT_DESC"},
      {feature::kRingEventIdx, "EVENT_IDX"}, {feature::kProtocolFeatures, "PROTOCOL_FEATURES"},
      {feature::kVersion1, "VERSION_1"}, {feature::kIommuPlatform, "IOMMU_PLATFORM"},
      {feature::kRingPacked, "RING_PACKED"}, {feature::kInOrder, "IN_ORDER"},
  };
  return NamesOf(features, kTable);
}

std::string ProtocolFeatureNames(uint64_t features) {
  static const std::pair<int, const char*> kTable[] = {
      {protocol_feature::kMq, "MQ"}, {protocol_feature::kLogShmfd, "LOG_SHMFD"},
      {protocol_feature::kRarp, "RARP"}, {protocol_feature::kReplyAck, "REPLY_ACK"},
      {protocol_feature::kMtu, "MTU"}, {protocol_feature::kBackendReq, "BACKEND_REQ"},
      {protocol_feature::kCrossEndian, "CROSS_ENDIAN"},
      {protocol_feature::kCryptoSession, "CRYPTO_SESSION"},
      {protocol_feature::kPagefault, "PAGEFAULT"}, {protocol_feature::kConfig, "CONFIG"},
      {protocol_feature::kBackendSendFd, "BACKEND_SEND_FD"},
      {protocol_feature::kHostNotifier, "HOST_NOTIFIER"},
      {protocol_feature::kInflightShmfd, "INFLIGHT_SHMFD"},
      {protocol_feature::kResetDevice, "RESET_DEVICE"},
      {protocol_feature::kInbandNotifications, "INBAND_NOTIFICATIONS"},
      {protocol_feature::kConfigureMemSlots, "CONFIGURE_MEM_SLOTS"},
      {protocol_feature::kStatus, "STATUS"},
  };
  return NamesOf(features, kTable);
}

Status VringAddr::Validate() const {
  if (flags & ~uint32_t{1}) return Error{Fmt("SET_VRING_ADDR: unknown flags 0x%x", flags)};
  // Split-ring alignment (virtio 1.x 2.7: desc 16, avail 2, used 4).
  if (desc_user_addr % 16) return Error{Fmt("SET_VRING_ADDR: desc 0x%" PRIx64 " not 16-byte aligned", desc_user_addr)};
  if (avail_user_addr % 2) return Error{Fmt("SET_VRING_ADDR: avail 0x%" PRIx64 " not 2-byte aligned", avail_user_addr)};
  if (used_user_addr % 4) return Error{Fmt("SET_VRING_ADDR: used 0x%" PRIx64 " not 4-byte aligned", used_user_addr)};
  return {};
}

Status MemoryRegion::Validate() const {
  if (memory_size == 0) return Error{"memory region of size 0"};
  if (guest_phys_addr + (memory_size - 1) < guest_phys_addr)
    return Error{Fmt("memory region gpa 0x%" PRIx64 " size 0x%" PRIx64 " wraps", guest_phys_addr, memory_size)};
  if (userspace_addr + (memory_size - 1) < userspace_addr)
    return Error{Fmt("memory region uaddr 0x%" PRIx64 " size 0x%" PRIx64 " wraps", userspace_addr, memory_size)};
  if (mmap_offset + (memory_size - 1) < mmap_offset)
    return Error{Fmt("memory region mmap_offset 0x%" PRIx64 " size 0x%" PRIx64 " wraps", mmap_offset, memory_size)};
  return {};
}

Status MemoryTable::Validate(uint32_t payload_size) const {
  if (payload_size < 8) return Error{Fmt("SET_MEM_TABLE: payload %u bytes, need at least 8", payload_size)};
  if (nregions == 0 || nregions > kMaxMemRegions)
    return Error{Fmt("SET_MEM_TABLE: %u regions (1..%u allowed)", nregions, kMaxMemRegions)};
  if (payload_size < 8 + nregions * sizeof(MemoryRegion))
    return Error{Fmt("SET_MEM_TABLE: %u regions need %zu bytes, payload has %u", nregions,
                     8 + nregions * sizeof(MemoryRegion), payload_size)};
  for (uint32_t i = 0; i < nregions; ++i) {
    if (Status s = regions[i].Validate(); !s.ok())
      return Error{Fmt("SET_MEM_TABLE region %u: %s", i, s.message().c_str())};
    for (uint32_t j = 0; j < i; ++j) {
      const MemoryRegion& a = regions[i];
      const MemoryRegion& b = regions[j];
      if (a.userspace_addr <= b.userspace_addr + (b.memory_size - 1) &&
          b.userspace_addr <= a.userspace_addr + (a.memory_size - 1))
        return Error{Fmt("SET_MEM_TABLE: regions %u and %u overlap in uaddr space", j, i)};
      if (a.guest_phys_addr <= b.guest_phys_addr + (b.memory_size - 1) &&
          b.guest_phys_addr <= a.guest_phys_addr + (a.memory_size - 1))
        return Error{Fmt("SET_MEM_TABLE: regions %u and %u overlap in guest-physical space", j, i)};
    }
  }
  return {};
}

Status IotlbMsg::Validate() const {
  switch (static_cast<IotlbType>(type)) {
    case IotlbType::kUpdate:
      if (size == 0) return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 ": size 0", iova)};
      if (iova + (size - 1) < iova)
        return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 " size 0x%" PRIx64 ": range wraps past 2^64", iova, size)};
      if (uaddr + (size - 1) < uaddr)
        return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 ": uaddr 0x%" PRIx64 " + size wraps", iova, uaddr)};
      if (perm == kIotlbPermNone || perm > kIotlbPermRw)
        return Error{Fmt("IOTLB UPDATE iova 0x%" PRIx64 ": bad perm %u", iova, perm)};
      return {};
    case IotlbType::kInvalidate:
      if (size == 0) return Error{Fmt("IOTLB INVALIDATE iova 0x%" PRIx64 ": size 0", iova)};
      return {};  // a wrapping invalidate is clamped to the end of the IOVA space
    case IotlbType::kMiss:
    case IotlbType::kAccessFail:
      return Error{Fmt("IOTLB type %u is backend-to-front-end only", type)};
  }
  return Error{Fmt("IOTLB: unknown type %u", type)};
}

uint64_t IotlbMsg::Last() const {
  // QEMU's full-range invalidate is (0, ~0ULL): 2^64 - 1 bytes, meant as "everything".
  if (size == ~uint64_t{0}) return ~uint64_t{0};
  if (iova + (size - 1) < iova) return ~uint64_t{0};
  return iova + (size - 1);
}

}  // namespace vhostlab::protocol
