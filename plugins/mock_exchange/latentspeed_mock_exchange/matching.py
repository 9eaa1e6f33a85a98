"""The simulated venue's matching core: orders and market data in, execution reports out. No I/O.

One core serves every simulated path: the mock exchange's TCP server (``server.py``), paper
trading on live books and backtests on recorded ones (``paper.py``). It never reads the wall
clock: time comes from the ``clock`` it is given, so a backtest runs on recorded time as fast
as the CPU allows and the same inputs give the same reports. The rules, with worked examples,
are in docs/simulation.md.

Prices and quantities are 8-decimal fixed point (``protocol.SCALE``), as on the mock wire.

- **Book updates** (:meth:`Matcher.set_book`) replace a symbol's visible levels. Liquidity an
  order took stays taken until the next update (levels are mutable ``[price, qty]`` pairs).
- **Marketable orders** walk the visible levels up to their limit, best first, one report per
  level, at taker prices; an IOC or market remainder is cancelled, a GTC one rests.
- **Resting orders** fill at their own price (maker) when an update crosses them, taking the
  crossed liquidity in price-time priority. With a queue model (paper), a resting order also
  waits behind the visible size at its price when it arrived, and fills from trades printed
  at its price once that queue is used up (partially, by trade size), or at once from trades
  printed through its price.
- ``fill_prob`` (the mock exchange's knob) decides once per crossing whether it fills at all.
"""

from __future__ import annotations

import logging
import os
import random
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Protocol

from . import protocol as P

olog = logging.getLogger("latentspeed_mock_exchange.orders")

_SIDE = ("buy", "sell")
_ORD = ("LIMIT", "MARKET")
_TIF = ("GTC", "IOC", "POST_ONLY")

_SIDE_BUY = P.SIDE_BUY
_EXEC_NEW = P.EXEC_NEW
_EXEC_CANCELED = P.EXEC_CANCELED

#: ExecutionReport liquidity of a fill (``latentspeed_core.types.Liquidity``).
MAKER, TAKER = 1, 2


class Owner(Protocol):
    """Who sent an order: a mock-exchange connection, or the paper venue. Reports go back to it."""

    id: int
    #: Open orders by cl_ord_id.
    orders: dict[int, SimOrder]

    def claim_id(self, cl_ord_id: int) -> bool:
        """Record ``cl_ord_id`` as used; False if it was used before (a duplicate)."""

    def send_report(self, cl, oid, xid, sid, side, et, px, lq, leaves, cum, reason, now, liquidity) -> None:
        """One execution report (fixed point), in the order the core produces them."""


class QueueModel(Protocol):
    """How the visible size ahead of a resting order shrinks when its level shrinks."""

    def depth(self, ahead: float, prev_qty: float, new_qty: float, traded: float = 0.0) -> float:
        """New queue ahead of the order after its level went from ``prev_qty`` to ``new_qty``.

        ``traded``: volume printed at the order's price since the level's last change, already
        taken off ``ahead`` by the trades themselves (so a model must not count it again)."""


class RiskAverseQueue:
    """Only trades advance the order; a level that shrinks caps the queue ahead at its new size.

    hftbacktest's ``RiskAdverseQueueModel``: every cancel is assumed to be behind us."""

    #: Once nothing is ahead, nothing ever is again (the queue only shrinks): an order at the front
    #: needs no more updates, whatever its level does.
    front_is_final = True

    def depth(self, ahead: float, prev_qty: float, new_qty: float, traded: float = 0.0) -> float:
        return ahead if ahead < new_qty else new_qty


class ProbabilisticQueue:
    """A decrease of the level is shared between the queue ahead and behind the order.

    Rigtorp's estimator as hftbacktest's ``ProbQueueModel`` applies it: with ``f(x) = x**n``,
    ``p = f(back) / (f(front) + f(back))`` and the decrease ``d`` not explained by trades at our
    price since the last change, the front becomes ``front - (1 - p) * d + min(back - p * d, 0)``,
    capped at the level's new size. (Larger ``n``: a cancel is more likely behind us when more is
    behind us.)"""

    front_is_final = False

    def __init__(self, power: float = 2.0) -> None:
        self.power = power

    def depth(self, ahead: float, prev_qty: float, new_qty: float, traded: float = 0.0) -> float:
        d = prev_qty - new_qty - traded  # trades already moved us: count only the rest (cancels)
        if d <= 0:  # the level grew (or only traded): newcomers join behind us
            return ahead if ahead < new_qty else new_qty
        back = prev_qty - ahead
        if back < 0:  # hftbacktest: f(back) is not finite there, and p falls back to 1
            p = 1.0
        else:
            n = self.power
            fb = back**n
            ff = ahead**n
            p = fb / (ff + fb) if ff + fb > 0 else 1.0
        front = ahead - (1.0 - p) * d + min(back - p * d, 0.0)
        if front < 0:
            front = 0.0
        return front if front < new_qty else float(new_qty)


