"""Standard feature calculators (issue 5 definitions) and the calculator contract.

A calculator is built once per marketstream by its registered factory,
``factory(config, window_size, depth_levels)``. For every new topic the pipeline asks it
for a per-topic updater (``book_updater(topic)`` / ``trade_updater(topic)``): a closure
that owns that topic's state and adds fields to each message dict in place. Returning
``None`` opts out of that kind of message. Updaters run in ascending ``Component.priority``,
so a later one can read a field an earlier one wrote (``volatility`` reads ``midpoint``).

Every standard updater is O(1) per message: rolling windows are fixed-size ring buffers
with running sums, re-anchored with an exact ``math.fsum`` each time the ring wraps so
float drift never accumulates.

The standard updaters are compiled (``_features.c``) when the extension is built: the same
operations in the same order, bit-identical results. The closures here (``_*_py``) stay the
reference, held equal to the compiled ones by the tests, and the fallback without a compiler.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, Protocol

from ..components import Component
from ..config import StrictModel

try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from .. import _features as _compiled
except ImportError:  # no C compiler at install time: the closures below, same results
    _compiled = None

Updater = Callable[[dict], None]


class FeatureCalculator(Protocol):
    """What a ``register_features`` factory returns."""

    def book_updater(self, topic: str) -> Updater | None:
        """A closure adding fields to each book message of ``topic`` (or ``None``)."""

    def trade_updater(self, topic: str) -> Updater | None:
        """A closure adding fields to each trade message of ``topic`` (or ``None``)."""


class Feature:
    """Convenience base: opts out of both kinds; subclasses override what they need."""

    def __init__(self, config: Any = None, window_size: int = 20, depth_levels: int = 10) -> None:
        self.config = config
        self.window_size = window_size
        self.depth_levels = depth_levels

    def book_updater(self, topic: str) -> Updater | None:
        return None

    def trade_updater(self, topic: str) -> Updater | None:
        return None


class NoConfig(StrictModel):
    """The standard calculators take no options (window and depth come from ``zmq``)."""


# -- rolling windows -----------------------------------------------------------


class RollingSum:
    """Sum of the last ``w`` values."""

    __slots__ = ("_buf", "_w", "_i", "_n", "_sum")

    def __init__(self, w: int) -> None:
        self._buf = [0.0] * w
        self._w = w
        self._i = 0
        self._n = 0
        self._sum = 0.0

    def push(self, x: float) -> float:
        buf = self._buf
        i = self._i
        if self._n == self._w:
            self._sum += x - buf[i]
        else:
            self._n += 1
            self._sum += x
        buf[i] = x
        i += 1
        if i == self._w:
            i = 0
            self._sum = math.fsum(buf)  # re-anchor: no drift over long runs
        self._i = i
        return self._sum


class RollingStd:
    """Sample standard deviation (n − 1) of the last ``w`` values; 0.0 below 2 values."""

    __slots__ = ("_buf", "_w", "_i", "_n", "_s1", "_s2")

    def __init__(self, w: int) -> None:
        self._buf = [0.0] * w
        self._w = w
        self._i = 0
        self._n = 0
        self._s1 = 0.0
        self._s2 = 0.0

    def push(self, x: float) -> float:
        buf = self._buf
        i = self._i
        if self._n == self._w:
            old = buf[i]
            self._s1 += x - old
            self._s2 += x * x - old * old
        else:
            self._n += 1
            self._s1 += x
            self._s2 += x * x
        buf[i] = x
        i += 1
        if i == self._w:
            i = 0
            self._s1 = math.fsum(buf)
            self._s2 = math.fsum([v * v for v in buf])
        self._i = i
        n = self._n
        if n < 2:
            return 0.0
        var = (self._s2 - self._s1 * self._s1 / n) / (n - 1)
        return math.sqrt(var) if var > 0.0 else 0.0


class LogReturnVolatility:
    """Rolling sample std of log returns between consecutive values (prices or midpoints)."""

    __slots__ = ("_prev", "_std")

    def __init__(self, w: int) -> None:
        self._prev = 0.0
        self._std = RollingStd(w)

    def push(self, value: float) -> float:
        prev = self._prev
        self._prev = value
        if prev <= 0.0:  # first value of the topic: no return yet
            return 0.0
        return self._std.push(math.log(value / prev))


# -- the standard set ----------------------------------------------------------


def _top_of_book_py() -> Updater:
    def update(msg: dict) -> None:
        b, qb = msg["bids"][0]
        a, qa = msg["asks"][0]
        mid = (b + a) / 2
        msg["midpoint"] = mid
        msg["relative_spread"] = (a - b) / mid
        msg["breadth"] = b * qb + a * qa
        msg["imbalance_lvl1"] = (qb - qa) / (qb + qa)

    return update


def _depth_py() -> Updater:
    def update(msg: dict) -> None:
        bd = 0.0  # a plain loop: faster here than sum() over a comprehension or starmap
        for p, q in msg["bids"]:
            bd += p * q
        ad = 0.0
        for p, q in msg["asks"]:
            ad += p * q
        msg["bid_depth_n"] = bd
        msg["ask_depth_n"] = ad
        msg["depth_n"] = bd + ad

    return update


class TopOfBook(Feature):
    """midpoint, relative_spread, breadth, imbalance_lvl1 from the best levels."""

    def book_updater(self, topic: str) -> Updater:
        return _compiled.top_of_book() if _compiled else _top_of_book_py()


class Depth(Feature):
    """bid_depth_n, ask_depth_n, depth_n: Σ price·qty over the published N levels per side."""

    def book_updater(self, topic: str) -> Updater:
        return _compiled.depth() if _compiled else _depth_py()


def _volatility_updater(w: int, source: str, field: str) -> Updater:
    if _compiled:
        return _compiled.volatility(w, source, field)
    return _volatility_py(w, source, field)


def _volatility_py(w: int, source: str, field: str) -> Updater:
    """``msg[field]`` = rolling sample std of log returns of ``msg[source]`` over ``w`` returns.

    The arithmetic of :class:`LogReturnVolatility` (same sums, same re-anchoring, same
    results), inlined into one closure: two method calls per message cost more than the maths.
    """
    buf = [0.0] * w
    log = math.log
    sqrt = math.sqrt
    fsum = math.fsum
    prev = 0.0
    i = n = 0
    s1 = s2 = 0.0

    def update(msg: dict) -> None:
        nonlocal prev, i, n, s1, s2
        value = msg[source]
        p = prev
        prev = value
        if p <= 0.0:  # first value of the topic: no return yet
            msg[field] = 0.0
            return
        x = log(value / p)
        if n == w:
            old = buf[i]
            s1 += x - old
            s2 += x * x - old * old
        else:
            n += 1
            s1 += x
            s2 += x * x
        buf[i] = x
        i += 1
        if i == w:
            i = 0
            s1 = fsum(buf)  # re-anchor: no drift over long runs
            s2 = fsum([v * v for v in buf])
        if n < 2:
            msg[field] = 0.0
            return
        var = (s2 - s1 * s1 / n) / (n - 1)
        msg[field] = sqrt(var) if var > 0.0 else 0.0

    return update


class Volatility(Feature):
    """volatility_mid on books (needs ``midpoint``), volatility on trades (over prices)."""

    def book_updater(self, topic: str) -> Updater:
        return _volatility_updater(self.window_size, "midpoint", "volatility_mid")

    def trade_updater(self, topic: str) -> Updater:
        return _volatility_updater(self.window_size, "price", "volatility")


class OrderFlowImbalance(Feature):
    """ofi_rolling: Cont–Kukanov–Stoikov OFI, summed over the topic's last W book messages."""

    def book_updater(self, topic: str) -> Updater:
        return _compiled.ofi(self.window_size) if _compiled else _ofi_py(self.window_size)


