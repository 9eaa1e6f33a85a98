"""``MockFeed.frame_handler``: the compiled route of the usual MARKET_DATA changes speed, not behaviour.

Every message goes through the route on one feed and through ``on_frame`` on another; both publish the
same books (values, times, the book object the sink is handed) and trades, count the same, log the same
errors and keep the same state, on good and mangled messages, for wanted and unwanted symbols."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_mock_exchange import protocol as P
from latentspeed_mock_exchange.config import MockFeedConfig
from latentspeed_mock_exchange.feed import MockFeed

from latentspeed_core.book import SnapshotBook
from latentspeed_core.testing import RecordingSink, mangled

pytestmark = pytest.mark.skipif(P.market_data_route is None, reason="the C extension is not built")

S = P.SCALE


def frames() -> list[bytes]:
    return [
        P.encode_market_data(1, 500, 1, [(100 * S, 2 * S)], [(101 * S, 3 * S)]),  # before any definition
        P.encode_security_definition(2, 0, 1, S // 100, S // 1000, "BTC-USD"),
        P.encode_security_definition(3, 0, 2, S // 100, S // 1000, "ETH-USD"),
        P.encode_market_data(4, 1_000, 1, [(100 * S, 2 * S), (99 * S, 1 * S)], [(101 * S, 3 * S)]),
        P.encode_trade(5, 2_000, 1, 100 * S, S, 1, 9),
        P.encode_market_data(6, 3_000, 2, [(10 * S, 1 * S)], [(11 * S, 3 * S), (12 * S, S // 3)]),
        P.encode_market_data(7, 4_000, 3, [(100 * S, 1 * S)], [(102 * S, 3 * S)]),  # undefined symbol
        P.encode_market_data(8, 5_000, 1, [(103 * S, 1 * S)], [(102 * S, 3 * S)]),  # crossed
        P.encode_market_data(
            9, 6_000, 1, [(99 * S, 1 * S), (100 * S, 1 * S)], [(102 * S, 3 * S)]
        ),  # unsorted
        P.encode_market_data(10, 7_000, 1, [], [(102 * S, 3 * S)]),  # one side empty
        P.encode_market_data(11, 2**63 + 5, 1, [(1, 1)], [(2, (1 << 53) + 1)]),  # beyond a double's integers
        P.encode_heartbeat(12, 8_000),
    ]


def play(frames: list, routed: bool, symbols: list[str]) -> tuple:
    feed = MockFeed(MockFeedConfig(symbols=symbols))
    feed.sink = RecordingSink()
    errors: list[str] = []
    error = feed.error
    feed.error = lambda reason, data=None: (errors.append(reason), error(reason, data))
    feed.on_connect()
    handler = feed.frame_handler() if routed else feed.on_frame
    assert (type(handler).__name__ == "MarketDataRoute") is routed
    for i, frame in enumerate(frames):
        try:
            handler(frame, i)
        except Exception as exc:  # what deliver_frame would count: the same on both paths
            errors.append(f"raised {type(exc).__name__}: {exc}")
    books = {s: (b.top_bids(100), b.top_asks(100), type(b)) for s, b in feed.books.items()}
    sink = feed.sink
    return (
        sink.books,
        sink.trades,
        sink.violations,
        feed.stats.as_dict(),
        errors,
        feed._last_md,
        books,
        feed._defined,
    )


@pytest.mark.parametrize("start", [0, 1])  # 1: the definitions first, then the first data
@pytest.mark.parametrize("symbols", [[], ["BTC-USD"], ["SOL-USD"]])
def test_the_route_and_on_frame_agree_on_every_message(symbols, start):
    fs = frames()[start:]
    routed = play(fs, True, symbols)
    assert routed == play(fs, False, symbols)
    if not symbols:
        assert [b.timestamp_ns for b in routed[0]][:2] == [1_000, 3_000]
    assert routed[-1]  # the first data seen (and the missing wanted symbols told)


def test_the_route_takes_the_usual_messages_itself():
    feed = MockFeed()
    feed.sink = RecordingSink()
    feed.on_connect()
    passed = []

    def on_frame(data, receipt_ns):
        passed.append(receipt_ns)
        return feed.on_frame(data, receipt_ns)

    route = P.market_data_route(feed, on_frame, SnapshotBook)
    for i, frame in enumerate(frames()):
        try:
            route(frame, i)
        except P.ProtocolError:
            assert i == 7  # the crossed one, refused by on_frame's decoder
    assert passed == [0, 1, 2, 4, 6, 7, 8, 10, 11]  # 3 and 5 (canonical, defined): in C; 9 (a side empty) too
    assert [b.receipt_ns for b in feed.sink.books][:2] == [3, 5]


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 80), st.integers(0, 255)), max_size=3),
    which=st.integers(3, 11),
)
def test_the_route_and_on_frame_agree_on_mangled_messages(edits, which):
    fs = frames()
    fs[which] = mangled(fs[which], edits)
    assert play(fs, True, []) == play(fs, False, [])


def test_the_route_reads_the_feed_each_time():
    """The rehearsal swaps the feed's sink, books and stats: the route follows, as on_frame does."""
    feed = MockFeed()
    feed.sink = first = RecordingSink()
    feed.on_connect()
    route = feed.frame_handler()
    for i, f in enumerate(frames()[1:5]):
        route(f, i)
    feed.sink = second = RecordingSink()
    feed.books["BTC-USD"] = SnapshotBook("BTC-USD")
    route(frames()[3], 99)
    assert [b.receipt_ns for b in first.books] == [2] and [b.receipt_ns for b in second.books] == [99]
    assert second.live["BTC-USD"] is feed.books["BTC-USD"]


