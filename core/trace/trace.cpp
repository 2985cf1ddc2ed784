// Trace writer and reader; the format is described in trace.hpp.
#include "core/trace/trace.hpp"

#include <time.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "core/base/log.hpp"

namespace vhostlab::trace {
namespace {

constexpr std::size_t kBufferRecords = 4096;

uint64_t MonotonicNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Header MakeHeader(uint64_t records, bool truncated) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.record_bytes = sizeof(Record);
  h.flags = truncated ? kFlagTruncated : 0;
  h.records = records;
  return h;
}

}  // namespace

std::string_view TypeName(RecordType t) {
  switch (t) {
    case RecordType::kUpdate: return "update";
    case RecordType::kInvalidate: return "invalidate";
    case RecordType::kMiss: return "miss";
    case RecordType::kTranslate: return "translate";
    case RecordType::kMemRegion: return "mem_region";
    case RecordType::kConnect: return "connect";
    case RecordType::kMemReset: return "mem_reset";
    case RecordType::kAccessFail: return "access_fail";
  }
  return "unknown";
}

Result<std::unique_ptr<Writer>> Writer::Open(const std::string& path, uint64_t max_records) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return Error{"cannot create trace " + path + ": " + std::strerror(errno)};
  const Header h = MakeHeader(0, false);
  if (std::fwrite(&h, sizeof(h), 1, f) != 1) {
    std::fclose(f);
    return Error{"cannot write trace " + path + ": " + std::strerror(errno)};
  }
  return std::unique_ptr<Writer>(new Writer(f, path, max_records));
}

Writer::Writer(std::FILE* f, std::string path, uint64_t max_records)
    : file_(f), path_(std::move(path)), max_records_(max_records), start_ns_(MonotonicNs()) {
  buffer_.reserve(kBufferRecords);
}

Writer::~Writer() { (void)Close(); }

void Writer::Add(RecordType type, uint64_t iova, uint64_t size, uint64_t uaddr, iotlb::Perm perm,
                 uint16_t queue, uint8_t outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!file_ || truncated_) return;
  const uint64_t now = MonotonicNs();  // under the lock: timestamps follow the record order
  if (records_ >= max_records_) {
    truncated_ = true;
    VL_WARN("trace %s: %" PRIu64 " records reached; recording stops (the file is marked "
            "truncated)", path_.c_str(), max_records_);
    return;
  }
  Record r{};
  r.t_ns = now - start_ns_;
  r.iova = iova;
  r.size = size;
  r.uaddr = uaddr;
  r.type = type;
  r.perm = static_cast<uint8_t>(perm);
  r.queue = queue;
  r.outcome = outcome;
  buffer_.push_back(r);
  ++records_;
  if (buffer_.size() == kBufferRecords) (void)FlushLocked();
}

Status Writer::FlushLocked() {
  if (!buffer_.empty() && error_.ok() &&
      std::fwrite(buffer_.data(), sizeof(Record), buffer_.size(), file_) != buffer_.size())
    error_ = Error{"writing trace " + path_ + ": " + std::strerror(errno)};
  buffer_.clear();
  return error_;
}

Status Writer::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!file_) return error_;
  (void)FlushLocked();
  // The header is rewritten last with the record count; a reader refuses a file whose header
  // and length disagree (a recording that was killed before Close()).
  const Header h = MakeHeader(records_, truncated_);
  if (error_.ok() && (std::fseek(file_, 0, SEEK_SET) != 0 || std::fwrite(&h, sizeof(h), 1, file_) != 1))
    error_ = Error{"writing trace header " + path_ + ": " + std::strerror(errno)};
  if (std::fclose(file_) != 0 && error_.ok())
    error_ = Error{"closing trace " + path_ + ": " + std::strerror(errno)};
  file_ = nullptr;
  return error_;
}

uint64_t Writer::records() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_;
}

Result<Trace> Read(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Error{"cannot open trace " + path + ": " + std::strerror(errno)};
  Trace t;
  auto fail = [&](const std::string& why) -> Result<Trace> {
    std::fclose(f);
    return Error{"trace " + path + ": " + why};
  };
  if (std::fread(&t.header, sizeof(t.header), 1, f) != 1) return fail("shorter than its header");
  if (std::memcmp(t.header.magic, kMagic, sizeof(kMagic)) != 0)
    return fail("not a vhostlab trace (bad magic)");
  if (t.header.version != kVersion)
    return fail("version " + std::to_string(t.header.version) + " (this build reads " +
                std::to_string(kVersion) + ")");
  if (t.header.record_bytes != sizeof(Record))
    return fail("record size " + std::to_string(t.header.record_bytes) + ", expected " +
                std::to_string(sizeof(Record)));
  if (std::fseek(f, 0, SEEK_END) != 0) return fail(std::strerror(errno));
  const long end = std::ftell(f);
  const uint64_t body = static_cast<uint64_t>(end) - sizeof(Header);
  if (end < 0 || body % sizeof(Record) || body / sizeof(Record) != t.header.records)
    return fail("length does not match its header's " + std::to_string(t.header.records) +
                " records (was the recording stopped before the backend exited?)");
  std::fseek(f, sizeof(Header), SEEK_SET);
  t.records.resize(t.header.records);
  if (!t.records.empty() &&
      std::fread(t.records.data(), sizeof(Record), t.records.size(), f) != t.records.size())
    return fail("short read");
  std::fclose(f);
  for (std::size_t i = 0; i < t.records.size(); ++i) {
    const Record& r = t.records[i];
    const auto type = static_cast<uint8_t>(r.type);
    if (type < 1 || type > kMaxRecordType || r.perm > 3 || r.outcome > 2)
      return Error{"trace " + path + ": record " + std::to_string(i) + " is malformed (type " +
                   std::to_string(type) + ", perm " + std::to_string(r.perm) + ", outcome " +
                   std::to_string(r.outcome) + ")"};
    const bool sized = r.type == RecordType::kUpdate || r.type == RecordType::kInvalidate ||
                       r.type == RecordType::kTranslate;
    if (sized && r.size == 0)
      return Error{"trace " + path + ": record " + std::to_string(i) + " (" +
                   std::string(TypeName(r.type)) + ") has size 0"};
  }
  return t;
}

}  // namespace vhostlab::trace
