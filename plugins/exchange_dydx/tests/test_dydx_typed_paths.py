"""The msgspec fast path, the dict fallback and unbatched delivery all build the same book."""

from __future__ import annotations

import copy
import json

import pytest
from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed

from latentspeed_core.testing import RecordingSink, fixtures_dir


def play(frames: list[dict]) -> DydxFeed:
    feed = DydxFeed(DydxConfig(symbols=["ETH-USD"]))
    feed.sink = RecordingSink()
    feed.on_connect()
    for frame in frames:
        feed.deliver_frame(json.dumps(frame), 1)
    return feed


@pytest.fixture(scope="module")
def recorded() -> tuple[dict, dict]:
    d = fixtures_dir() / "dydx"
    snap = json.loads((d / "ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json").read_text())
    batch = json.loads((d / "ws_v4_orderbook_channel_batch_data_eth-usd_41updates_nautilus.json").read_text())
    snap["message_id"] = 1  # order the snapshot before the batch
    return snap, batch


def test_fallback_path_builds_the_same_books(recorded):
    snap, batch = recorded
    typed = play([snap, batch])
    snap2 = copy.deepcopy(snap)
    for side in ("bids", "asks"):  # the [price, size] pair form only the dict path reads
        snap2["contents"][side] = [[lvl["price"], lvl["size"]] for lvl in snap2["contents"][side]]
    batch2 = copy.deepcopy(batch)
    for content in batch2["contents"]:
        for side in ("bids", "asks"):
            if side in content:
                content[side] = [[" " + p, s] for p, s in content[side]]
    fallback = play([snap2, batch2])
    assert typed.stats.errors == 0 and fallback.stats.errors == 0
    assert len(typed.sink.books) == 2  # one emission for the snapshot, one for the whole batch
    assert fallback.sink.books == typed.sink.books


def test_a_batch_equals_its_contents_sent_one_by_one(recorded):
    snap, batch = recorded
    singles = []
    for content in batch["contents"]:
        msg = {k: v for k, v in batch.items() if k != "contents"}
        msg.update(type="channel_data", contents=content)
        singles.append(msg)
    batched = play([snap, batch])
    unbatched = play([snap, *singles])
    assert len(unbatched.sink.books) == 1 + len(singles)
    assert unbatched.sink.books[-1] == batched.sink.books[-1]
