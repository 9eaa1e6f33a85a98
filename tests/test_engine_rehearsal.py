"""The idle rehearsal (engine/rehearsal.py) and the idle loops (engine/idle.py).

The rehearsal must keep the hot path warm without changing anything real: these tests build a
real engine on the mock venue (its connection replaced by a recording link, as in
benchmarks/engine_hot_path.py), run real ticks, then many rehearsals, and compare everything the
engine, the venue and the strategies hold. The last test runs an engine against a real mock
exchange on loopback in each idle mode and checks that it trades and rehearses.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import time
import types

import pytest

from latentspeed_core import hookimpl
from latentspeed_core.components import Component
from latentspeed_core.config import StrictModel
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.idle import IDLE_GC_AFTER, IdleWork
from latentspeed_core.engine.rehearsal import Rehearsal
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for
from latentspeed_core.types import Order, OrdType, Side, TimeInForce
from latentspeed_core.venue import Instrument

P = pytest.importorskip("latentspeed_mock_exchange.protocol")
server = pytest.importorskip("latentspeed_mock_exchange.server")
from latentspeed_mock_exchange.config import MockExchangeConfig  # noqa: E402


class QtyParams(StrictModel):
    qty: float = 0.001


class EveryTick(Strategy):
    """One IOC buy at the ask per book: every tick goes all the way to the venue."""

    def on_book(self, msg: dict) -> None:
        if self.ctx.ready:
            self.ctx.submit(msg["symbol"], Side.BUY, self.params.qty, msg["asks"][0][0], OrdType.LIMIT, TimeInForce.IOC)


class Loner(EveryTick):
    """Acts outside the engine: must never get a shadow instance."""

    rehearse = False
    built = 0

    def __init__(self, params=None) -> None:
        super().__init__(params)
        type(self).built += 1


class TestPlugin:
    __name__ = "rehearsal_test"

    @staticmethod
    @hookimpl
    def register_strategies(register):
        register(Component("every_tick", QtyParams, EveryTick))
        register(Component("loner", QtyParams, Loner))


REG = load_registry(["mock", "examples"], extra=[TestPlugin()])
RISK = {"max_loss": 1e9, "max_orders_per_second": 5, "max_open_orders": 1000, "max_order_qty": 1,
        "price_band_bps": 500, "max_notional": 1e9, "max_position": 1e9}  # fmt: skip


class Link:
    """The mock venue's connection, recording what is written."""

    seq_out = 0

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def build(strategies: list[dict], tmp_path, market_data: dict | None = None):
    data = {
        "market_data": market_data or {"from_venue": True},
        "venue": {"exchange": "mock", "port": 1},
        "strategies": strategies,
        "risk": RISK,
        "latency": {"file": str(tmp_path / "latency.jsonl")},
        "output_dir": str(tmp_path),
    }
    runner = EngineRunner(resolve(data, REG, "<test>"), REG)
    engine, venue = runner.engine, runner.venue
    link = venue._link = Link()
    venue._listener = engine
    venue._on_md = getattr(engine, "on_market_data", None)
    venue._on_trade = getattr(engine, "on_venue_trade", None)
    venue._ids, venue._names = {"BTC-USD": 1}, {1: "BTC-USD"}
    venue.instruments["BTC-USD"] = Instrument(1, "BTC-USD", 0.5, 0.001)
    venue.connected = True
    engine.start()
    engine.on_venue_connected()
    return runner, engine, venue, link


def frame(seq: int, mid: float) -> bytes:
    bids = [(P.to_fixed(mid - 0.5 - k * 0.5), P.to_fixed(1.0 + k)) for k in range(10)]
    asks = [(P.to_fixed(mid + 0.5 + k * 0.5), P.to_fixed(1.5 + k)) for k in range(10)]
    return P.encode_market_data(seq, time.time_ns(), 1, bids, asks)


def real_state(runner, venue, link) -> dict:
    """Everything a rehearsal could wrongly touch, copied."""
    e = runner.engine
    return copy.deepcopy({
        "stats": e.stats(),
        "orders": {cid: (o.status, o.qty, o.leaves_qty) for cid, o in e.orders.orders.items()},
        "open": sorted(e.orders.open),
        "next_id": e.orders._next_id,
        "positions": {s: (p.qty, p.mark) for s, p in e.portfolio.positions.items()},
        "books": {s: (m["seq"], m["bids"][0], m["asks"][0]) for s, m in e.books.items()},
        "t2t": len(e.t2t),
        "written": list(link.written),
        "seq_out": link.seq_out,
        "venue": (venue.orders_sent, venue.cancels_sent, venue.reports),
        "feed": runner.source.stats(),
        "mm_quotes": {s: (q.bid and q.bid.cl_ord_id, q.ask and q.ask.cl_ord_id, q.mid)
                      for s, q in getattr(e.strategies.get("mm"), "_quotes", {}).items()},
    })  # fmt: skip


