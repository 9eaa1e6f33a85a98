"""Pre-trade risk checks: the standard set, registered by the core through ``register_risk_checks``.

A check is configured under ``risk:`` by its registered name; a scalar is shorthand for
``{limit: value}``. Checks run in ascending ``Component.priority`` (explicit, never pluggy's
registration order); the first refusal wins and the order never reaches the venue.

Writing a check (plugins too): subclass :class:`RiskCheck`, implement ``check`` (return a
reason string to refuse, ``None`` to pass) and, for a kill switch, ``breach`` (return a
reason to stop trading altogether). Both run on the hot path: no allocation when passing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Protocol

from pydantic import Field

from ..components import Component
from ..config import StrictModel
from ..types import Order, OrdType, Side

log = logging.getLogger("latentspeed.risk")

_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrdType.MARKET
#: "Refused when > limit": a value equal to the limit but for float rounding (0.07 x 100000 is
#: 7000.000000000001) is at the limit, so allowed. Relative slack, so it holds at any scale and
#: stays far below one lot or tick.
_REL = 1e-12


class RiskView(Protocol):
    """What the engine exposes to risk checks (the :class:`~latentspeed_core.engine.core.Engine`)."""

    def mid(self, symbol: str) -> float | None: ...

    def position(self, symbol: str) -> float: ...

    def open_qty(self, symbol: str, side: Side) -> float: ...

    def open_order_count(self) -> int: ...

    def total_pnl(self) -> float: ...


class RiskCheck:
    # (Slots in the standard checks: the compiled engine reads their limits at their offsets, and
    # a subclass without __slots__ still has a __dict__.)
    __slots__ = ()
    name: str = ""

    def check(self, order: Order, view: RiskView, now_ns: int) -> str | None:
        """Return why ``order`` must not be sent, or ``None``."""
        return None

    def accepted(self, order: Order, now_ns: int) -> None:
        """The order passed every check and was handed to the venue (for stateful checks such as
        rates). Not called for an order the venue could not take (down, or it cannot encode it)."""

    def breach(self, view: RiskView) -> str | None:
        """Return why trading must stop now (kill switch), or ``None``. Called after fills and marks."""
        return None


class LimitConfig(StrictModel):
    limit: float = Field(gt=0)


class RateConfig(StrictModel):
    limit: int = Field(gt=0)


class MaxOrderQty(RiskCheck):
    __slots__ = ("limit",)
    name = "max_order_qty"

    def __init__(self, cfg: LimitConfig) -> None:
        self.limit = cfg.limit

    def check(self, order, view, now_ns):
        if order.qty > self.limit:
            return f"qty {order.qty} > max_order_qty {self.limit}"
        return None


class MaxNotional(RiskCheck):
    __slots__ = ("limit", "_max")
    name = "max_notional"

    def __init__(self, cfg: LimitConfig) -> None:
        self.limit = cfg.limit
        self._max = cfg.limit * (1.0 + _REL)

    def check(self, order, view, now_ns):
        px = order.price  # a market order (or no price) is valued at mid
        if order.ord_type == _MARKET or px <= 0.0:
            px = view.mid(order.symbol)
        if px is None:
            return "no price to value a market order"
        if order.qty * px > self._max:
            return f"notional {order.qty * px:.2f} > max_notional {self.limit}"
        return None


class MaxPosition(RiskCheck):
    """Worst case: current position plus every open order on the same side plus this one."""

    __slots__ = ("limit", "_max")
    name = "max_position"

    def __init__(self, cfg: LimitConfig) -> None:
        self.limit = cfg.limit
        self._max = cfg.limit * (1.0 + _REL) + 1e-12

    def check(self, order, view, now_ns):
        symbol = order.symbol
        pos = view.position(symbol)
        if order.side == _BUY:
            worst = pos + view.open_qty(symbol, _BUY) + order.qty
        else:
            worst = -pos + view.open_qty(symbol, _SELL) + order.qty
        if worst > self._max:
            return f"position could reach {worst:g} > max_position {self.limit}"
        return None


class PriceBand(RiskCheck):
    """Limit price within ``limit`` bps of mid; without a mid nothing can be checked, so refuse."""

    __slots__ = ("frac", "limit", "_frac_max")
    name = "price_band_bps"

    def __init__(self, cfg: LimitConfig) -> None:
        self.frac = cfg.limit / 10_000.0
        self.limit = cfg.limit
        # The rounding of price - mid scales with the mid, not with the band.
        self._frac_max = self.frac + _REL

    def check(self, order, view, now_ns):
        mid = view.mid(order.symbol)
        if not mid:  # (None, or a zero that no band can be measured from)
            return "no mid price yet"
        if order.ord_type == _MARKET:
            return None
        if abs(order.price - mid) > self._frac_max * mid:
            return f"price {order.price} is {abs(order.price - mid) / mid * 1e4:.1f} bps from mid {mid}"
        return None


class MaxOrdersPerSecond(RiskCheck):
    """Sliding one-second window over the send times of accepted orders."""

    __slots__ = ("limit", "_sent")
    name = "max_orders_per_second"

    def __init__(self, cfg: RateConfig) -> None:
        self.limit = cfg.limit
        self._sent: deque[int] = deque(maxlen=cfg.limit)

    def check(self, order, view, now_ns):
        sent = self._sent
        if len(sent) == self.limit and now_ns - sent[0] < 1_000_000_000:
            return f"more than {self.limit} orders in one second"
        return None

    def accepted(self, order, now_ns):
        self._sent.append(now_ns)


class MaxOpenOrders(RiskCheck):
    __slots__ = ("limit",)
    name = "max_open_orders"

    def __init__(self, cfg: RateConfig) -> None:
        self.limit = cfg.limit

    def check(self, order, view, now_ns):
        if view.open_order_count() >= self.limit:
            return f"{self.limit} orders already open (max_open_orders)"
        return None


class MaxLoss(RiskCheck):
    """Kill switch: once PnL (net of fees, unrealized at mid) reaches -limit, trading stops."""

    __slots__ = ("limit",)
    name = "max_loss"

    def __init__(self, cfg: LimitConfig) -> None:
        self.limit = cfg.limit

    def check(self, order, view, now_ns):
        return self.breach(view)

    def breach(self, view):
        pnl = view.total_pnl()
        if pnl <= -self.limit:
            return f"loss {-pnl:.2f} reached max_loss {self.limit}"
        return None


#: (class, config model, priority): the kill switch first, then cheap global limits, then per-order ones.
STANDARD = (
    (MaxLoss, LimitConfig, 10, "kill switch: cancel all and stop trading when PnL <= -limit"),
    (MaxOrdersPerSecond, RateConfig, 20, "at most `limit` orders sent in any one second"),
    (MaxOpenOrders, RateConfig, 30, "at most `limit` orders open at once"),
    (MaxOrderQty, LimitConfig, 40, "order quantity <= limit"),
    (PriceBand, LimitConfig, 50, "limit price within `limit` bps of mid"),
    (MaxNotional, LimitConfig, 60, "order notional (qty x price) <= limit"),
    (MaxPosition, LimitConfig, 70, "|position + open same-side orders + order| <= limit per symbol"),
)


def register_standard(register) -> None:
    for cls, model, priority, description in STANDARD:
        register(Component(cls.name, model, cls, description=description, priority=priority))


class RiskEngine:
    """Runs the configured checks in priority order; counts and (rate-limited) logs refusals."""

    __slots__ = (
        "checks",
        "_all",
        "_with_accept",
        "_check_fns",
        "_accept_fns",
        "_with_breach",
        "has_kill_switch",
        "rejects",
        "_last_log",
        "_suppressed",
    )

    def __init__(self, checks: list[tuple[str, RiskCheck]]) -> None:
        self.checks = checks
        self._all = tuple(c for _, c in checks)
        self._with_accept = tuple(c for c in self._all if type(c).accepted is not RiskCheck.accepted)
        # Bound methods, looked up once: the hot path calls them for every order.
        self._check_fns = tuple(c.check for c in self._all)
        self._accept_fns = tuple(c.accepted for c in self._with_accept)
        self._with_breach = tuple(c for c in self._all if type(c).breach is not RiskCheck.breach)
        #: Some check can stop trading after fills and marks (the engine checks only then).
        self.has_kill_switch = bool(self._with_breach)
        self.rejects: dict[str, int] = {}
        self._last_log = 0.0
        self._suppressed = 0

    def check(self, order: Order, view: RiskView, now_ns: int) -> str | None:
        """Why ``order`` must not be sent (``"check_name: reason"``), or ``None``."""
        for fn in self._check_fns:
            reason = fn(order, view, now_ns)
            if reason is not None:
                return f"{fn.__self__.name}: {reason}"
        return None

    def sent(self, order: Order, now_ns: int) -> None:
        """``order`` passed :meth:`check` and the venue took it: stateful checks count it now."""
        for fn in self._accept_fns:
            fn(order, now_ns)

    def breach(self, view: RiskView) -> str | None:
        for c in self._with_breach:
            reason = c.breach(view)
            if reason is not None:
                return f"{c.name}: {reason}"
        return None

    def rejected(self, reason: str, order: Order | None = None) -> None:
        """Count a refusal by its check name; log at most one line a second."""
        key = reason.split(":", 1)[0]
        self.rejects[key] = self.rejects.get(key, 0) + 1
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            extra = f" (+{self._suppressed} more refusals since last line)" if self._suppressed else ""
            what = f" order {order.side.name} {order.qty} {order.symbol} @ {order.price}" if order else ""
            log.warning("risk refused%s: %s%s", what, reason, extra)
            self._last_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1


def build_risk(setup_checks) -> RiskEngine:
    """Instantiate ``EngineSetup.risk_checks`` (already in priority order)."""
    built = []
    for name, comp, cfg in setup_checks:
        check = comp.factory(cfg)
        if not getattr(check, "name", ""):
            check.name = name
        built.append((name, check))
    return RiskEngine(built)
