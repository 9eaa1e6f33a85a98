"""The core's feed conformance checks (latentspeed_core.testing.conformance) on the ``binance`` feed,
spot and USD-M, with the recorded 1,000-frame BTCUSDT sessions and their REST snapshots.

Snapshots come over REST (Binance's "How to manage a local order book correctly"): the kit serves
them from its loopback REST server. USD-M carries depth on ``/public`` and trades on ``/market``; a
cut drops the depth connection only, and the trades connection must not notice.
"""

from __future__ import annotations

import orjson
from binance_testkit import (
    SNAPSHOT_PATH,
    SPEED,
    FakeBinance,
    frames_only,
    load_session,
    read,
    snapshot_body,
    trade_frame,
)

from latentspeed_core.testing import with_raw
from latentspeed_core.testing.conformance import IMPOSSIBLE_LEVELS, FeedConformance, SessionRun

TRADES = {"spot": 152, "usdm": 153}  # trades in each recorded session


class BinanceConformance(FeedConformance):
    feed_name = "binance"
    symbol = "BTC-USDT"
    market = "spot"

    def server(self, scripts, rest):
        if self.market == "usdm":  # the trades connection plays the whole session and is never cut
            return FakeBinance(scripts, market_scripts=frames_only(scripts), rest=rest)
        return FakeBinance(scripts, rest=rest)

    def config(self, server, rest):
        ws_url = server.public_url if self.market == "usdm" else server.ws_url
        return {"exchange": "binance", "market": self.market, "symbols": [self.symbol], "ws_url": ws_url,
                "rest_url": rest.url, "depth_speed": SPEED[self.market]}  # fmt: skip

    def session(self):
        return load_session(self.market).frames

    def recorded_snapshot(self):
        return load_session(self.market).snapshot

    def read(self, frame):
        return read(frame)

    def snapshot(self, book, after):
        return snapshot_body(book)

    def with_level(self, frame, side, price, size):
        msg = frame if isinstance(frame, dict) else orjson.loads(frame)
        levels = msg[side] if "lastUpdateId" in msg else msg["data"][side[0]]
        path = (side, len(levels)) if "lastUpdateId" in msg else ("data", side[0], len(levels))
        return with_raw(msg, path, f"[{price},{size}]")

    def trade_frame(self, price, size, trade_id):
        return trade_frame(trade_id, price, size)

    def malformed_frames(self):
        return [
            b"not json at all",
            b'{"stream":"btcusdt@trade","data":{"e":"foo","s":"BTCUSDT"}}',
            b'{"code":2,"msg":"Invalid request: missing field `method`"}',
            b"[]",
        ]

    def tune(self, feed):
        feed.snapshot_min_interval = 0.01

    def check(self, run: SessionRun) -> None:
        srv, feed = run.server, run.feed
        depth = f"btcusdt@depth@{SPEED[self.market]}"
        if self.market == "spot":  # one connection for depth and trades
            assert srv.paths[0] == f"/stream?streams={depth}/btcusdt@trade" and srv.market_paths == []
        else:  # USD-M: depth on /public, trades on /market
            assert srv.paths[0] == f"/public/stream?streams={depth}"
            assert srv.market_paths == ["/market/stream?streams=btcusdt@trade"]  # never cut, never again
            assert feed.trades_connection.connections == 1
        assert run.rest.requests[0] == f"{SNAPSHOT_PATH[self.market]}?symbol=BTCUSDT&limit=1000"
        if run.scenario == "session":
            assert len(run.sink.trades) == TRADES[self.market]
        if run.scenario == "cut":
            assert len(srv.paths) == 2 and srv.paths[0] == srv.paths[1]  # resubscribed
            assert len(run.rest.requests) == 2  # a fresh snapshot after the reconnect


class TestBinanceSpotConformance(BinanceConformance):
    snapshot_path = SNAPSHOT_PATH["spot"]
    market = "spot"


class TestBinanceUsdmConformance(BinanceConformance):
    snapshot_path = SNAPSHOT_PATH["usdm"]
    market = "usdm"
    # the level checks are the spot feed's code; two cases show USD-M takes the same path
    impossible_levels = [IMPOSSIBLE_LEVELS[1], IMPOSSIBLE_LEVELS[3]]
    impossible_snapshot_levels = [("asks", '"inf"', '"3"')]
