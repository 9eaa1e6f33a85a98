"""Hot-path message types: slotted dataclasses, never pydantic.

Prices and quantities are floats inside the process; wire formats convert at the
edge (the mock protocol uses 8-decimal fixed point).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrdType(IntEnum):
    LIMIT = 0
    MARKET = 1


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    #: A limit order that only rests (maker): refused, not filled, if it would take on arrival.
    POST_ONLY = 2


class ExecType(IntEnum):
    NEW = 0
    PARTIAL_FILL = 1
    FILL = 2
    CANCELED = 3
    REJECTED = 4


class RejectReason(IntEnum):
    NONE = 0
    UNKNOWN_SYMBOL = 1
    INVALID_QUANTITY = 2
    INVALID_PRICE = 3
    UNKNOWN_ORDER = 4
    DUPLICATE_CL_ORD_ID = 5
    RISK_OR_THROTTLE = 6


class OrderStatus(IntEnum):
    PENDING_NEW = 0
    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELED = 4
    REJECTED = 5
    #: The venue connection dropped and the order's final state could not be learned.
    UNKNOWN = 6


class Liquidity(IntEnum):
    UNKNOWN = 0
    MAKER = 1
    TAKER = 2


@dataclass(slots=True)
class Trade:
    """A public trade print. ``side`` is the taker side, ``"buy"`` or ``"sell"``."""

    exchange: str
    symbol: str
    timestamp_ns: int
    receipt_ns: int
    price: float
    amount: float
    side: str
    trade_id: str


def _compiled_new_trade():
    """``_engine.new_trade`` bound to :class:`Trade`, or None (no extension, or pure Python asked)."""
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        return None
    try:
        from ._engine import bind_trade, new_trade
    except ImportError:
        return None
    bind_trade(Trade)
    return new_trade


#: ``new_trade(exchange, symbol, timestamp_ns, receipt_ns, price, amount, side, trade_id)``: a
#: :class:`Trade`, built without a Python ``__init__`` frame when compiled (feeds make one per print).
new_trade = _compiled_new_trade() or Trade


@dataclass(slots=True)
class Order:
    cl_ord_id: int
    symbol: str
    side: Side
    qty: float
    price: float = 0.0
    ord_type: OrdType = OrdType.LIMIT
    tif: TimeInForce = TimeInForce.GTC


@dataclass(slots=True)
class ExecutionReport:
    cl_ord_id: int
    order_id: int
    exec_id: int
    symbol: str
    side: Side
    exec_type: ExecType
    last_px: float
    last_qty: float
    leaves_qty: float
    cum_qty: float
    reject_reason: RejectReason
    timestamp_ns: int = 0
    receipt_ns: int = 0
    #: Who provided liquidity on a fill, when the venue says (``Liquidity``); 0: unknown, and the
    #: engine decides the fee from the order's marketability when it was sent.
    liquidity: int = 0
    #: The fee the venue charged for this fill (``last_qty``), in the quote currency, when it says;
    #: ``None``: the engine charges its ``fees`` config (a simulated venue, or a fee in another asset).
    fee: float | None = None
    #: Base-asset units the venue kept as its fee (a spot fee in the base asset; ``fee`` is their quote
    #: value): the position moves by ``last_qty`` less this on a buy, more on a sell.
    fee_base: float = 0.0


@dataclass(slots=True)
class Fill:
    cl_ord_id: int
    symbol: str
    side: Side
    price: float
    qty: float
    fee: float
    timestamp_ns: int
    #: ``Liquidity.MAKER`` or ``TAKER``: which fee was charged.
    liquidity: int = 0
