"""The Pipeline's compiled FeedSink entry points (``_features.PipelineCore``) do what the Python does.

``Pipeline.on_book`` and ``Pipeline.on_trade`` run in C for their usual case (a SnapshotBook's
decoded lists read directly, a compiled topic state called directly) and call the Python rule
(``pipeline._PipelineCorePy``) for every other one. Two pipelines, one on each, get the same random
books (compiled and snapshot books, empty sides, crossed and locked books, non-positive and integer
prices) and trades (bad prices and amounts, integer prices) from two feeds, with emitters that
sometimes drop; they must emit the same messages and count the same drops, errors, crossed books and
resyncs.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspeed_core.book import L2Book, SnapshotBook
from latentspeed_core.marketstream import pipeline as pipeline_mod
from latentspeed_core.marketstream.features import Feature, build_calculators
from latentspeed_core.marketstream.pipeline import Pipeline, _PipelineCorePy
from latentspeed_core.plugins import load_registry
from latentspeed_core.types import Trade

compiled = _PipelineCorePy not in Pipeline.__mro__


class PythonPipeline(*(() if not compiled else (_PipelineCorePy,)), Pipeline):
    """The Pipeline with its entry points in Python (the state stays in the compiled base's fields)."""


class Stats:
    def __init__(self) -> None:
        self.publish_drops = 0
        self.errors = 0


class FakeFeed:
    """What the Pipeline reads of a feed: its name and exchange, stats, error() and resync()."""

    def __init__(self, name: str) -> None:
        self.name = self.exchange = name
        self.stats = Stats()
        self.said: list[tuple] = []

    def error(self, reason: str, data=None) -> None:
        self.stats.errors += 1
        self.said.append(("error", reason, repr(data)))

    def resync(self, symbol: str, reason: str) -> None:
        self.said.append(("resync", symbol, reason))


prices = st.one_of(
    st.floats(90.0, 110.0).map(lambda x: round(x, 1)), st.sampled_from([0.0, -1.0, 100, 100.0])
)  # fmt: skip
levels = st.lists(st.tuples(prices, st.sampled_from([0.5, 1.0, 2.0])), max_size=4)


@st.composite
def inputs(draw) -> tuple:
    feed = draw(st.sampled_from(["alpha", "beta"]))
    symbol = draw(st.sampled_from(["X-Y", "Z-W"]))
    if draw(st.integers(0, 3)):
        kind = draw(st.sampled_from(["snapshot", "snapshot-loaded", "book"]))
        bids = sorted({p: q for p, q in draw(levels)}.items(), reverse=True)
        asks = sorted({p: q for p, q in draw(levels)}.items())
        return ("book", feed, symbol, kind, [list(b) for b in bids], [list(a) for a in asks], draw(st.booleans()))
    return ("trade", feed, symbol, draw(prices), draw(st.sampled_from([0.5, 0.0, -1.0, 2])),
            draw(st.sampled_from(["buy", "sell"])), draw(st.booleans()))  # fmt: skip


def make_book(kind: str, symbol: str, bids: list, asks: list):
    if kind == "book":  # the compiled book (its top_bids is a C method): positive prices only
        book = L2Book(symbol)
        book.load_snapshot([b for b in bids if b[0] > 0], [a for a in asks if a[0] > 0])
        return book
    book = SnapshotBook(symbol)
    if kind == "snapshot":  # lists kept as decoded: top_bids is their slice
        book.load_sorted([list(b) for b in bids], [list(a) for a in asks])
    else:  # a snapshot loaded into the ordinary book: top_bids is L2Book's
        book.load_snapshot([b for b in bids if b[0] > 0], [a for a in asks if a[0] > 0])
    return book


REGISTRY = load_registry()


def run(cls: type[Pipeline], script: list) -> list:
    registry = REGISTRY
    emitted: list = []
    drop = [False]

    def emit(topic: str, msg: dict):
        emitted.append((topic, dict(msg)))
        return False if drop[0] else None

    pipe = cls(20, 3, build_calculators(registry, 20, 3), emit, emit)
    feeds = {name: FakeFeed(name) for name in ("alpha", "beta")}
    for step in script:
        feed = feeds[step[1]]
        if step[0] == "book":
            _, _, symbol, kind, bids, asks, dropping = step
            drop[0] = dropping
            try:
                book = make_book(kind, symbol, bids, asks)
            except ValueError:  # levels the book refuses: not this test's subject
                continue
            pipe.on_book(feed, symbol, book, 1, 2)
        else:
            _, _, symbol, price, amount, side, dropping = step
            drop[0] = dropping
            pipe.on_trade(feed, Trade(feed.exchange, symbol, 1, 2, price, amount, side, "t1"))
    return [emitted, {n: (f.stats.publish_drops, f.stats.errors, f.said) for n, f in feeds.items()}, pipe.crossed]


@settings(max_examples=300, deadline=None)
@given(script=st.lists(inputs(), max_size=25))
def test_compiled_entry_points_emit_and_count_as_the_python(script):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline_mod.time, "monotonic", lambda: 1000.0)  # the crossed-book log and resync clock
        assert run(Pipeline, script) == run(PythonPipeline, script)


