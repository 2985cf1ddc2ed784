"""The counter collector as a context manager (over _core.CounterSession).

Invariant kept from the C++ side: an event the machine cannot count is a row with
``available=False``, ``value`` NaN and the reason in ``note`` -- never a 0.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd

from . import _core

COUNTER_COLUMNS = [
    "thread", "tid", "event", "kind", "value", "unit", "available", "multiplexed",
    "running_fraction", "note",
]


class Counters:
    """Hardware/software counters over a ``with`` block, on one or more threads.

    ``events``: names (libpfm4 or the friendly defaults: cycles, instructions, branch-misses,
    L1-dcache-load-misses, LLC-load-misses, dTLB-load-misses, task-clock, page-faults,
    context-switches, cpu-migrations, tsc); None = the default set. An unknown name raises
    ValueError naming it.
    ``tids``: kernel thread ids to count (e.g. a backend's worker tids); None = the calling
    thread. ``labels``: one label per tid (default "tid-N", or "caller").
    """

    def __init__(self, events: Sequence[str] | None = None, tids: Iterable[int] | None = None,
                 labels: Sequence[str] | None = None):
        self._session = _core.CounterSession(list(events or []))
        tids = list(tids) if tids is not None else [0]
        if labels is None:
            labels = ["caller" if t == 0 else f"tid-{t}" for t in tids]
        if len(labels) != len(tids):
            raise ValueError("one label per tid")
        for tid, label in zip(tids, labels):
            self._session.attach(int(tid), str(label))
        self._rows: list[dict] | None = None
        self._running = False

    @property
    def events(self) -> list[str]:
        return list(self._session.events)

    def __enter__(self) -> "Counters":
        self._rows = None
        self._session.start()
        self._running = True
        return self

    def __exit__(self, *exc) -> None:
        self._session.stop()
        self._running = False
        self._rows = self._session.read()

    def rows(self) -> list[dict]:
        """Raw readings, one dict per (thread, event); live values while inside the block."""
        if self._running:
            return self._session.read()
        if self._rows is None:
            raise RuntimeError("counters were never started (use them in a `with` block)")
        return self._rows

    def to_frame(self, per: float | None = None, per_unit: str | None = None,
                 total: bool = False) -> pd.DataFrame:
        """A tidy DataFrame, one row per (thread, event).

        ``per``: divide every value by this count (e.g. packets or translations) and append
        ``/per_unit`` to the unit. ``total``: add one row per event summed over threads
        (thread="total"; tsc takes the longest window since it is a wall clock).
        """
        df = pd.DataFrame(self.rows(), columns=COUNTER_COLUMNS)
        if total and not df.empty:
            df = pd.concat([df, _totals(df)], ignore_index=True)
        if per is not None:
            if per <= 0:
                raise ValueError("per must be positive")
            df["value"] = df["value"] / per
            suffix = f"/{per_unit}" if per_unit else f"/{per:g}"
            df["unit"] = df["unit"] + suffix
        # Unavailable stays NaN whatever arithmetic happened above.
        df.loc[~df["available"].astype(bool), "value"] = math.nan
        return df

    def value(self, event: str, thread: str | None = None) -> float:
        """One event's value (summed over threads unless ``thread``); NaN when unavailable."""
        rows = [r for r in self.rows() if r["event"] == event and (thread is None or r["thread"] == thread)]
        if not rows:
            raise KeyError(event)
        # One reading per "thread", summed by the collector's own rule (SumReadings).
        return _core.sum_readings([[r] for r in rows])[0]["value"]


def _totals(df: pd.DataFrame) -> pd.DataFrame:
    """One row per event summed over threads, by the C++ collector's own SumReadings (the
    sum run records carry): unavailable parts make the sum unavailable, tsc takes the longest
    window."""
    fields = ["event", "kind", "value", "unit", "available", "multiplexed", "running_fraction",
              "note"]
    per_thread = [g[fields].to_dict("records") for _, g in df.groupby("thread", sort=False)]
    out = pd.DataFrame(_core.sum_readings(per_thread))
    out = out.assign(thread="total", tid=-1)
    return out.reindex(columns=COUNTER_COLUMNS)


def counters(events: Sequence[str] | None = None, tids: Iterable[int] | None = None,
             labels: Sequence[str] | None = None) -> Counters:
    """``with vhostlab.counters([...]) as c: ...`` then ``c.to_frame()``. See Counters."""
    return Counters(events, tids, labels)


def probe_counters(events: Sequence[str] | None = None) -> pd.DataFrame:
    """Which counters work on this machine and why the others don't (``vhostlab counters``).

    Columns: event, kind, available, reason, sample, unit, pfm_name. Unknown names are rows
    with kind "unknown" and the libpfm4 error as the reason.
    """
    rows = _core.probe_events(list(events or []))
    return pd.DataFrame(rows, columns=["event", "kind", "available", "reason", "sample", "unit",
                                       "pfm_name"])
