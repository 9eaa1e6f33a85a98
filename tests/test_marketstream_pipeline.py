"""Pipeline behaviour: exact book/trade messages, features per the issue-5 definitions, bad input.

A tiny real Feed (JSON frames of our own making) drives the real Pipeline; the expected
features are recomputed here from the published bids and asks, independently of
latentspeed_core.marketstream.features.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import sys

import orjson
import pytest

from latentspeed_core.book import L2Book
from latentspeed_core.config import FeedConfig
from latentspeed_core.feed import Feed
from latentspeed_core.marketstream.features import STANDARD, Feature, RollingStd, RollingSum
from latentspeed_core.marketstream.pipeline import Pipeline
from latentspeed_core.types import Trade

W = 5
N = 3


class JsonFeed(Feed):
    """Frames: {"t":"book","s":SYM,"ts":NS,"snap":bool,"bids":[[p,q]],"asks":[[p,q]]} / {"t":"trade",...}."""

    exchange = "TEST"

    def __init__(self, config=None, name=None):
        super().__init__(config or FeedConfig(exchange="test"), name)
        self.books: dict[str, L2Book] = {}
        self.resyncs_asked: list[tuple[str, str]] = []

    async def run_live(self):  # pragma: no cover - never live
        raise NotImplementedError

    def on_frame(self, data, receipt_ns):
        m = orjson.loads(data)
        sym = m["s"]
        if m["t"] == "trade":
            self.sink.on_trade(
                self, Trade("TEST", sym, m["ts"], receipt_ns, m["p"], m["q"], m["side"], str(m["id"]))
            )
            return
        book = self.books.setdefault(sym, L2Book(sym))
        if m.get("snap"):
            book.load_snapshot(m["bids"], m["asks"])
        else:
            for p, q in m["bids"]:
                book.set_bid(p, q)
            for p, q in m["asks"]:
                book.set_ask(p, q)
        self.sink.on_book(self, sym, book, m["ts"], receipt_ns)

    def resync(self, symbol, reason):
        super().resync(symbol, reason)
        self.resyncs_asked.append((symbol, reason))


def standard_calculators(w=W, n=N):
    return [c.factory(c.config_model(), w, n) for c in sorted(STANDARD, key=lambda c: c.priority)]


def make(w=W, n=N, calculators=None):
    out: list[tuple[str, dict]] = []
    emit = lambda topic, msg: out.append((topic, msg))  # noqa: E731
    pipe = Pipeline(w, n, standard_calculators(w, n) if calculators is None else calculators, emit, emit)
    feed = JsonFeed()
    feed.sink = pipe
    return feed, pipe, out


def frame(**kw) -> bytes:
    return orjson.dumps(kw)


# The expected values come from the ``ms_ref`` fixture (tests/conftest.py): the definitions
# implemented independently of the code under test.


def test_book_message_is_exactly_the_contract(ms_ref):
    feed, pipe, out = make()
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=111, snap=True,
                             bids=[[100.0, 1.0], [99.5, 2.0], [99.0, 3.0], [98.0, 9.0]],
                             asks=[[100.5, 0.5], [101.0, 1.5]]), 222)  # fmt: skip
    assert len(out) == 1
    topic, m = out[0]
    assert topic == "TEST-preprocessed_book-BTC-USD"
    assert list(m) == ms_ref.BOOK_KEYS
    assert m["exchange"] == "TEST" and m["symbol"] == "BTC-USD"
    assert m["timestamp_ns"] == 111 and m["receipt_timestamp_ns"] == 222
    assert m["seq"] == 1
    assert m["bids"] == [[100.0, 1.0], [99.5, 2.0], [99.0, 3.0]]  # N = 3 levels, best first
    assert m["asks"] == [[100.5, 0.5], [101.0, 1.5]]
    assert m["midpoint"] == 100.25
    assert m["breadth"] == 100.0 * 1.0 + 100.5 * 0.5
    assert m["imbalance_lvl1"] == pytest.approx(0.5 / 1.5)
    assert m["volatility_mid"] == 0.0 and m["ofi_rolling"] == 0.0
    orjson.dumps(m)  # serialisable as is


def test_message_names_are_the_interned_strings_the_configs_hold():
    """The engine keys its per-symbol dicts by the config's symbols (interned by the config models):
    a message's symbol must be that very object, so each look-up is an identity match."""
    from latentspeed_core.engine.config import StrategyEntry

    feed, pipe, out = make()
    sym = "".join(["btc", "-usd"])  # built at run time: not the interned constant
    feed.deliver_frame(frame(t="book", s=sym.upper(), ts=1, snap=True, bids=[[1.0, 1.0]], asks=[[2.0, 1.0]]), 2)
    feed.deliver_frame(frame(t="trade", s=sym.upper(), ts=3, p=1.5, q=1.0, side="buy", id=1), 4)
    configured = StrategyEntry(name="x", symbols=[sym]).symbols[0]
    assert configured is FeedConfig(exchange="test", symbols=[sym]).symbols[0]
    for _topic, m in out:
        assert m["symbol"] is configured
        assert m["exchange"] is sys.intern("TEST")


