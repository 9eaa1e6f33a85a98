"""The core's feed conformance checks (latentspeed_core.testing.conformance) on the ``dydx`` feed.

The session is the recorded ETH-USD ``subscribed`` snapshot and the recorded 41-update batch sent
unbatched (it is from another moment than the snapshot: its asks cross the snapshot's bids, which the
offsets rule removes), with the recorded trades after the 20th update and the recorded trades with a
``DELEVERAGED`` one (not a print) at the end. Snapshots arrive in-band: the indexer sends one on
(re)subscribe. Its ``message_id`` counts every message of a connection, whatever the channel, so a lost
update is no gap the feed can see (``sequenced = False``).
"""

from __future__ import annotations

import json

from dydx_testkit import (
    BATCH,
    SNAPSHOT,
    TRADES,
    TRADES_DELEVERAGED,
    IndexerBook,
    IndexerServer,
    frame,
    load_frame,
    read,
    snapshot_frame,
    unbatch,
)

from latentspeed_core.testing import with_raw
from latentspeed_core.testing.conformance import FeedConformance, SessionRun

BOOK, TRADE_CHANNEL, ETH = "v4_orderbook", "v4_trades", "ETH-USD"


class TestDydxConformance(FeedConformance):
    feed_name = "dydx"
    symbol = ETH
    sequenced = False

    def server(self, scripts, rest):
        return IndexerServer(scripts)

    def config(self, server, rest):
        return {"exchange": "dydx", "symbols": [ETH], "ws_url": server.url, "resubscribe_delay": 0.5}

    def session(self):
        updates = unbatch(load_frame(BATCH), first_id=0)
        frames = [frame(SNAPSHOT), *updates[:20], frame(TRADES), *updates[20:], frame(TRADES_DELEVERAGED)]
        for i, f in enumerate(frames):
            f["message_id"] = i + 1
        return frames

    def read(self, frame):
        return read(frame)

    def reference_book(self):
        return IndexerBook()

    def snapshot(self, book, after):
        return snapshot_frame(book, ETH)

    def with_level(self, frame, side, price, size):
        msg = json.loads(json.dumps(frame))
        if msg["type"] == "subscribed":
            level = f'{{"price":{price},"size":{size}}}'
        else:
            level = f"[{price},{size}]"
        levels = msg["contents"].setdefault(side, [])
        return with_raw(msg, ("contents", side, len(levels)), level)

    def trade_frame(self, price, size, trade_id):
        msg = frame(TRADES)
        msg["contents"]["trades"][1]["id"] = str(trade_id)
        text = json.dumps(msg)
        for field, raw in (("price", price), ("size", size)):
            if raw is not None:
                text = with_raw(json.loads(text), ("contents", "trades", 1, field), raw)
        return text

    def malformed_frames(self):
        return [
            "{not json",
            "[]",
            '{"type":"surprise"}',
            json.dumps(load_frame("ws_v4_markets_channel_data_trading_nautilus.json")),
        ]

    def check(self, run: SessionRun) -> None:
        requests = [json.loads(m) for m in run.server.connections[0].received]
        if run.scenario == "session":
            assert {(r["type"], r["channel"], r["id"]) for r in requests} == {
                ("subscribe", BOOK, ETH), ("subscribe", TRADE_CHANNEL, ETH),
            }  # fmt: skip
            assert all(r["batched"] is False for r in requests)
            assert run.sink.count(ETH) == 1 + 41  # one book per message
            delev = load_frame(TRADES_DELEVERAGED)["contents"]["trades"]
            ids = [t["id"] for t in load_frame(TRADES)["contents"]["trades"]] + [t["id"] for t in delev[:2]]
            assert [t.trade_id for t in run.sink.trades] == ids  # the DELEVERAGED transfer is no print
        elif run.scenario == "cut":
            again = {(json.loads(m)["channel"]) for m in run.server.connections[1].received}
            assert again == {BOOK, TRADE_CHANNEL}  # resubscribed on the new connection
        elif run.scenario in ("impossible_level", "impossible_snapshot"):
            # resubscribed: the indexer's only way to send a fresh snapshot
            assert [(r["type"], r["channel"]) for r in requests[-2:]] == [
                ("unsubscribe", BOOK),
                ("subscribe", BOOK),
            ]
