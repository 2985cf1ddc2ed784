"""The counter collector from Python: software events count, unavailable ones are NaN."""

import math
import threading

import numpy as np
import pytest

import vhostlab
from vhostlab import _core

HAVE_PMU = _core.have_hardware_pmu()


def busy(n=300_000):
    return float(np.sqrt(np.arange(n, dtype=np.float64)).sum())


def test_context_manager_default_set():
    with vhostlab.counters() as c:
        busy()
    df = c.to_frame()
    assert list(df["event"]) == list(_core.default_events())
    assert set(df.columns) >= {"thread", "event", "value", "unit", "available", "note"}
    tc = df[df["event"] == "task-clock"].iloc[0]
    assert tc["available"] and tc["value"] > 0 and tc["unit"] == "ns"
    tsc = df[df["event"] == "tsc"].iloc[0]
    assert tsc["available"] and tsc["value"] > 0
    for _, row in df.iterrows():
        if not row["available"]:
            assert math.isnan(row["value"]), row["event"]
            assert row["note"].startswith("unavailable"), row["note"]


@pytest.mark.skipif(HAVE_PMU, reason="this machine has a hardware PMU")
def test_hardware_events_are_unavailable_not_zero_without_a_pmu():
    with vhostlab.counters(["cycles", "instructions", "task-clock"]) as c:
        busy()
    df = c.to_frame().set_index("event")
    for ev in ("cycles", "instructions"):
        assert not df.loc[ev, "available"]
        assert math.isnan(df.loc[ev, "value"])
        assert "no PMU" in df.loc[ev, "note"]
    assert math.isnan(c.value("cycles"))
    assert df.loc["task-clock", "available"]


@pytest.mark.skipif(not HAVE_PMU, reason="no hardware PMU here")
def test_hardware_events_count_with_a_pmu():
    with vhostlab.counters(["cycles", "instructions"]) as c:
        busy()
    assert c.value("cycles") > 0 and c.value("instructions") > 0


def test_unknown_event_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="not-a-real-event"):
        vhostlab.counters(["task-clock", "not-a-real-event"])


def test_per_unit_and_totals():
    with vhostlab.counters(["task-clock", "page-faults", "cycles"]) as c:
        busy()
    raw = c.to_frame().set_index("event")
    per = c.to_frame(per=1000, per_unit="op", total=True)
    assert set(per["thread"]) == {"caller", "total"}
    row = per[(per["thread"] == "caller") & (per["event"] == "task-clock")].iloc[0]
    assert row["unit"] == "ns/op"
    assert row["value"] == pytest.approx(raw.loc["task-clock", "value"] / 1000)
    cyc = per[per["event"] == "cycles"]
    assert (cyc["available"] == raw.loc["cycles", "available"]).all()
    if not raw.loc["cycles", "available"]:
        assert cyc["value"].isna().all()


def test_attach_to_another_thread_counts_that_thread():
    ready, go, done = threading.Event(), threading.Event(), threading.Event()
    tid = []

    def worker():
        tid.append(threading.get_native_id())
        ready.set()
        go.wait(10)
        busy(2_000_000)
        done.set()

    th = threading.Thread(target=worker)
    th.start()
    assert ready.wait(10)
    c = vhostlab.counters(["task-clock", "context-switches"], tids=tid, labels=["worker"])
    with c:
        go.set()
        assert done.wait(30)
    th.join()
    df = c.to_frame()
    assert list(df["thread"].unique()) == ["worker"]
    assert df[df["event"] == "task-clock"]["value"].iloc[0] > 1e6  # the worker's own CPU time
    assert c.value("task-clock", thread="worker") == df[df["event"] == "task-clock"]["value"].iloc[0]


def test_list_threads_finds_a_python_thread():
    ready, done = threading.Event(), threading.Event()
    th = threading.Thread(target=lambda: (ready.set(), done.wait(10)), name="vl-py-worker")
    th.start()
    assert ready.wait(10)
    threads = dict(vhostlab.list_threads())
    assert th.native_id in threads
    assert threading.get_native_id() in threads
    done.set()
    th.join()
    with pytest.raises(ValueError):
        vhostlab.list_threads(2**30 - 1)


def test_rows_before_start_is_an_error():
    c = vhostlab.counters(["task-clock"])
    with pytest.raises(RuntimeError):
        c.rows()


def test_probe_counters_lists_every_event_with_a_reason():
    df = vhostlab.probe_counters(["task-clock", "cycles", "nope-event"])
    assert list(df["event"]) == ["task-clock", "cycles", "nope-event"]
    assert df.loc[0, "available"] and df.loc[0, "sample"] > 0
    assert not df.loc[2, "available"] and "nope-event" in df.loc[2, "reason"]
    assert df.loc[2, "kind"] == "unknown"
    for _, row in df.iterrows():
        assert row["available"] or row["reason"]


def test_tsc_info():
    info = _core.tsc_info()
    assert 1e8 < info["hz"] < 1e10
    assert "GHz" in info["description"]
    a = _core.read_tsc()
    assert _core.read_tsc() > a


def test_check_translations_catches_a_wrong_answer():
    from vhostlab._microbench import IOVA_BASE, PAGE, check_translations, filled_table, lookup_iovas
    t = filled_table("reference", 16)
    iovas = lookup_iovas(16, 100, "random", seed=3)
    check_translations(t, iovas)
    t.insert(IOVA_BASE, 16 * PAGE, 0x1000, "rw")  # remap everything elsewhere
    with pytest.raises(RuntimeError, match="expected uaddr"):
        check_translations(t, iovas)


def test_measure_translate_reports_counters_per_translation():
    df = vhostlab.measure_translate(["reference", "radix"], entries=[256], lookups=20_000,
                                    events=["task-clock", "cycles"], repeats=1)
    assert set(df["design"]) == {"reference", "radix"}
    for design in ("reference", "radix"):
        d = df[df["design"] == design].set_index("metric")
        assert d.loc["hit_rate", "value"] == 1.0
        assert d.loc["ns/translation", "value"] > 0
        assert d.loc["task-clock/translation", "unit"] == "ns/translation"
        if not d.loc["cycles/translation", "available"]:
            assert math.isnan(d.loc["cycles/translation", "value"])
