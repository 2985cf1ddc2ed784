"""Translate-only measurements of IOTLB designs, with counters per translation.

Each measurement fills a fresh table of one design with ``entries`` 4 KiB mappings (IOVA pages
contiguous, host pages deliberately not, so no translation can be joined across entries), then
runs ``lookups`` translations in one C++ loop (``Iotlb.translate_batch``, GIL released, one
virtual call per lookup through iotlb::AnyIotlb) inside a counter session. The TSC of the
counter session times it, so time and counters describe the same window. Correctness comes
first: before timing, a sample of the lookups is checked against the expected host address (a
wrong hit raises); a miss is allowed only for capacity-limited designs that evicted entries,
which the ``hit_rate`` row shows.

This is the quick, in-process view for notebooks; bench/ (Google Benchmark) is the rigorous one.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import _core
from ._counters import Counters

IOVA_BASE = 0x1_0000_0000
UADDR_BASE = 0x7F00_0000_0000
PAGE = 4096
MICRO_COLUMNS = ["design", "entries", "pattern", "metric", "value", "unit", "available", "note"]


def lookup_iovas(entries: int, lookups: int, pattern: str, seed: int) -> np.ndarray:
    """IOVAs to translate: 'sequential' (page after page, wrapping), 'random' (uniform over the
    mapped pages) or 'hot' (a ring-like hot set of 64 pages, the locality of a virtqueue)."""
    rng = np.random.default_rng(seed)
    if pattern == "sequential":
        pages = np.arange(lookups, dtype=np.uint64) % np.uint64(entries)
    elif pattern == "random":
        pages = rng.integers(0, entries, size=lookups, dtype=np.uint64)
    elif pattern == "hot":
        hot = rng.integers(0, entries, size=min(64, entries), dtype=np.uint64)
        pages = hot[np.arange(lookups) % hot.size]
    else:
        raise ValueError(f"pattern must be sequential, random or hot, not {pattern!r}")
    offsets = rng.integers(0, PAGE - 64, size=lookups, dtype=np.uint64)
    return np.uint64(IOVA_BASE) + pages * np.uint64(PAGE) + offsets


def filled_table(design: str, entries: int) -> "_core.Iotlb":
    t = _core.Iotlb(design)
    for i in range(entries):
        # Host pages two apart: never contiguous, so each lookup answers from one entry.
        t.insert(IOVA_BASE + i * PAGE, PAGE, UADDR_BASE + 2 * i * PAGE, "rw")
    return t


def check_translations(table: "_core.Iotlb", iovas: np.ndarray, samples: int = 256) -> None:
    """Raises RuntimeError when a sampled lookup hits with the wrong host address or length."""
    for iova in iovas[:: max(1, len(iovas) // samples)]:
        iova = int(iova)
        t = table.translate(iova, 8, "r")
        if not t.hit:
            continue
        page, offset = divmod(iova - IOVA_BASE, PAGE)
        expected = UADDR_BASE + 2 * page * PAGE + offset
        if t.uaddr != expected or t.len != 8:
            raise RuntimeError(f"{table.design}: translate({iova:#x}) gave {t!r}, "
                               f"expected uaddr {expected:#x} len 8")


def measure_translate(designs: Sequence[str] | None = None, entries: Iterable[int] = (1024,),
                      lookups: int = 200_000, pattern: str = "random",
                      events: Sequence[str] | None = None, repeats: int = 3,
                      seed: int = 1) -> pd.DataFrame:
    """Tidy DataFrame per (design, entries): ns/translation (TSC), hit_rate, bytes/entry, and
    each counter per translation (median over ``repeats``). Unavailable counters stay rows with
    available=False and NaN."""
    designs = list(designs) if designs is not None else list(_core.designs())
    events = list(events) if events is not None else list(_core.default_events())
    if "tsc" not in events:
        events.append("tsc")
    hz = _core.tsc_info()["hz"]
    rows = []
    for n in entries:
        iovas = lookup_iovas(n, lookups, pattern, seed)
        for design in designs:
            table = filled_table(design, n)
            check_translations(table, iovas)
            table.translate_batch(iovas[: min(lookups, 4096)])  # warm caches and page tables
            per_repeat = []
            hits = 0
            for _ in range(repeats):
                c = Counters(events)
                with c:
                    result = table.translate_batch(iovas)
                hits = result["hits"]
                per_repeat.append(c.to_frame(per=lookups, per_unit="translation"))
            frame = pd.concat(per_repeat)
            per_event = frame.groupby("event", sort=False).agg(
                available=("available", "all"), value=("value", "median"),
                unit=("unit", "first"),
                note=("note", lambda notes: "; ".join(sorted(set(notes) - {""}))))
            per_event["value"] = per_event["value"].where(per_event["available"])
            per_event = per_event.reset_index().assign(
                design=design, entries=n, pattern=pattern,
                metric=lambda d: d["event"] + "/translation")
            rows += per_event.drop(columns="event").to_dict("records")
            if "tsc" in per_event["event"].values:
                tsc = per_event[per_event["event"] == "tsc"].iloc[0]
                rows.append({"design": design, "entries": n, "pattern": pattern,
                             "metric": "ns/translation", "value": tsc["value"] * 1e9 / hz,
                             "unit": "ns", "available": bool(tsc["available"]),
                             "note": f"TSC at {hz / 1e9:.3f} GHz"})
            rows.append({"design": design, "entries": n, "pattern": pattern,
                         "metric": "hit_rate", "value": hits / lookups, "unit": "",
                         "available": True,
                         "note": "" if hits == lookups else "capacity-limited design evicted entries"})
            rows.append({"design": design, "entries": n, "pattern": pattern,
                         "metric": "bytes/entry", "value": table.memory_bytes() / max(1, len(table)),
                         "unit": "B", "available": True, "note": ""})
    return pd.DataFrame(rows, columns=MICRO_COLUMNS)
