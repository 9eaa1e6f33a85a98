"""The execution-venue contract: what the engine needs from a venue, and what a venue may offer.

A venue keeps its own connection (reconnecting with backoff) and reports everything
through a :class:`VenueListener`. ``send_*`` calls never block: they encode and write,
and results come back as execution reports. Every venue subclasses :class:`Venue`.

Optional capabilities are typed protocols, checked once when the engine is built (never
per message):

- :class:`BatchingVenue`: ``cork()`` / ``uncork()``; the engine corks around each strategy
  callback so a requote (cancels + new orders) leaves in one write.
- :class:`InstrumentVenue`: ``instruments``, tick and lot size per symbol (strategies round
  to them, ``ctx.instrument``).
- :class:`MarketDataVenue`: the order connection carries market data too; it calls the
  listener's :class:`VenueMarketDataListener` methods (``market_data.from_venue``).
- :class:`SimulatedVenue`: the venue fills against the engine's own market data (paper
  trading, backtests): every book and trade message is shown to it before the engine.
  Its time is a clock it is given (:meth:`SimulatedVenue.advance`), never the wall clock
  inside matching, so a backtest drives it on recorded time.
- :class:`RehearsingVenue`: does a tick's venue work again (handle the last market data, encode
  and sign an order) without sending anything or changing any state, so the
  engine can keep that code warm in the CPU caches while idle (engine/rehearsal.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from .types import ExecutionReport, Order, Trade


class VenueListener(Protocol):
    def on_execution_report(self, report: ExecutionReport) -> None: ...

    def on_venue_connected(self) -> None: ...

    def on_venue_disconnected(self, reason: str) -> None: ...


class VenueMarketDataListener(Protocol):
    """What a :class:`MarketDataVenue` calls on its listener, when the listener has it."""

    def on_market_data(self, symbol: str, bids: list, asks: list, receipt_ns: int) -> None:
        """A full book snapshot: float ``[price, qty]`` lists, best first, sizes > 0, fresh lists."""

    def on_superseded_market_data(self, symbol: str, bids: list, asks: list, receipt_ns: int) -> None:
        """A snapshot already replaced by a later one in the same read (update the book, do not act)."""

    def on_venue_trade(self, trade: Trade) -> None:
        """A public trade."""


class Venue(ABC):
    #: Upper-case venue name (``MOCK``).
    name: str = ""

    def __init__(self, config: BaseModel) -> None:
        self.config = config
        self.connected = False

    @abstractmethod
    async def run(self, listener: VenueListener) -> None:
        """Connect and stay connected until cancelled; reconnect with backoff and jitter."""

    @abstractmethod
    def send_new_order(self, order: Order) -> None:
        """Write a new order; raises ``ConnectionError`` when not connected."""

    @abstractmethod
    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        """Write a cancel request for ``orig_cl_ord_id``."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """A symbol's trading rules as the venue states them (floats for strategies)."""

    symbol_id: int
    symbol: str
    tick_size: float
    lot_size: float


@runtime_checkable
class BatchingVenue(Protocol):
    def cork(self) -> None:
        """Hold outgoing messages until :meth:`uncork`."""

    def uncork(self) -> None:
        """Write everything held since :meth:`cork` at once; raises ``ConnectionError`` if down."""


@runtime_checkable
class InstrumentVenue(Protocol):
    #: Symbol -> :class:`Instrument`; may grow or change on reconnect.
    instruments: Mapping[str, Instrument]


@runtime_checkable
class MarketDataVenue(Protocol):
    #: True: the venue calls its listener's :class:`VenueMarketDataListener` methods.
    carries_market_data: bool


@runtime_checkable
class SimulatedVenue(Protocol):
    """A venue that fills against the market data the engine receives (``paper``)."""

    def on_book_message(self, msg: dict) -> None:
        """A marketstream book message (docs/messages.md), before the engine sees it."""

    def on_trade_message(self, msg: dict) -> None:
        """A marketstream trade message, before the engine sees it."""

    def on_book_reset(self, symbols: list[str]) -> None:
        """These symbols' books are stale (feed reconnect or resync) until their next book message."""

    def advance(self, now_ns: int) -> None:
        """Simulated time is now ``now_ns``: deliver what is due (order arrivals, reports)."""

    def attach(self, listener: VenueListener) -> None:
        """Connect synchronously, for a backtest that drives time itself (no event loop tasks)."""


@runtime_checkable
class RehearsingVenue(Protocol):
    """A venue that can repeat a tick's work without effects, for the idle rehearsal."""

    def rehearse_market_data(self, on_market_data) -> None:
        """Handle the last market data again through the same code as its tick, handing the book to
        ``on_market_data(symbol, bids, asks, receipt_ns)`` instead of the listener; no state change."""

    def rehearse_new_order(self, order: Order) -> object:
        """Encode (and sign) ``order`` exactly as ``send_new_order`` would, without sending it,
        using no sequence number, id or rate-limit slot. Returns what would have been written."""

    def rehearsal_twin(self) -> Venue | None:
        """A second instance of this venue's class, connected to nothing, whose sends encode as this
        one's do and are kept, not written (the rehearsal's venue); ``None`` if there is none."""
