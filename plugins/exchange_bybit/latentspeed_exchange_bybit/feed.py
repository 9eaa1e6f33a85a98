"""Bybit v5 public market data: one WebSocket, many symbols, one continuous book per symbol.

Venue rules followed (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook):
a ``snapshot`` resets the book; a ``delta`` sets absolute sizes (0 deletes); the update id
``u`` of consecutive messages increases by exactly one, and ``u == 1`` is a snapshot sent
after a service restart (overwrite, no continuity check); ``seq`` is a cross sequence,
not a gap detector. Bybit has no REST sync for WebSocket books, so a gap (or a crossed
book) is repaired by resubscribing the symbol's orderbook topic, dropping deltas until
the new snapshot arrives; if that snapshot does not come, the connection is rebuilt.
A malformed orderbook message (a level that does not parse, or that no book can hold: NaN, inf,
a price <= 0, a negative size) is counted, changes nothing, and resyncs the same way: the book
has missed an update. A trade frame with an impossible trade is counted and not published.
"""

from __future__ import annotations

import os
import time

import msgspec
import orjson

from latentspeed_core import book as _book_mod
from latentspeed_core.book import L2Book
from latentspeed_core.ws import WsFeed

from . import parsing
from .config import BybitConfig

_BAD_LEVELS = (ValueError, TypeError, IndexError, KeyError)

#: The forms of an orderbook message's levels (``BybitFeed._on_book``).
_LISTS, _RAW, _PARSED = 0, 1, 2
#: The compiled one-pass reader of book frames (None in a pure-Python build: the typed path then).
#: It takes only frames msgspec's typed decoding reads with the same values, and parses and checks
#: their levels in the same pass; anything else is None, and the typed path decides as before.
_scan = _book_mod.scan_book_frame
_TOP_KEYS = ("topic", "type", "ts")
_DATA_KEYS = ("u",)

try:  # the usual delta in C (frame_handler); absent in a pure-Python build
    if os.environ.get("LATENTSPEED_PURE_PYTHON") or _scan is None:
        raise ImportError("pure Python")
    from ._route import route as _route
except ImportError:
    _route = None


class _BookState:
    """Per-symbol book and continuity state."""

    __slots__ = ("symbol", "venue_symbol", "topic", "book", "last_u", "awaiting_since")

    def __init__(self, symbol: str, venue_symbol: str, topic: str) -> None:
        self.symbol = symbol
        self.venue_symbol = venue_symbol
        self.topic = topic
        self.book = L2Book(symbol)
        #: ``u`` of the last applied message; None until a snapshot arrives.
        self.last_u: int | None = None
        #: monotonic time since which a snapshot is awaited (None: book is live).
        self.awaiting_since: float | None = None


class _TradeState:
    __slots__ = ("symbol",)

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol


