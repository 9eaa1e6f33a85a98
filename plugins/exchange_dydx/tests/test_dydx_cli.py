"""End to end: ``latentspeed marketstream`` with a dydx feed pointed at the local indexer publishes
the expected books and trades on ZeroMQ."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import yaml

from latentspeed_core.marketstream.subscriber import ZmqSubscriber
from latentspeed_core.testing import async_wait_for, two_free_ports

BIN = Path(sys.executable).parent


def test_marketstream_publishes_the_expected_books_and_trades(kit, tmp_path):
    async def scenario():
        async with kit.IndexerServer() as srv:
            port = two_free_ports()
            cfg = {
                "zmq": {"host": "127.0.0.1", "port": port, "depth_levels": 10},
                "log": {"level": "info", "file": str(tmp_path / "marketstream.log")},
                "feeds": [{"exchange": "dydx", "symbols": ["ETH-USD"], "ws_url": srv.url}],
            }
            path = tmp_path / "config.yml"
            path.write_text(yaml.safe_dump(cfg))
            books: list[dict] = []
            trades: list[dict] = []
            sub = ZmqSubscriber(
                "127.0.0.1",
                port,
                (),
                on_book=lambda t, m: books.append(m),
                on_trade=lambda t, m: trades.append(m),
            )
            sub_task = asyncio.create_task(sub.run())
            proc = await asyncio.create_subprocess_exec(
                str(BIN / "latentspeed"), "--plugins", "dydx", "marketstream", str(path),
                "--wait-subscribers", "1", "--duration", "60",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                conn = await srv.connection(timeout=30)
                await conn.subscriptions(2)
                ref = kit.RefBook()
                msgs = [
                    kit.frame(kit.SNAPSHOT, message_id=1),
                    kit.trades_subscribed(kit.load_frame(kit.TRADES), 2),
                ]
                msgs += kit.unbatch(kit.load_frame(kit.BATCH), first_id=3)
                for msg in msgs:
                    await conn.send(msg)
                    if msg["channel"] == "v4_orderbook":
                        ref.apply_message(msg)
                live = kit.frame(kit.TRADES_DELEVERAGED, message_id=100)
                await conn.send(live)
                await async_wait_for(
                    lambda: len(books) == 42 and len(trades) == 2, 20, "published books and trades"
                )
            finally:
                proc.send_signal(signal.SIGINT)
                out, _ = await asyncio.wait_for(proc.communicate(), 20)
                sub_task.cancel()
            bids, asks = ref.levels()
            last = books[-1]
            assert last["exchange"] == "DYDX" and last["symbol"] == "ETH-USD"
            assert [tuple(x) for x in last["bids"]] == bids[:10] and [tuple(x) for x in last["asks"]] == asks[
                :10
            ]
            assert [b["seq"] for b in books] == list(range(1, 43))
            assert [(t["price"], t["amount"], t["side"], t["trade_id"]) for t in trades] == [
                (float(t["price"]), float(t["size"]), t["side"].lower(), t["id"])
                for t in live["contents"]["trades"][:2]
            ]
            assert proc.returncode == 0, out.decode()

    asyncio.run(scenario())


def test_latentspeed_record_captures_a_session_that_replays_to_the_same_book(kit, tmp_path):
    from latentspeed_exchange_dydx.config import DydxConfig
    from latentspeed_exchange_dydx.feed import DydxFeed

    capture = tmp_path / "dydx.jsonl.gz"

    async def record() -> list[list]:
        async with kit.IndexerServer() as srv:
            cfg = {
                "log": {"level": "info", "file": str(tmp_path / "record.log")},
                "feeds": [{"exchange": "dydx", "symbols": ["ETH-USD"], "ws_url": srv.url}],
            }
            path = tmp_path / "config.yml"
            path.write_text(yaml.safe_dump(cfg))
            proc = await asyncio.create_subprocess_exec(
                str(BIN / "latentspeed"), "--plugins", "dydx", "record", str(path), "--out", str(capture),
                "--duration", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                conn = await srv.connection(timeout=30)
                await conn.subscriptions(2)
                ref = kit.RefBook()
                for msg in [
                    kit.frame(kit.SNAPSHOT, message_id=1),
                    *kit.unbatch(kit.load_frame(kit.BATCH), 2),
                ]:
                    await conn.send(msg)
                    ref.apply_message(msg)
                await conn.close()
                await srv.connection(timeout=10)  # reconnected: everything before the close was read
            finally:
                proc.send_signal(signal.SIGINT)
                out, _ = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, out.decode()
            return ref.levels()

    expected = asyncio.run(record())
    feed = DydxFeed(DydxConfig(symbols=["ETH-USD"], replay=str(capture)))
    sink = kit.Sink()
    asyncio.run(feed.run(sink))
    assert sink.count("ETH-USD") == 42
    # the last book of the first connection (the second never got a snapshot)
    assert sink.last("ETH-USD") == expected
    assert feed.stats.errors == 0
