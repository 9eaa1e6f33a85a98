"""The msgspec fast path and the dict fallback build the same books; the fallback keeps the error rules."""

from __future__ import annotations

import copy
import json

import pytest
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.testing import RecordingSink, fixtures_dir

SESSION = "bybit/seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl"




def play(frames: list[dict]) -> BybitFeed:
    feed = BybitFeed(BybitConfig(symbols=["XRP-USDT"], depth=500))
    feed.sink = RecordingSink()
    feed.send = lambda msg: None  # resubscribe requests have nowhere to go offline
    feed.on_connect()
    for frame in frames:
        feed.deliver_frame(json.dumps(frame), 1)
    return feed


@pytest.fixture(scope="module")
def frames() -> list[dict]:
    text = (fixtures_dir() / SESSION).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_fallback_path_builds_the_same_books(frames):
    typed = play(frames)
    # A leading space is rejected by msgspec's number parser but accepted by float(),
    # so these frames take the dict path and must still produce identical books.
    spaced = copy.deepcopy(frames)
    for frame in spaced:
        frame["data"]["b"] = [[" " + p, q] for p, q in frame["data"]["b"]]
    fallback = play(spaced)
    assert fallback.stats.errors == 0
    assert len(typed.sink.books) == len(frames)
    assert fallback.sink.books == typed.sink.books


@pytest.mark.parametrize("bad_u", ["20254871", 1.5])
def test_non_integer_update_id_is_still_an_error(frames, bad_u):
    delta = copy.deepcopy(frames[1])
    delta["data"]["u"] = bad_u
    feed = play([frames[0], delta])
    assert feed.stats.errors == 1
    assert len(feed.sink.books) == 1  # only the snapshot was published
