"""`vhostlab run` and `vhostlab compare` refuse out-of-range integers and bad sizes with a clear
usage error (exit status 2) before anything runs; the new workload settings appear in --help."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VHOSTLAB_BUILD_DIR", REPO / "build"))
CLI = BUILD / "vhostlab"

# The CLI is built with the package (tools/test.sh builds everything): a missing one fails.


def _run(*args):
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, why", [
    (["--working-set", "2g"], "out of range"),
    (["--working-set", "12x"], "not a size"),
    (["--storm-burst", "0"], "1..4096"),
    (["--storm-burst", "4097"], "1..4096"),
    (["--storm-interval", "4294967297"], "0..4294967296"),
    (["--storm-interval", "-1"], "0..4294967296"),
    (["--queues", "4294967297"], "out of range"),
    (["--ring-size", "99999999999"], "out of range"),
    (["--packet-sizes", "64,,9000"], "frame sizes"),
    (["--event-idx", "maybe"], "on or off"),
    (["--mrg-rxbuf", "1"], "on or off"),
    (["--rx-buffer-size", "63"], "64..65536"),
])
def test_run_refuses_bad_values(args, why):
    r = _run("run", *args)
    assert r.returncode == 2, r.stderr
    assert why in r.stderr and args[0] in r.stderr


@pytest.mark.parametrize("args", [["--ring-size", "100"], ["--queues", "0"], ["--repeat", "0"],
                                  ["--packets", "0"], ["--warmup", "101"],
                                  ["--packet-size", "9001"], ["--packet-sizes", "64,x"],
                                  ["--event-idx", "yes"]])
def test_compare_refuses_bad_values_before_running(args):
    r = _run("compare", "--profile", "all", *args)
    assert r.returncode == 2, r.stderr
    assert "round" not in r.stderr, "nothing may run before the arguments are checked"


def test_help_documents_the_new_settings():
    run_help = _run("run", "--help").stdout
    for flag in ("--working-set", "--storm-interval", "--storm-burst", "--packet-sizes",
                 "--event-idx", "--mrg-rxbuf", "--rx-buffer-size"):
        assert flag in run_help
    assert "'all'" in _run("compare", "--help").stdout
