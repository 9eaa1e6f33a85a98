"""Engine parts in isolation: the order state machine, positions/PnL and each standard risk check."""

from __future__ import annotations

import pytest

from latentspeed_core.config import ConfigError
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.orders import OrderManager, OrderState
from latentspeed_core.engine.positions import Position
from latentspeed_core.engine.risk import (
    LimitConfig,
    MaxLoss,
    MaxNotional,
    MaxOpenOrders,
    MaxOrderQty,
    MaxOrdersPerSecond,
    MaxPosition,
    PriceBand,
    RateConfig,
    RiskEngine,
)
from latentspeed_core.plugins import load_registry
from latentspeed_core.types import (
    ExecType,
    ExecutionReport,
    Order,
    OrderStatus,
    OrdType,
    RejectReason,
    Side,
    TimeInForce,
)

# -- order manager ----------------------------------------------------------------------------


def _order(om: OrderManager, qty=1.0) -> OrderState:
    st = OrderState(
        om.next_id(),
        "BTC-USD",
        Side.BUY,
        qty,
        100.0,
        OrdType.LIMIT,
        TimeInForce.GTC,
        "s",
        False,
        "book",
        1,
        2,
    )
    st.sent_ns = 3
    om.add(st)
    return st


def _rep(cid, et, cum=0.0, leaves=0.0, px=100.0, last=0.0, oid=7, reason=RejectReason.NONE):
    return ExecutionReport(cid, oid, 1, "BTC-USD", Side.BUY, et, px, last, leaves, cum, reason)


def test_lifecycle_new_partial_fill():
    om = OrderManager()
    st = _order(om)
    out = om.apply(_rep(st.cl_ord_id, ExecType.NEW, leaves=1.0), 10)
    assert st.status == OrderStatus.NEW and out.status_changed and st.ack_ns == 10
    out = om.apply(_rep(st.cl_ord_id, ExecType.PARTIAL_FILL, cum=0.4, leaves=0.6, last=0.4, px=99.0), 11)
    assert (out.fill_qty, out.fill_px) == (pytest.approx(0.4), 99.0)
    assert st.status == OrderStatus.PARTIALLY_FILLED and st.first_fill_ns == 11
    out = om.apply(_rep(st.cl_ord_id, ExecType.FILL, cum=1.0, leaves=0.0, last=0.6, px=101.0), 12)
    assert out.fill_qty == pytest.approx(0.6) and out.final
    assert st.status == OrderStatus.FILLED and st.final_ns == 12 and not om.open
    assert st.avg_px == pytest.approx(0.4 * 99 + 0.6 * 101)


def test_duplicates_and_out_of_order_reports_are_idempotent():
    om = OrderManager()
    st = _order(om)
    part = _rep(st.cl_ord_id, ExecType.PARTIAL_FILL, cum=0.4, leaves=0.6, last=0.4)
    fill = _rep(st.cl_ord_id, ExecType.FILL, cum=1.0, leaves=0.0, last=0.6)
    # The FILL overtakes the NEW and the partial: the whole cum counts once.
    assert om.apply(fill, 1).fill_qty == pytest.approx(1.0)
    assert st.status == OrderStatus.FILLED
    for late in (
        part,
        _rep(st.cl_ord_id, ExecType.NEW, leaves=1.0),
        fill,
        _rep(st.cl_ord_id, ExecType.CANCELED),
    ):
        out = om.apply(late, 2)
        assert out.fill_qty == 0.0 and not out.status_changed
    assert st.status == OrderStatus.FILLED and st.filled_qty == 1.0
    assert om.duplicate_reports == 4


def test_cancel_answers_and_cancel_reject():
    om = OrderManager()
    a, b = _order(om), _order(om)
    om.apply(_rep(a.cl_ord_id, ExecType.NEW, leaves=1), 1)
    om.apply(_rep(b.cl_ord_id, ExecType.NEW, leaves=1, oid=8), 1)
    # The venue answers a cancel under the cancel request's own id...
    ccid = om.new_cancel_id(a.cl_ord_id)
    a.cancel_pending = True
    om.apply(_rep(ccid, ExecType.CANCELED), 2)
    assert a.status == OrderStatus.CANCELED
    # ...or refuses it under the order's id (the mock: "unknown order"): the order is unchanged.
    b.cancel_pending = True
    om.apply(_rep(b.cl_ord_id, ExecType.REJECTED, oid=0, reason=RejectReason.UNKNOWN_ORDER), 3)
    assert b.status == OrderStatus.NEW and not b.cancel_pending and om.cancel_rejects == 1


