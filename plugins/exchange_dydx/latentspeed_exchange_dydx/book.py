"""One market's book with the indexer's offsets rule: every level remembers the message_id of its last update.

dYdX's order book is optimistic and per-node, and the indexer's ``subscribed`` snapshot is
read from a replica, so a snapshot can carry stale levels and arrive with a ``message_id``
older than updates already seen (``message_id`` counts per connection across channels). The
dYdX guide "Watch orderbook" (https://docs.dydx.xyz/interaction/data/watch-orderbook) says to
use the message id as a logical offset per level and, when the book is crossed, to remove the
crossing level with the older offset; at equal offsets the smaller size is netted off the
larger. This class applies exactly that, on top of the core's sorted :class:`L2Book`.

Messages normally arrive in id order, and then no level can hold a newer id than the message
being applied: :meth:`apply` checks that once per message (``newest``, the highest id stored)
and hands both sides to the book in one call; only an out-of-order message goes level by level.

Every message is checked whole before any of it is applied or held: a level no book can hold
(NaN, inf, a price <= 0, a negative size) raises ``ValueError`` with nothing changed, so the feed
can count it and resubscribe (the book has missed an update).
"""

from __future__ import annotations

from latentspeed_core.book import L2Book, check_levels

#: Updates held for a market whose snapshot has not arrived; beyond this the oldest are dropped
#: (a snapshot that never comes is answered by a resubscribe, not by unbounded memory).
MAX_PENDING = 50_000
#: Relative tolerance for "equal sizes" when netting: 2.5 - 2.4 leaves 0.10000000000000009, and
#: netting that against 0.1 must not leave a 1e-17 level behind.
_SAME_SIZE = 1e-9


#: Crossing levels :meth:`OffsetBook.uncross` removes before it calls the book garbage. The
#: indexer's own crossings (fills it has not yet removed) are a handful of levels.
MAX_UNCROSS = 1_000


