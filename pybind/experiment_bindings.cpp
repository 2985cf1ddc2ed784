// Python bindings of experiment runs (core/experiment/run.hpp).
//
// A run executes on its own C++ thread (RunHandle): Python keeps the GIL free, polls progress for
// a tqdm bar and, on Ctrl-C, sets RunConfig.stop so the run ends early with a valid record.
// The run thread never touches Python objects: progress goes through an atomic, so it needs no
// GIL and joining it while holding the GIL cannot deadlock.
//
// RunExperiment lives in core/experiment/run.cpp, profiles in core/experiment/profile.cpp.
// RunConfig's Python properties and keywords are generated from the run-settings table
// (core/experiment/settings.hpp) and set through its parsers, so Python checks every value
// exactly as the CLI and the profiles do.
#include <absl/strings/str_join.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/experiment/profile.hpp"
#include "core/experiment/run.hpp"
#include "core/experiment/settings.hpp"
#include "pybind/bindings.hpp"

namespace py = pybind11;

namespace vhostlab::pybind {
namespace {

using experiment::Metric;
using experiment::RunConfig;

using experiment::RunRecord;

// A Python value as the text the setting's parser takes: booleans as on/off, numbers in
// decimal, sequences comma-joined; then Setting::Parse checks type and range.
void SetSetting(RunConfig& c, const experiment::Setting& s, const py::handle& v) {
  const std::string name(s.name);
  const bool on_off =
      s.type == experiment::SettingType::kOnOff || s.type == experiment::SettingType::kFlag;
  std::string text;
  if (py::isinstance<py::bool_>(v)) {
    if (!on_off) throw py::type_error(name + " takes " + s.Allowed() + ", not a bool");
    text = v.cast<bool>() ? "on" : "off";
  } else if (py::isinstance<py::str>(v)) {
    text = v.cast<std::string>();
  } else if (py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v)) {
    text = py::str(v);
  } else if (py::isinstance<py::sequence>(v)) {
    std::vector<std::string> items;
    for (const py::handle item : v) {
      std::string t = py::str(item);
      // A comma inside an item would read as two items.
      if (py::isinstance<py::bool_>(item) || t.find(',') != std::string::npos)
        throw py::value_error(name + ": '" + t + "' is not an item of " + s.Allowed());
      items.push_back(std::move(t));
    }
    text = absl::StrJoin(items, ",");
  } else {
    throw py::type_error(name + " takes " + s.Allowed() + ", not " +
                         std::string(py::str(v.get_type().attr("__name__"))));
  }
  if (Status st = s.Parse(c, text); !st.ok()) throw py::value_error(name + ": " + st.message());
}

std::string TypeName(experiment::SettingType type) {
  using T = experiment::SettingType;
  switch (type) {
    case T::kText: return "text";
    case T::kChoice: return "choice";
    case T::kDesign: return "design";
    case T::kPoll: return "poll";
    case T::kOnOff: return "on_off";
    case T::kFlag: return "flag";
    case T::kCount: return "count";
    case T::kSeconds: return "seconds";
    case T::kPageSize: return "page_size";
    case T::kSize: return "size";
    case T::kFrameSizes: return "frame_sizes";
    case T::kCpuList: return "cpu_list";
    case T::kNameList: return "name_list";
  }
  return "?";
}

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
  // RunConfig's settings come from the run-settings table: one property per row (the getter
  // returns the field, the setter goes through the table's parser, so a bad value is a
  // ValueError naming the setting and what it takes), and keyword arguments of the same names.
  py::class_<RunConfig> config(
      m, "RunConfig",
      "Everything that defines one run (the `vhostlab run` options): RunConfig(**settings), "
      "one keyword per run_settings() row.");
  config.def(py::init([](const py::kwargs& kwargs) {
               RunConfig c;
               for (const auto& [key, value] : kwargs) {
                 const std::string name = py::str(key);
                 const experiment::Setting* s = experiment::FindSetting(name);
                 if (!s) throw py::type_error("unknown run setting '" + name + "'");
                 SetSetting(c, *s, value);
               }
               return c;
             }),
             "RunConfig(**settings): the defaults, then each keyword through its setting's "
             "parser.");
#define VHOSTLAB_PY_SETTING(field, type, key, flag, metavar, min, max, choices, resets, help) \
  config.def_property(                                                                        \
      #field, [](const RunConfig& c) { return c.field; },                                     \
      [](RunConfig& c, const py::object& v) { SetSetting(c, *experiment::FindSetting(#field), v); }, \
      help);
  VHOSTLAB_RUN_SETTINGS(VHOSTLAB_PY_SETTING)
#undef VHOSTLAB_PY_SETTING

  m.def(
      "run_settings",
      [] {
        py::list rows;
        const RunConfig defaults;
        for (const experiment::Setting& s : experiment::RunSettings()) {
          py::dict d;
          d["name"] = std::string(s.name);
          d["type"] = TypeName(s.type);
          d["key"] = std::string(s.key);
          d["flag"] = std::string(s.flag);
          d["default"] = std::string(s.Text(defaults));
          d["allowed"] = s.Allowed();
          d["help"] = std::string(s.help);
          rows.append(d);
        }
        return rows;
      },
      "The run-settings table (core/experiment/settings.hpp), one dict per setting in record "
      "order: name (RunConfig field, record key and keyword), type, key (in profiles), flag "
      "(of `vhostlab run`), default (as text), allowed, help.");

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
           "The record as JSON (what `vhostlab run --json` writes; the only record writer: "
           "Python reads this rather than serializing a record itself).");

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
