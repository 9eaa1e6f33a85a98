"""The mock exchange as a client sees it, through the independent raw-socket client (conftest.py)."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mockx_raw_client import CANCELED, E8, FILL, HDR, NEW, NEW_ORDER, PARTIAL, REJECTED, RawClient

from latentspeed_core.testing import free_port, wait_for

BUY, SELL = 0, 1
LIMIT, MARKET = 0, 1
GTC, IOC, POST_ONLY = 0, 1, 2
BTC = 1  # symbol ids follow the configured order: BTC-USD, ETH-USD


def test_definitions_come_first_then_books(exchange, client):
    ex = exchange(symbols=["BTC-USD", "ETH-USD"], depth=5)
    c = client(ex.port)
    first = [c.recv() for _ in range(4)]
    assert [m["type"] for m in first] == [6, 6, 1, 1]
    assert [m["seq"] for m in first] == [1, 2, 3, 4]
    btc, eth = first[0], first[1]
    assert (btc["symbol_id"], btc["name"], btc["tick"], btc["lot"]) == (1, "BTC-USD", E8 // 2, E8 // 10_000)
    assert (eth["symbol_id"], eth["name"]) == (2, "ETH-USD")
    for md in first[2:]:
        bids, asks = md["bids"], md["asks"]
        assert len(bids) == len(asks) == 5
        assert [e[3] for e in bids] == [e[3] for e in asks] == list(range(5))  # level 0 = best
        assert all(b[0] > b2[0] for b, b2 in zip(bids, bids[1:], strict=False))
        assert all(a[0] < a2[0] for a, a2 in zip(asks, asks[1:], strict=False))
        assert bids[0][0] < asks[0][0]
        assert all(e[1] > 0 for e in bids + asks)


def test_market_data_every_tick_to_every_client(exchange, client):
    ex = exchange(tick_rate=5)
    a, b = client(ex.port), client(ex.port)
    for c in (a, b):
        c.handshake()
        snaps = [c.recv_until(lambda m: m["type"] == 1) for _ in range(20)]
        assert {m["symbol_id"] for m in snaps} == {1, 2}
    assert len({tuple(m["bids"][0]) for m in snaps}) > 1, "the random walk moves"


def test_limit_ioc_at_the_touch_acks_then_fills(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    ask_px, ask_qty = c.books[BTC]["asks"][0][:2]
    qty = ask_qty // 2 // (E8 // 10_000) * (E8 // 10_000)
    c.new_order_fixed(11, BTC, BUY, LIMIT, IOC, ask_px, qty)
    ack, fill = c.reports(2)
    assert (ack["cl_ord_id"], ack["exec_type"], ack["leaves_qty"], ack["cum_qty"]) == (11, NEW, qty, 0)
    assert ack["order_id"] > 0 and ack["reject_reason"] == 0
    assert (fill["exec_type"], fill["last_px"], fill["last_qty"], fill["leaves_qty"], fill["cum_qty"]) == (
        FILL, ask_px, qty, 0, qty,
    )  # fmt: skip
    assert fill["order_id"] == ack["order_id"] and fill["exec_id"] > ack["exec_id"]
    trade = c.recv_until(lambda m: m["type"] == 7)  # our own fill is printed
    assert (trade["price"], trade["qty"], trade["aggressor"]) == (ask_px, qty, BUY)


def test_market_order_larger_than_the_touch_fills_in_parts(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    bids = c.books[BTC]["bids"]
    qty = bids[0][1] + bids[1][1] // 2  # the whole touch and half of level 1
    c.new_order_fixed(5, BTC, SELL, MARKET, IOC, 0, qty)
    ack, p1, p2 = c.reports(3)
    assert ack["exec_type"] == NEW
    assert (p1["exec_type"], p1["last_px"], p1["last_qty"], p1["cum_qty"], p1["leaves_qty"]) == (
        PARTIAL, bids[0][0], bids[0][1], bids[0][1], qty - bids[0][1],
    )  # fmt: skip
    assert (p2["exec_type"], p2["last_px"], p2["last_qty"], p2["cum_qty"], p2["leaves_qty"]) == (
        FILL, bids[1][0], bids[1][1] // 2, qty, 0,
    )  # fmt: skip


def test_unfilled_ioc_remainder_is_canceled(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    ask_px, ask_qty = c.books[BTC]["asks"][0][:2]
    c.new_order_fixed(6, BTC, BUY, LIMIT, IOC, ask_px, ask_qty * 3)  # only level 0 is at this price
    ack, part, cxl = c.reports(3)
    assert (ack["exec_type"], part["exec_type"], cxl["exec_type"]) == (NEW, PARTIAL, CANCELED)
    assert (part["last_qty"], part["leaves_qty"]) == (ask_qty, ask_qty * 2)
    assert (cxl["cum_qty"], cxl["leaves_qty"], cxl["last_qty"]) == (ask_qty, 0, 0)


def test_market_order_with_fill_prob_zero_is_canceled_unfilled(exchange, client):
    ex = exchange(fill_prob=0)
    c = client(ex.port)
    c.handshake()
    c.new_order(1, BTC, BUY, MARKET, IOC, 0, 0.01)
    ack, cxl = c.reports(2)
    assert (ack["exec_type"], cxl["exec_type"], cxl["cum_qty"], cxl["leaves_qty"]) == (NEW, CANCELED, 0, 0)


def test_gtc_rests_and_cancels(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    far = c.books[BTC]["bids"][-1][0] - 100 * E8
    c.new_order_fixed(7, BTC, BUY, LIMIT, GTC, far, E8 // 100)
    (ack,) = c.reports(1)
    assert (ack["exec_type"], ack["leaves_qty"]) == (NEW, E8 // 100)
    c.cancel(8, 7, BTC)
    (cxl,) = c.reports(1)
    assert (cxl["cl_ord_id"], cxl["order_id"], cxl["exec_type"]) == (7, ack["order_id"], CANCELED)
    assert (cxl["leaves_qty"], cxl["cum_qty"]) == (0, 0)
    c.cancel(9, 7, BTC)  # already gone
    (rej,) = c.reports(1)
    assert (rej["cl_ord_id"], rej["exec_type"], rej["reject_reason"], rej["order_id"]) == (7, REJECTED, 4, 0)
    # a refused cancel is counted as one, apart from refused orders (the engine's counts of the same names)
    stats = ex.ex.stats  # (counted before the report was sent)
    assert (stats["rejects"], stats["cancel_rejects"], stats["cancels"]) == (0, 1, 1)
    assert " rejects=0 cancels=1 cancel_rejects=1 " in ex.ex.stats_line()


def test_post_only_rests_unless_it_would_take(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    # (the book walks between ticks: prices far from the touch, so each case is what it says)
    bid, ask = c.books[BTC]["bids"][-1][0], c.books[BTC]["asks"][0][0]
    c.new_order_fixed(1, BTC, BUY, LIMIT, POST_ONLY, bid - 100 * E8, E8 // 100)  # below the bids: rests
    (ack,) = c.reports(1)
    assert (ack["exec_type"], ack["leaves_qty"]) == (NEW, E8 // 100)
    c.new_order_fixed(2, BTC, BUY, LIMIT, POST_ONLY, ask + 100 * E8, E8 // 100)  # through the ask: refused
    c.new_order_fixed(3, BTC, BUY, MARKET, POST_ONLY, 0, E8 // 100)  # a market order is never post-only
    rej = c.reports(2)
    assert [(r["cl_ord_id"], r["exec_type"], r["reject_reason"], r["cum_qty"]) for r in rej] == [
        (2, REJECTED, 3, 0), (3, REJECTED, 6, 0)]
    c.cancel(4, 1, BTC)
    assert c.reports(1)[0]["exec_type"] == CANCELED


def test_resting_order_fills_when_the_book_crosses_it(exchange, client):
    ex = exchange(fill_prob=100, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    bid = c.books[BTC]["bids"][0][0]
    c.new_order_fixed(3, BTC, BUY, LIMIT, GTC, bid, E8)  # 1.0 BTC at the best bid: rests
    (ack,) = c.reports(1)
    assert ack["exec_type"] == NEW
    px = bid / E8
    # Drive the price through the paper-trading hook: asks at and below our bid.
    ex.call(ex.ex.set_book, "BTC-USD", [(px - 2, 1.0)], [(px - 0.5, 0.4), (px, 0.3), (px + 0.5, 5.0)])
    ex.call(ex.ex.tick)
    (part,) = c.reports(1)
    assert (part["exec_type"], part["last_px"], part["last_qty"], part["leaves_qty"]) == (
        PARTIAL, bid, round(0.7 * E8), round(0.3 * E8),
    )  # fmt: skip
    ex.call(ex.ex.tick)  # liquidity restored: the rest fills
    (fill,) = c.reports(1)
    assert (fill["exec_type"], fill["last_qty"], fill["cum_qty"], fill["leaves_qty"]) == (
        FILL,
        round(0.3 * E8),
        E8,
        0,
    )
    md = c.recv_until(lambda m: m["type"] == 1)  # this tick's book: the external one less our 0.3
    assert [a[:2] for a in md["asks"]] == [(round((px - 0.5) * E8), round(0.1 * E8)), (px * E8, round(0.3 * E8)),
                                           (round((px + 0.5) * E8), 5 * E8)]  # fmt: skip


def test_set_book_reprices_at_once_without_waiting_for_a_tick(exchange, client):
    """Paper trading: an order sent on the book just pushed in matches that book, not the walk's."""
    ex = exchange(fill_prob=100, symbols=["BTC-USD"])  # ticks once a minute: none happens here
    c = client(ex.port)
    c.handshake()
    walk_ask = c.books[BTC]["asks"][0][0]
    ex.call(ex.ex.set_book, "BTC-USD", [(99.5, 1.0)], [(100.0, 0.4), (100.5, 2.0)])
    # A buy at 100.5 is far below the walk's ask (50,000) and crosses only the new book.
    c.new_order(5, BTC, BUY, LIMIT, IOC, 100.5, 1.0)
    ack, first, second = c.reports(3)
    assert walk_ask > 1000 * E8
    assert (ack["exec_type"], first["exec_type"], second["exec_type"]) == (NEW, PARTIAL, FILL)
    assert (first["last_px"], first["last_qty"]) == (100 * E8, round(0.4 * E8))
    assert (second["last_px"], second["last_qty"]) == (round(100.5 * E8), round(0.6 * E8))
    assert second["cum_qty"] == E8


