// The device: the design-independent part (pause handshake, wake-ups, worker exit) and, per
// IOTLB design D, DeviceImpl<D>: the IOTLB its workers translate through and the workers
// themselves. MakeDevice picks D once, by name, from the design registry.
//
// A worker is three parts (worker_env.hpp says what they share): the loop (worker.hpp), the
// translator (translator.hpp: IOTLB, memory table, chain walks, MISSes) and the virtio-net
// device (net_device.hpp). They are templates included here only, so the datapath is compiled
// (and inlined) once per design in this file.
#include "core/backend/device.hpp"

#include <sys/eventfd.h>

#include <thread>
#include <absl/strings/str_join.h>

#include "core/backend/worker.hpp"
#include "core/backend/worker_env.hpp"
#include "core/iotlb/registry.hpp"
#include "core/iotlb/replicated.hpp"
#include "core/topology/cpuset.hpp"

namespace vhostlab::backend {

using iotlb::Perm;

// ---- Device (design-independent part) -------------------------------------------------------

void WorkerControl::Wake() { SignalEventFd(wake.get()); }

Device::Device(const BackendOptions& options, Counters* counters, trace::Writer* recorder)
    : counters_(counters), recorder_(recorder), backend_channel_(counters, recorder) {
  const uint32_t queue_pairs = options.queue_pairs;
  config_.mode = options.mode;
  config_.poll = options.poll;
  config_.spin_ns = uint64_t{options.spin_us} * 1000;
  for (uint32_t i = 0; i < 2 * queue_pairs; ++i) {
    queues_.push_back(std::make_unique<QueueState>());
    queues_.back()->index = i;
  }
  for (uint32_t i = 0; i < queue_pairs; ++i) {
    controls_.push_back(std::make_unique<WorkerControl>());
    controls_.back()->wake = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }
}

std::vector<int> Device::WorkerTids() const {
  std::vector<int> out;
  for (const auto& c : controls_) out.push_back(c->tid.load());
  return out;
}

void Device::Pause(uint32_t pair) {
  WorkerControl& c = *controls_[pair];
  std::unique_lock<std::mutex> lock(c.mu);
  c.pause_requested.store(true, std::memory_order_release);
  c.Wake();
  c.cv.wait(lock, [&] { return c.paused || c.exited; });
}

void Device::Resume(uint32_t pair) {
  WorkerControl& c = *controls_[pair];
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.pause_requested.store(false, std::memory_order_release);
  }
  c.cv.notify_all();
}

void Device::PauseAll() {
  // Request all first so the workers park in parallel.
  for (auto& c : controls_) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->pause_requested.store(true, std::memory_order_release);
    c->Wake();
  }
  for (uint32_t i = 0; i < controls_.size(); ++i) Pause(i);
}

void Device::ResumeAll() {
  for (uint32_t i = 0; i < controls_.size(); ++i) Resume(i);
}

void Device::WakeIotlbWaiters() {
  iotlb_epoch_.fetch_add(1, std::memory_order_seq_cst);
  for (auto& c : controls_)
    if (c->waiting_for_iotlb.load(std::memory_order_seq_cst)) c->Wake();
}

void Device::StopWorkers() {
  for (auto& c : controls_) {
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->exit = true;
      c->pause_requested.store(true, std::memory_order_release);
    }
    c->cv.notify_all();
    c->Wake();
  }
}

// ---- DeviceImpl<D>: the device for one IOTLB design ------------------------------------------

namespace {

template <iotlb::Design D>
class DeviceImpl final : public Device {
 public:
  DeviceImpl(const BackendOptions& options, Counters* counters, trace::Writer* recorder,
             WorkerThreads threads)
      : Device(options, counters, recorder) {
    backend_channel_.SetMinApplied([this] { return iotlb_.MinAppliedSeq(); });
    if (threads == WorkerThreads::kCallerDriven) {
      caller_driven_.resize(options.queue_pairs);
      return;
    }
    for (uint32_t p = 0; p < options.queue_pairs; ++p) {
      // Placement (BackendOptions::worker_cpus): each worker binds itself before it runs.
      const int cpu = options.worker_cpus.empty()
                          ? -1
                          : options.worker_cpus[p % options.worker_cpus.size()];
      threads_.emplace_back([this, p, cpu] {
        if (cpu >= 0)
          if (Status s = topology::BindThisThreadToCpus({cpu}); !s.ok())
            VL_WARN("worker %u: %s", p, s.message().c_str());
        Worker<D>(Env(p)).Run();
      });
    }
  }
  ~DeviceImpl() override {
    StopWorkers();
    for (auto& t : threads_) t.join();
  }

  iotlb::InsertStatus IotlbUpdate(iotlb::IovaRange range, uint64_t uaddr, Perm perm) override {
    iotlb::InsertStatus s = iotlb_.Insert(range, uaddr, perm);
    backend_channel_.NoteUpdate(range, iotlb_.last_seq());
    WakeIotlbWaiters();
    return s;
  }
  void IotlbInvalidate(iotlb::IovaRange range) override {
    iotlb_.Invalidate(range);
    WakeIotlbWaiters();
  }
  std::string_view design() const override { return D::kName; }
  std::size_t IotlbEntries() const override { return iotlb_.Size(); }
  bool RunWorkerPass(uint32_t pair) override {
    if (pair >= caller_driven_.size()) return false;  // a device with worker threads
    auto& w = caller_driven_[pair];
    if (!w) w = std::make_unique<Worker<D>>(Env(pair));
    return w->Pass();
  }

 private:
  WorkerEnv<D> Env(uint32_t pair) {
    return WorkerEnv<D>{config_,          *controls_[pair], *counters_,
                        counters_->queues[pair], queue(2 * pair), queue(2 * pair + 1),
                        iotlb_,           iotlb_epoch_,     backend_channel_,
                        recorder_};
  }

  iotlb::Replicated<D> iotlb_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Worker<D>>> caller_driven_;  // before iotlb_ goes: readers first
};

}  // namespace

Result<std::unique_ptr<Device>> MakeDevice(const BackendOptions& options, Counters* counters,
                                           trace::Writer* recorder, WorkerThreads threads) {
  const std::string_view design = options.iotlb;
  std::unique_ptr<Device> device;
  const bool found = iotlb::VisitDesign(design, [&]<iotlb::Design D>() {
    device = std::make_unique<DeviceImpl<D>>(options, counters, recorder, threads);
  });
  if (!found) {
    return Error{"unknown IOTLB design '" + std::string(design) + "' (available: " +
                 absl::StrJoin(iotlb::DesignNames(), ", ") + ")"};
  }
  return device;
}

}  // namespace vhostlab::backend
