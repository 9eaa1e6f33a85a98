"""The dYdX v4 indexer feed: one connection, ``v4_orderbook`` (+ ``v4_trades``) per market.

Protocol (https://docs.dydx.xyz/indexer-client/websockets): a ``connected`` message, then per
subscription one ``subscribed`` message with the snapshot, then ``channel_data`` (or, when
subscribed with ``batched``, ``channel_batch_data`` whose ``contents`` is a list). Order book
levels carry absolute sizes. ``message_id`` counts per connection across all channels; the
book keeps it per level (book.py) to uncross by the documented offsets rule.

A book message (or snapshot) with a level that does not parse or that no book can hold (NaN, inf,
a price <= 0, a negative size) changes nothing, is counted, and resubscribes that market, as the
feed does for its other errors: the indexer has no other way to send a fresh snapshot. A trades
message with an impossible trade is counted and none of it is published.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from latentspeed_core.ws import WsFeed

from .book import OffsetBook
from .config import DydxConfig
from .parsing import (
    BOOK,
    EXCHANGE,
    TRADES,
    TRANSIENT_ERROR,
    Envelope,
    book_levels,
    envelope,
    error_target,
    parse_trades,
    snapshot_contents,
    snapshot_levels,
    subscribe_message,
    trade_contents,
    typed_trades,
    unsubscribe_message,
)

log = logging.getLogger(__name__)

SUBSCRIBING, SUBSCRIBED, RESYNCING = "subscribing", "subscribed", "resyncing"
#: Message types that carry order book levels.
_BOOK_DATA = ("channel_data", "channel_batch_data", "subscribed")


class DydxFeed(WsFeed):
    exchange = EXCHANGE
    config: DydxConfig

    def __init__(self, config: DydxConfig, name: str | None = None) -> None:
        super().__init__(config, name)
        self.silence_timeout = config.silence_timeout
        self.books: dict[str, OffsetBook] = {s: OffsetBook(s) for s in config.symbols}
        channels = (BOOK, TRADES) if config.trades else (BOOK,)
        #: (channel, market) -> SUBSCRIBING | SUBSCRIBED | RESYNCING, for this connection.
        self.subscriptions: dict[tuple[str, str], str] = {
            (c, s): SUBSCRIBING for s in config.symbols for c in channels
        }
        #: Trade ids of each market's ``subscribed`` snapshot: history, never published as new.
        self._snapshot_trades: dict[str, set[str]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.connection_id: str | None = None

    # -- WsFeed hooks --------------------------------------------------------------
    def subscribe_messages(self) -> list[str]:
        batched = self.config.batched
        return [subscribe_message(c, s, batched) for c, s in self.subscriptions]

    def on_connect(self) -> None:
        """A new connection has no subscriptions: every book waits for its fresh ``subscribed``."""
        for book in self.books.values():
            book.reset()
        for key in self.subscriptions:
            self.subscriptions[key] = SUBSCRIBING
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._snapshot_trades.clear()
        self.connection_id = None

    def resync(self, symbol: str, reason: str) -> None:
        """dYdX has no REST-snapshot handshake: unsubscribe, then subscribe again for a fresh snapshot."""
        super().resync(symbol, reason)
        book = self.books.get(symbol)
        if book is None:
            return
        book.reset()
        key = (BOOK, symbol)
        if self.subscriptions.get(key) == RESYNCING:
            return  # already on its way to a fresh snapshot
        self.subscriptions[key] = RESYNCING
        self.send(unsubscribe_message(BOOK, symbol))
        self._subscribe_later(key)

    # -- frames ---------------------------------------------------------------------
    def on_frame(self, data: bytes | str, receipt_ns: int) -> None:
        """Typed fast path for data messages; everything else (and anything malformed) takes the dict path."""
        env = envelope(data)
        if env is not None and self._on_typed(env, data, receipt_ns):
            return
        try:
            self._on_dict_frame(data, receipt_ns)
        except orjson.JSONDecodeError as exc:
            # msgspec read the envelope but orjson cannot read the contents (a bare 1e999 is infinity
            # to it): for an order book message the book has missed an update, as with any bad level.
            if env is None or env.channel != BOOK or env.id not in self.books or env.type not in _BOOK_DATA:
                raise
            self._malformed_book(env.id, exc, data)

    def _on_typed(self, env: Envelope, data: bytes | str, receipt_ns: int) -> bool:
        """Handle a typed data message; False (before any effect) when its contents do not fit."""
        kind = env.type
        channel = env.channel
        if kind == "channel_data" or kind == "channel_batch_data":
            if channel == BOOK:
                levels = book_levels(env)
                if levels is None:
                    return False
                self._apply(env.id, levels[0], levels[1], env.message_id, receipt_ns, data)
                return True
            if channel == TRADES:
                contents = trade_contents(env)
                if contents is None:
                    return False
                self._trades(env.id, contents, receipt_ns, typed_trades)
                return True
        elif kind == "subscribed" and channel == BOOK:
            levels = snapshot_contents(env)
            if levels is None or (BOOK, env.id) not in self.subscriptions:
                return False
            self.subscriptions[(BOOK, env.id)] = SUBSCRIBED
            self._snapshot(env.id, levels[0], levels[1], env.message_id, receipt_ns, data)
            return True
        return False

    def _snapshot(self, symbol: str, bids: list, asks: list, offset: int, receipt_ns: int, data: Any) -> None:
        """Apply and publish a ``subscribed`` book snapshot; one with an impossible level resubscribes."""
        book = self.books[symbol]
        try:
            book.snapshot(bids, asks, offset)
        except ValueError as exc:
            self._malformed_book(symbol, exc, data)
            return
        self._publish(book, receipt_ns)

    def _malformed_book(self, symbol: str, exc: Exception, data: Any) -> None:
        """A book message that was not applied: count it and, since the book has missed it, resubscribe."""
        self.error(f"bad {BOOK} levels for {symbol}: {type(exc).__name__}: {exc}", data)
        self.resync(symbol, "malformed order book update")

    def _apply(self, symbol: str, bids: list, asks: list, offset: int, receipt_ns: int, data: Any) -> None:
        """One book message of float pairs (a batch's contents already joined): apply, uncross, publish once."""
        book = self.books.get(symbol)
        if book is None:
            self.error(f"order book data for unsubscribed market {symbol!r}")
            return
        try:
            book.apply(bids, asks, offset)
        except ValueError as exc:  # an impossible level: nothing of the message was applied
            self._malformed_book(symbol, exc, data)
            return
        if book.ready:
            self._publish(book, receipt_ns)

    def _on_dict_frame(self, data: bytes | str, receipt_ns: int) -> None:
        """Control messages, and data messages that do not fit the typed shapes: every error rule lives here."""
        msg = orjson.loads(data)
        if type(msg) is not dict:
            self.error("frame is not a JSON object", data)
            return
        kind = msg.get("type")
        if kind == "channel_data":
            channel = msg.get("channel")
            if channel == BOOK:
                self._book_update(msg["id"], (msg["contents"],), msg["message_id"], receipt_ns)
            elif channel == TRADES:
                self._trades(msg["id"], (msg["contents"],), receipt_ns)
            else:
                self.error(f"data for a channel we did not subscribe: {channel!r}", data)
        elif kind == "channel_batch_data":
            channel = msg.get("channel")
            if channel == BOOK:
                self._book_update(msg["id"], msg["contents"], msg["message_id"], receipt_ns)
            elif channel == TRADES:
                self._trades(msg["id"], msg["contents"], receipt_ns)
            else:
                self.error(f"data for a channel we did not subscribe: {channel!r}", data)
        elif kind == "subscribed":
            self._subscribed(msg, receipt_ns, data)
        elif kind == "connected":
            self.connection_id = msg.get("connection_id")
        elif kind == "error":
            self._on_error(msg, data)
        elif kind == "unsubscribed":
            self._unsubscribed(msg)
        elif kind == "pong":
            pass
        else:
            self.error(f"unknown message type {kind!r}", data)

    def _book_update(self, symbol: str, contents: Any, offset: int, receipt_ns: int) -> None:
        """Dict path of a book message: convert every level of every content, then apply as one message."""
        book = self.books.get(symbol)
        if book is None:
            self.error(f"order book data for unsubscribed market {symbol!r}")
            return
        try:
            bids: list = []
            asks: list = []
            for content in contents:
                side = content.get("bids")
                if side:
                    bids += [(float(lvl[0]), float(lvl[1])) for lvl in side]
                side = content.get("asks")
                if side:
                    asks += [(float(lvl[0]), float(lvl[1])) for lvl in side]
            if type(offset) is not int:
                raise TypeError(f"message_id {offset!r} is not an integer")
            book.apply(bids, asks, offset)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            # The message is lost (nothing of it was applied): the book misses an update, resubscribe.
            self._malformed_book(symbol, exc, contents)
            return
        if book.ready:
            self._publish(book, receipt_ns)

    def _publish(self, book: OffsetBook, receipt_ns: int) -> None:
        if book.book.is_crossed():
            try:
                book.uncross()
            except ValueError as exc:  # crossed beyond any lag: garbage, nothing is published
                self._malformed_book(book.book.symbol, exc, None)
                return
        self.stats.books += 1
        sink = self.sink
        if sink is not None:
            # The indexer stamps no time on order book messages: receipt time stands in.
            sink.on_book(self, book.book.symbol, book.book, receipt_ns, receipt_ns)

    def _trades(self, symbol: str, contents: Any, receipt_ns: int, parse=parse_trades) -> None:
        """Every content's trades, all parsed before any of them is emitted (``parse``: dict or typed
        contents): a batch with an impossible trade raises ``ValueError`` (counted) and publishes nothing."""
        if (TRADES, symbol) not in self.subscriptions:
            self.error(f"trades for unsubscribed market {symbol!r}")
            return
        seen = self._snapshot_trades.get(symbol)
        deleveraged = self.config.deleveraged_trades
        parsed = [parse(content, symbol, receipt_ns, deleveraged, seen) for content in contents]
        sink = self.sink
        for trades in parsed:
            for trade in trades:
                self.stats.trades += 1
                if sink is not None:
                    sink.on_trade(self, trade)

    def _subscribed(self, msg: dict, receipt_ns: int, data: Any) -> None:
        channel = msg.get("channel")
        symbol = msg.get("id")
        key = (channel, symbol)
        if key not in self.subscriptions:
            self.error(f"subscribed to something we did not ask for: {channel} {symbol}", data)
            return
        self.subscriptions[key] = SUBSCRIBED
        contents = msg["contents"]
        if channel == BOOK:
            try:
                bids = snapshot_levels(contents.get("bids"))
                asks = snapshot_levels(contents.get("asks"))
            except (TypeError, ValueError, IndexError, KeyError) as exc:
                # Without a usable snapshot the book would wait for ever: resubscribe for another.
                self._malformed_book(symbol, exc, data)
                return
            self._snapshot(symbol, bids, asks, msg["message_id"], receipt_ns, data)
        else:
            # The snapshot lists recent history: remember it so a replay of those ids is not
            # reported as new trades, and publish nothing from it.
            self._snapshot_trades[symbol] = {t["id"] for t in contents.get("trades") or ()}

    def _on_error(self, msg: dict, data: Any) -> None:
        text = msg.get("message") or ""
        channel, symbol = error_target(msg)
        if text.startswith(TRANSIENT_ERROR) and channel is not None:
            if symbol is not None:
                keys = [(channel, symbol)] if (channel, symbol) in self.subscriptions else []
            else:  # older indexers name only the channel: retry what of it is still unanswered
                keys = [k for k, st in self.subscriptions.items() if k[0] == channel and st != SUBSCRIBED]
            for key in keys:
                log.warning("%s: %s; resubscribing %s %s", self.name, text, *key)
                self._subscribe_later(key)
            self.stats.errors += 1
            return
        if "already subscribed" in text:
            log.info("%s: %s", self.name, text)
            return
        self.error(f"indexer error: {text}", data)

    def _unsubscribed(self, msg: dict) -> None:
        key = (msg.get("channel"), msg.get("id"))
        state = self.subscriptions.get(key)
        if state is None or state == RESYNCING:
            return  # our own unsubscribe: the subscribe is already scheduled
        log.warning("%s: indexer unsubscribed %s %s; subscribing again", self.name, *key)
        if key[0] == BOOK:
            self.books[key[1]].reset()
        self.subscriptions[key] = SUBSCRIBING
        self._subscribe_later(key)

    def _subscribe_later(self, key: tuple[str, str]) -> None:
        """Subscribe ``key`` again after ``resubscribe_delay``: the indexer allows 2 subscribes per
        connection + channel + id per second and closes the connection beyond that."""
        msg = subscribe_message(key[0], key[1], self.config.batched)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven synchronously (unit tests): nothing to send on anyway
            self.send(msg)
            return

        def fire() -> None:
            self._timers.pop(key, None)
            if self.subscriptions.get(key) != SUBSCRIBED:
                self.subscriptions[key] = SUBSCRIBING
                self.send(msg)

        self._timers[key] = loop.call_later(self.config.resubscribe_delay, fire)