def test_resting_order_does_not_fill_with_fill_prob_zero(exchange, client):
    ex = exchange(fill_prob=0, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    bid = c.books[BTC]["bids"][0][0]
    c.new_order_fixed(3, BTC, BUY, LIMIT, GTC, bid, E8)
    c.reports(1)
    px = bid / E8
    ex.call(ex.ex.set_book, "BTC-USD", [(px - 2, 1.0)], [(px - 0.5, 5.0)])
    for _ in range(3):
        ex.call(ex.ex.tick)
    c.cancel(4, 3, BTC)
    (cxl,) = c.reports(1)
    assert (cxl["exec_type"], cxl["cum_qty"]) == (CANCELED, 0)


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        ((21, 99, BUY, LIMIT, GTC, 50_000 * E8, E8), 1),  # unknown symbol
        ((22, BTC, BUY, LIMIT, GTC, 50_000 * E8, 0), 2),  # zero quantity
        ((23, BTC, BUY, LIMIT, GTC, 50_000 * E8, -E8), 2),  # negative quantity
        ((24, BTC, BUY, LIMIT, GTC, 50_000 * E8, 12_345), 2),  # not a multiple of the 0.0001 lot
        ((25, BTC, BUY, LIMIT, GTC, 0, E8), 3),  # limit without a price
        ((26, BTC, BUY, LIMIT, GTC, 50_000 * E8 + 1, E8), 3),  # off the 0.5 tick
        ((27, BTC, 7, LIMIT, GTC, 50_000 * E8, E8), 6),  # no such side
    ],
)
def test_rejects_carry_their_reason(exchange, client, order, reason):
    ex = exchange()
    c = client(ex.port)
    c.handshake()
    c.new_order_fixed(*order)
    (rej,) = c.reports(1)
    assert (rej["cl_ord_id"], rej["exec_type"], rej["reject_reason"]) == (order[0], REJECTED, reason)
    assert (rej["order_id"], rej["leaves_qty"], rej["cum_qty"]) == (0, 0, 0)
    assert (ex.ex.stats["rejects"], ex.ex.stats["cancel_rejects"]) == (1, 0)


