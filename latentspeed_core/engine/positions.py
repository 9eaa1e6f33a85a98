"""Positions and PnL per symbol: average cost, realized on reduction, unrealized at mid."""

from __future__ import annotations

from ..types import Side


class Position:
    """Signed quantity (long > 0) with its average entry price."""

    __slots__ = ("symbol", "qty", "avg_price", "realized", "fees", "mark", "volume", "fills")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.qty = 0.0
        self.avg_price = 0.0
        self.realized = 0.0
        self.fees = 0.0
        #: Last mid price; unrealized PnL is marked here.
        self.mark = 0.0
        self.volume = 0.0
        self.fills = 0

    def apply_fill(self, side: Side, price: float, qty: float, fee: float, traded: float | None = None) -> None:
        """``qty``: what the position gains or loses; ``traded`` (default ``qty``): the fill's size,
        for the volume (they differ when the venue kept part of the asset bought as its fee)."""
        signed = qty if side == Side.BUY else -qty
        q = self.qty
        self.fees += fee
        self.volume += (qty if traded is None else traded) * price
        self.fills += 1
        if q == 0.0 or (q > 0.0) == (signed > 0.0):
            # Adding to (or opening) a position: the average cost moves.
            new_q = q + signed
            self.avg_price = (self.avg_price * abs(q) + price * qty) / abs(new_q)
            self.qty = new_q
            return
        closed = min(qty, abs(q))
        direction = 1.0 if q > 0.0 else -1.0
        self.realized += closed * (price - self.avg_price) * direction
        new_q = q + signed
        if abs(new_q) < 1e-12:
            self.qty = 0.0
            self.avg_price = 0.0
        elif (new_q > 0.0) != (q > 0.0):
            # Flipped through zero: the remainder opens at the fill price.
            self.qty = new_q
            self.avg_price = price
        else:
            self.qty = new_q

    @property
    def unrealized(self) -> float:
        if self.qty == 0.0 or self.mark == 0.0:
            return 0.0
        return self.qty * (self.mark - self.avg_price)

    @property
    def pnl(self) -> float:
        """Realized + unrealized, net of fees."""
        return self.realized + self.unrealized - self.fees

    def as_dict(self) -> dict:
        return {
            "qty": self.qty,
            "avg_price": self.avg_price,
            "realized": self.realized,
            "unrealized": self.unrealized,
            "fees": self.fees,
            "mark": self.mark,
            "fills": self.fills,
        }


class Portfolio:
    """All positions of the session, created on first use."""

    def __init__(self, symbols: list[str] = ()) -> None:
        self.positions: dict[str, Position] = {s: Position(s) for s in symbols}

    def get(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.qty if pos is not None else 0.0

    @property
    def realized(self) -> float:
        return sum(p.realized for p in self.positions.values())

    @property
    def unrealized(self) -> float:
        return sum(p.unrealized for p in self.positions.values())

    @property
    def fees(self) -> float:
        return sum(p.fees for p in self.positions.values())

    @property
    def pnl(self) -> float:
        """Same sum as ``sum(p.pnl ...)``, inlined: the ``max_loss`` check reads it for every order."""
        total = 0
        for p in self.positions.values():
            q = p.qty
            mark = p.mark
            total += p.realized + (q * (mark - p.avg_price) if q != 0.0 and mark != 0.0 else 0.0) - p.fees
        return total
