"""Going live safely: ``config/live_bybit_testnet.yml`` fails fast without keys or network, and the key
pair never shows in logs, errors, reprs, summaries, latency records or captures."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from bybit_engine_kit import BOOK, engine_config, engine_on, registry
from bybit_private_emulator import BybitEmulator

from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.testing import async_wait_for, free_port
from latentspeed_core.types import Side

pytest.importorskip("latentspeed_strategy_examples")

LATENTSPEED = str(Path(sys.executable).parent / "latentspeed")
LIVE = Path(__file__).resolve().parents[3] / "config" / "live_bybit_testnet.yml"
KEY, SECRET = "KEY-must-not-leak-7f3a", "SECRET-must-not-leak-91c2"


def env_without_keys() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}


def test_the_live_testnet_config_without_keys_stops_at_once_naming_the_variable(tmp_path):
    t0 = time.monotonic()
    proc = subprocess.run([LATENTSPEED, "engine", "--config", str(LIVE)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env_without_keys())  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"latentspeed engine: error: {LIVE}: venue: missing api_key: set BYBIT_API_KEY, or api_key / api_key_file "
        "in the venue config"
    ]
    assert time.monotonic() - t0 < 30 and not list(tmp_path.iterdir())  # nothing connected, nothing written


def test_the_live_config_is_on_the_testnet_with_small_sizes():
    data = yaml.safe_load(LIVE.read_text())
    setup = resolve({**data, "venue": {**data["venue"], "api_key": "k", "api_secret": "s"}}, registry(), LIVE)
    assert setup.venue.testnet and setup.venue.market == "linear"
    assert setup.venue.urls()[0] == "https://api-testnet.bybit.com"
    assert "testnet" in setup.feeds[0].ws_url
    assert setup.strategies[0].params.qty <= 0.001 and data["risk"]["max_position"] <= 0.01


def test_unreachable_bybit_stops_the_engine_with_one_line(tmp_path):
    closed = free_port()  # nothing listens there: connection refused, no internet involved
    data = yaml.safe_load(LIVE.read_text())
    data["venue"].update(rest_url=f"http://127.0.0.1:{closed}", ws_url=f"ws://127.0.0.1:{closed}")
    data["market_data"]["feeds"][0]["ws_url"] = f"ws://127.0.0.1:{closed}/v5/public/linear"
    data["log"] = {"level": "warning"}
    data["latency"] = {"file": None}
    cfg = tmp_path / "live.yml"
    cfg.write_text(yaml.safe_dump(data))
    t0 = time.monotonic()
    proc = subprocess.run([LATENTSPEED, "engine", "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**env_without_keys(), "BYBIT_API_KEY": KEY, "BYBIT_API_SECRET": SECRET})  # fmt: skip
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"latentspeed engine: error: task venue failed: ConnectionError: bybit: cannot reach "
                    f"http://127.0.0.1:{closed}/v5/market/time: [Errno 111] Connection refused")  # fmt: skip
    assert time.monotonic() - t0 < 20
    assert KEY not in proc.stdout + proc.stderr and SECRET not in proc.stdout + proc.stderr


def test_a_refused_key_stops_the_first_connection_with_the_venues_reason_and_no_secret():
    async def main():
        async with BybitEmulator(api_key=KEY, api_secret="the-right-secret") as emu:
            cfg = engine_config(emu)
            cfg["venue"]["api_secret"] = SECRET  # not the account's: every signature is wrong (10004)
            reg = registry()
            runner = EngineRunner(resolve(cfg, reg), reg)
            return await asyncio.wait_for(runner.run(install_signals=False), 20), emu

    summary, emu = asyncio.run(main())
    assert summary["error"] == ("task venue failed: BybitAuthError: private stream auth refused: "
                                "invalid sign (10004)")  # fmt: skip
    assert emu.refusals == [("private auth", 10004, "invalid sign")]


def test_the_key_pair_never_shows_in_logs_errors_reprs_records_or_captures(tmp_path, caplog, capfd):
    latency = tmp_path / "latency.jsonl"
    capture = tmp_path / "session.jsonl.gz"
    seen: dict = {}

    async def main():
        async with BybitEmulator(api_key=KEY, api_secret=SECRET) as emu:
            emu.set_book("BTCUSDT", *BOOK)
            cfg = engine_config(emu)
            cfg["latency"] = {"file": str(latency)}
            async with engine_on(emu, cfg, record=str(capture)) as runner:
                engine, venue = runner.engine, runner.venue
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(lambda: st.is_open and st.order_id, 5, "the order acknowledged")
                engine.submit("manual", "BTC-USDT", Side.BUY, 0.0015, 59990.0)  # refused: logged
                emu.trade("BTCUSDT", "Sell", "59990", "0.001")
                await async_wait_for(lambda: engine.fills == 1, 5, "the fill")
                emu.skew_ms = 30_000
                engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59980.0)  # 10002: logged, clock resync
                await async_wait_for(lambda: venue.clock_resyncs >= 2, 5, "the resync")
                emu.skew_ms = 0
                await emu.drop("private")  # a reconnect: auth again, reconciliation, its logs
                await async_wait_for(lambda: venue.sessions >= 2 and venue.connected, 10, "the reconnect")
                seen["reprs"] = [repr(runner.setup.venue), repr(venue), repr(vars(venue)), repr(runner.venue.config),
                                 str(runner.setup.venue.model_dump()), repr(venue._signer)]  # fmt: skip
            seen["summary"] = repr(runner.summary)

    with caplog.at_level(logging.DEBUG):  # every logger, the WebSocket library's included
        asyncio.run(main())
    out, err = capfd.readouterr()
    texts = {
        "logs": "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "stdout/stderr": out + err,
        "reprs": "\n".join(seen["reprs"]),
        "summary": seen["summary"],
        "latency records": latency.read_text(),
        "capture": gzip.decompress(capture.read_bytes()).decode(),
    }
    assert len(caplog.records) > 20 and "capture" in texts and texts["latency records"]
    for where, text in texts.items():
        assert KEY not in text and SECRET not in text, f"the key pair appears in the {where}"


def test_the_engine_setup_repr_hides_the_venue_secret():
    class Emu:
        market, public_url, rest_url, ws_url, api_key, api_secret = (
            "linear",
            "ws://127.0.0.1:1/v5/public/linear",
            "http://127.0.0.1:1",
            "ws://127.0.0.1:1",
            KEY,
            SECRET,
        )

    setup = resolve(engine_config(Emu()), registry())
    assert SECRET not in repr(setup) and SECRET not in repr(setup.config.venue)
