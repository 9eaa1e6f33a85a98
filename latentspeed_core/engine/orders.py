"""Order manager: one state machine per order, fed by execution reports.

Reports may repeat or arrive out of order (a venue resending after a reconnect, a FILL
overtaking its NEW). Every transition is therefore decided by *rank* and *cum_qty*, never
by arrival: a status never moves backwards, and a fill counts only the part of ``cum_qty``
not yet seen. That makes applying any report twice a no-op.

Memory stays bounded over a long session: an order that is final (or unknown after a
disconnect) is kept ``retain_s`` seconds for late and repeated reports, then forgotten
(at most ``retain_max`` of them are kept); a report for a forgotten order counts as unmatched.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..types import ExecType, ExecutionReport, OrderStatus, OrdType, RejectReason, Side, TimeInForce

PENDING_NEW = OrderStatus.PENDING_NEW
NEW = OrderStatus.NEW
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
FILLED = OrderStatus.FILLED
CANCELED = OrderStatus.CANCELED
REJECTED = OrderStatus.REJECTED
UNKNOWN = OrderStatus.UNKNOWN

#: States that never change again.
TERMINAL = frozenset((FILLED, CANCELED, REJECTED))
#: States in which the order may still rest on the venue (UNKNOWN: it may, we cannot tell).
OPEN = frozenset((PENDING_NEW, NEW, PARTIALLY_FILLED))
#: Order of progress; a report never lowers it. UNKNOWN ranks lowest so a late report resolves it.
_RANK = {UNKNOWN: -1, PENDING_NEW: 0, NEW: 1, PARTIALLY_FILLED: 2, FILLED: 3, CANCELED: 3, REJECTED: 3}

STATUS_NAMES = {
    PENDING_NEW: "pending_new",
    NEW: "new",
    PARTIALLY_FILLED: "partially_filled",
    FILLED: "filled",
    CANCELED: "canceled",
    REJECTED: "rejected",
    UNKNOWN: "unknown",
}

_EPS = 1e-12
# Plain module constants: no enum attribute lookups per report.
_ET_NEW = ExecType.NEW
_ET_PARTIAL = ExecType.PARTIAL_FILL
_ET_FILL = ExecType.FILL
_ET_CANCELED = ExecType.CANCELED
_ET_REJECTED = ExecType.REJECTED
_CANCEL_ANSWERS = (_ET_CANCELED, _ET_REJECTED)


_NO_REJECT = RejectReason.NONE

#: Seconds a final order stays known: long enough for any late or repeated report of a venue.
RETAIN_S = 60.0
#: Final orders kept at most, whatever their age (a flood of orders must not grow memory).
RETAIN_MAX = 100_000


class OrderState:
    """Everything known about one order, including its latency stamps (ns since epoch)."""

    __slots__ = (
        "cl_ord_id",
        "symbol",
        "side",
        "qty",
        "price",
        "ord_type",
        "tif",
        "strategy",
        "status",
        "order_id",
        "filled_qty",
        "avg_px",
        "leaves_qty",
        "reject_reason",
        "taker",
        "cancel_pending",
        "trigger",
        "md_receipt_ns",
        "decision_ns",
        "sent_ns",
        "ack_ns",
        "first_fill_ns",
        "final_ns",
        "recorded",
        "is_open",
    )

    def __init__(
        self,
        cl_ord_id: int,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        ord_type: OrdType,
        tif: TimeInForce,
        strategy: str,
        taker: bool,
        trigger: str,
        md_receipt_ns: int,
        decision_ns: int,
    ) -> None:
        self.cl_ord_id = cl_ord_id
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.price = price
        self.ord_type = ord_type
        self.tif = tif
        self.strategy = strategy
        self.status = PENDING_NEW
        self.order_id = 0
        self.filled_qty = 0.0
        self.avg_px = 0.0
        self.leaves_qty = qty
        self.reject_reason = _NO_REJECT
        self.taker = taker
        self.cancel_pending = False
        self.trigger = trigger
        self.md_receipt_ns = md_receipt_ns
        self.decision_ns = decision_ns
        self.sent_ns = 0
        self.ack_ns: int | None = None
        self.first_fill_ns: int | None = None
        self.final_ns = 0
        self.recorded = False
        #: ``status in OPEN``: the order may still rest on the venue. Kept by the order manager with
        #: every status change (an attribute, not a property: strategies read it on every book, and
        #: a property is a call).
        self.is_open = True

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]

    def __repr__(self) -> str:
        return (
            f"OrderState({self.cl_ord_id}, {self.symbol}, {self.side.name}, {self.qty}@{self.price}, "
            f"{self.status_name}, filled={self.filled_qty})"
        )


class ReportOutcome:
    """What one report changed. Reused by :class:`OrderManager` (one object, no per-report allocation)."""

    __slots__ = ("order", "fill_qty", "fill_px", "status_changed", "final")

    def __init__(self) -> None:
        self.order: OrderState | None = None
        self.fill_qty = 0.0
        self.fill_px = 0.0
        self.status_changed = False
        self.final = False


class OrderManager:
    """Owns client order ids (unique per session, from 1) and the state of every order that is
    open or recently final (see the module docstring for how long final ones are kept)."""

    # (Slots: the compiled engine reads the maps of every report at their offsets, _engine.c.)
    __slots__ = (
        "_next_id",
        "orders",
        "open",
        "_cancels",
        "_by_order_id",
        "unmatched_reports",
        "duplicate_reports",
        "cancel_rejects",
        "_out",
        "_open_qty",
        "_open_n",
        "_retired",
        "_cancels_sent",
        "retain_s",
        "retain_max",
        "_clock",
        "forgotten",
    )

    def __init__(
        self,
        retain_s: float = RETAIN_S,
        retain_max: int = RETAIN_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._next_id = 1
        self.orders: dict[int, OrderState] = {}
        #: Orders that may still rest on the venue.
        self.open: dict[int, OrderState] = {}
        #: cancel request cl_ord_id -> the order it cancels (a venue may answer under either id).
        self._cancels: dict[int, int] = {}
        self._by_order_id: dict[int, int] = {}
        self.unmatched_reports = 0
        self.duplicate_reports = 0
        self.cancel_rejects = 0
        self._out = ReportOutcome()
        # Open (leaves) quantity and open-order count per side (index = Side) and symbol, kept
        # incrementally so the max_position check is a dict lookup, not a sum over open orders.
        # A sum is reset to exactly 0.0 whenever its count drops to 0, so float drift cannot build up.
        self._open_qty: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self._open_n: tuple[dict[str, int], dict[str, int]] = ({}, {})
        # Final and unknown orders in the order they became so: (clock(), cl_ord_id). Without
        # this, every order of the session stayed in ``orders`` (0.8 MB a minute at 20 orders/s).
        self._retired: deque[tuple[float, int]] = deque()
        #: (clock(), cancel request id) in the order they were sent, to forget old ``_cancels``.
        self._cancels_sent: deque[tuple[float, int]] = deque()
        self.retain_s = retain_s
        self.retain_max = retain_max
        self._clock = clock
        #: Final orders forgotten so far.
        self.forgotten = 0

    def next_id(self) -> int:
        cid = self._next_id
        self._next_id = cid + 1
        return cid

    def add(self, order: OrderState) -> None:
        cid = order.cl_ord_id
        self.orders[cid] = order
        self.open[cid] = order
        # _shift(side, symbol, leaves, +1), inlined (every order): the count is at least 1 after it
        side = order.side
        symbol = order.symbol
        counts = self._open_n[side]
        counts[symbol] = counts.get(symbol, 0) + 1
        qtys = self._open_qty[side]
        qtys[symbol] = qtys.get(symbol, 0.0) + order.leaves_qty

    def discard(self, cl_ord_id: int) -> None:
        """Forget an order that never reached the venue (the send failed)."""
        st = self.orders.pop(cl_ord_id, None)
        if st is not None and self.open.pop(cl_ord_id, None) is not None:
            self._shift(st.side, st.symbol, -st.leaves_qty, -1)

    def open_qty(self, symbol: str, side: Side) -> float:
        """Leaves quantity of the open orders on ``symbol`` and ``side`` (O(1))."""
        return self._open_qty[side].get(symbol, 0.0)

    def _shift(self, side: int, symbol: str, dq: float, dn: int) -> None:
        counts = self._open_n[side]
        n = counts.get(symbol, 0) + dn
        counts[symbol] = n
        qtys = self._open_qty[side]
        qtys[symbol] = qtys.get(symbol, 0.0) + dq if n > 0 else 0.0

    def new_cancel_id(self, orig: int) -> int:
        cid = self._next_id
        self._next_id = cid + 1
        self._cancels[cid] = orig
        now = self._clock()
        sent = self._cancels_sent
        sent.append((now, cid))
        if sent[0][0] < now - self.retain_s or len(sent) > self.retain_max:
            self._forget_cancels(now - self.retain_s)
        return cid

    def open_count(self, symbol: str | None = None) -> int:
        if symbol is None:
            return len(self.open)
        return sum(1 for o in self.open.values() if o.symbol == symbol)

    def apply(self, r: ExecutionReport, now_ns: int) -> ReportOutcome:
        """Apply one report; returns the (reused) outcome. Unknown ids are counted, not raised."""
        out = self._out
        out.fill_qty = 0.0
        out.status_changed = False
        out.final = False
        cid = r.cl_ord_id
        st = self.orders.get(cid)
        is_cancel_answer = False
        if st is None:
            orig = self._cancels.get(cid)
            if orig is None and r.order_id and r.exec_type in _CANCEL_ANSWERS:
                orig = self._by_order_id.get(r.order_id)
            st = self.orders.get(orig) if orig is not None else None
            is_cancel_answer = st is not None
        out.order = st
        if st is None:
            self.unmatched_reports += 1
            return out
        et = r.exec_type
        if r.order_id and not st.order_id and not is_cancel_answer and et != _ET_REJECTED:
            st.order_id = r.order_id
            self._by_order_id[r.order_id] = st.cl_ord_id
        if st.ack_ns is None and not is_cancel_answer:
            st.ack_ns = now_ns

        old = st.status
        old_open = old in OPEN
        old_leaves = st.leaves_qty
        if et == _ET_REJECTED:
            if is_cancel_answer or st.cancel_pending and old != PENDING_NEW or old == FILLED or old == CANCELED:
                # A cancel was refused (e.g. the order filled first: then its fill may have come in
                # before this, under the order's own id): the order itself is unchanged.
                st.cancel_pending = False
                self.cancel_rejects += 1
                return out
            if _RANK[old] >= _RANK[NEW]:
                self.duplicate_reports += 1
                return out
            st.status = REJECTED
            st.reject_reason = r.reject_reason
            st.leaves_qty = 0.0
        elif et == _ET_PARTIAL or et == _ET_FILL:
            delta = r.cum_qty - st.filled_qty
            if delta > _EPS:
                # Count only what cum_qty adds: a repeated or overtaken report adds nothing.
                px = r.last_px
                st.avg_px = (st.avg_px * st.filled_qty + px * delta) / r.cum_qty
                st.filled_qty = r.cum_qty
                # A fill reported after the order's CANCELED (which overtook it) still counts,
                # but a final order has nothing left open.
                st.leaves_qty = r.leaves_qty if old not in TERMINAL else 0.0
                out.fill_qty = delta
                out.fill_px = px
                if st.first_fill_ns is None:
                    st.first_fill_ns = now_ns
            if old not in TERMINAL:
                if et == _ET_FILL or r.leaves_qty <= _EPS and st.filled_qty >= st.qty - _EPS:
                    st.status = FILLED
                elif old != PARTIALLY_FILLED:
                    st.status = PARTIALLY_FILLED
            elif out.fill_qty == 0.0:
                self.duplicate_reports += 1
        elif et == _ET_CANCELED:
            if old in TERMINAL:
                self.duplicate_reports += 1
                return out
            st.status = CANCELED
            st.leaves_qty = 0.0
        elif et == _ET_NEW:
            if _RANK[old] >= _RANK[NEW]:
                self.duplicate_reports += 1
                return out
            st.status = NEW
        if st.status != old:
            out.status_changed = True
            if st.status in TERMINAL:
                st.final_ns = now_ns
                st.cancel_pending = False
                self.open.pop(st.cl_ord_id, None)
                out.final = True
                self._retire(st.cl_ord_id)
            elif old == UNKNOWN:
                self.open[st.cl_ord_id] = st
        new_open = st.is_open = st.status in OPEN
        if old_open or new_open:
            dq = (st.leaves_qty if new_open else 0.0) - (old_leaves if old_open else 0.0)
            if dq or old_open != new_open:
                self._shift(st.side, st.symbol, dq, new_open - old_open)
        return out

    def mark_unknown(self, now_ns: int) -> list[OrderState]:
        """The venue connection dropped: every open order's fate is now unknown.

        The protocol has no order-status request, so nothing better can be learned; a
        report that still arrives for such an order resolves it (UNKNOWN ranks lowest).
        """
        lost = list(self.open.values())
        for st in lost:
            st.status = UNKNOWN
            st.is_open = False
            st.final_ns = now_ns
            st.cancel_pending = False
        self.open.clear()
        for d in self._open_qty + self._open_n:
            d.clear()
        for st in lost:
            self._retire(st.cl_ord_id)
        return lost

    def _retire(self, cl_ord_id: int) -> None:
        """Queue a final (or unknown) order to be forgotten; forget those kept long enough.

        Per final order, not per report: one append and, usually, one comparison.
        """
        now = self._clock()
        retired = self._retired
        retired.append((now, cl_ord_id))
        horizon = now - self.retain_s
        if retired[0][0] >= horizon and len(retired) <= self.retain_max:
            # nothing to forget (the usual case): _forget_cancels' own test, inlined
            sent = self._cancels_sent
            if sent and (sent[0][0] < horizon or len(sent) > self.retain_max):
                self._forget_cancels(horizon)
            return
        self._forget_retired(horizon)

    def _forget_retired(self, horizon: float) -> None:
        """Forget the final orders kept long enough (or beyond ``retain_max``), then old cancels.
        (``_engine`` retires in C and calls this when there is something to forget.)"""
        retired = self._retired
        while retired and (retired[0][0] < horizon or len(retired) > self.retain_max):
            cid = retired.popleft()[1]
            if cid in self.open:  # an unknown order a late report reopened: retired again when final
                continue
            st = self.orders.pop(cid, None)
            if st is None:  # queued twice (unknown, then final): already forgotten
                continue
            self.forgotten += 1
            if st.order_id and self._by_order_id.get(st.order_id) == cid:
                del self._by_order_id[st.order_id]
        self._forget_cancels(horizon)

    def _forget_cancels(self, horizon: float) -> None:
        """Cancel requests are forgotten on the same schedule as orders, oldest first."""
        sent = self._cancels_sent
        while sent and (sent[0][0] < horizon or len(sent) > self.retain_max):
            self._cancels.pop(sent.popleft()[1], None)
