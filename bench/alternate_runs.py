#!/usr/bin/python3
"""Wall-clock A/B of `vhostlab run` configurations, in alternated rounds.

These VMs switch for minutes at a time between a slow and a fast state (about 3.3 or 8-12 Mpps
on `default`, for every backend alike), so a comparison is sound only within a round. Each round
runs every configuration once, in an order rotated from round to round; the summary gives each
configuration's median Mpps, its per-round ratio to the first configuration, and the front-end's
and backend's CPU time per packet (task-clock) and the packets our backend moved per worker pass
(packets_per_burst) and the share of its passes that found work (busy_passes; both nan for
DPDK) from the run records.

  bench/alternate_runs.py --rounds 6 \\
      'old=/tmp/old/vhostlab run --profile default --iommu off --packets 1000000' \\
      'new=build/vhostlab run --profile default --iommu off --packets 1000000' \\
      'dpdk=build/vhostlab run --profile default --iommu off --packets 1000000 --backend dpdk'

Each command gets `--quiet --json FILE` appended; `env VAR=... cmd` works as a prefix.
"""
import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile


def metric(record, side, name):
    for m in record["metrics"]:
        if m["side"] == side and m["name"] == name and m.get("available", True) and m["queue"] == -1:
            return m["value"]
    return math.nan


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds (each runs every configuration once)")
    ap.add_argument("configs", nargs="+", metavar="LABEL=COMMAND", help="a label and a `vhostlab run` command")
    args = ap.parse_args()
    configs = []
    for c in args.configs:
        label, sep, cmd = c.partition("=")
        if not sep or not cmd.strip():
            ap.error(f"'{c}' is not LABEL=COMMAND")
        configs.append((label, shlex.split(cmd)))
    mpps = {label: [None] * args.rounds for label, _ in configs}
    cpu = {label: [] for label, _ in configs}
    with tempfile.TemporaryDirectory(prefix="vhostlab-ab-") as tmp:
        for r in range(args.rounds):
            k = r % len(configs)
            for label, cmd in configs[k:] + configs[:k]:
                out = os.path.join(tmp, f"{label}.json")
                p = subprocess.run(cmd + ["--quiet", "--json", out], capture_output=True, text=True, timeout=600)
                if p.returncode != 0:
                    print(f"round {r}: {label} exited {p.returncode}: {p.stderr.strip()[-400:]}", file=sys.stderr)
                    continue
                with open(out) as f:
                    rec = json.load(f)
                mpps[label][r] = metric(rec, "frontend", "mpps")
                cpu[label].append((metric(rec, "frontend", "counter:task-clock/packet"),
                                   metric(rec, "backend", "counter:task-clock/packet"),
                                   metric(rec, "backend", "packets_per_burst"),
                                   metric(rec, "backend", "busy_passes")))
            print(f"round {r}: " + "  ".join(
                f"{label} {mpps[label][r]:.2f}" for label, _ in configs if mpps[label][r] is not None), flush=True)
    base = configs[0][0]
    print(f"\n{'config':14s} {'Mpps':>6s} {'ratio':>6s}  per-round ratio to {base}          task-clock ns/pkt fe / be   pkts/burst  busy passes")
    for label, _ in configs:
        got = [v for v in mpps[label] if v is not None]
        ratios = [a / b for a, b in zip(mpps[label], mpps[base]) if a is not None and b is not None]
        if not got:
            print(f"{label:14s} no successful run")
            continue
        fe = statistics.median(c[0] for c in cpu[label])
        be = statistics.median(c[1] for c in cpu[label])
        per_burst = statistics.median(c[2] for c in cpu[label])
        busy = statistics.median(c[3] for c in cpu[label])
        print(f"{label:14s} {statistics.median(got):6.2f} {statistics.median(ratios) if ratios else math.nan:6.3f}  "
              f"{' '.join(f'{x:.2f}' for x in ratios):34s} {fe:.0f} / {be:.0f}   {per_burst:10.1f}  {busy:11.2f}")
    return 0 if all(None not in v for v in mpps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
