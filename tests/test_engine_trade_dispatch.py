"""Engine trade dispatch: prints reach every strategy that overrides ``on_trade`` (directly,
inherited or set on the instance), and only strategies trading that symbol."""

from __future__ import annotations

from latentspeed_mock_exchange.venue import MockVenue

from latentspeed_core.engine.core import Engine
from latentspeed_core.engine.risk import RiskEngine
from latentspeed_core.engine.strategy import Strategy


class _Books(Strategy):
    """Keeps the base class's no-op on_trade."""


class _Trades(Strategy):
    def __init__(self) -> None:
        self.trades: list[dict] = []

    def on_trade(self, msg: dict) -> None:
        self.trades.append(msg)


class _Inherits(_Trades):
    pass


def _trade(symbol: str, n: int) -> dict:
    return {"exchange": "MOCK", "symbol": symbol, "price": 100.0, "amount": 1.0, "side": "buy",
            "trade_id": str(n), "receipt_timestamp_ns": 1, "timestamp_ns": 1, "seq": n}  # fmt: skip


def test_trades_reach_the_strategies_that_want_them():
    engine = Engine(MockVenue(), RiskEngine([]))
    plain, direct, inherited, other = _Books(), _Trades(), _Inherits(), _Trades()
    per_instance = _Books()
    got: list[dict] = []
    per_instance.on_trade = got.append
    engine.add_strategy("plain", plain, ["BTC-USD"])
    engine.add_strategy("direct", direct, ["BTC-USD"])
    engine.add_strategy("inherited", inherited, ["BTC-USD", "ETH-USD"])
    engine.add_strategy("instance", per_instance, ["BTC-USD"])
    engine.add_strategy("other", other, ["ETH-USD"])
    engine.on_trade(_trade("BTC-USD", 1))
    engine.on_trade(_trade("ETH-USD", 2))
    engine.on_trade(_trade("SOL-USD", 3))
    assert [m["trade_id"] for m in direct.trades] == ["1"]
    assert [m["trade_id"] for m in inherited.trades] == ["1", "2"]
    assert [m["trade_id"] for m in got] == ["1"]
    assert [m["trade_id"] for m in other.trades] == ["2"]
    assert engine.trades_rx == 3 and engine.rx_packets == 3
    engine.trading_enabled = False
    engine.on_trade(_trade("BTC-USD", 4))
    assert len(direct.trades) == 1  # halted: counted, not dispatched
    assert engine.trades_rx == 4
