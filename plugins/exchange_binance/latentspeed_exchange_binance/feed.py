"""Binance spot / USD-M feed: diff-depth books synchronised with REST snapshots, and trades.

The book rules follow Binance's "How to manage a local order book correctly" (spot:
developers.binance.com/docs/binance-spot-api-docs/web-socket-streams; USD-M:
developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/
How-to-manage-a-local-order-book-correctly). Until a symbol is synchronised its book is
never published; any gap discards the book and starts over from a fresh snapshot.

Spot carries depth and trades on one connection. USD-M needs two since Binance's base-URL split
(developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/
Important-WebSocket-Change-Notice): depth on ``/public``, trades on ``/market``. The trades connection
is a small :class:`TradesConnection` that hands its frames to this feed's ``deliver_frame`` (one
capture, one replay) and reconnects on its own without touching the books.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from latentspeed_core.book import L2Book, scan_book_frame
from latentspeed_core.feed import Feed
from latentspeed_core.types import new_trade
from latentspeed_core.ws import WsFeed

from .config import BinanceConfig
from .parsing import (
    EXCHANGE,
    AggTradeEvent,
    Depth,
    ServerShutdown,
    TradeEvent,
    ValidationError,
    combined_url,
    decode_combined,
    decode_other,
    decode_snapshot_raw,
    event_time_ns,
    parse_snapshot,
    parse_trade,
    snapshot_url,
    streams,
    trade_streams,
    venue_symbol,
)

log = logging.getLogger(__name__)

SKIPPED, APPLIED, RESYNCED = 0, 1, 2
_INF = float("inf")

#: The compiled one-pass reader of frames (None in a pure-Python build). It takes only depth and trade
#: events that ``decode_combined`` reads with the same values (plain JSON: no escapes, floats or nesting
#: beyond the event; a trade's price and quantity quoted decimals), parses and checks a depth event's
#: levels in the same pass, and gives a trade's fields as values; anything else is None, or (a request's
#: answer, bookTicker) stops at the event type: the decoders below decide, as before.
_scan = scan_book_frame
_TOP_KEYS = ("stream",)
#: Depth (e s U u E T pu), then a trade's (t p q m) and an aggTrade's id (a); T is both's.
_KEYS = ("e", "s", "U", "u", "E", "T", "pu", "t", "p", "q", "m", "a")
_TAGS = ("e", ("depthUpdate", "trade", "aggTrade"))
_DECIMALS = ("p", "q")

try:  # on_frame's first branch in C (frame_handler); absent in a pure-Python build
    if os.environ.get("LATENTSPEED_PURE_PYTHON") or _scan is None:
        raise ImportError("pure Python")
    from ._route import route as _route
except ImportError:
    _route = None


def _event(data: bytes | str) -> Depth:
    """The decoded event of a frame ``scan_book_frame`` read (to buffer it): the same values."""
    return decode_combined(data).data


class SymbolState:
    """Per-symbol book and synchronisation state."""

    __slots__ = (
        "symbol",
        "venue",
        "book",
        "synced",
        "first",
        "last_u",
        "buffer",
        "requested",
        "last_request",
        "timer",
        "url",
    )

    def __init__(self, symbol: str, url: str) -> None:
        self.symbol = symbol
        self.venue = venue_symbol(symbol)
        self.url = url
        self.book = L2Book(symbol)
        self.requested = False
        self.last_request = -1e9
        self.timer: asyncio.TimerHandle | None = None
        self.reset()

    def reset(self) -> None:
        """Discard the book: buffer events again until a snapshot arrives."""
        self.book.clear()
        self.synced = False
        self.first = False  # USD-M: the next event is the first one processed after the snapshot
        self.last_u = 0
        self.buffer: list[tuple[Depth, int]] = []


class TradesConnection(WsFeed):
    """The USD-M trades connection (``/market`` route) of a :class:`BinanceFeed`.

    Its frames go through the feed's ``deliver_frame``, so they are recorded, counted and parsed exactly
    like the depth connection's, and a capture replays without knowing there were two connections. It
    shares the feed's ``stats`` (its reconnects and errors are the feed's). Trades carry no state, so its
    (re)connects neither reset nor resync a book, and are not recorded: a replayed ``connect`` would.
    """

    def __init__(self, feed: BinanceFeed, url: str) -> None:
        super().__init__(feed.config, f"{feed.name}:trades")
        self.feed = feed
        self.stats = feed.stats
        self._url = url

    def ws_url(self) -> str:
        return self._url

    def deliver_connect(self, receipt_ns: int | None = None) -> None:
        """Nothing to rebuild: trades are stateless, and the books belong to the depth connection."""

    def deliver_frame(self, data: bytes | str, receipt_ns: int) -> None:
        feed = self.feed
        feed._source = self  # a serverShutdown on this connection must move this connection only
        try:
            feed.deliver_frame(data, receipt_ns)
        finally:
            feed._source = feed

    def on_frame(self, data: bytes | str, receipt_ns: int) -> None:
        self.feed.on_frame(data, receipt_ns)


#: Transport settings the trades connection takes from its feed when it starts (tests tune the feed).
_SHARED_SETTINGS = (
    "silence_timeout",
    "max_lifetime",
    "subscribe_rate",
    "backoff_initial",
    "backoff_max",
    "healthy_after",
    "protocol_ping_interval",
    "open_timeout",
    "close_timeout",
    "max_size",
    "compression",
)


class BinanceFeed(WsFeed):
    exchange = "BINANCE"
    # read by the compiled handler on every frame (_route.c)
    __slots__ = ("_syms", "usdm")
    #: Binance closes every connection after 24 h; reconnect a little before, on our terms.
    max_lifetime = 24 * 3600 - 300
    #: Binance allows 5 incoming messages per second (pings, pongs and requests alike); keep one spare.
    subscribe_rate = 4.0
    #: Minimum spacing of snapshot requests per symbol (spot depth limit 1000 weighs 50 of 6000/min).
    snapshot_min_interval = 1.0
    #: Events kept while waiting for a snapshot; beyond this the buffer restarts.
    max_buffer = 10_000

    def __init__(self, config: BinanceConfig, name: str | None = None) -> None:
        super().__init__(config, name)
        self.silence_timeout = config.silence_timeout
        self.usdm = config.market == "usdm"
        channel = config.trade_channel if config.trades else None
        #: USD-M: the ``/market`` connection carrying the trades (None on spot, or without trades).
        self.trades_connection: TradesConnection | None = None
        #: The connection whose frame is being handled (the trades one sets itself while it delivers).
        self._source: WsFeed = self
        if self.usdm:
            self._url = combined_url(config.ws_url, streams(config.symbols, config.depth_speed, None, "usdm"))
            if channel:
                url = combined_url(config.trades_ws_url, trade_streams(config.symbols, channel))
                self.trades_connection = TradesConnection(self, url)
        else:
            self._url = combined_url(config.ws_url, streams(config.symbols, config.depth_speed, channel))
        self._syms: dict[str, SymbolState] = {}
        self._by_symbol: dict[str, SymbolState] = {}
        for s in config.symbols:
            st = SymbolState(s, snapshot_url(config.rest_url, config.market, s, config.snapshot_limit))
            self._syms[st.venue] = st
            self._by_symbol[s] = st

    def ws_url(self) -> str:
        return self._url

    async def run_live(self) -> None:
        """The depth connection, and on USD-M the trades connection beside it, each reconnecting on its own."""
        trades = self.trades_connection
        if trades is None:
            await super().run_live()
            return
        for key in _SHARED_SETTINGS:
            setattr(trades, key, getattr(self, key))
        async with asyncio.TaskGroup() as group:  # either failing ends both; cancelling the feed ends both
            group.create_task(trades.run_live(), name=trades.name)
            await super().run_live()

    def book(self, symbol: str) -> L2Book:
        """The live book of ``symbol`` (``BTC-USDT``); only valid while :meth:`synced`."""
        return self._by_symbol[symbol].book

    def synced(self, symbol: str) -> bool:
        return self._by_symbol[symbol].synced

    # -- inputs ------------------------------------------------------------------
    def on_connect(self) -> None:
        for st in self._syms.values():
            if st.timer is not None:
                st.timer.cancel()
                st.timer = None
            st.requested = False
            st.reset()

    def frame_handler(self):
        """on_frame's first branch (the usual depth update and trade) in one C call, the same effects;
        every other frame, and every gap, goes to :meth:`on_frame` before anything changes."""
        cls = type(self)
        if (
            _route is None
            or cls.on_frame is not BinanceFeed.on_frame
            or cls._apply_seq is not BinanceFeed._apply_seq
        ):
            return self.on_frame
        return _route(
            self,
            self.on_frame,
            _scan,
            (_TOP_KEYS, "data", _KEYS, _TAGS, _DECIMALS),
            SymbolState,
            new_trade,
            EXCHANGE,
        )

    def on_frame(self, data: bytes | str, receipt_ns: int) -> None:
        if _scan is not None:  # a depth or trade event in its plainest form, read in one pass
            scanned = _scan(data, _TOP_KEYS, "data", _KEYS, _TAGS, _DECIMALS)
            if scanned is not None:
                stream, e, s, U, u, E, T, pu, t, p, q, m, a, levels = scanned
                st = self._syms.get(s)
                if st is None or type(stream) is not str:
                    pass  # the decoders below decide (and count the error)
                elif e == "depthUpdate":
                    if (
                        st.synced
                        and levels is not None
                        and type(U) is int
                        and type(u) is int
                        and (E is None or type(E) is int)
                        and (T is None or type(T) is int)
                        and (pu is None or type(pu) is int)
                    ):
                        # what decode_combined would give: Depth(s, U, u, b, a, E=0, T=0, pu=-1)
                        pu = -1 if pu is None else pu
                        if self._apply_seq(st, U, u, pu, None, levels, data, receipt_ns) == APPLIED:
                            self.stats.books += 1
                            sink = self.sink
                            if sink is not None:
                                sink.on_book(self, st.symbol, st.book, (T or E or 0) * 1_000_000, receipt_ns)
                        return
                else:  # trade or aggTrade: parse_trade of what decode_combined would give
                    tid = t if e == "trade" else a
                    if (
                        type(tid) is int
                        and type(T) is int
                        and type(m) is bool
                        and p is not None  # floats when present
                        and q is not None
                        and 0.0 < p < _INF
                        and 0.0 < q < _INF
                    ):
                        self.stats.trades += 1
                        sink = self.sink
                        if sink is not None:
                            sink.on_trade(
                                self,
                                new_trade(
                                    EXCHANGE,
                                    st.symbol,
                                    T * 1_000_000,
                                    receipt_ns,
                                    p,
                                    q,
                                    "sell" if m else "buy",
                                    str(tid),
                                ),
                            )
                        return
        # parsing.decode() inlined, and the publication of an applied depth event below: on the hot
        # path each Python call saved is ~0.1 µs (docs/performance.md, marketstream).
        try:
            ev = decode_combined(data).data
        except ValidationError:
            ev = decode_other(data)
        cls = type(ev)
        if cls is Depth:
            st = self._syms.get(ev.s)
            if st is None:
                self.error("depth update for an unsubscribed symbol", data)
            elif st.synced:
                if self._apply(st, ev, receipt_ns) == APPLIED:
                    self.stats.books += 1
                    sink = self.sink
                    if sink is not None:  # event time: T where given (USD-M), else E; ms → ns
                        sink.on_book(self, st.symbol, st.book, (ev.T or ev.E) * 1_000_000, receipt_ns)
            else:
                self._buffer(st, ev, receipt_ns)
        elif cls is TradeEvent or cls is AggTradeEvent:
            st = self._syms.get(ev.s)
            if st is None:
                self.error("trade for an unsubscribed symbol", data)
            else:
                trade = parse_trade(ev, st.symbol, receipt_ns)  # ValueError (counted) if impossible
                self.stats.trades += 1
                if self.sink is not None:
                    self.sink.on_trade(self, trade)
        elif cls is ServerShutdown:  # the venue will close this connection soon: move now
            self._source.reconnect("venue sent serverShutdown")
        elif "result" in ev and "id" in ev:
            pass  # answer to a request (LIST_SUBSCRIPTIONS etc.)
        elif "code" in ev and "msg" in ev:
            self.error(f"venue error {ev['code']}: {ev['msg']}", data)
        else:
            self.error(f"unknown event {ev.get('e')!r}", data)

    def on_rest(self, key: str, body: bytes | str, receipt_ns: int) -> None:
        st = self._syms.get(key)
        if st is None:
            self.error(f"REST answer for unknown key {key!r}")
            return
        st.requested = False
        if st.synced:
            return  # a late duplicate; the book is already synchronised
        # Fast paths: the body read and loaded in one pass, else its raw levels straight into the
        # (unsynchronised, hence empty and unpublished) book. Anything they refuse, parse_snapshot
        # decides, exactly as without them.
        try:
            lid = st.book.load_snapshot_json(body, "lastUpdateId", "bids", "asks")
            if lid is None:
                snap = decode_snapshot_raw(body)
                st.book.load_json_plain(snap.bids, snap.asks)
                lid = snap.lastUpdateId
            loaded = True
        except ValueError:
            loaded = False
            try:
                lid, bids, asks = parse_snapshot(body)
            except ValueError as exc:
                # Not a snapshot, or impossible levels in it: count it and fetch another (step 3 again);
                # the buffered events wait for it.
                self.error(f"{st.symbol}: bad depth snapshot: {exc}", body)
                Feed.resync(self, st.symbol, "unusable depth snapshot")
                self._request_snapshot(st)
                return
        buf = st.buffer
        if buf and lid < buf[0][0].U:
            # Spot rule: a snapshot older than the first buffered event is refetched (go back to step 3).
            if loaded:
                st.book.clear()
            Feed.resync(
                self, st.symbol, f"snapshot lastUpdateId {lid} older than first buffered U {buf[0][0].U}"
            )
            self._request_snapshot(st)
            return
        if not loaded:
            st.book.load_snapshot(bids, asks)
        st.last_u = lid
        st.synced = True
        st.first = True
        st.buffer = []
        ts = 0
        for i, (ev, rns) in enumerate(buf):
            try:
                r = self._apply(st, ev, rns)
            except Exception as exc:  # counted; a half-applied event has already reset the book
                self.error(f"bad buffered depth event: {type(exc).__name__}: {exc}", ev)
                if st.synced:
                    continue  # rejected before touching the book; the sequence rules catch the hole
                r = RESYNCED
            if r == RESYNCED:  # the event was re-buffered; keep the rest behind it
                for later in buf[i + 1 :]:
                    self._buffer(st, *later)
                return
            if r == APPLIED:
                ts = event_time_ns(ev)
        if st.book.is_crossed():
            self.resync(st.symbol, "crossed book after loading the snapshot")
            return
        self._publish(st, ts or receipt_ns, receipt_ns)

    # -- book rules --------------------------------------------------------------
    def _apply(self, st: SymbolState, ev: Depth, receipt_ns: int) -> int:
        """Apply one event to a synchronised book by the market's sequencing rules."""
        return self._apply_seq(st, ev.U, ev.u, ev.pu, ev, None, None, receipt_ns)

    def _apply_seq(
        self, st: SymbolState, U: int, u: int, pu: int, ev: Depth | None, levels, data, receipt_ns: int
    ) -> int:
        """:meth:`_apply` of a decoded event ``ev``, or (``ev`` None) of the event of frame ``data`` read by
        ``scan_book_frame``: its fields, and its ``levels`` already parsed and checked."""
        last = st.last_u
        if self.usdm:
            if st.first:
                if u < last:  # USD-M: drop events with u < lastUpdateId
                    return SKIPPED
                if U > last:  # the first processed event must have U <= lastUpdateId <= u
                    return self._gap(
                        st,
                        ev or _event(data),
                        receipt_ns,
                        f"first event U {U} after snapshot lastUpdateId {last}",
                    )
                st.first = False
            elif pu != last:  # USD-M: every event's pu equals the previous event's u
                return self._gap(st, ev or _event(data), receipt_ns, f"pu {pu} != previous u {last}")
        else:
            if u <= last:  # spot: u <= the book's update id → ignore
                return SKIPPED
            if U > last + 1:  # spot: U > update id + 1 → discard the book and restart
                return self._gap(st, ev or _event(data), receipt_ns, f"gap: U {U} > last u {last} + 1")
        # apply_json converts and checks every level of both sides before it changes the book: a
        # malformed event (bad JSON, NaN, inf, a price <= 0, a negative size) raises with the book untouched.
        book = st.book
        if levels is not None:  # parsed and checked by scan_book_frame
            book.apply_parsed(levels)
        else:
            try:
                book.apply_json(ev.b, ev.a)
            except ValueError as exc:
                return self._malformed(st, ev, f"malformed depth update u {u}: {exc}")
        st.last_u = u
        if book.is_crossed():
            self.resync(st.symbol, f"crossed book after update u {u}")
            return RESYNCED
        return APPLIED

    def _malformed(self, st: SymbolState, ev: Depth, reason: str) -> int:
        """A depth event that cannot be applied: count it, and since the book now misses an update,
        discard the book and fetch a fresh snapshot at once, as for a lost event ("otherwise initialize
        the process from step 3", How to manage a local order book correctly). The refused event itself
        is not buffered."""
        self.error(reason)  # the reason names the bad level; the event's repr would not show it
        self.resync(st.symbol, reason)
        if not st.requested:
            self._request_snapshot(st)
        return RESYNCED

    def _gap(self, st: SymbolState, ev: Depth, receipt_ns: int, reason: str) -> int:
        self.resync(st.symbol, reason)
        self._buffer(st, ev, receipt_ns)  # the event that showed the gap starts the new buffer
        return RESYNCED

    def resync(self, symbol: str, reason: str) -> None:
        """Binance's way: discard the book, buffer events again and fetch a fresh snapshot."""
        super().resync(symbol, reason)
        self._by_symbol[symbol].reset()

    def _buffer(self, st: SymbolState, ev: Depth, receipt_ns: int) -> None:
        buf = st.buffer
        if len(buf) >= self.max_buffer:
            self.error(
                f"{st.symbol}: {len(buf)} events buffered without a usable snapshot; restarting the buffer"
            )
            buf.clear()
        buf.append((ev, receipt_ns))
        if not st.requested:
            self._request_snapshot(st)

    def _request_snapshot(self, st: SymbolState) -> None:
        st.requested = True
        if not self._live:
            return  # replay: the recorded REST answers arrive by themselves
        wait = st.last_request + self.snapshot_min_interval - time.monotonic()
        if wait > 0:
            if st.timer is None:
                st.timer = asyncio.get_running_loop().call_later(wait, self._fetch, st)
        else:
            self._fetch(st)

    def _fetch(self, st: SymbolState) -> None:
        st.timer = None
        st.last_request = time.monotonic()
        self.request_rest(st.venue, st.url)

    def _publish(self, st: SymbolState, timestamp_ns: int, receipt_ns: int) -> None:
        self.stats.books += 1
        sink = self.sink
        if sink is not None:
            sink.on_book(self, st.symbol, st.book, timestamp_ns, receipt_ns)
