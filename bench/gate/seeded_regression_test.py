#!/usr/bin/python3
"""ctest gate_catches_seeded_regression: proof that both instruction-count gates can fail.

The *_seeded drivers are the gate drivers built with VHOSTLAB_SEEDED_REGRESSION
(core/base/seeded_regression.hpp): VHOSTLAB_SEEDED_PACKET_WORK extra instructions per packet in
the backend's datapath, about 3% of a hash/direct-4k packet, and VHOSTLAB_SEEDED_LOOKUP_WORK per
lookup in the hash designs' Translate, about 3% of a hash lookup. Each gate first runs its
normal driver from the same tree to make a reference baseline (in a temporary file, so neither
the committed baseline nor changes not yet baselined can mask or fake the seeded work), then
runs the seeded driver against it, and this test asserts that it
  - exits non-zero, and
  - names every key whose growth must exceed the gate's tolerance: datapath keys whose baseline
    Ir per packet is small enough that the packet work alone exceeds it (with a 10% margin), and
    every hash and hash-absl lookup key;
  - names no key the seeded lookup work cannot reach (lookup gate: only hash, hash-absl and
    microcache-hash run BasicHash::Translate).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def seeded_work(name):
    text = open(os.path.join(REPO, "core", "base", "seeded_regression.hpp")).read()
    return int(re.search(rf"#define {name} (\d+)", text).group(1))


def run_gate(script, build_dir, driver, baseline, *extra):
    cmd = ["/usr/bin/python3", os.path.join(HERE, script), "--build-dir", build_dir,
           "--driver", os.path.join(build_dir, "bench", driver), "--baseline", baseline, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    named = set()
    for line in proc.stdout.splitlines():
        if line.startswith("regressed keys:"):
            named = set(line.split(":", 1)[1].split())
    return proc.returncode, named


def check(label, code, named, must, may):
    ok = True
    if code != 1:
        print(f"FAIL {label}: the gate exited {code} on a seeded regression (expected 1)")
        ok = False
    if missing := sorted(must - named):
        print(f"FAIL {label}: the gate did not name {', '.join(missing)}")
        ok = False
    if extra := sorted(named - may):
        print(f"FAIL {label}: the gate named keys the seeded work cannot reach: {', '.join(extra)}")
        ok = False
    if ok:
        print(f"ok {label}: exit {code}, named {len(named)} keys ({len(must)} required)")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="seeded-gate-")

    def reference(script, driver, name):
        path = os.path.join(tmp, name)
        code, _ = run_gate(script, args.build_dir, driver, path, "--update-baseline",
                           "--reason", "reference for the seeded-regression test")
        if code != 0:
            raise SystemExit(f"{script} on {driver} failed (exit {code})")
        return path

    packet_work = seeded_work("VHOSTLAB_SEEDED_PACKET_WORK")
    dp_base_path = reference("datapath_gate.py", "datapath_gate", "datapath.json")
    dp_base = json.load(open(dp_base_path))
    tol = dp_base.get("tolerance", 0.01)
    must = {k for k, v in dp_base["results"].items()
            if packet_work / v["ir_per_packet"] > 1.1 * tol}
    code, named = run_gate("datapath_gate.py", args.build_dir, "datapath_gate_seeded",
                           dp_base_path)
    ok = check("datapath gate", code, named, must, set(dp_base["results"]))

    lk_base_path = reference("iotlb_gate.py", "iotlb_gate", "iotlb.json")
    lk_base = json.load(open(lk_base_path))
    keys = set(lk_base["results"])
    must = {k for k in keys if k.split("/")[0] in ("hash", "hash-absl")}
    may = {k for k in keys if k.split("/")[0] in ("hash", "hash-absl", "microcache-hash")}
    code, named = run_gate("iotlb_gate.py", args.build_dir, "iotlb_gate_seeded", lk_base_path)
    ok &= check("lookup gate", code, named, must, may)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
