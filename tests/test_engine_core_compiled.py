"""The engine's compiled market-data entry points (``_engine.EngineCore``) do what the Python does.

``Engine.on_book`` and ``Engine.on_trade`` run in C for their usual case and call the Python rule
(``core._EngineCorePy``) for every other one. Here two engines, one on each, get the same random
messages (books with and without a mid, missing keys, non-dict messages, receipt overrides,
superseded snapshots, trading halted, strategies that raise, positions that trip the kill switch),
and must end in the same state: the same strategy calls (with the trigger and receipt the strategy
saw), counters, books, mids, marks, errors and exceptions.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from latentspeed_core.engine import core
from latentspeed_core.engine.core import Engine, _EngineCorePy
from latentspeed_core.engine.risk import MaxLoss, RiskEngine
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.testing import python_calls
from latentspeed_core.venue import Venue

compiled = _EngineCorePy not in Engine.__mro__


class PythonEngine(*(() if not compiled else (_EngineCorePy,)), Engine):
    """The engine with its entry points in Python (the state stays in the compiled base's fields)."""


class Wire(Venue):
    """A connected venue that takes nothing (no strategy here sends orders)."""

    name = "WIRE"

    def __init__(self) -> None:
        super().__init__(None)
        self.connected = True

    async def run(self, listener) -> None:  # pragma: no cover - never run
        raise NotImplementedError

    def send_new_order(self, order) -> None:  # pragma: no cover - never called
        raise AssertionError("no orders here")

    def send_cancel(self, cl_ord_id, orig_cl_ord_id, symbol) -> None:  # pragma: no cover - never called
        raise AssertionError("no orders here")


class Recorder(Strategy):
    """Records what it is called with and what the engine says triggered it; raises on request."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def on_book(self, msg: dict) -> None:
        engine = self.ctx._engine
        self.calls.append(("book", id(msg), engine._trigger, engine._md_receipt_ns))
        if msg.get("raise"):
            raise ValueError("strategy bug")

    def on_trade(self, msg: dict) -> None:
        engine = self.ctx._engine
        self.calls.append(("trade", id(msg), engine._trigger, engine._md_receipt_ns))
        if msg.get("raise"):
            raise ValueError("strategy bug")


class MaxLoss1(MaxLoss):
    name = "max_loss"

    def __init__(self) -> None:
        self.limit = 1.0


def build(cls: type[Engine], kill_switch: bool) -> tuple[Engine, Recorder]:
    venue = Wire()
    risk = RiskEngine([("max_loss", MaxLoss1())] if kill_switch else [])
    engine = cls(venue, risk, clock=lambda: 1)
    strategy = Recorder()
    engine.add_strategy("s", strategy, ["A", "B"])
    return engine, strategy


symbols = st.sampled_from(["A", "B", "C"])
prices = st.sampled_from([0.0, 1.0, 99.5, 100.0, 100.5])


@st.composite
def messages(draw) -> tuple:
    kind = draw(st.sampled_from(["book", "book", "book", "trade", "halt", "position", "not-a-dict"]))
    if kind == "halt":
        return ("halt", draw(st.booleans()))
    if kind == "position":
        return ("position", draw(symbols), draw(st.sampled_from([0.0, 1.0, -2.0])), draw(prices))
    if kind == "not-a-dict":
        return ("book", ["A"], draw(st.sampled_from([0, 5])), True)
    msg: dict = {"receipt_timestamp_ns": draw(st.integers(1, 10**6))}
    if draw(st.integers(0, 9)):
        msg["symbol"] = draw(symbols)
    if kind == "book":
        bid, ask = draw(prices), draw(prices)
        msg["bids"] = [[bid, 1.0]] if bid else []
        msg["asks"] = [[ask + 1.0, 1.0]] if draw(st.integers(0, 5)) else []
        mid = draw(st.sampled_from(["absent", "none", "zero", "value"]))
        if mid == "none":
            msg["midpoint"] = None
        elif mid == "zero":
            msg["midpoint"] = 0.0
        elif mid == "value":
            msg["midpoint"] = bid + 0.5
    if not draw(st.integers(0, 7)):
        msg["raise"] = True
    receipt = draw(st.sampled_from([None, 0, 77]))
    act = draw(st.sampled_from([None, True, False]))
    return (kind, msg, receipt, act)


def run(engine: Engine, strategy: Recorder, script: list) -> list:
    outcomes = []
    for step in script:
        kind = step[0]
        if kind == "halt":
            engine.trading_enabled = step[1]
            continue
        if kind == "position":
            pos = engine.portfolio.get(step[1])
            pos.qty, pos.avg_price = step[2], step[3]
            continue
        msg, receipt, act = step[1], step[2], step[3]
        args = [msg] + ([] if receipt is None else [receipt])
        if kind == "book" and act is not None:
            args = [msg, receipt or 0, act]
        fn = engine.on_book if kind == "book" else engine.on_trade
        try:
            fn(*args)
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    marks = {s: (p.mark, p.qty) for s, p in engine.portfolio.positions.items()}
    books = {s: id(m) for s, m in engine.books.items()}
    return [
        outcomes, strategy.calls, engine.rx_packets, engine.trades_rx, books, dict(engine._mids), marks,
        engine.strategy_errors, engine.trading_enabled, engine.halt_reason, engine._trigger, engine._md_receipt_ns,
    ]  # fmt: skip


def _book(symbol: str, mid, **extra) -> dict:
    return {"symbol": symbol, "midpoint": mid, "bids": [[99.0, 1.0]], "asks": [[101.0, 1.0]],
            "receipt_timestamp_ns": 3, **extra}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(script=st.lists(messages(), max_size=30), kill_switch=st.booleans())
# a mark that trips the kill switch, then books on a halted engine
@example(script=[("position", "A", 1.0, 100.0), ("book", _book("A", 1.0), None, None),
                 ("book", _book("A", 2.0), 9, True)], kill_switch=True)  # fmt: skip
# a receipt override, a superseded snapshot, a mid computed from the levels, a raising strategy
@example(script=[("book", _book("B", 5.0), 77, None), ("book", _book("B", 6.0), 0, False),
                 ("book", _book("A", None), None, None), ("book", dict(_book("A", 7.0), **{"raise": True}), None, None),
                 ("trade", {"symbol": "A", "receipt_timestamp_ns": 4, "raise": True}, 5, None)],
         kill_switch=False)  # fmt: skip
def test_compiled_entry_points_end_in_the_same_state_as_the_python(script, kill_switch):
    results = []
    for cls in (Engine, PythonEngine):
        engine, strategy = build(cls, kill_switch)
        results.append(run(engine, strategy, script))
    assert results[0] == results[1]


@pytest.mark.skipif(not compiled, reason="the compiled engine core was not built (no C compiler)")
def test_the_engine_is_built_on_the_compiled_core_and_the_reference_is_not():
    assert core._EngineCore is not _EngineCorePy
    assert PythonEngine.on_book is _EngineCorePy.on_book
    assert Engine.on_book is not _EngineCorePy.on_book


def test_a_strategy_error_is_counted_and_the_next_strategy_still_runs():
    for cls in (Engine, PythonEngine):
        engine, first = build(cls, False)
        second = Recorder()
        engine.add_strategy("t", second, ["A"])
        engine.on_book({"symbol": "A", "midpoint": 1.0, "receipt_timestamp_ns": 5, "raise": True})
        assert engine.strategy_errors == 2
        assert [c[0] for c in first.calls] == [c[0] for c in second.calls] == ["book"]
        assert engine._trigger == "timer" and engine._md_receipt_ns == 5


# -- execution reports --------------------------------------------------------------------------------
# The compiled on_execution_report takes an order's NEW and its CANCELED under its own id; every other
# report goes to the Python. Two engines get the same orders and the same random reports (every type,
# known, unknown and cancel ids, repeats, receipt stamps of 0, order ids of 0) and must end equal.

from latentspeed_core.engine.latency import LatencyLog, Samples  # noqa: E402
from latentspeed_core.engine.orders import OrderState  # noqa: E402
from latentspeed_core.engine.positions import Position  # noqa: E402
from latentspeed_core.types import ExecType, ExecutionReport, Fill, RejectReason, Side  # noqa: E402


class Taker(Wire):
    """A connected venue that takes every order and cancel (the reports come from the script)."""

    name = "TAKER"

    def send_new_order(self, order) -> None:
        pass

    def send_cancel(self, cl_ord_id, orig_cl_ord_id, symbol) -> None:
        pass


class Updates(Strategy):
    """Takes order updates and fills (the engine calls it on every change)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple] = []

    def on_order_update(self, order) -> None:
        self.seen.append(("update", order.cl_ord_id, order.status))

    def on_fill(self, fill) -> None:
        self.seen.append(("fill", fill.cl_ord_id, fill.qty))