def test_a_cancel_refused_after_the_order_filled_is_a_cancel_reject():
    """The usual race: the order fills at the venue, our cancel arrives after, and the venue refuses
    it under the order's id once the fill has reached us. A refused cancel, not a duplicate."""
    om = OrderManager()
    a = _order(om)
    om.apply(_rep(a.cl_ord_id, ExecType.NEW, leaves=1), 1)
    om.new_cancel_id(a.cl_ord_id)
    a.cancel_pending = True
    om.apply(_rep(a.cl_ord_id, ExecType.FILL, cum=1.0, last=1.0), 2)
    assert a.status == OrderStatus.FILLED and not a.cancel_pending
    om.apply(_rep(a.cl_ord_id, ExecType.REJECTED, oid=0, reason=RejectReason.UNKNOWN_ORDER), 3)
    assert a.status == OrderStatus.FILLED and om.cancel_rejects == 1 and om.duplicate_reports == 0
    om.apply(_rep(a.cl_ord_id, ExecType.FILL, cum=1.0, last=1.0), 4)  # the venue repeats
    assert om.duplicate_reports == 1


def test_reject_and_unmatched():
    om = OrderManager()
    st = _order(om)
    out = om.apply(_rep(st.cl_ord_id, ExecType.REJECTED, reason=RejectReason.INVALID_PRICE), 5)
    assert st.status == OrderStatus.REJECTED and st.reject_reason == RejectReason.INVALID_PRICE and out.final
    assert om.apply(_rep(999, ExecType.NEW), 6).order is None and om.unmatched_reports == 1


def test_disconnect_marks_open_orders_unknown_and_late_reports_resolve_them():
    om = OrderManager()
    a, b, c = _order(om), _order(om), _order(om)
    om.apply(_rep(c.cl_ord_id, ExecType.FILL, cum=1.0), 1)
    lost = om.mark_unknown(9)
    assert {o.cl_ord_id for o in lost} == {a.cl_ord_id, b.cl_ord_id}
    assert a.status == b.status == OrderStatus.UNKNOWN and not om.open
    om.apply(_rep(a.cl_ord_id, ExecType.CANCELED), 10)
    assert a.status == OrderStatus.CANCELED
    assert len({om.next_id() for _ in range(100)}) == 100  # ids never reused


# -- positions --------------------------------------------------------------------------------


def test_average_cost_realized_unrealized_and_flip():
    p = Position("BTC-USD")
    p.apply_fill(Side.BUY, 100.0, 1.0, 0.1)
    p.apply_fill(Side.BUY, 110.0, 1.0, 0.1)
    assert p.qty == 2.0 and p.avg_price == pytest.approx(105.0)
    p.apply_fill(Side.SELL, 120.0, 0.5, 0.0)
    assert p.realized == pytest.approx(7.5) and p.avg_price == pytest.approx(105.0)
    p.mark = 100.0
    assert p.unrealized == pytest.approx(1.5 * -5.0)
    p.apply_fill(Side.SELL, 90.0, 2.5, 0.0)  # through zero: 1.5 closed, 1.0 short opened at 90
    assert p.qty == pytest.approx(-1.0) and p.avg_price == 90.0
    assert p.realized == pytest.approx(7.5 + 1.5 * -15.0)
    assert p.pnl == pytest.approx(p.realized + (-1.0) * (100.0 - 90.0) - 0.2)


# -- risk checks ------------------------------------------------------------------------------


class View:
    """Engine state as the risk checks see it (a plain input, not a stand-in for engine code)."""

    def __init__(self, mid=100.0, pos=0.0, open_buy=0.0, open_sell=0.0, open_count=0, pnl=0.0):
        self._mid, self._pos, self._open, self._count, self._pnl = (
            mid,
            pos,
            (open_buy, open_sell),
            open_count,
            pnl,
        )

    def mid(self, symbol):
        return self._mid

    def position(self, symbol):
        return self._pos

    def open_qty(self, symbol, side):
        return self._open[side]

    def open_order_count(self):
        return self._count

    def total_pnl(self):
        return self._pnl