def test_a_subclass_that_changes_on_frame_keeps_it():
    class Custom(MockFeed):
        def on_frame(self, data, receipt_ns):
            return None

    feed = Custom()
    assert feed.frame_handler() == feed.on_frame


def test_the_first_data_is_seen_by_on_frame(caplog):
    """on_frame tells, at the first data after the definitions, which wanted symbols are missing."""
    feed = MockFeed(MockFeedConfig(symbols=["BTC-USD", "SOL-USD"]))
    feed.sink = RecordingSink()
    feed.on_connect()
    route = feed.frame_handler()
    fs = frames()
    for f in fs[1:4]:
        route(f, 0)
    assert feed._defined and "does not define SOL-USD" in caplog.text
    assert len(feed.sink.books) == 1


def test_the_route_counts_on_any_stats_object():
    """FeedStats' counter at its slot; any other stats object by name (a subclass, a test's own)."""

    class Stats:
        books = 0
        trades = 0

    feed = MockFeed()
    feed.sink = RecordingSink()
    feed.on_connect()
    route = feed.frame_handler()
    for i, f in enumerate(frames()[1:4]):
        route(f, i)
    assert feed.stats.books == 1
    feed.stats = other = Stats()
    route(frames()[3], 9)
    assert other.books == 1 and len(feed.sink.books) == 2


def _snapshots(n: int) -> list[bytes]:
    """A definition, then n snapshots of BTC-USD whose every level changes each time."""
    out = [P.encode_security_definition(1, 0, 1, S // 100, S // 1000, "BTC-USD")]
    for i in range(n):
        bids = [((100 - k) * S - i, (k + 1) * S + i) for k in range(10)]
        asks = [((101 + k) * S + i, (k + 2) * S + i) for k in range(10)]
        out.append(P.encode_market_data(2 + i, 1_000 * (i + 1), 1, bids, asks))
    return out


class _Keeper(RecordingSink):
    """Keeps one kind of thing it is handed, and the text of its values at that time."""

    def __init__(self, what: str) -> None:
        super().__init__(depth=0)
        self.what = what
        self.kept: list = []

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        if self.what == "slice":  # the lists a consumer is given
            kept = book.top_bids(10)
        elif self.what == "list":  # the book's own list
            kept = book._snap_asks
        elif self.what == "pair":
            kept = [book.top_bids(10)[3]]
        else:  # a float
            kept = [[book.top_asks(10)[0][1]]]
        self.kept.append((kept, repr(kept)))


@pytest.mark.parametrize("what", ["slice", "list", "pair", "float"])
def test_levels_anyone_holds_never_change(what):
    """The route refills in place only the pairs nothing references any more: whatever a consumer
    keeps (the lists it was given, the book's own list, a pair, a float) keeps its values."""
    feed = MockFeed()
    feed.sink = keeper = _Keeper(what)
    feed.on_connect()
    route = feed.frame_handler()
    for i, f in enumerate(_snapshots(30)):
        route(f, i)
    assert len(keeper.kept) == 30
    for kept, text in keeper.kept:
        assert repr(kept) == text


def test_pairs_nothing_holds_are_refilled():
    feed = MockFeed()
    feed.sink = RecordingSink(depth=0)  # keeps no level
    feed.on_connect()
    route = feed.frame_handler()
    fs = _snapshots(4)
    route(fs[0], 0)
    seen = []
    for i, f in enumerate(fs[1:]):
        route(f, i)
        book = feed.books["BTC-USD"]
        seen.append([id(lv) for lv in book._snap_bids])
        assert book.top_bids(10) == P.decode_book(f)[1] and book.top_asks(10) == P.decode_book(f)[2]
    assert seen[2] == seen[0] and seen[1] != seen[0]  # two snapshots on, the same pairs, refilled