class BybitFeed(WsFeed):
    """Feed ``bybit``: ``orderbook.{depth}.{symbol}`` books and ``publicTrade.{symbol}`` trades."""

    exchange = parsing.EXCHANGE
    # read by the compiled handler on every frame (_route.c)
    __slots__ = ("_topics",)
    config: BybitConfig

    def __init__(self, config: BybitConfig, name: str | None = None) -> None:
        super().__init__(config, name)
        self.ping_interval = config.ping_interval
        self.silence_timeout = config.silence_timeout
        self.books: dict[str, _BookState] = {}  # by normalised symbol
        self._topics: dict[str, _BookState | _TradeState] = {}
        for symbol in config.symbols:
            venue = parsing.to_venue_symbol(symbol)
            state = _BookState(symbol, venue, parsing.book_topic(config.depth, venue))
            self.books[symbol] = state
            self._topics[state.topic] = state
            if config.trades:
                self._topics[parsing.trade_topic(venue)] = _TradeState(symbol)
        self._ping_since: float | None = None
        #: Deltas dropped while a book awaited its snapshot (not errors: the resync rule).
        self.dropped_deltas = 0
        #: Subscribe/unsubscribe acknowledgements and pongs received (for logs and tests).
        self.acks = 0
        self.pongs = 0

    # -- WsFeed hooks ------------------------------------------------------------
    def subscribe_messages(self) -> list[str]:
        topics = list(self._topics)
        max_args = self.config.subscribe_batch
        if self.config.market == "spot":
            max_args = min(max_args, parsing.SPOT_MAX_ARGS)
        return [
            _request("subscribe", batch, f"sub-{i}")
            for i, batch in enumerate(parsing.batch_args(topics, max_args))
        ]

    def ping_message(self) -> str | None:
        return parsing.PING

    def send(self, msg: str) -> None:
        if msg == parsing.PING and not self._keepalive_ok():
            return
        super().send(msg)

    def on_connect(self) -> None:
        """A new connection: every book waits for the snapshot its subscription brings."""
        now = time.monotonic()
        for state in self.books.values():
            state.book.clear()
            state.last_u = None
            state.awaiting_since = now
        self._ping_since = None

    # -- frames -------------------------------------------------------------------
    def frame_handler(self):
        """The usual orderbook delta (on_frame's first branch, then _on_book) in one C call, the same
        effects; snapshots, gaps and every other frame go to :meth:`on_frame` before anything changes."""
        cls = type(self)
        if _route is None or cls.on_frame is not BybitFeed.on_frame or cls._on_book is not BybitFeed._on_book:
            return self.on_frame
        return _route(self, self.on_frame, _scan, (_TOP_KEYS, "data", _DATA_KEYS, None), _BookState)

    def on_frame(self, data: bytes | str, receipt_ns: int) -> None:
        """Fast paths for book and trade frames; everything else takes the dict path."""
        if _scan is not None:  # a book frame in its plainest form, levels parsed in the same pass
            scanned = _scan(data, _TOP_KEYS, "data", _DATA_KEYS, None)
            if scanned is not None:
                topic, kind, ts, u, levels = scanned
                state = self._topics.get(topic)
                if (
                    type(state) is _BookState
                    and type(kind) is str
                    and type(ts) is int
                    and type(u) is int
                    and levels is not None
                ):
                    self._on_book(state, kind, ts, u, levels, None, _PARSED, data, receipt_ns)
                    return
        frame = parsing.decode(data)
        if frame is not None:
            state = self._topics.get(frame.topic)
            d = frame.data
            if type(state) is _BookState and type(d) is parsing.BookData:
                self._on_book(state, frame.type, frame.ts, d.u, d.b, d.a, _RAW, data, receipt_ns)
                return
            if type(state) is _TradeState and type(d) is list:
                self._emit_trades(parsing.typed_trades(d, state.symbol, receipt_ns))
                return
        self._on_dict_frame(data, receipt_ns)

    def _on_dict_frame(self, data: bytes | str, receipt_ns: int) -> None:
        """Op replies, unknown topics and frames that do not fit the typed shape: every error rule lives here."""
        msg = orjson.loads(data)
        if type(msg) is not dict:
            self.error("frame is not a JSON object", data)
            return
        topic = msg.get("topic")
        if topic is None:
            self._on_op(msg, data)
            return
        state = self._topics.get(topic)
        if state is None:
            self.error(f"unknown topic {topic!r}", data)
        elif type(state) is _BookState:
            d = msg["data"]
            self._on_book(state, msg["type"], msg["ts"], d["u"], d["b"], d["a"], _LISTS, data, receipt_ns)
        else:
            # parse all before emitting any
            self._emit_trades(parsing.trades(msg, state.symbol, receipt_ns))

    def _on_book(
        self,
        st: _BookState,
        kind: str,
        ts: object,
        u: object,
        bids: list | msgspec.Raw | bytes,
        asks: list | msgspec.Raw | None,
        form: int,
        data: bytes | str,
        receipt_ns: int,
    ) -> None:
        """One orderbook message; levels are raw JSON (``_RAW``, typed path), lists of Bybit's quoted
        numbers (``_LISTS``, dict path), or both sides already parsed and checked by ``scan_book_frame``
        (``_PARSED``: ``bids`` holds them). Raw levels that the compiled parser refuses send the whole
        frame to the dict path, which owns every error rule (the book is untouched until both sides parse).

        ``u`` and ``ts`` arrive as sent (typed or not) and are checked here, once for both paths.
        """
        if type(u) is not int or type(ts) is not int:
            self.error("orderbook frame with a non-integer u or ts", data)
            return
        book = st.book
        if kind == "snapshot" or u == 1:
            # A snapshot resets the book; u == 1 is the post-restart snapshot (no continuity check).
            if form == _PARSED:
                book.load_parsed(bids)
            elif form == _RAW:
                try:  # load_json refuses malformed and impossible levels, with the book untouched
                    book.load_json(bids, asks)
                except ValueError:
                    self._refused_raw_levels(st, "snapshot", data, receipt_ns)
                    return
            else:
                levels = self._float_levels(st, bids, asks, "snapshot", data)
                if levels is None:
                    return
                book.load_snapshot(*levels)
            st.awaiting_since = None
        elif kind == "delta":
            last = st.last_u
            if last is None:
                self.dropped_deltas += 1
                self._check_resync_timeout(st)
                return
            if u != last + 1:
                if u <= last:
                    self.error(f"stale delta u={u} after u={last}", data)
                    return
                self.resync(st.symbol, f"update id gap: expected u={last + 1}, got u={u}")
                return
            # Absolute sizes, 0 deletes. Raw levels go to the book in one C call that checks both
            # sides (syntax and possible values) before it changes anything.
            if form == _PARSED:
                book.apply_parsed(bids)
            elif form == _RAW:
                try:
                    book.apply_json(bids, asks)
                except ValueError:
                    self._refused_raw_levels(st, "delta", data, receipt_ns)
                    return
            else:
                levels = self._float_levels(st, bids, asks, "delta", data)
                if levels is None:
                    return
                book.apply_levels(*levels)
        else:
            self.error(f"unknown orderbook message type {kind!r}", data)
            return
        st.last_u = u
        if book.is_crossed():
            self.resync(st.symbol, f"crossed book bid={book.best_bid()} ask={book.best_ask()} at u={u}")
            return
        self.stats.books += 1
        self.sink.on_book(self, st.symbol, book, ts * 1_000_000, receipt_ns)

    def _refused_raw_levels(self, st: _BookState, what: str, data: bytes | str, receipt_ns: int) -> None:
        """Raw levels the compiled parser refused: the dict path decides (it owns every error rule). A
        frame it cannot even decode is malformed levels too, and must resync like them: msgspec takes
        a bare ``1e999`` as valid JSON, orjson refuses it as infinity."""
        try:
            self._on_dict_frame(data, receipt_ns)
        except orjson.JSONDecodeError as exc:
            self.error(f"bad {what} levels: {exc}", data)
            self.resync(st.symbol, f"malformed {what}")

    def _float_levels(self, st: _BookState, bids, asks, what: str, data: bytes | str) -> tuple | None:
        """Dict path: quoted levels to float pairs, or None once a malformed message is counted and resynced.

        Resync, not just skip: the book has missed this message, and a Bybit book is rebuilt only from
        the snapshot sent on (re)subscribe ("If you receive a new snapshot message, you will have to
        reset your local orderbook": https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook
        #process-snapshotdelta).
        """
        try:
            return parsing.levels(bids), parsing.levels(asks)
        except _BAD_LEVELS as exc:
            self.error(f"bad {what} levels: {exc}", data)
            self.resync(st.symbol, f"malformed {what}")
            return None

    def _emit_trades(self, trades: list) -> None:
        sink = self.sink
        for trade in trades:
            sink.on_trade(self, trade)
        self.stats.trades += len(trades)

    def _on_op(self, msg: dict, data: bytes | str) -> None:
        kind = parsing.op_kind(msg)
        if kind == "pong":
            self.pongs += 1
            self._ping_since = None
        elif kind in ("subscribe", "unsubscribe"):
            if msg.get("success") is True:
                self.acks += 1
                return
            reason = msg.get("ret_msg")
            self.error(f"{kind} refused: {reason}", data)
            req_id = str(msg.get("req_id") or "")
            if kind == "subscribe" and req_id.startswith("resync-"):
                # The resubscribe that should bring a fresh snapshot failed: rebuild the connection.
                self.reconnect(f"resubscribe refused for {req_id[7:]}: {reason}")
        else:
            self.error("unknown frame", data)

    # -- resync -------------------------------------------------------------------
    def resync(self, symbol: str, reason: str) -> None:
        """Drop the book and resubscribe its topic: Bybit resends a snapshot on subscribe."""
        super().resync(symbol, reason)
        st = self.books[symbol]
        st.book.clear()
        st.last_u = None
        st.awaiting_since = time.monotonic()
        self.send(_request("unsubscribe", [st.topic], f"unsub-{st.venue_symbol}"))
        self.send(_request("subscribe", [st.topic], f"resync-{st.venue_symbol}"))

    def _check_resync_timeout(self, st: _BookState) -> bool:
        since = st.awaiting_since
        if since is not None and time.monotonic() - since > self.config.resync_timeout:
            st.awaiting_since = time.monotonic()  # one reconnect per timeout, not one per frame
            self.reconnect(f"no snapshot for {st.symbol} within {self.config.resync_timeout:g}s")
            return False
        return True

    def _keepalive_ok(self) -> bool:
        """Before each ping: no ping unanswered for two intervals, and no book stuck without a snapshot.

        Measured from the oldest unanswered ping (any pong proves the connection alive), with
        a margin because pings queue behind subscribes in the transport's rate limit.
        """
        now = time.monotonic()
        since = self._ping_since
        if since is not None and now - since >= 1.5 * self.ping_interval:
            self._ping_since = None
            self.reconnect(f"no pong for {now - since:.1f}s after a ping")
            return False
        if not all(self._check_resync_timeout(st) for st in self.books.values()):
            return False
        if since is None:
            self._ping_since = now
        return True


def _request(op: str, args: list[str], req_id: str) -> str:
    return orjson.dumps({"req_id": req_id, "op": op, "args": args}).decode()
