"""Shared machinery of the instruction-count gates (iotlb_gate.py, datapath_gate.py).

A gate driver is a fixed-iteration program that, under
`valgrind --tool=callgrind --collect-atstart=no`, dumps one callgrind profile part per key
("<design>/<workload>") with only the region of interest collected, and prints one line per key,
"<key> <unit>s=<N> ...", saying how many operations (lookups, packets) the part holds. This
module runs a driver, turns the parts into counts per operation, compares them with a committed
baseline, and writes a new baseline when asked (with a reason).

Determinism. Callgrind counts are a pure function of the binary, its input and its address
space. So that the counts of one design do not move when another design changes:
  - each design runs in its own valgrind process (`--design=NAME`): a design's heap history does
    not depend on what ran before it. This matters for hash-absl: absl's SwissTable mixes the
    heap address of its control bytes into every probe position (PerTableSalt, ctrl >> 12 in
    absl 20220623), so its probe lengths depend on where the table lands;
  - the driver runs with a fixed, minimal environment (the initial stack, and with it every
    stack address, depends on the environment's size);
  - every symbol is bound at start-up (LD_BIND_NOW=1): with lazy binding, the first call of a
    library function resolves its PLT slot (~950 instructions of _dl_fixup) wherever that call
    happens, and on a loaded machine the first call moved into or out of a measured region
    (cold-4k counts moved by 957 Ir between identical runs, and the D1 misses of others with
    them);
  - the cache geometry is pinned (valgrind misreads this VM's L3).
With `--runs 2` the gate runs everything twice and fails unless every count is identical.

Rebaselining: `--update-baseline --reason "why"` prints the old and new counts of every key and
writes the baseline with the reason, the git sha, compiler and date, keeping the earlier
reasons in `history`. A reason is required: a baseline that moves says why.
"""
import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

CACHE_GEOMETRY = ["--I1=32768,8,64", "--D1=49152,12,64", "--LL=33554432,16,64"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LD_BIND_NOW": "1"}


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


def valgrind_command(driver, out, args):
    return ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--cache-sim=yes",
            *CACHE_GEOMETRY, f"--callgrind-out-file={out}", driver, *args]


