"""The engine's hot path, in one place.

market data dict -> strategies -> risk checks -> order manager -> venue encoder, and back:
execution report -> order manager -> positions/PnL -> strategies -> latency record.

Everything here is synchronous and runs on the event loop thread; the asyncio plumbing
(venue connection, market-data sources, timers, signals) lives in :mod:`.runner`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable

from ..logs import RateLimitedLog
from ..types import (
    ExecType,
    ExecutionReport,
    Fill,
    Order,
    OrderStatus,
    OrdType,
    RejectReason,
    Side,
    TimeInForce,
)
from ..venue import BatchingVenue, InstrumentVenue, Venue
from .latency import LatencyLog, Samples
from .orders import OrderManager, OrderState, ReportOutcome
from .positions import Portfolio, Position
from .risk import (
    MaxNotional,
    MaxOpenOrders,
    MaxOrderQty,
    MaxOrdersPerSecond,
    MaxPosition,
    PriceBand,
    RiskEngine,
)
from .strategy import Strategy, StrategyContext

log = logging.getLogger("latentspeed.engine")

_BUY = Side.BUY
_LIMIT = OrdType.LIMIT
_MARKET = OrdType.MARKET
#: Triggers whose orders count in tick-to-trade: decisions on a market-data message.
_MD_TRIGGERS = frozenset(("book", "trade"))
_GTC = TimeInForce.GTC
_POST_ONLY = TimeInForce.POST_ONLY
_REJECTED = OrderStatus.REJECTED


class _EngineCorePy:
    """The engine's market-data entry points and its execution reports: the rule, in Python.

    ``_engine.EngineCore`` (C) is this for the usual case (a dict with a ``symbol``, and for a book a
    ``midpoint`` that is not None; an order's NEW or CANCELED under its own id, for a strategy that
    does not take order updates), with the state these touch in its own fields, and calls these
    before changing anything for every other case; without the extension :class:`Engine` is built
    on this class instead."""

    # -- market data (hot path) ------------------------------------------------
    def on_book(self, msg: dict, receipt_ns: int = 0, act: bool = True) -> None:
        """A marketstream book message; ``receipt_ns`` overrides its ``receipt_timestamp_ns``.

        ``act=False``: a snapshot already superseded by a later one in the same read; the book,
        mid and marks are updated but no strategy is called on it.
        """
        self.rx_packets += 1
        sym = msg["symbol"]
        self.books[sym] = msg
        mid = msg.get("midpoint")
        if mid is None:  # features configured without top_of_book: the mid is still needed (risk, PnL)
            bids, asks = msg["bids"], msg["asks"]
            mid = (bids[0][0] + asks[0][0]) / 2 if bids and asks else None
        if mid:
            self._mids[sym] = mid
            pos = self._positions.get(sym)
            if pos is not None:
                pos.mark = mid
                if pos.qty != 0.0 and self._breach:
                    self._check_breach()
        handlers = self._by_symbol.get(sym)
        if handlers and self.trading_enabled and act:
            if self._cork is not None:
                self._dispatch(handlers, "on_book", "book", msg, receipt_ns)
                return
            # _dispatch, inlined for a venue without cork (paper, backtests): one call less per book
            self._md_receipt_ns = receipt_ns or msg["receipt_timestamp_ns"]
            self._trigger = "book"
            for fn in handlers:
                try:
                    fn(msg)
                except Exception as exc:
                    self._strategy_error(fn.__self__, "on_book", exc)
            self._trigger = "timer"

    def on_trade(self, msg: dict, receipt_ns: int = 0) -> None:
        self.rx_packets += 1
        self.trades_rx += 1
        handlers = self._trades_by_symbol.get(msg["symbol"])
        if handlers and self.trading_enabled:
            self._dispatch(handlers, "on_trade", "trade", msg, receipt_ns)

    # -- VenueListener (hot path) ----------------------------------------------
    def on_execution_report(self, r: ExecutionReport) -> None:
        now = r.receipt_ns or self.clock()
        had_ack = None
        st0 = self.orders.orders.get(r.cl_ord_id)
        if st0 is not None:
            had_ack = st0.ack_ns
        out = self.orders.apply(r, now)
        st = out.order
        if st is None:
            self._rlog("unmatched", logging.WARNING, "execution report for unknown cl_ord_id %d", r.cl_ord_id)
            return
        if st0 is st and had_ack is None and st.ack_ns is not None:
            self.round_trip.add(st.ack_ns - st.sent_ns)
        sid = st.strategy
        if out.fill_qty > 0.0:
            qty = out.fill_qty
            px = out.fill_px
            # The venue's word on maker/taker when it gives one; else marketability at decision time.
            liq = r.liquidity
            taker = liq == 2 if liq else st.taker
            fee = r.fee
            kept = r.fee_base
            if fee is None:
                fee = qty * px * (self.taker_fee if taker else self.maker_fee)
            elif abs(qty - r.last_qty) > 1e-12 and r.last_qty > 0.0:
                share = qty / r.last_qty  # (a report that also stands for a missed one: its fee per unit)
                fee *= share
                kept *= share
            pos = self.portfolio.get(st.symbol)
            if pos.mark == 0.0:  # first fill on a symbol no strategy lists: mark it at the known mid
                pos.mark = self._mids.get(st.symbol, 0.0)
            if 0.0 < kept < qty:  # the venue kept part of the asset as its fee: the position moves less (buy)
                pos.apply_fill(st.side, px, qty - kept if st.side == Side.BUY else qty + kept, fee, qty)
            else:
                pos.apply_fill(st.side, px, qty, fee)
            self.fills += 1
            fill = Fill(st.cl_ord_id, st.symbol, st.side, px, qty, fee, now, 2 if taker else 1)
            self.recent_fills.append(fill)
            if sid in self._wants_fills:
                strategy = self.strategies.get(sid)
                if strategy is not None:
                    self._on_report_callback(sid, strategy.on_fill, fill, now)
        if out.status_changed:
            if st.status == _REJECTED:
                self.venue_rejects += 1
                self._rlog(
                    "venue_reject",
                    logging.WARNING,
                    "venue rejected order %d: %s",
                    st.cl_ord_id,
                    st.reject_reason.name,
                )
            if out.final:
                self.latency.order(st)
            if sid in self._wants_updates:
                strategy = self.strategies.get(sid)
                if strategy is not None:
                    self._on_report_callback(sid, strategy.on_order_update, st, now)
        if out.fill_qty > 0.0 and self._breach:
            self._check_breach()

    # -- orders (hot path) -----------------------------------------------------
    def submit(
        self,
        strategy_id: str,
        symbol: str,
        side: Side,
        qty: float,
        price: float = 0.0,
        ord_type: OrdType = _LIMIT,
        tif: TimeInForce = _GTC,
    ) -> OrderState | None:
        return self._submit_at(self.clock(), strategy_id, symbol, side, qty, price, ord_type, tif)

    def _submit_at(
        self,
        now: int,
        strategy_id: str,
        symbol: str,
        side: Side,
        qty: float,
        price: float = 0.0,
        ord_type: OrdType = _LIMIT,
        tif: TimeInForce = _GTC,
    ) -> OrderState | None:
        """``submit`` decided at ``now`` (the compiled submit's way back, with the time it read)."""
        if not self.trading_enabled:
            return self._refuse(f"trading halted: {self.halt_reason}", None)
        venue = self.venue
        if not venue.connected:
            self.blocked += 1
            self.last_reject = "venue not connected"
            return None
        # A fresh Order per submit: a venue may keep it (queue it for an asynchronous send).
        order = Order(0, symbol, side, qty, price, ord_type, tif)
        if tif == _POST_ONLY and ord_type == _MARKET:  # (a venue would send it as IOC, or refuse it)
            return self._refuse("a market order cannot be post-only", order)
        reason = self.risk.check(order, self, now)
        if reason is not None:
            return self._refuse(reason, order)
        orders = self.orders
        cid = orders._next_id
        orders._next_id = cid + 1
        order.cl_ord_id = cid
        # Maker or taker decides the fee: marketable at decision time against the last book.
        taker = ord_type == _MARKET
        if not taker:
            book = self.books.get(symbol)
            if book is not None:
                if side == _BUY:
                    opp = book["asks"]
                    taker = bool(opp) and price >= opp[0][0]
                else:
                    opp = book["bids"]
                    taker = bool(opp) and price <= opp[0][0]
        st = OrderState(
            cid, symbol, side, qty, price, ord_type, tif, strategy_id, taker, self._trigger,
            self._md_receipt_ns, now,
        )  # fmt: skip
        orders.add(st)
        try:
            venue.send_new_order(order)
        except (ConnectionError, ValueError) as exc:
            return self._send_failed(cid, order, exc)
        risk = self.risk
        if risk._accept_fns:  # only now: an order the venue refused uses no rate-window slot
            risk.sent(order, now)
        self.orders_sent += 1
        if self._corked:
            self._unsent.append(st)  # sent_ns when the callback's one write has returned
            return st
        sent = self.clock()
        st.sent_ns = sent
        if self._trigger in _MD_TRIGGERS:  # a fill or a timer has no tick to count from
            self.t2t.add(sent - st.md_receipt_ns)
        return st

    def cancel(self, cl_ord_id: int) -> bool:
        st = self.orders.open.get(cl_ord_id)
        if st is None or st.cancel_pending or not self.venue.connected:
            return False
        ccid = self.orders.new_cancel_id(cl_ord_id)
        try:
            self.venue.send_cancel(ccid, cl_ord_id, st.symbol)
        except (ConnectionError, ValueError):
            return False
        st.cancel_pending = True
        self.cancels_sent += 1
        return True


try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from .._engine import EngineCore as _CompiledCore
    from .._engine import Fanout, curve_point
    from .._engine import bind_core as _bind_core
    from .._engine import bind_fills as _bind_fills
    from .._engine import bind_orders as _bind_orders
    from .._engine import bind_positions as _bind_positions
    from .._engine import bind_reports as _bind_reports
    from .._engine import bind_samples as _bind_samples
except ImportError:  # built without a C compiler: _EngineCorePy, the same results
    _EngineCore: type = _EngineCorePy
    #: ``Fanout(first, second)``: an emitter ``(topic, msg)`` calling ``first(msg)``, then
    #: ``second(msg)``, compiled; None without the extension (callers use a function).
    Fanout = None
    _bind_orders = None

    def curve_point(t: int, portfolio: Portfolio) -> tuple[int, float, dict[str, float]]:
        """An equity curve sample: ``(t, pnl, {symbol: position qty})`` (compiled: ``_engine``)."""
        return (t, portfolio.pnl, {s: p.qty for s, p in portfolio.positions.items()})

else:
    _bind_core(_EngineCorePy.on_book, _EngineCorePy.on_trade)
    _bind_positions(Position, Portfolio)
    _bind_reports(
        ExecutionReport, OrderState, ReportOutcome, OrderManager, (ExecType.NEW, ExecType.CANCELED),
        (OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELED),
        _EngineCorePy.on_execution_report,
    )  # fmt: skip
    _EngineCore = _CompiledCore


class Engine(_EngineCore):
    """Strategies, risk, orders and positions for one venue. Implements ``VenueListener``."""

    def __init__(
        self,
        venue: Venue,
        risk: RiskEngine,
        *,
        maker_bps: float = 0.0,
        taker_bps: float = 0.0,
        latency: LatencyLog | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.venue = venue
        self.risk = risk
        self.maker_fee = maker_bps / 10_000.0
        self.taker_fee = taker_bps / 10_000.0
        self.latency = latency or LatencyLog(None)
        self.clock = clock
        self.orders = OrderManager()
        self.portfolio = Portfolio()
        self._positions = self.portfolio.positions
        # Venues that can batch writes (``cork``/``uncork``): every message a strategy callback
        # sends goes out in ONE write when the callback returns (a requote = cancels + new
        # orders = one syscall), and decisions are not delayed by the writes of earlier ones.
        if isinstance(venue, BatchingVenue):
            self._cork, self._uncork = venue.cork, venue.uncork
        else:
            self._cork = self._uncork = None
        self._corked = False
        # Capabilities are checked once here: an isinstance on a protocol costs microseconds.
        self._has_instruments = isinstance(venue, InstrumentVenue)
        #: Orders submitted inside the current corked callback, awaiting the write (sent_ns).
        self._unsent: list[OrderState] = []
        self.strategies: dict[str, Strategy] = {}
        self._wants_updates: set[str] = set()
        #: Strategies that override ``on_fill`` / ``on_timer`` (the base class's no-ops are not called).
        self._wants_fills: set[str] = set()
        self._wants_timer: set[str] = set()
        self._by_symbol: dict[str, list[Callable[[dict], None]]] = {}
        #: Per symbol, the strategies that override ``on_trade`` (the others are not called per print).
        self._trades_by_symbol: dict[str, list[Callable[[dict], None]]] = {}
        #: Latest book message per symbol (what ``ctx.features`` returns).
        self.books: dict[str, dict] = {}
        self._mids: dict[str, float] = {}
        self.trading_enabled = True
        self.halt_reason: str | None = None
        self.last_reject: str | None = None
        # Counters (the STATS line).
        self.rx_packets = 0
        self.trades_rx = 0
        self.orders_sent = 0
        self.fills = 0
        self.risk_rejects = 0
        self.venue_rejects = 0
        #: Orders not sent because the venue was down (not a risk decision).
        self.blocked = 0
        self.cancels_sent = 0
        self.strategy_errors = 0
        self.connects = 0
        self.disconnects = 0
        self.unknown_orders = 0
        #: The last fills, newest last (dashboards).
        self.recent_fills: deque[Fill] = deque(maxlen=50)
        self.t2t = Samples()
        self.round_trip = Samples()
        # What triggered the current strategy callback, and the receipt stamp of its data.
        self._trigger = "timer"
        self._md_receipt_ns = 0
        self._breach = risk.has_kill_switch
        self._rlog = RateLimitedLog(log)
        self.started_ns = clock()

    # -- set-up ----------------------------------------------------------------
    def add_strategy(self, strategy_id: str, strategy: Strategy, symbols: list[str]) -> None:
        strategy.symbols = list(symbols)
        strategy.ctx = StrategyContext(self, strategy_id)
        self.strategies[strategy_id] = strategy
        # A strategy that keeps the base class's no-op on_order_update is not called for every
        # report (acks and cancels of every order): one set lookup instead of a call.
        if _overrides(strategy, "on_order_update"):
            self._wants_updates.add(strategy_id)
        if _overrides(strategy, "on_fill"):
            self._wants_fills.add(strategy_id)
        if _overrides(strategy, "on_timer"):
            self._wants_timer.add(strategy_id)
        wants_trades = _overrides(strategy, "on_trade")
        # Bound callbacks per symbol, looked up once (not a getattr per message).
        for s in symbols:
            self._by_symbol.setdefault(s, []).append(strategy.on_book)
            if wants_trades:
                self._trades_by_symbol.setdefault(s, []).append(strategy.on_trade)
            self.portfolio.get(s)

    @property
    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    def start(self) -> None:
        for sid, s in self.strategies.items():
            self._call(sid, s.on_start)

    # -- RiskView --------------------------------------------------------------
    def mid(self, symbol: str) -> float | None:
        return self._mids.get(symbol)

    def position(self, symbol: str) -> float:
        pos = self._positions.get(symbol)
        return pos.qty if pos is not None else 0.0

    def open_qty(self, symbol: str, side: Side) -> float:
        # Kept incrementally by the order manager: O(1), not a sum over the open orders.
        # (OrderManager.open_qty, inlined: every order's max_position check)
        return self.orders._open_qty[side].get(symbol, 0.0)

    def open_order_count(self) -> int:
        return len(self.orders.open)

    def total_pnl(self) -> float:
        return self.portfolio.pnl

    def instrument(self, symbol: str) -> tuple[float | None, float | None]:
        """Tick and lot size if the venue publishes instruments (the mock venue does)."""
        inst = self.venue.instruments.get(symbol) if self._has_instruments else None
        return (inst.tick_size, inst.lot_size) if inst is not None else (None, None)

    def _dispatch(self, handlers: list, callback: str, trigger: str, msg: dict, receipt_ns: int) -> None:
        """Run one market-data callback on each strategy; their orders leave in one write (cork)."""
        self._md_receipt_ns = receipt_ns or msg["receipt_timestamp_ns"]
        self._trigger = trigger
        cork = self._cork
        if cork is not None:
            cork()
            self._corked = True
        for fn in handlers:
            try:
                fn(msg)
            except Exception as exc:
                self._strategy_error(fn.__self__, callback, exc)
        if cork is not None:
            self._flush()
        self._trigger = "timer"

    def on_timer(self, now_ns: int) -> None:
        if not self.trading_enabled:
            return
        self._trigger = "timer"
        md = self._md_receipt_ns
        self._md_receipt_ns = now_ns  # what an order decided now was triggered by: this timer
        try:
            wants = self._wants_timer
            for sid, s in self.strategies.items():
                if sid in wants:
                    self._call(sid, s.on_timer, now_ns)
        finally:
            self._md_receipt_ns = md

    def _flush(self) -> None:
        """Write what the callback sent (one write) and stamp its orders' ``sent_ns``."""
        self._corked = False
        try:
            self._uncork()
        except ConnectionError as exc:
            # Nothing of the batch reached the venue: forget its orders, as an unsent order is.
            for st in self._unsent:
                self.orders.discard(st.cl_ord_id)
                self.orders_sent -= 1
                self.blocked += 1
            self._unsent.clear()
            self.last_reject = f"venue: {exc}"
            return
        unsent = self._unsent
        if unsent:
            sent = self.clock()
            add = self.t2t.add if self._trigger in _MD_TRIGGERS else None
            for st in unsent:
                st.sent_ns = sent
                if add is not None:
                    add(sent - st.md_receipt_ns)
            unsent.clear()

    def _send_failed(self, cid: int, order: Order, exc: Exception) -> None:
        """An order that never reached the venue (down, or it cannot encode the order): forgotten."""
        self.orders.discard(cid)
        if isinstance(exc, ConnectionError):
            self.blocked += 1
            self.last_reject = f"venue: {exc}"
            return None
        return self._refuse(f"venue: {exc}", order)

    def _refuse(self, reason: str, order: Order | None) -> None:
        self.risk_rejects += 1
        self.last_reject = reason
        self.risk.rejected(reason, order)
        return None

    def cancel_all(self, symbol: str | None = None, strategy_id: str | None = None) -> int:
        n = 0
        for st in list(self.orders.open.values()):
            if (symbol is None or st.symbol == symbol) and (
                strategy_id is None or st.strategy == strategy_id
            ):
                n += self.cancel(st.cl_ord_id)
        return n

    # -- VenueListener ---------------------------------------------------------
    def _on_report_callback(self, sid: str, fn, arg, receipt_ns: int) -> None:
        """A strategy callback on an execution report: its orders are triggered by the report (trigger
        ``fill``, ``md_receipt_ns`` = the report's receipt), never counted against the last tick."""
        trigger, md = self._trigger, self._md_receipt_ns  # (a report can arrive inside a callback)
        self._trigger = "fill"
        self._md_receipt_ns = receipt_ns
        try:
            self._call(sid, fn, arg)
        finally:
            self._trigger = trigger
            self._md_receipt_ns = md

    def on_venue_connected(self) -> None:
        self.connects += 1
        log.info(
            "Connected to exchange %s (%s)", self.venue.name, "reconnect" if self.connects > 1 else "first"
        )

    def on_venue_disconnected(self, reason: str) -> None:
        self.disconnects += 1
        lost = self.orders.mark_unknown(self.clock())
        self.unknown_orders += len(lost)
        log.warning(
            "venue %s disconnected (%s): %d open order(s) now unknown: %s",
            self.venue.name,
            reason,
            len(lost),
            ",".join(str(o.cl_ord_id) for o in lost[:20]) + ("..." if len(lost) > 20 else ""),
        )
        for st in lost:
            self.latency.order(st)
            strategy = self.strategies.get(st.strategy)
            if strategy is not None:
                self._call(st.strategy, strategy.on_order_update, st)

    # -- kill switch -----------------------------------------------------------
    def _check_breach(self) -> None:
        if not self.trading_enabled:
            return
        reason = self.risk.breach(self)
        if reason is not None:
            self.halt(reason)

    def halt(self, reason: str) -> None:
        """Stop trading: refuse every new order, cancel all open ones, tell the strategies why."""
        if not self.trading_enabled:
            return
        self.trading_enabled = False
        self.halt_reason = reason
        n = self.cancel_all()
        log.error("KILL SWITCH: trading stopped: %s; cancel requested for %d open order(s)", reason, n)
        for sid, s in self.strategies.items():
            self._call(sid, s.on_stop, reason)

    # -- helpers ---------------------------------------------------------------
    def _call(self, sid: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self._strategy_error(self.strategies.get(sid), getattr(fn, "__name__", "callback"), exc)

    def _strategy_error(self, strategy, where: str, exc: Exception) -> None:
        self.strategy_errors += 1
        self._rlog(
            f"strategy:{where}",
            logging.ERROR,
            "strategy %s raised in %s: %s: %s",
            type(strategy).__name__,
            where,
            type(exc).__name__,
            exc,
        )

    @property
    def rejects(self) -> int:
        return self.risk_rejects + self.venue_rejects

    def stats(self) -> dict:
        p = self.portfolio
        return {
            "rx_packets": self.rx_packets,
            "orders": self.orders_sent,
            "fills": self.fills,
            "rejects": self.rejects,
            "positions": {s: pos.qty for s, pos in p.positions.items()},
            "realized_pnl": p.realized - p.fees,
            "unrealized_pnl": p.unrealized,
            "fees": p.fees,
            "pnl": p.pnl,
            "volume": sum(pos.volume for pos in p.positions.values()),
            "open_orders": len(self.orders.open),
            "risk_rejects": self.risk_rejects,
            "venue_rejects": self.venue_rejects,
            "rejects_by_check": dict(self.risk.rejects),
            "unknown_orders": self.unknown_orders,
            # venue reports that changed nothing: repeats, unknown ids, refused cancels
            "duplicate_reports": self.orders.duplicate_reports,
            "unmatched_reports": self.orders.unmatched_reports,
            "cancel_rejects": self.orders.cancel_rejects,
            "reconnects": max(0, self.connects - 1),
            "trading_enabled": self.trading_enabled,
            "halt_reason": self.halt_reason,
        }

    def stats_line(self) -> str:
        """The contract's STATS line (contracts.md); the data-collection helper parses it."""
        p50, p99 = self.t2t.percentiles_us(50, 99)
        pos = ",".join(f"{s}:{format(round(v.qty, 8), '.10g')}" for s, v in self.portfolio.positions.items())
        return (
            f"STATS rx_packets={self.rx_packets} orders={self.orders_sent} fills={self.fills} "
            f"rejects={self.rejects} position={pos} pnl={self.portfolio.pnl:.2f} "
            f"t2t_p50_us={_num(p50)} t2t_p99_us={_num(p99)}"
        )


def _overrides(strategy: Strategy, name: str) -> bool:
    """The strategy (class or instance) replaces the base class's no-op ``name`` callback."""
    return name in vars(strategy) or getattr(type(strategy), name) is not getattr(Strategy, name)


def _num(v: float | None) -> str:
    return "nan" if v is None else f"{v:.2f}"


if _bind_orders is not None:
    _bind_orders(
        Order, Side, TimeInForce, (_LIMIT, _GTC, RejectReason.NONE), RiskEngine,
        (MaxOrderQty, PriceBand, MaxNotional, MaxPosition, MaxOpenOrders, MaxOrdersPerSecond), Engine,
        _EngineCorePy.submit, _EngineCorePy._submit_at, _EngineCorePy.cancel,
    )  # fmt: skip
    _bind_fills(Fill, (ExecType.PARTIAL_FILL, ExecType.FILL, ExecType.REJECTED), OrderStatus.FILLED)
    _bind_samples(Samples)
