#!/usr/bin/python3
"""Deterministic per-packet instruction-count gate for the backend's datapath.

Runs the driver (target datapath_gate: the backend's real worker pass on pre-built rings and
IOTLB contents, in one thread; see bench/gate/datapath_gate.cpp) under callgrind with a pinned
cache geometry, one valgrind process per design, and reports instructions (Ir) and simulated
D1/LL misses per packet for every (design, workload), against
results/bench/datapath_gate_baseline.json:

    /usr/bin/python3 bench/gate/datapath_gate.py --build-dir build --runs 2    # check
    /usr/bin/python3 bench/gate/datapath_gate.py --build-dir build --update-baseline --reason "why"

Fails (exit 1) when a key's Ir per packet grows by more than --tolerance (1%), when a baselined
key disappears, when two runs differ, or when the driver sees a wrong byte, a drop or a refused
chain; the keys that regressed are named. Why 1%: the counts are identical run to run (--runs 2
checks it); the only cross-build movement measured is hash-absl's probe lengths (its lookups are
a small part of a packet: < 0.1% per packet).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gate_common  # noqa: E402

if __name__ == "__main__":
    sys.exit(gate_common.main(
        __doc__, "datapath_gate", "packet",
        os.path.join(gate_common.REPO, "results", "bench", "datapath_gate_baseline.json"),
        0.01, []))