def test_rehearsal_changes_nothing_real_and_runs_the_whole_path(tmp_path):
    strategies = [
        {"name": "every_tick", "id": "taker", "symbols": ["BTC-USD"]},
        {"name": "market_maker", "id": "mm", "symbols": ["BTC-USD"],
         "params": {"qty": 0.01, "half_spread_bps": 1.0, "requote_bps": 3, "max_position": 0.1}},
    ]  # fmt: skip
    runner, engine, venue, link = build(strategies, tmp_path)
    for i in range(5):
        venue._on_frames([(P.MARKET_DATA, frame(i + 1, 60_000 + i), 0)], time.time_ns())
    assert engine.orders_sent >= 5 and link.written, "the real ticks must trade"
    before = real_state(runner, venue, link)
    rehearsal = Rehearsal(REG, runner.setup, engine, runner.source)
    twin = rehearsal.shadow.venue
    # The shadow's venue is the mock venue's twin: the same class, connected to nothing.
    assert type(twin) is type(venue) and twin is not venue and twin._link is not link
    twin._link = Link()  # keeps every write, where the twin's own keeps the last one
    kept = twin._link.written
    for _ in range(200):
        rehearsal.run_round()
    assert real_state(runner, venue, link) == before
    shadow = rehearsal.shadow
    # The shadow decided on the real book every time: the taker each rehearsal, the market maker
    # again and again (its quotes are acknowledged and cancelled each time); no rate limit hit
    # (the real one allows 5 a second; the shadow clock moves on).
    assert rehearsal.rehearsals == 200
    assert shadow.orders_sent >= 400, shadow.stats()
    assert shadow.risk_rejects == 0, shadow.last_reject
    assert not shadow.orders.open and not shadow.orders.orders
    # And the twin encoded every order as the venue sends them (one write per corked callback).
    orders = [m for data in kept for t, m, _ in P.FrameDecoder().feed(data) if t == P.NEW_ORDER]
    assert len(orders) == shadow.orders_sent
    _l, t, seq, _ts, _cid, sid, side, _ot, _tif, px, qty = P.NEW_ORDER_MSG.unpack_from(orders[0])
    assert (t, seq, sid) == (P.NEW_ORDER, 1, 1) and px > 0 and qty > 0


def test_the_mock_venues_rehearse_new_order_is_what_send_new_order_writes_and_nothing_is_sent(tmp_path):
    runner, engine, venue, link = build([{"name": "every_tick", "symbols": ["BTC-USD"]}], tmp_path)
    venue._on_frames([(P.MARKET_DATA, frame(1, 60_000), 0)], time.time_ns())
    (st,) = engine.orders.orders.values()
    written, seq_out, sent = list(link.written), link.seq_out, venue.orders_sent
    order = Order(st.cl_ord_id, st.symbol, st.side, st.qty, st.price, st.ord_type, st.tif)
    data = venue.rehearse_new_order(order)
    assert (link.written, link.seq_out, venue.orders_sent) == (written, seq_out, sent)
    ours, real = P.NEW_ORDER_MSG.unpack_from(data), P.NEW_ORDER_MSG.unpack_from(written[-1])
    assert ours[2] == seq_out + 1  # the next sequence number, not used
    assert ours[:2] + ours[4:] == real[:2] + real[4:]  # all but the sequence number and the time


def test_a_strategy_that_says_rehearse_false_gets_no_shadow(tmp_path):
    runner, engine, venue, link = build(
        [{"name": "loner", "symbols": ["BTC-USD"]}, {"name": "every_tick", "id": "t", "symbols": ["BTC-USD"]}],
        tmp_path,
    )
    built = Loner.built
    rehearsal = Rehearsal(REG, runner.setup, engine, runner.source)
    assert Loner.built == built
    assert list(rehearsal.shadow.strategies) == ["t"]


def test_no_book_yet_means_nothing_to_rehearse(tmp_path):
    runner, engine, venue, link = build([{"name": "every_tick", "symbols": ["BTC-USD"]}], tmp_path)
    rehearsal = Rehearsal(REG, runner.setup, engine, runner.source)
    rehearsal.run_round()
    assert rehearsal.rehearsals == 0 and rehearsal.shadow.orders_sent == 0


