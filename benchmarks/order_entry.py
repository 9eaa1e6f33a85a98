"""Order entry: from the strategy's decision (``Engine.submit``) to the order written to the socket, per venue.

    python benchmarks/order_entry.py [--orders 3000] [--venues bybit,binance] [--no-ccxt]

Each venue section below registers one measurement function in ``VENUES`` (``@venue("name")``). It
builds the real engine and the real venue plugin, connects it to that plugin's loopback emulator,
and times ``Engine.submit`` (risk checks, order state, instrument rules, rate-limit bookkeeping,
signing or session auth, encoding, the ``write`` on the connected socket). The same order then goes
through ``ccxt``'s ``create_order`` (``pip install -e '.[bench]'``), its HTTP session pointed at a
loopback server, timed up to the moment the request bytes were handed to the socket
(:func:`ccxt_to_socket_us`), in the same process and run.

Last line: ``{"binance": {"p50_us": .., "p99_us": ..}, "bybit": {...}}`` (each venue's dict may carry
more: the ccxt figures and the ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: Venue name -> measurement function ``fn(args) -> {"p50_us": .., "p99_us": .., ...}``.
VENUES: dict[str, Callable[[argparse.Namespace], dict]] = {}


def venue(name: str):
    """Register a venue's measurement function under ``name`` (its key in the last JSON line)."""

    def register(fn):
        VENUES[name] = fn
        return fn

    return register


# -- shared helpers ------------------------------------------------------------------------------
def percentiles_us(samples_ns: list[int] | np.ndarray, warmup: float = 0.1) -> dict:
    """p50/p90/p99 in µs, without the first ``warmup`` fraction (caches, first allocations)."""
    d = np.asarray(samples_ns, dtype=np.float64)
    d = d[int(len(d) * warmup) :] / 1000.0
    return {q: round(float(np.percentile(d, int(q[1:]))), 2) for q in ("p50", "p90", "p99")}


