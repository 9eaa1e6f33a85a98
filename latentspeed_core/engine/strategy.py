"""The strategy API for third parties: a base class with callbacks and a context to act through.

A strategy plugin registers ``Component(name, ParamsModel, factory)`` in
``register_strategies``; the engine validates the config's ``params`` with ``ParamsModel``,
calls ``factory(params)`` and binds the result to a :class:`StrategyContext`.

Callbacks run on the engine's event loop, on the hot path: keep them short, never block,
never await. Market-data messages are the marketstream contract dicts (``bids``, ``asks``,
``midpoint``, ``imbalance_lvl1``, ``ofi_rolling``, ...), the same whether the data comes from
an in-process feed or from a marketstream process over ZeroMQ.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ..types import Fill, OrdType, Side, TimeInForce

if TYPE_CHECKING:
    from .core import Engine
    from .orders import OrderState
    from .positions import Position


class Strategy:
    """Base class. Override the callbacks you need; ``self.ctx`` is set before ``on_start``."""

    #: While the engine idles it runs a second instance of this strategy on shadow state to keep
    #: the hot path in the CPU caches (engine/rehearsal.py). Set ``False`` if building or running
    #: the strategy acts outside the engine (files, network, shared state).
    rehearse: bool = True

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params = params
        self.ctx: StrategyContext = None  # type: ignore[assignment]  # bound by the engine
        self.symbols: list[str] = []
        self.log = logging.getLogger(f"latentspeed.strategy.{type(self).__name__}")

    def on_start(self) -> None:
        """The engine is running (the venue may not be connected yet: see ``ctx.ready``)."""

    def on_book(self, msg: dict) -> None:
        """A book message for one of ``self.symbols``."""

    def on_trade(self, msg: dict) -> None:
        """A public trade for one of ``self.symbols``."""

    def on_order_update(self, order: OrderState) -> None:
        """One of this strategy's orders changed status (including to ``unknown`` on disconnect)."""

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders (partially) filled; positions are already updated."""

    def on_timer(self, now_ns: int) -> None:
        """Called every ``timer_interval`` seconds (engine config)."""

    def on_stop(self, reason: str) -> None:
        """Trading stops (shutdown or kill switch); the engine cancels open orders itself."""


class StrategyContext:
    """How a strategy acts: orders, positions, open orders, features. One per strategy instance."""

    __slots__ = ("_engine", "strategy_id", "log")

    def __init__(self, engine: Engine, strategy_id: str) -> None:
        self._engine = engine
        self.strategy_id = strategy_id
        self.log = logging.getLogger(f"latentspeed.strategy.{strategy_id}")

    # -- orders ----------------------------------------------------------------
    def submit(
        self,
        symbol: str,
        side: Side,
        qty: float,
        price: float = 0.0,
        ord_type: OrdType = OrdType.LIMIT,
        tif: TimeInForce = TimeInForce.GTC,
    ) -> OrderState | None:
        """Risk-check and send an order; ``None`` when refused (the reason is logged and counted)."""
        return self._engine.submit(self.strategy_id, symbol, side, qty, price, ord_type, tif)

    def buy(self, symbol: str, qty: float, price: float = 0.0, **kw) -> OrderState | None:
        return self._engine.submit(self.strategy_id, symbol, Side.BUY, qty, price, **kw)

    def sell(self, symbol: str, qty: float, price: float = 0.0, **kw) -> OrderState | None:
        return self._engine.submit(self.strategy_id, symbol, Side.SELL, qty, price, **kw)

    def cancel(self, cl_ord_id: int) -> bool:
        """Request a cancel; ``False`` if the order is not open or the venue is down."""
        return self._engine.cancel(cl_ord_id)

    def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel this strategy's open orders (of ``symbol``); returns how many were requested."""
        return self._engine.cancel_all(symbol, self.strategy_id)

    # -- state -----------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True when orders can be sent: the venue is connected and trading is not halted."""
        e = self._engine
        return e.trading_enabled and e.venue.connected

    @property
    def last_reject(self) -> str | None:
        """Why the engine refused this context's most recent refused order."""
        return self._engine.last_reject

    def position(self, symbol: str) -> Position:
        return self._engine.portfolio.get(symbol)

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        sid = self.strategy_id
        return [
            o
            for o in self._engine.orders.open.values()
            if o.strategy == sid and (symbol is None or o.symbol == symbol)
        ]

    def instrument(self, symbol: str) -> tuple[float | None, float | None]:
        """``(tick_size, lot_size)`` as the venue defines them, ``None`` where it does not say."""
        return self._engine.instrument(symbol)

    def features(self, symbol: str) -> dict | None:
        """The latest book message (with its features) for ``symbol``."""
        return self._engine.books.get(symbol)

    def mid(self, symbol: str) -> float | None:
        return self._engine.mid(symbol)

    def now_ns(self) -> int:
        return self._engine.clock()


def floor_to(x: float, step: float | None) -> float:
    """Round down to a multiple of ``step`` (a bid price, a quantity); exact decimals for the wire."""
    if not step:
        return x
    n = math.floor(x / step + 1e-9)
    k = _INVERSE.get(step)
    if k is None:
        k = _inverse(step)
    return n / k if k else round(n * step, 10)


def ceil_to(x: float, step: float | None) -> float:
    """Round up to a multiple of ``step`` (an ask price)."""
    if not step:
        return x
    n = math.ceil(x / step - 1e-9)
    k = _INVERSE.get(step)
    if k is None:
        k = _inverse(step)
    return n / k if k else round(n * step, 10)


#: step -> k where step is 1/k (see _inverse), or 0.
_INVERSE: dict[float, int] = {}


def _inverse(step: float) -> int:
    """``k`` when ``step`` is the float of 1/k for a k dividing 10**10 (0.01, 0.5, 1e-8: every decimal
    tick or lot below 1), else 0.

    Then ``n / k`` is the double nearest the decimal ``n * step`` (one correctly rounded division),
    which is what ``round(n * step, 10)`` computes through a decimal string: the same result at a
    fraction of the cost (that ``round`` was ~1.5 % of a backtest, twice per requote). Other steps
    (integers, 0.3) keep the ``round``."""
    k = round(1 / step) if type(step) is float and 0.0 < step < 1.0 else 0
    if not (k > 1 and 1 / k == step and 10**10 % k == 0):
        k = 0
    if len(_INVERSE) < 4096:  # a few per instrument; bounded whatever the caller passes
        _INVERSE[step] = k
    return k
