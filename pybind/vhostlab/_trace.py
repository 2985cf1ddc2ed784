"""IOTLB traces recorded by ``vhostlab backend --record FILE``.

``load_trace(path)`` reads the file (format: core/trace/trace.hpp) into a DataFrame, one row per
record, in recorded order:

=========  ===============================================================================
t_ns       nanoseconds since recording began
type       update, invalidate, miss, translate, mem_region, mem_reset, connect, access_fail
iova       IOVA (mem_region: the region's guest-physical address)
size       bytes (UPDATE/INVALIDATE size, translation length, region size; 1 for a MISS)
uaddr      UPDATE: front-end address; translation: the answer on a hit; region: its address
perm       RO, WO, RW (granted, asked or needed), or "" for none
queue      virtqueue index of a translation or MISS, -1 otherwise
outcome    translation: hit, miss or access_fail; "" otherwise
=========  ===============================================================================

``df.attrs`` has ``path``, ``truncated`` (recording hit its record limit) and ``records``.

``replay(path, designs=None, repeat=5)`` replays it on the designs (the C++ replay of
``vhostlab replay``: every translation verified against ``reference``) and returns the tidy run
DataFrame (RUN_COLUMNS), one ``replay`` row per design and metric (ns/translation, ns/update,
ns/invalidate, hits, misses, verified, ...).
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
import pandas as pd

from . import _core
from ._results import record_to_frame

MAGIC = b"VLTRACE1"
VERSION = 1
HEADER = np.dtype([("magic", "S8"), ("version", "<u4"), ("record_bytes", "<u4"),
                   ("flags", "<u8"), ("records", "<u8")])
RECORD = np.dtype([("t_ns", "<u8"), ("iova", "<u8"), ("size", "<u8"), ("uaddr", "<u8"),
                   ("type", "u1"), ("perm", "u1"), ("queue", "<u2"), ("outcome", "u1"),
                   ("pad", "V3")])
assert HEADER.itemsize == 32 and RECORD.itemsize == 40

TYPES = {1: "update", 2: "invalidate", 3: "miss", 4: "translate", 5: "mem_region",
         6: "mem_reset", 7: "connect", 8: "access_fail"}
PERMS = {0: "", 1: "RO", 2: "WO", 3: "RW"}
OUTCOMES = {0: "hit", 1: "miss", 2: "access_fail"}


def load_trace(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a trace file into a DataFrame (see the module docstring). A file that is not a
    complete version-1 trace raises ValueError saying why."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < HEADER.itemsize:
        raise ValueError(f"{path}: shorter than a trace header")
    header = raw[:HEADER.itemsize].view(HEADER)[0]
    if bytes(header["magic"]) != MAGIC:
        raise ValueError(f"{path}: not a vhostlab trace (bad magic)")
    if header["version"] != VERSION or header["record_bytes"] != RECORD.itemsize:
        raise ValueError(f"{path}: trace version {header['version']} with "
                         f"{header['record_bytes']}-byte records; this reader knows version "
                         f"{VERSION} with {RECORD.itemsize}-byte records")
    body = raw[HEADER.itemsize:]
    n = int(header["records"])
    if body.size != n * RECORD.itemsize:
        raise ValueError(f"{path}: length does not match its header's {n} records (was the "
                         f"recording stopped before the backend exited?)")
    rec = body.view(RECORD)
    bad = ~np.isin(rec["type"], list(TYPES)) | (rec["perm"] > 3) | (rec["outcome"] > 2)
    if bad.any():
        raise ValueError(f"{path}: record {int(np.argmax(bad))} is malformed")
    translate = rec["type"] == 4
    df = pd.DataFrame({
        "t_ns": rec["t_ns"].astype(np.int64),
        "type": pd.Categorical([TYPES[t] for t in rec["type"]], categories=list(TYPES.values())),
        "iova": rec["iova"],
        "size": rec["size"],
        "uaddr": rec["uaddr"],
        "perm": [PERMS[p] for p in rec["perm"]],
        "queue": np.where(rec["queue"] == 0xFFFF, -1, rec["queue"]).astype(np.int32),
        "outcome": [OUTCOMES[o] if t else "" for o, t in zip(rec["outcome"], translate)],
    })
    df.attrs.update(path=str(path), truncated=bool(int(header["flags"]) & 1), records=n)
    return df


def replay(path: str | os.PathLike, designs: Sequence[str] | None = None,
           repeat: int = 5) -> pd.DataFrame:
    """Replays the trace on ``designs`` (all when None) and returns the run DataFrame."""
    records = json.loads(_core.replay_trace(str(path), list(designs or []), int(repeat)))
    frames = [record_to_frame(r, source=str(path)) for r in records]
    return pd.concat(frames, ignore_index=True) if frames else record_to_frame({})
