// Python bindings of the hwloc topology (core/topology/): plain lists of dicts, plus binding.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/topology/topology.hpp"
#include "pybind/bindings.hpp"

namespace py = pybind11;

namespace vhostlab::pybind {

void RegisterTopology(py::module_& m) {
  py::class_<topology::Topology>(m, "Topology", "The machine as hwloc sees it (a snapshot).")
      .def_static(
          "load",
          [] {
            auto t = topology::Topology::Load();
            if (!t) throw std::runtime_error(t.error().message);
            return std::move(t.value());
          },
          "Loads the topology with hwloc (instruction caches included).")
      .def_property_readonly("packages", &topology::Topology::packages)
      .def_property_readonly("pus", &topology::Topology::pus, "hardware threads")
      .def_property_readonly(
          "cores",
          [](const topology::Topology& t) {
            py::list out;
            for (const auto& c : t.cores()) {
              py::dict d;
              d["core"] = c.index;
              d["os_index"] = c.os_index;
              d["numa_node"] = c.numa_node;
              d["pus"] = c.pus;
              out.append(d);
            }
            return out;
          },
          "One dict per core: core (logical index), os_index, numa_node, pus.")
      .def_property_readonly(
          "caches",
          [](const topology::Topology& t) {
            py::list out;
            for (const auto& c : t.caches()) {
              py::dict d;
              d["level"] = c.level;
              d["type"] = c.type;
              d["size_bytes"] = c.size_bytes;
              d["line_bytes"] = c.line_bytes;
              d["ways"] = c.ways;
              d["cores"] = c.cores;
              d["pus"] = c.pus;
              out.append(d);
            }
            return out;
          },
          "One dict per cache instance: level, type (data, instruction, "
          "unified), size_bytes, line_bytes, ways (-1 fully associative), "
          "cores and pus sharing it.")
      .def_property_readonly("numa_nodes",
                             [](const topology::Topology& t) {
                               py::list out;
                               for (const auto& n : t.numa_nodes()) {
                                 py::dict d;
                                 d["node"] = n.index;
                                 d["os_index"] = n.os_index;
                                 d["local_memory_bytes"] = n.local_memory_bytes;
                                 d["cores"] = n.cores;
                                 out.append(d);
                               }
                               return out;
                             })
      .def(
          "bind_this_thread_to_core",
          [](const topology::Topology& t, int core) {
            if (Status s = t.BindThisThreadToCore(core); !s) throw py::value_error(s.message());
          },
          py::arg("core"), "Pins the calling thread to one core (logical index).")
      .def_static("current_cpu", &topology::Topology::CurrentCpu,
                  "The OS cpu the calling thread last ran on.")
      .def("describe", &topology::Topology::Describe)
      .def(
          "context",
          [](const topology::Topology& t) {
            py::dict d;
            for (const auto& [k, v] : t.Context()) d[py::str(k)] = v;
            return d;
          },
          "Flat description for result records (cores, pus, numa_nodes, l1d, l2, l3, ...).")
      .def("__repr__", &topology::Topology::Describe);
}

}  // namespace vhostlab::pybind
