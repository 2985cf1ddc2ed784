// The counter collector (see counters.hpp for the algorithm and its invariants).
//
// Only <perfmon/pfmlib_perf_event.h> is included for perf_event_attr and the ioctls: it carries
// its own copy of the kernel's perf_event ABI, and including <linux/perf_event.h> as well
// redefines every type.
#include "core/counters/counters.hpp"

#include <absl/strings/str_join.h>

#include <dirent.h>
#include <perfmon/pfmlib_perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "core/base/unique_fd.hpp"
#include "core/counters/group_read.hpp"
#include "core/counters/tsc.hpp"

namespace vhostlab::counters {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kTscName = "tsc";

// Friendly names -> libpfm4 generic names (perf:: works on every CPU libpfm runs on, including
// CPUs whose own PMU table libpfm lacks).
const std::map<std::string, std::string>& FriendlyNames() {
  static const std::map<std::string, std::string> names = {
      {"cycles", "perf::CYCLES"},
      {"instructions", "perf::INSTRUCTIONS"},
      {"branch-misses", "perf::BRANCH-MISSES"},
      {"L1-dcache-load-misses", "perf::L1-DCACHE-LOAD-MISSES"},
      {"LLC-load-misses", "perf::LLC-LOAD-MISSES"},
      {"dTLB-load-misses", "perf::DTLB-LOAD-MISSES"},
      {"task-clock", "perf::TASK-CLOCK"},
      {"page-faults", "perf::PAGE-FAULTS"},
      {"context-switches", "perf::CONTEXT-SWITCHES"},
      {"cpu-migrations", "perf::CPU-MIGRATIONS"},
  };
  return names;
}

// libpfm keeps global tables: initialise once and serialise encodings.
std::mutex& PfmMutex() {
  static std::mutex mu;
  return mu;
}

Status InitPfm() {
  static const int rc = pfm_initialize();
  if (rc != PFM_SUCCESS)
    return Error{std::string("libpfm4 failed to initialise: ") + pfm_strerror(rc)};
  return Status::Ok();
}

struct Resolved {
  EventSpec spec;
  perf_event_attr attr;
};

Result<Resolved> ResolveOne(const std::string& name) {
  Resolved r;
  r.spec.name = name;
  if (name == kTscName) {
    r.spec.kind = EventKind::kTsc;
    r.spec.pfm_name = "(rdtsc)";
    r.spec.unit = "ticks";
    std::memset(&r.attr, 0, sizeof r.attr);
    return r;
  }
  if (Status s = InitPfm(); !s) return s.error();
  auto it = FriendlyNames().find(name);
  const std::string pfm_query = it != FriendlyNames().end() ? it->second : name;
  std::memset(&r.attr, 0, sizeof r.attr);
  char* fstr = nullptr;
  pfm_perf_encode_arg_t arg;
  std::memset(&arg, 0, sizeof arg);
  arg.attr = &r.attr;
  arg.fstr = &fstr;
  arg.size = sizeof arg;
  int rc;
  {
    std::lock_guard<std::mutex> lock(PfmMutex());
    rc = pfm_get_os_event_encoding(pfm_query.c_str(), PFM_PLM0 | PFM_PLM3, PFM_OS_PERF_EVENT_EXT,
                                   &arg);
  }
  if (rc != PFM_SUCCESS) {
    return Error{"unknown event '" + name + "' (libpfm4: " + pfm_strerror(rc) + ")"};
  }
  r.spec.pfm_name = fstr ? fstr : pfm_query;
  std::free(fstr);
  r.attr.size = sizeof r.attr;
  r.spec.kind = r.attr.type == PERF_TYPE_SOFTWARE ? EventKind::kSoftware : EventKind::kHardware;
  const bool is_clock =
      r.attr.type == PERF_TYPE_SOFTWARE &&
      (r.attr.config == PERF_COUNT_SW_TASK_CLOCK || r.attr.config == PERF_COUNT_SW_CPU_CLOCK);
  r.spec.unit = is_clock ? "ns" : "count";
  return r;
}

Result<std::vector<Resolved>> ResolveAll(const std::vector<std::string>& names) {
  const std::vector<std::string>& list = names.empty() ? DefaultEvents() : names;
  std::vector<Resolved> out;
  for (const std::string& name : list) {
    for (const Resolved& r : out) {
      if (r.spec.name == name) return Error{"event '" + name + "' requested twice"};
    }
    auto r = ResolveOne(name);
    if (!r) return r.error();
    out.push_back(std::move(r.value()));
  }
  return out;
}

// Events of one group must live on one PMU: the core PMU takes hardware, cache and raw events.
uint32_t GroupKey(const perf_event_attr& attr) {
  switch (attr.type) {
    case PERF_TYPE_HARDWARE:
    case PERF_TYPE_HW_CACHE:
    case PERF_TYPE_RAW:
      return PERF_TYPE_HARDWARE;
    default:
      return attr.type;
  }
}

std::string ErrnoName(int err) {
  switch (err) {
    case ENOENT:
      return "ENOENT";
    case ENODEV:
      return "ENODEV";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case EACCES:
      return "EACCES";
    case EPERM:
      return "EPERM";
    case EINVAL:
      return "EINVAL";
    case EMFILE:
      return "EMFILE";
    case EBUSY:
      return "EBUSY";
    default:
      return "errno " + std::to_string(err);
  }
}

std::string UnavailableReason(int err, EventKind kind) {
  const std::string detail =
      " (perf_event_open: " + ErrnoName(err) + ", " + std::strerror(err) + ")";
  switch (err) {
    case ENOENT:
    case ENODEV:
    case EOPNOTSUPP:
      if (kind == EventKind::kHardware && !HaveHardwarePmu()) {
        return "unavailable: no PMU (the kernel has no hardware PMU driver, e.g. a VM without a "
               "virtual PMU)" +
               detail;
      }
      return "unavailable: not supported by this CPU or kernel" + detail;
    case EACCES:
    case EPERM:
      return "unavailable: permission denied, perf_event_paranoid=" +
             std::to_string(PerfEventParanoid()) + detail;
    case EMFILE:
      return "unavailable: too many open files" + detail;
    case EBUSY:
      return "unavailable: the PMU is busy (another exclusive user)" + detail;
    default:
      return "unavailable" + detail;
  }
}

long PerfEventOpen(perf_event_attr* attr, int tid, int group_fd) {
  return syscall(__NR_perf_event_open, attr, tid, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
}

}  // namespace

const char* EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kHardware:
      return "hardware";
    case EventKind::kSoftware:
      return "software";
    case EventKind::kTsc:
      return "tsc";
  }
  return "?";
}