def test_duplicate_cl_ord_id_is_rejected(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    c.new_order(1, BTC, BUY, MARKET, IOC, 0, 0.001)
    c.new_order(1, BTC, BUY, MARKET, IOC, 0, 0.001)
    reps = c.reports(3)
    assert [r["exec_type"] for r in reps] == [NEW, FILL, REJECTED]
    assert reps[2]["reject_reason"] == 5
    other = client(ex.port)  # ids are per connection
    other.handshake()
    other.new_order(1, BTC, BUY, MARKET, IOC, 0, 0.001)
    assert other.reports(1)[0]["exec_type"] == NEW


def test_fills_happen_at_about_the_configured_probability(exchange, client):
    n, p = 1000, 0.8
    ex = exchange(fill_prob=p * 100, seed=12345)
    c = client(ex.port)
    c.handshake()
    ask_px = c.books[BTC]["asks"][0][0]
    for i in range(n):
        c.new_order_fixed(100 + i, BTC, BUY, LIMIT, IOC, ask_px, E8 // 10_000)  # one lot each
    fills = cancels = 0
    while fills + cancels < n:
        r = c.reports(1)[0]
        fills += r["exec_type"] == FILL
        cancels += r["exec_type"] == CANCELED
    # Binomial(1000, 0.8): sd 12.6; 5 sd either side fails a correct server about once in 3.5 million runs.
    sd = math.sqrt(n * p * (1 - p))
    assert abs(fills - n * p) < 5 * sd, fills


def test_seq_numbers_count_up_per_connection_and_direction(exchange, client):
    ex = exchange(tick_rate=2, fill_prob=50)
    a, b = client(ex.port), client(ex.port)
    for i in range(50):
        a.new_order(i + 1, BTC, i % 2, MARKET, IOC, 0, 0.001)
    a.reports(100)  # RawClient.recv asserts seq == previous + 1 on every message
    b.recv_until(lambda m: m["seq"] == 200)
    assert a.seq_in > 100 and b.seq_in == 200


def test_client_seq_gap_is_tolerated_and_logged(exchange, client, caplog):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    c.seq_out = 41  # skip 40 sequence numbers
    with caplog.at_level(logging.WARNING, logger="latentspeed_mock_exchange"):
        c.new_order(1, BTC, BUY, MARKET, IOC, 0, 0.001)
        assert c.reports(1)[0]["exec_type"] == NEW
    assert any("seq 42, expected 1" in r.getMessage() for r in caplog.records)


def test_heartbeat_after_a_second_idle(exchange, client):
    ex = exchange()
    c = client(ex.port)
    c.handshake()
    t0 = time.monotonic()
    hb = c.recv()  # waits on the socket (5 s timeout): the heartbeat's arrival is the event
    assert hb["type"] == 5 and hb["length"] == 16
    assert time.monotonic() - t0 > 0.7  # not before the idle second; how late is the machine's business


def test_silent_peer_is_dropped_but_a_heartbeating_one_lives(exchange, client):
    ex = exchange(heartbeat_interval=0.1, dead_after=0.6)
    silent, alive = client(ex.port), client(ex.port)
    alive.handshake()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # heartbeat every 0.1 s while reading the exchange's heartbeats
        alive.heartbeat()
        alive.recv()
    assert silent.is_closed(timeout=5), "silent client must be dropped"
    alive.new_order(1, BTC, BUY, LIMIT, GTC, 1.0, 0.001)
    assert alive.reports(1)[0]["exec_type"] == NEW


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        (HDR.pack(8, 5, 1, 0), "bad length 8"),
        (HDR.pack(0, 1, 1, 0), "bad length 0"),  # issue 18: once hung the server with unbounded memory
        (HDR.pack(16, 42, 1, 0), "unknown message type 42"),
        (HDR.pack(30, 3, 1, 0) + bytes(14), "truncated body"),  # NEW_ORDER needs 47 bytes
        (HDR.pack(80, 2, 1, 0) + bytes(64), "exchange-to-client only"),  # an execution report from a client
    ],
)
def test_malformed_frame_closes_only_that_connection(exchange, client, caplog, garbage, why):
    ex = exchange(fill_prob=100)
    bad, good = client(ex.port), client(ex.port)
    bad.handshake()
    good.handshake()
    good.new_order(1, BTC, BUY, LIMIT, GTC, 1.0, 0.001)
    good.reports(1)
    with caplog.at_level(logging.WARNING, logger="latentspeed_mock_exchange"):
        bad.send_raw(garbage)
        assert bad.is_closed(), "the offender is disconnected"
        wait_for(lambda: any(why in r.getMessage() for r in caplog.records), 5, "logged reason")
    # The other client, its resting order and the server carry on.
    good.cancel(2, 1, BTC)
    assert good.reports(1)[0]["exec_type"] == CANCELED
    third = client(ex.port)
    third.handshake()