reports = st.tuples(
    st.sampled_from(["order", "cancel", "report", "report", "report", "report"]),
    st.integers(1, 8),  # which order (or cancel id) the step is about
    st.sampled_from(list(ExecType)),
    st.sampled_from([0, 5, 10**9 + 7]),  # receipt_ns (0: the engine's clock)
    st.sampled_from([0, 0, 1, 2]),  # qty step of a fill
    st.booleans(),  # order_id given
    st.sampled_from([None, None, 0.25, 0.0, 1]),  # the fee the venue charged (None: the engine's rate)
    st.sampled_from([0.0, 0.0, 0.5, 5.0]),  # base units the venue kept as its fee (5: more than a fill)
)


def run_reports(cls, script, updates: bool) -> list:
    t = [1000]

    def clock():
        t[0] += 10
        return t[0]

    engine = cls(
        Taker(), RiskEngine([]), clock=clock, latency=LatencyLog(None), maker_bps=-0.5, taker_bps=2.0
    )
    strategy = Updates() if updates else Recorder()
    engine.add_strategy("s", strategy, ["A"])
    engine.orders.retain_max = 2  # final orders and cancel ids are forgotten too, by count
    engine.orders._clock = lambda: float(t[0])  # and by age: a few of the engine's clock steps
    engine.orders.retain_s = 25.0
    engine.round_trip = Samples(cap=3, seed=1)  # and the samples' reservoir replaces some
    # a book (some orders are marketable: taker when the venue does not say) and a mid (a first fill
    # marks the position there)
    engine.books["A"] = {"symbol": "A", "midpoint": 103.5, "bids": [[103.0, 1.0]], "asks": [[104.0, 1.0]]}
    engine._mids["A"] = 103.5
    out = []
    cum: dict[int, float] = {}
    for kind, n, et, receipt, step, with_oid, *fees in script:
        if kind == "order":
            st_ = engine.submit("s", "A", Side.BUY if n % 2 else Side.SELL, 3.0, 100.0 + n)
            out.append(st_.cl_ord_id if st_ is not None else None)
        elif kind == "cancel":
            out.append(engine.cancel(n))
        else:
            c = cum.get(n, 0.0) + (step if et in (ExecType.PARTIAL_FILL, ExecType.FILL) else 0.0)
            cum[n] = c
            r = ExecutionReport(
                n, 50 + n if with_oid else 0, len(out), "A", Side.BUY if n % 2 else Side.SELL, et, 100.0, float(step),
                max(3.0 - c, 0.0), c, RejectReason.NONE if et != ExecType.REJECTED else RejectReason.UNKNOWN_ORDER,
                7, receipt, n % 3,  # liquidity: unknown (the order's marketability decides), maker, taker
                *fees,  # (fee, fee_base) when drawn
            )  # fmt: skip
            engine.on_execution_report(r)
            out.append(None)
    om = engine.orders
    states = {
        cid: tuple(getattr(s, f) for f in OrderState.__slots__) for cid, s in sorted(om.orders.items())
    }  # fmt: skip
    return [
        out, states, sorted(om.open), dict(om._by_order_id), dict(om._cancels), [dict(d) for d in om._open_qty],
        [dict(d) for d in om._open_n], [c for _t, c in om._retired], om.unmatched_reports, om.duplicate_reports,
        om.cancel_rejects, engine.round_trip.data.tolist(), len(engine.round_trip), om.forgotten,
        [c for _t, c in om._cancels_sent], engine.fills, engine.venue_rejects,
        [tuple(getattr(p, k) for k in Position.__slots__) for p in engine.portfolio.positions.values()],
        getattr(strategy, "seen", None), [tuple(getattr(f, k) for k in Fill.__slots__) for f in engine.recent_fills],
        (om._out.order.cl_ord_id if om._out.order else None, om._out.fill_qty, om._out.status_changed, om._out.final),
    ]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(script=st.lists(reports, max_size=40), updates=st.booleans())