def test_idle_work_collects_garbage_just_after_a_tick():
    ticks = [0]
    work = IdleWork(None, 0, collect=True, activity=lambda: ticks[0])
    old = gc.get_threshold()
    work.start()
    try:
        assert gc.get_threshold()[0] > 10 * IDLE_GC_AFTER  # the hot path no longer crosses it
        gc.collect()  # (what earlier tests left behind is not this test's: on 3.13 it reached 700)
        work()  # (the first look at the tick count)
        gc.collect()  # a clean start: the count is what follows
        keep = [{} for _ in range(IDLE_GC_AFTER + 10)]
        assert gc.get_count()[0] >= IDLE_GC_AFTER
        for _ in range(10):  # idle, no tick: no collection (a tick could arrive in the middle)
            work._next = 0
            work()
        assert work.collections == 0
        ticks[0] += 1
        work._next = 0
        work()
        assert work.collections == 1
        assert gc.get_count()[0] < IDLE_GC_AFTER
        del keep
    finally:
        work.stop()
    assert gc.get_threshold() == old


@pytest.mark.parametrize("mode", [{"busy_poll": True}, {"busy_poll": False}])
def test_engine_trades_and_rehearses_in_each_idle_mode(mode, tmp_path):
    """A real mock exchange ticking every 12 ms: the engine learns the cadence, rehearses before
    ticks (sleeping) or all the time (busy polling), and its real orders are all accounted for."""

    async def main():
        ex = await server.MockExchange(MockExchangeConfig(port=0, symbols=["BTC-USD"], seed=3, tick_rate=12.0,
                                                          fill_prob=0.0)).start()  # fmt: skip
        try:
            data = {
                "market_data": {"from_venue": True},
                "venue": {"exchange": "mock", "port": ex.port},
                "strategies": [{"name": "every_tick", "symbols": ["BTC-USD"]}],
                "risk": {**RISK, "max_orders_per_second": 1000},
                "latency": {"file": None},
                "output_dir": str(tmp_path),
                **mode,
            }
            runner = EngineRunner(resolve(data, REG, "<test>"), REG)
            task = asyncio.create_task(runner.run(install_signals=False))
            try:
                await async_wait_for(lambda: runner.engine.orders_sent >= 30, 20, "30 orders")
                await async_wait_for(lambda: runner.rehearsal is not None and runner.rehearsal.rehearsals >= 10,
                                     20, "10 rehearsals")  # fmt: skip
            finally:
                runner.stop("test done")
                summary = await asyncio.wait_for(task, 10)
            return runner, summary
        finally:
            await ex.stop()

    runner, summary = asyncio.run(main())
    e = runner.engine
    assert summary["orders"] == e.orders_sent and e.risk_rejects == 0
    assert not e.orders.open
    shadow = runner.rehearsal.shadow
    # (at most the one order of a round stopped between its decision and its reports)
    assert shadow.orders_sent >= 10 and len(shadow.orders.open) <= 1
    # Nothing of the shadow's reached the exchange: every order it saw is one of the engine's.
    assert e.unknown_orders == 0


def test_over_zeromq_the_rehearsal_decodes_the_last_message_again_and_stamps_are_taken_on_receipt(tmp_path):
    """The ZeroMQ source: receipt is stamped before the JSON is decoded, and the rehearsal decodes
    the last book again and hands it to the shadow engine (the features came with it)."""
    import orjson
    import zmq

    from latentspeed_core.testing import free_port

    port = free_port()
    runner, engine, venue, link = build(
        [{"name": "every_tick", "symbols": ["BTC-USD"]}], tmp_path,
        {"zmq": {"host": "127.0.0.1", "port": port, "books_port": port + 1}},
    )  # fmt: skip
    msg = {"exchange": "MOCK", "symbol": "BTC-USD", "seq": 1, "timestamp_ns": 1, "receipt_timestamp_ns": 1,
           "bids": [[60_000.0, 1.0]], "asks": [[60_000.5, 2.0]], "midpoint": 60_000.25}  # fmt: skip

    async def main():
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.bind(f"tcp://127.0.0.1:{port + 1}")
        task = asyncio.create_task(runner.source.run())
        try:
            for _ in range(400):  # until the subscription has joined (no sleep-as-sync: we wait on it)
                pub.send_multipart([b"MOCK-preprocessed_book-BTC-USD", orjson.dumps(msg)])
                if engine.books:
                    return
                await asyncio.sleep(0.025)
            raise AssertionError("the engine never received the book")
        finally:
            task.cancel()
            pub.close(0)

    asyncio.run(main())
    sub = runner.source.subscriber
    (order,) = [o for o in engine.orders.orders.values()]
    assert order.md_receipt_ns == sub.receipt_ns > 0
    rehearsal = Rehearsal(REG, runner.setup, engine, runner.source)
    decoded = []
    shadow_on_book = rehearsal.shadow.on_book
    rehearsal.shadow.on_book = lambda m: (decoded.append(m), shadow_on_book(m))
    before = real_state(runner, venue, link)
    for _ in range(5):
        rehearsal.run_round()
    assert decoded and decoded[-1] == engine.books["BTC-USD"] and decoded[-1] is not engine.books["BTC-USD"]
    assert rehearsal.shadow.orders_sent == 5
    assert real_state(runner, venue, link) == before


