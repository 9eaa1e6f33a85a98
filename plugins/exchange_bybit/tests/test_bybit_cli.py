"""The ``bybit`` feed through the ``latentspeed`` command: config validation and ``record`` → replay."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bybit_testkit import BybitServer, load_session, reference, xrp_trade
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.marketstream.subscriber import ZmqSubscriber
from latentspeed_core.testing import RecordingSink, async_wait_for, book_levels, two_free_ports

LATENTSPEED = str(Path(sys.executable).parent / "latentspeed")


def test_config_validate_names_the_bad_key(tmp_path):
    cfg = tmp_path / "ms.yml"
    cfg.write_text("feeds:\n  - {exchange: bybit, market: spot, symbols: [BTC-USDT], depth: 500}\n")
    proc = subprocess.run(
        [LATENTSPEED, "config", "validate", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "feeds[0].depth" in out and "not offered on spot" in out and "Traceback" not in out


def test_record_then_replay_gives_the_same_book(tmp_path):
    frames = load_session()
    last_u = frames[-1]["data"]["u"]

    async def main():
        server = await BybitServer([frames]).start()
        cfg = tmp_path / "ms.yml"
        cfg.write_text(
            "log: {level: info}\n"
            "feeds:\n"
            f"  - {{exchange: bybit, symbols: [XRP-USDT], depth: 500, ws_url: '{server.url}'}}\n"
        )
        out = tmp_path / "bybit.capture.gz"
        proc = await asyncio.create_subprocess_exec(
            LATENTSPEED, "record", str(cfg), "--out", str(out), "--duration", "3",
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            await server.stop()
        assert proc.returncode == 0, stdout.decode()[-3000:]
        return out

    capture = asyncio.run(main())
    feed = BybitFeed(BybitConfig(symbols=["XRP-USDT"], depth=500, replay=str(capture)))
    sink = RecordingSink()
    asyncio.run(feed.run(sink))
    assert feed.books["XRP-USDT"].last_u == last_u
    assert book_levels(feed.books["XRP-USDT"].book) == reference(frames).levels()
    assert len(sink.books) == len(frames) and feed.stats.errors == 0


def test_marketstream_publishes_the_expected_books_and_trades(tmp_path):
    """``latentspeed marketstream`` → ZeroMQ: the published book equals the reference book."""
    frames = load_session()
    trade = xrp_trade()
    bids, asks = reference(frames).levels()
    books: list[dict] = []
    trades: list[dict] = []

    async def main():
        server = await BybitServer([[*frames, trade]]).start()
        port = two_free_ports()
        cfg = tmp_path / "ms.yml"
        cfg.write_text(
            f"zmq: {{host: 127.0.0.1, port: {port}, depth_levels: 10}}\n"
            "log: {level: info}\n"
            "feeds:\n"
            f"  - {{exchange: bybit, symbols: [XRP-USDT], depth: 500, ws_url: '{server.url}'}}\n"
        )
        sub = ZmqSubscriber(
            "127.0.0.1",
            port,
            ["BYBIT-"],
            on_book=lambda t, m: books.append(m),
            on_trade=lambda t, m: trades.append(m),
        )
        sub.open()
        reader = asyncio.create_task(sub.run())
        proc = await asyncio.create_subprocess_exec(
            LATENTSPEED, "marketstream", str(cfg), "--wait-subscribers", "1", "--duration", "60",
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await async_wait_for(
                lambda: proc.returncode is not None or (len(books) == len(frames) and len(trades) == 3),
                30,
                "books and trades from marketstream",
            )
        finally:
            if proc.returncode is None:
                proc.terminate()
            stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await server.stop()
        return stdout.decode()

    out = asyncio.run(main())
    assert len(books) == len(frames), out[-3000:]
    last = books[-1]
    assert last["exchange"] == "BYBIT" and last["symbol"] == "XRP-USDT" and last["seq"] == len(frames)
    assert [tuple(x) for x in last["bids"]] == bids[:10]
    assert [tuple(x) for x in last["asks"]] == asks[:10]
    assert last["timestamp_ns"] == frames[-1]["ts"] * 1_000_000
    assert [t["side"] for t in trades] == ["buy"] * 3 and trades[0]["symbol"] == "XRP-USDT"