@example(  # the usual life of two orders: NEW, then CANCELED; and a FILL
    script=[("order", 1, ExecType.NEW, 0, 0, False), ("order", 2, ExecType.NEW, 0, 0, False),
            ("report", 1, ExecType.NEW, 5, 0, True), ("report", 2, ExecType.NEW, 5, 0, True),
            ("cancel", 1, ExecType.NEW, 0, 0, False), ("report", 1, ExecType.CANCELED, 9, 0, True),
            ("report", 2, ExecType.FILL, 9, 2, True), ("report", 2, ExecType.CANCELED, 9, 0, True)],
    updates=False,
)  # fmt: skip
@example(  # a marketable order (cl 3: liquidity unknown, taker by the book) filled in two parts, then
    # a cancel refused under the cancel's id and one under the order's own id
    script=[("order", 1, ExecType.NEW, 0, 0, False), ("order", 2, ExecType.NEW, 0, 0, False),
            ("order", 5, ExecType.NEW, 0, 0, False), ("report", 3, ExecType.NEW, 5, 0, True),
            ("report", 3, ExecType.PARTIAL_FILL, 6, 1, True), ("cancel", 3, ExecType.NEW, 0, 0, False),
            ("report", 3, ExecType.FILL, 7, 2, True), ("report", 4, ExecType.REJECTED, 8, 0, False),
            ("report", 3, ExecType.REJECTED, 9, 0, True), ("report", 1, ExecType.NEW, 5, 0, True),
            ("report", 1, ExecType.REJECTED, 9, 0, True)],  # (an acknowledged order rejected: a repeat)
    updates=False,
)  # fmt: skip
@example(  # four orders acknowledged and canceled, each cancel refused: more final orders and cancel
    # ids than retain_max (2), so both are forgotten in the order they came
    script=[("order", 1, ExecType.NEW, 0, 0, False)] * 4
    + [("report", i, ExecType.NEW, 5, 0, True) for i in (1, 2, 3, 4)]
    + [("cancel", i, ExecType.NEW, 0, 0, False) for i in (1, 2, 3, 4)]
    + [("report", i, ExecType.CANCELED, 9, 0, True) for i in (1, 2, 3, 4)],
    updates=False,
)
@example(  # a cancel id old enough to forget when the next order becomes final (by age, not count)
    script=[("order", 1, ExecType.NEW, 0, 0, False), ("order", 2, ExecType.NEW, 0, 0, False),
            ("report", 1, ExecType.NEW, 5, 0, True), ("cancel", 1, ExecType.NEW, 0, 0, False),
            ("order", 3, ExecType.NEW, 0, 0, False), ("order", 4, ExecType.NEW, 0, 0, False),
            ("report", 1, ExecType.CANCELED, 9, 0, True)],
    updates=False,
)  # fmt: skip
def test_compiled_reports_end_in_the_same_state_as_the_python(script, updates):
    assert run_reports(Engine, script, updates) == run_reports(PythonEngine, script, updates)


