// Python bindings of experiment runs (core/experiment/run.hpp).
//
// A run executes on its own C++ thread (RunHandle): Python keeps the GIL free, polls progress for
// a tqdm bar and, on Ctrl-C, sets RunConfig.stop so the run ends early with a valid record.
// The run thread never touches Python objects: progress goes through an atomic, so it needs no
// GIL and joining it while holding the GIL cannot deadlock.
//
// RunExperiment lives in core/experiment/run.cpp, profiles in core/experiment/profile.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/experiment/run.hpp"
#include "core/experiment/profile.hpp"
#include "pybind/bindings.hpp"

namespace py = pybind11;

namespace vhostlab::pybind {
namespace {

using experiment::Metric;
using experiment::RunConfig;

using experiment::RunRecord;

class RunHandle {
 public:
  explicit RunHandle(RunConfig config) : state_(std::make_shared<State>()) {
    config.progress = [s = state_](double p) { s->progress.store(p, std::memory_order_relaxed); };
    config.stop = &state_->stop;
    thread_ = std::thread([s = state_, config = std::move(config)]() mutable {
      vhostlab::Result<RunRecord> r = experiment::RunExperiment(config);
      std::lock_guard<std::mutex> lock(s->mu);
      s->result.emplace(std::move(r));
      s->cv.notify_all();
    });
  }
  RunHandle(const RunHandle&) = delete;
  RunHandle& operator=(const RunHandle&) = delete;
  ~RunHandle() {
    state_->stop = true;
    if (thread_.joinable()) thread_.join();
  }

  double Progress() const { return state_->progress.load(std::memory_order_relaxed); }
  void RequestStop() { state_->stop = true; }
  bool StopRequested() const { return state_->stop.load(); }

  // Waits up to `timeout_s` with the GIL released; true when the run has ended.
  bool Wait(double timeout_s) {
    py::gil_scoped_release release;
    std::unique_lock<std::mutex> lock(state_->mu);
    return state_->cv.wait_for(lock, std::chrono::duration<double>(timeout_s),
                               [&] { return state_->result.has_value(); });
  }
  bool Done() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->result.has_value();
  }
  RunRecord Record() {
    {
      py::gil_scoped_release release;
      if (thread_.joinable()) thread_.join();
    }
    const auto& r = *state_->result;
    if (!r.ok()) throw std::runtime_error("run failed: " + r.error().message);
    return r.value();
  }

