// Python bindings of the counter collector (core/counters/). Readings cross as dicts so the
// Python side can build tidy DataFrames; an unavailable reading's value is NaN, never 0.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/base/log.hpp"
#include "core/counters/counters.hpp"
#include "core/counters/tsc.hpp"
#include "pybind/bindings.hpp"

namespace py = pybind11;

namespace vhostlab::pybind {
namespace {

py::dict ReadingDict(const counters::Reading& r) {
  py::dict d;
  d["event"] = r.event;
  d["kind"] = counters::EventKindName(r.kind);
  d["value"] = r.value;
  d["raw"] = r.available ? py::object(py::int_(r.raw)) : py::object(py::none());
  d["unit"] = r.unit;
  d["available"] = r.available;
  d["multiplexed"] = r.multiplexed;
  d["running_fraction"] = r.running_fraction;
  d["note"] = r.note;
  return d;
}

// The inverse of ReadingDict (a row of CounterSession.read()), for sum_readings.
counters::Reading ReadingFromDict(const py::dict& d) {
  counters::Reading r;
  r.event = d["event"].cast<std::string>();
  const std::string kind = d["kind"].cast<std::string>();
  bool known = false;
  for (counters::EventKind k :
       {counters::EventKind::kHardware, counters::EventKind::kSoftware, counters::EventKind::kTsc})
    if (kind == counters::EventKindName(k)) r.kind = k, known = true;
  if (!known) throw py::value_error("unknown counter kind '" + kind + "'");
  r.value = d["value"].cast<double>();
  r.raw = d.contains("raw") && !d["raw"].is_none() ? d["raw"].cast<uint64_t>() : 0;
  r.unit = d["unit"].cast<std::string>();
  r.available = d["available"].cast<bool>();
  r.multiplexed = d["multiplexed"].cast<bool>();
  r.running_fraction = d["running_fraction"].cast<double>();
  r.note = d["note"].is_none() ? "" : d["note"].cast<std::string>();
  return r;
}

class PySession {
 public:
  explicit PySession(const std::vector<std::string>& events) {
    auto s = counters::Session::Create(events);
    if (!s) throw py::value_error(s.error().message);
    session_ = std::make_unique<counters::Session>(std::move(s.value()));
  }
  void Attach(int tid, const std::string& label) {
    if (Status s = session_->Attach(tid, label); !s) throw py::value_error(s.message());
  }
  void Start() {
    if (Status s = session_->Start(); !s) throw std::runtime_error(s.message());
  }
  void Stop() {
    if (Status s = session_->Stop(); !s) throw std::runtime_error(s.message());
  }
  py::list Read() const {
    auto all = session_->ReadAll();
    if (!all) throw std::runtime_error(all.error().message);
    py::list rows;
    for (const auto& tr : all.value()) {
      for (const counters::Reading& r : tr.readings) {
        py::dict d = ReadingDict(r);
        d["thread"] = tr.label;
        d["tid"] = tr.tid;
        rows.append(d);
      }
    }
    return rows;
  }
  std::vector<std::string> Events() const { return session_->event_names(); }

