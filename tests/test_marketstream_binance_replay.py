"""Recorded Binance frames → capture → replay through the real binance feed → Pipeline messages.

The capture is built from the recorded session (fixtures/binance, receipt times from the
``local_ts_ns`` file) with the REST snapshot placed where a live feed would have received
it: after the first buffered depth updates. Every published book and trade is checked
against the issue-5 definitions.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from latentspeed_core.capture import Recorder, replay_into
from latentspeed_core.marketstream.features import build_calculators
from latentspeed_core.marketstream.pipeline import Pipeline
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import expect_compiled, fixtures_dir

SEQ = "binance/seq_spot_btcusdt_2024-08-08_hftbacktest_first1000"
REST = "binance/rest_spot_api_v3_depth_btcusdt_limit1000_2024.json"


@pytest.fixture(scope="module")
def registry():
    pytest.importorskip("latentspeed_exchange_binance.feed")
    return load_registry(["binance"])


def build_capture(path):
    fx = fixtures_dir()
    lines = (fx / f"{SEQ}.jsonl").read_text().splitlines()
    stamps = [int(x) for x in (fx / f"{SEQ}.local_ts_ns.txt").read_text().split()]
    assert len(stamps) == len(lines)
    snapshot = (fx / REST).read_text()
    rec = Recorder(path, feeds=["binance"])
    rec.write("binance", "connect", stamps[0] - 1, None)
    depth_seen = 0
    for line, ts in zip(lines, stamps, strict=True):
        frame = orjson.loads(line)
        if "data" not in frame or frame["data"].get("e") not in ("depthUpdate", "trade"):
            continue  # the session's inline snapshot line and bookTicker (not subscribed by the feed)
        rec.write("binance", "frame", ts, line)
        if frame["data"]["e"] == "depthUpdate":
            depth_seen += 1
            if depth_seen == 2:  # the snapshot the first buffered update asked for arrives here
                rec.write("binance", "rest", ts + 1, {"key": "BTCUSDT", "body": snapshot})
    rec.close()


def test_binance_session_replays_into_contract_messages(registry, tmp_path, ms_ref):
    cap = tmp_path / "binance.jsonl.gz"
    build_capture(cap)
    comp = registry.get("feeds", "binance")
    cfg = comp.config_model.model_validate(
        {"exchange": "binance", "symbols": ["BTC-USDT"], "replay": str(cap)}
    )
    feed = comp.factory(cfg)
    by_topic: dict[str, list[dict]] = {}
    emit = lambda t, m: by_topic.setdefault(t, []).append(m)  # noqa: E731
    pipe = Pipeline(20, 10, build_calculators(registry, 20, 10), emit, emit)
    asyncio.run(feed.run(pipe))

    assert feed.stats.errors == 0 and feed.stats.resyncs == 0
    books = by_topic["BINANCE-preprocessed_book-BTC-USDT"]
    trades = by_topic["BINANCE-preprocessed_trades-BTC-USDT"]
    assert set(by_topic) == {"BINANCE-preprocessed_book-BTC-USDT", "BINANCE-preprocessed_trades-BTC-USDT"}
    # the snapshot, then every depth update from the one bridging it: 87 books; all 152 trades
    assert len(books) == 87 and len(trades) == 152
    ms_ref.check_books(books, 20, 10)
    ms_ref.check_trades(trades, 20)
    assert all(len(b["bids"]) == 10 and len(b["asks"]) == 10 for b in books)
    # receipt times are the recorded ones, event times the venue's
    assert books[-1]["receipt_timestamp_ns"] > books[0]["receipt_timestamp_ns"] > 1_723_000_000 * 10**9
    assert all(t["side"] in ("buy", "sell") for t in trades)

    # replaying the same capture again gives the very same messages
    again: dict[str, list[dict]] = {}
    feed2 = comp.factory(cfg)
    emit2 = lambda t, m: again.setdefault(t, []).append(m)  # noqa: E731
    feed2.sink = Pipeline(20, 10, build_calculators(registry, 20, 10), emit2, emit2)
    asyncio.run(replay_into(feed2, cap, "max"))
    assert again == by_topic


_REPLAY_SCRIPT = r"""
import asyncio, sys, orjson
from latentspeed_core import book
from latentspeed_core.marketstream import features
from latentspeed_core.marketstream.features import build_calculators
from latentspeed_core.marketstream.pipeline import Pipeline
from latentspeed_core.plugins import load_registry
reg = load_registry(["binance"])
comp = reg.get("feeds", "binance")
feed = comp.factory(comp.config_model.model_validate(
    {"exchange": "binance", "symbols": ["BTC-USDT"], "replay": sys.argv[1]}))
out = []
emit = lambda t, m: out.append(orjson.dumps([t, m]))
asyncio.run(feed.run(Pipeline(5, 10, build_calculators(reg, 5, 10), emit, emit)))
print(book.L2Book.__mro__[1].__name__, features._compiled is not None, feed.stats.errors)
sys.stdout.write(b"\n".join(out).decode())
"""


@pytest.mark.skipif(
    not expect_compiled(),
    reason="compiled code not in use (no C compiler, or LATENTSPEED_PURE_PYTHON): nothing to compare",
)
def test_compiled_and_pure_python_paths_publish_identical_messages(registry, tmp_path):
    """The C book, level parser and features change speed only: every published byte is the same."""
    import os
    import subprocess
    import sys

    cap = tmp_path / "binance.jsonl.gz"
    build_capture(cap)

    def run(pure: bool) -> tuple[str, list[str]]:
        env = {k: v for k, v in os.environ.items() if k != "LATENTSPEED_PURE_PYTHON"}
        if pure:
            env["LATENTSPEED_PURE_PYTHON"] = "1"
        p = subprocess.run([sys.executable, "-c", _REPLAY_SCRIPT, str(cap)], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
        assert p.returncode == 0, p.stderr
        head, *lines = p.stdout.splitlines()
        return head, lines

    compiled_head, compiled = run(False)
    pure_head, pure = run(True)
    assert compiled_head == "CL2Book True 0" and pure_head == "object False 0"
    assert len(compiled) == 87 + 152  # window 5: the rolling sums re-anchor many times over the session
    assert compiled == pure
