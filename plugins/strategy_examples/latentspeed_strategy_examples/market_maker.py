"""A market maker: one bid and one ask around mid, skewed by inventory, requoted on moves.

Skew: every unit of position moves both quotes ``skew_bps`` against it (long -> lower
quotes: sells get likelier, buys less), so inventory mean-reverts. A side that would take
the position past ``max_position`` is not quoted.
"""

from __future__ import annotations

from pydantic import Field

from latentspeed_core.config import StrictModel
from latentspeed_core.engine.strategy import Strategy, ceil_to, floor_to
from latentspeed_core.types import Side

_BUY, _SELL = Side.BUY, Side.SELL  # (an Enum's members are slower reads than module globals)


class MarketMakerParams(StrictModel):
    #: Quote size per side (rounded down to the venue's lot size).
    qty: float = Field(0.01, gt=0)
    #: Distance of each quote from mid, in basis points.
    half_spread_bps: float = Field(1.5, ge=0)
    #: Quote shift per unit of position, in basis points.
    skew_bps: float = Field(2.0, ge=0)
    #: Requote when mid moved this many bps from where we last quoted.
    requote_bps: float = Field(3.0, ge=0)
    #: Do not quote the side that would take |position| beyond this.
    max_position: float = Field(1.0, gt=0)


class _Quote:
    __slots__ = ("bid", "ask", "mid")

    def __init__(self) -> None:
        self.bid = None
        self.ask = None
        self.mid = 0.0


class MarketMaker(Strategy):
    params: MarketMakerParams
    # What on_book reads on every book, in slots: always a specialised read. (In the instance's
    # __dict__ CPython 3.11's cached position for the key missed for these instances and most reads
    # took the generic look-up: ~470 instructions an event in the backtest benchmark.)
    __slots__ = ("_quotes", "_requote_bps", "_qty", "_half_spread_bps", "_skew_bps", "_max_position")

    def __init__(self, params: MarketMakerParams) -> None:
        super().__init__(params)
        self._quotes: dict[str, _Quote] = {}
        # Read on every book and requote: plain attributes. A pydantic model's field is a slower read
        # (its class's __getattr__ keeps CPython from specialising the load); the params are frozen.
        self._requote_bps = params.requote_bps
        self._qty = params.qty
        self._half_spread_bps = params.half_spread_bps
        self._skew_bps = params.skew_bps
        self._max_position = params.max_position

    def on_start(self) -> None:
        self._quotes = {s: _Quote() for s in self.symbols}

    def on_book(self, msg: dict) -> None:
        sym = msg["symbol"]
        mid = msg.get("midpoint")
        if not mid:
            return
        q = self._quotes[sym]
        qm = q.mid
        if qm and not abs(mid - qm) * 10_000.0 >= self._requote_bps * mid:
            bid, ask = q.bid, q.ask
            if bid is not None and ask is not None and bid.is_open and ask.is_open:
                return  # both quotes rest where they should (most books)
        self._quote(sym, mid, q)

    def _quote(self, sym: str, mid: float, q: _Quote) -> None:
        """Quote the sides that need it: a side not resting, or both when mid moved."""
        bid, ask = q.bid, q.ask
        bid_live = bid is not None and bid.is_open
        ask_live = ask is not None and ask.is_open
        moved = abs(mid - q.mid) * 10_000.0 >= self._requote_bps * mid if q.mid else True
        ctx = self.ctx
        if not ctx.ready:  # venue down or trading halted: change nothing until it is back
            return
        pos = ctx.position(sym).qty
        tick, lot = ctx.instrument(sym)
        qty = floor_to(self._qty, lot)
        if qty <= 0:
            return
        skew = pos * self._skew_bps
        half = self._half_spread_bps
        bid_px = floor_to(mid * (1.0 - (half + skew) / 10_000.0), tick)
        ask_px = ceil_to(mid * (1.0 + (half - skew) / 10_000.0), tick)
        if moved:
            # Requote: pull what rests, place fresh quotes at the new prices.
            if bid_live:
                ctx.cancel(bid.cl_ord_id)
                bid_live = False
            if ask_live:
                ctx.cancel(ask.cl_ord_id)
                ask_live = False
            q.mid = mid
        limit = self._max_position + 1e-12
        if not bid_live and pos + qty <= limit:
            q.bid = ctx.submit(sym, _BUY, qty, bid_px)
        if not ask_live and -pos + qty <= limit:
            q.ask = ctx.submit(sym, _SELL, qty, ask_px)