const std::vector<std::string>& DefaultEvents() {
  static const std::vector<std::string> events = {
      "cycles",           "instructions",     "branch-misses", "L1-dcache-load-misses",
      "LLC-load-misses",  "dTLB-load-misses", "task-clock",    "page-faults",
      "context-switches", "cpu-migrations",   kTscName};
  return events;
}

Result<std::vector<EventSpec>> ResolveEvents(const std::vector<std::string>& names) {
  auto all = ResolveAll(names);
  if (!all) return all.error();
  std::vector<EventSpec> out;
  for (Resolved& r : all.value()) out.push_back(std::move(r.spec));
  return out;
}

bool HaveHardwarePmu() {
  // Core PMUs register as "cpu" (or "cpu_core"/"cpu_atom" on hybrid parts).
  DIR* dir = opendir("/sys/bus/event_source/devices");
  if (!dir) return false;
  bool found = false;
  while (dirent* e = readdir(dir)) {
    if (std::strncmp(e->d_name, "cpu", 3) == 0) found = true;
  }
  closedir(dir);
  return found;
}

Result<std::vector<ThreadInfo>> ListThreads(int pid) {
  const std::string dir =
      "/proc/" + (pid == 0 ? std::string("self") : std::to_string(pid)) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return Error{"counters: cannot list threads of " + dir + ": " + std::strerror(errno)};
  std::vector<ThreadInfo> out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long tid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;  // "." and ".."
    ThreadInfo info;
    info.tid = static_cast<int>(tid);
    std::ifstream comm(dir + "/" + e->d_name + "/comm");
    std::getline(comm, info.name);  // a thread that just exited keeps an empty name
    out.push_back(std::move(info));
  }
  closedir(d);
  std::sort(out.begin(), out.end(),
            [](const ThreadInfo& a, const ThreadInfo& b) { return a.tid < b.tid; });
  return out;
}

int PerfEventParanoid() {
  std::ifstream in("/proc/sys/kernel/perf_event_paranoid");
  int v = -100;
  if (!(in >> v)) return -100;
  return v;
}

// ---------------------------------------------------------------------------------------------