def _ofi_py(w: int) -> Updater:
    """The rolling sum is :class:`RollingSum`'s arithmetic inlined (one closure call per message)."""
    buf = [0.0] * w
    fsum = math.fsum
    i = n = 0
    total = 0.0
    pb = pqb = pa = pqa = 0.0  # the previous message's b, qb, a, qa; pb == 0 marks "none yet"

    def update(msg: dict) -> None:
        nonlocal i, n, total, pb, pqb, pa, pqa
        b, qb = msg["bids"][0]
        a, qa = msg["asks"][0]
        e = 0.0
        if pb != 0.0:
            if b >= pb:
                e += qb
            if b <= pb:
                e -= pqb
            if a <= pa:
                e -= qa
            if a >= pa:
                e += pqa
        pb = b
        pqb = qb
        pa = a
        pqa = qa
        if n == w:
            total += e - buf[i]
        else:
            n += 1
            total += e
        buf[i] = e
        i += 1
        if i == w:
            i = 0
            total = fsum(buf)  # re-anchor: no drift over long runs
        msg["ofi_rolling"] = total

    return update


class TradeValue(Feature):
    """transaction_price and trading_volume (price·amount)."""

    def trade_updater(self, topic: str) -> Updater:
        return _compiled.trade_value() if _compiled else _trade_value_py()


def _trade_value_py() -> Updater:
    def update(msg: dict) -> None:
        price = msg["price"]
        msg["transaction_price"] = price
        msg["trading_volume"] = price * msg["amount"]

    return update


STANDARD = (
    Component("top_of_book", NoConfig, TopOfBook, "midpoint, relative_spread, breadth, imbalance_lvl1", 10),
    Component("depth", NoConfig, Depth, "bid_depth_n, ask_depth_n, depth_n", 20),
    Component("trade_value", NoConfig, TradeValue, "transaction_price, trading_volume", 20),
    Component("volatility", NoConfig, Volatility, "volatility_mid (books), volatility (trades)", 30),
    Component("ofi", NoConfig, OrderFlowImbalance, "ofi_rolling (order-flow imbalance)", 40),
)


def register_standard(register: Callable[[Component], None]) -> None:
    """Register the standard set through the ``register_features`` hook (core plugin)."""
    for component in STANDARD:
        register(component)


def build_calculators(
    registry,
    window_size: int,
    depth_levels: int,
    names: list[str] | None = None,
    configs: dict[str, Any] | None = None,
) -> list[FeatureCalculator]:
    """Instantiate the registered calculators (all, or ``names``) in ascending priority.

    ``configs`` maps a feature name to its already validated config model instance;
    others get their model's defaults.
    """
    configs = configs or {}
    chosen = (
        [registry.get("features", n) for n in names]
        if names is not None
        else list(registry.features.values())
    )
    chosen.sort(key=lambda c: (c.priority, c.name))
    out = []
    for comp in chosen:
        cfg = configs.get(comp.name)
        if cfg is None:
            cfg = comp.config_model()
        out.append(comp.factory(cfg, window_size, depth_levels))
    return out
