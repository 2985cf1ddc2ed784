"""IOTLB traces: a real recording (`vhostlab backend --record` driven by the front-end of
`vhostlab run --backend socket:`), read with load_trace() and replayed with replay(); the
traces committed under results/traces/ (recorded from QEMU guests) load and replay verified;
malformed files are refused with a reason."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import vhostlab

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VHOSTLAB_BUILD_DIR", REPO / "build"))
CLI = BUILD / "vhostlab"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    d = tmp_path_factory.mktemp("trace")
    sock, path = d / "be.sock", d / "strict.vltrace"
    be = subprocess.Popen([str(CLI), "backend", "--socket", str(sock), "--iotlb", "radix",
                           "--record", str(path), "--quiet"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert be.poll() is None and time.monotonic() < deadline, "backend did not listen"
            time.sleep(0.02)
        run = subprocess.run([str(CLI), "run", "--backend", f"socket:{sock}", "--mapping", "strict",
                              "--packets", "400", "--ring-size", "256"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        be.send_signal(signal.SIGINT)
        out, _ = be.communicate(timeout=20)
    assert be.returncode == 0, out
    assert f"trace {path}:" in out
    return path


def test_recorded_trace_reads_as_a_frame(recorded):
    df = vhostlab.load_trace(recorded)
    counts = df["type"].value_counts()
    assert counts["connect"] == 1
    assert counts["mem_region"] >= 1
    # Strict mapping: every buffer is mapped by an UPDATE and unmapped by an INVALIDATE.
    assert counts["update"] >= 800 and counts["invalidate"] >= 800
    xl = df[df["type"] == "translate"]
    assert len(xl) >= 800
    assert set(xl["queue"]) == {0, 1}
    assert set(xl["perm"]) <= {"RO", "WO"}
    assert (xl["outcome"] != "").all() and (df.loc[df["type"] != "translate", "outcome"] == "").all()
    assert df["t_ns"].is_monotonic_increasing
    assert df.attrs["truncated"] is False and df.attrs["records"] == len(df)


def test_replay_verifies_every_design(recorded):
    df = vhostlab.replay(recorded, repeat=1)
    verified = df[df["metric"] == "verified"].set_index("design")["value"]
    assert set(verified.index) == set(vhostlab.designs())
    assert (verified == 1).all(), verified
    ns = df[df["metric"] == "ns/translation"].set_index("design")["value"]
    assert (ns > 0).all()
    assert set(df["backend"]) == {"replay"}


def test_cli_replay_json_loads_like_runs(recorded, tmp_path):
    out = tmp_path / "replay.json"
    r = subprocess.run([str(CLI), "replay", str(recorded), "--designs", "hash,list", "--repeat", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank" in r.stdout and "OK" in r.stdout
    df = vhostlab.load_results(out)
    assert set(df["design"]) == {"hash", "list"}
    assert set(df["profile"]) == {f"replay:{recorded.name}"}


COMMITTED = sorted((REPO / "results" / "traces").glob("*.vltrace"))


def test_committed_qemu_traces_exist():
    names = {p.name for p in COMMITTED}
    assert any("strict" in n for n in names) and any("lazy" in n for n in names), names


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_committed_trace_replays_verified(path):
    df = vhostlab.load_trace(path)
    assert (df["type"] == "translate").sum() > 0
    assert (df["type"] == "miss").sum() > 0
    r = vhostlab.replay(path, ["reference", "hash", "radix"], repeat=1)
    assert (r[r["metric"] == "verified"]["value"] == 1).all()


def test_malformed_files_are_refused(tmp_path, recorded):
    bad = tmp_path / "bad.vltrace"
    bad.write_bytes(b"VLTRACE1")
    with pytest.raises(ValueError, match="shorter"):
        vhostlab.load_trace(bad)
    bad.write_bytes(b"X" * 64)
    with pytest.raises(ValueError, match="magic"):
        vhostlab.load_trace(bad)
    cut = recorded.read_bytes()[:-7]
    bad.write_bytes(cut)
    with pytest.raises(ValueError, match="does not match"):
        vhostlab.load_trace(bad)
    with pytest.raises(ValueError, match="does not match"):
        vhostlab.replay(bad)
