"""MockFeed: books and trades from a running mock exchange (``exchange: mock``).

Every MARKET_DATA is a full top-N snapshot, so a book is simply reloaded from it
and handed to the sink; TRADE becomes a :class:`~latentspeed_core.types.Trade`.

Record/replay contract: the transport splits the TCP stream into messages and
calls :meth:`Feed.deliver_frame` with exactly ONE complete protocol message
(header included) as ``bytes``; :meth:`MockFeed.on_frame` parses exactly one such
message, so a replayed capture drives the same code. Symbol names come from the
SECURITY_DEFINITION frames, which are recorded like any other frame.
"""

from __future__ import annotations

import logging

from latentspeed_core.book import L2Book, SnapshotBook
from latentspeed_core.feed import Feed, FeedStats
from latentspeed_core.types import Trade

from . import protocol as P
from .client import ExchangeLink, maintain
from .config import MockFeedConfig

log = logging.getLogger("latentspeed_mock_exchange.feed")

#: Fixed point to float by division: the nearest double, with no 2997.2000000000003 noise.
_SCALE = P.SCALE
_TRADE_SIDES = ("buy", "sell")
_market_data_head = P.market_data_head


class MockFeed(Feed):
    exchange = "MOCK"
    # read and written by the compiled handler on every MARKET_DATA (_fastproto.market_data_route)
    __slots__ = ("_defined", "_names", "books", "_last_md")

    def __init__(self, config: MockFeedConfig | None = None, name: str | None = None) -> None:
        super().__init__(config or MockFeedConfig(), name)
        self._wanted = frozenset(self.config.symbols)  # empty: every symbol the exchange defines
        self._names: dict[int, str] = {}
        self.books: dict[str, L2Book] = {}
        self._fresh = False
        self._defined = False
        #: The last MARKET_DATA parsed, for :meth:`rehearse_market_data`, and its scratch state.
        self._last_md: bytes | None = None
        self._scratch: tuple | None = None

    # -- transport ---------------------------------------------------------------------------
    async def run_live(self) -> None:
        await maintain(f"{self.name} feed", self.config, self._on_frames, self._on_link, self._on_down)

    def _on_link(self, link: ExchangeLink) -> None:
        self._fresh = True

    def _on_down(self, link: ExchangeLink, reason: str) -> None:
        if reason != "stopped":
            self.stats.reconnects += 1

    def _on_frames(self, frames: list, receipt_ns: int) -> None:
        if self._fresh:
            self._fresh = False
            self.deliver_connect(receipt_ns)
        length_of = P.unpack_header
        for _t, buf, off in frames:
            n = length_of(buf, off)[0]
            self.deliver_frame(buf[off : off + n] if off or n != len(buf) else buf, receipt_ns)

    # -- rehearsal (engine/rehearsal.py) ------------------------------------------------------
    def rehearse_market_data(self, on_market_data) -> None:
        """Parse the last MARKET_DATA again through :meth:`on_frame`, on scratch books and stats,
        handing the book to ``on_market_data(symbol, bids, asks, receipt_ns)``; nothing real changes."""
        data = self._last_md
        if data is None:
            return
        real = self.sink, self.books, self.stats, self._last_md
        scratch = self._scratch
        if scratch is None or scratch[1].keys() != self.books.keys():
            scratch = self._scratch = (_Rehearsal(), {s: SnapshotBook(s) for s in self.books}, FeedStats())
        scratch[0].on_market_data = on_market_data
        self.sink, self.books, self.stats = scratch
        try:
            self.on_frame(data, 0)
        finally:
            self.sink, self.books, self.stats, self._last_md = real

    # -- parsing (sans-IO: live and replay) -----------------------------------------------
    def on_connect(self) -> None:
        self._names.clear()
        self.books.clear()
        self._defined = False

    def frame_handler(self):
        """The usual MARKET_DATA in one C call (``_fastproto.market_data_route``): what
        :meth:`on_frame` does with it; every other message goes to :meth:`on_frame`."""
        cls = type(self)
        if (
            P.market_data_route is None
            or cls.on_frame is not MockFeed.on_frame
            or cls._on_market_data is not MockFeed._on_market_data
        ):
            return self.on_frame
        return P.market_data_route(self, self.on_frame, SnapshotBook)

    def on_frame(self, data: bytes | str, receipt_ns: int) -> None:
        """Parse ONE complete protocol message (``bytes``, header included)."""
        head = _market_data_head(data)
        if head is not None:  # one well-formed MARKET_DATA, the usual message: checked in one C call
            self._on_market_data(data, head[0], head[1], receipt_ns)
            if not self._defined:
                self._first_data()
            return
        if not isinstance(data, bytes | bytearray | memoryview):
            self.error("expected a binary protocol message", data)
            return
        size = len(data)
        try:
            length = P.check_frame(data, 0, size)
        except P.ProtocolError as exc:
            self.error(f"malformed message: {exc}", bytes(data[:64]).hex())
            return
        if length != size:
            self.error(f"expected one complete message, got {size} bytes (message length {length or '?'})")
            return
        msg_type = data[2]  # u16 little-endian; every known type fits in the low byte
        if msg_type == P.MARKET_DATA:
            _l, _t, _s, ts, sid, _n = P.MD_MSG_HEAD.unpack_from(data, 0)
            self._on_market_data(data, ts, sid, receipt_ns)
        elif msg_type == P.TRADE:
            _l, _t, _s, ts, sid, px, qty, aggr, tid = P.unpack_trade(data, 0)
            name = self._names.get(sid)
            if name is None or (self._wanted and name not in self._wanted):
                return
            if px <= 0 or qty <= 0:
                self.error(f"impossible TRADE: price {px} qty {qty} (fixed point)")
                return
            self.stats.trades += 1
            self.sink.on_trade(
                self,
                Trade("MOCK", name, ts, receipt_ns, px / _SCALE, qty / _SCALE, _TRADE_SIDES[aggr & 1], str(tid)),
            )
        elif msg_type == P.SECURITY_DEFINITION:
            _l, _t, _s, _ts, sid, _tick, _lot, raw = P.unpack_security_definition(data, 0)
            name = P.symbol_name(raw)
            self._names[sid] = name
            if not self._wanted or name in self._wanted:
                self.books[name] = SnapshotBook(name)
        # HEARTBEAT: liveness only. EXECUTION_REPORT never reaches a feed (it sends no orders).
        if msg_type != P.SECURITY_DEFINITION and not self._defined:
            self._first_data()

    def _first_data(self) -> None:
        """The first message after the definitions: say which wanted symbols the exchange lacks."""
        self._defined = True
        missing = self._wanted - set(self._names.values())
        if missing:
            log.warning("%s: the exchange does not define %s; defined: %s", self.name,
                        ", ".join(sorted(missing)), ", ".join(self._names.values()))  # fmt: skip

    def _on_market_data(self, data: bytes, ts: int, sid: int, receipt_ns: int) -> None:
        name = self._names.get(sid)
        if name is None:
            self.error(f"MARKET_DATA for undefined symbol_id {sid}")
            return
        book = self.books.get(name)
        if book is None:  # not subscribed
            return
        self._last_md = data
        # A full snapshot, decoded best first with sizes > 0: kept as is (no dict, no sort).
        _sid, bids, asks = P.decode_book(data, 0)
        book.load_sorted(bids, asks)
        self.stats.books += 1
        self.sink.on_book(self, name, book, ts, receipt_ns)


class _Rehearsal:
    """The feed's sink during :meth:`MockFeed.rehearse_market_data`: the book goes to the shadow path."""

    on_market_data = None

    def on_book(self, feed, symbol: str, book, timestamp_ns: int, receipt_ns: int) -> None:
        self.on_market_data(symbol, book.top_bids(_REHEARSAL_DEPTH), book.top_asks(_REHEARSAL_DEPTH), receipt_ns)

    def on_trade(self, feed, trade) -> None:
        pass


_REHEARSAL_DEPTH = 64
