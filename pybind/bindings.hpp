// Registration functions of the `vhostlab._core` extension, one per concern (one .cpp each).
#pragma once

#include <pybind11/pybind11.h>

namespace vhostlab::pybind {

void RegisterIotlb(pybind11::module_& m);
void RegisterCounters(pybind11::module_& m);
void RegisterTopology(pybind11::module_& m);
void RegisterExperiment(pybind11::module_& m);
void RegisterTrace(pybind11::module_& m);

}  // namespace vhostlab::pybind