@pytest.mark.skipif(not compiled, reason="the compiled pipeline core was not built (no C compiler)")
def test_the_pipeline_is_built_on_the_compiled_core():
    assert PythonPipeline.on_book is _PipelineCorePy.on_book
    assert Pipeline.on_book is not _PipelineCorePy.on_book


def test_a_snapshot_book_is_published_from_its_decoded_lists():
    for cls in (Pipeline, PythonPipeline):
        out = []
        pipe = cls(20, 2, [], lambda t, m, out=out: out.append((t, m)), lambda t, m: None)
        book = SnapshotBook("X-Y")
        book.load_sorted([[100.0, 1.0], [99.0, 2.0], [98.0, 3.0]], [[101.0, 1.0]])
        pipe.on_book(FakeFeed("alpha"), "X-Y", book, 5, 6)
        ((topic, msg),) = out
        assert topic == "ALPHA-preprocessed_book-X-Y"
        assert msg["bids"] == [[100.0, 1.0], [99.0, 2.0]] and msg["asks"] == [[101.0, 1.0]]
        assert (msg["timestamp_ns"], msg["receipt_timestamp_ns"], msg["seq"]) == (5, 6, 1)


def test_an_emitter_that_replaces_itself_while_called_is_kept_alive_through_the_call():
    """The compiled on_book holds the emitter while calling it, as Python does: an emitter that swaps
    the pipeline's emitter (dropping the last reference to itself) returns normally."""
    out = []

    class Once:
        def __call__(self, topic, msg):
            pipe.emit_book = lambda t, m: out.append("second")
            junk = [object() for _ in range(1000)]  # reuse the freed memory, were it freed
            out.append(("first", len(junk), type(self).__name__))

    pipe = Pipeline(20, 2, [], Once(), lambda t, m: None)
    book = SnapshotBook("X-Y")
    for _ in range(2):
        book.load_sorted([[100.0, 1.0]], [[101.0, 1.0]])
        pipe.on_book(FakeFeed("alpha"), "X-Y", book, 1, 2)
    assert out == [("first", 1000, "Once"), "second"]


