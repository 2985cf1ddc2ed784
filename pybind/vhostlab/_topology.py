"""The machine's topology (hwloc) with DataFrame views."""

from __future__ import annotations

import pandas as pd

from . import _core


class Topology:
    """A snapshot of the machine: cores, caches, NUMA nodes; pins threads to cores."""

    def __init__(self) -> None:
        self._t = _core.Topology.load()

    packages = property(lambda self: self._t.packages)
    pus = property(lambda self: self._t.pus, doc="hardware threads")
    cores = property(lambda self: self._t.cores, doc="one dict per core")
    caches = property(lambda self: self._t.caches, doc="one dict per cache instance")
    numa_nodes = property(lambda self: self._t.numa_nodes)

    def bind_this_thread_to_core(self, core: int) -> None:
        """Pins the calling thread to a core (logical index). ValueError when out of range."""
        self._t.bind_this_thread_to_core(core)

    @staticmethod
    def current_cpu() -> int:
        return _core.Topology.current_cpu()

    def context(self) -> dict:
        return self._t.context()

    def cores_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.cores, columns=["core", "os_index", "numa_node", "pus"])

    def caches_frame(self) -> pd.DataFrame:
        """One row per cache instance: level, type, size_bytes, line_bytes, ways, cores, pus."""
        df = pd.DataFrame(self.caches, columns=["level", "type", "size_bytes", "line_bytes",
                                                "ways", "cores", "pus"])
        df["shared_by"] = df["cores"].map(len)
        return df

    def __repr__(self) -> str:
        return self._t.describe()


def topology() -> Topology:
    """Loads the machine's topology with hwloc."""
    return Topology()