def test_a_heartbeating_client_that_never_reads_is_dropped_as_a_slow_consumer(exchange, client, caplog):
    """Issue 18, defect 4: output to a non-reader is bounded, and the close names the real cause."""
    import socket

    ex = exchange(tick_rate=1, depth=50, heartbeat_interval=0.1, dead_after=3.0, max_unsent_bytes=64 * 1024)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    slow.connect(("127.0.0.1", ex.port))
    good = client(ex.port)
    good.handshake()
    seq = 0

    def dropped() -> bool:
        nonlocal seq
        seq += 1
        try:  # keep sending heartbeats: it is alive, it just never reads
            slow.send(HDR.pack(16, 5, seq, 0))
        except OSError:
            pass
        good.heartbeat()
        if _readable(good.sock):  # the good client keeps up with the flood
            good.sock.recv(1 << 22)
        return ex.call(lambda: ex.ex.stats["slow_consumers"]) == 1

    with caplog.at_level(logging.WARNING, logger="latentspeed_mock_exchange"):
        wait_for(dropped, 15, "the slow consumer to be dropped")
    slow.close()
    assert any("slow consumer" in r.getMessage() for r in caplog.records)
    assert ex.call(lambda: len(ex.ex.clients)) == 1, "the reading client stays"


def _readable(sock) -> bool:
    import select

    return bool(select.select([sock], [], [], 0.01)[0])