struct ThreadCounters::Impl {
  struct Slot {
    EventSpec spec;
    perf_event_attr attr;
    int group = -1;  // index into groups; -1 for tsc and unavailable events
    UniqueFd fd;
    uint64_t id = 0;     // kernel event id (PERF_FORMAT_ID) to find the value in a group read
    std::string reason;  // why unavailable; empty when open
    std::string note;    // e.g. "user space only"
  };
  struct Group {
    int leader = -1;           // slot index
    std::vector<int> members;  // slot indices, leader first
  };

  int tid = 0;
  std::vector<EventSpec> specs;  // requested order, same as slots
  std::vector<Slot> slots;
  std::vector<Group> groups;
  bool started = false;
  bool running = false;
  uint64_t tsc_start = 0;
  uint64_t tsc_stop = 0;
};

ThreadCounters::ThreadCounters(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ThreadCounters::ThreadCounters(ThreadCounters&&) noexcept = default;
ThreadCounters& ThreadCounters::operator=(ThreadCounters&&) noexcept = default;
ThreadCounters::~ThreadCounters() = default;

int ThreadCounters::tid() const { return impl_->tid; }

const std::vector<EventSpec>& ThreadCounters::events() const { return impl_->specs; }

Result<ThreadCounters> ThreadCounters::Open(const std::vector<std::string>& events, int tid) {
  auto resolved = ResolveAll(events);
  if (!resolved) return resolved.error();
  auto impl = std::make_unique<Impl>();
  impl->tid = tid == 0 ? static_cast<int>(syscall(SYS_gettid)) : tid;
  // perf_event_open(pid = tid) on a thread that does not exist fails with ESRCH; checking first
  // gives one clear error instead of one per event.
  if (access(("/proc/" + std::to_string(impl->tid) + "/stat").c_str(), F_OK) != 0) {
    return Error{"counters: no thread with tid " + std::to_string(impl->tid)};
  }
  // Hardware events go in groups of HardwareGroupSize(): a bigger group would never be
  // scheduled on a real PMU (all of it or nothing), and the NMI watchdog holds one counter.
  const int per_group = HardwareGroupSize();
  int hardware_seen = 0;
  std::map<uint64_t, int> group_of_key;
  for (Resolved& r : resolved.value()) {
    impl->specs.push_back(r.spec);
    Impl::Slot slot;
    slot.spec = std::move(r.spec);
    slot.attr = r.attr;
    if (slot.spec.kind == EventKind::kTsc) {
      if (!kHaveTsc) slot.reason = "unavailable: no TSC on this architecture";
      impl->slots.push_back(std::move(slot));
      continue;
    }
    uint64_t key = GroupKey(slot.attr);
    if (key == PERF_TYPE_HARDWARE) key |= uint64_t(hardware_seen++ / per_group) << 32;
    auto [it, inserted] = group_of_key.try_emplace(key, -1);
    int leader_fd = -1;
    if (it->second >= 0) {
      const Impl::Group& g = impl->groups[it->second];
      leader_fd = impl->slots[g.leader].fd.get();
    }
    perf_event_attr& a = slot.attr;
    a.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                    PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID;
    a.disabled = leader_fd < 0 ? 1 : 0;  // members follow the leader's enable state
    a.inherit = 0;                       // per thread: group reads do not support inherit
    long fd = PerfEventOpen(&a, impl->tid, leader_fd);
    if (fd < 0 && (errno == EACCES || errno == EPERM) && !a.exclude_kernel) {
      // perf_event_paranoid >= 2 lets unprivileged users count their own user space only.
      a.exclude_kernel = 1;
      a.exclude_hv = 1;
      fd = PerfEventOpen(&a, impl->tid, leader_fd);
      if (fd >= 0)
        slot.note =
            "user space only (perf_event_paranoid=" + std::to_string(PerfEventParanoid()) + ")";
    }
    if (fd < 0) {
      const int err = errno;
      if (err == ESRCH) return Error{"counters: thread " + std::to_string(impl->tid) + " exited"};
      slot.reason = UnavailableReason(err, slot.spec.kind);
      impl->slots.push_back(std::move(slot));
      continue;
    }
    slot.fd.Reset(static_cast<int>(fd));
    if (ioctl(slot.fd.get(), PERF_EVENT_IOC_ID, &slot.id) != 0) {
      return Error{"counters: PERF_EVENT_IOC_ID failed for '" + slot.spec.name +
                   "': " + std::strerror(errno)};
    }
    const int index = static_cast<int>(impl->slots.size());
    if (it->second < 0) {
      it->second = static_cast<int>(impl->groups.size());
      impl->groups.push_back(Impl::Group{index, {}});
    }
    slot.group = it->second;
    impl->groups[it->second].members.push_back(index);
    impl->slots.push_back(std::move(slot));
  }
  return ThreadCounters(std::move(impl));
}

Status ThreadCounters::Start() {
  for (const Impl::Group& g : impl_->groups) {
    const int fd = impl_->slots[g.leader].fd.get();
    if (ioctl(fd, PERF_EVENT_IOC_RESET, PERF_IOC_FLAG_GROUP) != 0 ||
        ioctl(fd, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP) != 0) {
      return Error{std::string("counters: enabling a group failed: ") + std::strerror(errno)};
    }
  }
  impl_->started = true;
  impl_->running = true;
  impl_->tsc_start = ReadTsc();
  return Status::Ok();
}

Status ThreadCounters::Stop() {
  if (!impl_->running) return Status::Ok();
  impl_->tsc_stop = ReadTsc();
  for (const Impl::Group& g : impl_->groups) {
    if (ioctl(impl_->slots[g.leader].fd.get(), PERF_EVENT_IOC_DISABLE, PERF_IOC_FLAG_GROUP) != 0) {
      return Error{std::string("counters: disabling a group failed: ") + std::strerror(errno)};
    }
  }
  impl_->running = false;
  return Status::Ok();
}

Result<std::vector<Reading>> ThreadCounters::Read() const {
  if (!impl_->started) return Error{"counters: Read() before Start()"};
  const uint64_t tsc_now = impl_->running ? ReadTsc() : impl_->tsc_stop;
  std::vector<Reading> out(impl_->slots.size());
  for (size_t i = 0; i < impl_->slots.size(); ++i) {
    const Impl::Slot& s = impl_->slots[i];
    Reading& r = out[i];
    r.event = s.spec.name;
    r.kind = s.spec.kind;
    r.unit = s.spec.unit;
    r.note = s.note;
    if (!s.reason.empty()) {
      r.available = false;
      r.value = kNaN;
      r.note = s.reason;
    } else if (s.spec.kind != EventKind::kTsc) {
      // Overwritten below when the group read carries this event's id; it always should.
      r.available = false;
      r.value = kNaN;
      r.note = "unavailable: missing from its group's read";
    } else {
      r.available = true;
      r.raw = tsc_now - impl_->tsc_start;
      r.value = static_cast<double>(r.raw);
      r.note = TscClock::Get().Describe();
    }
  }
  // One read() per group, decoded by DecodeGroupRead (group_read.hpp).
  for (const Impl::Group& g : impl_->groups) {
    std::vector<uint64_t> ids;
    for (int idx : g.members) ids.push_back(impl_->slots[idx].id);
    std::vector<uint64_t> buf(GroupReadBytes(g.members.size()) / sizeof(uint64_t));
    const ssize_t n =
        read(impl_->slots[g.leader].fd.get(), buf.data(), buf.size() * sizeof(uint64_t));
    if (n < 0) return Error{std::string("counters: reading a group failed: ") + std::strerror(errno)};
    auto decoded = DecodeGroupRead(ids, buf.data(), static_cast<std::size_t>(n));
    if (!decoded) return decoded.error();
    for (std::size_t m = 0; m < g.members.size(); ++m) {
      const MemberReading& d = (*decoded)[m];
      Reading& r = out[g.members[m]];
      const std::string& open_note = impl_->slots[g.members[m]].note;
      r.available = d.available;
      r.multiplexed = d.multiplexed;
      r.raw = d.raw;
      r.value = d.value;
      r.running_fraction = d.running_fraction;
      r.note = !d.available || open_note.empty() ? (d.available ? open_note : d.note)
               : d.note.empty()                  ? open_note
                                                 : open_note + "; " + d.note;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

Result<Session> Session::Create(const std::vector<std::string>& events) {
  auto resolved = ResolveEvents(events);
  if (!resolved) return resolved.error();
  std::vector<std::string> names;
  for (const EventSpec& s : resolved.value()) names.push_back(s.name);
  return Session(std::move(names));
}

Status Session::Attach(int tid, const std::string& label) {
  auto tc = ThreadCounters::Open(names_, tid);
  if (!tc) return tc.error();
  threads_.emplace_back(label, std::move(tc.value()));
  return Status::Ok();
}

Status Session::Start() {
  for (auto& [label, tc] : threads_) {
    if (Status s = tc.Start(); !s) return s;
  }
  return Status::Ok();
}

Status Session::Stop() {
  for (auto& [label, tc] : threads_) {
    if (Status s = tc.Stop(); !s) return s;
  }
  return Status::Ok();
}

Result<std::vector<Session::ThreadReading>> Session::ReadAll() const {
  std::vector<ThreadReading> out;
  for (const auto& [label, tc] : threads_) {
    auto r = tc.Read();
    if (!r) return r.error();
    out.push_back(ThreadReading{label, tc.tid(), std::move(r.value())});
  }
  return out;
}

std::vector<Reading> SumReadings(const std::vector<std::vector<Reading>>& per_thread) {
  if (per_thread.empty()) return {};
  std::vector<Reading> sum = per_thread.front();
  for (size_t t = 1; t < per_thread.size(); ++t) {
    for (size_t i = 0; i < sum.size() && i < per_thread[t].size(); ++i) {
      Reading& acc = sum[i];
      const Reading& r = per_thread[t][i];
      if (!r.available) {
        if (acc.available) acc.note = r.note;
        acc.available = false;
        acc.value = kNaN;
        continue;
      }
      if (!acc.available) continue;
      if (acc.kind == EventKind::kTsc) {
        acc.raw = std::max(acc.raw, r.raw);
        acc.value = std::max(acc.value, r.value);
        continue;
      }
      acc.raw += r.raw;
      acc.value += r.value;
      if (r.multiplexed) {
        acc.multiplexed = true;
        acc.running_fraction = std::min(acc.running_fraction, r.running_fraction);
        acc.note = r.note;
      }
    }
  }
  return sum;
}

std::vector<EventStatus> ProbeEvents(const std::vector<std::string>& names) {
  std::vector<EventStatus> out;
  for (const std::string& name : names.empty() ? DefaultEvents() : names) {
    EventStatus st;
    st.name = name;
    st.sample = kNaN;
    auto spec = ResolveOne(name);
    if (!spec) {
      st.reason = spec.error().message;
      out.push_back(std::move(st));
      continue;
    }
    st.pfm_name = spec->spec.pfm_name;
    st.kind = spec->spec.kind;
    st.unit = spec->spec.unit;
    auto tc = ThreadCounters::Open({name});
    if (!tc) {
      st.reason = tc.error().message;
      out.push_back(std::move(st));
      continue;
    }
    Status started = tc->Start();
    // A short loop over fresh pages so that counting events have something to count (first
    // touches fault, the strided walk misses caches and the TLB).
    constexpr size_t kBytes = 64 * 4096;
    void* mem = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem != MAP_FAILED) {
      volatile uint8_t* bytes = static_cast<volatile uint8_t*>(mem);
      for (size_t i = 0; i < kBytes; i += 64) {
        const size_t at = (i * 4099) % kBytes;
        bytes[at] = static_cast<uint8_t>(bytes[at] + 1);
      }
    }
    Status stopped = tc->Stop();
    if (mem != MAP_FAILED) munmap(mem, kBytes);
    auto readings = tc->Read();
    if (!started || !stopped || !readings) {
      st.reason = !started   ? started.message()
                  : !stopped ? stopped.message()
                             : readings.error().message;
    } else {
      const Reading& r = readings->front();
      st.available = r.available;
      st.sample = r.value;
      if (!r.available) st.reason = r.note;
    }
    out.push_back(std::move(st));
  }
  return out;
}

std::string DescribeGrouping(const std::vector<EventSpec>& events) {
  const int per_group = HardwareGroupSize();
  std::vector<std::string> hardware, software;
  for (const EventSpec& e : events) {
    if (e.kind == EventKind::kHardware) hardware.push_back(e.name);
    if (e.kind == EventKind::kSoftware) software.push_back(e.name);
  }
  std::string out = "hardware events in groups of at most " + std::to_string(per_group) +
                    (per_group < 4 ? " (4 counters, one held by the NMI watchdog)" : "") + ":";
  for (const auto& g : PlanHardwareGroups(static_cast<int>(hardware.size()), per_group)) {
    out += " {" +
           absl::StrJoin(g, ", ",
                         [&](std::string* o, std::size_t i) { o->append(hardware[i]); }) +
           "}";
  }
  if (hardware.empty()) out += " none";
  return out + "; software events in one group: {" + absl::StrJoin(software, ", ") + "}";
}

}  // namespace vhostlab::counters
