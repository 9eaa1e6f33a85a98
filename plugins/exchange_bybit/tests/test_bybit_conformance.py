"""The core's feed conformance checks (latentspeed_core.testing.conformance) on the ``bybit`` feed.

The session is the recorded XRPUSDT orderbook.500 snapshot and its 24 deltas, with the recorded
linear publicTrade frame (moved to XRPUSDT) after the fifth delta and again, with other trade ids,
at the end. Snapshots arrive in-band: on (re)subscribe, Bybit sends one (there is no REST sync).
"""

from __future__ import annotations

import json

from bybit_testkit import (
    BybitServer,
    dumps,
    load_frame,
    load_session,
    read,
    snapshot_frame,
    xrp_trade,
)

from latentspeed_core.testing import with_raw
from latentspeed_core.testing.conformance import FeedConformance, SessionRun

TOPIC = "orderbook.500.XRPUSDT"


class TestBybitConformance(FeedConformance):
    feed_name = "bybit"
    symbol = "XRP-USDT"

    def server(self, scripts, rest):
        return BybitServer(scripts)

    def config(self, server, rest):
        return {"exchange": "bybit", "symbols": [self.symbol], "depth": 500, "ws_url": server.url}

    def session(self):
        frames = load_session()
        later = json.loads(dumps(xrp_trade()).replace('"i":"', '"i":"later-'))
        return [*frames[:6], xrp_trade(), *frames[6:], later]

    def read(self, frame):
        return read(frame)

    def snapshot(self, book, after):
        return snapshot_frame(book, TOPIC, "XRPUSDT", after["ts"])

    def with_level(self, frame, side, price, size):
        key = {"bids": "b", "asks": "a"}[side]
        levels = frame["data"][key]
        return with_raw(frame, ("data", key, len(levels)), f"[{price},{size}]")

    def trade_frame(self, price, size, trade_id):
        msg = xrp_trade()
        msg["data"][1]["i"] = str(trade_id)
        text = dumps(msg)
        for field, raw in (("p", price), ("v", size)):
            if raw is not None:
                text = with_raw(json.loads(text), ("data", 1, field), raw)
        return text

    def malformed_frames(self):
        return [
            "not json{",
            dumps(load_frame("unattributed/ws_linear_tickers_delta_btcusdt_B.json")),
            '{"foo":1}',
            dumps(load_frame("unattributed/ws_linear_subscribe_error_handler_not_found_B.json")),
        ]

    def check(self, run: SessionRun) -> None:
        feed, server = run.feed, run.server
        ops = [(m["op"], m.get("args")) for m in server.received[0] if m["op"] != "ping"]
        if run.scenario == "session":
            assert server.subscribed_topics(0) == [TOPIC, "publicTrade.XRPUSDT"]
            assert feed.acks == 1 and feed.dropped_deltas == 0
            assert run.sink.count(self.symbol) == 25  # one book per orderbook message
        elif run.scenario == "cut":
            assert server.subscribed_topics(1) == [TOPIC, "publicTrade.XRPUSDT"]  # resubscribed
        elif run.scenario in ("gap", "impossible_level", "impossible_snapshot"):
            assert ops[-2:] == [("unsubscribe", [TOPIC]), ("subscribe", [TOPIC])]  # resubscribed
        if run.scenario == "gap":
            assert feed.dropped_deltas == 1  # arrived after the gap, before the fresh snapshot
