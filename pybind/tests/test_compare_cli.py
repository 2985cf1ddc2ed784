"""`vhostlab compare` end to end on a tiny workload: warm-up, rotated rounds, the U test's
verdicts in the table, and the summary record beside the run records."""

import json
import os
import subprocess
from pathlib import Path

import vhostlab

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VHOSTLAB_BUILD_DIR", REPO / "build"))
CLI = BUILD / "vhostlab"  # built with the package (tools/test.sh builds everything)


def test_compare_rotates_warms_up_and_tests(tmp_path):
    r = subprocess.run([str(CLI), "compare", "--designs", "hash,list", "--packets", "2000",
                        "--repeat", "4", "--warmup", "1", "--json-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warm-up (discarded): off" in r.stderr
    header = next(l for l in r.stdout.splitlines() if l.startswith("backend"))
    assert "vs off" in header and " p " in header
    rows = {l.split()[1]: l for l in r.stdout.splitlines() if l.startswith("self ")}
    for design in ("hash", "list"):
        assert "(untested)" not in rows[design]  # 4 rounds can reach p < 0.05

    summary = json.loads((tmp_path / "default-compare.json").read_text())
    assert summary["kind"] == "vhostlab-compare" and summary["rounds"] == 4
    assert [w["label"] for w in summary["warmup"]["runs"]] == ["off"]
    orders = summary["order"]
    assert len(orders) == 4 and all(sorted(o) == ["hash", "list", "off"] for o in orders)
    assert len({o[0] for o in orders}) > 1, "the baseline must not open every round"
    by_label = {c["label"]: c for c in summary["configurations"]}
    assert by_label["off"]["p_value"] is None and by_label["off"]["verdict"] == "1.00x"
    for design in ("hash", "list"):
        c = by_label[design]
        assert 0 < c["p_value"] <= 1 and c["baseline"] == "off" and len(c["runs"]) == 4
        assert c["significant"] == (c["p_value"] < summary["alpha"])
        # Within noise reads "~1.00x (n.s.)", never a ratio; a real difference shows its ratio.
        assert (c["verdict"] == "~1.00x (n.s.)") == (not c["significant"])
        assert f" {c['verdict']} " in rows[design]
    # Every run record names its round and position, and matches the summary's order.
    for c in summary["configurations"]:
        for run in c["runs"]:
            record = json.loads((tmp_path / run["record"]).read_text())
            assert record["context"]["compare_round"] == str(run["round"])
            assert record["context"]["compare_position"] == str(run["position"])
            assert orders[run["round"] - 1][run["position"] - 1] == c["label"]
    # The package reads both: the run records, and the summary.
    assert set(vhostlab.load_results(tmp_path)["design"]) == {"off", "hash", "list"}
    assert list(vhostlab.load_comparison(tmp_path)["label"]) == ["off", "hash", "list"]
