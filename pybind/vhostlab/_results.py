"""Tidy DataFrames from run records and Google Benchmark JSON.

Run records (``RunRecord::ToJson``, ``vhostlab run --json``) look like::

    {"schema_version": 1, "config": {"profile", "backend", "iotlb", "iommu", "mapping", ...},
     "context": {...}, "metrics": [{"queue", "side", "name", "value", "unit", "available",
     "note"}, ...]}

and become one row per metric. A file may also hold a list of records, or an object with a
"runs"/"records" list. Benchmark results become one row per (benchmark, measurement), with the
``BM_Translate/<design>/<dispatch>/<entries>/<pattern>/<page>`` name split into columns; two
forms are read: raw Google Benchmark JSON (``{"context": ..., "benchmarks": [...]}``) and the
summaries bench/run_iotlb_bench.py writes to results/bench/iotlb_<suite>.json
(``{"schema_version", "suite", "context", "rows": [{"bench", "design", ..., "ns_per_op",
"ns_min", "ns_max", "counter_<name>"}]}``). The CI gate's callgrind baseline
(results/bench/iotlb_gate_baseline.json: ``{"command", "lookups", "context", "results":
{"<design>/<entries>-<pattern>-<page>": {"ir_per_lookup", ...}}}``) loads the same way, family
"gate": deterministic instruction and simulated cache-miss counts per lookup, which exist even
where the machine has no PMU.

An unavailable metric keeps ``value`` NaN (JSON null) and ``available`` False.

``vhostlab compare --json-dir DIR`` also writes ``DIR/<profile>-compare.json`` (``"kind":
"vhostlab-compare"``: each round's order, the warm-up, and per configuration its runs, median,
ratio to IOMMU off and Mann-Whitney p-value). ``load_comparison(path)`` reads it, one row per
configuration; ``load_results(DIR)`` skips it and loads the run records beside it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

RUN_COLUMNS = ["design", "profile", "backend", "queue", "side", "metric", "value", "unit",
               "available", "note"]
RUN_EXTRA_COLUMNS = ["mapping", "iommu", "page_size", "source"]

BENCH_COLUMNS = ["family", "design", "dispatch", "entries", "pattern", "page", "kind", "readers",
                 "name", "run_type", "aggregate", "metric", "value", "unit", "note", "source"]

# Google Benchmark's own fields: everything else numeric in a benchmark entry is a user counter.
_BENCH_STANDARD = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "label", "error_occurred", "error_message",
}
# Field order of BM_Translate names (bench/ writes them so they parse into columns).
_TRANSLATE_FIELDS = ["design", "dispatch", "entries", "pattern", "page"]


def design_label(config: dict) -> str:
    """The comparison label of a run: the IOTLB design (also of a trace replay), the foreign
    backend, or "off"."""
    if not config.get("iommu", True):
        return "off"
    backend = str(config.get("backend", "self"))
    if backend not in ("self", "replay"):
        return backend.split(":", 1)[0]
    return str(config.get("iotlb", ""))


def _value(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def record_to_frame(record: dict, source: str = "") -> pd.DataFrame:
    """One run record (a dict in the RunRecord JSON schema) as a tidy DataFrame."""
    config = record.get("config", {})
    m = pd.DataFrame(record.get("metrics", []))
    if m.empty:
        return pd.DataFrame(columns=RUN_COLUMNS + RUN_EXTRA_COLUMNS)

    def column(name: str, default: Any) -> pd.Series:
        return m[name] if name in m else pd.Series(default, index=m.index, dtype=object)

    # Older records name the metric "metric" instead of "name".
    names = column("name", None).fillna(column("metric", ""))
    available = column("available", True).fillna(True).astype(bool)
    values = pd.to_numeric(column("value", None), errors="coerce").astype(float)
    out = pd.DataFrame({
        "design": design_label(config),
        "profile": config.get("profile", ""),
        "backend": config.get("backend", ""),
        "queue": pd.to_numeric(column("queue", -1)).fillna(-1).astype(int),
        "side": column("side", "").fillna(""),
        "metric": names,
        "value": values.where(available),  # never a fake number for an unavailable metric
        "unit": column("unit", "").fillna(""),
        "available": available,
        "note": column("note", "").fillna(""),
        "mapping": config.get("mapping", ""),
        "iommu": bool(config.get("iommu", True)),
        "page_size": config.get("page_size", math.nan),
        "source": source,
    }, index=m.index)
    return out[RUN_COLUMNS + RUN_EXTRA_COLUMNS]


def _split_bench_name(name: str) -> dict:
    parts = name.split("/")
    out = {"family": parts[0]}
    if parts[0] == "BM_Translate":
        for field, part in zip(_TRANSLATE_FIELDS, parts[1:]):
            out[field] = part
    elif len(parts) > 1:
        out["design"] = parts[1]
    return out


def bench_to_frame(doc: dict, source: str = "") -> pd.DataFrame:
    """Google Benchmark JSON as a tidy DataFrame (real_time, cpu_time and user counters)."""
    rows = []
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b.get("name", ""))
        base = {"name": b.get("name", ""), "run_type": b.get("run_type", "iteration"),
                "aggregate": b.get("aggregate_name", ""), "source": source}
        base.update(_split_bench_name(name))
        time_unit = b.get("time_unit", "ns")
        for metric in ("real_time", "cpu_time"):
            if metric in b:
                rows.append({**base, "metric": metric, "value": _value(b[metric]), "unit": time_unit})
        for key, v in b.items():
            if key not in _BENCH_STANDARD and isinstance(v, (int, float)) and not isinstance(v, bool):
                rows.append({**base, "metric": key, "value": float(v), "unit": ""})
    df = pd.DataFrame(rows, columns=BENCH_COLUMNS)
    if not df.empty:
        df["entries"] = pd.to_numeric(df["entries"], errors="coerce")
    df.attrs["context"] = doc.get("context", {})
    return df


def bench_summary_to_frame(doc: dict, source: str = "") -> pd.DataFrame:
    """results/bench/iotlb_<suite>.json (bench/run_iotlb_bench.py) as a tidy DataFrame:
    ns_per_op (median over repetitions), ns_min, ns_max and each counter_<name> as <name>.
    A benchmark that failed is one row with metric "error", NaN and the message in note."""
    rows = []
    for r in doc.get("rows", []):
        base = {"family": r.get("bench", ""), "name": r.get("name", ""), "run_type": "summary",
                "aggregate": "median" if r.get("repetitions", 1) > 1 else "",
                "source": source, "note": ""}
        for key in ("design", "dispatch", "entries", "pattern", "page", "kind", "readers"):
            if key in r:
                base[key] = r[key]
        if "error" in r:
            rows.append({**base, "metric": "error", "value": math.nan, "unit": "",
                         "note": str(r["error"])})
            continue
        for key, unit in (("ns_per_op", "ns"), ("ns_min", "ns"), ("ns_max", "ns")):
            if key in r:
                rows.append({**base, "metric": key, "value": _value(r[key]), "unit": unit})
        for key, v in r.items():
            if key.startswith("counter_"):
                rows.append({**base, "metric": key[len("counter_"):], "value": _value(v), "unit": ""})
    df = pd.DataFrame(rows, columns=BENCH_COLUMNS)
    if not df.empty:
        df["entries"] = pd.to_numeric(df["entries"], errors="coerce")
    df.attrs["context"] = doc.get("context", {})
    return df


def gate_to_frame(doc: dict, source: str = "") -> pd.DataFrame:
    """A callgrind gate baseline (bench/gate: per lookup or per packet) as a tidy DataFrame, one
    row per count."""
    rows = []
    for key, counts in doc.get("results", {}).items():
        design, _, case = key.partition("/")
        parts = case.split("-")
        base = {"family": "gate", "design": design, "name": key, "run_type": "callgrind",
                "aggregate": "", "source": source, "note": "valgrind callgrind (simulated caches)"}
        if len(parts) == 3 and parts[0].isdigit():
            base.update(entries=int(parts[0]), pattern=parts[1], page=parts[2])
        for metric, v in counts.items():
            per = metric.rsplit("_per_", 1)[1] if "_per_" in metric else "lookup"
            rows.append({**base, "metric": metric, "value": _value(v), "unit": f"count/{per}"})
    df = pd.DataFrame(rows, columns=BENCH_COLUMNS)
    if not df.empty:
        df["entries"] = pd.to_numeric(df["entries"], errors="coerce")
    df.attrs["context"] = {**doc.get("context", {}), "command": doc.get("command", ""),
                           "lookups": doc.get("lookups")}
    return df


COMPARISON_COLUMNS = ["profile", "backend", "design", "label", "iommu", "baseline", "runs",
                      "median_mpps", "min_mpps", "max_mpps", "ratio", "u", "p_value", "exact",
                      "testable", "significant", "verdict", "positions", "source"]


def _is_comparison(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "vhostlab-compare"


def comparison_to_frame(doc: dict, source: str = "") -> pd.DataFrame:
    """A ``<profile>-compare.json`` summary as a DataFrame, one row per configuration
    (COMPARISON_COLUMNS; ``design`` as in run frames: the IOTLB design, "off" or "dpdk").
    ``attrs`` keep the rest: rounds, alpha, test, warmup, order (labels per round), context."""
    rows = []
    for c in doc.get("configurations", []):
        runs = c.get("runs", [])
        rows.append({
            "profile": doc.get("profile", ""),
            "backend": c.get("backend", ""),
            "design": design_label(c),
            "label": c.get("label", ""),
            "iommu": bool(c.get("iommu", True)),
            "baseline": c.get("baseline") or "",
            "runs": len(runs),
            **{k: _value(c.get(k)) for k in ("median_mpps", "min_mpps", "max_mpps", "ratio", "u",
                                              "p_value")},
            "exact": bool(c.get("exact", False)),
            "testable": bool(c.get("testable", False)),
            "significant": bool(c.get("significant", False)),
            "verdict": c.get("verdict", ""),
            "positions": [r.get("position") for r in runs],
            "source": source,
        })
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    df.attrs = {k: doc.get(k) for k in ("rounds", "alpha", "test", "warmup", "order", "context")}
    return df


def load_comparison(path: str | os.PathLike) -> pd.DataFrame:
    """Loads the summary of ``vhostlab compare --json-dir DIR``: ``path`` is DIR (every
    ``*-compare.json`` in it, e.g. one per profile of ``--profile all``) or one such file.
    One row per configuration (see comparison_to_frame); ``attrs`` come from the first file."""
    p = Path(path)
    files = sorted(p.glob("*-compare.json")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no *-compare.json in {p} (written by vhostlab compare --json-dir)")
    frames = []
    for f in files:
        with open(f) as fh:
            doc = json.load(fh)
        if not _is_comparison(doc):
            raise ValueError(f"{f}: not a vhostlab compare summary")
        frames.append(comparison_to_frame(doc, source=str(f)))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    out.attrs = frames[0].attrs
    return out


def _records_in(doc: Any) -> Iterable[dict] | None:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in ("runs", "records"):
            if isinstance(doc.get(key), list):
                return doc[key]
        if "metrics" in doc:
            return [doc]
    return None


def _load_one(path: Path) -> tuple[str, pd.DataFrame]:
    with open(path) as f:
        doc = json.load(f)
    if _is_comparison(doc):
        raise ValueError(f"{path}: a vhostlab compare summary; read it with load_comparison")
    if isinstance(doc, dict) and "benchmarks" in doc:
        return "bench", bench_to_frame(doc, source=str(path))
    if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
        return "bench", bench_summary_to_frame(doc, source=str(path))
    if isinstance(doc, dict) and isinstance(doc.get("results"), dict):
        return "bench", gate_to_frame(doc, source=str(path))
    records = _records_in(doc)
    if records is None:
        raise ValueError(f"{path}: neither a vhostlab run record nor benchmark results")
    frames = [record_to_frame(r, source=str(path)) for r in records]
    return "run", pd.concat(frames, ignore_index=True) if frames else record_to_frame({})


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Loads saved results as a tidy DataFrame.

    ``path``: a JSON file, or a directory whose ``*.json`` files are all loaded (sorted by
    name). Run records give RUN_COLUMNS (+ mapping, iommu, page_size, source); Google Benchmark
    files give BENCH_COLUMNS. Mixing both kinds in one directory is a ValueError: load them
    separately. In a directory, ``vhostlab compare``'s ``*-compare.json`` summaries are
    skipped (load_comparison reads them).
    """
    p = Path(path)
    # *.raw.json are run_iotlb_bench.py's intermediate files (removed once summarised).
    files = sorted(f for f in p.glob("*.json")
                   if not f.name.endswith((".raw.json", "-compare.json"))) \
        if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no *.json files in {p}")
    kinds, frames = set(), []
    for f in files:
        kind, df = _load_one(f)
        kinds.add(kind)
        frames.append(df)
    if len(kinds) > 1:
        raise ValueError(f"{p} mixes run records and benchmark results; load them separately")
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) == 1:
        out.attrs = frames[0].attrs
    return out