def test_features_match_definitions_on_a_random_walk(ms_ref):
    rng = random.Random(7)
    feed, pipe, out = make()
    mid = 100.0
    feed.deliver_frame(
        frame(t="book", s="ETH-USD", ts=1, snap=True, bids=[[99.9, 1.0]], asks=[[100.1, 1.0]]), 1
    )
    for i in range(300):
        mid += rng.choice([-0.1, 0.0, 0.1])
        bid, ask = round(mid - 0.1, 1), round(mid + 0.1, 1)
        bids = [[round(bid - k * 0.1, 1), rng.choice([0.0, 0.5, 1.0, 2.0])] for k in range(3)]
        asks = [[round(ask + k * 0.1, 1), rng.choice([0.0, 0.5, 1.0, 2.0])] for k in range(3)]
        # clear anything that would cross, as a venue's delta would
        feed.books["ETH-USD"].load_snapshot(
            [lv for lv in feed.books["ETH-USD"].top_bids(50) if lv[0] < ask],
            [lv for lv in feed.books["ETH-USD"].top_asks(50) if lv[0] > bid],
        )
        feed.deliver_frame(frame(t="book", s="ETH-USD", ts=i, bids=bids, asks=asks), i)
    msgs = [m for _, m in out]
    assert len(msgs) > 250
    assert feed.stats.errors == 0
    ms_ref.check_books(msgs, W, N)
    assert any(m["ofi_rolling"] != 0.0 for m in msgs)
    assert any(m["volatility_mid"] > 0.0 for m in msgs)


def test_trades_contract_and_volatility(ms_ref):
    feed, pipe, out = make()
    prices = [100.0, 100.5, 100.25, 101.0, 100.0, 99.5, 99.75, 100.0]
    for i, p in enumerate(prices):
        feed.deliver_frame(
            frame(
                t="trade",
                s="BTC-USD",
                ts=10 + i,
                p=p,
                q=0.25 * (i + 1),
                side="buy" if i % 2 else "sell",
                id=i,
            ),
            100 + i,
        )
    assert [t for t, _ in out] == ["TEST-preprocessed_trades-BTC-USD"] * len(prices)
    ms_ref.check_trades([m for _, m in out], W)
    for i, (_, m) in enumerate(out):
        assert list(m) == ms_ref.TRADE_KEYS
        assert m["seq"] == i + 1
        assert m["price"] == m["transaction_price"] == prices[i]
        assert m["amount"] == 0.25 * (i + 1)
        assert m["trading_volume"] == pytest.approx(prices[i] * 0.25 * (i + 1))
        assert m["side"] == ("buy" if i % 2 else "sell")
        assert m["trade_id"] == str(i)
        assert m["timestamp_ns"] == 10 + i and m["receipt_timestamp_ns"] == 100 + i
        assert m["volatility"] == pytest.approx(ms_ref.stdev_logret(prices[: i + 1], W), rel=1e-9, abs=1e-15)


def test_seq_is_per_topic():
    feed, pipe, out = make()
    for sym in ("BTC-USD", "ETH-USD", "BTC-USD"):
        feed.deliver_frame(frame(t="book", s=sym, ts=1, snap=True, bids=[[1.0, 1.0]], asks=[[2.0, 1.0]]), 1)
        feed.deliver_frame(frame(t="trade", s=sym, ts=1, p=1.5, q=1.0, side="buy", id=1), 1)
    seqs = [(t, m["seq"]) for t, m in out]
    assert seqs == [
        ("TEST-preprocessed_book-BTC-USD", 1), ("TEST-preprocessed_trades-BTC-USD", 1),
        ("TEST-preprocessed_book-ETH-USD", 1), ("TEST-preprocessed_trades-ETH-USD", 1),
        ("TEST-preprocessed_book-BTC-USD", 2), ("TEST-preprocessed_trades-BTC-USD", 2),
    ]  # fmt: skip


def test_no_book_while_a_side_is_empty():
    feed, pipe, out = make()
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=1, snap=True, bids=[[1.0, 1.0]], asks=[]), 1)
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=1, snap=True, bids=[], asks=[[2.0, 1.0]]), 1)
    assert out == []
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=1, bids=[[1.0, 1.0]], asks=[]), 1)
    assert [m["seq"] for _, m in out] == [1]
    assert feed.stats.errors == 0