@pytest.mark.skipif(not compiled, reason="the compiled engine core was not built (no C compiler)")
def test_acks_and_cancels_are_compiled():
    """Not vacuous: NEW and CANCELED of an engine without order updates run no Python apply."""
    engine = Engine(Taker(), RiskEngine([]), clock=lambda: 1, latency=LatencyLog(None))
    engine.add_strategy("s", Recorder(), ["A"])
    engine.submit("s", "A", Side.BUY, 1.0, 100.0)
    with python_calls("latentspeed_core") as calls:  # the engine's Python (not a gc callback's)
        for et in (ExecType.NEW, ExecType.CANCELED):
            engine.on_execution_report(
                ExecutionReport(1, 9, 1, "A", Side.BUY, et, 0.0, 0.0, 0.0, 0.0, RejectReason.NONE, 5, 6)
            )
    assert "apply" not in calls and "on_execution_report" not in calls
    st_ = engine.orders.orders[1]
    assert (st_.status_name, st_.order_id, st_.ack_ns, st_.final_ns, st_.is_open) == (
        "canceled",
        9,
        6,
        6,
        False,
    )
    assert engine.round_trip.data.tolist() == [6 - st_.sent_ns] and not engine.orders.open


# -- the backtest's equity curve sample ------------------------------------------------------------------
from latentspeed_core.engine.core import curve_point  # noqa: E402
from latentspeed_core.engine.positions import Portfolio  # noqa: E402

floats = st.sampled_from([0.0, -0.0, 1.0, -2.5, 0.1, 1e-9, 3e5, math.inf, math.nan])


