"""Experiment runs from Python: configs, a small real run (front-end + backend in process, over
a real Unix socket), comparison, and Ctrl-C handling. Runs are kept tiny (a few thousand
packets) and bounded by timeout_seconds."""

import json
import math
import os
import signal
import threading
import warnings

import pytest

import vhostlab



def test_run_config_from_keywords():
    cfg = vhostlab.run_config(iotlb="radix", mapping="lazy", page_size="2m", packets=10)
    assert (cfg.iotlb, cfg.mapping, cfg.page_size, cfg.packets) == ("radix", "lazy", 2 << 20, 10)


def test_unknown_setting_and_design_are_errors():
    with pytest.raises(TypeError, match="packetz"):
        vhostlab.run_config(packetz=1)
    with pytest.raises(ValueError, match="nope"):
        vhostlab.run_config(iotlb="nope")
    with pytest.raises(ValueError):
        vhostlab.run_config(page_size="huge")


def test_working_set_and_storm_settings():
    cfg = vhostlab.run_config(working_set="256m", storm_interval=8192, storm_burst=64)
    assert (cfg.working_set, cfg.storm_interval, cfg.storm_burst) == (256 << 20, 8192, 64)
    assert {"working_set", "storm_interval", "storm_burst"} <= set(vhostlab.config_fields())
    with pytest.raises(ValueError):
        vhostlab.run_config(working_set="lots")


def test_storm_run_records_its_bursts():
    df = vhostlab.run(iotlb="hash", packets=6000, ring_size=256, working_set="4m",
                      storm_interval=1000, storm_burst=32, progress=False, timeout_seconds=60)
    whole = df[df["queue"] == -1].set_index(["side", "metric"])["value"]
    assert whole[("frontend", "packets")] == 6000
    assert whole[("frontend", "drops")] == 0 and whole[("frontend", "verify_errors")] == 0
    assert whole[("frontend", "storm_bursts")] >= 5
    assert whole[("frontend", "storm_pages")] == whole[("frontend", "iotlb_invalidates")]
    record = json.loads(df.attrs["json"])
    assert record["config"]["working_set"] == 4 << 20
    assert record["config"]["storm_burst"] == 32


def test_feature_and_packet_size_settings():
    cfg = vhostlab.run_config(packet_sizes="64,1500,9000", event_idx=False, mrg_rxbuf=True,
                              rx_buffer_size=2048)
    assert list(cfg.packet_sizes) == [64, 1500, 9000]
    assert (cfg.event_idx, cfg.mrg_rxbuf, cfg.rx_buffer_size) == (False, True, 2048)
    assert {"packet_sizes", "event_idx", "mrg_rxbuf", "rx_buffer_size"} <= \
        set(vhostlab.config_fields())
    assert list(vhostlab.run_config(packet_sizes=[64, 128]).packet_sizes) == [64, 128]
    defaults = vhostlab.run_config()
    assert defaults.event_idx and defaults.mrg_rxbuf and list(defaults.packet_sizes) == []


@pytest.mark.parametrize("event_idx, mrg", [(True, True), (False, False)])
def test_jumbo_mix_run_with_and_without_the_features(event_idx, mrg):
    df = vhostlab.run(iotlb="hash", packets=3000, ring_size=256, packet_sizes=[64, 1500, 9000],
                      event_idx=event_idx, mrg_rxbuf=mrg, progress=False, timeout_seconds=60)
    whole = df[(df["queue"] == -1) & (df["side"] == "frontend")].set_index("metric")["value"]
    assert whole["packets"] == 3000
    assert whole["drops"] == 0 and whole["verify_errors"] == 0
    assert whole["bytes"] == (64 + 1500 + 9000) * 1000
    assert whole["event_idx"] == event_idx and whole["mrg_rxbuf"] == mrg
    # 9000-byte frames take 6 mergeable buffers of 1548 bytes; without MRG_RXBUF one each.
    assert whole["rx_buffers"] == (8000 if mrg else 3000)
    assert whole["kicks_per_packet"] <= 2 and whole["interrupts_per_packet"] <= 1
    record = json.loads(df.attrs["json"])
    assert record["config"]["packet_sizes"] == [64, 1500, 9000]
    assert record["context"]["mrg_rxbuf"] == ("on" if mrg else "off")


