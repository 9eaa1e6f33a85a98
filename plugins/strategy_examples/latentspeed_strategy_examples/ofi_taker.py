"""A taker on order-flow imbalance: buys when flow and the top level lean up, sells when down.

Signals from the marketstream features: ``ofi_rolling`` (Cont-Kukanov-Stoikov order-flow
imbalance summed over the last ``window_size`` books, in base units) and ``imbalance_lvl1`` ((bid qty - ask qty) / (bid qty + ask qty)
at the touch). Both must agree beyond their thresholds. Orders are IOC limits at the
touch (plus ``slippage_bps``), so they never rest; a cooldown spaces them out.
"""

from __future__ import annotations

from pydantic import Field

from latentspeed_core.config import StrictModel
from latentspeed_core.engine.strategy import Strategy, ceil_to, floor_to
from latentspeed_core.types import Side, TimeInForce


class OfiTakerParams(StrictModel):
    qty: float = Field(0.01, gt=0)
    #: |ofi_rolling| needed to trade (base units: scale it to the symbol's usual touch size).
    ofi_threshold: float = Field(0.5, ge=0)
    #: |imbalance_lvl1| needed to trade, in the same direction.
    imbalance_threshold: float = Field(0.2, ge=0)
    #: Price the IOC this many bps through the touch, to still fill after a small move.
    slippage_bps: float = Field(1.0, ge=0)
    max_position: float = Field(1.0, gt=0)
    #: Minimum time between two orders on one symbol.
    cooldown_ms: float = Field(200.0, ge=0)


class OfiTaker(Strategy):
    params: OfiTakerParams

    def __init__(self, params: OfiTakerParams) -> None:
        super().__init__(params)
        self._last_ns: dict[str, int] = {}
        self.signals = 0

    def on_book(self, msg: dict) -> None:
        ctx = self.ctx
        if not ctx.ready:
            return
        p = self.params
        ofi = msg.get("ofi_rolling")
        imb = msg.get("imbalance_lvl1")
        if ofi is None or imb is None:
            return
        if ofi >= p.ofi_threshold and imb >= p.imbalance_threshold:
            side = Side.BUY
        elif ofi <= -p.ofi_threshold and imb <= -p.imbalance_threshold:
            side = Side.SELL
        else:
            return
        self.signals += 1
        sym = msg["symbol"]
        now = msg["receipt_timestamp_ns"]
        if now - self._last_ns.get(sym, 0) < p.cooldown_ms * 1e6:
            return
        pos = ctx.position(sym).qty
        tick, lot = ctx.instrument(sym)
        qty = floor_to(p.qty, lot)
        if qty <= 0 or (pos + qty if side == Side.BUY else -pos + qty) > p.max_position + 1e-12:
            return
        if ctx.open_orders(sym):
            return
        if side == Side.BUY:
            px = ceil_to(msg["asks"][0][0] * (1.0 + p.slippage_bps / 10_000.0), tick)
        else:
            px = floor_to(msg["bids"][0][0] * (1.0 - p.slippage_bps / 10_000.0), tick)
        if ctx.submit(sym, side, qty, px, tif=TimeInForce.IOC) is not None:
            self._last_ns[sym] = now