def test_crossed_book_is_counted_logged_resynced_not_published(caplog):
    feed, pipe, out = make()
    caplog.set_level(logging.WARNING)
    feed.deliver_frame(
        frame(t="book", s="BTC-USD", ts=1, snap=True, bids=[[100.0, 1.0]], asks=[[101.0, 1.0]]), 1
    )
    # a delta that crosses: bid above the ask
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=2, bids=[[102.0, 1.0]], asks=[]), 2)
    # another crossed update before the snapshot comes back: counted, no second resync
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=3, bids=[[101.0, 1.0]], asks=[]), 3)
    # a locked book (bid == ask) counts as crossed too
    assert [m["seq"] for _, m in out] == [1]
    assert pipe.crossed == {"test": 2}
    assert feed.stats.errors == 2
    assert feed.stats.resyncs == 1 and feed.resyncs_asked[0][0] == "BTC-USD"
    assert "crossed book" in caplog.text and "test" in caplog.text
    feed.deliver_frame(
        frame(t="book", s="BTC-USD", ts=4, snap=True, bids=[[100.0, 1.0]], asks=[[100.0, 1.0]]), 4
    )
    assert pipe.crossed == {"test": 3}
    feed.deliver_frame(
        frame(t="book", s="BTC-USD", ts=5, snap=True, bids=[[100.0, 1.0]], asks=[[100.5, 1.0]]), 5
    )
    assert [m["seq"] for _, m in out] == [1, 2]  # no gap: crossed books never took a seq


def test_bad_frames_are_counted_and_logged_never_raised(caplog):
    feed, pipe, out = make()
    caplog.set_level(logging.WARNING)
    for bad in (b"not json", b"{}", b'{"t":"book"}', b'{"t":"trade","s":"BTC-USD"}', b"\xff\xfe", b"[]"):
        feed.deliver_frame(bad, 1)
    feed.deliver_frame(frame(t="trade", s="BTC-USD", ts=1, p=-5.0, q=1.0, side="buy", id=1), 1)
    feed.deliver_frame(frame(t="trade", s="BTC-USD", ts=1, p=float("nan"), q=1.0, side="buy", id=1), 1)
    feed.deliver_frame(
        frame(t="book", s="BTC-USD", ts=1, snap=True, bids=[[-1.0, 1.0]], asks=[[2.0, 1.0]]), 1
    )
    assert out == []
    assert feed.stats.errors == 9
    assert feed.stats.messages == 9
    assert "test: skipped input" in caplog.text
    feed.deliver_frame(frame(t="trade", s="BTC-USD", ts=1, p=5.0, q=1.0, side="buy", id=1), 1)
    assert [m["seq"] for _, m in out] == [1]


def test_publish_drop_is_counted_on_the_feed():
    dropped = []
    feed = JsonFeed()
    pipe = Pipeline(
        W, N, standard_calculators(), lambda t, m: (dropped.append(m), False)[1], lambda t, m: False
    )
    feed.sink = pipe
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=1, snap=True, bids=[[1.0, 1.0]], asks=[[2.0, 1.0]]), 1)
    feed.deliver_frame(frame(t="trade", s="BTC-USD", ts=1, p=1.5, q=1.0, side="buy", id=1), 1)
    assert feed.stats.publish_drops == 2 and len(dropped) == 1


def test_a_plugin_feature_adds_fields_after_the_standard_ones():
    class Microprice(Feature):
        def book_updater(self, topic):
            def update(msg):
                (b, qb), (a, qa) = msg["bids"][0], msg["asks"][0]
                msg["microprice"] = (b * qa + a * qb) / (qb + qa)

            return update

    feed, pipe, out = make(calculators=[*standard_calculators(), Microprice()])
    feed.deliver_frame(frame(t="book", s="BTC-USD", ts=1, snap=True, bids=[[1.0, 3.0]], asks=[[2.0, 1.0]]), 1)
    m = out[0][1]
    assert m["microprice"] == pytest.approx((1.0 * 1.0 + 2.0 * 3.0) / 4.0)
    assert list(m)[-3:] == ["microprice", "window_size", "schema_version"]


def test_rolling_windows_do_not_drift():
    rng = random.Random(3)
    rs, rd = RollingSum(20), RollingStd(20)
    xs = []
    for _ in range(20_000):
        x = rng.uniform(-1e6, 1e6) if rng.random() < 0.01 else rng.uniform(-1e-4, 1e-4)
        xs.append(x)
        s, d = rs.push(x), rd.push(x)
    assert s == pytest.approx(math.fsum(xs[-20:]), abs=1e-6)
    assert d == pytest.approx(statistics.stdev(xs[-20:]), rel=1e-6)
