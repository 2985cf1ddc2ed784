#!/usr/bin/python3
"""Deterministic instruction-count gate for IOTLB lookups.

Runs the fixed-iteration driver (target iotlb_gate) under callgrind with a pinned cache geometry
(valgrind misreads this VM's L3), reads one profile part per (design, workload), and reports
instructions (Ir) and simulated D1/LL read misses per lookup. Wall-clock numbers are noisy on
shared machines; these counts are identical run to run, so the gate can be strict:

    /usr/bin/python3 bench/gate/iotlb_gate.py --build-dir build            # check
    /usr/bin/python3 bench/gate/iotlb_gate.py --build-dir build --update-baseline

Fails (exit 1) when any baseline key's Ir per lookup grows by more than --tolerance (5%), when
a baselined key disappears, or when the driver reports a wrong translation. Keys new since the
baseline are listed and pass. Only Ir is gated; miss counts are informational.
"""
import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

CACHE_GEOMETRY = ["--I1=32768,8,64", "--D1=49152,12,64", "--LL=33554432,16,64"]


def parse_part(path):
    name, events, totals = None, None, None
    with open(path) as f:
        for line in f:
            if line.startswith("desc: Trigger: Client Request: "):
                name = line.split(": ", 3)[-1].strip()
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                totals = [int(x) for x in line.split()[1:]]
    if not (name and events and totals):
        return None, None
    return name, dict(zip(events, totals))


def run_driver(build_dir, lookups):
    driver = os.path.join(build_dir, "bench", "iotlb_gate")
    if not os.access(driver, os.X_OK):
        sys.exit(f"{driver} not found: build target iotlb_gate first")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--cache-sim=yes",
               *CACHE_GEOMETRY, f"--callgrind-out-file={out}", driver, f"--lookups={lookups}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            sys.exit(f"driver failed under valgrind (exit {proc.returncode})")
        results = {}
        for part in glob.glob(out + ".*"):
            name, totals = parse_part(part)
            if name is None:
                continue
            results[name] = {
                "ir_per_lookup": totals.get("Ir", 0) / lookups,
                "d1_read_miss_per_lookup": totals.get("D1mr", 0) / lookups,
                "ll_read_miss_per_lookup": totals.get("DLmr", 0) / lookups,
            }
        return cmd, results


def context(build_dir):
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    compiler = None
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if os.path.exists(cache):
        m = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", open(cache).read(), re.M)
        if m:
            compiler = (sh(m.group(1), "--version") or "").splitlines()[0:1]
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "valgrind": sh("valgrind", "--version"), "compiler": compiler,
            "git_sha": sh("git", "-C", repo, "rev-parse", "HEAD"),
            "cache_geometry": CACHE_GEOMETRY}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--baseline", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "results", "bench", "iotlb_gate_baseline.json"))
    ap.add_argument("--lookups", type=int, default=20000)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--update-baseline", action="store_true")
    ap.add_argument("--out", help="also write the current counts here (JSON)")
    args = ap.parse_args()

    cmd, results = run_driver(args.build_dir, args.lookups)
    if not results:
        sys.exit("no profile parts found: did the driver run under callgrind?")
    record = {"schema_version": 1, "command": " ".join(cmd), "lookups": args.lookups,
              "context": context(args.build_dir), "results": dict(sorted(results.items()))}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    if args.update_baseline:
        with open(args.baseline, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        print(f"baseline written: {args.baseline} ({len(results)} keys)")
        return 0

    with open(args.baseline) as f:
        baseline = json.load(f)["results"]
    failed = False
    print(f"{'design/workload':40} {'base Ir':>10} {'now Ir':>10} {'change':>8}")
    for key in sorted(set(baseline) | set(results)):
        base = baseline.get(key, {}).get("ir_per_lookup")
        now = results.get(key, {}).get("ir_per_lookup")
        if base is None:
            print(f"{key:40} {'-':>10} {now:10.1f}   new (not gated)")
            continue
        if now is None:
            print(f"{key:40} {base:10.1f} {'-':>10}   MISSING")
            failed = True
            continue
        change = now / base - 1.0
        verdict = "REGRESSION" if change > args.tolerance else ""
        failed |= change > args.tolerance
        print(f"{key:40} {base:10.1f} {now:10.1f} {change:+7.1%} {verdict}")
    print("gate:", "FAILED" if failed else "passed", f"(tolerance {args.tolerance:.0%} on Ir/lookup)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