def test_slow_chores_run_just_after_a_tick_at_most_once_per_interval():
    ticks, ran = [0], []
    work = IdleWork(None, 0, collect=False, activity=lambda: ticks[0])
    work.add_chore(3600.0, lambda: ran.append("late"))  # not due for an hour
    work.add_chore(0.0, lambda: ran.append("trim"))
    work()  # the first look at the count
    assert ran == ["trim"]
    for _ in range(100):  # spinning with no tick: no chore
        work._next = 0
        work()
    assert ran == ["trim"]
    ticks[0] += 1
    work._next = 0
    work()
    assert ran == ["trim", "trim"]


def test_an_in_process_mock_feed_repeats_its_last_frame_on_scratch_state(tmp_path):
    """In-process feeds (``latentspeed run``, ``collect``): the mock feed parses its last book frame
    again through ``on_frame``, on scratch books and stats; its real books and counters stay."""
    runner, engine, venue, link = build(
        [{"name": "every_tick", "symbols": ["BTC-USD"]}], tmp_path,
        {"feeds": [{"exchange": "mock", "port": 1, "symbols": ["BTC-USD"]}]},
    )  # fmt: skip
    (feed,) = runner.source.feeds
    feed.sink = runner.source.pipeline  # what Feed.run does before it connects
    feed.deliver_connect(time.time_ns())
    feed.deliver_frame(P.encode_security_definition(1, time.time_ns(), 1, P.to_fixed(0.5), P.to_fixed(0.001),
                                                    "BTC-USD"), time.time_ns())  # fmt: skip
    for i in range(3):
        feed.deliver_frame(frame(i + 2, 60_000 + i), time.time_ns())
    assert engine.orders_sent == 3
    before = real_state(runner, venue, link)
    real_book = feed.books["BTC-USD"]
    levels = (real_book.top_bids(10), real_book.top_asks(10))
    rehearsal = Rehearsal(REG, runner.setup, engine, runner.source)
    seen = []
    shadow_book = rehearsal._on_market_data
    rehearsal._on_market_data = lambda *a: (seen.append(a[:3]), shadow_book(*a))
    for _ in range(20):
        rehearsal.run_round()
    assert real_state(runner, venue, link) == before
    assert feed.books["BTC-USD"] is real_book and (real_book.top_bids(10), real_book.top_asks(10)) == levels
    assert len(seen) == 20 and seen[-1] == ("BTC-USD", *levels)  # the last frame, parsed again
    assert rehearsal.shadow.orders_sent == 20


def test_the_shadow_meets_the_real_paths_shared_call_sites_with_the_same_functions_and_types(tmp_path):
    """Where the real tick and the rehearsal run the same code, they must hand it the same functions
    and objects of the same types: the interpreter specialises a call or attribute site for what it
    last saw, and the rehearsal runs far more often than the real tick, so any difference here
    makes every real tick miss it (measured: a Python clock, a separate link class and separate
    market-data closures cost the real tick ~8 us after a 100 ms gap, in process)."""
    from latentspeed_mock_exchange.client import ExchangeLink

    from latentspeed_core.engine.marketdata import VenueMarketData

    runner, engine, venue, link = build([{"name": "every_tick", "symbols": ["BTC-USD"]}], tmp_path)
    venue._link = ExchangeLink.keeping("real")  # a connection's class (the test's Link is not)
    rehearsal = Rehearsal(REG, runner.setup, engine, runner.source)
    shadow, source = rehearsal.shadow, runner.source
    assert isinstance(source, VenueMarketData)
    # market data in: the venue's callback and the Pipeline's emitter are the same functions
    assert rehearsal._on_market_data.__func__ is venue._on_md.__func__ is VenueMarketData.on_market_data
    assert rehearsal._pipeline.emit_book.__func__ is source.pipeline.emit_book.__func__
    # the engine: the same class, its clock no Python function on either (time.time_ns on the real one)
    assert type(shadow) is type(engine) and type(shadow.venue) is type(venue)
    assert not isinstance(shadow.clock, (types.FunctionType, types.MethodType))
    # the venue's send code: its link of the same class
    assert type(shadow.venue._link) is type(venue._link)
    venue._on_frames([(P.MARKET_DATA, frame(1, 60_000), 0)], time.time_ns())
    rehearsal.run_round()
    assert shadow.orders_sent == 1 and shadow.venue._link.transport.data  # the twin's link kept the order