class _CannedHandler(BaseHTTPRequestHandler):
    """Answers every request with the server's canned body (HTTP/1.1 keep-alive, no logging)."""

    protocol_version = "HTTP/1.1"
    #: Headers and body are two writes: without this, Nagle and the client's delayed ACK add 40 ms a reply.
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = self.server.answer(self.command, self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


class LoopbackHttp:
    """A loopback HTTP server; ``answer(method, path) -> bytes`` picks each reply.

    It runs in a forked process (``answer`` is inherited, never pickled): in a thread of ours it
    would compete with the client being timed for the GIL."""

    def __init__(self, answer: Callable[[str, str], bytes]) -> None:
        import multiprocessing as mp

        server = ThreadingHTTPServer(("127.0.0.1", 0), _CannedHandler)
        server.daemon_threads = True
        server.answer = answer  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._proc = mp.get_context("fork").Process(target=server.serve_forever, daemon=True)
        self._proc.start()
        server.server_close()  # the child owns the listening socket now

    def close(self) -> None:
        self._proc.terminate()
        self._proc.join(5)


def ccxt_to_socket_us(call: Callable[[], object], n: int) -> dict:
    """Time ``call()`` (a ccxt ``create_order``) from its start to the request handed to the socket.

    ``socket.sendall``/``send`` are wrapped for the run: the first write after the start stamps
    the end (after the write returned, as ours is stamped), so the figure covers what ccxt does
    before the wire (parameters, signing, the HTTP session) and not the reply.
    """
    stamps: list[int] = []
    orig_sendall, orig_send = socket.socket.sendall, socket.socket.send
    clock = time.perf_counter_ns

    def sendall(self, data, *a):
        r = orig_sendall(self, data, *a)
        if not stamps:
            stamps.append(clock())
        return r

    def send(self, data, *a):
        r = orig_send(self, data, *a)
        if not stamps:
            stamps.append(clock())
        return r

    out = []
    socket.socket.sendall, socket.socket.send = sendall, send  # type: ignore[method-assign]
    try:
        for _ in range(n):
            stamps.clear()
            t0 = clock()
            call()
            if stamps:
                out.append(stamps[0] - t0)
    finally:
        socket.socket.sendall, socket.socket.send = orig_sendall, orig_send  # type: ignore[method-assign]
    return percentiles_us(out)


# -- binance ---------------------------------------------------------------------------------------------
@venue("binance")
def binance(args: argparse.Namespace) -> dict:
    """Binance spot: the ``binance`` venue on its emulator (WebSocket API ``order.place``, HMAC-SHA256)."""
    sys.path.insert(0, str(ROOT / "plugins" / "exchange_binance" / "tests"))
    from binance_order_entry_bench import measure  # the binance section lives with its emulator

    return measure(args, ccxt_to_socket_us, LoopbackHttp, percentiles_us)


# -- bybit -----------------------------------------------------------------------------------------
def _bybit_tests_on_path() -> None:
    """The Bybit emulator and engine kit live with the plugin's tests."""
    tests = str(ROOT / "plugins" / "exchange_bybit" / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


async def _bybit_ours(orders: int) -> list[int]:
    """``Engine.submit`` -> ``order.create`` frame written on the authenticated /v5/trade socket.

    The real engine (its risk checks on) and the ``bybit`` venue, connected over loopback to the
    emulator on the same event loop: the write never wakes another process (on a small VM that
    wake-up, charged to the sender, is most of a loopback send; a send to Bybit does not pay it).
    One decision at a time: each order is cancelled (untimed) and its end awaited before the next,
    so the emulator's and the venue's reading run between decisions, as live traffic would.
    """
    _bybit_tests_on_path()
    from bybit_engine_kit import BOOK, engine_config, engine_on
    from bybit_private_emulator import BybitEmulator

    from latentspeed_core.types import Side

    clock = time.perf_counter_ns
    ours: list[int] = []
    async with BybitEmulator(order_limit=10**9, get_limit=10**9) as emu:
        emu.set_book("BTCUSDT", *BOOK)
        cfg = engine_config(emu, orders_per_second=10**9)
        cfg["risk"].update(max_orders_per_second=10**9, max_open_orders=10**6)
        cfg["log"] = {"level": "warning"}
        async with engine_on(emu, cfg) as runner:
            engine = runner.engine
            submit, cancel = engine.submit, engine.cancel
            for i in range(orders):
                side = Side.BUY if i & 1 else Side.SELL
                price = 59990.0 - (i % 50) * 0.1 if side == Side.BUY else 60010.0 + (i % 50) * 0.1
                t0 = clock()
                st = submit("manual", "BTC-USDT", side, 0.001, price)
                t1 = clock()
                if st is None:
                    raise RuntimeError(f"order refused: {engine.last_reject}")
                ours.append(t1 - t0)
                # The loop spins (sleep(0)) until the ack and the cancel are in: a busy-polling engine
                # (busy_poll: true) keeps its CPU awake between decisions; a sleeping one starts each
                # decision on a cold, clocked-down CPU (docs/performance.md, "Tick-to-trade").
                deadline = time.monotonic() + 5
                while st.status == 0 and time.monotonic() < deadline:  # PENDING_NEW
                    await asyncio.sleep(0)
                cancel(st.cl_ord_id)
                while st.is_open and time.monotonic() < deadline:
                    await asyncio.sleep(0)
                if st.is_open:
                    raise RuntimeError(f"order {st.cl_ord_id} neither acknowledged nor cancelled within 5 s")
    return ours


def _bybit_signed_rest(n: int) -> list[int]:
    """For reference: the same order as a signed REST ``POST /v5/order/create`` (HMAC over
    timestamp + key + recv_window + body, the four ``X-BAPI-*`` headers, HTTP/1.1 bytes) sent on
    a loopback TCP socket. Not the path we trade on (see the plugin README), but what "including
    signing" costs us."""
    _bybit_tests_on_path()
    from bybit_private_emulator import LINEAR_BTC
    from latentspeed_exchange_bybit.execution import spec_from_instrument
    from latentspeed_exchange_bybit.signing import Signer

    from latentspeed_core.types import Order, Side

    signer = Signer("bench-key", "bench-secret", 5000)
    spec = spec_from_instrument(LINEAR_BTC, "linear")
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server, _ = listener.accept()
    server.setblocking(False)  # drained between sends, untimed, by this thread (no GIL hand-offs)
    clock = time.perf_counter_ns
    out = []
    order = Order(0, "BTC-USDT", Side.BUY, 0.001, 59990.0)
    for i in range(n):
        order.cl_ord_id = i + 1
        t0 = clock()
        link = f"rest-{i}"
        body = (
            f'{{"category":"linear","symbol":"{spec.venue_symbol}","side":"Buy","orderType":"Limit",'
            f'"qty":"{spec.qty_fmt % order.qty}","price":"{spec.px_fmt % order.price}","timeInForce":"GTC",'
            f'"orderLinkId":"{link}"}}'
        )
        h = signer.headers(time.time_ns() // 1_000_000, body)
        req = (
            f"POST /v5/order/create HTTP/1.1\r\nHost: api-testnet.bybit.com\r\nContent-Type: application/json\r\n"
            f"X-BAPI-API-KEY: {h['X-BAPI-API-KEY']}\r\nX-BAPI-TIMESTAMP: {h['X-BAPI-TIMESTAMP']}\r\n"
            f"X-BAPI-RECV-WINDOW: {h['X-BAPI-RECV-WINDOW']}\r\nX-BAPI-SIGN: {h['X-BAPI-SIGN']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        client.sendall(req.encode())
        out.append(clock() - t0)
        try:
            while server.recv(65536):
                pass
        except BlockingIOError:
            pass
    client.close()
    server.close()
    listener.close()
    return out


def _bybit_ccxt(n: int) -> dict:
    """ccxt's ``bybit.create_order`` (v5 REST, HMAC-signed), its session pointed at a loopback server."""
    import ccxt

    _bybit_tests_on_path()
    from bybit_private_emulator import LINEAR_BTC

    def answer(method: str, path: str) -> bytes:
        result: dict = {}
        if path.startswith("/v5/market/instruments-info"):
            result = {"category": "linear", "list": [LINEAR_BTC] if "category=linear" in path else [],
                      "nextPageCursor": ""}  # fmt: skip
        elif path.startswith("/v5/order/create"):
            result = {"orderId": "1", "orderLinkId": ""}
        body = {
            "retCode": 0,
            "retMsg": "OK",
            "result": result,
            "retExtInfo": {},
            "time": time.time_ns() // 10**6,
        }
        return json.dumps(body).encode()

    server = LoopbackHttp(answer)
    try:
        ex = ccxt.bybit({"apiKey": "bench-key", "secret": "bench-secret", "enableRateLimit": False})
        ex.urls["api"] = dict.fromkeys(ex.urls["api"], server.url)
        ex.options["fetchMarkets"]["types"] = ["linear"]
        ex.load_markets()
        order = lambda: ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.001, 59990.0)  # noqa: E731
        for _ in range(20):  # warm: the first create asks which account type this is, once
            order()
        return ccxt_to_socket_us(order, n)
    finally:
        server.close()


@venue("bybit")
def bybit(args: argparse.Namespace) -> dict:
    """Bybit v5: the ``bybit`` venue on its emulator (WebSocket order entry, ``order.create``)."""
    from latentspeed_core.runtime import run_async

    ours = run_async(_bybit_ours(args.orders))  # the engine's loop: uvloop when installed
    rest = _bybit_signed_rest(args.orders)
    p = percentiles_us(ours)
    r = percentiles_us(rest)
    out = {"p50_us": p["p50"], "p90_us": p["p90"], "p99_us": p["p99"], "orders": len(ours),
           "path": "engine.submit -> order.create frame written on the authenticated /v5/trade WebSocket",
           "signed_rest_p50_us": r["p50"], "signed_rest_p99_us": r["p99"]}  # fmt: skip
    if not args.no_ccxt:
        c = _bybit_ccxt(args.ccxt_orders)
        out.update(
            ccxt_p50_us=c["p50"], ccxt_p99_us=c["p99"], ccxt_over_ours_p50=round(c["p50"] / p["p50"], 1)
        )
    return out


# -- dYdX v4 ----------------------------------------------------------------------------------------
async def _dydx_ours(orders: int) -> list[int]:
    """``Engine.submit`` -> the signed ``MsgPlaceOrder`` transaction bytes built and its broadcast
    queued on the gRPC channel (the venue's ``send_new_order`` returns then; the write is the
    channel's). The real engine and the ``dydx`` venue on the loopback validator and indexer of the
    plugin's tests; one short-term order at a time, cancelled (untimed) before the next."""
    tests = str(ROOT / "plugins" / "exchange_dydx" / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import conftest as kit  # the dydx tests' indexer emulator and recorded frames
    from dydx_chain_emulator import ChainEmulator
    from test_dydx_execution import SYMBOL, engine_config, engine_on

    from latentspeed_core.types import Side

    clock = time.perf_counter_ns
    ours: list[int] = []
    async with ChainEmulator() as emu, kit.IndexerServer() as feed:
        cfg = engine_config(emu, feed.url)
        cfg["risk"].update(max_orders_per_second=10**9, max_open_orders=10**6)
        async with engine_on(kit, emu, feed, cfg) as runner:
            engine = runner.engine
            mid = engine.mid(SYMBOL)
            for i in range(orders):
                side = Side.BUY if i & 1 else Side.SELL
                price = round(mid * (0.995 if side == Side.BUY else 1.005), 1)  # resting, inside the band
                sent = len(emu.txs)
                t0 = clock()
                st = engine.submit("manual", SYMBOL, side, 0.01, price)
                t1 = clock()
                if st is None:
                    raise RuntimeError(f"order refused: {engine.last_reject}")
                ours.append(t1 - t0)
                deadline = time.monotonic() + 5
                while len(emu.txs) == sent and time.monotonic() < deadline:  # the broadcast arrived
                    await asyncio.sleep(0)
                engine.cancel(st.cl_ord_id)
                sent = len(emu.txs)
                while len(emu.txs) == sent and time.monotonic() < deadline:
                    await asyncio.sleep(0)
    return ours


@venue("dydx")
def dydx(args: argparse.Namespace) -> dict:
    """dYdX v4: the ``dydx`` venue (short-term MsgPlaceOrder signed locally, gRPC BroadcastTx)."""
    from latentspeed_core.runtime import run_async

    ours = run_async(_dydx_ours(min(args.orders, 1000)))
    p = percentiles_us(ours)
    return {"p50_us": p["p50"], "p90_us": p["p90"], "p99_us": p["p99"], "orders": len(ours),
            "path": "engine.submit -> signed transaction bytes built, BroadcastTx queued on the gRPC channel"}  # fmt: skip


# -- main --------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=3000, help="orders timed per venue (default 3000)")
    ap.add_argument("--ccxt-orders", type=int, default=500, help="orders timed through ccxt (default 500)")
    ap.add_argument(
        "--venues", default=",".join(VENUES), help=f"comma-separated (default {','.join(VENUES)})"
    )
    ap.add_argument("--no-ccxt", action="store_true", help="skip the ccxt comparison")
    args = ap.parse_args()
    results = {}
    for name in [v for v in args.venues.split(",") if v]:
        if name not in VENUES:
            ap.error(f"unknown venue {name!r}; known: {', '.join(VENUES)}")
        gc.collect()
        results[name] = VENUES[name](args)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
