"""A momentum taker: when mid moved more than ``threshold_bps`` over the last ``lookback``
books, cross the spread with an IOC in that direction; flatten when the move reverses.

It shows the whole strategy API: a pydantic params model (unknown keys are config errors),
``on_book`` reading the marketstream message, ``ctx.position`` / ``ctx.open_orders`` /
``ctx.instrument``, ``ctx.submit`` (``None`` means the risk checks refused), ``on_fill``.
"""

from __future__ import annotations

from collections import deque

from pydantic import Field

from latentspeed_core.config import StrictModel
from latentspeed_core.engine.strategy import Strategy, ceil_to, floor_to
from latentspeed_core.types import Fill, Side, TimeInForce


class MomentumParams(StrictModel):
    qty: float = Field(0.01, gt=0)
    #: Books to look back over.
    lookback: int = Field(10, ge=2)
    #: Mid move (bps) over the lookback that triggers an order.
    threshold_bps: float = Field(2.0, ge=0)
    max_position: float = Field(0.05, gt=0)


class Momentum(Strategy):
    params: MomentumParams

    def __init__(self, params: MomentumParams) -> None:
        super().__init__(params)
        self.mids: dict[str, deque[float]] = {}
        self.filled_qty = 0.0

    def on_start(self) -> None:
        self.mids = {s: deque(maxlen=self.params.lookback) for s in self.symbols}

    def on_book(self, msg: dict) -> None:
        sym = msg["symbol"]
        window = self.mids[sym]
        window.append(msg["midpoint"])
        if len(window) < window.maxlen or not self.ctx.ready or self.ctx.open_orders(sym):
            return
        move_bps = (window[-1] - window[0]) / window[0] * 10_000.0
        p = self.params
        if abs(move_bps) < p.threshold_bps:
            return
        side = Side.BUY if move_bps > 0 else Side.SELL
        pos = self.ctx.position(sym).qty
        if (pos if side == Side.BUY else -pos) + p.qty > p.max_position + 1e-12:
            return
        tick, lot = self.ctx.instrument(sym)
        qty = floor_to(p.qty, lot)
        if side == Side.BUY:
            price = ceil_to(msg["asks"][0][0], tick)
        else:
            price = floor_to(msg["bids"][0][0], tick)
        self.ctx.submit(sym, side, qty, price, tif=TimeInForce.IOC)
        window.clear()  # one decision per move

    def on_fill(self, fill: Fill) -> None:
        self.filled_qty += fill.qty
