// Backend: the control thread around Session. It listens (or connects, with --client), serves
// one front-end at a time, and after a disconnect starts over with fresh state (a new Session,
// hence a new device, IOTLB and workers). Counters live here and survive connections.
#include "core/backend/backend.hpp"

#include <absl/strings/str_join.h>

#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "core/backend/session.hpp"
#include "core/base/log.hpp"
#include "core/iotlb/registry.hpp"
#include "core/topology/cpuset.hpp"
#include "core/trace/trace.hpp"

namespace vhostlab::backend {
namespace {

constexpr int kClientRetryMs = 200;
constexpr int kClientConnectMs = 5000;

class BackendImpl final : public Backend {
 public:
  explicit BackendImpl(const BackendOptions& options)
      : options_(options), counters_(options.queue_pairs) {}
  ~BackendImpl() override { Stop(); }

  Status Start() override {
    if (thread_.joinable()) return Error{"backend already started"};
    if (!options_.record_path.empty()) {
      auto w = trace::Writer::Open(options_.record_path, options_.record_limit);
      if (!w) return w.error();
      recorder_ = std::move(*w);
      VL_INFO("recording IOTLB traffic and translations to %s", options_.record_path.c_str());
    }
    stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_) return Error{std::string("eventfd: ") + std::strerror(errno)};
    if (options_.client) {
      auto fd = protocol::ConnectUnix(options_.socket_path, kClientConnectMs);
      if (!fd) return Error{"connect to front-end " + options_.socket_path + ": " + fd.error().message};
      first_connection_ = std::move(*fd);
    } else {
      auto fd = protocol::ListenUnix(options_.socket_path);
      if (!fd) return fd.error();
      listen_ = std::move(*fd);
      VL_INFO("listening on %s (IOTLB design %s, mode %s, %u queue pair(s), poll %s%s)",
              options_.socket_path.c_str(), options_.iotlb.c_str(),
              options_.mode == DeviceMode::kSink ? "sink" : "loopback", options_.queue_pairs,
              PollModeName(options_.poll),
              options_.poll == PollMode::kAdaptive
                  ? (":" + std::to_string(options_.spin_us) + " us").c_str() : "");
    }
    thread_ = std::thread([this] {
      // The session's workers are started from here and inherit this binding until they bind
      // themselves (device.cpp).
      if (!options_.control_cpus.empty())
        if (Status s = topology::BindThisThreadToCpus(options_.control_cpus); !s.ok())
          VL_WARN("control thread: %s", s.message().c_str());
      Run();
    });
    return {};
  }

  void Stop() override {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof(one));
    thread_.join();
    if (listen_) {
      listen_.Reset();
      ::unlink(options_.socket_path.c_str());
    }
    if (recorder_) {
      const uint64_t n = recorder_->records();
      if (Status s = recorder_->Close(); !s.ok()) VL_ERROR("%s", s.message().c_str());
      else VL_INFO("trace %s: %llu records", options_.record_path.c_str(),
                   static_cast<unsigned long long>(n));
    }
  }

  BackendStats Stats() const override {
    BackendStats s;
    s.messages = counters_.messages.load();
    s.message_errors = counters_.message_errors.load();
    s.iotlb_updates = counters_.iotlb_updates.load();
    s.iotlb_invalidates = counters_.iotlb_invalidates.load();
    s.misses_sent = counters_.misses_sent.load();
    s.connections = counters_.connections.load();
    s.iotlb_refused_full = counters_.iotlb_refused_full.load();
    s.broken_queues = counters_.broken_queues.load();
    s.memory_faults = counters_.memory_faults.load();
    s.update_service_p50_ns = counters_.update_service_ns.Percentile(50);
    s.update_service_p99_ns = counters_.update_service_ns.Percentile(99);
    s.invalidate_service_p50_ns = counters_.invalidate_service_ns.Percentile(50);
    s.invalidate_service_p99_ns = counters_.invalidate_service_ns.Percentile(99);
    for (uint32_t i = 0; i < counters_.queues.size(); ++i) {
      const QueueCounters& c = counters_.queues[i];
      QueueStats q;
      q.queue_pair = i;
      q.tx_packets = c.tx_packets.load();
      q.tx_bytes = c.tx_bytes.load();
      q.rx_packets = c.rx_packets.load();
      q.rx_bytes = c.rx_bytes.load();
      q.translations = c.translations.load();
      q.cache_hits = c.cache_hits.load();
      q.iotlb_misses = c.iotlb_misses.load();
      q.retries = c.retries.load();
      q.access_fails = c.access_fails.load();
      q.drops = c.drops.load();
      q.errors = c.errors.load();
      q.checksum = c.checksum.load();
      q.kicks = c.kicks.load();
      q.rx_interrupts = c.rx_interrupts.load();
      q.tx_interrupts = c.tx_interrupts.load();
      q.bursts = c.bursts.load();
      q.passes = c.passes.load();
      s.queues.push_back(q);
    }
    return s;
  }

