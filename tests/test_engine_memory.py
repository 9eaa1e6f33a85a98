"""The engine's memory stays bounded over a long session (issue 18, defect 6).

Final orders are forgotten after ``retain_s`` (at most ``retain_max`` kept), cancel requests
likewise, and latency samples are capped by reservoir sampling. Clocks are injected: no sleeps.
"""

from __future__ import annotations

import random

import numpy as np

from latentspeed_core.engine.latency import Samples
from latentspeed_core.engine.orders import OrderManager, OrderState
from latentspeed_core.types import (
    ExecType,
    ExecutionReport,
    OrderStatus,
    OrdType,
    RejectReason,
    Side,
    TimeInForce,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _order(om: OrderManager) -> OrderState:
    st = OrderState(
        om.next_id(), "BTC-USD", Side.BUY, 1.0, 100.0, OrdType.LIMIT, TimeInForce.GTC, "s", False, "book", 1, 2
    )  # fmt: skip
    om.add(st)
    return st


def _rep(cid: int, et: ExecType, oid: int, cum: float = 0.0, leaves: float = 1.0) -> ExecutionReport:
    return ExecutionReport(cid, oid, 1, "BTC-USD", Side.BUY, et, 100.0, cum, leaves, cum, RejectReason.NONE)


def test_final_orders_are_forgotten_after_retain_s_and_late_reports_then_count_as_unmatched():
    clock = Clock()
    om = OrderManager(retain_s=60.0, clock=clock)
    done = _order(om)
    om.apply(_rep(done.cl_ord_id, ExecType.NEW, 11), 1)
    om.apply(_rep(done.cl_ord_id, ExecType.FILL, 11, cum=1.0, leaves=0.0), 2)
    resting = _order(om)
    om.apply(_rep(resting.cl_ord_id, ExecType.NEW, 12), 3)
    cxl = om.new_cancel_id(resting.cl_ord_id)
    clock.t = 59.0
    late = _order(om)  # another order finishing: the first one is not old enough yet
    om.apply(_rep(late.cl_ord_id, ExecType.CANCELED, 13, leaves=0.0), 4)
    assert done.cl_ord_id in om.orders
    om.apply(_rep(done.cl_ord_id, ExecType.FILL, 11, cum=1.0, leaves=0.0), 5)  # a repeat: still known
    assert om.duplicate_reports == 1 and om.unmatched_reports == 0
    clock.t = 61.0
    last = _order(om)
    om.apply(_rep(last.cl_ord_id, ExecType.CANCELED, 14, leaves=0.0), 6)
    assert done.cl_ord_id not in om.orders and 11 not in om._by_order_id and om.forgotten == 1
    assert cxl not in om._cancels  # the cancel request went with its age
    assert om.orders[resting.cl_ord_id] is resting  # open orders are never forgotten
    assert om.apply(_rep(done.cl_ord_id, ExecType.FILL, 11, cum=1.0, leaves=0.0), 7).order is None
    assert om.unmatched_reports == 1


def test_retain_max_bounds_a_flood_whatever_the_age():
    om = OrderManager(retain_s=3600.0, retain_max=100, clock=Clock())
    for i in range(1000):
        st = _order(om)
        om.apply(_rep(st.cl_ord_id, ExecType.CANCELED, i + 1, leaves=0.0), i)
        om.new_cancel_id(st.cl_ord_id)
    assert len(om.orders) == 100 and len(om._by_order_id) == 100 and len(om._cancels) <= 100
    assert sorted(om.orders) == list(range(1801, 2000, 2))  # the newest 100 (ids alternate with cancels)


def test_unknown_orders_are_forgotten_unless_a_late_report_reopens_them():
    clock = Clock()
    om = OrderManager(retain_s=10.0, clock=clock)
    a, b = _order(om), _order(om)
    lost = om.mark_unknown(5)
    assert {o.cl_ord_id for o in lost} == {a.cl_ord_id, b.cl_ord_id}
    om.apply(_rep(b.cl_ord_id, ExecType.NEW, 22), 6)  # b still rests after all
    assert b.status == OrderStatus.NEW and b.cl_ord_id in om.open
    clock.t = 11.0
    c = _order(om)
    om.apply(_rep(c.cl_ord_id, ExecType.CANCELED, 23, leaves=0.0), 7)
    assert a.cl_ord_id not in om.orders  # unknown for 11 s: forgotten
    assert om.orders[b.cl_ord_id] is b  # reopened: kept while open
    om.apply(_rep(b.cl_ord_id, ExecType.CANCELED, 22, leaves=0.0), 8)
    assert om.orders[b.cl_ord_id] is b and b.status == OrderStatus.CANCELED  # final now: kept retain_s again


def test_samples_keep_everything_up_to_the_cap_then_a_uniform_sample():
    s = Samples(cap=1000, seed=1)
    buf = s._buf.buffer_info()
    for v in range(1000):
        s.add(v)
    assert list(s.data) == list(range(1000)) and len(s) == 1000
    rng = random.Random(2)
    values = [rng.randrange(1_000_000) for _ in range(200_000)]
    for v in values:
        s.add(v)
    assert len(s.data) == 1000 and len(s) == 201_000
    assert s._buf.buffer_info() == buf  # one buffer for the whole session: never reallocated
    # a uniform sample of the session: its median is near the session's (error ~ 1/sqrt(1000))
    true_p50 = float(np.percentile(list(range(1000)) + values, 50)) / 1000.0
    got_p50 = s.percentiles_us(50)[0]
    assert abs(got_p50 - true_p50) < 60.0  # µs, out of a 0..1000 µs range
