"""Experiment runs from Python: the same runs as ``vhostlab run``, as tidy DataFrames.

Each run executes on its own C++ thread (``_core.RunHandle``) with the GIL released; this
module polls its progress into a tqdm bar. Ctrl-C (KeyboardInterrupt) sets the run's stop flag:
the run ends early with a valid record, which is returned with a ``RunInterrupted`` warning and
``df.attrs["interrupted"] = True``; a second Ctrl-C abandons the wait (the run thread is still
stopped and joined, never left behind).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from . import _core
from ._results import RUN_COLUMNS, RUN_EXTRA_COLUMNS, record_to_frame

try:
    from tqdm import tqdm  # the text bar: works in terminals and notebooks without ipywidgets
except ImportError:  # tqdm is optional at runtime; without it runs simply show no bar
    tqdm = None

# The settings a run takes, from the C++ run-settings table (core/experiment/settings.hpp):
# the same names as RunConfig's fields, the record's "config" keys and the CLI's settings.
_CONFIG_FIELDS = [s["name"] for s in _core.run_settings()]


class RunInterrupted(UserWarning):
    """A run was stopped early by Ctrl-C; its (shorter) results are still valid."""


def have_run_experiment() -> bool:
    """Always True: every build binds experiment::RunExperiment (core/experiment/run.cpp).
    Kept so notebooks written against earlier builds keep running."""
    return True


def run_settings() -> pd.DataFrame:
    """The run settings, one row each (the C++ table that also drives the CLI flags, the
    profiles and the records): name, type, key (in profiles), flag (of ``vhostlab run``),
    default, allowed, help."""
    return pd.DataFrame(_core.run_settings(),
                        columns=["name", "type", "key", "flag", "default", "allowed", "help"])


def config_fields() -> list[str]:
    """The RunConfig settings this build knows (the `vhostlab run` options)."""
    return list(_CONFIG_FIELDS)


def load_profile(name_or_path: str | os.PathLike) -> dict:
    """Loads a workload profile exactly as ``vhostlab run --profile`` does (the C++ loader):
    a path, or a name looked up as profiles/<name>.toml. Returns a dict with name,
    description, path and runs (one RunConfig per point of the profile's [sweep])."""
    return _core.load_profile(str(name_or_path))


def _apply(cfg: "_core.RunConfig", values: dict) -> "_core.RunConfig":
    unknown = sorted(set(values) - set(_CONFIG_FIELDS))
    if unknown:
        raise TypeError(f"unknown run setting(s) {unknown}; valid: {_CONFIG_FIELDS}")
    for k, v in values.items():
        # The C++ setter parses and range-checks (ValueError naming the setting).
        setattr(cfg, k, v)
    return cfg


def run_configs(profile: str | os.PathLike | None = None, **kwargs: Any) -> list:
    """RunConfigs from a profile (one per sweep point) and/or keyword arguments (kwargs win).

    Keywords: profile, backend ("self" | "dpdk" | "socket:PATH"), iotlb (design name), iommu,
    mapping ("static" | "lazy" | "strict" | "cold"), page_size (4096, "4k", "2m"), packets,
    seconds, queue_pairs, ring_size, packet_size, packet_sizes (a mix: [64, 1500, 9000] or
    "64,1500,9000"), event_idx, mrg_rxbuf, rx_buffer_size, mode, traffic ("stream" | "drain":
    the backend timed alone on whole rings), seed, counters (event names), and the
    front-end knobs scatter, mem_regions, hugepages, flush_batch, working_set (bytes or
    "256m"), storm_interval, storm_burst, cpus, timeout_seconds, dpdk_testpmd: every row of
    run_settings(), checked by the same parser as the CLI's flags. An unknown keyword is a
    TypeError; an unknown design or a value out of range a ValueError naming the setting.
    """
    bases = load_profile(profile)["runs"] if profile is not None else [_core.RunConfig()]
    return [_apply(base, dict(kwargs)) for base in bases]


def run_config(profile: str | os.PathLike | None = None, **kwargs: Any) -> "_core.RunConfig":
    """One RunConfig (see run_configs); a profile with a [sweep] is a ValueError here."""
    configs = run_configs(profile, **kwargs)
    if len(configs) != 1:
        raise ValueError(f"profile {profile} expands to {len(configs)} runs; use run_configs()")
    return configs[0]


def _label(cfg: "_core.RunConfig") -> str:
    design = cfg.iotlb if cfg.iommu else "iommu-off"
    return f"{cfg.backend}/{design}/{cfg.mapping}"


def _execute(cfg: "_core.RunConfig", progress: bool) -> tuple[pd.DataFrame, bool]:
    handle = _core.RunHandle(cfg)
    bar = tqdm(total=100, desc=_label(cfg), unit="%", leave=False,
               disable=not progress) if tqdm is not None else None
    interrupted = False
    try:
        try:
            while not handle.wait(0.1):
                if bar is not None:
                    bar.n = round(100 * handle.progress(), 1)
                    bar.refresh()
        except KeyboardInterrupt:
            interrupted = True
            handle.request_stop()
            while not handle.wait(0.1):
                pass
        record = handle.result()
    finally:
        if bar is not None:
            bar.close()
    # The record as the C++ writes it (RunRecord::ToJson): one serializer for files and frames.
    text = record.to_json()
    doc = json.loads(text)
    df = record_to_frame(doc)
    df.attrs["context"] = doc["context"]
    df.attrs["config"] = doc["config"]
    df.attrs["notes"] = doc["notes"]
    df.attrs["json"] = text
    df.attrs["interrupted"] = interrupted
    if interrupted:
        warnings.warn(f"run {_label(cfg)} interrupted: results cover the part that ran",
                      RunInterrupted, stacklevel=3)
    return df, interrupted


def run(profile: str | os.PathLike | None = None, *, progress: bool = True,
        **kwargs: Any) -> pd.DataFrame:
    """Runs one experiment (front-end + backend) and returns its tidy DataFrame.

    ``vhostlab.run(backend="self", iotlb="radix", mapping="static", packets=100_000)`` or
    ``vhostlab.run(profile="profiles/default.toml", packets=1000)`` (a profile with a [sweep]
    runs every point, concatenated). Columns: design, profile, backend, queue (-1 = whole run),
    side, metric, value, unit, available, note (+ mapping, iommu, page_size, source).
    ``df.attrs`` holds the record's context, config, notes and JSON. Counters this machine
    cannot read are rows with available=False and value NaN, never 0.
    """
    configs = run_configs(profile, **kwargs)
    return _run_all(configs, progress, desc="runs")


def _run_all(configs: list, progress: bool, desc: str) -> pd.DataFrame:
    if len(configs) == 1:
        df, _ = _execute(configs[0], progress)
        return df
    frames = []
    outer = tqdm(configs, desc=desc, unit="run", disable=not progress) \
        if tqdm is not None else configs
    interrupted = False
    try:
        for cfg in outer:
            df, interrupted = _execute(cfg, progress)
            frames.append(df)
            if interrupted:
                break
    finally:
        if hasattr(outer, "close"):
            outer.close()
    out = pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=RUN_COLUMNS + RUN_EXTRA_COLUMNS)
    out.attrs["interrupted"] = interrupted
    out.attrs["runs"] = len(frames)
    out.attrs["records"] = [f.attrs.get("json", "") for f in frames]
    return out


