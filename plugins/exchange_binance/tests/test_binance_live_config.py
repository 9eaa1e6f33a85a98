"""``config/live_binance_testnet.yml`` through ``latentspeed engine``: with no key, or no network, it
stops at once with one line saying why and a non-zero exit (never the internet: unreachable is a
closed loopback port)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from latentspeed_core.testing import free_port

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "config" / "live_binance_testnet.yml"
LATENTSPEED = str(Path(sys.executable).parent / "latentspeed")


def run_engine(config: Path, env: dict, cwd: Path) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    proc = subprocess.run([LATENTSPEED, "engine", "--config", str(config)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}


def test_the_config_is_testnet_spot_with_the_market_maker():
    text = CONFIG.read_text()
    assert "exchange: binance" in text and "market: spot" in text and "testnet: true" in text
    assert "market_maker" in text and "api_key:" not in text.replace("# api_key", "")


def test_without_keys_it_stops_at_once_naming_the_variable(tmp_path):
    code, out, err, took = run_engine(CONFIG, clean_env(), tmp_path)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "BINANCE_API_KEY" in lines[0] and "venue" in lines[0], err
    assert "Traceback" not in err + out and took < 20


def test_an_unreachable_venue_stops_it_with_one_line_naming_the_url(tmp_path):
    port = free_port()  # nothing listens there
    text = CONFIG.read_text()
    text = text.replace('ws_url: "wss://stream.testnet.binance.vision/stream", rest_url: "https://testnet.binance.vision"',
                        f'ws_url: "ws://127.0.0.1:{port}/stream", rest_url: "http://127.0.0.1:{port}"')  # fmt: skip
    text = text.replace(
        "  testnet: true ",
        f"  rest_url: http://127.0.0.1:{port}\n  ws_url: ws://127.0.0.1:{port}/ws-api/v3\n  testnet: true ",
    )
    assert text.count(str(port)) == 4
    cfg = tmp_path / "live.yml"
    cfg.write_text(text)
    env = {**clean_env(), "BINANCE_API_KEY": "cli-test-key", "BINANCE_API_SECRET": "cli-test-secret"}
    code, out, err, took = run_engine(cfg, env, tmp_path)
    lines = [ln for ln in err.splitlines() if ln.startswith("latentspeed engine: error:")]
    assert code == 1, err
    assert len(lines) == 1 and f"cannot reach http://127.0.0.1:{port}" in lines[0], err
    assert "cli-test-secret" not in err + out and "cli-test-key" not in err + out
    assert "Traceback" not in err + out and took < 20