 private:
  std::unique_ptr<counters::Session> session_;
};

}  // namespace

void RegisterCounters(py::module_& m) {
  m.def(
      "sum_readings",
      [](const std::vector<std::vector<py::dict>>& per_thread) {
        std::vector<std::vector<counters::Reading>> in;
        for (const auto& thread : per_thread) {
          in.emplace_back();
          for (const py::dict& d : thread) in.back().push_back(ReadingFromDict(d));
        }
        py::list out;
        for (const counters::Reading& r : counters::SumReadings(in)) out.append(ReadingDict(r));
        return out;
      },
      py::arg("per_thread"),
      "The same events summed over threads (counters::SumReadings, what run records use): "
      "per_thread is one list of reading dicts per thread, in the same event order. A sum is "
      "available only when every part is (else NaN, with that part's note); multiplexed when "
      "any part is (the lowest running_fraction); for tsc, a wall clock, the longest window.");
  m.def("default_events", &counters::DefaultEvents,
        "The default event set: hardware (cycles, instructions, branch-misses, "
        "L1-dcache-load-misses, LLC-load-misses, dTLB-load-misses), software (task-clock, "
        "page-faults, context-switches, cpu-migrations) and 'tsc'.");
  m.def(
      "resolve_events",
      [](const std::vector<std::string>& names) {
        auto specs = counters::ResolveEvents(names);
        if (!specs) throw py::value_error(specs.error().message);
        py::list out;
        for (const auto& s : specs.value()) {
          py::dict d;
          d["event"] = s.name;
          d["pfm_name"] = s.pfm_name;
          d["kind"] = counters::EventKindName(s.kind);
          d["unit"] = s.unit;
          out.append(d);
        }
        return out;
      },
      py::arg("names"),
      "Resolves event names with libpfm4. ValueError naming the first unknown event.");
  m.def(
      "probe_events",
      [](const std::vector<std::string>& names) {
        py::list out;
        for (const auto& st : counters::ProbeEvents(names)) {
          py::dict d;
          d["event"] = st.name;
          d["pfm_name"] = st.pfm_name;
          d["kind"] = st.pfm_name.empty() ? "unknown" : counters::EventKindName(st.kind);
          d["available"] = st.available;
          d["reason"] = st.reason;
          d["sample"] = st.sample;
          d["unit"] = st.unit;
          out.append(d);
        }
        return out;
      },
      py::arg("names") = std::vector<std::string>{},
      "Opens each event alone on the calling thread over a short loop and reports whether it "
      "counts here and, when not, why (what `vhostlab counters` prints). Unknown names are "
      "reported, not raised.");
  m.def(
      "list_threads",
      [](int pid) {
        auto threads = counters::ListThreads(pid);
        if (!threads) throw py::value_error(threads.error().message);
        std::vector<std::pair<int, std::string>> out;
        for (const auto& t : threads.value()) out.emplace_back(t.tid, t.name);
        return out;
      },
      py::arg("pid") = 0,
      "(tid, name) of every thread of process `pid` (0 = this one), e.g. to count "
      "dpdk-testpmd's forwarding lcores ('rte-worker-N') with counters(tids=...).");
  m.def("have_hardware_pmu", &counters::HaveHardwarePmu,
        "True when the kernel exposes a hardware PMU (/sys/bus/event_source/devices/cpu*).");
  m.def("perf_event_paranoid", &counters::PerfEventParanoid,
        "/proc/sys/kernel/perf_event_paranoid (-100 when unreadable).");
  m.def(
      "gettid", [] { return static_cast<int>(syscall(SYS_gettid)); },
      "The kernel thread id of the calling thread.");
  m.def(
      "set_log_level",
      [](const std::string& level) {
        if (level == "error")
          LogThreshold() = LogLevel::kError;
        else if (level == "warn")
          LogThreshold() = LogLevel::kWarn;
        else if (level == "info")
          LogThreshold() = LogLevel::kInfo;
        else if (level == "debug")
          LogThreshold() = LogLevel::kDebug;
        else
          throw py::value_error("log level must be error, warn, info or debug");
      },
      py::arg("level"),
      "Threshold of the C++ library's stderr log (process-wide): error, warn, info, debug.");
  m.def("read_tsc", &counters::ReadTsc, "One `lfence; rdtsc` timestamp (ticks).");
  m.def(
      "tsc_info",
      [] {
        const auto& c = counters::TscClock::Get();
        py::dict d;
        d["hz"] = c.hz;
        d["invariant"] = c.invariant;
        d["calibration_spread"] = c.calibration_spread;
        d["description"] = c.Describe();
        return d;
      },
      "The TSC's calibrated rate and whether it is invariant (calibrated once per process).");

  py::class_<PySession>(m, "CounterSession",
                        "perf_event groups over one or more threads (low level; use "
                        "vhostlab.counters()).")
      .def(py::init<const std::vector<std::string>&>(), py::arg("events"),
           "Resolves the events (empty = default set); ValueError for an unknown name.")
      .def("attach", &PySession::Attach, py::arg("tid"), py::arg("label"),
           "Opens the events on thread `tid` (0 = the calling thread). Events this machine "
           "cannot count are kept as unavailable. ValueError when the thread does not exist.")
      .def("start", &PySession::Start, "Resets and enables every group.")
      .def("stop", &PySession::Stop, "Disables every group; later reads are stable.")
      .def("read", &PySession::Read,
           "One dict per (thread, event): thread, tid, event, kind, value (NaN when "
           "unavailable, scaled when multiplexed), raw, unit, available, multiplexed, "
           "running_fraction, note.")
      .def_property_readonly("events", &PySession::Events);
}

}  // namespace vhostlab::pybind
