"""Queue updates on a book: the fast paths give what a plain look-up of every level gives.

``Matcher.requeue_levels`` (float levels, the paper venue's books that fill nothing) and
``Matcher._requeue`` (fixed-point levels, books applied with ``set_book``) skip work: levels
far from an order's price are not rounded, an order deeper than the visible levels costs
one comparison, and under ``risk_averse`` an order with nothing ahead is not visited. This
checks them, on random books with prices on and off the grid (halves included), against the
rule written out: ``new = size at our price``; absent inside the visible range: 0; beyond it:
unknown, unchanged (docs/simulation.md, rule 2)."""

from __future__ import annotations

import random

import pytest
from latentspeed_mock_exchange.matching import Matcher, ProbabilisticQueue, RiskAverseQueue, SimOrder

SCALE = 100_000_000


class _Owner:
    id = 1

    def __init__(self) -> None:
        self.orders: dict = {}


def _reference_fixed(model, orders, bids_fixed, asks_fixed) -> None:
    """The rule on fixed-point levels, spelled out: a {price: size} dict per side, every order."""
    bid_qty = {p: q for p, q in bids_fixed}
    ask_qty = {p: q for p, q in asks_fixed}
    worst_bid = bids_fixed[-1][0] if bids_fixed else None
    worst_ask = asks_fixed[-1][0] if asks_fixed else None
    for o in orders:
        if o.side == 0:
            new = bid_qty.get(o.price)
            if new is None:
                if worst_bid is None or o.price < worst_bid:
                    continue
                new = 0
        else:
            new = ask_qty.get(o.price)
            if new is None:
                if worst_ask is None or o.price > worst_ask:
                    continue
                new = 0
        if new != o.level_qty:
            o.ahead = model.depth(o.ahead, o.level_qty, new, o.traded)
            o.level_qty = new
            o.traded = 0


def _reference_floats(model, orders, bids, asks) -> None:
    """The rule on float levels, spelled out: every level rounded, best first, until ours or past it.

    (Where two float levels round to the same price, the first one counts here and the last one in
    the dict above: books never have that, and each path keeps the rule it had.)"""
    for o in orders:
        buy = o.side == 0
        new = None
        for p, q in bids if buy else asks:
            pi = round(p * SCALE)
            if pi == o.price:
                new = round(q * SCALE)
                break
            if (pi < o.price) if buy else (pi > o.price):
                new = 0
                break
        if new is None or new == o.level_qty:
            continue
        o.ahead = model.depth(o.ahead, o.level_qty, new, o.traded)
        o.level_qty = new
        o.traded = 0


def _book(rng: random.Random, mid: int, tick: int, depth: int, halves: bool):
    """Best-first float levels around ``mid`` (fixed point), some prices off the grid."""
    bids, asks = [], []
    p = mid - tick * rng.randint(1, 3)
    for _ in range(rng.randint(0, depth)):
        off = rng.choice((0, 0, 0, 0.5, -0.5, 0.25)) if halves else 0
        bids.append([(p + off) / SCALE, rng.randint(0, 5) * tick / SCALE])
        p -= tick * rng.randint(1, 2)
    p = mid + tick * rng.randint(1, 3)
    for _ in range(rng.randint(0, depth)):
        off = rng.choice((0, 0, 0, 0.5, -0.5, 0.25)) if halves else 0
        asks.append([(p + off) / SCALE, rng.randint(0, 5) * tick / SCALE])
        p += tick * rng.randint(1, 2)
    return bids, asks


def _orders(rng: random.Random, matcher: Matcher, sym, owner, mid: int, tick: int) -> list[SimOrder]:
    out = []
    for i in range(rng.randint(1, 6)):
        side = rng.randint(0, 1)
        price = mid + (-1 if side == 0 else 1) * tick * rng.randint(0, 14)
        o = SimOrder(i, i + 1, owner, sym, side, price, tick)
        o.level_qty = rng.randint(0, 5) * tick
        o.ahead = rng.choice((0.0, 0, float(o.level_qty), rng.random() * 5 * tick))
        o.traded = rng.choice((0, tick))
        sym.resting[o.order_id] = o
        out.append(o)
    return out


