// `vhostlab._core`: the private pybind11 extension under the pure-Python `vhostlab` package.
// It binds the C++ library as it is; the Pythonic surface (context managers, DataFrames,
// progress bars) lives in pybind/vhostlab/*.py.
#include <pybind11/pybind11.h>

#include "pybind/bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "Private C++ core of the vhostlab package (IOTLB designs, counter collector, hwloc "
      "topology, experiment runs). Use the `vhostlab` package instead of importing this.";
  m.attr("__version__") = VHOSTLAB_VERSION;
  vhostlab::pybind::RegisterIotlb(m);
  vhostlab::pybind::RegisterCounters(m);
  vhostlab::pybind::RegisterTopology(m);
  vhostlab::pybind::RegisterExperiment(m);
  vhostlab::pybind::RegisterTrace(m);
}
