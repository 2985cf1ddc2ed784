"""The run-settings table seen from outside: every setting of ``_core.run_settings()`` is a
RunConfig keyword, a key of the record's "config", and (where it has one) a `vhostlab run`
flag whose help shows it and whose check refuses a bad value with exit status 2 naming the
flag. A new table line is covered here without touching this file."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import vhostlab
from vhostlab import _core

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VHOSTLAB_BUILD_DIR", REPO / "build"))
CLI = BUILD / "vhostlab"
SETTINGS = _core.run_settings()

# A value each type must refuse (None: every value of the type is valid).
BAD = {"choice": "bogus", "design": "no-such-design", "poll": "sometimes", "on_off": "maybe",
       "flag": "maybe", "count": "12x", "seconds": "-1", "page_size": "8k", "size": "12x",
       "frame_sizes": "64,,9000", "cpu_list": "0,,1", "text": None, "name_list": None}


def test_config_fields_are_the_table(tmp_path):
    names = [s["name"] for s in SETTINGS]
    assert vhostlab.config_fields() == names
    assert list(vhostlab.run_settings()["name"]) == names
    # The record's config carries every setting, in table order, as the flags set them.
    out = tmp_path / "r.json"
    r = subprocess.run([str(CLI), "run", "--packets", "500", "--queues=1", "--ring-size", "64",
                        "--page-size", "2m", "--timeout", "60", "--quiet", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    config = json.loads(out.read_text())["config"]
    assert list(config) == names
    assert (config["packets"], config["ring_size"], config["page_size"]) == (500, 64, 2 << 20)


@pytest.mark.parametrize("s", SETTINGS, ids=[s["name"] for s in SETTINGS])
def test_each_setting_round_trips_through_python(s):
    # The default's text, set as a keyword (`profile` is run_config's own first argument, so
    # RunConfig's keywords are used), reads back as the default; the value read back is
    # accepted again unchanged.
    text = s["default"] if s["name"] != "packets" else "5"
    cfg = _core.RunConfig(**{s["name"]: text})
    again = _core.RunConfig(**{s["name"]: getattr(cfg, s["name"])})
    assert getattr(again, s["name"]) == getattr(cfg, s["name"])
    if s["name"] != "packets":
        assert getattr(cfg, s["name"]) == getattr(_core.RunConfig(), s["name"])
    bad = BAD[s["type"]]
    if bad is not None:
        with pytest.raises(ValueError, match=s["name"]):
            _core.RunConfig(**{s["name"]: bad})
        with pytest.raises(ValueError, match=s["name"]):
            setattr(_core.RunConfig(), s["name"], bad)


@pytest.mark.parametrize("s", [s for s in SETTINGS if s["flag"]], ids=lambda s: s["flag"])
def test_each_flag_is_documented_and_checked(s):
    help_text = subprocess.run([str(CLI), "run", "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    assert s["flag"] in help_text
    bad = BAD[s["type"]]
    if bad is None or s["type"] == "flag":
        return
    r = subprocess.run([str(CLI), "run", f"{s['flag']}={bad}"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert s["flag"] in r.stderr and bad in r.stderr, r.stderr
