// IOTLB traces: what a live front-end did to the device IOTLB, and every translation the
// datapath asked for, recorded by `vhostlab backend --record FILE` and replayed on every design
// by `vhostlab replay` (replay.hpp). The Python reader is vhostlab.load_trace().
//
// File format (little-endian, version 1):
//   header, 32 bytes:  char magic[8] = "VLTRACE1"; u32 version = 1; u32 record_bytes = 40;
//                      u64 flags (bit 0: truncated at the record limit); u64 records
//   then `records` records of 40 bytes each:
//     u64 t_ns     nanoseconds since recording began (CLOCK_MONOTONIC)
//     u64 iova     IOVA (kMemRegion/kMemRemove: the region's guest-physical address)
//     u64 size     bytes: UPDATE/INVALIDATE size, translation length asked, region size;
//                  1 for a MISS (as on the wire)
//     u64 uaddr    UPDATE: front-end address of iova; translation: the answer on a hit;
//                  region: its front-end address; else 0
//     u8  type     RecordType
//     u8  perm     1 RO, 2 WO, 3 RW (what was granted, asked, or needed)
//     u16 queue    virtqueue index of a translation or MISS; 0xffff otherwise
//     u8  outcome  translation: 0 hit, 1 miss, 2 access fail; else 0
//     u8  pad[3]
// Records are in the order the backend took them (one lock); a translation by a worker and an
// UPDATE by the control thread that race are recorded in the order they took that lock.
// A kConnect record starts every front-end connection (and RESET_OWNER): the IOTLB and the
// memory table are empty again there.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/base/result.hpp"
#include "core/iotlb/contract.hpp"

namespace vhostlab::trace {

enum class RecordType : uint8_t {
  kUpdate = 1,
  kInvalidate = 2,
  kMiss = 3,
  kTranslate = 4,
  kMemRegion = 5,   // one region of the memory table (after a kMemReset)
  kMemReset = 6,    // the memory table changed (SET_MEM_TABLE, ADD/REM_MEM_REG): the regions
                    // are the kMemRegion records that follow
  kConnect = 7,     // new connection or RESET_OWNER: empty IOTLB and memory table
  kAccessFail = 8,  // ACCESS_FAIL sent
};
inline constexpr uint8_t kMaxRecordType = 8;

inline constexpr uint16_t kNoQueue = 0xffff;

struct Record {
  uint64_t t_ns;
  uint64_t iova;
  uint64_t size;
  uint64_t uaddr;
  RecordType type;
  uint8_t perm;
  uint16_t queue;
  uint8_t outcome;
  uint8_t pad[3];
};
static_assert(sizeof(Record) == 40, "the trace record is 40 bytes on disk");

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t record_bytes;
  uint64_t flags;
  uint64_t records;
};
static_assert(sizeof(Header) == 32, "the trace header is 32 bytes on disk");

inline constexpr char kMagic[8] = {'V', 'L', 'T', 'R', 'A', 'C', 'E', '1'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint64_t kFlagTruncated = 1;

std::string_view TypeName(RecordType t);

// Appends records from any thread. Records are buffered and written in blocks; Close() (or the
// destructor) writes the rest and the final header. At `max_records` recording stops, the file
// is marked truncated and one warning is logged: a busy front-end cannot fill the disk.
class Writer {
 public:
  static Result<std::unique_ptr<Writer>> Open(const std::string& path, uint64_t max_records);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void Add(RecordType type, uint64_t iova, uint64_t size, uint64_t uaddr, iotlb::Perm perm,
           uint16_t queue = kNoQueue, uint8_t outcome = 0);
  void Translation(uint16_t queue, uint64_t iova, uint64_t len, iotlb::Perm perm,
                   const iotlb::Translation& t) {
    Add(RecordType::kTranslate, iova, len, t.hit() ? t.uaddr : 0, perm, queue,
        static_cast<uint8_t>(t.outcome));
  }
  Status Close();
  uint64_t records() const;
  const std::string& path() const { return path_; }

 private:
  Writer(std::FILE* f, std::string path, uint64_t max_records);
  Status FlushLocked();
  mutable std::mutex mu_;
  std::FILE* file_;
  std::string path_;
  uint64_t max_records_;
  uint64_t records_ = 0;     // guarded by mu_
  bool truncated_ = false;   // guarded by mu_
  uint64_t start_ns_;
  std::vector<Record> buffer_;  // guarded by mu_
  Status error_;                // first write error; guarded by mu_
};

struct Trace {
  Header header{};
  std::vector<Record> records;
  bool truncated() const { return header.flags & kFlagTruncated; }
};

// Reads and checks a trace file (it may come from anywhere: every field is validated).
Result<Trace> Read(const std::string& path);

}  // namespace vhostlab::trace
