"""What a feed test compares against, and what it records: a reference book kept the slow, obvious
way, and a sink that keeps every published book and trade and notes every impossible one.

:class:`ReferenceBook` shares no code with :class:`latentspeed_core.book.L2Book`: two dicts keyed by
``Decimal`` price, sorted only when read. A feed's book must equal it level by level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

Level = tuple[float, float]


@dataclass(frozen=True)
class BookUpdate:
    """One book message as a venue's rules read it: absolute sizes (0 deletes) for ``bids`` and
    ``asks`` as ``(price, size)`` text or numbers; ``snapshot`` replaces the book. ``seq`` is the
    venue's update id (the last id the message covers; dYdX: its ``message_id``), or None."""

    bids: list = field(default_factory=list)
    asks: list = field(default_factory=list)
    seq: int | None = None
    snapshot: bool = False


@dataclass(frozen=True)
class TradePrint:
    """A public trade as a venue's rules read it: what the feed must publish."""

    price: float
    amount: float
    side: str
    trade_id: str


def _dec(x: Any) -> Decimal:
    d = x if isinstance(x, Decimal) else Decimal(x if isinstance(x, str) else repr(x))
    if not d.is_finite():
        raise ValueError(f"reference book fed a non-finite number: {x!r}")
    return d


class ReferenceBook:
    """An order book as two plain dicts (``Decimal`` price -> ``Decimal`` size), sorted when read.

    Venue rules that change more than levels (dYdX's offsets and uncrossing) belong in a subclass in
    the venue's tests, overriding :meth:`apply` and :meth:`load`.
    """

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        #: ``seq`` of the last snapshot or update applied (None: not numbered, or nothing yet).
        self.seq: int | None = None
        #: ``seq`` of the last snapshot: a REST venue's buffered updates at or below it do not apply.
        self.snapshot_seq: int | None = None

    def load(self, bids, asks, seq: int | None = None) -> None:
        """Replace the book (a snapshot)."""
        self.bids.clear()
        self.asks.clear()
        self.apply(bids, asks, seq)
        self.snapshot_seq = seq

    def apply(self, bids, asks, seq: int | None = None) -> None:
        """Set absolute sizes, 0 deletes; a negative size is bad input (``ValueError``)."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                p, q = _dec(price), _dec(size)
                if q < 0 or p <= 0:
                    raise ValueError(f"reference book fed an impossible level: {price!r} {size!r}")
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        if seq is not None:
            self.seq = seq

    def update(self, u: BookUpdate) -> bool:
        """Apply a :class:`BookUpdate`; False (nothing applied) for an update at or below the last
        snapshot's ``seq`` (an event the snapshot already holds)."""
        if u.snapshot:
            self.load(u.bids, u.asks, u.seq)
            return True
        if u.seq is not None and self.snapshot_seq is not None and u.seq <= self.snapshot_seq:
            return False
        self.apply(u.bids, u.asks, u.seq)
        return True

    def decimal_levels(self, depth: int | None = None) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        """Best first, as ``Decimal`` pairs (to write a snapshot frame of this state)."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks

    def levels(self, depth: int | None = None) -> tuple[list[Level], list[Level]]:
        """Best first, as ``(price, size)`` float pairs: what :func:`book_levels` gives for a feed's book."""
        bids, asks = self.decimal_levels(depth)
        return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]

    def copy(self) -> ReferenceBook:
        other = object.__new__(type(self))
        other.__dict__.update({k: (v.copy() if isinstance(v, dict) else v) for k, v in self.__dict__.items()})
        return other


def book_levels(book, depth: int | None = None) -> tuple[list[Level], list[Level]]:
    """A feed's book (an ``L2Book``) as ``(price, size)`` pairs, best first: every level, or ``depth``."""
    n = len(book) if depth is None else depth
    return [tuple(x) for x in book.top_bids(n)], [tuple(x) for x in book.top_asks(n)]


class PublishedBook(NamedTuple):
    symbol: str
    bids: list[Level]
    asks: list[Level]
    timestamp_ns: int
    receipt_ns: int


class RecordingSink:
    """A ``FeedSink`` that keeps every published book (its top ``depth`` levels per side, every level
    when None) and trade, the live book of each symbol, and every violation of what may be published:
    a level or trade whose price is not finite and > 0 or whose size is not finite and > 0, or a crossed
    book. It never raises: the feed would count an exception here as a bad frame and hide the failure."""

    def __init__(self, depth: int | None = 1000) -> None:
        self.depth = depth
        self.books: list[PublishedBook] = []
        self.trades: list = []
        #: The book object last published per symbol: the feed's live book.
        self.live: dict[str, Any] = {}
        self.violations: list[str] = []

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        bids, asks = book_levels(book, self.depth)
        bad = [lv for lv in bids + asks if not (0 < lv[0] < math.inf and 0 < lv[1] < math.inf)]
        if bad:
            self.violations.append(f"{symbol}: impossible levels published: {bad[:3]}")
        if bids and asks and bids[0][0] >= asks[0][0]:
            self.violations.append(f"{symbol}: crossed book published: {bids[0]} / {asks[0]}")
        self.books.append(PublishedBook(symbol, bids, asks, timestamp_ns, receipt_ns))
        self.live[symbol] = book

    def on_trade(self, feed, trade) -> None:
        if not (0 < trade.price < math.inf and 0 < trade.amount < math.inf):
            self.violations.append(f"impossible trade published: {trade}")
        self.trades.append(trade)

    def count(self, symbol: str) -> int:
        """Books published for ``symbol``."""
        return sum(1 for b in self.books if b.symbol == symbol)

    def last(self, symbol: str) -> tuple[list[Level], list[Level]]:
        """The levels of the last book published for ``symbol``."""
        for b in reversed(self.books):
            if b.symbol == symbol:
                return b.bids, b.asks
        raise AssertionError(f"no book published for {symbol}")