class Held:
    """A position of another type (read through Python)."""

    def __init__(self, qty: float) -> None:
        self.qty = qty
        self.mark = self.avg_price = self.realized = self.fees = 1.0


class OwnPnl(Portfolio):
    @property
    def pnl(self) -> float:
        return 42.0


def _reference(t, portfolio) -> tuple:
    return (t, portfolio.pnl, {s: p.qty for s, p in portfolio.positions.items()})


def _key(v):
    return ("nan", type(v)) if isinstance(v, float) and math.isnan(v) else (v, type(v))


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(floats, floats, floats, floats, floats), max_size=5),
    kind=st.sampled_from(["portfolio", "other-position", "int-qty", "own-pnl"]),
)
def test_curve_point_is_the_portfolio_sum_in_its_order(rows, kind):
    portfolio = OwnPnl() if kind == "own-pnl" else Portfolio()
    for i, (qty, mark, avg, realized, fees) in enumerate(rows):
        p = portfolio.get(f"S{i}")
        p.qty, p.mark, p.avg_price, p.realized, p.fees = qty, mark, avg, realized, fees
    if rows and kind == "other-position":
        portfolio.positions["X"] = Held(rows[0][0])
    if rows and kind == "int-qty":
        portfolio.positions["S0"].qty = 2
    got, want = curve_point(7, portfolio), _reference(7, portfolio)
    assert got[0] == 7 and _key(got[1]) == _key(want[1])
    assert {s: _key(q) for s, q in got[2].items()} == {s: _key(q) for s, q in want[2].items()}
    assert list(got[2]) == list(want[2])


def test_curve_point_of_no_positions_is_an_int_zero_as_the_sum():
    assert curve_point(1, Portfolio()) == (1, 0, {}) and type(curve_point(1, Portfolio())[1]) is int
    assert isinstance(Position("A").qty, float)


# -- a fill's position update (Position.apply_fill, on its slots in the compiled report path) ----------
@settings(max_examples=300, deadline=None)
@given(
    start=st.tuples(
        st.sampled_from([0.0, 3.0, -3.0, 1.0, -1.0, 2.5, 1e-13, -0.0]),  # qty
        st.sampled_from([0.0, 100.0, 99.5]),  # avg_price
        st.sampled_from([0.0, 1.5]),  # realized
    ),
    fills=st.lists(
        st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from([1.0, 3.0, 0.5, 2.5]),
                  st.sampled_from([100.0, 101.25, 98.0])),
        min_size=1, max_size=4,
    ),
)  # fmt: skip
def test_a_fill_moves_the_position_as_the_python_does(start, fills):
    got = []
    for cls in (Engine, PythonEngine):
        engine = cls(Taker(), RiskEngine([]), clock=lambda: 1, latency=LatencyLog(None), taker_bps=2.0)
        engine.add_strategy("s", Recorder(), ["A"])
        pos = engine.portfolio.get("A")
        pos.qty, pos.avg_price, pos.realized, pos.mark = start[0], start[1], start[2], 100.0
        for i, (side, qty, px) in enumerate(fills, 1):
            engine.submit("s", "A", side, qty, px)
            engine.on_execution_report(
                ExecutionReport(i, 0, 0, "A", side, ExecType.NEW, 0.0, 0.0, qty, 0.0, RejectReason.NONE, 7, 8)
            )
            engine.on_execution_report(
                ExecutionReport(
                    i, 0, 0, "A", side, ExecType.FILL, px, qty, 0.0, qty, RejectReason.NONE, 7, 9, 2
                )
            )
        got.append(
            (
                tuple(getattr(pos, k) for k in Position.__slots__),
                [tuple(getattr(f, k) for k in Fill.__slots__) for f in engine.recent_fills],
            )
        )
    assert got[0] == got[1]