def test_profile_loading_and_errors(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text('name = "tiny"\n[workload]\npackets = 123\nmapping = "strict"\n')
    cfg = vhostlab.run_config(p, iotlb="radix")
    assert (cfg.profile, cfg.packets, cfg.mapping, cfg.iotlb) == ("tiny", 123, "strict", "radix")
    bad = tmp_path / "bad.toml"
    bad.write_text('[workload]\npackats = 1\n')
    with pytest.raises(ValueError, match="packats"):
        vhostlab.run_config(bad)


def test_small_run_is_a_tidy_frame():
    df = vhostlab.run(iotlb="radix", packets=3000, progress=False, timeout_seconds=60)
    assert list(df.columns[:10]) == vhostlab.RUN_COLUMNS
    assert set(df["design"]) == {"radix"}
    whole = df[df["queue"] == -1].set_index(["side", "metric"])["value"]
    assert whole[("frontend", "packets")] == 3000
    assert (df[df["metric"] == "drops"]["value"] == 0).all()
    assert (df[df["metric"] == "verify_errors"]["value"] == 0).all()
    # Never a fake 0: every unavailable row is NaN with a note.
    unavailable = df[~df["available"]]
    assert unavailable["value"].isna().all() and (unavailable["note"] != "").all()
    record = json.loads(df.attrs["json"])
    assert record["schema_version"] == 1 and record["config"]["iotlb"] == "radix"


def test_drain_traffic_times_the_backend_and_keeps_the_loop_rate():
    df = vhostlab.run(traffic="drain", packets=4000, ring_size=256, progress=False,
                      timeout_seconds=60)
    whole = df[df["queue"] == -1].set_index(["side", "metric"])["value"]
    assert whole[("frontend", "packets")] == 4000
    assert whole[("frontend", "verify_errors")] == 0
    assert whole[("frontend", "loop_mpps")] > 0
    # Timed only when the front-end saw a drain in progress (not so when the backend ran on
    # its CPU meanwhile: then mpps is 0 and a note says so).
    drain_ms = df[df["metric"] == "drain_ms"]["value"].iloc[0]
    assert (whole[("frontend", "mpps")] > 0) == (drain_ms > 0)
    assert json.loads(df.attrs["json"])["config"]["traffic"] == "drain"
    with pytest.raises(ValueError, match="traffic"):
        vhostlab.run_config(traffic="trickle")


def test_compare_two_designs_with_baseline():
    # progress=True exercises the tqdm bars (they write to stderr).
    df = vhostlab.compare(["reference", "radix"], packets=2000, progress=True, timeout_seconds=60)
    assert list(dict.fromkeys(df["design"])) == ["off", "reference", "radix"]
    assert df.attrs["runs"] == 3 and not df.attrs["interrupted"]
    ratio = vhostlab.ratio_to_baseline(df, "packets")
    assert (ratio["ratio"] == 1.0).all()


def test_ctrl_c_stops_the_run_cleanly():
    """SIGINT during a long run: the run stops early, a valid record comes back with a
    RunInterrupted warning, and no run thread is left behind."""
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    threads_before = threading.active_count()
    timer.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = vhostlab.run(iotlb="reference", seconds=30, progress=False, timeout_seconds=60)
    timer.join()
    assert df.attrs["interrupted"]
    assert any(issubclass(w.category, vhostlab.RunInterrupted) for w in caught)
    seconds = df[(df["metric"] == "seconds") & (df["queue"] == -1)]["value"].iloc[0]
    assert seconds < 20
    assert threading.active_count() == threads_before


def test_run_against_dpdk_vhost_pmd():
    """The same run against DPDK's vhost PMD (testpmd spawned by RunExperiment, bounded)."""
    df = vhostlab.run(backend="dpdk", packets=2000, progress=False, timeout_seconds=60)
    whole = df[(df["queue"] == -1) & (df["side"] == "frontend")].set_index("metric")["value"]
    assert set(df["design"]) == {"dpdk"}
    assert whole["packets"] == 2000 and whole["drops"] == 0 and whole["verify_errors"] == 0
