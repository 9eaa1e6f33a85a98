"""The collection building blocks: monitors, child supervision, core selection, engine configs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from latentspeed_core.datacollect import runner
from latentspeed_core.datacollect.monitors import FILES, SystemMonitor
from latentspeed_core.engine.config import resolve
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import wait_for

BUSY = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


def rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_monitor_samples_every_file_and_a_busy_child(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        mon = SystemMonitor(tmp_path, interval=0.2)
        mon.watch("busy", child.pid)
        mon.watch("gone", 2**22 + 7)  # no such pid: skipped, never fatal
        with mon:
            wait_for(lambda: mon.samples >= 4, timeout=10, what="four monitor samples")
    finally:
        child.kill()
        child.wait()
    for name, fields in FILES.items():
        data = rows(tmp_path / name)
        assert data, name
        assert list(data[0]) == fields
    cpus = {r["cpu"] for r in rows(tmp_path / "cpu.csv")}
    assert "all" in cpus and str(min(os.sched_getaffinity(0))) in cpus
    procs = rows(tmp_path / "processes.csv")
    assert {r["name"] for r in procs} == {"busy"}
    assert max(float(r["cpu_pct"]) for r in procs) > 50  # a spinning process uses most of a core
    assert all(int(r["rss_kb"]) > 0 for r in procs)
    assert all(float(r["mem_used_kb"]) > 0 for r in rows(tmp_path / "memory.csv"))
    assert mon.errors == 0


def test_a_child_that_ignores_sigint_is_terminated(tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    child = runner.Child("stubborn", [sys.executable, "-c", code], tmp_path, "logs/stubborn.log")
    assert child.wait_for_line("ready", timeout=10)
    child.stop(timeout=0.5)
    assert child.stopped_by == "SIGTERM"
    assert child.describe()["log"] == "logs/stubborn.log" and not child.alive()


def test_cores_this_machine_lacks_are_not_pinned():
    cores, info = runner.resolve_cores(runner.CollectOptions(network_core=6000, strategy_core=6001))
    assert cores == set() and info["pinned"] == [] and "not available" in info["warning"]
    first = min(os.sched_getaffinity(0))
    cores, info = runner.resolve_cores(runner.CollectOptions(network_core=first, strategy_core=first))
    assert cores == {first} and info["pinned"] == [first] and info["warning"] is None


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_generated_engine_config_is_valid_for_the_engine(registry):
    cfg = runner.default_engine_config(9100, ["BTC-USD"])
    setup = resolve(cfg, registry, "generated")
    assert setup.config.latency.file == "latency.jsonl"
    assert [s.name for s in setup.strategies] == ["market_maker"]
    assert runner.config_symbols(cfg) == ["BTC-USD"]


def test_a_template_is_pointed_at_the_mock_exchange(registry):
    template = {
        "log": {"level": "debug", "file": "/var/log/trading_engine.log"},
        "market_data": {"zmq": {"host": "127.0.0.1", "port": 5556}},
        "venue": {"exchange": "mock", "host": "10.0.0.5", "port": 9000},
        "strategies": [{"name": "market_maker", "symbols": ["ETH-USD"], "params": {"qty": 0.02}}],
        "latency": {"file": "/tmp/elsewhere.jsonl"},
        "stats_interval": 2.0,
    }
    notes: list[str] = []
    cfg = runner.engine_config_from_template(template, 9123, notes)
    assert cfg["market_data"]["feeds"] == [
        {"exchange": "mock", "symbols": ["ETH-USD"], "host": "127.0.0.1", "port": 9123}
    ]
    assert "zmq" not in cfg["market_data"]
    assert cfg["venue"] == {"exchange": "mock", "host": "127.0.0.1", "port": 9123}
    assert cfg["latency"]["file"] == "latency.jsonl" and "file" not in cfg["log"]
    assert cfg["strategies"] == template["strategies"] and cfg["stats_interval"] == 2.0
    assert len(notes) == 4  # zmq replaced, feed added, latency file, log file
    assert template["venue"]["host"] == "10.0.0.5"  # the template itself is untouched
    resolve(cfg, registry, "template")


def test_a_bad_template_fails_before_anything_starts(tmp_path, capsys):
    from latentspeed_core.cli import main

    bad = tmp_path / "trading_config.yml"
    bad.write_text(
        "market_data: {feeds: [{exchange: mock, bogus: 1}]}\nvenue: {exchange: mock}\n"
        "strategies: [{name: market_maker, symbols: [BTC-USD]}]\n"
    )
    out = tmp_path / "data"
    assert main(["collect", "--duration", "1", "--out", str(out), "--config", str(bad)]) == 2
    assert "market_data.feeds[0].bogus: unknown key" in capsys.readouterr().err
    assert not out.exists()
