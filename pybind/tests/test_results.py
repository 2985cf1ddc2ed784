"""load_results: run-record JSON (RunRecord::ToJson schema) and Google Benchmark JSON."""

import json
import math
from pathlib import Path

import pytest

import vhostlab
from vhostlab._results import BENCH_COLUMNS

REPO = Path(__file__).resolve().parents[2]

RECORD = {
    "schema_version": 1,
    "config": {"profile": "adhoc", "backend": "self", "iotlb": "radix", "iommu": True,
               "mapping": "static", "page_size": 4096, "packets": 1000},
    "context": {"cpu": "test"},
    "notes": [],
    "metrics": [
        {"queue": -1, "side": "frontend", "name": "mpps", "value": 1.5, "unit": "Mpps",
         "available": True, "note": ""},
        {"queue": 0, "side": "backend", "name": "cycles/packet", "value": None, "unit": "count/packet",
         "available": False, "note": "unavailable: no PMU"},
    ],
}

BENCH = {
    "context": {"host_name": "x", "library_build_type": "debug"},
    "benchmarks": [
        {"name": "BM_Translate/radix/inline/2048/random/4k", "run_name": "BM_Translate/radix/inline/2048/random/4k",
         "run_type": "iteration", "iterations": 1000, "real_time": 3.5, "cpu_time": 3.4,
         "time_unit": "ns", "bytes_per_entry": 40.0},
        {"name": "BM_Insert/list/256", "run_name": "BM_Insert/list/256", "run_type": "iteration",
         "iterations": 10, "real_time": 100.0, "cpu_time": 99.0, "time_unit": "ns"},
    ],
}


def test_run_record(tmp_path):
    p = tmp_path / "run.json"
    p.write_text(json.dumps(RECORD))
    df = vhostlab.load_results(p)
    assert list(df.columns[:10]) == vhostlab.RUN_COLUMNS
    assert len(df) == 2
    mpps = df[df["metric"] == "mpps"].iloc[0]
    assert (mpps["design"], mpps["value"], mpps["queue"]) == ("radix", 1.5, -1)
    cyc = df[df["metric"] == "cycles/packet"].iloc[0]
    assert not cyc["available"] and math.isnan(cyc["value"])


def test_iommu_off_and_foreign_backends_get_their_own_design_label(tmp_path):
    off = {**RECORD, "config": {**RECORD["config"], "iommu": False}}
    dpdk = {**RECORD, "config": {**RECORD["config"], "backend": "dpdk"}}
    (tmp_path / "a.json").write_text(json.dumps([off, dpdk]))
    df = vhostlab.load_results(tmp_path)
    assert set(df["design"]) == {"off", "dpdk"}


def test_google_benchmark_json(tmp_path):
    p = tmp_path / "bench.json"
    p.write_text(json.dumps(BENCH))
    df = vhostlab.load_results(p)
    assert list(df.columns) == BENCH_COLUMNS
    tr = df[(df["family"] == "BM_Translate") & (df["metric"] == "real_time")].iloc[0]
    assert (tr["design"], tr["dispatch"], tr["entries"], tr["pattern"], tr["page"]) == \
        ("radix", "inline", 2048, "random", "4k")
    assert tr["value"] == 3.5 and tr["unit"] == "ns"
    assert "bytes_per_entry" in set(df["metric"])
    assert df.attrs["context"]["library_build_type"] == "debug"


SUMMARY = {
    "schema_version": 1, "suite": "quick", "context": {"git_sha": "abc"},
    "rows": [
        {"bench": "BM_Translate", "design": "hash", "dispatch": "virtual", "entries": 2048,
         "pattern": "uniform", "page": "4k", "name": "BM_Translate/hash/virtual/2048/uniform/4k",
         "repetitions": 3, "ns_per_op": 4.2, "ns_min": 4.0, "ns_max": 4.9,
         "counter_bytes_per_entry": 24.0},
        {"bench": "BM_Contended", "design": "radix", "readers": 2, "name": "BM_Contended/radix/2",
         "error": "needs 3 cores"},
    ],
}


def test_bench_runner_summary(tmp_path):
    p = tmp_path / "iotlb_quick.json"
    p.write_text(json.dumps(SUMMARY))
    df = vhostlab.load_results(p)
    assert list(df.columns) == BENCH_COLUMNS
    ns = df[df["metric"] == "ns_per_op"].iloc[0]
    assert (ns["family"], ns["design"], ns["dispatch"], ns["entries"], ns["pattern"]) == \
        ("BM_Translate", "hash", "virtual", 2048, "uniform")
    assert ns["value"] == 4.2 and ns["unit"] == "ns" and ns["aggregate"] == "median"
    assert df[df["metric"] == "bytes_per_entry"]["value"].iloc[0] == 24.0
    err = df[df["metric"] == "error"].iloc[0]
    assert math.isnan(err["value"]) and err["note"] == "needs 3 cores" and err["readers"] == 2
    assert df.attrs["context"]["git_sha"] == "abc"


