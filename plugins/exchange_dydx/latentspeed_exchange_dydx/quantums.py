"""Exact conversions between sizes and prices and the integers dYdX v4 orders carry.

An order's size is in **base quantums** and its price in **subticks** (v4-chain
``proto/dydxprotocol/clob/order.proto``; the formulas are ``protocol/x/clob/types/price_to_subticks.go``
and ``quantums.go``)::

    quantums = size  x 10^(-atomicResolution)                                  multiple of stepBaseQuantums
    subticks = price x 10^(atomicResolution - quantumConversionExponent + 6)   multiple of subticksPerTick

(+6: the quote asset, USDC, has atomic resolution -6.) Hence ``stepSize = stepBaseQuantums x
10^atomicResolution`` and ``tickSize = subticksPerTick x 10^(quantumConversionExponent -
atomicResolution - 6)``, which the indexer also publishes; :func:`market_spec` checks that the two agree.

Rounding rule (the official client floors floats instead, so 0.3 can become 0.2999...): a ``float``
from the engine is read as its shortest decimal (``repr``); it must lie within 1e-9 (relative, the
tolerance of :func:`latentspeed_core.live.check_order`) of a whole number of steps or ticks, and is
then rounded to it, so float noise such as ``3393.2000000000003`` lands on the grid. A ``Decimal``,
``int`` or ``str`` is taken as exact and must be on the grid. Off the grid, below one step, not
positive, or beyond ``uint64``: :class:`GridError` (a ``ValueError``, so the engine counts the order
as refused with this message and nothing is sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

#: USDC's atomic resolution: one quote quantum is 1e-6 USD.
QUOTE_ATOMIC_RESOLUTION = -6
UINT64_MAX = 2**64 - 1
#: Relative distance from the grid that a float may have and still count as on it.
FLOAT_TOLERANCE = Decimal("1e-9")

# Wide enough that every product and quotient below is exact (inputs have at most 17 digits).
_CTX = Context(prec=80)
_ONE = Decimal(1)


class GridError(ValueError):
    """A size or price the chain would refuse: off the step/tick grid, too small or too large."""


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One perpetual's order grid, from the indexer's ``/v4/perpetualMarkets`` entry."""

    ticker: str
    clob_pair_id: int
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    #: ``ACTIVE`` markets take orders; the others (``PAUSED``, ``CANCEL_ONLY``, ``POST_ONLY``,
    #: ``INITIALIZING``, ``FINAL_SETTLEMENT``) are refused here.
    status: str = "ACTIVE"
    step_size: Decimal = field(init=False)
    tick_size: Decimal = field(init=False)
    #: Powers of ten from a size to quantums and from a price to subticks.
    size_exponent: int = field(init=False)
    price_exponent: int = field(init=False)

    def __post_init__(self) -> None:
        if self.step_base_quantums <= 0 or self.subticks_per_tick <= 0:
            raise ValueError(f"{self.ticker}: stepBaseQuantums and subticksPerTick must be positive")
        size_exp = -self.atomic_resolution
        price_exp = self.atomic_resolution - self.quantum_conversion_exponent - QUOTE_ATOMIC_RESOLUTION
        object.__setattr__(self, "size_exponent", size_exp)
        object.__setattr__(self, "price_exponent", price_exp)
        step = Decimal(self.step_base_quantums).scaleb(-size_exp, _CTX).normalize(_CTX)
        object.__setattr__(self, "step_size", step)
        object.__setattr__(
            self, "tick_size", Decimal(self.subticks_per_tick).scaleb(-price_exp, _CTX).normalize(_CTX)
        )


def market_spec(entry: dict) -> MarketSpec:
    """A :class:`MarketSpec` from one indexer market dict; ``ValueError`` when a field is missing or
    the published ``tickSize``/``stepSize`` disagree with the integers (we would trade on a wrong grid)."""
    try:
        spec = MarketSpec(
            ticker=str(entry["ticker"]),
            clob_pair_id=int(entry["clobPairId"]),
            atomic_resolution=int(entry["atomicResolution"]),
            quantum_conversion_exponent=int(entry["quantumConversionExponent"]),
            step_base_quantums=int(entry["stepBaseQuantums"]),
            subticks_per_tick=int(entry["subticksPerTick"]),
            status=str(entry.get("status", "ACTIVE")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"market {entry.get('ticker', '?')}: bad or missing field: {exc}") from None
    for name, computed in (("stepSize", spec.step_size), ("tickSize", spec.tick_size)):
        published = entry.get(name)
        if published is not None:
            try:
                same = Decimal(str(published)) == computed
            except InvalidOperation:
                same = False
            if not same:
                raise ValueError(
                    f"market {spec.ticker}: {name} {published} disagrees with the integers ({computed:f})"
                )
    return spec


def _exact(value: Decimal | float | int | str) -> tuple[Decimal, bool]:
    """``(decimal, is_float)``: the exact decimal a value stands for."""
    if isinstance(value, float):
        return Decimal(repr(value)), True
    if isinstance(value, Decimal):
        return value, False
    try:
        return Decimal(value), False
    except (InvalidOperation, TypeError, ValueError):
        raise GridError(f"not a number: {value!r}") from None


def _units(value: Decimal, is_float: bool, exponent: int, per_step: int) -> int | None:
    """Whole steps of ``per_step`` in ``value x 10^exponent``, times ``per_step``; None: off the grid,
    0: under one step."""
    steps = _CTX.divide(value.scaleb(exponent, _CTX), per_step)
    whole = steps.to_integral_value(rounding=ROUND_HALF_EVEN)
    if steps != whole:
        if whole == 0 or (is_float and abs(steps - whole) <= FLOAT_TOLERANCE * max(_ONE, whole)):
            pass  # under one step (said as such), or float noise around a whole number of steps
        else:
            return None
    return int(whole) * per_step


def _convert(spec: MarketSpec, what: str, value_in, exponent: int, per_step: int, step: Decimal) -> int:
    value, is_float = _exact(value_in)
    if not value.is_finite() or value <= 0:
        raise GridError(f"{spec.ticker}: {what} {value_in} must be positive")
    units = _units(value, is_float, exponent, per_step)
    grid = "step size" if what == "size" else "tick size"
    if units is None:
        raise GridError(f"{spec.ticker}: {what} {value_in} is not a multiple of the {grid} {step:f}")
    if units == 0:
        raise GridError(f"{spec.ticker}: {what} {value_in} is below the minimum, one {grid}: {step:f}")
    if units > UINT64_MAX:
        raise GridError(f"{spec.ticker}: {what} {value_in} is too large for an order (beyond uint64)")
    return units


def to_quantums(spec: MarketSpec, size: Decimal | float | int | str) -> int:
    """Base quantums for ``size`` (a positive whole number of steps)."""
    return _convert(spec, "size", size, spec.size_exponent, spec.step_base_quantums, spec.step_size)


def to_subticks(spec: MarketSpec, price: Decimal | float | int | str) -> int:
    """Subticks for ``price`` (a positive whole number of ticks)."""
    return _convert(spec, "price", price, spec.price_exponent, spec.subticks_per_tick, spec.tick_size)


def size_of(spec: MarketSpec, quantums: int) -> Decimal:
    """The size ``quantums`` stand for (exact)."""
    return Decimal(quantums).scaleb(-spec.size_exponent, _CTX)


def price_of(spec: MarketSpec, subticks: int) -> Decimal:
    """The price ``subticks`` stand for (exact)."""
    return Decimal(subticks).scaleb(-spec.price_exponent, _CTX)