def run_one(driver, args, unit):
    """Runs the driver once under callgrind; returns {key: {events..., unit: N}}."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = valgrind_command(driver, out, args)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"driver failed under valgrind (exit {proc.returncode}): "
                             + " ".join(cmd))
        ops = {}
        for line in proc.stdout.splitlines():
            m = re.match(rf"^(\S+) {unit}s=(\d+)", line)
            if m:
                ops[m.group(1)] = int(m.group(2))
        results = {}
        for part in glob.glob(out + ".*"):
            name, totals = parse_part(part)
            if name is None:
                continue
            if name not in ops:
                raise SystemExit(f"profile part {name} has no '{name} {unit}s=N' line on stdout")
            results[name] = {**totals, unit: ops[name]}
        return results


def list_designs(driver):
    proc = subprocess.run([driver, "--list"], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"{driver} --list failed: {proc.stderr}")
    return proc.stdout.split()


def run_driver(driver, extra_args, unit, jobs):
    """Every design in its own valgrind process; returns (command template, raw counts)."""
    if not os.access(driver, os.X_OK):
        raise SystemExit(f"{driver} not found: build it first")
    designs = list_designs(driver)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(lambda d: run_one(driver, [f"--design={d}", *extra_args], unit),
                             designs):
            results.update(part)
    cmd = " ".join(valgrind_command(os.path.relpath(driver, REPO), "OUT",
                                    ["--design=<each of: " + ",".join(designs) + ">",
                                     *extra_args]))
    return cmd, results


def per_op(raw, unit):
    """Raw part totals -> counts per operation (Ir, simulated D1/LL misses)."""
    out = {}
    for key, t in sorted(raw.items()):
        n = t[unit]
        out[key] = {
            f"ir_per_{unit}": t.get("Ir", 0) / n,
            f"d1_read_miss_per_{unit}": t.get("D1mr", 0) / n,
            f"d1_write_miss_per_{unit}": t.get("D1mw", 0) / n,
            f"ll_read_miss_per_{unit}": t.get("DLmr", 0) / n,
        }
    return out


def context(build_dir, driver):
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    compiler, build_type = None, None
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if os.path.exists(cache):
        text = open(cache).read()
        m = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", text, re.M)
        if m:
            compiler = (sh(m.group(1), "--version") or "").splitlines()[0:1]
        m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", text, re.M)
        build_type = m.group(1) if m else None
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    dirty = sh("git", "-C", REPO, "status", "--porcelain", "--untracked-files=no")
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpu": cpu, "kernel": os.uname().release, "arch": os.uname().machine,
                        "nproc": os.cpu_count()},
            "valgrind": sh("valgrind", "--version"), "compiler": compiler,
            "build_type": build_type, "driver": os.path.relpath(driver, REPO),
            "git_sha": sh("git", "-C", REPO, "rev-parse", "HEAD"),
            "git_dirty": bool(dirty), "cache_geometry": CACHE_GEOMETRY}


def main(description, driver_name, unit, default_baseline, default_tolerance, driver_args):
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--driver", help=f"the driver to run (default: BUILD_DIR/bench/{driver_name})")
    ap.add_argument("--baseline", default=default_baseline)
    ap.add_argument("--tolerance", type=float, default=default_tolerance,
                    help="largest allowed growth of Ir per %(default)s (fraction)".replace(
                        "%(default)s", unit))
    ap.add_argument("--runs", type=int, default=1,
                    help="run everything this many times; fail unless every count is identical")
    ap.add_argument("--jobs", type=int, default=2, help="valgrind processes at once")
    ap.add_argument("--update-baseline", action="store_true")
    ap.add_argument("--reason", help="why the baseline changes (required with --update-baseline)")
    ap.add_argument("--out", help="also write the current counts here (JSON)")
    args = ap.parse_args()
    if args.update_baseline and not (args.reason and args.reason.strip()):
        ap.error("--update-baseline needs --reason \"why the counts changed\"")

    build_dir = os.path.abspath(args.build_dir)
    driver = os.path.abspath(args.driver or os.path.join(build_dir, "bench", driver_name))
    cmd, raw = run_driver(driver, driver_args, unit, args.jobs)
    if not raw:
        raise SystemExit("no profile parts found: did the driver run under callgrind?")
    for run in range(2, args.runs + 1):
        _, again = run_driver(driver, driver_args, unit, args.jobs)
        differ = sorted(k for k in set(raw) | set(again) if raw.get(k) != again.get(k))
        if differ:
            for k in differ:
                print(f"NOT DETERMINISTIC {k}: run 1 {raw.get(k)} run {run} {again.get(k)}")
            print(f"gate: FAILED ({len(differ)} keys differ between identical runs)")
            return 1
    if args.runs > 1:
        print(f"determinism: {args.runs} runs gave identical counts for all {len(raw)} keys")
    results = per_op(raw, unit)
    ops = sorted({t[unit] for t in raw.values()})
    record = {"schema_version": 2, "command": cmd, f"{unit}s": ops[0] if len(ops) == 1 else ops,
              "tolerance": args.tolerance, "context": context(build_dir, driver),
              "results": results}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)

    try:
        with open(args.baseline) as f:
            old_doc = json.load(f)
    except FileNotFoundError:
        if not args.update_baseline:
            raise
        old_doc = {"results": {}}
    baseline = old_doc["results"]
    ir = f"ir_per_{unit}"
    failed, regressed = False, []
    print(f"{'design/workload':32} {'base Ir/' + unit:>14} {'now Ir/' + unit:>14} {'change':>8}"
          f" {'D1 miss':>8} {'LL miss':>8}")
    for key in sorted(set(baseline) | set(results)):
        base = baseline.get(key, {}).get(ir)
        now = results.get(key, {}).get(ir)
        misses = results.get(key, {})
        tail = (f" {misses.get(f'd1_read_miss_per_{unit}', 0) + misses.get(f'd1_write_miss_per_{unit}', 0):8.2f}"
                f" {misses.get(f'll_read_miss_per_{unit}', 0):8.2f}") if key in results else ""
        if base is None:
            print(f"{key:32} {'-':>14} {now:14.1f} {'new':>8}{tail}")
            continue
        if now is None:
            print(f"{key:32} {base:14.1f} {'-':>14}  MISSING")
            failed = True
            regressed.append(key)
            continue
        change = now / base - 1.0
        bad = change > args.tolerance
        failed |= bad
        if bad:
            regressed.append(key)
        print(f"{key:32} {base:14.1f} {now:14.1f} {change:+8.2%}{tail}"
              f"{'  REGRESSION' if bad else ''}")

    if args.update_baseline:
        history = list(old_doc.get("history", []))
        if "reason" in old_doc:
            history.append({k: old_doc.get(k) for k in ("reason", "date_utc", "git_sha")})
        record["reason"] = args.reason.strip()
        record["date_utc"] = record["context"]["date_utc"]
        record["git_sha"] = record["context"]["git_sha"]
        record["history"] = history
        with open(args.baseline, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        print(f"baseline written: {args.baseline} ({len(results)} keys; reason: {args.reason})")
        return 0
    if regressed:
        print("regressed keys: " + " ".join(regressed))
    print("gate:", "FAILED" if failed else "passed",
          f"(tolerance {args.tolerance:.1%} on Ir/{unit}; baseline {os.path.relpath(args.baseline)})")
    return 1 if failed else 0
