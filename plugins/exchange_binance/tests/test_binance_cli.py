"""The ``binance`` feed through the ``latentspeed`` command: marketstream → ZeroMQ, and record → replay."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from binance_testkit import FakeBinance, expected_book, load_session
from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed

from latentspeed_core.marketstream.subscriber import ZmqSubscriber
from latentspeed_core.testing import RecordingSink, async_wait_for, book_levels, two_free_ports

LATENTSPEED = str(Path(sys.executable).parent / "latentspeed")


def feed_line(srv: FakeBinance) -> str:
    return f"  - {{exchange: binance, symbols: [BTC-USDT], ws_url: '{srv.ws_url}', rest_url: '{srv.rest_url}'}}\n"


def test_config_validate_names_the_bad_key(tmp_path):
    cfg = tmp_path / "ms.yml"
    cfg.write_text(
        "feeds:\n  - {exchange: binance, market: usdm, symbols: [BTC-USDT], depth_speed: 1000ms}\n"
    )
    proc = subprocess.run(
        [LATENTSPEED, "config", "validate", str(cfg)], capture_output=True, text=True, timeout=60
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "feeds[0]" in out and "depth_speed" in out and "Traceback" not in out


def test_marketstream_publishes_the_expected_books_and_trades(tmp_path):
    s = load_session("spot")
    bids, asks = expected_book(s).levels()
    books: list[dict] = []
    trades: list[dict] = []

    async def main():
        async with FakeBinance([s.frames], [s.snapshot]) as srv:
            port = two_free_ports()
            cfg = tmp_path / "ms.yml"
            cfg.write_text(
                f"zmq: {{host: 127.0.0.1, port: {port}, depth_levels: 10}}\nlog: {{level: info}}\nfeeds:\n"
                + feed_line(srv)
            )
            sub = ZmqSubscriber(
                "127.0.0.1",
                port,
                ["BINANCE-"],
                on_book=lambda t, m: books.append(m),
                on_trade=lambda t, m: trades.append(m),
            )
            sub.open()
            reader = asyncio.create_task(sub.run())
            proc = await asyncio.create_subprocess_exec(
                LATENTSPEED, "marketstream", str(cfg), "--wait-subscribers", "1", "--duration", "60",
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip

            def final_book_seen() -> bool:
                return (
                    bool(books) and [tuple(x) for x in books[-1]["bids"]] == bids[:10] and len(trades) == 152
                )

            try:
                await async_wait_for(
                    lambda: proc.returncode is not None or final_book_seen(), 30, "books and trades"
                )
            finally:
                if proc.returncode is None:
                    proc.terminate()
                stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            return stdout.decode()

    out = asyncio.run(main())
    assert books, out[-3000:]
    last = books[-1]
    assert last["exchange"] == "BINANCE" and last["symbol"] == "BTC-USDT"
    assert [tuple(x) for x in last["bids"]] == bids[:10]
    assert [tuple(x) for x in last["asks"]] == asks[:10]
    assert len(trades) == 152 and trades[0]["symbol"] == "BTC-USDT" and trades[0]["side"] in ("buy", "sell")


def test_record_then_replay_gives_the_same_book(tmp_path):
    s = load_session("spot")
    expected = expected_book(s)

    async def main():
        async with FakeBinance([s.frames], [s.snapshot]) as srv:
            cfg = tmp_path / "ms.yml"
            cfg.write_text("log: {level: info}\nfeeds:\n" + feed_line(srv))
            out = tmp_path / "binance.capture.gz"
            proc = await asyncio.create_subprocess_exec(
                LATENTSPEED, "record", str(cfg), "--out", str(out), "--duration", "3",
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, stdout.decode()[-3000:]
            return out

    capture = asyncio.run(main())
    feed = BinanceFeed(BinanceConfig(symbols=["BTC-USDT"], replay=str(capture)))
    sink = RecordingSink(depth=10)
    asyncio.run(feed.run(sink))
    assert feed.synced("BTC-USDT") and feed.stats.errors == 0
    assert book_levels(feed.book("BTC-USDT")) == expected.levels()
    assert len(sink.trades) == 152
