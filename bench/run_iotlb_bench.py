#!/usr/bin/python3
"""Runs the IOTLB micro-benchmarks and writes a self-describing result file plus a plot.

Usage (from the repository root, after building target iotlb_bench):
    /usr/bin/python3 bench/run_iotlb_bench.py --build-dir build --suite readme

Suites (each a Google Benchmark filter; see SUITES below):
  quick   BM_Translate at 2048 random 4 KiB entries, every design: a few seconds.
  readme  the table in the README: 16..256Ki entries, uniform + hotset, 4 KiB pages, inline and
          virtual dispatch; plus seq/zipf and 2 MiB/mixed pages at 2048 entries.
  ops     BM_Insert, BM_Invalidate (page/range/all), BM_Contended.
  control the control path: BM_InsertInto and BM_Invalidate at 1 Ki, 64 Ki and 256 Ki entries,
          BM_ReplicaApply (the replica log apply), BM_Contended (INVALIDATE ack p50/p99).
  full    every registered benchmark (about 1300: long; run it on a quiet machine).

Writes results/bench/iotlb_<suite>.json: {"schema_version", "context" (machine, kernel, CPU,
compiler, build type and flags, git sha and dirty state, load average before and after, the
benchmark library's own context including its build type), "command", "rows"} where each row is
one benchmark: name split into columns (bench, design, dispatch, entries, pattern, page, kind),
median over repetitions of ns per operation, min/max over repetitions, and counters. Also writes
results/bench/iotlb_<suite>.png (ns/lookup vs entries per design) for suites that sweep entries,
and prints a Markdown table.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

SUITES = {
    "quick": r"BM_Translate/[^/]+/(inline|virtual)/2048/uniform/4k$",
    "readme": (r"BM_Translate/[^/]+/(inline|virtual)/([0-9]+/(uniform|hotset)/4k"
               r"|2048/(seq|zipf)/4k|2048/uniform/(2m|mixed))$"),
    "ops": r"BM_(Insert|Invalidate|Contended)/",
    "control": (r"BM_(InsertInto/[^/]+/(1024|65536|262144)$|Invalidate/[^/]+/[a-z]+/(1024|65536|262144)(/|$)"
                r"|ReplicaApply/|Contended/)"),
    "full": r".",
}
SCHEMA_VERSION = 1


def sh(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cmake_cache(build_dir):
    out = {}
    path = os.path.join(build_dir, "CMakeCache.txt")
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z_]+):[A-Z]+=(.*)$", line.strip())
            if m and m.group(1) in ("CMAKE_BUILD_TYPE", "CMAKE_CXX_COMPILER", "CMAKE_CXX_FLAGS",
                                    "CMAKE_CXX_FLAGS_RELEASE", "VHOSTLAB_SANITIZE", "VHOSTLAB_TSAN"):
                out[m.group(1)] = m.group(2)
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_context(build_dir, repo):
    cache = cmake_cache(build_dir)
    compiler = cache.get("CMAKE_CXX_COMPILER")
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "cpu_model": cpu_model(),
        "online_cpus": os.cpu_count(),
        "compiler": sh([compiler, "--version"]).splitlines()[0] if compiler and sh([compiler, "--version"]) else compiler,
        "cmake": cache,
        "git_sha": sh(["git", "rev-parse", "HEAD"], cwd=repo),
        "git_dirty": bool(sh(["git", "status", "--porcelain", "--", "core/iotlb", "bench"], cwd=repo)),
        "python": sys.version.split()[0],
    }


NAME_RE = re.compile(
    r"^BM_Translate/(?P<design>[^/]+)/(?P<dispatch>inline|virtual)/(?P<entries>\d+)/"
    r"(?P<pattern>[a-z]+)/(?P<page>[a-z0-9]+)$|"
    r"^BM_Insert(?:Into)?/(?P<design_i>[^/]+)/(?P<entries_i>\d+)$|"
    r"^BM_ReplicaApply/(?P<design_a>[^/]+)/(?P<op>update|invalidate)/(?P<batch>\d+)$|"
    r"^BM_Invalidate/(?P<design_v>[^/]+)/(?P<kind>page|range|all)/(?P<entries_v>\d+)$|"
    r"^BM_Contended/(?P<design_c>[^/]+)/(?P<readers>\d+)$")


def parse_name(run_name):
    base = re.sub(r"/(iterations:\d+|manual_time|repeats:\d+)", "", run_name)
    m = NAME_RE.match(base)
    if not m:
        return {"bench": base.split("/")[0]}
    g = m.groupdict()
    bench = base.split("/")[0]
    row = {"bench": bench,
           "design": g["design"] or g["design_i"] or g["design_v"] or g["design_a"] or g["design_c"]}
    if bench == "BM_Translate":
        row.update(dispatch=g["dispatch"], entries=int(g["entries"]), pattern=g["pattern"], page=g["page"])
    elif bench in ("BM_Insert", "BM_InsertInto"):
        row.update(entries=int(g["entries_i"]))
    elif bench == "BM_ReplicaApply":
        row.update(op=g["op"], batch=int(g["batch"]))
    elif bench == "BM_Invalidate":
        row.update(kind=g["kind"], entries=int(g["entries_v"]))
    else:
        row.update(readers=int(g["readers"]))
    return row


def ns_per_op(b):
    """Nanoseconds per operation: per lookup for Translate/Contended, per item otherwise (for
    ReplicaApply: per logged operation applied, from manual time)."""
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    t = b["real_time"] * scale
    if b["name"].startswith(("BM_Insert", "BM_Invalidate", "BM_ReplicaApply")) and b.get("items_per_second"):
        return 1e9 / b["items_per_second"]
    return t


def collect_rows(bench_json):
    """Groups repetitions by run_name: median/min/max of ns/op, counters from the median run
    (ack latency percentiles: median and range over repetitions)."""
    import numpy as np
    runs = {}
    errors = {}
    for b in bench_json["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            errors[b["run_name"]] = b.get("error_message")
            continue
        runs.setdefault(b["run_name"], []).append(b)
    rows = []
    for run_name, reps in runs.items():
        values = np.array([ns_per_op(b) for b in reps])
        median_idx = int(np.argsort(values)[len(values) // 2])
        med = reps[median_idx]
        row = parse_name(run_name)
        row.update(name=run_name, repetitions=len(reps), ns_per_op=float(np.median(values)),
                   ns_min=float(values.min()), ns_max=float(values.max()))
        for key in ("bytes_per_entry", "cache_miss_ratio", "entries", "invalidate_us",
                    "invalidates", "hit_ratio", "ops_per_apply"):
            if key in med:
                row["counter_" + key] = med[key]
        # Ack latency percentiles: the median over repetitions of each (not the median run's),
        # with their range.
        for key in ("invalidate_ack_p50_us", "invalidate_ack_p99_us"):
            vals = [b[key] for b in reps if key in b]
            if vals:
                row["counter_" + key] = float(np.median(vals))
                row["counter_" + key + "_min"] = float(min(vals))
                row["counter_" + key + "_max"] = float(max(vals))
        rows.append(row)
    for run_name, msg in errors.items():
        row = parse_name(run_name)
        row.update(name=run_name, error=msg)
        rows.append(row)
    return rows


def markdown_table(rows):
    tr = [r for r in rows if r.get("bench") == "BM_Translate" and "ns_per_op" in r]
    if not tr:
        return ""
    designs = []
    for r in tr:
        if r["design"] not in designs:
            designs.append(r["design"])

    def get(design, dispatch, entries, pattern, page):
        for r in tr:
            if (r["design"], r["dispatch"], r["entries"], r["pattern"], r["page"]) == (
                    design, dispatch, entries, pattern, page):
                return r
        return None

    sizes = sorted({r["entries"] for r in tr if r["pattern"] == "uniform" and r["page"] == "4k"})
    list_2048 = get("list", "inline", 2048, "uniform", "4k")
    head = (["design"] + [f"uniform {n}" for n in sizes] +
            ["virtual 2048", "hotset 2048", "B/entry", "x faster than list @2048"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in designs:
        cells = [d]
        for n in sizes:
            r = get(d, "inline", n, "uniform", "4k")
            cells.append(f"{r['ns_per_op']:.2f}" if r else "-")
        v = get(d, "virtual", 2048, "uniform", "4k")
        h = get(d, "inline", 2048, "hotset", "4k")
        i = get(d, "inline", 2048, "uniform", "4k")
        cells.append(f"{v['ns_per_op']:.2f}" if v else "-")
        cells.append(f"{h['ns_per_op']:.2f}" if h else "-")
        bpe = i.get("counter_bytes_per_entry") if i else None
        cells.append(f"{bpe:.0f}" if bpe else "-")
        cells.append(f"{list_2048['ns_per_op'] / i['ns_per_op']:.0f}x" if (i and list_2048) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_ops_table(rows):
    """Insert / invalidate / contended costs per design (ns per operation unless marked)."""
    ops = [r for r in rows if r.get("bench") in ("BM_Insert", "BM_Invalidate", "BM_Contended")
           and "ns_per_op" in r]
    if not ops:
        return ""
    designs = []
    for r in ops:
        if r["design"] not in designs:
            designs.append(r["design"])

    def get(bench, design, **kw):
        for r in ops:
            if r["bench"] == bench and r["design"] == design and all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    cols = [("insert 1Ki", "BM_Insert", dict(entries=1024)),
            ("insert 16Ki", "BM_Insert", dict(entries=16384)),
            ("inval page 16Ki", "BM_Invalidate", dict(kind="page", entries=16384)),
            ("inval 64-entry range 16Ki", "BM_Invalidate", dict(kind="range", entries=16384)),
            ("inval all 16Ki", "BM_Invalidate", dict(kind="all", entries=16384)),
            ("1 reader: ns/lookup", "BM_Contended", dict(readers=1)),
            ("2 readers: ns/lookup", "BM_Contended", dict(readers=2))]
    head = ["design"] + [c[0] for c in cols] + ["invalidate us (1 reader)", "invalidate us (2 readers)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in designs:
        cells = [d]
        for _, bench, kw in cols:
            r = get(bench, d, **kw)
            if r is None and bench == "BM_Invalidate":  # list stops at its capacity
                r = get(bench, d, kind=kw["kind"], entries=1024)
                cells.append(f"{r['ns_per_op']:.0f} (1Ki)" if r else "-")
                continue
            cells.append(f"{r['ns_per_op']:.1f}" if r else "-")
        for readers in (1, 2):
            r = get("BM_Contended", d, readers=readers)
            cells.append(f"{r['counter_invalidate_us']:.1f}" if r and "counter_invalidate_us" in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_control_tables(rows):
    """The control suite: UPDATE/INVALIDATE cost by table size, replica log apply, ack latency."""
    rs = [r for r in rows if r.get("bench") in ("BM_InsertInto", "BM_Invalidate", "BM_ReplicaApply",
                                                 "BM_Contended") and "ns_per_op" in r]
    if not any(r["bench"] in ("BM_InsertInto", "BM_ReplicaApply") for r in rs):
        return ""
    designs = []
    for r in rs:
        if r["design"] not in designs:
            designs.append(r["design"])

    def get(bench, design, **kw):
        for r in rs:
            if r["bench"] == bench and r["design"] == design and all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    def cell(r, fmt="{:.1f}", key="ns_per_op"):
        return fmt.format(r[key]) if r and r.get(key) is not None else "-"

    sizes = [(1024, "1Ki"), (65536, "64Ki"), (262144, "256Ki")]
    head = (["design"] + [f"update {s}" for _, s in sizes] + [f"inval page {s}" for _, s in sizes] +
            [f"inval 64-range {s}" for _, s in sizes] + [f"inval all {s}" for _, s in sizes])
    out = ["ns per operation (UPDATE of a new page into a table of N entries; INVALIDATE of one "
           "page, of a 64-entry range, of everything):", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in designs:
        cells = [d] + [cell(get("BM_InsertInto", d, entries=n)) for n, _ in sizes]
        for kind in ("page", "range", "all"):
            cells += [cell(get("BM_Invalidate", d, kind=kind, entries=n), "{:.0f}") for n, _ in sizes]
        out.append("| " + " | ".join(cells) + " |")
    batches = sorted({r["batch"] for r in rs if r["bench"] == "BM_ReplicaApply"})
    head = (["design"] + [f"apply update x{b}" for b in batches] + [f"apply inval x{b}" for b in batches] +
            ["ack p50/p99 us, 1 reader", "ack p50/p99 us, 2 readers"])
    out += ["", "Replica log apply (ns per logged operation, 16 Ki-entry replica) and INVALIDATE ack "
            "latency (us) while readers translate:", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in designs:
        cells = [d] + [cell(get("BM_ReplicaApply", d, op=op, batch=b)) for op in ("update", "invalidate")
                       for b in batches]
        for readers in (1, 2):
            r = get("BM_Contended", d, readers=readers)
            if r and "counter_invalidate_ack_p50_us" in r:
                cells.append(f"{r['counter_invalidate_ack_p50_us']:.1f} / {r['counter_invalidate_ack_p99_us']:.1f}")
            else:
                cells.append("-")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(rows, path):
    """ns/lookup vs entries per design: uniform random lookups (left) and the hot set (right)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("uniform", "uniform random lookups"), ("hotset", "hot set (32 ring buffers)")]
    series = {}
    for r in rows:
        if (r.get("bench") == "BM_Translate" and "ns_per_op" in r and r["dispatch"] == "inline"
                and r["page"] == "4k" and r["pattern"] in dict(panels)):
            series.setdefault((r["pattern"], r["design"]), []).append((r["entries"], r["ns_per_op"]))
    if not any(len(v) > 1 for v in series.values()):
        return False
    designs = sorted({d for _, d in series})
    colors = plt.cm.tab20.colors
    markers = "osD^v<>pPhX*"
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    for ax, (pattern, title) in zip(axes, panels):
        for i, design in enumerate(designs):
            pts = sorted(series.get((pattern, design), []))
            if len(pts) < 2:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)],
                    color=colors[(2 * i) % 20 + (2 * i // 20) % 2], label=design)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("IOTLB entries (random 4 KiB pages)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ns per lookup (median of repetitions, inline dispatch)")
    axes[1].legend(fontsize=8, ncol=2, loc="upper left")
    fig.suptitle("IOTLB translate cost vs table size (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(repo, "build"))
    ap.add_argument("--suite", choices=sorted(SUITES), default="quick")
    ap.add_argument("--filter", help="a Google Benchmark filter instead of the suite's")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds per repetition")
    ap.add_argument("--out-dir", default=os.path.join(repo, "results", "bench"))
    ap.add_argument("--taskset", help="CPU list to pin single-threaded benchmarks to (taskset -c)")
    args = ap.parse_args()

    binary = os.path.join(args.build_dir, "bench", "iotlb_bench")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} not found: build target iotlb_bench first")
    os.makedirs(args.out_dir, exist_ok=True)
    raw = os.path.join(args.out_dir, f"iotlb_{args.suite}.raw.json")
    cmd = [binary, f"--benchmark_filter={args.filter or SUITES[args.suite]}",
           f"--benchmark_repetitions={args.repetitions}", f"--benchmark_min_time={args.min_time}",
           "--benchmark_out_format=json", f"--benchmark_out={raw}"]
    bench_filter = args.filter or SUITES[args.suite]
    if args.taskset and re.search(bench_filter, "BM_Contended/hash/2"):
        # Pinning would put the contended benchmark's readers and writer on one CPU.
        print("note: not pinning (--taskset) a run that includes BM_Contended", file=sys.stderr)
    elif args.taskset:
        cmd = ["taskset", "-c", args.taskset] + cmd
    context = machine_context(args.build_dir, repo)
    context["loadavg_before"] = os.getloadavg()
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    context["loadavg_after"] = os.getloadavg()
    with open(raw) as f:
        bench_json = json.load(f)
    os.remove(raw)
    context["benchmark_library"] = bench_json["context"]
    rows = collect_rows(bench_json)
    result = {"schema_version": SCHEMA_VERSION, "suite": args.suite,
              "command": " ".join(cmd), "script": " ".join(sys.argv),
              "context": context, "rows": rows}
    out = os.path.join(args.out_dir, f"iotlb_{args.suite}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print(f"wrote {out} ({len(rows)} rows)", file=sys.stderr)
    png = os.path.join(args.out_dir, f"iotlb_{args.suite}.png")
    if plot(rows, png):
        print(f"wrote {png}", file=sys.stderr)
    tables = [markdown_table(rows), markdown_ops_table(rows), markdown_control_tables(rows)]
    if args.suite == "control":
        tables = [markdown_control_tables(rows)]
    for table in tables:
        if table:
            print(table)
            print()
    errors = [r for r in rows if "error" in r]
    for r in errors:
        print(f"ERROR {r['name']}: {r['error']}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