def test_a_flood_of_malformed_connections_is_logged_rate_limited_and_counted(exchange, client, caplog):
    """Issue 18, defect 5: each bad connection once cost ~550 bytes of log; now a line a second."""
    ex = exchange()
    with caplog.at_level(logging.INFO, logger="latentspeed_mock_exchange"):
        for _ in range(30):
            bad = client(ex.port)
            bad.send_raw(HDR.pack(8, 5, 1, 0))
            assert bad.is_closed()
        wait_for(lambda: ex.call(lambda: ex.ex.stats["errors"]) == 30, 5, "all 30 counted")
        closing = [r for r in caplog.records if "closing: malformed" in r.getMessage()]
        assert 1 <= len(closing) <= 3, len(closing)
        ex.call(ex.ex.clog.flush)
    summary = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    assert any("'malformed frame' lines suppressed" in m for m in summary), summary


def test_partial_reads_and_batched_writes_are_reassembled(exchange, client):
    ex = exchange(fill_prob=100)
    c = client(ex.port)
    c.handshake()
    msgs = b"".join(
        HDR.pack(47, 3, i + 1, 0) + NEW_ORDER.pack(i + 1, BTC, BUY, MARKET, IOC, 0, E8 // 1000)
        for i in range(5)
    )
    c.seq_out = 5
    for i in range(0, len(msgs), 7):  # 7-byte dribbles: every message split across reads
        c.send_raw(msgs[i : i + 7])  # TCP_NODELAY: small segments, each message split across reads
    reps = c.reports(10)
    assert [r["cl_ord_id"] for r in reps if r["exec_type"] == NEW] == [1, 2, 3, 4, 5]


def test_vanished_client_loses_its_resting_orders(exchange, client):
    ex = exchange()
    a, b = client(ex.port), client(ex.port)
    a.handshake()
    b.handshake()
    for i in range(3):
        a.new_order(i + 1, BTC, BUY, LIMIT, GTC, 1.0 + i, 0.001)
    b.new_order(1, BTC, BUY, LIMIT, GTC, 1.0, 0.001)
    a.reports(3)
    b.reports(1)
    resting = lambda: ex.call(lambda: len(ex.ex.symbols["BTC-USD"].resting))  # noqa: E731
    assert resting() == 4
    a.close()
    wait_for(lambda: resting() == 1, 5, "a's orders cancelled")
    b.cancel(2, 1, BTC)  # b's order is untouched
    assert b.reports(1)[0]["exec_type"] == CANCELED


def _latentspeed() -> list[str]:
    script = Path(sys.executable).with_name("latentspeed")
    return [str(script)] if script.exists() else [sys.executable, "-m", "latentspeed_core"]


def test_command_line_exchange_on_a_busy_port_is_a_usage_error():
    """Issue 17: one format (``latentspeed X: error: ...``) and exit 2 for what the user must change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([*_latentspeed(), "mock-exchange", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"latentspeed mock-exchange: error: --port: cannot listen on 127.0.0.1:{port}: "), line
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("port_arg,busy_poll", [("free", False), ("0", False), ("free", True)])
def test_command_line_exchange(port_arg, busy_poll):
    port = free_port() if port_arg == "free" else 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*_latentspeed(), "mock-exchange", "--port", str(port), "--tick-rate", "5", "--fill-prob", "100",
         "--symbols", "BTC-USD,ETH-USD,SOL-USD", "--seed", "1", "--depth", "3",
         *(["--busy-poll"] if busy_poll else [])],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        line = ""
        while "Listening on port" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, "no 'Listening on port' line"
            line = proc.stderr.readline()
        actual = int(line.split("Listening on port ")[1].split()[0])
        assert actual == port if port else actual > 0
        c = RawClient(actual)
        c.handshake()
        assert list(c.symbols) == ["BTC-USD", "ETH-USD", "SOL-USD"]
        assert len(c.books[3]["bids"]) == 3
        c.new_order(1, 3, SELL, MARKET, IOC, 0, 0.01)
        assert [r["exec_type"] for r in c.reports(2)] == [NEW, FILL]
        c.close()
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=10)[1]
        assert proc.returncode == 0
        log = line + out
        assert "client 1 connected" in out and "fill conn=1" in out and "order conn=1" in out, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_resting_orders_draw_once_per_crossing(exchange, client):
    n = 200
    ex = exchange(fill_prob=50, seed=99, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    for i in range(n):  # 1 lot each at 1000.0, far below the market: all rest
        c.new_order(i + 1, BTC, BUY, LIMIT, GTC, 1000.0, 0.0001)
    c.reports(n)
    crossed = ([(999.0, 1.0)], [(999.5, 1000.0)])
    away = ([(999.0, 1.0)], [(1001.0, 1000.0)])

    def ticks(book, k):
        ex.call(ex.ex.set_book, "BTC-USD", *book)
        for _ in range(k):
            ex.call(ex.ex.tick)

    def filled_so_far():
        return ex.call(lambda: n - len(ex.ex.symbols["BTC-USD"].resting))

    ticks(crossed, 5)  # one crossing lasting 5 ticks: each order drew once
    first = filled_so_far()
    sd = math.sqrt(n * 0.25)
    assert abs(first - n / 2) < 5 * sd, first  # redrawing every tick would fill ~97%
    ticks(away, 1)
    ticks(crossed, 3)  # a new crossing: the unfilled ones draw again
    second = filled_so_far() - first
    rest = n - first
    assert abs(second - rest / 2) < 5 * math.sqrt(rest * 0.25), (first, second)
    fills = [r for r in c.reports(first + second) if r["exec_type"] == FILL]
    assert len(fills) == first + second and all(r["last_px"] == 1000 * E8 for r in fills)


def test_resting_orders_fill_in_price_priority(exchange, client):
    ex = exchange(fill_prob=100, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    c.new_order(1, BTC, BUY, LIMIT, GTC, 1000.0, 1.0)
    c.new_order(2, BTC, BUY, LIMIT, GTC, 1001.0, 1.0)  # better price, later
    c.reports(2)
    ex.call(ex.ex.set_book, "BTC-USD", [(990.0, 1.0)], [(999.5, 1.5)])  # 1.5 for both
    ex.call(ex.ex.tick)
    first, second = c.reports(2)
    assert (first["cl_ord_id"], first["exec_type"], first["last_px"], first["last_qty"]) == (
        2,
        FILL,
        1001 * E8,
        E8,
    )
    assert (second["cl_ord_id"], second["exec_type"], second["last_qty"]) == (1, PARTIAL, E8 // 2)


def test_set_book_for_a_new_symbol_defines_it_before_its_book(exchange, client):
    ex = exchange(symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    ex.call(ex.ex.set_book, "DOGE-USD", [(100.0, 1000.0)], [(100.5, 500.0)])
    ex.call(ex.ex.tick)
    m = c.recv_until(lambda m: m["type"] in (1, 6) and m.get("symbol_id") == 2)
    assert (m["type"], m["name"]) == (6, "DOGE-USD")
    md = c.recv_until(lambda m: m["type"] == 1 and m["symbol_id"] == 2)
    assert (md["bids"][0][:2], md["asks"][0][:2]) == ((100 * E8, 1000 * E8), (10_050_000_000, 500 * E8))
    ex.call(ex.ex.release_book, "DOGE-USD")  # back to a random walk from the external mid
    ex.call(ex.ex.tick)
    md = c.recv_until(lambda m: m["type"] == 1 and m["symbol_id"] == 2)
    assert abs((md["bids"][0][0] + md["asks"][0][0]) / 2 - 100.25 * E8) < 0.1 * E8
    assert len(md["bids"]) == 10


def test_client_closing_inside_a_message_is_logged_as_truncated(exchange, client, caplog):
    ex = exchange()
    c = client(ex.port)
    c.handshake()
    with caplog.at_level(logging.WARNING, logger="latentspeed_mock_exchange"):
        c.send_raw(HDR.pack(47, 3, 1, 0) + bytes(10))  # 26 of 47 bytes, then EOF
        c.sock.shutdown(1)  # SHUT_WR
        wait_for(
            lambda: any("truncated message (26 bytes)" in r.getMessage() for r in caplog.records), 5, "log"
        )
    wait_for(lambda: ex.call(lambda: len(ex.ex.clients)) == 0, 5, "connection closed")


def test_ids_of_orders_and_cancels_from_one_sequence_cost_no_memory(exchange, client):
    """Found by the soak: an engine's new orders (1, 3, 5, ...: its cancels take the ids between)
    went one by one into the used-id set, ~50 bytes an order for the connection's life."""
    ex = exchange(fill_prob=0)
    c = client(ex.port)
    c.handshake()
    for k in range(200):
        c.new_order(2 * k + 1, BTC, BUY, LIMIT, GTC, 1.0, 0.001)
        c.cancel(2 * k + 2, 2 * k + 1, BTC)
    reports = c.reports(400)
    assert sum(r["exec_type"] == CANCELED for r in reports) == 200
    assert ex.call(lambda: [len(cl.used_ids) for cl in ex.ex.clients]) == [0]
