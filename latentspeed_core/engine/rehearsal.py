"""Keep the tick-to-trade path warm while the engine waits for the next tick.

Why (docs/performance.md, "Tick-to-trade at real cadence"): with a book every 10 ms, the same
tick costs 8x what it costs at 1 ms, in every stage alike (decode, features, risk, encode), even
when the engine busy-polls: after milliseconds of idling, the code and data of the path are no
longer in the CPU's caches. Running the path regularly while idle keeps them there.

A rehearsal must not change anything real, so it runs a *shadow* of the path: the same classes
and functions (their code and the interpreter's caches for it are what gets warm) on separate,
small state. A Pipeline with the same feature calculators, a second :class:`Engine` with its own
instance of each strategy, the same risk checks and an order manager, and a venue stand-in that
has the real venue encode (and sign) each order without sending it (``rehearse_new_order``, when
the venue offers it). The input is the real engine's latest book message, so the shadow decides
on today's prices. Each shadow order then gets NEW and CANCELED reports, which warms the report
path and frees the strategy to quote again on the next rehearsal. Then the real path's own
objects (engine, venue, strategies, risk checks, books) are touched, so their memory is warm too.

Nothing the shadow does reaches the venue, the real engine's counters, orders, positions or
latency records. A strategy whose construction or callbacks act outside the engine (files,
network) sets ``rehearse = False`` and is left out.
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from collections import deque

from ..types import ExecType, ExecutionReport, RejectReason
from ..venue import RehearsingVenue
from .core import Engine
from .risk import build_risk

log = logging.getLogger("latentspeed.engine")

#: The shadow clock moves this far per rehearsal, so its rate windows never fill.
_CLOCK_STEP_NS = 2_000_000_000
#: Containers larger than this are not walked by the touch (reservoirs, order history).
_TOUCH_MAX_LEN = 256

_CONTAINERS = (list, dict, set, frozenset, tuple, deque)
_NEW, _CANCELED, _NONE = ExecType.NEW, ExecType.CANCELED, RejectReason.NONE


class _ShadowVenue:
    """The shadow engine's venue: connected, the real venue's instruments, sends go nowhere."""

    carries_market_data = False

    def __init__(self, venue) -> None:
        self.name = getattr(venue, "name", "venue")
        self.connected = True
        self._real = venue
        self._rehearse = venue.rehearse_new_order if isinstance(venue, RehearsingVenue) else None

    @property
    def instruments(self) -> dict:
        return getattr(self._real, "instruments", {})

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass

    def send_new_order(self, order) -> None:
        if self._rehearse is not None:
            self._rehearse(order)

    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        pass

    async def run(self, listener) -> None:  # pragma: no cover - never run
        return None


class Rehearsal:
    """Runs the shadow path on the latest book of each symbol in turn; see the module docstring."""

    def __init__(self, registry, setup, engine: Engine, source=None) -> None:
        from .marketdata import VenueMarketData

        cfg = setup.config
        self.engine = engine
        venue = engine.venue
        self._now = time.time_ns()
        # The venue's own twin when it has one (same class: the engine's call sites on the venue
        # keep one specialisation for the real tick), else a stand-in around its encoder.
        twin = venue.rehearsal_twin() if isinstance(venue, RehearsingVenue) else None
        shadow = self.shadow = Engine(
            twin if twin is not None else _ShadowVenue(venue),
            build_risk(setup.risk_checks),
            maker_bps=cfg.fees.maker_bps,
            taker_bps=cfg.fees.taker_bps,
            # A builtin, as the real engine's ``time.time_ns`` is: the interpreter specialises neither,
            # so the call site the two engines share is in one state on both paths (a Python method
            # here made the real tick miss it). Each call moves 2 s: the rate windows never fill.
            clock=itertools.count(self._now, _CLOCK_STEP_NS).__next__,
        )
        shadow.orders.retain_s = 0.0  # the shadow keeps no history
        left_out = []
        for rs in setup.strategies:
            if not getattr(engine.strategies.get(rs.id), "rehearse", True):
                left_out.append(rs.id)
                continue
            shadow.add_strategy(rs.id, rs.component.factory(rs.params), rs.symbols)
        if left_out:
            log.info("warm: strategies %s set rehearse = False; their code is not kept warm", ", ".join(left_out))
        # The shadow's market data goes in as the venue connection's does (VenueMarketData: the same
        # class, so the call sites the real and shadow paths share see the same functions and the
        # interpreter's specialisation of them holds for the real tick). Its own Pipeline, features
        # and books.
        front = VenueMarketData(registry, setup, shadow)
        self._pipeline = front.pipeline
        self._books = front.books
        self._on_market_data = front.on_market_data
        self._symbols = list(self._books)
        self._next = 0
        # Market data from the venue connection: the venue hands its last book to the shadow path
        # through its own receive code; otherwise the input is the engine's latest book message.
        rehearsing = isinstance(venue, RehearsingVenue)
        self._venue_md = venue.rehearse_market_data if rehearsing and hasattr(source, "books") else None
        # A source with its own decoding (ZeroMQ: JSON with the features already in) repeats it and
        # hands the message to the shadow engine; the shadow Pipeline is for the others.
        self._source_rehearse = getattr(source, "rehearse", None)
        # In-process feeds that can repeat their last book frame (``rehearse_market_data``, as a
        # venue does), in turn.
        self._feeds_md = [f.rehearse_market_data for f in getattr(source, "feeds", ())
                          if hasattr(f, "rehearse_market_data")]  # fmt: skip
        self._feed_next = 0
        #: The real books (read, never written), for the touch; found again with the other objects.
        self._real_books: list = []
        self._source = source
        self._touched: list = []
        self._touch_built = 0.0
        self.rehearsals = 0
        self._started = False
        self._step = 0

    def _root_objects(self) -> list:
        """The real path's objects, found anew now and then (topics and strategies' state come and go)."""
        engine = self.engine
        roots = [engine, engine.venue, engine.risk, engine.orders, engine.portfolio, engine.books,
                 *engine.books.values(), *engine.strategies.values(), *getattr(engine.risk, "checks", ())]  # fmt: skip
        source = self._source
        if source is not None:
            roots.append(source)
            pipeline = getattr(source, "pipeline", None)
            if pipeline is not None:  # its per-topic state: sequence, feature updaters
                roots += [pipeline, pipeline._books, *pipeline._books.values()]
        return roots

    def __call__(self) -> bool:
        """One step of a rehearsal; ``True`` when the round is complete.

        A round is three steps (the book through the shadow path; the reports of its orders; the
        touch of the real objects), so that a tick arriving meanwhile waits for one step at most:
        the idle loop polls between steps.
        """
        step = self._step
        if step == 0:
            if not self._decide():
                return True
            self._step = 1
            return False
        if step == 1:
            self._reports()
            self._step = 2
            return False
        self._step = 0
        self.touch()
        self.rehearsals += 1
        return True

    def run_round(self) -> None:
        """A whole round at once (tests, benchmarks)."""
        while not self():
            pass

    def _decide(self) -> bool:
        """The next symbol's latest book through the shadow path; ``False``: no book yet."""
        symbols = self._symbols
        if not symbols:
            return False
        sym = symbols[self._next]
        self._next = (self._next + 1) % len(symbols)
        msg = self.engine.books.get(sym)
        if msg is None:
            return False
        shadow = self.shadow
        if not self._started:
            self._started = True
            shadow.start()
        self._now += _CLOCK_STEP_NS
        if self._venue_md is not None:
            self._venue_md(self._on_market_data)
        elif self._feeds_md:
            feeds = self._feeds_md
            self._feed_next = (self._feed_next + 1) % len(feeds)
            feeds[self._feed_next](self._on_market_data)
        elif self._source_rehearse is None or not self._source_rehearse(shadow.on_book):
            self._on_market_data(sym, msg["bids"], msg["asks"], self._now)
        return True

    def _reports(self) -> None:
        """Every shadow order is acknowledged, then cancelled: the report path runs, and the
        strategy is free to send again next time."""
        shadow = self.shadow
        orders = shadow.orders
        if orders.open:
            on_report = shadow.on_execution_report
            for st in list(orders.open.values()):
                cid = st.cl_ord_id
                on_report(ExecutionReport(cid, cid, 0, st.symbol, st.side, _NEW, 0.0, 0.0, st.qty, 0.0, _NONE))
                on_report(ExecutionReport(cid, cid, 0, st.symbol, st.side, _CANCELED, 0.0, 0.0, 0.0, 0.0, _NONE))
            orders.orders.clear()

    def touch(self) -> None:
        """Read the real path's objects (one level into each), so their memory is in cache."""
        touched = self._touched
        if not touched or self._now - self._touch_built > 60 * _CLOCK_STEP_NS:
            self._touch_built = self._now
            touched[:] = _hot_objects(self._root_objects())
            source = self._source
            books = list(getattr(source, "books", {}).values())
            for feed in getattr(source, "feeds", ()):
                books += getattr(feed, "books", {}).values()
            self._real_books = [b for b in books if hasattr(b, "top_bids")]
        referents = gc.get_referents
        for obj in touched:
            referents(obj)
        for book in self._real_books:
            book.top_bids(1)
            book.top_asks(1)


def _hot_objects(roots: list) -> list:
    """The roots and what they hold directly (attributes, dict values), small containers only."""
    seen: dict[int, object] = {}
    for root in roots:
        for obj in (root, *gc.get_referents(root)):
            if isinstance(obj, type) or id(obj) in seen:
                continue
            if isinstance(obj, _CONTAINERS) and len(obj) > _TOUCH_MAX_LEN:
                continue
            seen[id(obj)] = obj
    return list(seen.values())
