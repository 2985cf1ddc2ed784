// Python bindings of trace replay (core/trace/replay.hpp). The trace file itself is read in
// pure Python (vhostlab/_trace.py, numpy), so notebooks can slice it without the extension.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "core/experiment/replay_records.hpp"
#include "core/iotlb/registry.hpp"
#include "core/trace/replay.hpp"
#include "core/trace/trace.hpp"
#include "pybind/bindings.hpp"

namespace py = pybind11;

namespace vhostlab::pybind {

void RegisterTrace(py::module_& m) {
  m.def(
      "replay_trace",
      [](const std::string& path, std::vector<std::string> designs, uint32_t repeat) {
        std::string json, error;
        {
          py::gil_scoped_release release;  // a replay of every design takes seconds
          auto t = trace::Read(path);
          if (!t) {
            error = t.error().message;
          } else {
            trace::ReplayOptions o;
            o.designs = designs.empty() ? iotlb::DesignNames() : std::move(designs);
            o.repeat = repeat;
            auto r = trace::Replay(*t, o);
            if (!r) error = r.error().message;
            else json = experiment::RecordsJson(
                experiment::ReplayRecords(path, trace::Summarize(*t), *r));
          }
        }
        if (!error.empty()) throw std::invalid_argument(error);
        return json;
      },
      py::arg("path"), py::arg("designs") = std::vector<std::string>{}, py::arg("repeat") = 5,
      "Replays the trace at `path` on `designs` (all when empty); returns the run records as a "
      "JSON list (the `vhostlab replay --json` form).");
}

}  // namespace vhostlab::pybind
