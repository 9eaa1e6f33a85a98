"""Market-data sources of the engine: in-process feeds, a marketstream process over ZeroMQ, or a
source a plugin provides (the ``redis`` plugin's consumer of a marketstream's Redis streams).

Every way the engine receives the marketstream contract dicts. In-process, the feeds push
books into the marketstream :class:`Pipeline` whose emit targets are the engine (and any
extra listener, e.g. the paper-trading mock exchange); the message's own
``receipt_timestamp_ns`` (stamped by the feed on frame receipt) starts the latency clock.
Over ZeroMQ or Redis the engine stamps each message on arrival instead, so tick-to-trade measures
this process, not the marketstream's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson

from ..book import SnapshotBook
from ..config import FeedConfig
from ..feed import Feed
from .config import EngineSetup

log = logging.getLogger("latentspeed.engine.md")

#: Called with every book message before the engine sees it; returning ``False`` withholds
#: the message from the engine (e.g. while a paper-trading exchange is not priced yet).
BookListener = Callable[[dict], "bool | None"]


def _restamped(fn):
    clock = time.time_ns

    def call(msg: dict) -> None:
        fn(msg, clock())

    return call


class InProcessFeeds:
    """Feed plugins -> marketstream Pipeline -> engine callbacks, all on this event loop."""

    def __init__(
        self, registry, setup: EngineSetup, on_book, on_trade, listeners: list[BookListener] = (), reset_listener=None
    ) -> None:
        from ..marketstream.features import build_calculators
        from ..marketstream.pipeline import Pipeline

        md = setup.config.market_data
        self.feeds = []
        for cfg, name in zip(setup.feeds, setup.feed_names, strict=True):
            feed = registry.get("feeds", cfg.exchange.lower()).factory(cfg)
            feed.name = name
            feed.reset_listener = reset_listener
            self.feeds.append(feed)
        calcs = build_calculators(registry, md.window_size, md.depth_levels, md.features)
        if any(f.replay for f in setup.feeds):
            # A replayed message carries its recording's receipt stamp; latency is measured from now.
            on_book = _restamped(on_book)
            on_trade = _restamped(on_trade)
        if listeners:
            extra = tuple(listeners)

            def emit_book(topic: str, msg: dict, _on_book=on_book) -> None:
                for listener in extra:
                    if listener(msg) is False:
                        return
                _on_book(msg)

        else:

            def emit_book(topic: str, msg: dict, _on_book=on_book) -> None:
                _on_book(msg)

        def emit_trade(topic: str, msg: dict, _on_trade=on_trade) -> None:
            _on_trade(msg)

        self.pipeline = Pipeline(md.window_size, md.depth_levels, calcs, emit_book, emit_trade)

    async def run(self) -> None:
        await asyncio.gather(*(self._run_one(f) for f in self.feeds))

    async def _run_one(self, feed) -> None:
        try:
            await feed.run(self.pipeline)
        except Exception as exc:
            raise RuntimeError(f"feed {feed.name}: {type(exc).__name__}: {exc}") from exc

    def stats(self) -> dict:
        return {f.name: f.stats.as_dict() for f in self.feeds}

    def describe(self) -> str:
        return ", ".join(f"{f.name} ({f.config.endpoint()})" for f in self.feeds)


class ZmqSource:
    """Subscribe to a running ``latentspeed marketstream`` (books and trades ports)."""

    def __init__(self, setup: EngineSetup, on_book, on_trade, listeners: list[BookListener] = ()) -> None:
        from ..marketstream.subscriber import ZmqSubscriber

        z = self.z = setup.config.market_data.zmq
        extra = tuple(listeners)

        def book(topic: str, msg: dict) -> None:
            for listener in extra:
                if listener(msg) is False:
                    return
            on_book(msg, sub.receipt_ns)

        def trade(topic: str, msg: dict) -> None:
            on_trade(msg, sub.receipt_ns)

        sub = self.subscriber = ZmqSubscriber(
            z.host, z.port, z.topics, on_book=book, on_trade=trade, books_port=z.books_port
        )
        self._book = book
        self.feeds = []

    def rehearse(self, on_book) -> bool:
        """Decode the last message received again (engine/rehearsal.py); a book goes to ``on_book``.
        ``False`` when there was nothing to decode or it was not a book."""
        last = self.subscriber.last
        if last is None:
            return False
        payload, cb = last
        msg = orjson.loads(payload)
        if cb is not self._book:
            return False
        on_book(msg)
        return True

    async def run(self) -> None:
        await self.subscriber.run()

    def stats(self) -> dict:
        return {"zmq": {"messages": self.subscriber.received, "errors": self.subscriber.errors}}

    def describe(self) -> str:
        z = self.z
        ports = f"{z.port}" + (f", books {z.books_port}" if z.books_port else "")
        return f"marketstream tcp://{z.host}:{ports}"


def plugin_source(setup: EngineSetup, on_book, on_trade, listeners: list[BookListener] = ()):
    """A source a plugin provides (``market_data.redis``), fed decoded contract dicts.

    The plugin's ``factory(config, on_book, on_trade)`` gets one-argument callables: this
    process stamps each message on arrival (as over ZeroMQ) and shows books to the listeners
    first. Its object has ``run()``, ``stats()`` and ``describe()`` like :class:`ZmqSource`."""
    component, config = setup.plugin_source
    clock = time.time_ns
    extra = tuple(listeners)

    def book(msg: dict) -> None:
        receipt_ns = clock()
        for listener in extra:
            if listener(msg) is False:
                return
        on_book(msg, receipt_ns)

    def trade(msg: dict) -> None:
        on_trade(msg, clock())

    return component.factory(config, book, trade)


class _VenueFeed(Feed):
    """Stands for the venue connection where the Pipeline expects a feed (name, stats, errors)."""

    def __init__(self, venue) -> None:
        super().__init__(FeedConfig(exchange=venue.name.lower() or "venue"), f"{venue.name.lower()}-venue")
        self.exchange = venue.name

    async def run_live(self) -> None:  # the venue owns the connection
        return None

    def on_frame(self, data, receipt_ns) -> None:  # never called: books arrive decoded
        return None


class VenueMarketData:
    """Books and trades from the venue connection (``market_data.from_venue``) into the Pipeline.

    The venue calls ``listener.on_market_data(symbol, bids, asks, receipt_ns)`` (float
    ``[price, qty]`` lists, best first, sizes > 0, one level per price, fresh per message) and
    ``listener.on_venue_trade(trade)`` when the listener has them; they are set on the
    engine here, so a venue that carries no market data costs nothing.

    Methods, not closures: the engine's rehearsal (engine/rehearsal.py) runs a second instance on
    its shadow engine, and call sites the two share (the venue's ``_on_md``, the Pipeline's
    emitter) then see one function, so the interpreter's specialisation of them holds for the
    real tick.
    """

    def __init__(self, registry, setup: EngineSetup, engine, listeners: list[BookListener] = ()) -> None:
        from ..marketstream.features import build_calculators
        from ..marketstream.pipeline import Pipeline

        md = setup.config.market_data
        feed = self.feed = _VenueFeed(engine.venue)
        self.feeds = [feed]
        self._wanted = set(engine.symbols)
        self._extra = tuple(listeners)
        self._on_book = engine.on_book
        self._on_trade = engine.on_trade
        #: True while a superseded snapshot goes through the Pipeline (see on_superseded_market_data).
        self._superseded = False
        pipeline = self.pipeline = Pipeline(
            md.window_size, md.depth_levels, build_calculators(registry, md.window_size, md.depth_levels, md.features),
            self.emit_book, self.emit_trade,
        )  # fmt: skip
        self.books = {s: SnapshotBook(s) for s in self._wanted}
        self._pipe_book = pipeline.on_book
        self._pipe_trade = pipeline.on_trade
        self._stats = feed.stats
        engine.on_market_data = self.on_market_data
        if md.conflate:
            engine.on_superseded_market_data = self.on_superseded_market_data
        engine.on_venue_trade = self.on_venue_trade

    def emit_book(self, topic: str, msg: dict) -> None:
        for listener in self._extra:
            if listener(msg) is False:
                return
        if self._superseded:
            self._on_book(msg, 0, False)
        else:
            self._on_book(msg)

    def emit_trade(self, topic: str, msg: dict) -> None:
        self._on_trade(msg)

    def on_market_data(self, symbol: str, bids, asks, receipt_ns: int) -> None:
        self._stats.messages += 1
        book = self.books.get(symbol)
        if book is not None:
            book.load_sorted(bids, asks)  # the venue's decoded lists, as they are
            self._pipe_book(self.feed, symbol, book, receipt_ns, receipt_ns)

    def on_superseded_market_data(self, symbol: str, bids, asks, receipt_ns: int) -> None:
        """A later snapshot of this symbol is already in the same read: keep the book and the
        features exact (every snapshot goes through the Pipeline), but no strategy acts on a book
        that is stale before it is handled; the next one is decided on at once."""
        self._superseded = True
        try:
            self.on_market_data(symbol, bids, asks, receipt_ns)
        finally:
            self._superseded = False

    def on_venue_trade(self, trade) -> None:
        self._stats.messages += 1
        if trade.symbol in self._wanted:
            self._pipe_trade(self.feed, trade)

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to run: the venue task delivers

    def stats(self) -> dict:
        return {self.feed.name: self.feed.stats.as_dict()}

    def describe(self) -> str:
        return f"the {self.feed.exchange.lower()} venue connection"


def build_source(registry, setup: EngineSetup, engine, listeners: list[BookListener] = ()):
    """The configured market-data source, wired to the engine (and first to a simulated venue)."""
    from ..venue import MarketDataVenue, SimulatedVenue

    venue = engine.venue
    on_book, on_trade = engine.on_book, engine.on_trade
    if isinstance(venue, SimulatedVenue):
        # Paper trading: the venue sees each message first, so an order the engine sends on it
        # meets that very book; its clock is the message's receipt stamp (as in a backtest).
        venue_book, venue_trade = venue.on_book_message, venue.on_trade_message

        def on_book(msg: dict, receipt_ns: int = 0, act: bool = True, _engine=engine.on_book) -> None:
            venue_book(msg)
            _engine(msg, receipt_ns, act)

        def on_trade(msg: dict, receipt_ns: int = 0, _engine=engine.on_trade) -> None:
            venue_trade(msg)
            _engine(msg, receipt_ns)

    md = setup.config.market_data
    if md.zmq is not None:
        return ZmqSource(setup, on_book, on_trade, listeners)
    if setup.plugin_source is not None:
        return plugin_source(setup, on_book, on_trade, listeners)
    if md.from_venue:
        if not isinstance(venue, MarketDataVenue) or not venue.carries_market_data:
            raise ValueError(f"market_data.from_venue: venue {venue.name or type(venue).__name__} carries no market data")
        return VenueMarketData(registry, setup, engine, listeners)
    reset = venue.on_book_reset if isinstance(venue, SimulatedVenue) else None
    return InProcessFeeds(registry, setup, on_book, on_trade, listeners, reset)
