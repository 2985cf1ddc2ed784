#!/usr/bin/python3
"""Plots a `vhostlab compare --json-dir DIR` result: DIR/compare.png (Mpps and ratio vs IOMMU off).

Ratios that the comparison's Mann-Whitney U test finds within noise (DIR/*-compare.json) are
drawn hatched and labelled "~1.00x (n.s.)", as in the table.

usage: PYTHONPATH=build/pybind /usr/bin/python3 tools/plot_compare.py DIR [--out FILE]
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import vhostlab  # noqa: E402  (after the headless backend is chosen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="directory of run records written by vhostlab compare")
    ap.add_argument("--out", type=Path, help="PNG to write [DIR/compare.png]")
    args = ap.parse_args()
    if not args.dir.is_dir():
        print(f"plot_compare: {args.dir} is not a directory", file=sys.stderr)
        return 2
    df = vhostlab.load_results(args.dir)
    out = args.out or args.dir / "compare.png"
    profile = ", ".join(sorted(set(df["profile"].astype(str))))
    # The comparison summary (p-values, run order) is there when vhostlab compare wrote it.
    comparison = vhostlab.load_comparison(args.dir) if any(args.dir.glob("*-compare.json")) \
        else None
    # Which traffic the runs had (drain: each backend timed alone; stream: the whole loop).
    traffic = sorted({json.loads(p.read_text()).get("config", {}).get("traffic", "stream")
                      for p in args.dir.glob("*-r[0-9]*.json")})
    what = {"drain": "drain traffic, each backend timed alone",
            "stream": "stream traffic, the whole loop"}
    title = f"IOTLB designs on profile '{profile}'"
    if len(traffic) == 1:
        title += f" ({what.get(traffic[0], traffic[0])})"
    vhostlab.plots.compare_summary(df, str(out), title=title, comparison=comparison)
    print(f"plot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
