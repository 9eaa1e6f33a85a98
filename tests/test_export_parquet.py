"""``latentspeed export``: a capture as Parquet, row for row the messages marketstream publishes."""

from __future__ import annotations

import asyncio

import pytest

from latentspeed_core.marketstream.features import build_calculators
from latentspeed_core.marketstream.pipeline import Pipeline
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import binance_fixture_capture

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("latentspeed_exchange_binance")


def published(capture, registry) -> tuple[list[dict], list[dict]]:
    """What marketstream publishes for the capture: the Binance feed replayed into the Pipeline."""
    comp = registry.get("feeds", "binance")
    feed = comp.factory(comp.config_model.model_validate(
        {"exchange": "binance", "market": "spot", "symbols": ["BTC-USDT"], "replay": str(capture)}))  # fmt: skip
    books, trades = [], []
    pipe = Pipeline(20, 10, build_calculators(registry, 20, 10), lambda t, m: books.append(m),
                    lambda t, m: trades.append(m))  # fmt: skip
    asyncio.run(feed.run(pipe))
    return books, trades


def test_export_writes_the_published_messages_as_columns(run_cli, tmp_path):
    registry = load_registry(None)
    capture = binance_fixture_capture(tmp_path / "binance.jsonl.gz", repeat=2)
    out = tmp_path / "pq"
    proc = run_cli("export", str(capture), "--out", str(out), "--format", "parquet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "174 books, 304 trades" in proc.stdout
    books, trades = published(capture, registry)
    assert len(books) == 174 and len(trades) == 304

    btab = pq.read_table(out / "books.parquet").to_pylist()
    assert len(btab) == len(books)
    for row, msg in zip(btab, books, strict=True):
        for i, (px, qty) in enumerate(msg["bids"]):
            assert (row[f"bid_px_{i}"], row[f"bid_qty_{i}"]) == (px, qty)
        for i, (px, qty) in enumerate(msg["asks"]):
            assert (row[f"ask_px_{i}"], row[f"ask_qty_{i}"]) == (px, qty)
        for k, v in msg.items():  # every feature and timestamp, exactly
            if k not in ("bids", "asks"):
                assert row[k] == v or (v != v and row[k] != row[k]), (k, row[k], v)
    ttab = pq.read_table(out / "trades.parquet").to_pylist()
    assert ttab == trades


def test_export_of_a_capture_without_feed_configs_needs_a_config(run_cli, tmp_path):
    from latentspeed_core.capture import Recorder

    cap = tmp_path / "old.jsonl.gz"
    with Recorder(cap, feeds=["binance"]):
        pass
    proc = run_cli("export", str(cap), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "give --config" in proc.stderr
    proc = run_cli("export", str(tmp_path / "none.gz"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_export_out_that_is_a_file_is_refused_before_the_export(run_cli, tmp_path):
    from latentspeed_core.capture import Recorder

    cap = tmp_path / "c.jsonl.gz"
    with Recorder(cap, feeds=["binance"]):
        pass
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    proc = run_cli("export", str(cap), "--out", str(taken))
    assert proc.returncode == 2 and "exists and is not a directory" in proc.stderr and "Traceback" not in proc.stderr
    assert taken.read_text() == "mine"
