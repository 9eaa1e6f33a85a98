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
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..book import SnapshotBook
from ..types import Trade
from .features import _compiled as _compiled_features

if TYPE_CHECKING:
    from ..book import L2Book
    from ..feed import Feed
    from .features import FeatureCalculator

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESYNC_RETRY_S = 5.0
Emit = Callable[[str, dict], "bool | None"]


def book_topic(exchange: str, symbol: str) -> str:
    return f"{exchange.upper()}-preprocessed_book-{symbol.upper()}"


def trade_topic(exchange: str, symbol: str) -> str:
    return f"{exchange.upper()}-preprocessed_trades-{symbol.upper()}"


class _PyTopic:
    """A topic's state (sequence, feature updaters) building its messages: the reference for, and
    the fallback without, the compiled ``_features.Topic`` (one C call per message, its dict made
    at its final size, the standard updaters run directly; the same keys, order and values)."""

    __slots__ = (
        "topic",
        "exchange",
        "symbol",
        "updaters",
        "window_size",
        "schema_version",
        "seq",
        "resync_at",
    )

    def __init__(
        self, topic: str, exchange: str, symbol: str, updaters, window_size: int, schema_version: int
    ) -> None:
        self.topic = topic
        self.exchange = exchange
        self.symbol = symbol
        self.updaters = tuple(updaters)
        self.window_size = window_size
        self.schema_version = schema_version
        self.seq = 0
        #: When a crossed book last asked the feed to resync (monotonic s; 0 = not pending).
        #: Asked again only after RESYNC_RETRY_S, so a burst of crossed deltas is one resync.
        self.resync_at = 0.0

    def book(self, bids, asks, timestamp_ns: int, receipt_ns: int) -> dict | None:
        """The book message, or None when the Pipeline must look at the book itself (a side
        empty, crossed or locked, a non-positive price): nothing changed then."""
        if not bids or not asks or bids[0][0] >= asks[0][0] or not bids[-1][0] > 0.0:
            return None
        return _book_message(self, bids, asks, timestamp_ns, receipt_ns)

    def trade(self, timestamp_ns: int, receipt_ns: int, price, amount, side: str, trade_id) -> dict:
        self.seq += 1
        msg = {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timestamp_ns": timestamp_ns,
            "receipt_timestamp_ns": receipt_ns,
            "price": price,
            "amount": amount,
            "side": side,
            "trade_id": trade_id,
            "seq": self.seq,
        }
        for update in self.updaters:
            update(msg)
        msg["window_size"] = self.window_size
        msg["schema_version"] = self.schema_version
        return msg


def _book_message(st, bids, asks, timestamp_ns: int, receipt_ns: int) -> dict:
    """A book message of a book that passed the checks (any topic state, compiled or not)."""
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
    msg["window_size"] = st.window_size
    msg["schema_version"] = st.schema_version
    return msg


_Topic = _compiled_features.Topic if _compiled_features is not None else _PyTopic


class _PipelineCorePy:
    """The Pipeline's FeedSink entry points: the rule, in Python.

    ``_features.PipelineCore`` (C) is this for the usual case (levels the compiled topic state
    reads, trades of float price and amount), with the state these touch in its own fields, and
    calls these before changing anything for every other case; without the extension
    :class:`Pipeline` is built on this class instead."""

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
        msg = st.book(bids, asks, timestamp_ns, receipt_ns)
        if msg is None:
            msg = self._refused(feed, st, symbol, bids, asks, timestamp_ns, receipt_ns)
            if msg is None:
                return
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
        msg = st.trade(trade.timestamp_ns, trade.receipt_ns, price, amount, trade.side, trade.trade_id)
        if self.emit_trade(st.topic, msg) is False:
            feed.stats.publish_drops += 1


if _compiled_features is not None:
    _compiled_features.bind_pipeline(_PipelineCorePy.on_book, _PipelineCorePy.on_trade, SnapshotBook)
    _compiled_features.bind_trade(Trade)
    _PipelineCore: type = _compiled_features.PipelineCore
else:
    _PipelineCore = _PipelineCorePy


class Pipeline(_PipelineCore):
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
        st = self._topic(topic, exchange, symbol, [c.book_updater(topic) for c in self.calculators])
        self._books[(exchange, symbol)] = st
        return st

    def _topic(self, topic: str, exchange: str, symbol: str, updaters: list) -> _Topic:
        # The names interned, as the configs' symbols are: the engine's per-symbol dicts then find a
        # message's symbol by identity, with no string comparison per message.
        ups = [u for u in updaters if u is not None]
        return _Topic(
            topic, sys.intern(exchange.upper()), sys.intern(symbol.upper()), ups, self.window_size, SCHEMA_VERSION
        )

    def _trade_state(self, exchange: str, symbol: str) -> _Topic:
        topic = trade_topic(exchange, symbol)
        st = self._topic(topic, exchange, symbol, [c.trade_updater(topic) for c in self.calculators])
        self._trades[(exchange, symbol)] = st
        return st

    def book_seq(self, exchange: str, symbol: str) -> int:
        st = self._books.get((exchange, symbol))
        return st.seq if st else 0

    # -- bad books -------------------------------------------------------------
    def _refused(
        self, feed: Feed, st, symbol: str, bids, asks, timestamp_ns: int, receipt_ns: int
    ) -> dict | None:
        """A book the topic state did not build a message of: crossed or locked, a non-positive
        price (None: not published), or levels the compiled state does not read (not lists of
        float pairs: the message is built here, the same)."""
        if bids[0][0] >= asks[0][0]:
            self._crossed(feed, st, symbol, bids[0][0], asks[0][0])
            return None
        if not bids[-1][0] > 0.0:  # also NaN
            feed.error(f"{symbol}: non-positive price in book", bids[-1])
            return None
        return _book_message(st, bids, asks, timestamp_ns, receipt_ns)

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
