#!/usr/bin/python3
"""Deterministic instruction-count gate for IOTLB lookups.

Runs the fixed-iteration driver (target iotlb_gate) under callgrind with a pinned cache geometry,
one valgrind process per design, reads one profile part per (design, workload), and reports
instructions (Ir) and simulated D1/LL misses per lookup. Wall-clock numbers are noisy on shared
machines; these counts are identical run to run (--runs 2 checks it), so the gate can be strict:

    /usr/bin/python3 bench/gate/iotlb_gate.py --build-dir build --runs 2       # check
    /usr/bin/python3 bench/gate/iotlb_gate.py --build-dir build --update-baseline --reason "why"

Fails (exit 1) when any baseline key's Ir per lookup grows by more than --tolerance (2%), when a
baselined key disappears, when two runs differ, or when the driver reports a wrong translation;
the keys that regressed are named. Keys new since the baseline are listed and pass. Only Ir is
gated; miss counts are informational. Why 2%: every count is identical run to run for one
binary; across rebuilds only hash-absl moves (by up to 0.7%: absl mixes its table's heap address
into the probe positions, see gate_common.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gate_common  # noqa: E402

if __name__ == "__main__":
    sys.exit(gate_common.main(
        __doc__, "iotlb_gate", "lookup",
        os.path.join(gate_common.REPO, "results", "bench", "iotlb_gate_baseline.json"),
        0.02, ["--lookups=20000"]))