QUEUE_MODELS = {"risk_averse": RiskAverseQueue, "probabilistic": ProbabilisticQueue}


class UsedIds:
    """The client order ids an owner has used: a contiguous run plus a set for the rest.

    The usual increasing ids cost O(1) memory however long the session; any order is exact."""

    __slots__ = ("lo", "hi", "rest")

    def __init__(self) -> None:
        self.lo = self.hi = -1
        self.rest: set[int] = set()

    def __len__(self) -> int:
        """Ids held one by one (outside the run): the memory this costs."""
        return len(self.rest)

    def claim(self, cl: int) -> bool:
        """Record ``cl`` as used; False if it was used before."""
        hi = self.hi
        if cl == hi + 1 and hi >= 0:
            hi += 1
            rest = self.rest
            if rest:
                while hi + 1 in rest:
                    rest.remove(hi + 1)
                    hi += 1
            self.hi = hi
            return True
        if self.lo <= cl <= hi or cl in self.rest:
            return False
        if hi < 0 or (cl > hi and hi - self.lo < 64):
            # Start a new run here; a short old run moves into the set (an increasing sequence
            # that did not start where the first ids were still ends up as one run).
            if hi >= 0:
                self.rest.update(range(self.lo, hi + 1))
            self.lo = self.hi = cl
        else:
            self.rest.add(cl)
        return True


class SimSymbol:
    __slots__ = (
        "sid", "name", "tick", "lot", "bids", "asks", "resting", "buy_keys", "sell_keys", "update_no",
    )  # fmt: skip

    def __init__(self, sid: int, name: str, tick: int, lot: int) -> None:
        if tick <= 0 or lot <= 0:
            raise ValueError(f"{name}: tick_size and lot_size must be at least 1e-8")
        self.sid = sid
        self.name = name
        self.tick = tick
        self.lot = lot
        # Visible levels, best first: mutable [price, qty] pairs so fills consume liquidity.
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        #: order_id -> resting GTC order (any owner).
        self.resting: dict[int, SimOrder] = {}
        # Price-time priority indexes, best first: an update visits only the crossed orders.
        self.buy_keys: list[tuple[int, int]] = []  # (-price, order_id)
        self.sell_keys: list[tuple[int, int]] = []  # (price, order_id)
        #: Book updates seen: a crossing is new when the previous update did not cross the order.
        self.update_no = 0


class SimOrder:
    __slots__ = (
        "cl_ord_id", "order_id", "owner", "sym", "side", "price", "qty", "leaves", "cum", "decision",
        "crossed_update", "ahead", "level_qty", "traded", "hint",
    )  # fmt: skip

    def __init__(self, cl_ord_id: int, order_id: int, owner: Owner, sym: SimSymbol, side: int, price: int,
                 qty: int) -> None:  # fmt: skip
        self.cl_ord_id = cl_ord_id
        self.order_id = order_id
        self.owner = owner
        self.sym = sym
        self.side = side
        self.price = price
        self.qty = qty
        self.leaves = qty
        self.cum = 0
        #: The fill draw of the current crossing, and the last update whose book crossed the order.
        self.decision = False
        self.crossed_update = -2
        #: Queue models: visible size ahead of the order, and its level's size at the last update.
        self.ahead = 0.0
        self.level_qty = 0
        #: Volume printed at the order's price since its level last changed (queue models).
        self.traded = 0
        #: Where :meth:`Matcher.requeue_levels` last found the order's price in the levels.
        self.hint = 0

    def key(self) -> tuple[int, int]:
        return (-self.price, self.order_id) if self.side == P.SIDE_BUY else (self.price, self.order_id)