 private:
  struct State {
    std::atomic<double> progress{0};
    std::atomic<bool> stop{false};
    mutable std::mutex mu;
    std::condition_variable cv;
    std::optional<vhostlab::Result<RunRecord>> result;
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace

void RegisterExperiment(py::module_& m) {
  py::class_<RunConfig>(m, "RunConfig",
                        "Everything that defines one run (the `vhostlab run` options).")
      .def(py::init<>())
      .def_readwrite("profile", &RunConfig::profile, "profile name (profiles/*.toml) or 'adhoc'")
      .def_readwrite("backend", &RunConfig::backend, "self | dpdk | socket:PATH")
      .def_readwrite("iotlb", &RunConfig::iotlb, "IOTLB design name (backend self)")
      .def_readwrite("iommu", &RunConfig::iommu, "negotiate VIRTIO_F_IOMMU_PLATFORM")
      .def_readwrite("mapping", &RunConfig::mapping, "static | lazy | strict | cold")
      .def_readwrite("page_size", &RunConfig::page_size, "IOMMU page size in bytes (4096 or 2 MiB)")
      .def_readwrite("packets", &RunConfig::packets, "packets per run; 0 = use seconds")
      .def_readwrite("seconds", &RunConfig::seconds)
      .def_readwrite("queue_pairs", &RunConfig::queue_pairs)
      .def_readwrite("ring_size", &RunConfig::ring_size)
      .def_readwrite("packet_size", &RunConfig::packet_size,
                     "frame bytes (virtio-net header excluded)")
      .def_readwrite("packet_sizes", &RunConfig::packet_sizes,
                     "packet-size mix: frame seq is packet_sizes[seq % n] bytes (each 30..9000); "
                     "empty = every frame packet_size bytes")
      .def_readwrite("event_idx", &RunConfig::event_idx,
                     "ack VIRTIO_RING_F_EVENT_IDX when the backend offers it")
      .def_readwrite("mrg_rxbuf", &RunConfig::mrg_rxbuf,
                     "ack VIRTIO_NET_F_MRG_RXBUF when the backend offers it")
      .def_readwrite("rx_buffer_size", &RunConfig::rx_buffer_size,
                     "MRG_RXBUF: bytes of each receive buffer, header included (0 = 1536 + 12)")
      .def_readwrite("mode", &RunConfig::mode, "loopback | sink (backend self)")
      .def_readwrite("seed", &RunConfig::seed)
      .def_readwrite("counters", &RunConfig::counters, "counter event names; empty = default set")
      // Front-end knobs that arrived with core/experiment/run.cpp.
      .def_readwrite("scatter", &RunConfig::scatter,
                     "auto | on | off: IOVA-contiguous buffers over non-adjacent guest pages")
      .def_readwrite("mem_regions", &RunConfig::mem_regions, "guest memory regions")
      .def_readwrite("hugepages", &RunConfig::hugepages, "guest memory on 2 MiB hugetlb pages")
      .def_readwrite("flush_batch", &RunConfig::flush_batch,
                     "lazy mapping: windows per deferred invalidation batch")
      .def_readwrite("poll", &RunConfig::poll,
                     "backend self: busy | adaptive[:US] | interrupt (how workers wait)")
      .def_readwrite("working_set", &RunConfig::working_set,
                     "bytes each queue pair's buffers are spread over (0: the ring's own)")
      .def_readwrite("storm_interval", &RunConfig::storm_interval,
                     "INVALIDATE storm: packets per queue between bursts (0: no storm)")
      .def_readwrite("storm_burst", &RunConfig::storm_burst,
                     "INVALIDATE storm: idle pages invalidated and remapped per burst")
      .def_readwrite("cpus", &RunConfig::cpus, "front-end queue threads' CPUs; empty = automatic")
      .def_readwrite("backend_cpus", &RunConfig::backend_cpus,
                     "self: its workers' CPUs; dpdk: testpmd's CPU; empty = automatic")
      .def_readwrite("timeout_seconds", &RunConfig::timeout_seconds, "whole-run bound")
      .def_readwrite("dpdk_testpmd", &RunConfig::dpdk_testpmd, "backend dpdk: the binary")
      ;

  py::class_<Metric>(m, "Metric", "One row of a run's tidy result (queue -1 = the whole run).")
      .def_readonly("queue", &Metric::queue)
      .def_readonly("side", &Metric::side)
      .def_readonly("name", &Metric::name)
      .def_readonly("value", &Metric::value)
      .def_readonly("unit", &Metric::unit)
      .def_readonly("available", &Metric::available)
      .def_readonly("note", &Metric::note);

  py::class_<RunRecord>(m, "RunRecord", "A run's self-describing record.")
      .def_readonly("config", &RunRecord::config)
      .def_readonly("context", &RunRecord::context, "machine, compiler, git sha, build type, ...")
      .def_readonly("metrics", &RunRecord::metrics)
      .def_readonly("notes", &RunRecord::notes, "fallbacks taken, queues that stopped early, ...")
      .def_readonly_static("SCHEMA_VERSION", &RunRecord::kSchemaVersion)
      .def("get", &RunRecord::Get, py::arg("name"), py::arg("queue") = -1,
           "A metric's value (queue -1 = whole run); NaN when absent.")
      .def("to_json", &RunRecord::ToJson,
           "The record as JSON (what `vhostlab run --json` writes).");

  py::class_<RunHandle>(m, "RunHandle",
                        "A run in progress on its own thread (low level; use vhostlab.run()).")
      .def(py::init<RunConfig>(), py::arg("config"), "Starts the run at once.")
      .def("progress", &RunHandle::Progress, "Fraction done in [0, 1], as the run reports it.")
      .def("wait", &RunHandle::Wait, py::arg("timeout_s"),
           "Waits up to timeout_s with the GIL released; True when the run has ended.")
      .def("done", &RunHandle::Done)
      .def("request_stop", &RunHandle::RequestStop,
           "Asks the run to stop early (RunConfig.stop); its record stays valid.")
      .def_property_readonly("stop_requested", &RunHandle::StopRequested)
      .def("result", &RunHandle::Record,
           "Joins the run and returns its RunRecord; RuntimeError with the reason if it failed.");

  m.def(
      "load_profile",
      [](const std::string& name_or_path) {
        auto p = experiment::LoadProfile(name_or_path);
        if (!p) throw py::value_error(p.error().message);
        py::dict d;
        d["name"] = p->name;
        d["description"] = p->description;
        d["path"] = p->path;
        d["runs"] = p->runs;
        return d;
      },
      py::arg("name_or_path"),
      "Loads a workload profile (a path, or a name looked up as profiles/<name>.toml) the way "
      "`vhostlab run --profile` does: dict with name, description, path and runs (one "
      "RunConfig per point of its [sweep]). ValueError naming file, line and key on a bad "
      "profile.");
}

}  // namespace vhostlab::pybind