def compare(designs: Sequence[str] | None = None, *, iommu_off: bool = True,
            profile: str | os.PathLike | None = None, progress: bool = True,
            **kwargs: Any) -> pd.DataFrame:
    """Runs the same workload once per IOTLB design (and once with the IOMMU off, as the
    baseline, when ``iommu_off``) and returns all rows in one DataFrame.

    ``designs``: names (default: every registered design). Other keywords as in run().
    Ctrl-C stops the current run early and skips the rest; what ran is returned (with a
    RunInterrupted warning).
    """
    names = list(designs) if designs is not None else list(_core.designs())
    configs = []
    if iommu_off:
        configs += run_configs(profile, **{**kwargs, "iommu": False})
    for d in names:
        configs += run_configs(profile, **{**kwargs, "iotlb": d, "iommu": True})
    return _run_all(configs, progress, desc="compare")


def ratio_to_baseline(df: pd.DataFrame, metric: str, baseline: str = "off",
                      queue: int = -1) -> pd.DataFrame:
    """``metric`` per design divided by the baseline design's (e.g. Mpps with vs without
    the IOMMU), whole-run rows only. NaN where either side is unavailable."""
    rows = df[(df["metric"] == metric) & (df["queue"] == queue)]
    by = rows.groupby("design", sort=False)["value"].median()
    base = by.get(baseline, math.nan)
    return pd.DataFrame({"design": by.index, metric: by.values,
                         "ratio": by.values / base if base else math.nan})