def _state(orders):
    return [(o.ahead, o.level_qty, o.traded) for o in orders]


@pytest.mark.parametrize("model_cls", [RiskAverseQueue, ProbabilisticQueue])
@pytest.mark.parametrize("halves", [False, True])
def test_queue_updates_equal_a_lookup_of_every_level(model_cls, halves):
    rng = random.Random(13)
    model = model_cls()
    for _trial in range(3000):
        tick = rng.choice((1, 7, 50_000_000))
        mid = rng.randint(1_000, 10_000) * tick
        bids, asks = _book(rng, mid, tick, 10, halves)
        bids_fixed = [[round(p * SCALE), round(q * SCALE)] for p, q in bids]
        asks_fixed = [[round(p * SCALE), round(q * SCALE)] for p, q in asks]
        seed = rng.random()
        state = {}
        for how in ("reference floats", "floats", "reference fixed", "fixed"):
            m = Matcher(lambda: 0, queue_model=model)
            sym = m.add_symbol("X", 1, 1)
            orders = _orders(random.Random(seed), m, sym, _Owner(), mid, tick)
            if how == "reference floats":
                _reference_floats(model, orders, bids, asks)
            elif how == "floats":
                m.requeue_levels(sym, bids, asks, SCALE)
            elif how == "reference fixed":
                _reference_fixed(model, orders, bids_fixed, asks_fixed)
            else:
                m._requeue(sym, bids_fixed, asks_fixed)
            state[how] = _state(orders)
            if model_cls is RiskAverseQueue:
                # Nothing ahead stays nothing ahead: the level size and traded volume of such an
                # order no longer matter to anything, and the fast paths leave them as they were.
                state[how] = [a for a, _q, _t in state[how]]
        assert state["floats"] == state["reference floats"]
        assert state["fixed"] == state["reference fixed"]
        if not halves:  # on the grid the two paths agree with each other too
            assert state["floats"] == state["fixed"]


@pytest.mark.parametrize("model_cls", [RiskAverseQueue, ProbabilisticQueue])
@pytest.mark.parametrize("halves", [False, True])
def test_successive_books_on_the_same_orders_equal_the_lookup(model_cls, halves):
    """``requeue_levels`` starts each order's search where its price was on the last book
    (``SimOrder.hint``): books that move, grow and shrink under the same orders must still give
    what the spelled-out rule gives, book after book."""
    rng = random.Random(29)
    model = model_cls()
    moved = 0
    for _trial in range(400):
        tick = rng.choice((1, 7, 50_000_000))
        mid0 = rng.randint(1_000, 10_000) * tick
        seed = rng.random()
        m = Matcher(lambda: 0, queue_model=model)
        sym = m.add_symbol("X", 1, 1)
        fast = _orders(random.Random(seed), m, sym, _Owner(), mid0, tick)
        ref_m = Matcher(lambda: 0, queue_model=model)
        ref = _orders(random.Random(seed), ref_m, ref_m.add_symbol("X", 1, 1), _Owner(), mid0, tick)
        for _book_no in range(25):
            mid = mid0 + tick * rng.randint(-12, 12)  # the orders' levels move through the book
            bids, asks = _book(rng, mid, tick, rng.choice((3, 10, 10)), halves)
            before = [o.hint for o in fast]
            m.requeue_levels(sym, bids, asks, SCALE)
            _reference_floats(model, ref, bids, asks)
            moved += sum(1 for o, h in zip(fast, before, strict=True) if o.hint != h)
            if model_cls is RiskAverseQueue:  # nothing ahead: the rest no longer matters (as above)
                assert [o.ahead for o in fast] == [o.ahead for o in ref]
            else:
                assert _state(fast) == _state(ref)
    assert moved > 300  # the hints did move: stale ones were searched from