class Matcher:
    """Every symbol's book and resting orders, and the rules that fill them.

    ``on_print(sym, px, qty, aggressor, now)`` is told of every fill as a public trade (the mock
    exchange prints them to all clients). ``fill_prob`` in percent; ``rng`` draws it.
    ``queue_model`` None: resting orders fill only when an update crosses them (the mock).
    """

    # Slots: the paper venue's compiled core reads and writes several per order at their offsets.
    __slots__ = (
        "clock", "_fill_threshold", "_rng", "queue_model", "_front_is_final", "max_open_orders", "on_print",
        "symbols", "by_id", "_next_order_id", "_next_exec_id", "stats", "log_orders", "__dict__",
    )  # fmt: skip

    def __init__(
        self,
        clock: Callable[[], int],
        *,
        fill_prob: float = 100.0,
        rng: random.Random | None = None,
        queue_model: QueueModel | None = None,
        max_open_orders: int = 100_000,
        on_print: Callable[[SimSymbol, int, int, int, int], None] | None = None,
        stats: dict[str, int] | None = None,
    ) -> None:
        self.clock = clock
        self._fill_threshold = fill_prob / 100.0
        self._rng = rng or random.Random(0)
        self.queue_model = queue_model
        self._front_is_final = getattr(queue_model, "front_is_final", False)
        self.max_open_orders = max_open_orders
        self.on_print = on_print
        self.symbols: dict[str, SimSymbol] = {}
        self.by_id: list[SimSymbol | None] = [None]  # symbol_id -> symbol; ids start at 1
        self._next_order_id = 1
        self._next_exec_id = 1
        #: Counters; an owner of the core may pass its own dict so its stats line has them.
        self.stats = stats if stats is not None else {}
        # rejects: orders refused; cancel_rejects: cancels refused (the order had filled or was never
        # there), the engine's count of the same name
        for k in ("orders", "fills", "rejects", "cancels", "cancel_rejects"):
            self.stats.setdefault(k, 0)
        #: Log every order and fill (logger ``latentspeed_mock_exchange.orders`` at INFO).
        self.log_orders = False

    # -- symbols and books -------------------------------------------------------------------
    def add_symbol(self, name: str, tick: int, lot: int) -> SimSymbol:
        sym = SimSymbol(len(self.by_id), name, tick, lot)
        self.symbols[name] = sym
        self.by_id.append(sym)
        return sym

    def set_book(self, sym: SimSymbol, bids: list[list[int]], asks: list[list[int]], match: bool = True) -> bool:
        """A new book update: these levels (best first, mutable pairs the core keeps) are visible now.

        Liquidity taken since the last update is back. With ``match``, resting orders the book
        crosses fill and queue positions move; returns whether anything filled."""
        sym.bids = bids
        sym.asks = asks
        sym.update_no += 1
        if not match or not sym.resting:
            return False
        fills = self.stats["fills"]
        if self.queue_model is not None:
            self._requeue(sym, bids, asks)
        self._match_resting(sym)
        return self.stats["fills"] != fills

    def _requeue(self, sym: SimSymbol, bids, asks) -> None:
        """Move every resting order's queue position by what happened to its level.

        A look-up of each resting order's own price (two or three orders, ten levels): no
        ``{price: size}`` dict per side per update (the backtest profile)."""
        model = self.queue_model
        skip_front = self._front_is_final
        for o in sym.resting.values():
            if skip_front and not o.ahead:
                continue
            price = o.price
            levels = bids if o.side == P.SIDE_BUY else asks
            new = None
            for p, q in levels:
                if p == price:
                    new = q  # no break: a repeated price counts as its last entry, as a dict did
            if new is None:
                # Gone from a range we can see: size 0. Beyond the visible depth: unknown, unchanged.
                if not levels:
                    continue
                worst = levels[-1][0]
                if (price < worst) if o.side == P.SIDE_BUY else (price > worst):
                    continue
                new = 0
            if new != o.level_qty:
                o.ahead = model.depth(o.ahead, o.level_qty, new, o.traded)
                o.level_qty = new
                o.traded = 0

    def crosses(self, sym: SimSymbol, bids, asks, scale: int) -> bool:
        """Would these (float, best first) levels fill a resting order: the best ask at or under our
        best buy, or the best bid at or over our best sell?"""
        if asks and sym.buy_keys and round(asks[0][0] * scale) <= -sym.buy_keys[0][0]:
            return True
        return bool(bids and sym.sell_keys and round(bids[0][0] * scale) >= sym.sell_keys[0][0])

    def book_moved(self, sym: SimSymbol, bids, asks, scale: int) -> bool:
        """A new book as float levels, best first: True if it fills a resting order (nothing has
        changed: the caller sets the whole book), else False, and queue positions have moved.

        ``book_moved_compiled`` is this for the usual case, compiled (``_paper.c``)."""
        if self.crosses(sym, bids, asks, scale):
            return True
        self.requeue_levels(sym, bids, asks, scale)
        return False

    def requeue_levels(self, sym: SimSymbol, bids, asks, scale: int) -> None:
        """:meth:`set_book`'s queue update from float levels, looking up only the resting prices.

        A price inside the visible range but absent has size 0; beyond the visible depth the size
        is unknown and the queue stays as it was. Runs on nearly every book of a backtest, so a
        level is rounded to fixed point only when it may be at our price: ``x > price + 0.5``
        rounds above ``price`` (and ``x < price - 0.5`` below), whatever ``round`` does at .5."""
        model = self.queue_model
        if model is None:
            return
        skip_front = self._front_is_final
        for o in sym.resting.values():
            if skip_front and not o.ahead:
                continue
            target = o.price
            new = None
            if o.side == _SIDE_BUY:  # bids, best (highest) first
                if not bids:
                    continue
                above = target + 0.5
                if bids[-1][0] * scale > above:
                    continue  # every visible level is better than our price: unknown, unchanged
                # The first level at or below our price (the levels are best first, so the test is
                # false up to it and true from it on): searched from where it was on the last book
                # (the order's level rarely moves far), back while the level before also passes.
                n = len(bids)
                i = o.hint
                if i > n:
                    i = n
                while i:
                    x = bids[i - 1][0] * scale
                    if x > above or round(x) > target:
                        break
                    i -= 1
                while i < n:
                    p, q = bids[i]
                    x = p * scale
                    if x <= above:
                        pi = round(x)
                        if pi <= target:
                            new = round(q * scale) if pi == target else 0  # passed our price: gone
                            break
                    i += 1
                o.hint = i
            else:  # asks, best (lowest) first
                if not asks:
                    continue
                below = target - 0.5
                if asks[-1][0] * scale < below:
                    continue
                n = len(asks)
                i = o.hint
                if i > n:
                    i = n
                while i:
                    x = asks[i - 1][0] * scale
                    if x < below or round(x) < target:
                        break
                    i -= 1
                while i < n:
                    p, q = asks[i]
                    x = p * scale
                    if x >= below:
                        pi = round(x)
                        if pi >= target:
                            new = round(q * scale) if pi == target else 0
                            break
                    i += 1
                o.hint = i
            if new is None or new == o.level_qty:
                continue
            if type(model) is RiskAverseQueue:  # its depth(), inlined
                ahead = o.ahead
                o.ahead = ahead if ahead < new else new
            else:
                o.ahead = model.depth(o.ahead, o.level_qty, new, o.traded)
            o.level_qty = new
            o.traded = 0

    def on_trade(self, sym: SimSymbol, px: int, qty: int, aggressor: int) -> bool:
        """A public trade (queue models only): resting orders at or through its price may fill.

        ``aggressor`` is the taker's side: a sell hits bids, so buys at ``px`` or above are
        candidates, best first; each takes from what is left of the trade's size."""
        if self.queue_model is None or not sym.resting:
            return False
        keys = sym.buy_keys if aggressor == P.SIDE_SELL else sym.sell_keys
        if not keys:
            return False
        used = 0  # of the trade's size, what our orders (better priced, or earlier at px) took
        touched = []
        sell = aggressor == P.SIDE_SELL
        for _k, oid in keys:
            o = sym.resting[oid]
            if (o.price < px) if sell else (o.price > px):
                break
            if o.price == px:
                # At the trade's price: the visible queue ahead of us trades first.
                ahead = o.ahead
                o.ahead = ahead - qty if ahead > qty else 0.0
                o.traded += qty
                avail = qty - int(ahead + 0.999999) - used
            else:  # the trade printed through our price: we would have been hit first
                avail = qty - used
            if avail <= 0:
                continue
            take = o.leaves if o.leaves < avail else avail
            take -= take % sym.lot
            if take <= 0:
                continue
            used += take
            touched.append((o, take))
        if not touched:
            return False
        now = self.clock()
        for o, take in touched:
            self._fill(o, o.price, take, now, 1 - o.side, MAKER)
            if not o.leaves:
                self._unrest(o)
                o.owner.orders.pop(o.cl_ord_id, None)
        return bool(touched)

    # -- orders ----------------------------------------------------------------------------------
    def new_order(self, owner: Owner, cl_ord_id, symbol_id, side, ord_type, tif, price, qty) -> SimOrder | None:
        """Validate, acknowledge, match what is marketable, rest or cancel the rest."""
        now = self.clock()
        self.stats["orders"] += 1
        by_id = self.by_id
        sym = by_id[symbol_id] if 0 < symbol_id < len(by_id) else None
        if self.log_orders:
            olog.info(
                "order conn=%d cl_ord_id=%d %s %s %s %s qty=%s px=%s", owner.id, cl_ord_id,
                sym.name if sym else f"symbol_id={symbol_id}", _SIDE[side] if side < 2 else side,
                _ORD[ord_type] if ord_type < 2 else ord_type, _TIF[tif] if tif < 3 else tif,
                P.from_fixed(qty), P.from_fixed(price),
            )  # fmt: skip
        # Validation order: duplicate id first (the id is the order's identity), then fields.
        if not owner.claim_id(cl_ord_id):
            return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_DUPLICATE_CL_ORD_ID, now)
        if sym is None:
            return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_UNKNOWN_SYMBOL, now)
        if qty <= 0 or qty % sym.lot:
            return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_INVALID_QUANTITY, now)
        is_market = ord_type == P.ORD_MARKET
        if side > 1 or ord_type > 1 or tif > 2 or (is_market and tif == P.TIF_POST_ONLY):
            # no dedicated reason (a market order cannot be post-only either): the catch-all (documented)
            return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_RISK_OR_THROTTLE, now)
        if not is_market and (price <= 0 or price % sym.tick):
            return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_INVALID_PRICE, now)
        if len(owner.orders) >= self.max_open_orders and not is_market and tif != P.TIF_IOC:
            return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_RISK_OR_THROTTLE, now)
        if tif == P.TIF_POST_ONLY:
            # Post-only: refused when it would take at its arrival (its price at or through the
            # other side's best visible level), as Binance's LIMIT_MAKER is: invalid price.
            for p, q in sym.asks if side == _SIDE_BUY else sym.bids:
                if q > 0:
                    if p <= price if side == _SIDE_BUY else p >= price:
                        return self._reject(owner, cl_ord_id, symbol_id, side, P.REJECT_INVALID_PRICE, now)
                    break

        order_id = self._next_order_id
        self._next_order_id += 1
        o = SimOrder(cl_ord_id, order_id, owner, sym, side, price, qty)
        # self._report(o, P.EXEC_NEW, 0, 0, now, 0), inlined (every order)
        exec_id = self._next_exec_id
        self._next_exec_id = exec_id + 1
        owner.send_report(cl_ord_id, order_id, exec_id, sym.sid, side, _EXEC_NEW, 0, 0, qty, 0, 0, now, 0)

        buy = side == _SIDE_BUY
        levels = sym.asks if buy else sym.bids
        # self._marketable(levels, side, is_market, price), inlined (every order)
        marketable = False
        for p, q in levels:
            if q > 0:
                marketable = is_market or (p <= price if buy else p >= price)
                break
        if marketable:
            thr = self._fill_threshold
            filled = o.decision = thr >= 1.0 or self._rng.random() < thr
            o.crossed_update = sym.update_no
            if filled:
                self._sweep(o, levels, None if is_market else price, now)
        if o.leaves:
            if is_market or tif == P.TIF_IOC:
                self._cancel(o, now, "unfilled IOC/MARKET remainder")
            else:
                if self.queue_model is not None:
                    # Join the back of the visible queue at our price (nothing ahead if the level is new).
                    lq = 0
                    for p, q in sym.bids if buy else sym.asks:
                        if p == price:
                            lq = q
                            break
                    o.level_qty = lq
                    o.ahead = float(lq)
                owner.orders[cl_ord_id] = o
                sym.resting[order_id] = o
                if buy:  # o.key(), inlined
                    insort(sym.buy_keys, (-price, order_id))
                else:
                    insort(sym.sell_keys, (price, order_id))
        return o

    @staticmethod
    def _marketable(levels, side, is_market, price) -> bool:
        for p, q in levels:
            if q > 0:
                return is_market or (p <= price if side == P.SIDE_BUY else p >= price)
        return False

    def _sweep(self, o: SimOrder, levels, limit, now) -> None:
        """Take liquidity level by level (best first) up to ``limit``: one report per level."""
        buy = o.side == P.SIDE_BUY
        for lvl in levels:
            p, q = lvl
            if q <= 0:
                continue
            if limit is not None and (p > limit if buy else p < limit):
                break
            take = q if q < o.leaves else o.leaves
            lvl[1] = q - take
            self._fill(o, p, take, now, o.side, TAKER)
            if not o.leaves:
                break

    def _fill(self, o: SimOrder, px: int, qty: int, now: int, aggressor: int, liquidity: int) -> None:
        o.leaves -= qty
        o.cum += qty
        self.stats["fills"] += 1
        self._report(o, P.EXEC_FILL if not o.leaves else P.EXEC_PARTIAL_FILL, px, qty, now, liquidity)
        if self.log_orders:
            olog.info(
                "fill conn=%d cl_ord_id=%d order_id=%d %s %s %s@%s cum=%s leaves=%s", o.owner.id, o.cl_ord_id,
                o.order_id, o.sym.name, _SIDE[o.side], P.from_fixed(qty), P.from_fixed(px),
                P.from_fixed(o.cum), P.from_fixed(o.leaves),
            )  # fmt: skip
        if self.on_print is not None:
            self.on_print(o.sym, px, qty, aggressor, now)

    def _match_resting(self, sym: SimSymbol) -> None:
        """Resting orders the book crosses, in price-time priority: one fill draw per crossing."""
        now = self.clock()
        best_ask = next((p for p, q in sym.asks if q > 0), None)
        if best_ask is not None and sym.buy_keys:
            crossed = []
            for neg_price, oid in sym.buy_keys:
                if -neg_price < best_ask:
                    break
                crossed.append(sym.resting[oid])
            for o in crossed:
                self._fill_resting(o, sym.asks, now)
        best_bid = next((p for p, q in sym.bids if q > 0), None)
        if best_bid is not None and sym.sell_keys:
            crossed = []
            for price, oid in sym.sell_keys:
                if price > best_bid:
                    break
                crossed.append(sym.resting[oid])
            for o in crossed:
                self._fill_resting(o, sym.bids, now)

    def _fill_resting(self, o: SimOrder, levels, now: int) -> None:
        update_no = o.sym.update_no
        if o.crossed_update != update_no - 1:  # a new crossing: draw again
            thr = self._fill_threshold
            o.decision = thr >= 1.0 or self._rng.random() < thr
        o.crossed_update = update_no
        if not o.decision:
            return
        buy = o.side == P.SIDE_BUY
        limit = o.price
        rem = o.leaves
        take = 0
        for lvl in levels:  # consume the crossed liquidity (earlier orders this update took theirs)
            p, q = lvl
            if (p > limit if buy else p < limit) or not rem:
                break
            used = q if q < rem else rem
            lvl[1] = q - used
            rem -= used
            take += used
        if not take:
            return
        # The resting order is the maker: it trades at its own price; the taker is the other side.
        self._fill(o, limit, take, now, 1 - o.side, MAKER)
        if not o.leaves:
            self._unrest(o)
            o.owner.orders.pop(o.cl_ord_id, None)

    @staticmethod
    def _unrest(o: SimOrder) -> None:
        sym = o.sym
        oid = o.order_id
        del sym.resting[oid]
        if o.side == _SIDE_BUY:  # o.key(), inlined
            keys = sym.buy_keys
            key = (-o.price, oid)
        else:
            keys = sym.sell_keys
            key = (o.price, oid)
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]

    def cancel(self, owner: Owner, cl_ord_id, orig_cl_ord_id, symbol_id) -> None:
        now = self.clock()
        o = owner.orders.get(orig_cl_ord_id)
        if self.log_orders:
            olog.info("cancel conn=%d cl_ord_id=%d orig=%d symbol_id=%d", owner.id, cl_ord_id, orig_cl_ord_id,
                      symbol_id)  # fmt: skip
        if o is None or o.sym.sid != symbol_id:
            # Reported under the order's id (orig_cl_ord_id) with order_id 0: "no open order of yours".
            return self._reject(owner, orig_cl_ord_id, symbol_id, 0, P.REJECT_UNKNOWN_ORDER, now, "cancel_rejects")
        del owner.orders[orig_cl_ord_id]
        self._unrest(o)
        # self._cancel(o, now, f"cancel request {cl_ord_id}"), inlined (every cancel; the text only
        # when logged)
        self.stats["cancels"] += 1
        o.leaves = 0
        exec_id = self._next_exec_id
        self._next_exec_id = exec_id + 1
        o.owner.send_report(o.cl_ord_id, o.order_id, exec_id, o.sym.sid, o.side, _EXEC_CANCELED, 0, 0, 0, o.cum, 0,
                            now, 0)  # fmt: skip
        if self.log_orders:
            olog.info("canceled conn=%d cl_ord_id=%d order_id=%d cum=%s (%s)", o.owner.id, o.cl_ord_id,
                      o.order_id, P.from_fixed(o.cum), f"cancel request {cl_ord_id}")  # fmt: skip

    def _cancel(self, o: SimOrder, now: int, why: str) -> None:
        self.stats["cancels"] += 1
        o.leaves = 0
        self._report(o, P.EXEC_CANCELED, 0, 0, now, 0)
        if self.log_orders:
            olog.info("canceled conn=%d cl_ord_id=%d order_id=%d cum=%s (%s)", o.owner.id, o.cl_ord_id,
                      o.order_id, P.from_fixed(o.cum), why)  # fmt: skip

    def _report(self, o: SimOrder, exec_type: int, last_px: int, last_qty: int, now: int, liquidity: int) -> None:
        exec_id = self._next_exec_id
        self._next_exec_id += 1
        o.owner.send_report(o.cl_ord_id, o.order_id, exec_id, o.sym.sid, o.side, exec_type, last_px, last_qty,
                            o.leaves, o.cum, 0, now, liquidity)  # fmt: skip

    def _reject(self, owner: Owner, cl_ord_id, symbol_id, side, reason: int, now: int, count: str = "rejects") -> None:
        self.stats[count] += 1
        exec_id = self._next_exec_id
        self._next_exec_id += 1
        owner.send_report(cl_ord_id, 0, exec_id, symbol_id, side & 0xFF, P.EXEC_REJECTED, 0, 0, 0, 0, reason, now, 0)
        if self.log_orders:
            olog.info("rejected conn=%d cl_ord_id=%d: %s", owner.id, cl_ord_id, P.REJECT_REASON_NAMES[reason])

    def drop_orders(self, owner: Owner) -> int:
        """An owner that vanished loses its resting orders (no reports: nobody to send them to)."""
        n = 0
        touched = set()
        for o in owner.orders.values():
            if o.sym.resting.pop(o.order_id, None) is not None:
                n += 1
                touched.add(o.sym)
        for sym in touched:  # one O(n) rebuild per symbol, not one list delete per order
            sym.buy_keys = [k for k in sym.buy_keys if k[1] in sym.resting]
            sym.sell_keys = [k for k in sym.sell_keys if k[1] in sym.resting]
        owner.orders.clear()
        self.stats["cancels"] += n
        return n


#: ``book_moved_compiled(sym, bids, asks, queue_model, skip_front)``: :meth:`Matcher.book_moved`
#: compiled, for the usual case (the queue model and ``front_is_final`` passed in); None when it is
#: not the usual case, having changed nothing, or when the extension is not built.
try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from . import _paper
except ImportError:  # built without a C compiler: the same results in Python
    book_moved_compiled = None
    fixed_compiled = None
else:
    _paper.bind(SimSymbol, SimOrder, RiskAverseQueue, P.SCALE)
    book_moved_compiled = _paper.book_moved
    #: ``fixed_compiled(levels)``: float levels to fixed-point ``[price, qty]`` lists (None: not handled).
    fixed_compiled = _paper.fixed
