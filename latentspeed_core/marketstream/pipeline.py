"""The marketstream hot path: a FeedSink turning books and trades into contract messages.

``feed → on_book/on_trade → message dict (+ features) → emit``. One dict per message, no
pydantic, no log formatting unless something is wrong. Per topic the pipeline keeps a
small state object (topic string, seq counter, feature updaters), found by one dict
lookup keyed on ``(exchange, symbol)``.

Emit targets are plain callables ``emit(topic, message) -> bool | None``: the ZeroMQ
publisher (which returns ``False`` for a message dropped at the high-water mark, counted
in the feed's ``publish_drops``) or the engine's in-process market data. Feeds count
their own ``books``/``trades`` (what they delivered); the pipeline counts ``publish_drops``
and, for crossed or invalid books it refuses, ``errors``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..book import L2Book
    from ..feed import Feed
    from ..types import Trade
    from .features import FeatureCalculator

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESYNC_RETRY_S = 5.0
Emit = Callable[[str, dict], "bool | None"]


def book_topic(exchange: str, symbol: str) -> str:
    return f"{exchange.upper()}-preprocessed_book-{symbol.upper()}"


def trade_topic(exchange: str, symbol: str) -> str:
    return f"{exchange.upper()}-preprocessed_trades-{symbol.upper()}"


class _Topic:
    __slots__ = ("topic", "exchange", "symbol", "seq", "updaters", "resync_at")

    def __init__(self, topic: str, exchange: str, symbol: str, updaters: list) -> None:
        self.topic = topic
        #: When a crossed book last asked the feed to resync (monotonic s; 0 = not pending).
        #: Asked again only after RESYNC_RETRY_S, so a burst of crossed deltas is one resync.
        self.resync_at = 0.0
        self.exchange = exchange
        self.symbol = symbol
        self.seq = 0
        self.updaters = tuple(updaters)


class Pipeline:
    """FeedSink building issue-5 book and trade messages and handing them to emitters."""

    def __init__(
        self,
        window_size: int,
        depth_levels: int,
        feature_calculators: Sequence[FeatureCalculator],
        emit_book: Emit,
        emit_trade: Emit,
    ) -> None:
        self.window_size = window_size
        self.depth_levels = depth_levels
        self.calculators = list(feature_calculators)
        self.emit_book = emit_book
        self.emit_trade = emit_trade
        self._books: dict[tuple[str, str], _Topic] = {}
        self._trades: dict[tuple[str, str], _Topic] = {}
        #: Books not published because they were crossed/locked, by feed name.
        self.crossed: dict[str, int] = {}
        self._last_log = 0.0

    # -- topic state -----------------------------------------------------------
    def _book_state(self, exchange: str, symbol: str) -> _Topic:
        topic = book_topic(exchange, symbol)
        ups = [u for c in self.calculators if (u := c.book_updater(topic)) is not None]
        st = self._books[(exchange, symbol)] = _Topic(topic, exchange.upper(), symbol.upper(), ups)
        return st

    def _trade_state(self, exchange: str, symbol: str) -> _Topic:
        topic = trade_topic(exchange, symbol)
        ups = [u for c in self.calculators if (u := c.trade_updater(topic)) is not None]
        st = self._trades[(exchange, symbol)] = _Topic(topic, exchange.upper(), symbol.upper(), ups)
        return st

    def book_seq(self, exchange: str, symbol: str) -> int:
        st = self._books.get((exchange, symbol))
        return st.seq if st else 0

    # -- FeedSink --------------------------------------------------------------
    def on_book(self, feed: Feed, symbol: str, book: L2Book, timestamp_ns: int, receipt_ns: int) -> None:
        n = self.depth_levels
        bids = book.top_bids(n)
        if not bids:
            return  # no book message while a side is empty (issue 5)
        asks = book.top_asks(n)
        if not asks:
            return
        st = self._books.get((feed.exchange, symbol))
        if st is None:
            st = self._book_state(feed.exchange, symbol)
        if bids[0][0] >= asks[0][0]:
            self._crossed(feed, st, symbol, bids[0][0], asks[0][0])
            return
        if not bids[-1][0] > 0.0:  # also NaN
            feed.error(f"{symbol}: non-positive price in book", bids[-1])
            return
        st.resync_at = 0.0
        st.seq += 1
        msg = {
            "exchange": st.exchange,
            "symbol": st.symbol,
            "timestamp_ns": timestamp_ns,
            "receipt_timestamp_ns": receipt_ns,
            "seq": st.seq,
            "bids": bids,
            "asks": asks,
        }
        for update in st.updaters:
            update(msg)
        msg["window_size"] = self.window_size
        msg["schema_version"] = SCHEMA_VERSION
        if self.emit_book(st.topic, msg) is False:
            feed.stats.publish_drops += 1

    def on_trade(self, feed: Feed, trade: Trade) -> None:
        price = trade.price
        amount = trade.amount
        if not (price > 0.0 and amount > 0.0):  # also rejects NaN
            feed.error(f"{trade.symbol}: trade with non-positive price or amount", (price, amount))
            return
        st = self._trades.get((feed.exchange, trade.symbol))
        if st is None:
            st = self._trade_state(feed.exchange, trade.symbol)
        st.seq += 1
        msg = {
            "exchange": st.exchange,
            "symbol": st.symbol,
            "timestamp_ns": trade.timestamp_ns,
            "receipt_timestamp_ns": trade.receipt_ns,
            "price": price,
            "amount": amount,
            "side": trade.side,
            "trade_id": trade.trade_id,
            "seq": st.seq,
        }
        for update in st.updaters:
            update(msg)
        msg["window_size"] = self.window_size
        msg["schema_version"] = SCHEMA_VERSION
        if self.emit_trade(st.topic, msg) is False:
            feed.stats.publish_drops += 1

    # -- bad books -------------------------------------------------------------
    def _crossed(self, feed: Feed, st: _Topic, symbol: str, bid: float, ask: float) -> None:
        """A crossed or locked book is never published; the feed rebuilds it (issue 5)."""
        self.crossed[feed.name] = self.crossed.get(feed.name, 0) + 1
        feed.stats.errors += 1
        now = time.monotonic()
        ask_resync = st.resync_at == 0.0 or now - st.resync_at >= RESYNC_RETRY_S
        if now - self._last_log >= 1.0:
            self._last_log = now
            log.warning(
                "%s: crossed book %s (bid %s >= ask %s): not published, resyncing (%d crossed so far)",
                feed.name,
                symbol,
                bid,
                ask,
                self.crossed[feed.name],
            )
        if ask_resync:
            st.resync_at = now
            feed.resync(symbol, f"crossed book (bid {bid} >= ask {ask})")
