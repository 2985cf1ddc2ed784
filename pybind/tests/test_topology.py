"""hwloc topology from Python: agrees with the OS, binding works."""

import os
import threading

import pytest

import vhostlab


def test_topology_agrees_with_os():
    t = vhostlab.topology()
    assert t.pus == os.cpu_count()
    assert len(t.cores) >= 1
    pus = [pu for c in t.cores for pu in c["pus"]]
    assert len(pus) == len(set(pus)) == t.pus  # every PU in exactly one core
    caches = t.caches_frame()
    assert {"level", "type", "size_bytes", "shared_by"} <= set(caches.columns)
    l1d = caches[(caches["level"] == 1) & (caches["type"] == "data")]
    assert len(l1d) >= 1 and (l1d["shared_by"] == 1).all() and (l1d["size_bytes"] > 0).all()
    assert t.context()["cores"] == str(len(t.cores))
    assert "core 0" in repr(t)


def test_bind_thread_to_each_core():
    t = vhostlab.topology()
    for core in t.cores:
        seen = []

        def pinned():
            t.bind_this_thread_to_core(core["core"])
            seen.append((os.sched_getaffinity(0), t.current_cpu()))

        th = threading.Thread(target=pinned)
        th.start()
        th.join()
        affinity, cpu = seen[0]
        assert affinity == set(core["pus"])
        assert cpu in core["pus"]


def test_bind_out_of_range_is_a_value_error():
    t = vhostlab.topology()
    with pytest.raises(ValueError, match="out of range"):
        t.bind_this_thread_to_core(len(t.cores))