@pytest.mark.parametrize("change", ["clear", "replace_state", "new_dict", "other_exchange"])
def test_a_topic_state_is_the_one_the_states_hold_now(change):
    """on_book and on_trade find a topic's state without looking its key up while the states dict is
    unchanged; any change to it (or another exchange's feed) is seen at the next message."""
    out = []
    pipe = Pipeline(20, 2, [], lambda t, m: out.append(m), lambda t, m: out.append(m))
    feed = FakeFeed("alpha")
    book = SnapshotBook("X-Y")

    def send():
        book.load_sorted([[100.0, 1.0]], [[101.0, 1.0]])
        pipe.on_book(feed, "X-Y", book, 1, 2)
        pipe.on_trade(feed, Trade(feed.exchange, "X-Y", 1, 2, 100.0, 1.0, "buy", "t"))

    send()
    send()
    assert [m["seq"] for m in out] == [1, 1, 2, 2]
    if change == "clear":
        pipe._books.clear()
        pipe._trades.clear()
    elif change == "replace_state":  # fresh states, made by another pipeline
        fresh = Pipeline(20, 2, [], lambda t, m: None, lambda t, m: None)
        pipe._books[("alpha", "X-Y")] = fresh._book_state("alpha", "X-Y")
        pipe._trades[("alpha", "X-Y")] = fresh._trade_state("alpha", "X-Y")
    elif change == "new_dict":
        pipe._books, pipe._trades = {}, {}
    else:
        feed.exchange = "beta"
    send()
    assert [m["seq"] for m in out[4:]] == [1, 1]
    assert {m["exchange"] for m in out[4:]} == {"BETA" if change == "other_exchange" else "ALPHA"}


def test_many_topics_interleaved_each_get_their_own_state():
    """More topics than the state cache has entries, on two exchanges and both kinds, in an order that
    makes them share and take each other's entries, with topics added on the way: every message gets
    its own topic's next sequence number."""
    out = []
    pipe = Pipeline(20, 2, [], lambda t, m: out.append(m), lambda t, m: out.append(m))
    feeds = [FakeFeed("alpha"), FakeFeed("beta")]
    symbols = [f"S{i}-USD" for i in range(40)]
    books = {s: SnapshotBook(s) for s in symbols}
    for s in symbols:
        books[s].load_sorted([[100.0, 1.0]], [[101.0, 1.0]])
    want: dict[tuple, int] = {}
    for r in range(5):
        for i, s in enumerate(symbols[: 8 + 8 * r]):  # topics join in every round
            for feed in feeds[: 1 + i % 2]:
                pipe.on_book(feed, s, books[s], r, r)
                pipe.on_trade(feed, Trade(feed.exchange, s, r, r, 100.0, 1.0, "buy", "t"))
                for kind in ("book", "trade"):
                    want[(kind, feed.exchange.upper(), s)] = want.get((kind, feed.exchange.upper(), s), 0) + 1
                got = out[-2:]
                exchange = feed.exchange.upper()
                assert [m["seq"] for m in got] == [want[(k, exchange, s)] for k in ("book", "trade")]
                assert {(m["exchange"], m["symbol"]) for m in got} == {(feed.exchange.upper(), s)}


class Extra(Feature):
    """A plugin's feature in Python, with a field only some messages have."""

    def book_updater(self, topic: str):
        return lambda m: m["seq"] % 3 == 1 and m.__setitem__("extra", m["seq"])


def _moving_books(n: int):
    """n books of one symbol whose touch, sizes and depth move every time."""
    for i in range(n):
        b = 100.0 + (i % 7) * 0.5
        yield (
            [[b, 1.0 + i % 3], [b - 0.5, 2.0], [b - 1.0, 0.5 + i % 2]],
            [[b + 0.5, 1.5], [b + 1.0, 1.0 + i % 4]],
        )