  std::vector<int> WorkerTids() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return session_ ? session_->WorkerTids() : std::vector<int>{};
  }

 private:
  bool Stopping() const {
    pollfd p{stop_.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

  // Waits for the next front-end; invalid fd when stopping.
  UniqueFd NextConnection() {
    if (first_connection_) return std::move(first_connection_);
    for (;;) {
      if (Stopping()) return {};
      if (options_.client) {
        auto fd = protocol::ConnectUnix(options_.socket_path, 0);
        if (fd) return std::move(*fd);
        pollfd p{stop_.get(), POLLIN, 0};
        ::poll(&p, 1, kClientRetryMs);
        continue;
      }
      pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents & POLLIN) return {};
      auto fd = protocol::AcceptUnix(listen_.get(), 0);
      if (fd) return std::move(*fd);
      VL_WARN("accept: %s", fd.error().message.c_str());
    }
  }

  void Run() {
    for (;;) {
      UniqueFd fd = NextConnection();
      if (!fd) return;
      auto session =
          Session::Create(protocol::Channel(std::move(fd)), options_, &counters_, recorder_.get());
      if (!session) {
        VL_ERROR("cannot start a session: %s", session.error().message.c_str());
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        session_ = std::move(*session);
      }
      counters_.connections.fetch_add(1, std::memory_order_relaxed);
      VL_INFO("front-end connected");
      const std::string why = session_->Serve(stop_.get());
      {
        std::lock_guard<std::mutex> lock(mu_);
        session_.reset();  // stops the workers; the next front-end starts from scratch
      }
      // What the front-end made us allocate (IOTLB entries in every replica, logs) goes back
      // to the system, not only to malloc's free lists.
      ::malloc_trim(0);
      VL_INFO("front-end session ended: %s", why.c_str());
      if (!options_.serve_forever || Stopping()) return;
    }
  }

  uint64_t RecordedEvents() const override { return recorder_ ? recorder_->records() : 0; }

  BackendOptions options_;
  Counters counters_;
  std::unique_ptr<trace::Writer> recorder_;  // outlives every session (joined in Stop)
  UniqueFd stop_, listen_, first_connection_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::unique_ptr<Session> session_;  // guarded by mu_ (written here, read by WorkerTids)
};

}  // namespace

const char* PollModeName(PollMode m) {
  switch (m) {
    case PollMode::kInterrupt: return "interrupt";
    case PollMode::kAdaptive: return "adaptive";
    case PollMode::kBusy: return "busy";
  }
  return "?";
}

Status ParsePollMode(const std::string& v, PollMode* mode, uint32_t* spin_us) {
  if (v == "busy") {
    *mode = PollMode::kBusy;
  } else if (v == "interrupt") {
    *mode = PollMode::kInterrupt;
  } else if (v == "adaptive") {
    *mode = PollMode::kAdaptive;
  } else if (v.rfind("adaptive:", 0) == 0) {
    const std::string digits = v.substr(9);
    const bool numeric = !digits.empty() && digits.size() <= 7 &&
                         digits.find_first_not_of("0123456789") == std::string::npos;
    const uint64_t us = numeric ? std::stoull(digits) : 0;
    if (us < 1 || us > 1000000)
      return Error{"poll adaptive:US needs US in 1..1000000 microseconds, not '" + v.substr(9) +
                   "'"};
    *mode = PollMode::kAdaptive;
    *spin_us = static_cast<uint32_t>(us);
  } else {
    return Error{"poll must be busy, adaptive[:US] or interrupt, not '" + v + "'"};
  }
  return {};
}

Result<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options) {
  if (options.socket_path.empty()) return Error{"backend: --socket PATH is required"};
  if (options.queue_pairs == 0 || options.queue_pairs > 64)
    return Error{"backend: queue pairs must be 1..64, got " + std::to_string(options.queue_pairs)};
  bool known = false;
  for (const auto& n : iotlb::DesignNames()) known |= n == options.iotlb;
  if (!known) {
    return Error{"backend: unknown IOTLB design '" + options.iotlb +
                 "' (available: " + absl::StrJoin(iotlb::DesignNames(), ", ") + ")"};
  }
  return std::unique_ptr<Backend>(new BackendImpl(options));
}

}  // namespace vhostlab::backend
