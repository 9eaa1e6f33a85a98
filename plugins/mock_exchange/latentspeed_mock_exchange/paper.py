"""The ``paper`` venue: the engine's orders filled against the market data the engine receives.

Live (``latentspeed run``, ``engine``) the books come from any feed, a marketstream over
ZeroMQ or a capture; in a backtest (``latentspeed backtest``) from a capture on simulated
time. Either way the same matching core as the mock exchange decides (``matching.py``),
with a queue model and latencies on top (docs/simulation.md):

- an order reaches the venue ``entry_latency_us`` after it is sent and matches the book as
  it is then; reports reach the engine ``response_latency_us`` after the venue acts;
- the venue's clock is the receipt stamp of the market data it is shown (so a live paper
  session and the backtest of its recording see the same times); live, a wall-clock timer
  also delivers what falls due between messages.

Nothing here reads the wall clock inside matching, and the only randomness (latency draws
from ``latency_file``) is seeded: the same inputs and seed give the same fills.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import time
from bisect import bisect_left, insort

from latentspeed_core.types import ExecType, ExecutionReport, Order, RejectReason, Side
from latentspeed_core.venue import Instrument, Venue, VenueListener

from . import protocol as P
from .config import PaperVenueConfig, load_latencies
from .matching import QUEUE_MODELS, Matcher, SimOrder, SimSymbol, UsedIds, book_moved_compiled, fixed_compiled

try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from ._paper import PaperCore as _CompiledCore
    from ._paper import bind_arrive as _bind_arrive
    from ._paper import bind_core as _bind_core
    from ._paper import bind_entry as _bind_entry
    from ._paper import bind_report as _bind_report
except ImportError:  # built without a C compiler: _PaperCorePy, the same results
    _CompiledCore = None

_SCALE = P.SCALE
_SIDES = (Side.BUY, Side.SELL)
_EXEC_TYPES = tuple(ExecType)
_REASONS = tuple(RejectReason)


class _PaperCorePy:
    """The paper venue's market-data entry points and its report scheduling: the rule, in Python.

    ``_paper.PaperCore`` (C) is this for the usual case, with the state these touch in its own
    fields, and calls these for every other case (they repeat what it did first, which is
    idempotent; ``send_report`` hands over before doing anything); without the extension
    :class:`PaperVenue` is built on this class instead."""

    def advance(self, now_ns: int) -> None:
        """Simulated time moves to ``now_ns`` (backtests; live, the wall-clock timer)."""
        now = self.now
        if now_ns > now:
            self.now = now = now_ns
        heap = self._heap
        if heap and heap[0][0] <= now:
            self._run_due()

    def on_book_message(self, msg: dict) -> None:
        self.advance(msg["receipt_timestamp_ns"])  # the clock moves, what is due happens first
        if self._latencies is not None:
            self._response = self._latency()[1]
        symbol = msg["symbol"]
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._add_symbol(symbol)
        if self._stale:
            self._stale.discard(symbol)
        if self._partial:
            self._partial.pop(symbol, None)
        if not sym.resting:
            # Nothing to fill: keep the floats, converted only if an order arrives before the next
            # book (the profile's largest cost was converting every level of every book).
            self._pending_book[symbol] = msg
            return
        bids, asks = msg["bids"], msg["asks"]
        fast = self._book_moved_compiled
        moved = fast(sym, bids, asks, self._queue, self._skip_front) if fast is not None else None
        if moved is None:
            moved = self.matcher.book_moved(sym, bids, asks, _SCALE)
        if moved:
            self._fills_resting(symbol, sym, bids, asks)
            return
        # Nothing fills: the floats wait as above (the queues have moved by the resting prices).
        self._pending_book[symbol] = msg

    def on_trade_message(self, msg: dict) -> None:
        self.advance(msg["receipt_timestamp_ns"])  # the clock moves, what is due happens first
        sym = self._symbols.get(msg["symbol"])
        if sym is not None and sym.resting and sym.name not in self._stale:
            if self._latencies is not None:
                self._response = self._latency()[1]
            x = msg["price"] * _SCALE
            # Matcher.on_trade changes nothing unless our best order on the side the trade hit is
            # at or through its price (a sell hits buys at px or above, a buy sells at px or below).
            # (Rounded only near it: x < k - 0.5 rounds below k, x > k + 0.5 above it.)
            if msg["side"] == "buy":
                keys = sym.sell_keys
                if keys and x >= keys[0][0] - 0.5:
                    px = round(x)
                    if keys[0][0] <= px:
                        self.matcher.on_trade(sym, px, round(msg["amount"] * _SCALE), P.SIDE_BUY)
            else:
                keys = sym.buy_keys
                if keys and x <= 0.5 - keys[0][0]:
                    px = round(x)
                    if -keys[0][0] >= px:
                        self.matcher.on_trade(sym, px, round(msg["amount"] * _SCALE), P.SIDE_SELL)


    def _run_due(self, until: int | None = None) -> None:
        """Run the actions due by ``until`` (default: now), each at its own time, in time order."""
        heap = self._heap
        pop = heapq.heappop
        limit = self.now if until is None else until
        while heap and heap[0][0] <= limit:
            due, _seq, fn, args = pop(heap)
            saved = self.now
            self.now = due  # the action happens at its own time (reports stamp it, sends leave then)
            if fn is None:  # a report reaching the engine (most actions), stamped with its arrival
                args.receipt_ns = due
                self.reports += 1
                listener = self._listener
                if listener is not None:
                    listener.on_execution_report(args)
            else:
                fn(*args)
            self.now = saved if saved > due else due

    def _arrive(self, order: Order, response_ns: int) -> None:
        sym = self._symbols.get(order.symbol)
        price = round(order.price * _SCALE)
        if sym is not None:
            self._current(sym, 0 if int(order.ord_type) == P.ORD_MARKET else price)
        self._response = response_ns
        self.matcher.new_order(
            self, order.cl_ord_id, sym.sid if sym is not None else 0, int(order.side), int(order.ord_type),
            int(order.tif), price, round(order.qty * _SCALE),
        )  # fmt: skip

    def _arrive_cancel(self, cl_ord_id: int, orig: int, symbol: str, response_ns: int) -> None:
        self.claim_id(cl_ord_id)  # one id sequence: keeps the used ids one run (bounded memory)
        sym = self._symbols.get(symbol)
        self._response = response_ns
        self.matcher.cancel(self, cl_ord_id, orig, sym.sid if sym is not None else 0)

    # -- order entry (the engine) ------------------------------------------------------------------
    def send_new_order(self, order: Order) -> None:
        if not self.connected:
            raise ConnectionError("paper venue: not attached")
        if self._latencies is None:
            # _schedule, inlined (one per order)
            self._seq += 1
            heapq.heappush(self._heap, (self.now + self._entry_ns, self._seq, self._arrive, (order, self._response_ns)))
            if self._loop is not None and self._timer is None:
                self._arm(self._loop)
        else:
            entry, response = self._latency()
            self._schedule(self.now + entry, self._arrive, order, response)
        self.orders_sent += 1

    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        if not self.connected:
            raise ConnectionError("paper venue: not attached")
        if self._latencies is None:
            entry, response = self._entry_ns, self._response_ns
        else:
            entry, response = self._latency()
        # _schedule, inlined (one per cancel)
        self._seq += 1
        heapq.heappush(self._heap, (self.now + entry, self._seq, self._arrive_cancel, (cl_ord_id, orig_cl_ord_id, symbol, response)))
        if self._loop is not None and self._timer is None:
            self._arm(self._loop)
        self.cancels_sent += 1

    # -- matching.Owner ------------------------------------------------------------------------------
    def send_report(self, cl, oid, xid, sid, side, et, px, lq, leaves, cum, reason, now, liquidity) -> None:
        by_id = self._by_id
        sym = by_id[sid] if 0 < sid < len(by_id) else None
        report = ExecutionReport(
            cl, oid, xid, sym.name if sym is not None else "", _SIDES[side & 1], _EXEC_TYPES[et], px / _SCALE,
            lq / _SCALE, leaves / _SCALE, cum / _SCALE, _REASONS[reason], now, 0, liquidity,
        )  # fmt: skip
        # Reports leave in the order the venue made them (one stream, as a venue's connection is).
        due = now + (self._response if self._latencies is not None else self._response_ns)
        if due < self._last_due:
            due = self._last_due
        self._last_due = due
        # _schedule, inlined (one report per ack, fill and cancel)
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, None, report))  # None: a report (see _run_due)
        if self._loop is not None and self._timer is None:
            self._arm(self._loop)


if _CompiledCore is not None:
    _bind_core(
        _PaperCorePy.advance, _PaperCorePy.on_book_message, _PaperCorePy.on_trade_message, _PaperCorePy.send_report,
        _PaperCorePy._run_due,
    )  # fmt: skip
    _bind_report(ExecutionReport, _SIDES, _EXEC_TYPES, _REASONS, heapq.heappush)
    _bind_entry(_PaperCorePy.send_new_order, _PaperCorePy.send_cancel)
    _PaperCore = _CompiledCore
else:
    _PaperCore = _PaperCorePy


class PaperVenue(_PaperCore, Venue):
    name = "PAPER"

    def __init__(self, config: PaperVenueConfig | None = None) -> None:
        cfg = config or PaperVenueConfig()
        super().__init__(cfg)
        model = QUEUE_MODELS[cfg.queue_model]
        queue = model(cfg.queue_power) if cfg.queue_model == "probabilistic" else model()
        #: The simulated time: the latest market-data receipt stamp (or wall time, live, between them).
        self.now = 0
        self.matcher = Matcher(lambda: self.now, queue_model=queue)
        self.instruments: dict[str, Instrument] = {}
        self._rng = random.Random(cfg.seed)
        self._latencies = load_latencies(cfg.latency_file) if cfg.latency_file else None
        self._entry_ns = round(cfg.entry_latency_us * 1000)
        self._response_ns = round(cfg.response_latency_us * 1000)
        #: Response latency of the action being handled (an arrival's, or one drawn per market event).
        self._response = 0
        #: When the last report reaches the engine: reports never overtake one another.
        self._last_due = 0
        # Pending actions: (due_ns, seq, fn, args); seq keeps equal times in the order they were made.
        self._heap: list = []
        self._seq = 0
        self._listener: VenueListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        # The engine is our one order owner (matching.Owner).
        self.id = 0
        self.orders: dict[int, SimOrder] = {}
        self._ids = UsedIds()
        #: Latest book message per symbol whose float levels are not yet converted for the core
        #: (converted when an order arrives, and then only as deep as orders reach: ``_partial``).
        self._pending_book: dict[str, dict] = {}
        #: Symbols whose core book is a converted prefix of these float levels:
        #: ``[bids, bids converted, asks, asks converted]`` (``_current``).
        self._partial: dict[str, list] = {}
        self._symbols = self.matcher.symbols
        self._by_id = self.matcher.by_id
        self._queue = queue
        self._skip_front = self.matcher._front_is_final
        #: Symbols whose feed reconnected or resynced and has not sent a fresh book yet.
        self._stale: set[str] = set()
        self.orders_sent = 0
        self.cancels_sent = 0
        self.reports = 0

    # -- connecting ----------------------------------------------------------------------------
    async def run(self, listener: VenueListener) -> None:
        """Live: connected at once; a wall-clock timer delivers what falls due between messages."""
        self._loop = asyncio.get_running_loop()
        self.attach(listener)
        try:
            await asyncio.Event().wait()
        finally:
            self._loop = None
            if self._timer is not None:
                self._timer.cancel()

    def attach(self, listener: VenueListener) -> None:
        self._listener = listener
        self.connected = True
        listener.on_venue_connected()

    # -- market data (before the engine sees it) ---------------------------------------------------
    def _fills_resting(self, symbol: str, sym: SimSymbol, bids, asks) -> None:
        """A book that fills resting orders: the core needs the whole book, now. (``_paper.PaperCore``
        does this, and the matcher's fills, in C for PaperVenue's usual case.)"""
        self._pending_book.pop(symbol, None)
        self.matcher.set_book(sym, _fixed(bids), _fixed(asks))

    def on_book_reset(self, symbols: list[str]) -> None:
        """Until their next book these symbols have none: nothing fills against a stale book."""
        if self._heap and self._heap[0][0] <= self.now:
            self._run_due()
        for symbol in symbols:
            sym = self._symbols.get(symbol)
            if sym is not None:
                self._pending_book.pop(symbol, None)
                self._partial.pop(symbol, None)
                self.matcher.set_book(sym, [], [], match=False)
                self._stale.add(symbol)

    def _add_symbol(self, symbol: str) -> SimSymbol:
        spec = self.config.instruments.get(symbol)
        tick = P.to_fixed(spec.tick_size) if spec else 1
        lot = P.to_fixed(spec.lot_size) if spec else 1
        sym = self.matcher.add_symbol(symbol, tick, lot)
        self.instruments[symbol] = Instrument(sym.sid, symbol, tick / _SCALE, lot / _SCALE)
        return sym

    def _current(self, sym: SimSymbol, price: int) -> None:
        """The core's book is the latest one before an order at ``price`` (fixed point; 0: a market
        order) is matched: its float levels converted as deep as such an order reads them.

        An order at ``price`` reads the asks up to its price (a buy sweeps them; a sell needs only
        the best one), and the bids down to it (likewise; and the size at its own price, where it
        joins the queue): with the levels best first, the levels beyond the first that is surely
        beyond ``price`` (``x > price + 0.5`` rounds above it) are never read. They are converted
        later if a later order before the next book reaches them (liquidity taken stays taken)."""
        name = sym.name
        pending = self._pending_book.pop(name, None)
        if pending is not None:
            bids, asks = pending["bids"], pending["asks"]
            part = [bids, 0, asks, 0]
            # self.matcher.set_book(sym, [], [], match=False), inlined (most arriving orders)
            sym.bids = []
            sym.asks = []
            sym.update_no += 1
        else:
            part = self._partial.get(name)
            if part is None:  # already whole (or no book yet)
                return
        bids, nb, asks, na = part
        if not price:  # a market order may sweep the whole side
            lo, hi = float("-inf"), float("inf")
        else:
            lo, hi = price - 0.5, price + 0.5
        nb = _convert(bids, nb, sym.bids, -1.0, -lo)  # bids down to the first below lo
        na = _convert(asks, na, sym.asks, 1.0, hi)  # asks up to the first above hi
        if nb == len(bids) and na == len(asks):
            self._partial.pop(name, None)
        else:
            part[1] = nb
            part[3] = na
            self._partial[name] = part

    # -- time ------------------------------------------------------------------------------------
    def drain(self) -> None:
        """Run every pending action, advancing time to each (the end of a backtest)."""
        while self._heap:
            self.advance(self._heap[0][0])

    def _schedule(self, due: int, fn, *args) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, fn, args))
        loop = self._loop
        if loop is not None and self._timer is None:
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = (self._heap[0][0] - time.time_ns()) / 1e9
        self._timer = loop.call_later(max(0.0, delay), self._wake)

    def _wake(self) -> None:
        # Live, between messages: what fell due by the wall clock happens. The clock moves only to
        # the last action's time, not to the wall: a message read before this timer ran but handled
        # after it keeps its own receipt time, as it has in the backtest of the recording.
        self._timer = None
        self._run_due(time.time_ns())
        if self._heap and self._loop is not None:
            self._arm(self._loop)

    def _latency(self) -> tuple[int, int]:
        if self._latencies is None:
            return self._entry_ns, self._response_ns
        entry, response = self._rng.choice(self._latencies)
        return round(entry * 1000), round(response * 1000)

    def queue_ahead(self, cl_ord_id: int) -> float | None:
        """The estimated visible size ahead of a resting order (dashboards), or None."""
        o = self.orders.get(cl_ord_id)
        return o.ahead / _SCALE if o is not None else None

    #: The per-book work compiled (``matching.book_moved_compiled``), or None: Matcher.book_moved.
    _book_moved_compiled = staticmethod(book_moved_compiled) if book_moved_compiled is not None else None

    # -- matching.Owner (send_report: _PaperCorePy) ---------------------------------------------------
    def claim_id(self, cl_ord_id: int) -> bool:
        ids = self._ids
        hi = ids.hi
        if cl_ord_id == hi + 1 and hi >= 0 and not ids.rest:
            ids.hi = cl_ord_id  # UsedIds.claim's usual case (the next id), inlined
            return True
        return ids.claim(cl_ord_id)


def _fixed(levels) -> list[list[int]]:
    if fixed_compiled is not None:
        out = fixed_compiled(levels)
        if out is not None:
            return out
    s = _SCALE
    return [[round(p * s), round(q * s)] for p, q in levels]


def _convert(levels: list, i: int, out: list, sign: float, beyond: float) -> int:
    """Append ``levels[i:]`` to ``out`` in fixed point, up to and including the first level whose
    ``sign * price * _SCALE`` exceeds ``beyond`` (levels best first: the rest no order reads);
    returns how many of ``levels`` are converted now."""
    s = _SCALE
    n = len(levels)
    while i < n:
        p, q = levels[i]
        x = p * s
        out.append([round(x), round(q * s)])
        i += 1
        if sign * x > beyond:
            break
    return i


if _CompiledCore is not None:
    # (PaperVenue exactly: a subclass may change the rules _arrive compiles; it gets _PaperCorePy._arrive)
    _bind_arrive(
        Order, UsedIds, Matcher, PaperVenue, insort, bisect_left, _PaperCorePy._arrive, _convert,
        _PaperCorePy._arrive_cancel,
    )  # fmt: skip