def _o(side=Side.BUY, qty=1.0, price=100.0, ord_type=OrdType.LIMIT):
    return Order(1, "BTC-USD", side, qty, price, ord_type)


@pytest.mark.parametrize(
    "check, order, view, refused",
    [
        (MaxOrderQty(LimitConfig(limit=1)), _o(qty=1.0), View(), False),
        (MaxOrderQty(LimitConfig(limit=1)), _o(qty=1.5), View(), True),
        (MaxNotional(LimitConfig(limit=150)), _o(qty=1.0, price=100), View(), False),
        (MaxNotional(LimitConfig(limit=150)), _o(qty=2.0, price=100), View(), True),
        (
            MaxNotional(LimitConfig(limit=150)),
            _o(qty=2.0, ord_type=OrdType.MARKET, price=0),
            View(mid=50),
            False,
        ),
        (MaxPosition(LimitConfig(limit=2)), _o(qty=1.0), View(pos=1.0), False),
        (MaxPosition(LimitConfig(limit=2)), _o(qty=1.0), View(pos=1.0, open_buy=0.5), True),
        (MaxPosition(LimitConfig(limit=2)), _o(Side.SELL, qty=1.0), View(pos=1.0, open_buy=5), False),
        (MaxPosition(LimitConfig(limit=2)), _o(Side.SELL, qty=1.0), View(pos=-1.5), True),
        (PriceBand(LimitConfig(limit=100)), _o(price=100.9), View(mid=100.0), False),
        (PriceBand(LimitConfig(limit=100)), _o(price=101.1), View(mid=100.0), True),
        (PriceBand(LimitConfig(limit=100)), _o(price=98.9), View(mid=100.0), True),
        (PriceBand(LimitConfig(limit=100)), _o(price=100.0), View(mid=None), True),
        (MaxOpenOrders(RateConfig(limit=3)), _o(), View(open_count=2), False),
        (MaxOpenOrders(RateConfig(limit=3)), _o(), View(open_count=3), True),
        (MaxLoss(LimitConfig(limit=10)), _o(), View(pnl=-9.99), False),
        (MaxLoss(LimitConfig(limit=10)), _o(), View(pnl=-10.0), True),
    ],
)
def test_standard_checks(check, order, view, refused):
    assert (check.check(order, view, 0) is not None) == refused


def test_orders_per_second_is_a_sliding_window_over_accepted_orders():
    rate = MaxOrdersPerSecond(RateConfig(limit=3))
    risk = RiskEngine([("max_orders_per_second", rate)])
    view = View()
    t = 1_000_000_000
    for i in range(3):
        assert risk.check(_o(), view, t + i) is None
        risk.sent(_o(), t + i)
    assert "max_orders_per_second" in risk.check(_o(), view, t + 10)
    assert risk.check(_o(), view, t + 1_000_000_000) is None  # the first one left the window


def test_configured_checks_run_in_priority_order_not_config_order():
    reg = load_registry([])
    data = {
        "market_data": {"zmq": {"port": 5556}},
        "venue": {"exchange": "mock"},
        "strategies": [{"name": "x", "symbols": ["BTC-USD"]}],
        "risk": {"max_position": 5, "max_order_qty": 1, "max_loss": 10},
    }
    # No venue/strategy plugins loaded: the config names them, so that is the error (with its path).
    with pytest.raises(ConfigError) as e:
        resolve(data, reg, "t.yml")
    assert "venue.exchange" in str(e.value)
    reg = load_registry(["mock", "examples"])
    data["strategies"][0]["name"] = "market_maker"
    setup = resolve(data, reg, "t.yml")
    assert [n for n, _, _ in setup.risk_checks] == ["max_loss", "max_order_qty", "max_position"]
    data["risk"]["max_order_qty"] = {"limit": -1}
    with pytest.raises(ConfigError) as e:
        resolve(data, reg, "t.yml")
    assert "risk.max_order_qty.limit" in str(e.value)