@pytest.mark.parametrize("feature", ["all", "python_updater", "volatility_first"])
def test_messages_a_consumer_keeps_or_changes_are_never_reused(feature):
    """A topic reuses the dict of its message before last once nothing holds it. Whatever consumers do
    (keep some messages, change and drop others, keep only some of their values, drop the rest), every
    message reads exactly as the one a pipeline whose consumer keeps them all (so none can be reused)
    sends, and a kept message or value never changes afterwards."""
    import orjson

    calcs = build_calculators(REGISTRY, 20, 3)
    if feature == "python_updater":  # a plugin's updater in Python: no reuse at all
        calcs = [*calcs, Extra()]
    elif feature == "volatility_first":  # its source is set after it: every message fails (KeyError)
        calcs = sorted(calcs, key=lambda c: type(c).__name__ != "Volatility")
        assert type(calcs[0]).__name__ == "Volatility"

    def run_with(consumer) -> list:
        sent = []

        def emit(topic, m):
            sent.append(orjson.dumps(m))
            consumer(len(sent), m)

        pipe = Pipeline(20, 3, calcs, emit, None)
        book, feed, refused = SnapshotBook("X-Y"), FakeFeed("alpha"), 0
        for k, (bids, asks) in enumerate(_moving_books(60)):
            book.load_sorted(bids, asks)
            if k % 4 == 1:
                gc.collect()  # between messages: untracks a spare that holds only floats, ints and strings
            try:
                pipe.on_book(feed, "X-Y", book, 1, 2)
            except KeyError:
                refused += 1
        return sent, refused

    everything: list = []
    reference, ref_errors = run_with(lambda i, m: everything.append(m))
    kept: list = []

    def consumer(i, m):
        assert gc.is_tracked(m)  # it holds lists: the collector must see it, reused or not
        if i % 3 == 0:
            kept.append((m, orjson.dumps(m)))
        elif i % 5 == 0:
            m["extra"] = i
        elif i % 7 == 0:
            m["midpoint"] = m.pop("midpoint")  # same keys, another order
        elif i % 11 == 0:
            m["bids"].append([1.0, 1.0])  # a level list changed while it was held
        elif i % 2 == 0:  # the message let go, its level lists (and a level) kept
            parts.append((m["bids"], m["asks"][0], orjson.dumps([m["bids"], m["asks"][0]])))
        elif "depth_n" in m:  # the message let go, its feature values kept (floats written in place)
            values.append([(m[k], m[k].hex()) for k in ("depth_n", "imbalance_lvl1", "relative_spread")])

    parts: list = []
    values: list = []
    sent, errors = run_with(consumer)
    assert sent == reference and errors == ref_errors
    assert len(reference) == (0 if feature == "volatility_first" else 60)
    assert ref_errors == 60 - len(reference)
    assert all(orjson.dumps(m) == then for m, then in kept)
    assert all(orjson.dumps([bids, ask]) == then for bids, ask, then in parts)
    assert all(v.hex() == then for vs in values for v, then in vs)
    assert len(values) >= (0 if feature == "volatility_first" else 10)
    assert [orjson.dumps(m) for m in everything] == reference


def test_a_trade_value_a_consumer_keeps_never_changes():
    """Trade messages are reused too: a value taken out of one (its ``trading_volume``, a float the
    message's next use would otherwise write in place) keeps its value; the messages read as sent."""
    import orjson

    kept, sent = [], []

    def emit(topic, m):
        sent.append(orjson.dumps(m))
        if len(sent) % 3 == 0:
            kept.append((m["trading_volume"], m["trading_volume"].hex()))

    pipe = Pipeline(20, 3, build_calculators(REGISTRY, 20, 3), None, emit)
    feed = FakeFeed("alpha")
    trades = [(100.0 + i % 5, 0.25 + i % 4) for i in range(60)]
    for i, (price, amount) in enumerate(trades):
        pipe.on_trade(feed, Trade(feed.exchange, "X-Y", i, i, price, amount, "buy", f"t{i}"))
    assert len(kept) == 20
    assert all(v.hex() == then for v, then in kept)
    assert [orjson.loads(m)["trading_volume"] for m in sent] == [p * a for p, a in trades]


@pytest.mark.skipif(not compiled, reason="the compiled pipeline core was not built (no C compiler)")
def test_reused_messages_have_their_values_written_in_place_on_this_interpreter():
    """The in-place writes rely on CPython 3.11's dict layout, checked at import: on 3.11 the check must
    pass (else the tests above would not exercise them); from 3.12 they are off."""
    import sys

    from latentspeed_core import _features

    assert _features.VALUES_IN_PLACE == (sys.version_info[:2] == (3, 11))
