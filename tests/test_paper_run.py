"""``latentspeed run --plugins VENUE,mock``: paper trading with no config, and runs that must fail loudly."""

from __future__ import annotations

import time

import pytest

from latentspeed_core.commands.run import PAPER_DEFAULTS, paper_config
from latentspeed_core.engine.config import resolve
from latentspeed_core.plugins import load_registry


@pytest.mark.parametrize("venue", sorted(PAPER_DEFAULTS))
def test_the_paper_default_of_each_venue_is_a_valid_engine_config(venue):
    pytest.importorskip(f"latentspeed_exchange_{venue}")
    setup = resolve(paper_config(PAPER_DEFAULTS[venue]), load_registry(None), "<paper>")
    assert setup.config.venue.exchange == "paper"
    assert [s.name for s in setup.strategies] == ["market_maker"]
    assert setup.feeds[0].exchange == venue


def test_run_plugins_dydx_mock_without_network_fails_within_the_startup_timeout(run_cli):
    """No route to the venue: one line naming the URL that never answered, exit 1, well before --duration."""
    pytest.importorskip("latentspeed_exchange_dydx")
    t0 = time.monotonic()
    proc = run_cli("run", "--plugins", "dydx,mock", "--dashboard", "off", "--duration", "120", timeout=90)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("latentspeed run: error: no market data from dydx (wss://"), last
    assert "within 15s (market_data.startup_timeout)" in last
    assert elapsed < 60, elapsed


def test_run_refuses_no_embedded_exchange_without_a_config(run_cli):
    proc = run_cli("run", "--no-embedded-exchange", "--duration", "1")
    assert proc.returncode == 2
    assert "--no-embedded-exchange" in proc.stderr and "needs --config" in proc.stderr


def test_run_paper_takes_one_venue_without_a_config(run_cli):
    pytest.importorskip("latentspeed_exchange_bybit")
    pytest.importorskip("latentspeed_exchange_dydx")
    proc = run_cli("run", "--plugins", "dydx,bybit,mock", "--duration", "1")
    assert proc.returncode == 2 and "takes one venue" in proc.stderr


def test_an_engine_that_never_gets_market_data_exits_nonzero_naming_the_feed(run_cli, tmp_path):
    import yaml

    from latentspeed_core.testing import free_port

    port = free_port()  # nothing listens here
    cfg = tmp_path / "engine.yml"
    cfg.write_text(yaml.safe_dump({
        "market_data": {"startup_timeout": 1.5, "feeds": [{"exchange": "mock", "port": port, "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "paper"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
        "latency": {"file": None},
    }))  # fmt: skip
    proc = run_cli("engine", "--config", str(cfg), "--duration", "30", timeout=60)
    assert proc.returncode == 1
    assert f"no market data from mock (127.0.0.1:{port}) within 1.5s" in proc.stderr


def test_a_run_shorter_than_the_timeout_that_got_nothing_still_fails(run_cli, tmp_path):
    import yaml

    from latentspeed_core.testing import free_port

    cfg = tmp_path / "engine.yml"
    cfg.write_text(yaml.safe_dump({
        "market_data": {"feeds": [{"exchange": "mock", "port": free_port(), "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "paper"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
        "latency": {"file": None},
    }))  # fmt: skip
    proc = run_cli("engine", "--config", str(cfg), "--duration", "1", timeout=60)
    assert proc.returncode == 1 and "no market data from mock" in proc.stderr and "during the run" in proc.stderr