GATE = {
    "schema_version": 1, "command": "valgrind --tool=callgrind ...", "lookups": 20000,
    "context": {"valgrind": "valgrind-3.19.0"},
    "results": {"radix/2048-uniform-4k": {"ir_per_lookup": 41.5, "d1_read_miss_per_lookup": 1.25}},
}


def test_gate_baseline(tmp_path):
    p = tmp_path / "iotlb_gate_baseline.json"
    p.write_text(json.dumps(GATE))
    df = vhostlab.load_results(p)
    ir = df[df["metric"] == "ir_per_lookup"].iloc[0]
    assert (ir["family"], ir["design"], ir["entries"], ir["pattern"], ir["page"], ir["value"]) == \
        ("gate", "radix", 2048, "uniform", "4k", 41.5)
    assert df.attrs["context"]["lookups"] == 20000


def test_mixed_directory_and_garbage_are_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(RECORD))
    (tmp_path / "b.json").write_text(json.dumps(BENCH))
    with pytest.raises(ValueError, match="separately"):
        vhostlab.load_results(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="neither"):  # not a run record, not benchmark results
        vhostlab.load_results(bad)
    with pytest.raises(FileNotFoundError):
        vhostlab.load_results(tmp_path / "empty-dir-that-is-missing")


def test_committed_bench_results_load():
    df = vhostlab.load_results(REPO / "results" / "bench")
    assert len(df) > 0
    assert df["value"].notna().any()


COMPARISON = {
    "schema_version": 1, "kind": "vhostlab-compare", "profile": "default", "metric": "mpps",
    "rounds": 5, "alpha": 0.05, "test": "Mann-Whitney U",
    "warmup": {"runs_per_backend": 1, "runs": [{"label": "off", "mpps": 2.0}]},
    "order": [["off", "radix"], ["radix", "off"]],
    "configurations": [
        {"backend": "self", "iotlb": "reference", "iommu": False, "label": "off",
         "baseline": None, "runs": [{"round": 1, "position": 1, "mpps": 2.8, "record": "a.json"},
                                    {"round": 2, "position": 2, "mpps": 2.7, "record": None}],
         "median_mpps": 2.75, "min_mpps": 2.7, "max_mpps": 2.8, "ratio": 1, "u": None,
         "p_value": None, "exact": False, "testable": False, "significant": False,
         "verdict": "1.00x"},
        {"backend": "self", "iotlb": "radix", "iommu": True, "label": "radix",
         "baseline": "off", "runs": [{"round": 1, "position": 2, "mpps": 2.9, "record": None},
                                     {"round": 2, "position": 1, "mpps": 2.85, "record": None}],
         "median_mpps": 2.875, "min_mpps": 2.85, "max_mpps": 2.9, "ratio": 1.045, "u": 4,
         "p_value": 0.33, "exact": True, "testable": True, "significant": False,
         "verdict": "~1.00x (n.s.)"},
    ],
    "context": {"cpu": "test"},
}


def test_comparison_summary_loads_and_is_skipped_by_load_results(tmp_path):
    (tmp_path / "default-compare.json").write_text(json.dumps(COMPARISON))
    (tmp_path / "default-self-radix-iommu-on-r1.json").write_text(json.dumps(RECORD))
    runs = vhostlab.load_results(tmp_path)
    assert set(runs["source"].map(lambda s: Path(s).name)) == {"default-self-radix-iommu-on-r1.json"}
    cmp = vhostlab.load_comparison(tmp_path)
    assert list(cmp["design"]) == ["off", "radix"]
    radix = cmp.iloc[1]
    assert radix["verdict"] == "~1.00x (n.s.)" and not radix["significant"]
    assert radix["p_value"] == 0.33 and radix["positions"] == [2, 1]
    assert math.isnan(cmp.iloc[0]["p_value"])
    assert cmp.attrs["order"][1] == ["radix", "off"] and cmp.attrs["rounds"] == 5
    with pytest.raises(ValueError, match="load_comparison"):
        vhostlab.load_results(tmp_path / "default-compare.json")
    with pytest.raises(FileNotFoundError):
        vhostlab.load_comparison(tmp_path / "nothing-here")


def test_compare_plot_marks_differences_within_noise(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    off = {**RECORD, "config": {**RECORD["config"], "iommu": False}}
    (tmp_path / "a.json").write_text(json.dumps([off, RECORD]))
    (tmp_path / "default-compare.json").write_text(json.dumps(COMPARISON))
    fig = vhostlab.plots.compare_summary(vhostlab.load_results(tmp_path), str(tmp_path / "c.png"),
                                         comparison=vhostlab.load_comparison(tmp_path))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert " ~1.00x (n.s.)" in texts and " 1.00x" in texts
    assert (tmp_path / "c.png").stat().st_size > 0