class OffsetBook:
    __slots__ = ("book", "bid_off", "ask_off", "newest", "ready", "pending", "stale", "uncrossed")

    def __init__(self, symbol: str) -> None:
        self.book = L2Book(symbol)
        self.bid_off: dict[float, int] = {}
        self.ask_off: dict[float, int] = {}
        #: Highest id held by any level (>= every value in bid_off/ask_off); -1: none yet.
        self.newest = -1
        #: True once a snapshot was applied: only then is the book published.
        self.ready = False
        #: (is_bid, price, size, offset) received before the snapshot.
        self.pending: list[tuple[bool, float, float, int]] = []
        #: Updates ignored because the level already holds a newer offset (counters for tests/logs).
        self.stale = 0
        self.uncrossed = 0

    def reset(self) -> None:
        """Forget everything (new connection or resubscribe): wait for a fresh snapshot."""
        self.book.clear()
        self.bid_off.clear()
        self.ask_off.clear()
        self.newest = -1
        self.pending.clear()
        self.ready = False

    def apply(self, bids, asks, offset: int) -> None:
        """Every level of one message with id ``offset``: ``(price, size)`` pairs, absolute sizes, 0 deletes.

        ``ValueError``, with nothing applied or held, if any level of either side is impossible.
        """
        if self.ready and offset >= self.newest:
            # In order: no level holds a newer id, nothing is stale, both sides go in one call that
            # checks every level before it changes anything.
            self.book.apply_levels(bids, asks)
            if bids:
                _stamp(self.bid_off, bids, offset)
            if asks:
                _stamp(self.ask_off, asks, offset)
            self.newest = offset
            return
        bids = check_levels(bids)
        asks = check_levels(asks)
        update = self.update
        for price, size in bids:
            update(True, price, size, offset)
        for price, size in asks:
            update(False, price, size, offset)

    def update(self, is_bid: bool, price: float, size: float, offset: int) -> None:
        """Absolute size at ``price`` (0 deletes), from the message with id ``offset``."""
        if not self.ready:
            pending = self.pending
            if len(pending) >= MAX_PENDING:
                del pending[: MAX_PENDING // 2]
            pending.append((is_bid, price, size, offset))
            return
        offs = self.bid_off if is_bid else self.ask_off
        last = offs.get(price)
        if last is not None and last > offset:  # the level already reflects a newer message
            self.stale += 1
            return
        if is_bid:
            self.book.set_bid(price, size)
        else:
            self.book.set_ask(price, size)
        if size > 0:
            offs[price] = offset
            if offset > self.newest:
                self.newest = offset
        elif last is not None:
            del offs[price]

    def snapshot(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]], offset: int) -> int:
        """Apply a ``subscribed`` snapshot with id ``offset``; returns how many held updates were replayed.

        Held updates newer than the snapshot are applied on top of it; older ones are dropped.
        On a book that is already live, levels updated after the snapshot's id keep their value.
        ``ValueError``, with nothing changed, if any level is impossible.
        """
        bids = check_levels(bids)
        asks = check_levels(asks)
        if self.ready:
            self._merge(bids, asks, offset)
        else:
            self.book.load_snapshot(bids, asks)
            self.bid_off = {p: offset for p, q in bids if q > 0}
            self.ask_off = {p: offset for p, q in asks if q > 0}
            self.newest = max(self.newest, offset)
            self.ready = True
        replayed = 0
        if self.pending:
            held, self.pending = self.pending, []
            for is_bid, price, size, off in held:
                if off > offset:
                    self.update(is_bid, price, size, off)
                    replayed += 1
                else:
                    self.stale += 1
        return replayed

    def _merge(self, bids, asks, offset: int) -> None:
        for is_bid, levels, offs in ((True, bids, self.bid_off), (False, asks, self.ask_off)):
            fresh = {p for p, q in levels if q > 0}
            for price in [p for p, o in offs.items() if o < offset and p not in fresh]:
                self.book.set(is_bid, price, 0.0)
                del offs[price]
            for price, size in levels:
                self.update(is_bid, price, size, offset)

    def uncross(self, limit: int = MAX_UNCROSS) -> int:
        """Remove crossing levels by the offsets rule until best bid < best ask; returns levels removed.

        A book crossed by more than ``limit`` levels is not a lagging indexer but garbage (found by
        fuzzing: a 200k-level crossed snapshot took 16 s, each removal costing the side's depth):
        ``ValueError`` after ``limit`` removals, and the feed resubscribes the market."""
        book = self.book
        removed = 0
        while book.is_crossed():
            if removed >= limit:
                self.uncrossed += removed
                raise ValueError(f"book crossed by more than {limit} levels")
            bid_p, bid_q = book.best_bid()
            ask_p, ask_q = book.best_ask()
            bid_o = self.bid_off.get(bid_p, 0)
            ask_o = self.ask_off.get(ask_p, 0)
            if bid_o < ask_o:
                self._drop(True, bid_p)
            elif bid_o > ask_o:
                self._drop(False, ask_p)
            elif abs(bid_q - ask_q) <= _SAME_SIZE * bid_q:  # equal up to float dust: both filled
                self._drop(True, bid_p)
                self._drop(False, ask_p)
                removed += 1
            elif bid_q > ask_q:  # same message: the smaller side was filled by the larger
                self._drop(False, ask_p)
                book.set_bid(bid_p, bid_q - ask_q)
            else:
                self._drop(True, bid_p)
                book.set_ask(ask_p, ask_q - bid_q)
            removed += 1
        self.uncrossed += removed
        return removed

    def _drop(self, is_bid: bool, price: float) -> None:
        if is_bid:
            self.book.set_bid(price, 0.0)
            self.bid_off.pop(price, None)
        else:
            self.book.set_ask(price, 0.0)
            self.ask_off.pop(price, None)


def _stamp(offs: dict[float, int], levels, offset: int) -> None:
    """Record ``offset`` as the id of each level set (size > 0); forget deleted levels."""
    for price, size in levels:
        if size > 0:
            offs[price] = offset
        else:
            offs.pop(price, None)