@pytest.mark.parametrize("cls", [Engine, PythonEngine])
def test_a_fill_is_charged_the_fee_the_venue_reports(cls):
    """``ExecutionReport.fee``: the venue's charge replaces the engine's rate; a report that also stands
    for a fill the engine missed (its cum_qty jumps by more than its last_qty) is charged pro rata."""
    engine = cls(Taker(), RiskEngine([]), clock=lambda: 1, latency=LatencyLog(None), maker_bps=-0.5, taker_bps=2.0)
    engine.add_strategy("s", Recorder(), ["A"])
    engine._mids["A"] = 100.0
    a = engine.submit("s", "A", Side.BUY, 3.0, 100.0).cl_ord_id
    b = engine.submit("s", "A", Side.BUY, 3.0, 100.0).cl_ord_id

    def report(cl, et, last, cum, fee):
        return ExecutionReport(cl, 50 + cl, cl, "A", Side.BUY, et, 100.0, last, 3.0 - cum, cum, RejectReason.NONE,
                               7, 9, 1, fee)  # fmt: skip

    engine.on_execution_report(report(a, ExecType.PARTIAL_FILL, 1.0, 1.0, 0.037))  # charged
    engine.on_execution_report(report(a, ExecType.FILL, 1.0, 3.0, 0.02))  # one fill missed: 2 units at 0.02
    engine.on_execution_report(report(b, ExecType.FILL, 3.0, 3.0, None))  # not said: maker rate, -0.5 bps
    fees = [f.fee for f in engine.recent_fills]
    assert fees[0] == 0.037 and fees[1] == pytest.approx(0.04) and fees[2] == pytest.approx(-0.015)
    assert engine.portfolio.positions["A"].fees == pytest.approx(0.037 + 0.04 - 0.015)


@pytest.mark.parametrize("cls", [Engine, PythonEngine])
def test_a_fee_kept_in_the_base_asset_moves_the_position_less(cls):
    """A spot fee taken in the asset bought (``fee_base``): the position gains the fill less the fee on
    a buy and loses it plus the fee on a sell; ``fee`` carries its quote value; the volume and the
    order's own filled quantity stay the fill's."""
    engine = cls(Taker(), RiskEngine([]), clock=lambda: 1, latency=LatencyLog(None), maker_bps=-0.5, taker_bps=2.0)
    engine.add_strategy("s", Recorder(), ["A"])
    engine._mids["A"] = 100.0
    buy = engine.submit("s", "A", Side.BUY, 2.0, 100.0).cl_ord_id
    sell = engine.submit("s", "A", Side.SELL, 1.0, 100.0).cl_ord_id
    other = engine.submit("s", "A", Side.BUY, 1.0, 100.0).cl_ord_id

    def fill(cl, side, qty, fee, kept, et=ExecType.FILL):
        return ExecutionReport(cl, 50 + cl, cl, "A", side, et, 100.0, qty, 0.0 if et != ExecType.NEW else qty,
                               qty if et != ExecType.NEW else 0.0, RejectReason.NONE, 7, 9, 2, fee, kept)  # fmt: skip

    for cl, side, qty in ((buy, Side.BUY, 2.0), (sell, Side.SELL, 1.0), (other, Side.BUY, 1.0)):
        engine.on_execution_report(fill(cl, side, qty, None, 0.0, ExecType.NEW))  # acknowledged: the usual path
    engine.on_execution_report(fill(other, Side.BUY, 1.0, 0.05, 0.0))  # the position exists before the others

    engine.on_execution_report(fill(buy, Side.BUY, 2.0, 0.2, 0.002))  # 2 bought, 0.002 of them kept
    pos = engine.portfolio.positions["A"]
    assert pos.qty == pytest.approx(2.998) and pos.fees == pytest.approx(0.25)
    assert pos.avg_price == 100.0 and pos.volume == pytest.approx(300.0)
    assert engine.orders.orders[buy].filled_qty == 2.0
    engine.on_execution_report(fill(sell, Side.SELL, 1.0, 0.1, 0.001))  # a sell paying in the asset sold
    assert pos.qty == pytest.approx(1.997) and pos.fees == pytest.approx(0.35) and pos.volume == pytest.approx(400.0)


@pytest.mark.parametrize("cls", [Engine, PythonEngine])
def test_a_market_order_cannot_be_post_only(cls):
    from latentspeed_core.types import OrdType, TimeInForce

    engine = cls(Taker(), RiskEngine([]), clock=lambda: 1, latency=LatencyLog(None))
    engine.add_strategy("s", Recorder(), ["A"])
    assert engine.submit("s", "A", Side.BUY, 1.0, 0.0, OrdType.MARKET, TimeInForce.POST_ONLY) is None
    assert engine.risk_rejects == 1 and "post-only" in engine.last_reject and not engine.orders.orders
    limit = engine.submit("s", "A", Side.BUY, 1.0, 100.0, OrdType.LIMIT, TimeInForce.POST_ONLY)
    assert limit is not None and limit.tif == TimeInForce.POST_ONLY  # a limit one goes to the venue
