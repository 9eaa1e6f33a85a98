"""The mock exchange: an asyncio TCP server speaking the issue-4 binary protocol.

One process, many clients. Per symbol a seeded random-walk mid with a spread and
a top-N book (or a book pushed in with :meth:`MockExchange.set_book`). MARKET_DATA goes
to every client every tick. Orders are matched by the shared, I/O-free core in
``matching.py`` (the one paper trading and backtests use): acked, matched against the
book with probability ``fill_prob`` (drawn once per crossing), partially filled level by
level, and cancelled or rested. This module is the TCP wrapper: connections, ticks,
heartbeats, public prints.

Hot path notes: :class:`asyncio.Protocol` (no streams), precompiled structs, one
``transport.write`` per connection per batch (a read or a tick), lazy %-logging
behind a cached ``isEnabledFor``. State is owned by the event loop thread; call
:meth:`set_book` from that thread (``loop.call_soon_threadsafe`` otherwise).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import math
import random
import time

from latentspeed_core.logs import RateLimitedLog

from . import protocol as P
from .config import MockExchangeConfig
from .matching import Matcher, SimOrder, SimSymbol, UsedIds

log = logging.getLogger("latentspeed_mock_exchange")
#: Every order and fill at INFO (logged by the matching core); silence this logger alone to benchmark.
olog = logging.getLogger("latentspeed_mock_exchange.orders")

#: Above this much unsent output the transport tells us to pause (``pause_writing``): the clock
#: of a slow consumer starts.
WRITE_HIGH_WATER = 256 * 1024


def _malloc_trim():
    """glibc's ``malloc_trim``: freed output buffers of dropped slow readers go back to the OS.

    Without it the heap keeps their pages (glibc raises its mmap threshold after the first
    large free), and a burst of slow readers leaves the process 100 MB larger for good."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


malloc_trim = _malloc_trim()


class _Symbol:
    """The walk and wire state of one symbol; its book and resting orders live in the core (``core``)."""

    __slots__ = ("core", "sid", "name", "level_lots", "mid", "tick_f", "external", "ext_bids", "ext_asks",
                 "md_body")  # fmt: skip

    def __init__(self, core: SimSymbol, price: float, tick_size: float, lot_size: float, level_qty: float):
        self.core = core
        self.sid = core.sid
        self.name = core.name
        self.tick_f = tick_size
        self.level_lots = max(1.0, level_qty / lot_size)
        self.mid = price  # float: the walk; the book snaps to the tick grid
        self.external = False
        self.ext_bids: list[tuple[int, int]] = []
        self.ext_asks: list[tuple[int, int]] = []
        self.md_body = b""

    @property
    def resting(self) -> dict[int, SimOrder]:
        return self.core.resting

    @property
    def bids(self) -> list[list[int]]:
        return self.core.bids

    @property
    def asks(self) -> list[list[int]]:
        return self.core.asks


