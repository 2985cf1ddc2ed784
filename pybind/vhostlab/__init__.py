"""vhostlab: a performance lab for the device IOTLB of vhost-user backends.

A thin Python layer over the C++ library (the private ``vhostlab._core`` extension):

- IOTLB designs by name: ``designs()``, ``Iotlb("radix")`` with insert / invalidate /
  translate / size / memory_bytes.
- The counter collector as a context manager::

      with vhostlab.counters(["cycles", "task-clock"]) as c:
          work()
      c.to_frame()   # tidy DataFrame; unavailable events: available=False, value NaN (never 0)

- The machine: ``topology()`` (hwloc cores, caches, NUMA, pinning).
- Experiments: ``run(backend="self", iotlb="radix", packets=...)`` or
  ``run(profile="profiles/default.toml")``, ``compare(designs=[...])``, both returning tidy
  DataFrames (design, profile, backend, queue, side, metric, value, unit, available, note).
- Translate-only measurements with counters per translation: ``measure_translate(...)``.
- Recorded IOTLB traces (``vhostlab backend --record``): ``load_trace(path)`` (one row per
  record) and ``replay(path, designs)`` (every design, verified against ``reference``).
- Saved results: ``load_results(path)`` for run records (``vhostlab run --json``) and Google
  Benchmark JSON (results/bench/*.json); ``load_comparison(dir)`` for the summary of
  ``vhostlab compare --json-dir dir`` (ratios to IOMMU off, Mann-Whitney p-values, run order).

Import it from the build tree without installing::

    PYTHONPATH=build/pybind /usr/bin/python3 -c "import vhostlab"
"""

from . import _core
from ._core import Iotlb, Translation, designs, list_threads
from ._counters import Counters, counters, probe_counters
from ._experiment import (RunInterrupted, compare, config_fields, have_run_experiment,
                          load_profile, ratio_to_baseline, run, run_config, run_configs,
                          run_settings)
from ._microbench import measure_translate
from ._results import RUN_COLUMNS, load_comparison, load_results, record_to_frame
from ._topology import topology
from ._trace import load_trace, replay
from . import plots

__version__ = _core.__version__

# The C++ library logs session progress at "info" (useful from the CLI, noise in a notebook);
# the package keeps warnings and errors. vhostlab.set_log_level("info") brings the rest back.
set_log_level = _core.set_log_level
set_log_level("warn")

__all__ = [
    "Counters",
    "Iotlb",
    "RUN_COLUMNS",
    "RunInterrupted",
    "Translation",
    "compare",
    "config_fields",
    "counters",
    "designs",
    "have_run_experiment",
    "list_threads",
    "load_comparison",
    "load_profile",
    "load_results",
    "load_trace",
    "measure_translate",
    "plots",
    "probe_counters",
    "ratio_to_baseline",
    "replay",
    "record_to_frame",
    "run",
    "run_config",
    "run_configs",
    "run_settings",
    "set_log_level",
    "topology",
]