def test_a_plugin_risk_check_is_configured_and_runs_at_its_priority():
    from latentspeed_core import hookimpl
    from latentspeed_core.components import Component
    from latentspeed_core.config import StrictModel
    from latentspeed_core.engine.risk import RiskCheck, build_risk

    class NoSymbolsConfig(StrictModel):
        symbols: list[str]

    class NoSymbols(RiskCheck):
        def __init__(self, cfg):
            self.banned = set(cfg.symbols)

        def check(self, order, view, now_ns):
            return f"{order.symbol} is banned" if order.symbol in self.banned else None

    class Plugin:
        __name__ = "banlist"

        @staticmethod
        @hookimpl
        def register_risk_checks(register):
            register(Component("banned_symbols", NoSymbolsConfig, NoSymbols, priority=5))

    reg = load_registry(["mock", "examples"], extra=[Plugin()])
    data = {
        "market_data": {"zmq": {}},
        "venue": {"exchange": "mock"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
        "risk": {"max_order_qty": 1, "banned_symbols": {"symbols": ["ETH-USD"]}},
    }
    setup = resolve(data, reg)
    assert [n for n, _, _ in setup.risk_checks] == ["banned_symbols", "max_order_qty"]
    risk = build_risk(setup.risk_checks)
    assert (
        risk.check(Order(1, "ETH-USD", Side.BUY, 5.0, 100.0), View(), 0)
        == "banned_symbols: ETH-USD is banned"
    )
    assert risk.check(Order(1, "BTC-USD", Side.BUY, 5.0, 100.0), View(), 0).startswith("max_order_qty")
    data["risk"]["banned_symbols"] = {"symbol": ["ETH-USD"]}
    with pytest.raises(ConfigError) as e:
        resolve(data, reg, "t.yml")
    assert "risk.banned_symbols" in str(e.value)


def test_a_strategy_symbol_no_feed_subscribes_is_a_config_error():
    reg = load_registry(["mock", "examples"])
    data = {
        "market_data": {"feeds": [{"exchange": "mock", "port": 9000, "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "paper"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD", "ETH-USD", "sol-usd"]}],
    }
    with pytest.raises(ConfigError) as e:
        resolve(data, reg, "t.yml")
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and all("strategies[0].symbols" in x and "in no feed's symbols (BTC-USD)" in x for x in lines)
    assert "ETH-USD is" in lines[0] and "SOL-USD is" in lines[1]  # (symbols are normalised on both sides)
    data["market_data"]["feeds"][0]["symbols"].append("ETH-USD")
    data["strategies"][0]["symbols"].pop()
    assert resolve(data, reg, "t.yml").strategies[0].symbols == ["BTC-USD", "ETH-USD"]
    # market data from elsewhere (a marketstream, the venue) carries whatever it sends: not checked
    data["market_data"] = {"zmq": {"port": 5556}}
    data["strategies"][0]["symbols"].append("XYZ-USD")
    assert resolve(data, reg, "t.yml")


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"fees": {"maker_bps": float("nan")}}, "fees.maker_bps"),
        ({"fees": {"taker_bps": float("inf")}}, "fees.taker_bps"),
        ({"risk": {"max_position": float("inf")}}, "risk.max_position"),
        ({"strategies": [{"name": "market_maker", "symbols": ["BTC-USD"], "params": {"skew_bps": float("-inf")}}]},
         "strategies[0].params.skew_bps"),
        ({"venue": {"exchange": "paper", "entry_latency_us": float("nan")}}, "venue.entry_latency_us"),
    ],
)
def test_a_number_that_is_not_finite_is_a_config_error(patch, key):
    """YAML's .nan and .inf parse as floats; a NaN fee made every PnL NaN, without an error."""
    assert f"{key}: Input should be a finite number" in _paper_config_error(**patch)


def _paper_config_error(**extra) -> str:
    """The ConfigError text of a paper-venue engine config (market data over ZeroMQ) plus ``extra``."""
    data = {
        "market_data": {"zmq": {"port": 5556}},
        "venue": {"exchange": "paper"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
        **extra,
    }
    with pytest.raises(ConfigError) as e:
        resolve(data, load_registry(["mock", "examples"]), "t.yml")
    return str(e.value)


@pytest.mark.parametrize("key", ["latency", "log"])
def test_an_output_file_that_is_a_directory_is_a_config_error(tmp_path, key):
    """Found only when the run first wrote to it, it was an IsADirectoryError traceback."""
    assert f"{key}.file: {tmp_path}: is a directory" in _paper_config_error(**{key: {"file": str(tmp_path)}})