class MockExchange:
    """``ex = MockExchange(cfg); await ex.start(); ex.port; ...; await ex.stop()``."""

    def __init__(self, config: MockExchangeConfig | None = None) -> None:
        self.config = cfg = config or MockExchangeConfig()
        seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**63)
        self.seed = seed
        # Separate streams: fill decisions depend only on the order flow, never on ticks.
        self._walk_rng = random.Random(seed)
        self.stats = {
            "connections": 0, "orders": 0, "fills": 0, "rejects": 0, "cancels": 0, "cancel_rejects": 0, "errors": 0,
            "slow_consumers": 0,
        }  # fmt: skip
        self.matcher = Matcher(
            time.time_ns, fill_prob=cfg.fill_prob, rng=random.Random(seed ^ 0x5DEECE66D),
            max_open_orders=cfg.max_open_orders, on_print=self._print, stats=self.stats,
        )  # fmt: skip
        self.symbols: dict[str, _Symbol] = {}
        for name in cfg.symbols:
            self._add_symbol(name)
        self.clients: set[_Connection] = set()
        self._dirty: list[_Connection] = []
        self._next_conn = 1
        self._next_trade_id = 1
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task] = []
        self.port: int = 0
        #: Per-connection lines (connect, close, disconnect), which any peer can cause at will.
        self.clog = RateLimitedLog(log)
        #: Set when a slow reader was dropped: give its buffer's memory back at the next housekeeping.
        self._trim = False

    # -- symbols and books -----------------------------------------------------------
    def _add_symbol(self, name: str) -> _Symbol:
        spec = self.config.spec(name)
        core = self.matcher.add_symbol(name, P.to_fixed(spec.tick_size), P.to_fixed(spec.lot_size))
        sym = _Symbol(core, spec.price, spec.tick_size, spec.lot_size, spec.level_qty)
        self.symbols[name] = sym
        self._regenerate(sym, match=False)
        return sym

    def _regenerate(self, sym: _Symbol, match: bool) -> bool:
        """Fresh book for this tick: the walk's (or the external feed's), liquidity restored.

        With ``match``, resting orders it crosses fill; returns whether anything filled."""
        if sym.external:
            bids = [[p, q] for p, q in sym.ext_bids]
            asks = [[p, q] for p, q in sym.ext_asks]
        else:
            cfg = self.config
            rng = self._walk_rng
            tick_f = sym.tick_f
            spread = max(1, round(sym.mid * cfg.spread_bps / 1e4 / tick_f))
            bid0 = math.floor(sym.mid / tick_f - spread / 2)
            if bid0 < cfg.depth + 1:  # keep every level's price positive
                bid0 = cfg.depth + 1
                sym.mid = (bid0 + spread / 2) * tick_f
            ask0 = bid0 + spread
            tick, lot, base = sym.core.tick, sym.core.lot, sym.level_lots
            uni = rng.random
            bids = [
                [(bid0 - i) * tick, max(1, round(base * (0.5 + uni()) * (1 + 0.25 * i))) * lot]
                for i in range(cfg.depth)
            ]
            asks = [
                [(ask0 + i) * tick, max(1, round(base * (0.5 + uni()) * (1 + 0.25 * i))) * lot]
                for i in range(cfg.depth)
            ]
        filled = self.matcher.set_book(sym.core, bids, asks, match)
        if filled:  # show the book after the fills: what they took is gone until the next tick
            bids = [lv for lv in bids if lv[1] > 0]
            asks = [lv for lv in asks if lv[1] > 0]
        sym.md_body = P.encode_market_data_body(sym.sid, bids, asks)
        return filled

    def _walk(self, sym: _Symbol) -> None:
        step = self._walk_rng.gauss(0.0, sym.mid * self.config.volatility_bps / 1e4)
        sym.mid = max(sym.mid + step, sym.tick_f)

    def set_book(self, symbol: str, bids, asks) -> None:
        """Replace ``symbol``'s random walk with this book (float ``(price, qty)`` levels, best first).

        The paper-trading hook: a live feed calls it on every book update. The book is
        re-priced at once: an order arriving after this call matches against it (an
        engine can trade on the book it was just shown); clients see it as MARKET_DATA
        on the next tick, and resting orders it crosses fill on that tick. An unknown
        symbol is added and defined (SECURITY_DEFINITION) to every connected client.
        """
        sym = self.symbols.get(symbol)
        if sym is None:
            sym = self._add_symbol(symbol)
            now = time.time_ns()
            for c in self.clients:
                c.send_secdef(sym, now)
            self._flush()
        depth = self.config.depth
        sym.ext_bids = [(P.to_fixed(p), P.to_fixed(q)) for p, q in bids[:depth] if q > 0]
        sym.ext_asks = [(P.to_fixed(p), P.to_fixed(q)) for p, q in asks[:depth] if q > 0]
        sym.external = True
        self._regenerate(sym, match=False)  # re-price now (resting orders it crosses fill on the tick)

    def release_book(self, symbol: str) -> None:
        """Hand ``symbol`` back to the random walk (from the last external mid)."""
        sym = self.symbols[symbol]
        if sym.external and sym.ext_bids and sym.ext_asks:
            sym.mid = P.from_fixed(sym.ext_bids[0][0] + sym.ext_asks[0][0]) / 2
        sym.external = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> MockExchange:
        loop = asyncio.get_running_loop()
        cfg = self.config
        self._server = await loop.create_server(
            lambda: _Connection(self), cfg.host, cfg.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._refresh_log_flag()
        self._tasks = [
            loop.create_task(self._tick_loop(), name="mock-exchange-ticks"),
            loop.create_task(self._housekeeping(), name="mock-exchange-heartbeats"),
        ]
        log.info(
            "Listening on port %d (host %s, tick %sms, fill-prob %s%%, symbols %s, depth %d, seed %d)",
            self.port, cfg.host, cfg.tick_rate, cfg.fill_prob, ",".join(self.symbols), cfg.depth, self.seed,
        )  # fmt: skip
        return self

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        try:
            await self._server.serve_forever()
        finally:
            await self.stop()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self._server is not None:
            self._server.close()
            for c in list(self.clients):
                c.close("exchange shutting down")
            try:
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            except TimeoutError:
                pass
            self._server = None
            log.info("stopped: %s", self.stats_line())

    def stats_line(self) -> str:
        s = self.stats
        return (
            f"clients={len(self.clients)} connections={s['connections']} orders={s['orders']} "
            f"fills={s['fills']} rejects={s['rejects']} cancels={s['cancels']} cancel_rejects={s['cancel_rejects']} "
            f"errors={s['errors']} "
            f"slow_consumers={s['slow_consumers']}"
        )

    def _refresh_log_flag(self) -> None:
        self.matcher.log_orders = self.config.log_orders and olog.isEnabledFor(logging.INFO)

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.config.tick_rate / 1000.0
        next_at = loop.time()
        while True:
            next_at += period
            delay = next_at - loop.time()
            if delay < -period:  # fell behind (e.g. a stalled loop): skip, never burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(max(0.0, delay))
            try:
                self.tick()
            except Exception:  # a bug in one tick must not stop market data for good
                self.stats["errors"] += 1
                log.exception("tick failed")

    def tick(self) -> None:
        """Advance every symbol one step and send MARKET_DATA (and prints/fills) to every client."""
        now = time.time_ns()
        rng = self._walk_rng
        for sym in self.symbols.values():
            if not sym.external:
                self._walk(sym)
            self._regenerate(sym, match=True)
            core = sym.core
            if rng.random() < self.config.trade_prob and core.bids and core.asks:
                aggressor = rng.random() < 0.5
                lvl = core.bids[0] if aggressor else core.asks[0]  # a sell hits the bid
                qty = max(1, round(sym.level_lots * rng.random() * 0.5)) * core.lot
                self._print(core, lvl[0], qty, 1 if aggressor else 0, now)
        for c in self.clients:
            c.send_market_data(self.symbols.values(), now)
        self._flush()

    async def _housekeeping(self) -> None:
        """Heartbeats after ``heartbeat_interval`` idle; peers silent ``dead_after`` are closed."""
        cfg = self.config
        period = min(0.25, cfg.heartbeat_interval / 4)
        last_stats = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            now_ns = time.time_ns()
            for c in list(self.clients):
                t = c.transport
                unsent = t.get_write_buffer_size() if t is not None else 0
                if c.paused_at and now - c.paused_at >= cfg.dead_after:
                    c.close(f"slow consumer: output not drained for {now - c.paused_at:.1f}s "
                            f"({unsent} bytes unsent)", abort=True)  # fmt: skip
                elif now - c.last_rx >= cfg.dead_after:
                    # A peer that does not read can go quiet too: when its receive buffer is full its
                    # kernel drops our segments and the ACKs they carry, so its heartbeats wait in
                    # its own send queue. Name the cause we can see.
                    silent = f"{now - c.last_rx:.1f}s (dead after {cfg.dead_after}s)"
                    c.close(f"slow consumer: not reading, {unsent} bytes unsent, nothing heard for {silent}"
                            if unsent else f"peer silent for {silent}", abort=True)  # fmt: skip
                elif now - c.last_tx >= cfg.heartbeat_interval:
                    c.send_heartbeat(now_ns)
            self._flush()
            if self._trim:
                self._trim = False
                malloc_trim()
            if now - last_stats >= 10.0:
                last_stats = now
                self._refresh_log_flag()
                self.clog.flush()
                log.info("stats: %s", self.stats_line())

    def _flush(self) -> None:
        dirty = self._dirty
        if dirty:
            for c in dirty:
                c.flush()
            dirty.clear()

    # -- orders (the matching core decides; reports go back through the connection) -----------
    def drop_orders(self, conn: _Connection) -> int:
        return self.matcher.drop_orders(conn)

    def _print(self, sym: SimSymbol, px: int, qty: int, aggressor: int, now: int) -> None:
        """A public TRADE to every client: our fills and the walk's own prints."""
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        for c in self.clients:
            c.send_trade(sym.sid, px, qty, aggressor, trade_id, now)


class _Connection(asyncio.Protocol):
    """One client: its decoder, outgoing buffer, sequence numbers, orders and liveness."""

    def __init__(self, ex: MockExchange) -> None:
        self.ex = ex
        self.id = ex._next_conn
        ex._next_conn += 1
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.decoder = P.FrameDecoder()
        self.out = bytearray()
        self.seq_out = 0
        self.seq_in = 0
        self.gaps = 0
        self.orders: dict[int, SimOrder] = {}  # open orders by cl_ord_id
        #: Used cl_ord_ids (O(1) memory for the usual increasing ids).
        self.used_ids = UsedIds()
        self.last_rx = self.last_tx = time.monotonic()
        self.closing = False
        #: monotonic time the transport asked us to pause writing (0.0: draining fine).
        self.paused_at = 0.0

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        ex = self.ex
        ex.clients.add(self)
        ex.stats["connections"] += 1
        ex.clog("connect", logging.INFO, "client %d connected from %s (%d connected)", self.id, self.peer,
             len(ex.clients))  # fmt: skip
        now = time.time_ns()
        # Every SECURITY_DEFINITION right after connect, then the current books: a client
        # knows the definitions are complete when the first non-definition message arrives.
        for sym in ex.symbols.values():
            self.send_secdef(sym, now)
        self.send_market_data(ex.symbols.values(), now)
        ex._flush()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_rx = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except P.ProtocolError as exc:
            frames = None
            error = exc
        ex = self.ex
        if frames:
            matcher = ex.matcher
            expect = self.seq_in + 1
            for msg_type, buf, off in frames:
                if msg_type == P.NEW_ORDER:
                    _l, _t, seq, _ts, cl, sid, side, ot, tif, px, qty = P.unpack_new_order(buf, off)
                    matcher.new_order(self, cl, sid, side, ot, tif, px, qty)
                elif msg_type == P.CANCEL_ORDER:
                    _l, _t, seq, _ts, cl, orig, sid = P.unpack_cancel(buf, off)
                    # A cancel's id comes from the client's one id sequence too: recording it keeps
                    # the used ids one contiguous run (else every gap it leaves is kept one by one:
                    # ~50 bytes an order for the connection's life, the soak's mock growth).
                    self.used_ids.claim(cl)
                    matcher.cancel(self, cl, orig, sid)
                elif msg_type == P.HEARTBEAT:
                    seq = P.unpack_header(buf, off)[2]
                else:
                    ex._flush()
                    self.close(f"malformed frame: {P.MsgType(msg_type).name} is exchange-to-client only")
                    return
                if seq != expect:
                    self.gaps += 1
                    if self.gaps <= 10 or not self.gaps % 1000:
                        log.warning(
                            "client %d: seq %d, expected %d (%d gaps)", self.id, seq, expect, self.gaps
                        )
                expect = seq + 1
            self.seq_in = expect - 1
            ex._flush()
        if frames is None:
            ex._flush()
            self.close(f"malformed frame: {error}")

    def pause_writing(self) -> None:
        self.paused_at = time.monotonic()

    def resume_writing(self) -> None:
        self.paused_at = 0.0

    def eof_received(self):
        if self.decoder.pending():
            self.ex.clog("truncated", logging.WARNING, "client %d: closed with a truncated message (%d bytes)", self.id,
                 self.decoder.pending())  # fmt: skip
        return False  # close the transport

    def connection_lost(self, exc) -> None:
        ex = self.ex
        ex.clients.discard(self)
        n = ex.drop_orders(self)
        reason = "closed" if exc is None else f"lost: {exc}"
        ex.clog("disconnect", logging.INFO, "client %d disconnected (%s); cancelled %d resting orders (%d connected)",
             self.id, reason, n, len(ex.clients))  # fmt: skip
        self.transport = None
        self.out = bytearray()

    def claim_id(self, cl: int) -> bool:
        """Record ``cl`` as used on this connection; False if it was used before."""
        return self.used_ids.claim(cl)

    # -- sending (buffered; MockExchange._flush writes once per batch) ------------------
    def _mark(self) -> bytearray:
        out = self.out
        if not out:
            self.ex._dirty.append(self)
        return out

    def send_report(self, cl, oid, xid, sid, side, et, px, lq, leaves, cum, reason, now, liquidity=0) -> None:
        self.seq_out += 1
        self._mark()
        self.out += P.EXEC_MSG.pack(
            P.EXEC_SIZE,
            P.EXECUTION_REPORT,
            self.seq_out,
            now,
            cl,
            oid,
            xid,
            sid,
            side,
            et,
            px,
            lq,
            leaves,
            cum,
            reason,
        )

    def send_trade(self, sid, px, qty, aggressor, trade_id, now) -> None:
        self.seq_out += 1
        self._mark()
        self.out += P.TRADE_MSG.pack(
            P.TRADE_SIZE, P.TRADE, self.seq_out, now, sid, px, qty, aggressor, trade_id
        )

    def send_secdef(self, sym: _Symbol, now: int) -> None:
        self.seq_out += 1
        self._mark()
        core = sym.core
        self.out += P.encode_security_definition(self.seq_out, now, sym.sid, core.tick, core.lot, sym.name)

    def send_market_data(self, symbols, now: int) -> None:
        out = self._mark()
        header = P.market_data_header
        for sym in symbols:
            self.seq_out += 1
            body = sym.md_body
            out += header(len(body), self.seq_out, now)
            out += body

    def send_heartbeat(self, now: int) -> None:
        self.seq_out += 1
        self._mark()
        self.out += P.HEADER.pack(P.HEARTBEAT_SIZE, P.HEARTBEAT, self.seq_out, now)

    def flush(self) -> None:
        if self.out:
            t = self.transport
            if t is not None and not self.closing:
                t.write(self.out)
                self.last_tx = time.monotonic()
                # Only a paused transport can be near the bound: one attribute test otherwise.
                if self.paused_at and t.get_write_buffer_size() > self.ex.config.max_unsent_bytes:
                    self.close(f"slow consumer: {t.get_write_buffer_size()} bytes unsent "
                               f"(max_unsent_bytes {self.ex.config.max_unsent_bytes})", abort=True)  # fmt: skip
            self.out = bytearray()

    def close(self, reason: str, abort: bool = False) -> None:
        """Close with a logged reason; ``abort`` drops unsent data (a dead or stuck peer)."""
        if self.closing:
            return
        self.closing = True
        ex = self.ex
        ex.stats["errors"] += reason.startswith(("malformed", "peer silent", "slow consumer"))
        if reason.startswith("slow consumer"):
            ex.stats["slow_consumers"] += 1
        if abort:
            ex._trim = True
        if reason == "exchange shutting down":
            log.info("client %d (%s): closing: %s", self.id, self.peer, reason)
        else:  # kind by cause, so one flood of bad frames does not hide a slow consumer's line
            ex.clog(reason.split(":", 1)[0], logging.WARNING, "client %d (%s): closing: %s", self.id, self.peer,
                 reason)  # fmt: skip
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
