"""The checks every market-data feed plugin passes, run on its recorded sessions.

A feed plugin subclasses :class:`FeedConformance` in one small test file (``class
TestMyVenueConformance(FeedConformance)``), states the venue's part (its feed name and config, its
recorded session, how its rules read a frame, how it writes a snapshot, a frame with one more level,
a trade with given numbers, and its loopback server), and pytest runs every check below against the
real feed (the plugin's registered factory, its real WebSocket connection) on loopback:

- ``test_session_matches_the_reference``: the snapshot then every update give, after every
  publication, the reference book's top ``depth`` levels on both sides, and at the end every level;
  the trades arrive with their fields; nothing counted as an error, resync or reconnect.
- ``test_cut_connection_reconnects_and_resyncs``: the connection drops mid-session without a close
  handshake; the feed reconnects (counted) and rebuilds from the fresh snapshot, exact again.
- ``test_gap_resyncs``: one update is lost; a venue that numbers its updates sees the gap, resyncs
  (counted) and is exact again. A venue that does not (``sequenced = False``: dYdX numbers messages
  per connection across channels) must not resync on the jump: its book is the reference without it.
- ``test_malformed_frames_are_counted_and_skipped``: the plugin's malformed frames, before the book is
  synchronised and in mid-session, are each counted once; nothing resyncs; the book stays exact.
- ``test_impossible_level_resyncs`` (one per case): an update with one impossible level (NaN, inf,
  price <= 0, negative size, not a number) is counted, nothing of it is published, the book resyncs
  and is exact again.
- ``test_impossible_snapshot_is_refused_and_fetched_again`` (one per case): a snapshot with an
  impossible level is counted and a fresh one is obtained.
- ``test_impossible_trades_are_counted_and_not_published``: trades with an impossible price or size
  are counted and never published; the others are.

Snapshots come one of two ways: in-band (Bybit, dYdX: sent on the WebSocket after a (re)subscribe;
the loopback server answers the request with :data:`~latentspeed_core.testing.loopback.AWAIT_RESYNC`),
or over REST (Binance: ``snapshot_path`` names the endpoint; the kit serves the answers from a
:class:`~latentspeed_core.testing.loopback.LoopbackRestServer`).

Every published book must equal a state of the reference in order (a publication may skip states,
never show one the venue did not have), and the kit never waits on time: it waits, with a deadline,
until the feed's book equals the final reference and the counters it expects are reached.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from . import async_wait_for, running
from .books import BookUpdate, RecordingSink, ReferenceBook, TradePrint, book_levels
from .loopback import AWAIT_RESYNC, CUT, LoopbackRestServer, LoopbackWsServer, WsConnection

Frame = Any  # str | bytes | dict, as the plugin gives it

#: (side, price, size) of the level added to an update: raw JSON text; None is a price in the book.
IMPOSSIBLE_LEVELS: list[tuple[str, str | None, str]] = [
    ("bids", None, '"inf"'),
    ("bids", '"-5"', '"3"'),
    ("bids", '"0"', '"3"'),
    ("asks", '"inf"', '"3"'),
    ("asks", '"1e999"', '"1"'),
    ("bids", None, '"1e999"'),
    ("asks", None, '"-2"'),
    ("asks", None, '"NaN"'),
    ("asks", None, '"lots"'),  # after every bid and most asks parsed: nothing may be half-applied
    ("asks", '"oops"', '"1"'),
    ("bids", "-5", "3"),  # bare JSON numbers
    ("asks", "1e999", "1"),
]
#: (side, price, size) of the level added to a snapshot.
IMPOSSIBLE_SNAPSHOT_LEVELS: list[tuple[str, str | None, str]] = [
    ("asks", '"inf"', '"3"'),
    ("bids", '"0"', '"3"'),
    ("bids", '"-3000"', '"1"'),
    ("asks", None, '"inf"'),
    ("asks", "1e999", "3"),
]
#: (price, size) of a trade, raw JSON text; None keeps the recorded value.
IMPOSSIBLE_TRADES: list[tuple[str | None, str | None]] = [
    ('"NaN"', None),
    ('"inf"', None),
    ('"-5"', None),
    ('"0"', None),
    ('"1e999"', None),
    (None, '"-2"'),
    (None, '"0"'),
    (None, '"Infinity"'),
    ("-5", None),  # a bare JSON number
]


@functools.cache
def _registry(plugin: str):
    from latentspeed_core.plugins import load_registry

    return load_registry([plugin])


@dataclass
class SessionRun:
    """What one scenario left behind, for the checks (and a plugin's :meth:`FeedConformance.check`)."""

    scenario: str
    feed: Any
    sink: RecordingSink
    server: LoopbackWsServer
    rest: LoopbackRestServer | None
    #: Top ``depth`` levels of every state the feed may publish, in order, and the final reference.
    states: list[tuple[list, list]]
    final: ReferenceBook
    #: Frames the kit put into the session (malformed ones), as sent: not part of the reference.
    injected: set[str] = field(default_factory=set)
    #: The feed never reached the final reference within ``timeout``.
    timed_out: bool = False


class FeedConformance:
    """Base class of a feed plugin's conformance tests. Subclass it as ``Test<Venue>Conformance``."""

    # -- what the plugin states ---------------------------------------------------------------------
    #: The feed's name as registered (``Component.name``), loaded through its plugin's entry point.
    feed_name: ClassVar[str]
    #: The plugin's entry-point name (default: ``feed_name``).
    plugin: ClassVar[str | None] = None
    #: The one symbol of the recorded session, normalised (``XRP-USDT``).
    symbol: ClassVar[str]
    #: REST venues: path of the depth snapshot endpoint; None: snapshots arrive on the WebSocket.
    snapshot_path: ClassVar[str | None] = None
    #: The venue numbers its book updates, so a lost one is a gap the feed must see.
    sequenced: ClassVar[bool] = True
    #: Levels per side compared after every publication (every level is compared at the end).
    depth: ClassVar[int] = 10
    #: Seconds any one scenario may take.
    timeout: ClassVar[float] = 20.0
    impossible_levels: ClassVar[Sequence[tuple[str, str | None, str]]] = IMPOSSIBLE_LEVELS
    impossible_snapshot_levels: ClassVar[Sequence[tuple[str, str | None, str]]] = IMPOSSIBLE_SNAPSHOT_LEVELS
    impossible_trades: ClassVar[Sequence[tuple[str | None, str | None]]] = IMPOSSIBLE_TRADES

    def server(self, scripts: list, rest: LoopbackRestServer | None) -> LoopbackWsServer:
        """The venue's loopback server (not started) playing ``scripts``, one per connection (``rest``:
        the kit's REST server, on a REST-snapshot venue)."""
        raise NotImplementedError

    def config(self, server: LoopbackWsServer, rest: LoopbackRestServer | None) -> dict:
        """The feed's config entry, pointing at the loopback servers."""
        raise NotImplementedError

    def session(self) -> list[Frame]:
        """The recorded session, in arrival order; on a WebSocket-snapshot venue it starts with the snapshot."""
        raise NotImplementedError

    def recorded_snapshot(self) -> bytes | None:
        """REST venues: the recorded snapshot body that lines up with the session."""
        return None

    def read(self, frame: Frame) -> BookUpdate | list[TradePrint] | None:
        """The venue's rules applied to one frame (or REST snapshot body) without the feed's code:
        a book message, the trades to publish, or None for anything else."""
        raise NotImplementedError

    def snapshot(self, book: ReferenceBook, after: Frame | None) -> Frame:
        """A snapshot of ``book`` (its ``seq`` the id of the last update in it) as the venue sends it on
        a (re)subscribe, or serves it over REST. ``after``: the last session frame it holds."""
        raise NotImplementedError

    def with_level(self, frame: Frame, side: str, price: str, size: str) -> Frame:
        """``frame`` (a book update, or a snapshot) with one more level on ``side`` (``bids``/``asks``)
        whose price and size are the raw JSON texts given (a bare ``1e999`` included)."""
        raise NotImplementedError

    def trade_frame(self, price: str | None, size: str | None, trade_id: int) -> Frame:
        """A trade frame for the symbol with one trade of the given raw JSON price and size texts (None:
        a recorded value) and id ``trade_id``; the frame may hold other, valid trades too."""
        raise NotImplementedError

    def malformed_frames(self) -> list[Frame]:
        """Frames the feed must count and skip without a resync: not JSON, not an object, unknown
        kinds, venue error replies."""
        raise NotImplementedError

    def reference_book(self) -> ReferenceBook:
        """An empty reference book (a venue with more book rules than levels returns its subclass)."""
        return ReferenceBook()

    def tune(self, feed) -> None:
        """Settings for a fast test: the kit already sets quick reconnect backoff, no protocol pings."""

    def check(self, run: SessionRun) -> None:
        """Venue-specific checks after each scenario (``run.scenario`` names it)."""

    # -- pytest -------------------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc) -> None:
        cases = {
            "impossible_level": self.impossible_levels,
            "impossible_snapshot_level": self.impossible_snapshot_levels,
        }
        for name, values in cases.items():
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, values, ids=[_case_id(v) for v in values])

    # -- the checks ---------------------------------------------------------------------------------
    def test_session_matches_the_reference(self) -> None:
        n = len(self._session())
        run = self._run(
            "session", [[*self._opening(), *self._frames(range(n))]], self._expected(None, range(n))
        )
        self._assert_exact(run, errors=0, resyncs=0, reconnects=0)
        self.check(run)

    def test_cut_connection_reconnects_and_resyncs(self) -> None:
        n = len(self._session())
        updates = self._update_indices()
        cut = updates[len(updates) * 2 // 5]
        resume = updates[updates.index(cut) + 3]  # what is sent in between is lost with the connection
        # The venue's snapshot on the new connection: in-band, right before the resumed stream; over
        # REST, taken a little after the stream resumed (as a venue's would be).
        at = updates[updates.index(resume) + (-1 if self.snapshot_path is None else 2)]
        snap = self._snapshot_after(at)
        first = [*self._opening(), *self._frames(range(cut + 1)), CUT]
        second = [*self._snapshot_steps(snap), *self._frames(range(resume, n))]
        states, at_cut = self._expected(None, range(cut + 1))
        more, final = self._expected(self.read(snap), range(resume, n))
        assert _top(at_cut, self.depth) != _top(final, self.depth), "choose a session whose book moves"
        run = self._run("cut", [first, second], (states + more, final))
        self._assert_exact(run, errors=0, resyncs=0, reconnects=1)
        assert run.feed.connections == 2
        assert "closed" in run.feed.last_reconnect_cause
        self.check(run)

    def test_gap_resyncs(self) -> None:
        n = len(self._session())
        updates = self._update_indices()
        gap = self._consequential_update()
        k = updates.index(gap)
        if not self.sequenced:
            rest = [i for i in range(n) if i != gap]
            run = self._run("gap", [[*self._opening(), *self._frames(rest)]], self._expected(None, rest))
            self._assert_exact(run, errors=0, resyncs=0, reconnects=0)
            self.check(run)
            return
        states, _ = self._expected(None, range(gap))
        if self.snapshot_path is None:
            # The update after the gap shows it; the one after that arrives while the snapshot is awaited.
            at = updates[k + 2]
            snap = self._snapshot_after(at)
            script = [*self._frames(range(gap)), *self._frames(range(gap + 1, at + 1)), AWAIT_RESYNC, snap,
                      *self._frames(range(at + 1, n))]  # fmt: skip
            more, final = self._expected(self.read(snap), range(at + 1, n))
        else:
            at = updates[k + 3]  # the venue's snapshot for the resync is taken a little later
            snap = self._snapshot_after(at)
            script = [*self._opening(snap), *self._frames(i for i in range(n) if i != gap)]
            more, final = self._expected(self.read(snap), range(gap + 1, n))
        run = self._run("gap", [script], (states + more, final))
        self._assert_exact(run, errors=0, resyncs=1, reconnects=0)
        self._assert_fresh_snapshot(run)
        self.check(run)

    def test_malformed_frames_are_counted_and_skipped(self) -> None:
        n = len(self._session())
        junk = self.malformed_frames()
        middle = self._update_indices()[len(self._update_indices()) // 2]
        script = [
            *self._opening(),
            *junk,
            *self._frames(range(middle)),
            *junk,
            *self._frames(range(middle, n)),
        ]
        run = self._run("malformed", [script], self._expected(None, range(n)), injected=junk)
        sent = self._sent_injected(run)
        assert sent >= 2 * len(junk)
        self._assert_exact(run, errors=sent, resyncs=0, reconnects=0)
        self.check(run)

    def test_impossible_level_resyncs(self, impossible_level) -> None:
        side, price, size = impossible_level
        n = len(self._session())
        updates = self._update_indices()
        i = updates[len(updates) * 2 // 5]
        bad = self.with_level(
            self._session()[i], side, price or _best_price(self._book_after(i - 1), side), size
        )
        states, _ = self._expected(None, range(i))
        if self.snapshot_path is None:
            snap = self._snapshot_after(i)
            script = [*self._frames(range(i)), bad, AWAIT_RESYNC, snap, *self._frames(range(i + 1, n))]
            more, final = self._expected(self.read(snap), range(i + 1, n))
        else:
            snap = self._snapshot_after(updates[updates.index(i) + 3])  # a little after the refused event
            script = [*self._opening(snap), *self._frames(range(i)), bad, *self._frames(range(i + 1, n))]
            more, final = self._expected(self.read(snap), range(i + 1, n))
        run = self._run("impossible_level", [script], (states + more, final), injected=[bad])
        self._assert_exact(run, errors=1, resyncs=1, reconnects=0)
        self._assert_fresh_snapshot(run)
        self.check(run)

    def test_impossible_snapshot_is_refused_and_fetched_again(self, impossible_snapshot_level) -> None:
        side, price, size = impossible_snapshot_level
        n = len(self._session())
        if self.snapshot_path is None:
            first = self._session()[0]
            bad = self.with_level(first, side, price or _best_price(self._book_after(0), side), size)
            script = [bad, AWAIT_RESYNC, *self._frames(range(n))]
        else:
            body = self.recorded_snapshot()
            bad = self.with_level(body, side, price or _best_price(self._book_after(None), side), size)
            script = [self._serve(bad, body), *self._frames(range(n))]
        run = self._run("impossible_snapshot", [script], self._expected(None, range(n)), injected=[bad])
        self._assert_exact(run, errors=1, resyncs=1, reconnects=0)
        self._assert_fresh_snapshot(run)
        self.check(run)

    def test_impossible_trades_are_counted_and_not_published(self) -> None:
        n = len(self._session())
        bad = [self.trade_frame(p, q, 9_000_000_000 + k) for k, (p, q) in enumerate(self.impossible_trades)]
        middle = self._update_indices()[len(self._update_indices()) // 2]
        half = len(bad) // 2
        script = [*self._opening(), *bad[:half], *self._frames(range(middle)), *bad[half:],
                  *self._frames(range(middle, n))]  # fmt: skip
        run = self._run("impossible_trades", [script], self._expected(None, range(n)), injected=bad)
        self._assert_exact(run, errors=self._sent_injected(run), resyncs=0, reconnects=0)
        assert self._sent_injected(run) >= len(bad)
        assert not any(t.trade_id.startswith("9000000") for t in run.sink.trades)
        self.check(run)

    # -- the session, read once per class -----------------------------------------------------------
    def _session(self) -> list[Frame]:
        return self._cached()[0]

    def _reads(self) -> list:
        return self._cached()[1]

    def _cached(self) -> tuple[list[Frame], list]:
        cls = type(self)
        cache = cls.__dict__.get("_session_cache")
        if cache is None:
            frames = self.session()
            cache = (frames, [self.read(f) for f in frames])
            cls._session_cache = cache
        return cache

    def _frames(self, indices) -> list[Frame]:
        frames = self._session()
        return [frames[i] for i in indices]

    def _update_indices(self) -> list[int]:
        """Indices of the session's book updates (not snapshots)."""
        out = [i for i, u in enumerate(self._reads()) if isinstance(u, BookUpdate) and not u.snapshot]
        assert len(out) >= 12, "a conformance session needs at least 12 book updates"
        return out

    def _opening_update(self) -> BookUpdate | None:
        body = self.recorded_snapshot()
        return None if body is None else self.read(body)

    def _opening(self, *more: Frame) -> list:
        """Steps that start a script: a REST venue's snapshot answers (the recorded one, then ``more``)."""
        if self.snapshot_path is None:
            return []
        return [self._serve(self.recorded_snapshot(), *more)]

    def _snapshot_steps(self, snap: Frame) -> list:
        return [snap] if self.snapshot_path is None else [self._serve(snap)]

    def _serve(self, *answers: Frame) -> Callable[[WsConnection], None]:
        """A step setting the REST snapshot answers, once (a venue with two connections plays each
        script on both)."""
        done: list[bool] = []

        def step(conn: WsConnection) -> None:
            if not done:
                done.append(True)
                self._rest.serve(self.snapshot_path, *(_as_text(a) for a in answers))

        return step

    def _book_after(self, i: int | None) -> ReferenceBook:
        """The uninterrupted session's book after frame ``i`` (None: the opening snapshot only)."""
        return self._expected(None, range(i + 1 if i is not None else 0), states=False)[1]

    def _snapshot_after(self, i: int) -> Frame:
        return self.snapshot(self._book_after(i), self._session()[i])

    def _consequential_update(self) -> int:
        """An update whose loss changes the final book (so a feed that missed the gap would be wrong):
        one that sets a level to a new size that no later update touches again."""
        updates = self._update_indices()
        reads = self._reads()
        book = self.reference_book()
        opening = self._opening_update()
        if opening is not None:
            book.update(opening)
        changes: dict[int, set] = {}
        for i, u in enumerate(reads):
            if not isinstance(u, BookUpdate):
                continue
            if not u.snapshot:
                new = {(True, _dec(p)) for p, q in u.bids if book.bids.get(_dec(p), 0) != _dec(q)}
                new |= {(False, _dec(p)) for p, q in u.asks if book.asks.get(_dec(p), 0) != _dec(q)}
                changes[i] = new
            book.update(u)
        later: set = set()
        chosen = None
        for i in reversed(updates):
            if updates.index(i) < len(updates) * 2 // 5:
                break
            if i < updates[-4] and changes[i] - later:
                chosen = i
            u = reads[i]
            later |= {(True, _dec(p)) for p, _ in u.bids} | {(False, _dec(p)) for p, _ in u.asks}
        return chosen if chosen is not None else updates[len(updates) * 2 // 5]

    def _expected(self, start: BookUpdate | None, indices, states: bool = True) -> tuple[list, ReferenceBook]:
        """Every state (top ``depth``) the feed may publish from ``start`` (None: the session's opening)
        through the session frames at ``indices``, and the book at the end."""
        book = self.reference_book()
        out = []
        first = start if start is not None else self._opening_update()
        reads = self._reads()
        for u in ([first] if first is not None else []) + [reads[i] for i in indices]:
            if isinstance(u, BookUpdate) and book.update(u) and states:
                out.append(_top(book, self.depth))
        return out, book

    # -- running a scenario -------------------------------------------------------------------------
    def _run(
        self, scenario: str, scripts: list, expected: tuple, injected: Sequence[Frame] = ()
    ) -> SessionRun:
        states, final = expected
        return asyncio.run(self._play(scenario, scripts, states, final, {_as_text(f) for f in injected}))

    async def _play(self, scenario, scripts, states, final, injected) -> SessionRun:
        from latentspeed_core.config import validate

        async with AsyncExitStack() as stack:
            self._rest = None
            if self.snapshot_path is not None:
                self._rest = await stack.enter_async_context(LoopbackRestServer())
            server = await stack.enter_async_context(self.server(scripts, self._rest))
            comp = _registry(self.plugin or self.feed_name).feeds[self.feed_name]
            feed = comp.factory(validate(comp.config_model, self.config(server, self._rest)))
            feed.backoff_initial = 0.01
            feed.backoff_max = 0.05
            feed.protocol_ping_interval = None
            self.tune(feed)
            sink = RecordingSink(depth=self.depth)
            run = SessionRun(scenario, feed, sink, server, self._rest, states, final, injected)
            top, full = _top(final, self.depth), final.levels()

            def done() -> bool:
                last = next((b for b in reversed(sink.books) if b.symbol == self.symbol), None)
                if (
                    last is None
                    or (last.bids, last.asks) != top
                    or book_levels(sink.live[self.symbol]) != full
                ):
                    return False
                return len(sink.trades) >= len(self._sent_trades(run)[0])

            async with running(feed, sink) as task:
                try:
                    await async_wait_for(lambda: task.done() or bool(server.errors) or done(), self.timeout)
                except TimeoutError:
                    run.timed_out = True  # the checks say what is missing
            return run

    def _sent_trades(self, run: SessionRun) -> tuple[list[TradePrint], list[list[TradePrint]]]:
        """The trades of every frame the server sent (injected frames left out): all, and per connection."""
        per_conn = []
        for conn in run.server.connections:
            trades: list[TradePrint] = []
            for text in conn.sent:
                if text in run.injected:
                    continue
                try:
                    got = self.read(text)
                except ValueError:
                    continue
                if isinstance(got, list):
                    trades += got
            per_conn.append(trades)
        return [t for trades in per_conn for t in trades], per_conn

    def _sent_injected(self, run: SessionRun) -> int:
        """Injected frames the server sent (a venue with two connections may send one on both)."""
        return sum(text in run.injected for conn in run.server.connections for text in conn.sent)

    # -- the checks every scenario shares -----------------------------------------------------------
    def _assert_exact(self, run: SessionRun, errors: int, resyncs: int, reconnects: int) -> None:
        feed, sink = run.feed, run.sink
        assert run.server.errors == [], run.server.errors
        assert sink.violations == []
        assert self.symbol in sink.live, f"{run.scenario}: no book published"
        # every level of the live book
        assert book_levels(sink.live[self.symbol]) == run.final.levels()
        # every publication, in order, is a state of the reference (top ``depth`` levels, both sides)
        published = [(b.bids, b.asks) for b in sink.books if b.symbol == self.symbol]
        j = 0
        for n, pub in enumerate(published):
            while j < len(run.states) and run.states[j] != pub:
                j += 1
            assert j < len(run.states), (
                f"{run.scenario}: publication {n} of {len(published)} is no state of the reference "
                f"(in order): bids {pub[0][:3]} asks {pub[1][:3]}"
            )
        # trades: every one sent arrives once, with its fields, in its connection's order
        expected, per_conn = self._sent_trades(run)
        got = [(t.trade_id, t.price, t.amount, t.side) for t in sink.trades]
        want = [(t.trade_id, t.price, t.amount, t.side) for t in expected]
        assert sorted(got) == sorted(want)
        for trades in per_conn:
            ids = [t.trade_id for t in trades]
            assert [i for i in (t.trade_id for t in sink.trades) if i in set(ids)] == ids
        assert all(t.symbol == self.symbol and t.exchange == feed.exchange for t in sink.trades)
        assert feed.stats.trades == len(want)
        assert (feed.stats.errors, feed.stats.resyncs, feed.stats.reconnects) == (errors, resyncs, reconnects)
        assert not run.timed_out

    def _assert_fresh_snapshot(self, run: SessionRun) -> None:
        """The resync asked the venue for one fresh snapshot: over REST a second, identical request;
        in-band the resubscribe the server answered (on the same connection)."""
        if run.rest is not None:
            assert len(run.rest.requests) == 2 and run.rest.requests[0] == run.rest.requests[1]
        else:
            assert len(run.server.connections) == 1 and run.server.connections[0].resync_requests == 0


def _dec(x: Any) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(x if isinstance(x, str) else repr(x))


def _top(book: ReferenceBook, depth: int) -> tuple[list, list]:
    bids = heapq.nlargest(depth, book.bids.items())
    asks = heapq.nsmallest(depth, book.asks.items())
    return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]


def _best_price(book: ReferenceBook, side: str) -> str:
    levels = book.bids if side == "bids" else book.asks
    best = max(levels) if side == "bids" else min(levels)
    return f'"{best}"'


def _as_text(frame: Frame) -> str:
    if isinstance(frame, str):
        return frame
    if isinstance(frame, bytes | bytearray):
        return bytes(frame).decode()
    return json.dumps(frame, separators=(",", ":"))


def _case_id(case: tuple) -> str:
    return " ".join("recorded" if x is None else str(x) for x in case)
